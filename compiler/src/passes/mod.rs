//! IR → IR passes. Each pass is one file, has a kebab-case name used in messages and dumps, and
//! leaves a graph that passes the verifier (the driver checks after every pass).

pub mod canonicalize;
mod joins;
pub mod quantize;
pub mod quantize_akida;
pub mod quantize_rate;
pub mod quantize_snn;

pub(crate) use describe_node as describe;

pub use canonicalize::canonicalize;
pub use quantize::{quantize, Calibration, QuantOptions, QuantReport};
pub use quantize_akida::quantize_akida;
pub use quantize_rate::{quantize_rate, RateOptions};
pub use quantize_snn::quantize_snn;

/// A pass failed on a node.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("in pass `{pass}` at {node}: {message}")]
pub struct PassError {
    /// Pass name.
    pub pass: &'static str,
    /// The node, with its ONNX name when known.
    pub node: String,
    /// What went wrong.
    pub message: String,
}

/// Describes a node for messages: `%3 ("/fc1/Gemm")` ([`nmc_ir::NodeRef`]).
pub fn describe_node(graph: &nmc_ir::Graph, id: nmc_ir::NodeId) -> String {
    graph.node_ref(id).to_string()
}

/// A quantiser's new graph, compacted and verified: the last step of every quantiser.
pub(crate) fn finished(out: nmc_ir::Graph, pass: &'static str) -> Result<nmc_ir::Graph, PassError> {
    let out = out.into_compact();
    nmc_ir::verify(&out).map_err(|e| PassError {
        pass,
        node: "graph".into(),
        message: e.to_string(),
    })?;
    Ok(out)
}
