//! The pipeline's stages, named once: `--emit` dumps, `NMC_TIME_PASSES` timings and the snapshot
//! folders of the tests all take their names from here.

/// A stage of the pipeline, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// ONNX → float IR.
    Import,
    /// Hash of the source files (for the artifact header and dep-info).
    Hash,
    /// Linear ops into layers, BatchNorm folding, residual adds (`passes::canonicalize`).
    Canonicalize,
    /// E-graph rewriting (`-O1`/`-O2`).
    Egraph,
    /// Integer semantics for the target (`passes::quantize*`).
    Quantize,
    /// Cores per layer and their placement (default mapping or a search).
    Partition,
    /// The backend's lowering and encoding of the artifact.
    Lower,
}

impl Stage {
    /// The stage's name in `NMC_TIME_PASSES` output.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Import => "import",
            Stage::Hash => "hash",
            Stage::Canonicalize => "canonicalize",
            Stage::Egraph => "egraph",
            Stage::Quantize => "quantize",
            Stage::Partition => "partition",
            Stage::Lower => "lower",
        }
    }
}

/// What `--emit KIND[=FILE]` can write: the IR after a stage, or one of the compile's outputs.
/// The value names are also the snapshot folders of the tests (`tests/snapshots/<name>/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Emit {
    /// The imported float IR (after [`Stage::Import`]).
    Ir,
    /// The canonical layer graph (after [`Stage::Canonicalize`]).
    CanonicalIr,
    /// The layer graph after e-graph rewriting (after [`Stage::Egraph`]; equal to the canonical
    /// graph at `-O0`).
    EgraphIr,
    /// The quantised graph the chip runs (after [`Stage::Quantize`]). `opt-ir` is its old name,
    /// accepted for one release.
    #[value(alias = "opt-ir")]
    QuantizedIr,
    /// The quantised graph with its mapping (after [`Stage::Partition`]).
    PartitionedIr,
    /// The artifact's readable listing (after [`Stage::Lower`]).
    Listing,
    /// The artifact's bytes (needs `=FILE`; `-o` writes it too).
    Artifact,
    /// The compile report.
    Report,
    /// A Makefile dependency file (needs `=FILE`).
    DepInfo,
    /// A compiled spiking network as a lava-dl netx HDF5 file that Lava loads (needs `=FILE`).
    Netx,
    /// A compiled spiking network as a NIR graph (HDF5, nir 1.0.8; needs `=FILE`).
    Nir,
}

impl Emit {
    /// The kind's name on the command line (and its snapshot folder).
    pub fn name(self) -> &'static str {
        match self {
            Emit::Ir => "ir",
            Emit::CanonicalIr => "canonical-ir",
            Emit::EgraphIr => "egraph-ir",
            Emit::QuantizedIr => "quantized-ir",
            Emit::PartitionedIr => "partitioned-ir",
            Emit::Listing => "listing",
            Emit::Artifact => "artifact",
            Emit::Report => "report",
            Emit::DepInfo => "dep-info",
            Emit::Netx => "netx",
            Emit::Nir => "nir",
        }
    }

    /// Parses a kind (or its alias).
    pub fn parse(s: &str) -> Option<Emit> {
        <Emit as clap::ValueEnum>::from_str(s, false).ok()
    }

    /// Every kind, for messages.
    pub fn all() -> &'static [Emit] {
        <Emit as clap::ValueEnum>::value_variants()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_opt_ir_is_an_alias() {
        for &e in Emit::all() {
            assert_eq!(Emit::parse(e.name()), Some(e));
        }
        assert_eq!(Emit::parse("opt-ir"), Some(Emit::QuantizedIr));
        assert_eq!(Emit::parse("quantised-ir"), None);
    }
}
