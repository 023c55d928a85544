//! Mapping Akida layers onto the HRC and the NPs of the mesh.
//!
//! BrainChip's mapper is closed C++ (docs/chips.md §5.5); only its outcome is visible. nmc's rule
//! reproduces akida 2.19.3's `MapMode.Minimal` on every layer measured (docs/chips.md §7.1; the
//! shipped cases are held to a committed akida reference, tests/src/akida_reference.rs):
//!
//! - **InputConv2D** runs on the HRC, which has no NP (its limits are the InputConv2D rows of the
//!   constraints table, checked in [`crate::layers`]).
//! - **Conv2D** runs on NPs configured as CNP1. It is split two ways. *By spatial tiles*, when
//!   the input SRAM is the limit: the layer's output rows are cut into `T` near-equal bands, the
//!   fewest for which every band's input rows (with the kernel's halo) fit the 43,008-byte input
//!   SRAM at the layer's input width. *By output channels*, when the weights are the limit: filters
//!   are stored in groups of 8, each input channel's share of a group taking the measured number
//!   of weight words ([`cnp_max_filters`]), and the filters are cut evenly over the fewest NPs
//!   that hold them. The layer takes `T × G` NPs, one per (band, group).
//! - **Dense** is never split: it runs on one FNP3 when its neurons fit one
//!   ([`fits_one_fnp3`]: `16 + ⌈inputs/32⌉·B(bits)` bytes per neuron within 43,008 bytes),
//!   else on one FNP2, whose weights live in external memory. Its input is not split either: the
//!   whole input vector must fit the input SRAM.
//! - **Passes**: when the mesh cannot hold every layer at once, [`plan`] splits the layers, in
//!   order, into hardware passes, each as long as the mesh holds; a layer never spans passes, and
//!   each pass reloads the mesh (the emulator charges it).
//!
//! NPs are chosen along [`crate::ChipSpec::path`], a walk through neighbouring nodes that starts
//! at the DMA node (3,1), continuing from where the previous layer ended, so a layer's NPs sit on
//! adjacent nodes and consecutive layers are neighbours. Convolutions prefer NPs that cannot be
//! FNPs (CNP1+CNP2, then CNP1 only), then FNP2-capable ones, and take FNP3-capable NPs only
//! beyond those the model's dense layers need.

use crate::layers::{AkError, AkLayer, Analysis, LayerKind, PoolSpec};
use crate::spec::{ChipSpec, NpType};
use nmc_ir::{even_split, Graph, NodeRef};

/// What a mapped unit is configured as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnitType {
    /// The hardware input converter (InputConv2D).
    Hrc,
    /// An NP of this type.
    Np(NpType),
}

impl UnitType {
    /// Vendor name ("HRC", "CNP1", …).
    pub fn name(self) -> &'static str {
        match self {
            UnitType::Hrc => "HRC",
            UnitType::Np(t) => t.name(),
        }
    }
}

/// One unit in use: the HRC or an NP, at `(col, row, id)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Unit {
    /// Mesh column.
    pub col: u32,
    /// Mesh row.
    pub row: u32,
    /// NP slot in its node (0 for the HRC, which has none).
    pub id: u32,
    /// Configured type.
    pub ty: UnitType,
    /// The hardware pass the unit is configured in (0 for a model that fits the mesh at once).
    pub pass: u32,
}

/// The part of a layer one unit computes: output channels `[c0, c1)` of neuron rows `[r0, r1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slice {
    /// Index into [`NpMapping::units`].
    pub unit: u32,
    /// First channel.
    pub c0: u32,
    /// One past the last channel.
    pub c1: u32,
    /// First neuron row (pre-pool; 0 for dense layers).
    pub r0: u32,
    /// One past the last neuron row (1 for dense layers).
    pub r1: u32,
}

/// Units in use and, per layer of the [`Analysis`], its slices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NpMapping {
    /// Units in allocation order (a unit's index is its logical core id); an NP appears once per
    /// hardware pass that uses it.
    pub units: Vec<Unit>,
    /// Per layer: its slices, bands outer and channel groups inner.
    pub layers: Vec<Vec<Slice>>,
}

impl NpMapping {
    /// Hardware passes (at least 1).
    pub fn passes(&self) -> u32 {
        self.units.iter().map(|u| u.pass + 1).max().unwrap_or(1)
    }
}

/// What one layer needs before placement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Need {
    /// HRC, or the NP type.
    pub ty: UnitType,
    /// Neuron row bands `[r0, r1)`.
    pub bands: Vec<(u32, u32)>,
    /// Channel groups `[c0, c1)`.
    pub groups: Vec<(u32, u32)>,
}

impl Need {
    /// NPs the layer takes (0 on the HRC).
    pub fn nps(&self) -> usize {
        match self.ty {
            UnitType::Hrc => 0,
            UnitType::Np(_) => self.bands.len() * self.groups.len(),
        }
    }
}

