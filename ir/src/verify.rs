//! The verifier: checks operand references, types (by re-inferring them), acyclicity and outputs.
//! It collects every error instead of stopping at the first.

use crate::{infer_type, Graph, NodeId, Op};
use std::fmt;

/// One verifier finding, located at a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// The node at fault (`None` for graph-level errors).
    pub node: Option<NodeId>,
    /// The ONNX node name, when known.
    pub name: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.node, &self.name) {
            (Some(n), Some(name)) => write!(f, "{n} (\"{name}\"): {}", self.message),
            (Some(n), None) => write!(f, "{n}: {}", self.message),
            _ => write!(f, "{}", self.message),
        }
    }
}

/// All verifier findings of one graph.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid IR: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
pub struct VerifyErrors(pub Vec<VerifyError>);

/// Verifies `graph`, returning every problem found.
pub fn verify(graph: &Graph) -> Result<(), VerifyErrors> {
    let mut errs = Vec::new();
    let at = |node: Option<NodeId>, message: String| {
        let name = node
            .and_then(|n| graph.nodes.get(n.index()))
            .and_then(|n| n.name.clone());
        VerifyError {
            node,
            name,
            message,
        }
    };
    let mut err = |node: Option<NodeId>, message: String| errs.push(at(node, message));
    let n = graph.nodes.len();
    for id in graph.ids() {
        let node = graph.node(id);
        let mut operands_ok = true;
        for &i in &node.inputs {
            if i.index() >= n {
                err(Some(id), format!("operand {i} is not defined"));
                operands_ok = false;
            }
        }
        for c in node.op.constants() {
            if graph.consts.try_get(c).is_none() {
                err(Some(id), format!("constant {c} is not in the pool"));
                operands_ok = false;
            }
        }
        if !operands_ok {
            continue;
        }
        match &node.op {
            Op::Input { index } => {
                if graph.inputs.get(*index) != Some(&id) {
                    err(Some(id), format!("input node is not graph input #{index}"));
                }
            }
            Op::Reshape => {
                if node.inputs.len() != 1 {
                    err(
                        Some(id),
                        format!("reshape expects 1 operand, has {}", node.inputs.len()),
                    );
                } else {
                    let src = graph.ty(node.inputs[0]);
                    if src.numel() != node.ty.numel() || src.dtype != node.ty.dtype {
                        err(
                            Some(id),
                            format!(
                                "reshape from {src} to {} changes the element count or type",
                                node.ty
                            ),
                        );
                    }
                }
            }
            op => {
                let tys: Vec<_> = node.inputs.iter().map(|i| graph.ty(*i)).collect();
                match infer_type(op, &tys, &graph.consts) {
                    Ok(t) if t == node.ty => {}
                    Ok(t) => err(
                        Some(id),
                        format!("declared type {} but operands give {t}", node.ty),
                    ),
                    Err(m) => err(Some(id), format!("{}: {m}", op.mnemonic())),
                }
            }
        }
    }
    for (i, input) in graph.inputs.iter().enumerate() {
        if input.index() >= n || !matches!(graph.node(*input).op, Op::Input { index } if index == i)
        {
            err(None, format!("graph input #{i} is not an input node"));
        }
    }
    // Every value within the per-value limit, and all of them together within the total one, so
    // that no interpreter or emulator allocates without bound.
    let mut total: usize = 0;
    for id in graph.ids() {
        match crate::limits::check_elements(&graph.node(id).ty.shape) {
            Ok(n) => total = total.saturating_add(n),
            Err(m) => err(Some(id), m),
        }
    }
    let total_limit = crate::limits::max_total_elements();
    if total > total_limit {
        err(
            None,
            format!(
                "the graph's values hold {total} elements together, more than the limit of {total_limit} (raise it with NMC_MAX_ELEMENTS)"
            ),
        );
    }
    if graph.outputs.is_empty() {
        err(None, "graph has no outputs".into());
    }
    for o in &graph.outputs {
        if o.node.index() >= n {
            err(
                None,
                format!("output \"{}\" refers to undefined {}", o.name, o.node),
            );
        }
    }
    // Cycle detection needs every operand to exist; skip it when that already failed.
    if errs.is_empty() {
        if let Err(c) = graph.topo_order() {
            errs.push(at(Some(c.0), "node is on a cycle".into()));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(VerifyErrors(errs))
    }
}
