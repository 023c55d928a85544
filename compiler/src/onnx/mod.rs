//! ONNX → IR importer.
//!
//! The importer walks the ONNX graph in topological order and keeps a value table from ONNX value
//! names to [`ctx::Val`]s: either host constants (initializers and everything computed only from
//! them, with the full ONNX shape) or IR values (per-sample shape; the first axis of every graph
//! input is the batch/sample axis and is dropped). Nodes whose operands are all constants are
//! evaluated on the host, which removes shape subgraphs and weight preprocessing; the others are
//! turned into IR nodes by op builders found in [`registry`]. The result is a float graph of
//! import-level ops that passes [`nmc_ir::verify`].
//!
//! Import is total: every node is checked against the registry before anything is built, so a
//! model with several unsupported operators reports all of them in one [`ImportError::Unsupported`].
//! Hostile input must produce an error, never a panic: see [`tensor`] for the data limits.

mod constant;
mod conv;
mod ctx;
mod elementwise;
mod linear;
pub mod nmc_domain;
mod pool;
mod quant;
mod registry;
mod shape;
mod tensor;
mod tensor_ops;
#[cfg(test)]
mod tests;

pub use registry::supported_ops;

use ctx::{Ctx, NodeCx, Val};
use nmc_ir::limits::shape_text;
use onnx_protobuf::{GraphProto, ModelProto, ValueInfoProto};
use protobuf::Message;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use tensor::Loader;

/// Default-domain opsets the importer accepts. Each operator's versions follow ONNX's changelog:
/// where an old version differs (Reshape-1's `shape` attribute, Concat-1's default axis, the
/// `broadcast`/`axis` attributes of arithmetic before opset 7, Pad's attributes before 11,
/// Slice's before 10, Cast-1's type names, …) the builder reads the old form; versions 22–25 of
/// the supported operators changed only the element types they allow, not float32 semantics.
pub const OPSETS: std::ops::RangeInclusive<i64> = 1..=25;

/// A successfully imported model.
#[derive(Debug)]
pub struct Imported {
    /// Float graph of import-level ops; verified and compacted.
    pub graph: nmc_ir::Graph,
    /// The model file (when imported from a file) and every external-data file read, sorted and
    /// deduplicated (for dep-info).
    pub files: Vec<PathBuf>,
    /// Default-domain opset of the model.
    pub opset: i64,
    /// `producer_name producer_version`.
    pub producer: String,
    /// Human-readable remarks about choices the importer made.
    pub notes: Vec<String>,
    /// Content hashes (`nmc_ir::hash_bytes`) of files the importer already read whole, so the
    /// driver need not read them again.
    pub hashes: BTreeMap<PathBuf, u64>,
}

/// A node the importer has no builder for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedNode {
    /// Node name (or its first output name when unnamed).
    pub name: String,
    /// ONNX op type.
    pub op_type: String,
    /// Op domain (`""` for the default domain).
    pub domain: String,
    /// Opset version of that domain in the model (0 when the model does not import it).
    pub opset: i64,
    /// Why it is not supported.
    pub reason: String,
}

impl fmt::Display for UnsupportedNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.domain.is_empty() {
            self.op_type.clone()
        } else {
            format!("{}.{}", self.domain, self.op_type)
        };
        write!(
            f,
            "node \"{}\" ({op}, opset {}): {}",
            self.name, self.opset, self.reason
        )
    }
}

fn list_unsupported(nodes: &[UnsupportedNode]) -> String {
    let mut s = format!("unsupported operators ({}):", nodes.len());
    for n in nodes {
        s.push_str(&format!("\n  {n}"));
    }
    s
}