/// Input rows `[a, b)` that neuron rows `[r0, r1)` of a convolution read.
pub fn input_rows(l: &AkLayer, r0: u32, r1: u32) -> (u64, u64) {
    let Some(g) = &l.geom else {
        return (0, 1);
    };
    let h = l.in_shape[1] as i64;
    let (s, k, pad) = (g.strides[0] as i64, g.kernel[0] as i64, g.pads[0] as i64);
    let a = (i64::from(r0) * s - pad).clamp(0, h);
    let b = ((i64::from(r1) - 1) * s - pad + k).clamp(0, h);
    (a as u64, b.max(a) as u64)
}

/// Bits of the input SRAM that neuron rows `[r0, r1)` of a layer need.
pub fn input_bits_needed(l: &AkLayer, r0: u32, r1: u32) -> u64 {
    match l.kind {
        LayerKind::Dense => l.in_len() as u64 * u64::from(l.input_bits),
        _ => {
            let (a, b) = input_rows(l, r0, r1);
            (b - a) * (l.in_shape[0] * l.in_shape[2]) as u64 * u64::from(l.input_bits)
        }
    }
}

fn layer_ref(l: &AkLayer) -> NodeRef {
    NodeRef {
        id: l.node,
        name: Some(l.name.clone()),
    }
}

fn too_big(
    l: &AkLayer,
    resource: &str,
    needed: String,
    available: String,
    remedy: String,
) -> AkError {
    AkError::DoesNotFit {
        layer: layer_ref(l),
        kind: l.kind.name(),
        resource: resource.into(),
        needed,
        available: format!("{available}; {remedy}"),
    }
}

/// Input channels of a convolution (its filters' depth).
fn in_channels(l: &AkLayer) -> u64 {
    l.in_shape.first().copied().unwrap_or(1) as u64
}

/// Inputs of a dense layer.
fn dense_inputs(l: &AkLayer) -> u64 {
    l.in_len() as u64
}

/// Whether a dense layer's neurons all fit one FNP3 (docs/chips.md §7.1).
pub fn fits_one_fnp3(l: &AkLayer, spec: &ChipSpec) -> bool {
    spec.fnp3_max_neurons(dense_inputs(l), l.weight_bits) >= l.channels() as u64
}

/// The most filters of a convolution one CNP holds (docs/chips.md §7.1; a SeparableConv2D's
/// pointwise filters, §3.6).
pub fn cnp_max_filters(l: &AkLayer, spec: &ChipSpec) -> u64 {
    let k = l.geom.as_ref().map_or(1, |g| g.kernel[0] as u32);
    if l.kind == LayerKind::SeparableConv2D {
        return spec.sep_max_filters(k, l.weight_bits, in_channels(l), l.channels() as u64);
    }
    spec.cnp_max_filters(k, l.weight_bits, in_channels(l), l.channels() as u64)
}

/// Whether output-row band `[a, b)` of a SeparableConv2D fits one NP's input, by the rule
/// fitted to akida 2.19.3's `MapMode.Minimal` (docs/chips.md §3.6): at least
/// `⌈H / `[`crate::spec::SEP_BAND_ROWS`]`⌉` bands, and the `(b − a − 1) · stride + k` input rows
/// a band reads (its kernel halo included, the padding not clipped) within the input SRAM.
fn sep_band_fits(l: &AkLayer, spec: &ChipSpec, bands: u32, a: u32, b: u32) -> bool {
    let Some(g) = &l.geom else { return false };
    let h = l.in_shape[1] as u64;
    let row_bits = (l.in_shape[0] * l.in_shape[2]) as u64 * u64::from(l.input_bits);
    let rows = u64::from(b - a).saturating_sub(1) * g.strides[0] as u64 + g.kernel[0] as u64;
    u64::from(bands) >= h.div_ceil(crate::spec::SEP_BAND_ROWS)
        && rows * row_bits <= spec.input_sram_bytes * 8
}

