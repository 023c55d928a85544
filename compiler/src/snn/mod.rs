//! Spiking-network files → IR: lava-dl netx HDF5 ([`netx`]) and NIR 1.0 HDF5 ([`nir`]).
//!
//! Both formats are HDF5 files, told apart by content: a netx file has a root group `layer`
//! (groups `0`, `1`, … in order), a NIR file a root group `node` (with `type` = `NIRGraph`,
//! `nodes` and `edges`). [`import_hdf5`] reads the file with [`crate::hdf5`] and builds the same
//! kind of float graph the ONNX importer builds for the `ai.nmc` spiking ops (dense or
//! convolution, then an `Op::Act(Activation::Spiking(..))`), so the rest of the pipeline does not
//! know where a graph came from. The discretisation choices (netx decays → time constants in
//! steps, NIR's continuous time → steps of `dt`) are returned as notes, which the compile report
//! lists. The exact mapping of each construct is in docs/formats.md.

pub mod export;
pub mod netx;
pub mod nir;

use crate::hdf5::{H5Error, H5Group};
use crate::onnx::{ImportError, Imported};
use nmc_ir::{ConstId, Constant, Graph, NodeId, Op, TensorType};
use std::collections::BTreeMap;

/// Options of the spiking-network readers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SnnOptions {
    /// NIR's timestep in seconds: continuous time constants become `tau / dt` steps. The default
    /// is snnTorch's export step, 1e-4 s ([`DEFAULT_DT`]).
    pub dt: f64,
}

/// The timestep snnTorch's NIR export assumes (`dt = 1e-4` s), which makes its exported `LIF`
/// time constants exactly `1 / (1 − beta)` steps; nmc's default for NIR files.
pub const DEFAULT_DT: f64 = 1e-4;

impl Default for SnnOptions {
    fn default() -> Self {
        SnnOptions { dt: DEFAULT_DT }
    }
}

/// Which spiking format an HDF5 file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// lava-dl netx (`/layer/<i>`).
    Netx,
    /// NIR (`/node`).
    Nir,
}

impl Format {
    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Netx => "netx",
            Format::Nir => "NIR",
        }
    }

    /// The format of a parsed file, by its root groups.
    pub fn detect(root: &H5Group) -> Option<Format> {
        if root.groups.contains_key("layer") {
            Some(Format::Netx)
        } else if root.groups.contains_key("node") {
            Some(Format::Nir)
        } else {
            None
        }
    }
}

/// Imports an HDF5 spiking network (netx or NIR, by content) from memory.
pub fn import_hdf5(bytes: &[u8], opts: &SnnOptions) -> Result<Imported, ImportError> {
    let root = crate::hdf5::read(bytes).map_err(h5_error)?;
    let (graph, notes, producer) = match Format::detect(&root) {
        Some(Format::Netx) => {
            let (g, n) = netx::import(&root)?;
            (g, n, "lava-dl netx".to_string())
        }
        Some(Format::Nir) => {
            let (g, n) = nir::import(&root, opts)?;
            let version = root
                .datasets
                .get("version")
                .and_then(|d| d.string().ok())
                .unwrap_or("(no version)");
            (g, n, format!("NIR {version}"))
        }
        None => {
            let names: Vec<&str> = root
                .groups
                .keys()
                .chain(root.datasets.keys())
                .map(String::as_str)
                .take(8)
                .collect();
            return Err(ImportError::Hdf5 {
                place: "/".into(),
                message: format!(
                    "neither a lava-dl netx file (root group `layer`) nor a NIR file (root group `node`); the root holds {names:?}"
                ),
            });
        }
    };
    Ok(Imported {
        graph,
        files: Vec::new(),
        opset: 0,
        producer,
        notes,
        hashes: BTreeMap::new(),
    })
}

/// An HDF5 reading error as an import error.
pub(crate) fn h5_error(e: H5Error) -> ImportError {
    ImportError::Hdf5 {
        place: e.place,
        message: e.message,
    }
}

/// Builds a graph node by node, inferring and checking each type, and turns problems into
/// import errors that name the layer or node.
pub(crate) struct Builder {
    pub graph: Graph,
    format: &'static str,
}

impl Builder {
    pub fn new(format: Format) -> Self {
        Builder {
            graph: Graph::new(format.name().to_lowercase()),
            format: format.name(),
        }
    }

    /// An error about `place`: invalid (`unsupported` false) or valid but unsupported.
    pub fn error(&self, place: &str, message: impl Into<String>, unsupported: bool) -> ImportError {
        ImportError::Network {
            format: self.format,
            place: place.to_string(),
            message: message.into(),
            unsupported,
        }
    }

    /// Adds a graph input of per-sample shape `shape`.
    pub fn input(
        &mut self,
        shape: Vec<usize>,
        name: &str,
        place: &str,
    ) -> Result<NodeId, ImportError> {
        nmc_ir::limits::check_elements(&shape)
            .map_err(|m| self.error(place, format!("input shape {shape:?}: {m}"), false))?;
        if shape.is_empty() || shape.contains(&0) {
            return Err(self.error(place, format!("input shape {shape:?} is empty"), false));
        }
        Ok(self.graph.add_input(TensorType::f32(shape), name))
    }

    /// Adds a float constant.
    pub fn constant(&mut self, shape: Vec<usize>, values: Vec<f32>) -> ConstId {
        self.graph.consts.add(Constant::f32(shape, values))
    }

    /// Adds `op` over `inputs`, its type inferred; an op that does not fit is an error at `place`.
    pub fn push(
        &mut self,
        op: Op,
        inputs: Vec<NodeId>,
        name: &str,
        place: &str,
    ) -> Result<NodeId, ImportError> {
        let tys: Vec<&TensorType> = inputs.iter().map(|&i| self.graph.ty(i)).collect();
        let ty = nmc_ir::infer_type(&op, &tys, &self.graph.consts).map_err(|m| {
            let shapes: Vec<String> = tys.iter().map(|t| t.to_string()).collect();
            self.error(
                place,
                format!("{} on {}: {m}", op.mnemonic(), shapes.join(", ")),
                false,
            )
        })?;
        Ok(self.graph.add(op, inputs, ty, Some(name.to_string())))
    }

    /// The per-sample shape of a node.
    pub fn shape(&self, id: NodeId) -> &[usize] {
        &self.graph.ty(id).shape
    }

    /// Verifies and compacts the finished graph.
    pub fn finish(self, place: &str) -> Result<Graph, ImportError> {
        nmc_ir::verify(&self.graph).map_err(|e| ImportError::Network {
            format: self.format,
            place: place.to_string(),
            message: format!("the importer produced an invalid graph: {e}"),
            unsupported: false,
        })?;
        Ok(self.graph.into_compact())
    }
}

/// Formats a float for notes: shortest exact form, `inf` for infinity.
pub(crate) fn num(x: f32) -> String {
    if x.is_infinite() {
        if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else {
        format!("{x}")
    }
}