/// Why a model could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The model file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bytes are not an ONNX model.
    #[error("not a valid onnx model: {0}")]
    Decode(String),
    /// Nodes without an importer (all of them).
    #[error("{}", list_unsupported(.0))]
    Unsupported(Vec<UnsupportedNode>),
    /// The default-domain opset is outside the supported range.
    #[error(
        "unsupported opset {version} for domain \"{}\" (supported: {} to {})",
        if domain.is_empty() { "ai.onnx" } else { domain },
        OPSETS.start(),
        OPSETS.end()
    )]
    Opset {
        /// The domain (`""` is the default domain).
        domain: String,
        /// The version the model imports (0 when it imports none).
        version: i64,
    },
    /// A node cannot be imported as it is: bad attributes, shapes, non-constant weights, …
    #[error("node \"{node}\" ({op_type}): {message}")]
    Invalid {
        /// Node name (or value name for graph inputs and outputs).
        node: String,
        /// ONNX op type (or "graph input", "graph output", "initializer").
        op_type: String,
        /// What is wrong.
        message: String,
    },
    /// A node reads a value that nothing defines.
    #[error(
        "node \"{node}\" reads \"{input}\", which no node, initializer or graph input defines"
    )]
    MissingInput {
        /// The reading node.
        node: String,
        /// The undefined value name.
        input: String,
    },
    /// An HDF5 file (lava-dl netx or NIR) could not be read: `place` is the object's path.
    #[error("HDF5 file {place}: {message}")]
    Hdf5 {
        /// Path of the object in the file (`/` for the file itself).
        place: String,
        /// What is wrong.
        message: String,
    },
    /// A spiking network file (lava-dl netx or NIR) is malformed or uses a construct nmc does not
    /// support: `place` names the layer or node (`layer/3`, `node "lif1" (LIF)`).
    #[error("{format} {place}: {message}")]
    Network {
        /// "netx" or "NIR".
        format: &'static str,
        /// The layer or node.
        place: String,
        /// What is wrong or unsupported.
        message: String,
        /// Whether the file is valid but uses something nmc does not support.
        unsupported: bool,
    },
    /// External tensor data could not be read (safely).
    #[error("external data of tensor \"{tensor}\": {message}")]
    ExternalData {
        /// Tensor name.
        tensor: String,
        /// What went wrong.
        message: String,
    },
}

impl ImportError {
    /// A short stable name of the error kind (for JSON reports and tests).
    pub fn kind(&self) -> &'static str {
        match self {
            ImportError::Io { .. } => "io",
            ImportError::Decode(_) => "decode",
            ImportError::Unsupported(_) => "unsupported",
            ImportError::Opset { .. } => "opset",
            ImportError::Invalid { .. } => "invalid",
            ImportError::MissingInput { .. } => "missing-input",
            ImportError::ExternalData { .. } => "external-data",
            ImportError::Hdf5 { .. } => "hdf5",
            ImportError::Network {
                unsupported: true, ..
            } => "unsupported",
            ImportError::Network { .. } => "invalid",
        }
    }
}