/// The NPs a layer needs, by the rule in the module docs; `fnp3` says whether a dense layer
/// goes to FNP3 (on-chip weights) rather than FNP2.
pub fn need(l: &AkLayer, spec: &ChipSpec, fnp3: bool) -> Result<Need, AkError> {
    let channels = l.channels() as u32;
    if l.kind == LayerKind::InputConv2D {
        return Ok(Need {
            ty: UnitType::Hrc,
            bands: vec![(0, l.pre_shape[1] as u32)],
            groups: vec![(0, channels)],
        });
    }
    let ty = match l.kind {
        LayerKind::Dense if fnp3 && fits_one_fnp3(l, spec) => NpType::Fnp3,
        LayerKind::Dense => NpType::Fnp2,
        _ => NpType::Cnp1,
    };
    let in_cap = spec.input_sram_bytes * 8;
    // Bands: the fewest whose input rows fit; dense layers and pooled-global layers have one.
    let rows = if l.kind == LayerKind::Dense {
        1
    } else {
        l.pre_shape[1] as u32
    };
    let step = match l.pool {
        Some(PoolSpec::Max { stride, size }) if stride == size => stride[0].max(1),
        _ => 1,
    };
    let mut bands = None;
    if l.kind == LayerKind::Dense {
        let need = input_bits_needed(l, 0, rows);
        if need > in_cap {
            return Err(too_big(
                l,
                "input SRAM (the whole input vector)",
                format!("{} bytes", need.div_ceil(8)),
                format!("an NP has {} bytes", in_cap / 8),
                format!(
                    "at most {} inputs at {} bits would make it run",
                    in_cap / u64::from(l.input_bits.max(1)),
                    l.input_bits
                ),
            ));
        }
        bands = Some(vec![(0, rows)]);
    } else {
        // Bands are cut at multiples of the pool stride so pooling windows stay on one NP.
        let units = rows.div_ceil(step);
        for t in 1..=units {
            let split: Vec<(u32, u32)> = even_split(units, t)
                .into_iter()
                .map(|(a, b)| (a * step, (b * step).min(rows)))
                .collect();
            let fits = |a: u32, b: u32| {
                if l.kind == LayerKind::SeparableConv2D {
                    sep_band_fits(l, spec, t, a, b)
                } else {
                    input_bits_needed(l, a, b) <= in_cap
                }
            };
            if split.iter().all(|&(a, b)| fits(a, b)) {
                bands = Some(split);
                break;
            }
        }
    }
    let bands = match bands {
        Some(b) => b,
        None => {
            let need = input_bits_needed(l, 0, step.min(rows));
            // A band of `step` output rows reads up to `(step − 1)·stride + k` input rows.
            let read = l.geom.as_ref().map_or(1, |g| {
                ((step as usize - 1) * g.strides[0] + g.kernel[0]).min(l.in_shape[1])
            }) as u64;
            return Err(too_big(
                l,
                "input SRAM (one band of output rows with its kernel halo)",
                format!("{} bytes", need.div_ceil(8)),
                format!("an NP has {} bytes", in_cap / 8),
                format!(
                    "an input row of at most {} bytes (fewer input channels or a narrower input; {} rows are read) would make it run",
                    in_cap / read.max(1) / 8,
                    read
                ),
            ));
        }
    };
    let groups = match ty {
        // A dense layer is never split (docs/chips.md §7): one FNP3, or one FNP2 whose weights
        // are in external memory.
        NpType::Fnp2 | NpType::Fnp3 => vec![(0, channels)],
        NpType::Cnp1 | NpType::Cnp2 => {
            let most = cnp_max_filters(l, spec);
            if most == 0 && l.kind == LayerKind::SeparableConv2D {
                let k = l.geom.as_ref().map_or(1, |g| g.kernel[0] as u32);
                return Err(too_big(
                    l,
                    "CNP weight SRAM (one pointwise filter with the depthwise kernels, docs/chips.md §3.6)",
                    format!("{} input channels at {k}×{k}, {} bits", in_channels(l), l.weight_bits),
                    format!("a CNP has {} words", spec.cnp_capacity_words()),
                    "fewer input channels would make it run".into(),
                ));
            }
            if most == 0 {
                let k = l.geom.as_ref().map_or(1, |g| g.kernel[0] as u32);
                let c = in_channels(l);
                let words = spec.cnp_words(k, l.weight_bits, c, 1).unwrap_or(u64::MAX);
                let per = spec.cnp_words(k, l.weight_bits, 1, 1).unwrap_or(1).max(1);
                return Err(too_big(
                    l,
                    "CNP weight SRAM (one filter; filters in groups of 8, each input channel in blocks of 50-bit words, docs/chips.md §7.1)",
                    format!("{words} words for {c} input channels at {k}×{k}, {} bits", l.weight_bits),
                    format!("a CNP has {} words", spec.cnp_capacity_words()),
                    format!(
                        "at most {} input channels at this kernel and width would make it run",
                        spec.cnp_capacity_words() / per
                    ),
                ));
            }
            even_split(channels, channels.div_ceil(most as u32))
        }
    };
    Ok(Need {
        ty: UnitType::Np(ty),
        bands,
        groups,
    })
}

/// Every layer's [`Need`] twice: with FNP3 for a dense layer where one holds it, and with FNP2.
/// Convolutions have one [`Need`] (both entries equal).
fn layer_needs(layers: &[AkLayer], spec: &ChipSpec) -> Result<Vec<(Need, Need)>, AkError> {
    layers
        .iter()
        .map(|l| {
            let a = need(l, spec, true)?;
            let b = if l.kind == LayerKind::Dense {
                need(l, spec, false)?
            } else {
                a.clone()
            };
            Ok((a, b))
        })
        .collect()
}

/// The needs of the layers of one pass, with the FNP3/FNP2 choice for its dense layers made for
/// the pass: convolutions leave the dense layers their FNP3s, and dense layers that cannot all
/// have FNP3s fall back to one FNP2 each, last layers first.
fn pass_needs(layers: &[AkLayer], both: &[(Need, Need)], spec: &ChipSpec) -> Vec<Need> {
    let fnp3_total = spec.nps.iter().filter(|n| n.can(NpType::Fnp3)).count();
    let fnp2_total = spec.nps.iter().filter(|n| n.can(NpType::Fnp2)).count();
    let mut needs: Vec<Need> = both.iter().map(|(a, _)| a.clone()).collect();
    let mut fnp3_reserved: usize = layers
        .iter()
        .zip(&needs)
        .filter(|(l, n)| l.kind == LayerKind::Dense && n.ty == UnitType::Np(NpType::Fnp3))
        .map(|(_, n)| n.nps())
        .sum();
    let mut fnp2_layers = needs
        .iter()
        .filter(|n| n.ty == UnitType::Np(NpType::Fnp2))
        .count();
    for (i, l) in layers.iter().enumerate().rev() {
        if fnp3_reserved <= fnp3_total {
            break;
        }
        if l.kind == LayerKind::Dense
            && needs[i].ty == UnitType::Np(NpType::Fnp3)
            && fnp2_layers < fnp2_total
        {
            fnp3_reserved -= needs[i].nps();
            needs[i] = both[i].1.clone();
            fnp2_layers += 1;
        }
    }
    needs
}

/// Every layer's [`Need`] in the pass plan of [`plan`] (the FNP3/FNP2 choice made per pass).
pub fn needs(a: &Analysis, spec: &ChipSpec) -> Result<Vec<Need>, AkError> {
    Ok(plan(a, spec)?.into_iter().flat_map(|p| p.needs).collect())
}

/// One hardware pass: a run of consecutive layers that the mesh holds at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pass {
    /// Its layers (indices into [`Analysis::layers`]).
    pub layers: std::ops::Range<usize>,
    /// Their needs.
    pub needs: Vec<Need>,
    /// The default mapper's NPs for them.
    pub choices: Vec<LayerChoice>,
}

/// Splits the layers into hardware passes as akida does when the NPs run out (docs/chips.md §7):
/// layers in order, each pass taking as many as map onto the mesh together, the next pass
/// starting with a freshly configured mesh. A layer that cannot map even alone (it needs more
/// NPs than the device has) is an error naming it.
pub fn plan(a: &Analysis, spec: &ChipSpec) -> Result<Vec<Pass>, AkError> {
    let both = layer_needs(&a.layers, spec)?;
    let mut passes = Vec::new();
    let mut start = 0;
    while start < a.layers.len() {
        let one = start..start + 1;
        let needs = pass_needs(&a.layers[one.clone()], &both[one.clone()], spec);
        let choices = place(&a.layers[one.clone()], &needs, spec)?;
        let mut best = Pass {
            layers: one,
            needs,
            choices,
        };
        let mut end = start + 1;
        while end < a.layers.len() {
            let r = start..end + 1;
            let needs = pass_needs(&a.layers[r.clone()], &both[r.clone()], spec);
            match place(&a.layers[r.clone()], &needs, spec) {
                Ok(choices) => {
                    best = Pass {
                        layers: r,
                        needs,
                        choices,
                    };
                    end += 1;
                }
                Err(_) => break,
            }
        }
        passes.push(best);
        start = end;
    }
    Ok(passes)
}

/// Maps analysed layers onto the AKD1000, in as many hardware passes as [`plan`] needs.
pub fn map(a: &Analysis, spec: &ChipSpec) -> Result<NpMapping, AkError> {
    let passes = plan(a, spec)?;
    let mut parts = Vec::with_capacity(passes.len());
    for (k, p) in passes.iter().enumerate() {
        // The choices are valid by construction; a failure here is a bug in this module.
        let m = map_explicit(
            &a.layers[p.layers.clone()],
            spec,
            &p.needs,
            &p.choices,
            k as u32,
        )
        .map_err(|message| AkError::Invalid {
            node: NodeRef {
                id: a.layers.first().map_or(nmc_ir::NodeId(0), |l| l.node),
                name: None,
            },
            message: format!("the NP mapper chose NPs it cannot use: {message}"),
        })?;
        parts.push(m);
    }
    Ok(combine(parts))
}