/// Imports an ONNX model file; external data is looked up next to it.
pub fn import_file(path: &Path) -> Result<Imported, ImportError> {
    let bytes = crate::fsutil::read_file(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    import_read(path, bytes)
}

/// Imports an ONNX model whose file `path` has been read into `bytes` (consumed, so the bytes are
/// dropped as soon as the parse has copied what it needs).
pub fn import_read(path: &Path, bytes: Vec<u8>) -> Result<Imported, ImportError> {
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // The content hash (for the artifact header) runs beside the parse, on the bytes already in
    // memory; the file's bytes are dropped as soon as the parse has copied what it needs.
    let (hash, model) = rayon::join(
        || nmc_ir::hash_bytes(&bytes),
        || ModelProto::parse_from_bytes(&bytes),
    );
    drop(bytes);
    let model = model.map_err(|e| ImportError::Decode(e.to_string()))?;
    let mut imported = import_model(model, Some(base))?;
    imported.hashes.insert(path.to_path_buf(), hash);
    imported.files.push(path.to_path_buf());
    imported.files.sort();
    imported.files.dedup();
    Ok(imported)
}

/// Imports an ONNX model from memory; `base_dir` is the folder external data is read from
/// (models with external data fail without it).
pub fn import_bytes(bytes: &[u8], base_dir: Option<&Path>) -> Result<Imported, ImportError> {
    let model =
        ModelProto::parse_from_bytes(bytes).map_err(|e| ImportError::Decode(e.to_string()))?;
    import_model(model, base_dir)
}

/// Imports a parsed model, consuming it: inline initializers are decoded in parallel, each
/// giving back its raw bytes as it is decoded, so that the model's weights are in memory about
/// once, not twice.
fn import_model(mut model: ModelProto, base_dir: Option<&Path>) -> Result<Imported, ImportError> {
    if let Some(g) = model.graph.as_mut() {
        escape_names(g);
    }
    let predecoded = match model.graph.as_mut() {
        Some(g) => tensor::decode_inline_all(&mut g.initializer),
        None => Vec::new(),
    };
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| ImportError::Decode("the model has no graph".into()))?;
    let opsets = domain_opsets(&model);
    let opset = opsets.get("").copied().unwrap_or(0);
    if !OPSETS.contains(&opset) {
        return Err(ImportError::Opset {
            domain: String::new(),
            version: opset,
        });
    }
    check_supported(graph, &opsets)?;
    let order = topo_order(graph)?;
    let mut imp = Importer::new(graph, opset, base_dir);
    imp.predecoded = predecoded;
    imp.inputs_and_initializers()?;
    for i in order {
        imp.node(i)?;
    }
    let graph_ir = imp.finish()?;
    let producer = format!("{} {}", model.producer_name, model.producer_version)
        .trim()
        .to_string();
    Ok(Imported {
        graph: graph_ir,
        files: imp.ctx.loader.files.iter().cloned().collect(),
        opset,
        producer,
        notes: imp.notes,
        hashes: BTreeMap::new(),
    })
}

/// Opset version per domain, with "ai.onnx" folded into the default domain "".
fn domain_opsets(model: &ModelProto) -> HashMap<String, i64> {
    let mut m = HashMap::new();
    for o in &model.opset_import {
        let d = if o.domain == "ai.onnx" {
            ""
        } else {
            o.domain.as_str()
        };
        m.entry(d.to_string()).or_insert(o.version);
    }
    m
}

/// Control characters in names (an escape sequence in a node name would reach the user's terminal
/// in every message and listing) become their Rust escapes, consistently at every definition and
/// use, before anything reads the graph.
fn escape_names(g: &mut GraphProto) {
    fn clean(s: &mut String) {
        if s.chars().any(char::is_control) {
            *s = s
                .chars()
                .flat_map(|c| {
                    let e: Vec<char> = if c.is_control() {
                        c.escape_debug().collect()
                    } else {
                        vec![c]
                    };
                    e
                })
                .collect();
        }
    }
    clean(&mut g.name);
    for n in &mut g.node {
        clean(&mut n.name);
        clean(&mut n.op_type);
        clean(&mut n.domain);
        n.input
            .iter_mut()
            .chain(n.output.iter_mut())
            .for_each(clean);
    }
    for v in g.input.iter_mut().chain(g.output.iter_mut()) {
        clean(&mut v.name);
    }
    for t in &mut g.initializer {
        clean(&mut t.name);
    }
}

fn display_name(n: &onnx_protobuf::NodeProto) -> String {
    if n.name.is_empty() {
        n.output.first().cloned().unwrap_or_default()
    } else {
        n.name.clone()
    }
}