/// One mapping from the mappings of consecutive passes (unit indices renumbered in order).
pub fn combine(parts: Vec<NpMapping>) -> NpMapping {
    let mut out = NpMapping::default();
    for p in parts {
        let base = out.units.len() as u32;
        out.units.extend(p.units);
        out.layers.extend(p.layers.into_iter().map(|slices| {
            slices
                .into_iter()
                .map(|s| Slice {
                    unit: s.unit + base,
                    ..s
                })
                .collect()
        }));
    }
    out
}

/// The default mapper's NPs for the layers of one pass, or the error of the first layer that
/// finds too few free NPs.
fn place(layers: &[AkLayer], needs: &[Need], spec: &ChipSpec) -> Result<Vec<LayerChoice>, AkError> {
    let mut fnp3_left_for_dense: usize = layers
        .iter()
        .zip(needs)
        .filter(|(l, n)| l.kind == LayerKind::Dense && n.ty == UnitType::Np(NpType::Fnp3))
        .map(|(_, n)| n.nps())
        .sum();
    let mut used = vec![false; spec.nps.len()];
    let mut cursor = 0usize;
    let mut choices = Vec::with_capacity(layers.len());
    for (l, n) in layers.iter().zip(needs) {
        let mut choice = LayerChoice {
            groups: n.groups.len() as u32,
            nps: Vec::new(),
        };
        if let UnitType::Np(ty) = n.ty {
            let count = n.nps();
            let fnp3_free = spec
                .nps
                .iter()
                .zip(&used)
                .filter(|(s, u)| !**u && s.can(NpType::Fnp3))
                .count();
            let spare_fnp3 = if l.kind == LayerKind::Dense {
                0
            } else {
                fnp3_free.saturating_sub(fnp3_left_for_dense)
            };
            let picked = pick(spec, &used, cursor, ty, count, spare_fnp3);
            if picked.len() < count {
                let free = used.iter().filter(|u| !**u).count();
                let alone = free == spec.nps.len();
                let remedy = if !alone {
                    "the layer starts a new hardware pass".to_string()
                } else if l.kind == LayerKind::Dense {
                    "fewer dense layers in a row would make it run".to_string()
                } else {
                    let most = spec.nps.iter().filter(|s| s.can(ty)).count() / n.bands.len().max(1);
                    format!(
                        "a layer cannot span hardware passes: at most {most} channel group(s) per band \
                         (fewer filters, fewer input channels or narrower weights), or fewer row bands \
                         (a narrower input), would make it run"
                    )
                };
                return Err(AkError::DoesNotFit {
                    layer: layer_ref(l),
                    kind: l.kind.name(),
                    resource: format!("NPs ({})", ty.name()),
                    needed: format!(
                        "{count} ({} band(s) × {} channel group(s))",
                        n.bands.len(),
                        n.groups.len()
                    ),
                    available: format!(
                        "{} can take it ({free} of the device's {} NPs are free{}); {remedy}",
                        picked.len(),
                        spec.nps.len(),
                        if l.kind == LayerKind::Dense || fnp3_left_for_dense == 0 {
                            ""
                        } else {
                            "; FNP3-capable ones are kept for the dense layers"
                        }
                    ),
                });
            }
            if ty == NpType::Fnp3 {
                fnp3_left_for_dense = fnp3_left_for_dense.saturating_sub(count);
            }
            picked.iter().for_each(|&np| used[np] = true);
            if let Some(&last) = picked.last() {
                let s = &spec.nps[last];
                cursor = spec.path_index((s.col, s.row)).unwrap_or(0);
            }
            choice.nps = picked;
        }
        choices.push(choice);
    }
    Ok(choices)
}

/// The slices of a layer on the HRC, adding the HRC's unit on first use (`hrc` remembers it).
fn hrc_slices(
    out: &mut NpMapping,
    hrc: &mut Option<u32>,
    spec: &ChipSpec,
    n: &Need,
    pass: u32,
) -> Vec<Slice> {
    let unit = *hrc.get_or_insert_with(|| {
        out.units.push(Unit {
            col: spec.hrc_node.0,
            row: spec.hrc_node.1,
            id: 0,
            ty: UnitType::Hrc,
            pass,
        });
        out.units.len() as u32 - 1
    });
    n.bands
        .iter()
        .flat_map(|&(r0, r1)| {
            n.groups.iter().map(move |&(c0, c1)| Slice {
                unit,
                c0,
                c1,
                r0,
                r1,
            })
        })
        .collect()
}

/// Free NPs able to be `ty`, in preference order, each class scanned along the path from
/// `cursor` (wrapping); FNP3-capable NPs only up to `spare_fnp3` for non-dense layers.
fn pick(
    spec: &ChipSpec,
    used: &[bool],
    cursor: usize,
    ty: NpType,
    count: usize,
    spare_fnp3: usize,
) -> Vec<usize> {
    let n = spec.path.len();
    let along: Vec<usize> = (0..n)
        .flat_map(|k| {
            let node = spec.path[(cursor + k) % n];
            spec.nps
                .iter()
                .enumerate()
                .filter(move |(_, s)| (s.col, s.row) == node)
                .map(|(i, _)| i)
        })
        .filter(|&i| !used[i] && spec.nps[i].can(ty))
        .collect();
    // Preference classes (lower first).
    let class = |i: usize| -> u8 {
        let s = &spec.nps[i];
        match ty {
            NpType::Fnp3 | NpType::Fnp2 => 0,
            _ if s.can(NpType::Cnp2) => 0,
            _ if !s.is_fnp_capable() => 1,
            _ if s.can(NpType::Fnp2) => 2,
            _ => 3,
        }
    };
    let mut picked = Vec::with_capacity(count);
    let mut fnp3_taken = 0;
    for c in 0..4u8 {
        for &i in &along {
            if picked.len() == count {
                return picked;
            }
            if class(i) != c {
                continue;
            }
            if c == 3 {
                if fnp3_taken >= spare_fnp3 {
                    break;
                }
                fnp3_taken += 1;
            }
            picked.push(i);
        }
    }
    picked
}

/// One layer's placement, chosen by the caller (a mapping search) instead of [`map`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerChoice {
    /// Channel groups: at least the [`Need`]'s (fewer would overflow an NP's weight SRAM), at
    /// most the layer's channels. More groups spread the layer's work over more NPs.
    pub groups: u32,
    /// The NPs (indices into [`ChipSpec::nps`]), bands outer and channel groups inner; empty for
    /// a layer on the HRC.
    pub nps: Vec<usize>,
}

/// Maps the layers of one hardware pass onto NPs the caller chose, checking every choice: the NP
/// count (bands × groups), that each NP can be configured as the layer's type, that no NP is
/// used twice. The units are numbered as [`map`] numbers them (layer order, the HRC once, where
/// first used) and carry `pass`.
pub fn map_explicit(
    layers: &[AkLayer],
    spec: &ChipSpec,
    needs: &[Need],
    choices: &[LayerChoice],
    pass: u32,
) -> Result<NpMapping, String> {
    if needs.len() != layers.len() || choices.len() != layers.len() {
        return Err(format!(
            "{} layer choices for {} layers",
            choices.len(),
            layers.len()
        ));
    }
    let mut used = vec![false; spec.nps.len()];
    let mut out = NpMapping::default();
    let mut hrc: Option<u32> = None;
    for ((l, n), c) in layers.iter().zip(needs).zip(choices) {
        let mut slices = Vec::new();
        let ty = match n.ty {
            UnitType::Hrc => {
                if !c.nps.is_empty() {
                    return Err(format!("layer {}: runs on the HRC, not on NPs", l.name));
                }
                let slices = hrc_slices(&mut out, &mut hrc, spec, n, pass);
                out.layers.push(slices);
                continue;
            }
            UnitType::Np(ty) => ty,
        };
        let channels = l.channels() as u32;
        if c.groups < n.groups.len() as u32 || c.groups > channels.max(1) {
            return Err(format!(
                "layer {}: {} channel groups; it needs at least {} (weight SRAM) and has {} channels",
                l.name,
                c.groups,
                n.groups.len(),
                channels
            ));
        }
        let groups = even_split(channels, c.groups);
        let want = n.bands.len() * groups.len();
        if c.nps.len() != want {
            return Err(format!(
                "layer {}: {} NPs given for {} band(s) × {} group(s)",
                l.name,
                c.nps.len(),
                n.bands.len(),
                groups.len()
            ));
        }
        let mut k = 0;
        for &(r0, r1) in &n.bands {
            for &(c0, c1) in &groups {
                let np = c.nps[k];
                k += 1;
                let slot = spec
                    .nps
                    .get(np)
                    .ok_or_else(|| format!("layer {}: NP index {np} is not on the chip", l.name))?;
                if !slot.can(ty) {
                    return Err(format!(
                        "layer {}: the NP at ({}, {}) slot {} cannot be a {}",
                        l.name,
                        slot.col,
                        slot.row,
                        slot.id,
                        ty.name()
                    ));
                }
                if std::mem::replace(&mut used[np], true) {
                    return Err(format!(
                        "layer {}: the NP at ({}, {}) slot {} is used twice",
                        l.name, slot.col, slot.row, slot.id
                    ));
                }
                out.units.push(Unit {
                    col: slot.col,
                    row: slot.row,
                    id: slot.id,
                    ty: UnitType::Np(ty),
                    pass,
                });
                slices.push(Slice {
                    unit: out.units.len() as u32 - 1,
                    c0,
                    c1,
                    r0,
                    r1,
                });
            }
        }
        out.layers.push(slices);
    }
    Ok(out)
}