/// Reports every node whose domain or op type has no importer.
fn check_supported(graph: &GraphProto, opsets: &HashMap<String, i64>) -> Result<(), ImportError> {
    let mut bad = Vec::new();
    for n in &graph.node {
        let domain = if n.domain == "ai.onnx" {
            ""
        } else {
            n.domain.as_str()
        };
        let reason = if domain == nmc_domain::DOMAIN {
            match opsets.get(domain) {
                Some(&v) if v != nmc_domain::VERSION => Some(format!(
                    "domain \"{domain}\" version {v} is not supported (nmc reads version {})",
                    nmc_domain::VERSION
                )),
                _ if nmc_domain::lookup(&n.op_type).is_none() => Some(format!(
                    "domain \"{domain}\" has no operator {} (it has {})",
                    n.op_type,
                    nmc_domain::supported_ops().join(", ")
                )),
                _ => None,
            }
        } else if !domain.is_empty() {
            Some(format!(
                "operators of domain \"{domain}\" are not supported"
            ))
        } else if registry::lookup(&n.op_type).is_none() {
            Some("no importer for this operator".to_string())
        } else {
            None
        };
        if let Some(reason) = reason {
            bad.push(UnsupportedNode {
                name: display_name(n),
                op_type: n.op_type.clone(),
                domain: domain.to_string(),
                opset: opsets.get(domain).copied().unwrap_or(0),
                reason,
            });
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(ImportError::Unsupported(bad))
    }
}

/// Indices of the nodes the graph outputs depend on, in a topological order (file order when
/// already sorted, as ONNX requires but not every writer guarantees). Fails on undefined inputs,
/// duplicate definitions and cycles anywhere in the graph.
fn topo_order(graph: &GraphProto) -> Result<Vec<usize>, ImportError> {
    let mut defined: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    defined.extend(graph.input.iter().map(|v| v.name.as_str()));
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in graph.node.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if defined.contains(o.as_str()) || producer.insert(o, i).is_some() {
                return Err(ImportError::Invalid {
                    node: display_name(n),
                    op_type: n.op_type.clone(),
                    message: format!("output \"{o}\" is defined more than once"),
                });
            }
        }
    }
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); graph.node.len()];
    let mut indeg = vec![0usize; graph.node.len()];
    for (i, n) in graph.node.iter().enumerate() {
        for inp in n.input.iter().filter(|s| !s.is_empty()) {
            if defined.contains(inp.as_str()) {
                continue;
            }
            let Some(&p) = producer.get(inp.as_str()) else {
                return Err(ImportError::MissingInput {
                    node: display_name(n),
                    input: inp.clone(),
                });
            };
            users[p].push(i);
            indeg[i] += 1;
        }
    }
    for o in &graph.output {
        if !defined.contains(o.name.as_str()) && !producer.contains_key(o.name.as_str()) {
            return Err(ImportError::MissingInput {
                node: "graph output".into(),
                input: o.name.clone(),
            });
        }
    }
    let mut ready: BinaryHeap<std::cmp::Reverse<usize>> = (0..graph.node.len())
        .filter(|&i| indeg[i] == 0)
        .map(std::cmp::Reverse)
        .collect();
    let mut order = Vec::with_capacity(graph.node.len());
    while let Some(std::cmp::Reverse(i)) = ready.pop() {
        order.push(i);
        for &u in &users[i] {
            indeg[u] -= 1;
            if indeg[u] == 0 {
                ready.push(std::cmp::Reverse(u));
            }
        }
    }
    if let Some(i) = (0..graph.node.len()).find(|&i| indeg[i] > 0) {
        let n = &graph.node[i];
        return Err(ImportError::Invalid {
            node: display_name(n),
            op_type: n.op_type.clone(),
            message: "the node is on a cycle".into(),
        });
    }
    // Only nodes some graph output depends on are imported: an unused branch costs nothing, so
    // a hostile `Range(0, 2^28)` that nothing reads allocates nothing.
    let mut live = vec![false; graph.node.len()];
    let mut stack: Vec<usize> = graph
        .output
        .iter()
        .filter_map(|o| producer.get(o.name.as_str()).copied())
        .collect();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut live[i], true) {
            continue;
        }
        stack.extend(
            graph.node[i]
                .input
                .iter()
                .filter_map(|inp| producer.get(inp.as_str()).copied()),
        );
    }
    order.retain(|&i| live[i]);
    Ok(order)
}