/// The choices behind an IR mapping (the form [`to_ir_mapping`] gives): a layer's channel groups
/// from its slices, its NPs from its units' nodes. The IR records a unit's node, not its NP
/// slot, so slots are given per node by a small exact matching of the node's units to the NPs
/// there that can take their type (a node has at most a handful of NPs).
pub fn choices_from_ir(
    layers: &[AkLayer],
    spec: &ChipSpec,
    needs: &[Need],
    given: &nmc_ir::Mapping,
) -> Result<Vec<LayerChoice>, String> {
    // Per layer: (groups, per NP its node and type); filled in with NP indices below.
    let mut choices = Vec::with_capacity(layers.len());
    let mut wanted: Vec<(usize, usize, (u32, u32), NpType)> = Vec::new();
    let mut seen_cores = std::collections::BTreeSet::new();
    for (li, (l, n)) in layers.iter().zip(needs).enumerate() {
        let slices = given
            .layers
            .get(&l.node)
            .ok_or_else(|| format!("layer {} is not in the mapping", l.name))?;
        let UnitType::Np(ty) = n.ty else {
            choices.push(LayerChoice {
                groups: n.groups.len() as u32,
                nps: Vec::new(),
            });
            continue;
        };
        let bands = n.bands.len();
        if slices.is_empty() || slices.len() % bands != 0 {
            return Err(format!(
                "layer {}: {} slices for {bands} row band(s)",
                l.name,
                slices.len()
            ));
        }
        let g = (slices.len() / bands) as u32;
        let groups = even_split(l.channels() as u32, g);
        for (k, s) in slices.iter().enumerate() {
            if s.is_tile() {
                return Err(format!(
                    "layer {}: slice {k} is a spatial tile; the AKD1000 splits layers by channel groups and its own row bands only",
                    l.name
                ));
            }
            if (s.start, s.end) != groups[k % groups.len()] {
                return Err(format!(
                    "layer {}: slice {k} holds channels {}..{}; {g} groups split them as {:?}",
                    l.name, s.start, s.end, groups
                ));
            }
            if !seen_cores.insert(s.core) {
                return Err(format!("layer {}: core {} is used twice", l.name, s.core));
            }
            let at = given
                .placement
                .get(s.core as usize)
                .ok_or_else(|| format!("layer {}: core {} has no location", l.name, s.core))?;
            wanted.push((li, k, (at.x, at.y), ty));
        }
        choices.push(LayerChoice {
            groups: g,
            nps: vec![usize::MAX; slices.len()],
        });
    }
    // Per node: match its units to its NPs.
    let mut nodes: Vec<(u32, u32)> = wanted.iter().map(|w| w.2).collect();
    nodes.sort_unstable();
    nodes.dedup();
    for node in nodes {
        let units: Vec<&(usize, usize, (u32, u32), NpType)> =
            wanted.iter().filter(|w| w.2 == node).collect();
        let nps: Vec<usize> = (0..spec.nps.len())
            .filter(|&i| (spec.nps[i].col, spec.nps[i].row) == node)
            .collect();
        let mut pick = vec![usize::MAX; units.len()];
        let mut taken = vec![false; nps.len()];
        if !match_slots(&units, &nps, spec, 0, &mut pick, &mut taken) {
            return Err(format!(
                "node ({}, {}) has {} NP(s); {} unit(s) of types {:?} cannot all have one",
                node.0,
                node.1,
                nps.len(),
                units.len(),
                units.iter().map(|u| u.3.name()).collect::<Vec<_>>()
            ));
        }
        for (u, &p) in units.iter().zip(&pick) {
            choices[u.0].nps[u.1] = nps[p];
        }
    }
    Ok(choices)
}

/// Backtracking assignment of `units` to distinct `nps` able to take their type.
fn match_slots(
    units: &[&(usize, usize, (u32, u32), NpType)],
    nps: &[usize],
    spec: &ChipSpec,
    k: usize,
    pick: &mut [usize],
    taken: &mut [bool],
) -> bool {
    if k == units.len() {
        return true;
    }
    for p in 0..nps.len() {
        if taken[p] || !spec.nps[nps[p]].can(units[k].3) {
            continue;
        }
        taken[p] = true;
        pick[k] = p;
        if match_slots(units, nps, spec, k + 1, pick, taken) {
            return true;
        }
        taken[p] = false;
    }
    false
}

/// The mapping behind an IR mapping (the form [`to_ir_mapping`] gives, of [`map`] or of a
/// search), pass by pass: the passes are [`plan`]'s, and each pass's units are matched to its NPs
/// by [`choices_from_ir`] and checked by [`map_explicit`].
pub fn map_given(
    a: &Analysis,
    spec: &ChipSpec,
    given: &nmc_ir::Mapping,
) -> Result<NpMapping, String> {
    let passes = plan(a, spec).map_err(|e| e.to_string())?;
    let mut parts = Vec::with_capacity(passes.len());
    for (k, p) in passes.iter().enumerate() {
        let layers = &a.layers[p.layers.clone()];
        let choices = choices_from_ir(layers, spec, &p.needs, given)?;
        parts.push(map_explicit(layers, spec, &p.needs, &choices, k as u32)?);
    }
    Ok(combine(parts))
}

/// Analyses and maps a graph.
pub fn map_graph(graph: &Graph, spec: &ChipSpec) -> Result<(Analysis, NpMapping), AkError> {
    let a = crate::layers::analyze(graph, spec)?;
    let m = map(&a, spec)?;
    Ok((a, m))
}

/// The mapping as the IR's side table: per layer node its slices as channel ranges (a spatially
/// banded layer lists a channel range once per band), and per logical core (unit index) its
/// node `(col, row)` as `x, y` on chip 0. The slot and type are in [`NpMapping::units`].
pub fn to_ir_mapping(a: &Analysis, m: &NpMapping) -> nmc_ir::Mapping {
    let mut out = nmc_ir::Mapping::default();
    for (l, slices) in a.layers.iter().zip(&m.layers) {
        out.layers.insert(
            l.node,
            slices
                .iter()
                .map(|s| nmc_ir::CoreSlice::channels(s.unit, s.c0, s.c1))
                .collect(),
        );
    }
    out.placement = m
        .units
        .iter()
        .map(|u| nmc_ir::CoreLoc {
            chip: 0,
            x: u.col,
            y: u.row,
        })
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{LayerKind, Src};
    use nmc_ir::{ConvGeom, NodeId};

    /// A 3×3 SeparableConv2D at stride `s` on a `[c, h, w]` 4-bit input, Same padding.
    fn separable(c: usize, h: usize, w: usize, f: usize, s: usize) -> AkLayer {
        let (t, b) = crate::layers::same_pads(h, 3, s);
        let (l, r) = crate::layers::same_pads(w, 3, s);
        let geom = ConvGeom {
            kernel: [3, 3],
            strides: [s, s],
            pads: [t, l, b, r],
            dilations: [1, 1],
            groups: c,
        };
        let (oh, ow) = (h.div_ceil(s), w.div_ceil(s));
        AkLayer {
            node: NodeId(0),
            name: "sep".into(),
            kind: LayerKind::SeparableConv2D,
            src: Src::Layer(0),
            in_shape: vec![c, h, w],
            pre_shape: vec![f, oh, ow],
            out_shape: vec![f, oh, ow],
            geom: Some(geom),
            dw_weights: vec![1; c * 9],
            host_pads: [0; 4],
            pool: None,
            input_bits: 4,
            weight_bits: 4,
            act_bits: Some(4),
            weights: vec![1; f * c],
            threshold: vec![0; f],
            act_step: vec![1; f],
            scale: 1.0,
        }
    }

    /// NPs per SeparableConv2D as akida 2.19.3's `MapMode.Minimal` gives them
    /// (testdata/gen/akida_separable_probe.json; docs/chips.md §3.6).
    #[test]
    fn separable_nps_match_akida() {
        let spec = crate::akd1000();
        // (channels, height, width, filters, stride, NPs)
        for (c, h, w, f, s, nps) in [
            (8, 32, 48, 16, 1, 1),
            (8, 33, 48, 16, 1, 2),
            (8, 64, 48, 16, 1, 2),
            (8, 65, 48, 16, 1, 3),
            (8, 97, 48, 16, 1, 4),
            (16, 33, 48, 16, 2, 2),
            (16, 64, 152, 16, 1, 2),
            (16, 64, 160, 16, 1, 3),
            // Square maps of MobileNet sizes, either stride.
            (32, 112, 112, 16, 1, 6),
            (64, 112, 112, 16, 2, 12),
            (64, 80, 80, 16, 1, 6),
            (128, 56, 56, 16, 1, 6),
            (128, 56, 56, 16, 2, 6),
            (128, 40, 40, 16, 1, 3),
            (256, 28, 28, 16, 1, 3),
            (256, 28, 28, 512, 2, 6),
            (512, 8, 8, 512, 1, 4),
            (8, 8, 8, 504, 1, 1),
            (8, 8, 8, 512, 1, 2),
            (8, 8, 8, 1008, 1, 2),
            (8, 8, 8, 1016, 1, 3),
            // MobileNet v1 α = 0.25 at 96×96: the first two separable layers.
            (8, 48, 48, 16, 1, 2),
            (16, 48, 48, 32, 2, 2),
        ] {
            let n = need(&separable(c, h, w, f, s), &spec, false).unwrap();
            assert_eq!(n.nps(), nps, "{c}×{h}×{w} → {f}, stride {s}");
        }
    }
}