/// Import state for one graph.
struct Importer<'m> {
    proto: &'m GraphProto,
    opset: i64,
    ctx: Ctx,
    vals: HashMap<String, Val>,
    /// Outputs a builder did not produce (MaxPool indices, BatchNormalization statistics, …):
    /// value name → (node, op type), for a precise error when something reads them.
    dropped: HashMap<String, (String, String)>,
    /// Number of readers (node inputs and graph outputs) of each ONNX value name.
    readers: HashMap<String, usize>,
    notes: Vec<String>,
    /// Elements of the constants folded on the host so far (bounded by
    /// half of `nmc_ir::limits::max_elements` in all — still above VGG-19's 103 M-weight layer, should an exporter compute it —, so that hostile shape arithmetic cannot exhaust
    /// memory).
    folded_elements: usize,
    /// Initializers decoded before the import proper (see [`tensor::decode_inline_all`]), in
    /// initializer order; `None` where the tensor is external and decodes through the loader.
    predecoded: Vec<Option<Result<tensor::HostTensor, tensor::TensorError>>>,
}

impl<'m> Importer<'m> {
    fn new(proto: &'m GraphProto, opset: i64, base_dir: Option<&Path>) -> Self {
        let mut readers: HashMap<String, usize> = HashMap::new();
        for n in &proto.node {
            for i in n.input.iter().filter(|s| !s.is_empty()) {
                *readers.entry(i.clone()).or_default() += 1;
            }
        }
        for o in &proto.output {
            *readers.entry(o.name.clone()).or_default() += 1;
        }
        Importer {
            proto,
            opset,
            ctx: Ctx {
                graph: nmc_ir::Graph::new(proto.name.clone()),
                uses: Vec::new(),
                batch: None,
                loader: Loader::new(base_dir),
            },
            vals: HashMap::new(),
            dropped: HashMap::new(),
            readers,
            notes: Vec::new(),
            folded_elements: 0,
            predecoded: Vec::new(),
        }
    }

    fn bind(&mut self, name: &str, v: Val) {
        if name.is_empty() {
            return;
        }
        if let Val::Graph(id) = v {
            self.ctx.uses[id.index()] += self.readers.get(name).copied().unwrap_or(0);
        }
        self.vals.insert(name.to_string(), v);
    }

    /// Initializers become constants; the remaining graph inputs become IR inputs.
    fn inputs_and_initializers(&mut self) -> Result<(), ImportError> {
        if let Some(t) = self.proto.sparse_initializer.first() {
            let name = t
                .values
                .as_ref()
                .map(|v| v.name.clone())
                .unwrap_or_default();
            return Err(ImportError::Invalid {
                node: name,
                op_type: "initializer".into(),
                message: "sparse initializers are not supported".into(),
            });
        }
        let mut init = HashSet::new();
        let mut predecoded = std::mem::take(&mut self.predecoded).into_iter();
        for t in &self.proto.initializer {
            let h = match predecoded.next().flatten() {
                Some(decoded) => decoded,
                None => tensor::decode(t, &mut self.ctx.loader),
            }
            .map_err(|e| tensor_error(e, &t.name, &t.name, "initializer"))?;
            init.insert(t.name.as_str());
            self.bind(&t.name, Val::Const(Rc::new(h)));
        }
        for v in &self.proto.input {
            if init.contains(v.name.as_str()) {
                continue; // old exporters list initializers as inputs too
            }
            let shape = self.input_shape(v)?;
            let id = self
                .ctx
                .graph
                .add_input(nmc_ir::TensorType::f32(shape), v.name.clone());
            self.ctx.uses.resize(self.ctx.graph.nodes.len(), 0);
            self.bind(&v.name, Val::Graph(id));
        }
        Ok(())
    }

    /// Per-sample shape of a graph input: the first axis is the batch, every other axis must be
    /// a known size.
    fn input_shape(&mut self, v: &ValueInfoProto) -> Result<Vec<usize>, ImportError> {
        use onnx_protobuf::tensor_shape_proto::dimension::Value as Dim;
        use onnx_protobuf::type_proto::Value as Ty;
        let bad = |m: String| ImportError::Invalid {
            node: v.name.clone(),
            op_type: "graph input".into(),
            message: m,
        };
        let Some(Ty::TensorType(t)) = v.type_.as_ref().and_then(|t| t.value.as_ref()) else {
            return Err(bad("is not a tensor".into()));
        };
        if t.elem_type != onnx_protobuf::tensor_proto::DataType::FLOAT as i32 {
            return Err(bad(format!(
                "has element type code {}; only float32 inputs are supported",
                t.elem_type
            )));
        }
        let Some(shape) = t.shape.as_ref() else {
            return Err(bad("has no shape".into()));
        };
        let Some((batch, rest)) = shape.dim.split_first() else {
            return Err(bad(
                "is a scalar; the first axis must be the batch axis".into()
            ));
        };
        let note = match &batch.value {
            Some(Dim::DimParam(p)) if !p.is_empty() => format!("batch axis '{p}'"),
            Some(Dim::DimValue(n)) if *n >= 1 => {
                let n = *n as usize;
                match self.ctx.batch {
                    Some(b) if b != n => {
                        return Err(bad(format!(
                            "batch size {n} differs from another input's {b}"
                        )))
                    }
                    _ => self.ctx.batch = Some(n),
                }
                format!("batch axis of static size {n}")
            }
            Some(Dim::DimValue(n)) => return Err(bad(format!("batch axis has size {n}"))),
            _ => "unnamed batch axis".into(),
        };
        self.notes.push(format!(
            "input '{}': {note} treated as the sample axis",
            v.name
        ));
        let mut out = Vec::with_capacity(rest.len());
        for (i, d) in rest.iter().enumerate() {
            match &d.value {
                Some(Dim::DimValue(n)) if *n >= 1 => out.push(*n as usize),
                Some(Dim::DimParam(p)) => {
                    return Err(bad(format!(
                        "axis {} is symbolic ('{p}'); only the first (batch) axis may be",
                        i + 1
                    )))
                }
                Some(Dim::DimValue(n)) => return Err(bad(format!("axis {} has size {n}", i + 1))),
                _ => {
                    return Err(bad(format!(
                        "axis {} has no size; only the first (batch) axis may be unknown",
                        i + 1
                    )))
                }
            }
        }
        if tensor::checked_numel(&out).is_none() {
            return Err(bad(format!("shape {} is too large", shape_text(&out))));
        }
        Ok(out)
    }

    fn lookup(&self, node: &str, op_type: &str, name: &str) -> Result<Val, ImportError> {
        if let Some(v) = self.vals.get(name) {
            return Ok(v.clone());
        }
        let message = match self.dropped.get(name) {
            Some((p, op)) => format!(
                "reads \"{name}\", an output of node \"{p}\" ({op}) that the importer does not produce"
            ),
            None => format!("reads \"{name}\", which is not available"),
        };
        Err(ImportError::Invalid {
            node: node.into(),
            op_type: op_type.into(),
            message,
        })
    }

    fn node(&mut self, index: usize) -> Result<(), ImportError> {
        let proto = &self.proto.node[index];
        let name = display_name(proto);
        let mut inputs = Vec::with_capacity(proto.input.len());
        for i in &proto.input {
            inputs.push(if i.is_empty() {
                None
            } else {
                Some(self.lookup(&name, &proto.op_type, i)?)
            });
        }
        let n = NodeCx {
            proto,
            name,
            opset: self.opset,
            inputs,
        };
        if proto.op_type != "DequantizeLinear" {
            if let Some(Val::Quantized(q)) = n
                .inputs
                .iter()
                .flatten()
                .find(|v| matches!(v, Val::Quantized(_)))
            {
                return Err(n.invalid(format!(
                    "reads the integer output of QuantizeLinear node \"{}\" on a graph value; only DequantizeLinear may",
                    q.node
                )));
            }
        }
        if proto.domain == nmc_domain::DOMAIN {
            let build = nmc_domain::lookup(&proto.op_type)
                .ok_or_else(|| n.invalid("no importer for this operator"))?;
            let outs = build(&mut self.ctx, &n)?;
            for (o, v) in proto.output.iter().zip(outs) {
                self.bind(o, v);
            }
            return Ok(());
        }
        let entry = registry::lookup(&proto.op_type)
            .ok_or_else(|| n.invalid("no importer for this operator"))?;
        let all_const = n
            .inputs
            .iter()
            .flatten()
            .all(|v| matches!(v, Val::Const(_)));
        let outs: Vec<Val> = match (entry.fold, entry.build) {
            (Some(fold), _) if all_const => {
                let folded = fold(&mut self.ctx, &n)?;
                let elements: usize = folded.iter().map(|t| t.numel()).sum();
                self.folded_elements = self.folded_elements.saturating_add(elements);
                let limit = nmc_ir::limits::max_elements() / 2;
                if self.folded_elements > limit {
                    return Err(n.invalid(format!(
                            "constants computed at import time exceed {limit} elements in all (raise the limit with NMC_MAX_ELEMENTS)"
                        )));
                }
                folded.into_iter().map(|t| Val::Const(Rc::new(t))).collect()
            }
            (_, Some(build)) => build(&mut self.ctx, &n)?,
            _ => {
                return Err(n.invalid(
                    "only constant operands are supported (it must be computable at import time)",
                ))
            }
        };
        if outs.len() > proto.output.len() {
            return Err(n.invalid(format!(
                "has {} output(s), the operator produces {}",
                proto.output.len(),
                outs.len()
            )));
        }
        for o in proto.output.iter().skip(outs.len()) {
            self.dropped
                .insert(o.clone(), (n.name.clone(), proto.op_type.clone()));
        }
        for (o, v) in proto.output.iter().zip(outs) {
            self.bind(o, v);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<nmc_ir::Graph, ImportError> {
        for o in &self.proto.output {
            let bad = |m: &str| ImportError::Invalid {
                node: o.name.clone(),
                op_type: "graph output".into(),
                message: m.into(),
            };
            match self.lookup(&o.name, "graph output", &o.name)? {
                Val::Graph(node) => self.ctx.graph.outputs.push(nmc_ir::Output {
                    node,
                    name: o.name.clone(),
                }),
                Val::Const(_) => {
                    return Err(bad("is a constant (it does not depend on any graph input)"))
                }
                Val::Quantized(_) => return Err(bad(
                    "is the integer output of a QuantizeLinear; only float outputs are supported",
                )),
            }
        }
        nmc_ir::verify(&self.ctx.graph).map_err(|e| ImportError::Invalid {
            node: self.proto.name.clone(),
            op_type: "graph".into(),
            message: format!("importer produced an invalid graph: {e}"),
        })?;
        Ok(std::mem::replace(&mut self.ctx.graph, nmc_ir::Graph::new("")).into_compact())
    }
}

/// Maps a tensor decoding failure to an import error naming the tensor and node.
pub(crate) fn tensor_error(
    e: tensor::TensorError,
    tensor: &str,
    node: &str,
    op_type: &str,
) -> ImportError {
    match e {
        tensor::TensorError::Invalid(m) => ImportError::Invalid {
            node: node.into(),
            op_type: op_type.into(),
            message: if tensor.is_empty() || tensor == node {
                m
            } else {
                format!("tensor \"{tensor}\": {m}")
            },
        },
        tensor::TensorError::External(message) => ImportError::ExternalData {
            tensor: if tensor.is_empty() { node } else { tensor }.into(),
            message,
        },
    }
}
