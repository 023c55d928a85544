//! Lowering: analysed layers + NP mapping → [`Artifact`], converting the IR's conventions to the
//! vendor's (Conv2D kernels flipped, InputConv2D kernels as given, column-major flatten before a
//! dense layer, thresholds).

use crate::artifact::*;
use crate::layers::{AkError, AkLayer, Analysis, LayerKind, PoolSpec, Src};
use crate::map::{NpMapping, UnitType};
use crate::spec::{ChipSpec, NpType};
use nmc_ir::Graph;

/// Why a graph cannot be lowered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LowerError {
    /// The graph breaks an AKD1000 rule, or does not fit.
    #[error(transparent)]
    Map(#[from] AkError),
    /// The mapping given cannot run on the chip (wrong NP count, type or numbering).
    #[error("the mapping cannot run on the akd1000: {0}")]
    Mapping(String),
    /// Lowering produced an artifact that does not validate (a bug in this crate).
    #[error("lowering produced an invalid artifact (internal error): {0}")]
    Internal(String),
}

/// Flat index of IR element `(c, h, w)` in Akida's column-major flatten: `h + H·w + H·W·c`.
pub fn column_major_index(shape: &[usize], c: usize, h: usize, w: usize) -> usize {
    h + shape[1] * w + shape[1] * shape[2] * c
}

/// Conv weights `[co, ci, kh, kw]` with each kernel rotated by 180°.
pub fn flip_kernels(w: &[i32], kh: usize, kw: usize) -> Vec<i32> {
    let per = kh * kw;
    let mut out = vec![0; w.len()];
    for (base, chunk) in w.chunks(per.max(1)).enumerate() {
        for y in 0..kh {
            for x in 0..kw {
                out[base * per + (kh - 1 - y) * kw + (kw - 1 - x)] = chunk[y * kw + x];
            }
        }
    }
    out
}

/// Dense weights `[out, in]` with columns moved from the IR's row-major `(c, h, w)` order to
/// Akida's column-major order (identity for a `[n]` input).
pub fn to_column_major(w: &[i32], in_shape: &[usize]) -> Vec<i32> {
    if in_shape.len() != 3 {
        return w.to_vec();
    }
    let n: usize = in_shape.iter().product();
    let (ch, hh, ww) = (in_shape[0], in_shape[1], in_shape[2]);
    let mut out = vec![0; w.len()];
    for (o, row) in w.chunks(n.max(1)).enumerate() {
        for c in 0..ch {
            for h in 0..hh {
                for x in 0..ww {
                    out[o * n + column_major_index(in_shape, c, h, x)] = row[(c * hh + h) * ww + x];
                }
            }
        }
    }
    out
}

fn u32s(v: &[usize]) -> Vec<u32> {
    v.iter().map(|&d| d as u32).collect()
}

fn unit_msg(t: UnitType) -> UnitTypeMsg {
    match t {
        UnitType::Hrc => UnitTypeMsg::Hrc,
        UnitType::Np(NpType::Cnp1) => UnitTypeMsg::Cnp1,
        UnitType::Np(NpType::Cnp2) => UnitTypeMsg::Cnp2,
        UnitType::Np(NpType::Fnp2) => UnitTypeMsg::Fnp2,
        UnitType::Np(NpType::Fnp3) => UnitTypeMsg::Fnp3,
    }
}

fn layer_msg(l: &AkLayer, slices: &[crate::map::Slice]) -> Result<LayerMsg, LowerError> {
    let (kind, weights) = match l.kind {
        LayerKind::Dense => (
            LayerKindMsg::Dense,
            to_column_major(&l.weights, &l.in_shape),
        ),
        k => {
            let g = l
                .geom
                .as_ref()
                .ok_or_else(|| LowerError::Internal(format!("{}: no geometry", l.name)))?;
            // Each kind in akida's orientation: InputConvolutional is a cross-correlation (the
            // IR's), Convolutional a true convolution (flipped).
            if k == LayerKind::InputConv2D {
                (LayerKindMsg::InputConv2d, l.weights.clone())
            } else if k == LayerKind::SeparableConv2D {
                // Pointwise 1×1 kernels: no orientation.
                (LayerKindMsg::SeparableConv2d, l.weights.clone())
            } else {
                (
                    LayerKindMsg::Conv2d,
                    flip_kernels(&l.weights, g.kernel[0], g.kernel[1]),
                )
            }
        }
    };
    let threshold = l
        .threshold
        .iter()
        .map(|t| i32::try_from(*t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| LowerError::Internal(format!("{}: threshold beyond 32 bits", l.name)))?;
    let act_step = l
        .act_step
        .iter()
        .map(|t| u32::try_from(*t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| LowerError::Internal(format!("{}: step beyond 32 bits", l.name)))?;
    let (pool, pool_size, pool_stride) = match l.pool {
        None => (PoolMsg::None, vec![], vec![]),
        Some(PoolSpec::Max { size, stride }) => (PoolMsg::Max, size.to_vec(), stride.to_vec()),
        Some(PoolSpec::GlobalAvg) => (PoolMsg::GlobalAvg, vec![], vec![]),
    };
    let (source_kind, source_index) = match l.src {
        Src::Input(i) => (SourceKind::Input, i as u32),
        Src::Layer(i) => (SourceKind::Layer, i as u32),
    };
    let g = l.geom.as_ref();
    Ok(LayerMsg {
        name: l.name.clone(),
        kind: kind as i32,
        source_kind: source_kind as i32,
        source_index,
        in_shape: u32s(&l.in_shape),
        pre_shape: u32s(&l.pre_shape),
        out_shape: u32s(&l.out_shape),
        kernel: g.map(|g| u32s(&g.kernel)).unwrap_or_default(),
        strides: g.map(|g| u32s(&g.strides)).unwrap_or_default(),
        pads: g.map(|g| u32s(&g.pads)).unwrap_or_default(),
        pool: pool as i32,
        pool_size,
        pool_stride,
        input_bits: l.input_bits,
        weight_bits: l.weight_bits,
        act_bits: l.act_bits.unwrap_or(0),
        weights,
        // SeparableConvolutional is a true convolution (docs/chips.md §3.6): flipped.
        dw_weights: match &l.geom {
            Some(g) if l.kind == LayerKind::SeparableConv2D => {
                flip_kernels(&l.dw_weights, g.kernel[0], g.kernel[1])
            }
            _ => Vec::new(),
        },
        threshold,
        act_step,
        scale: l.scale,
        slices: slices
            .iter()
            .map(|s| SliceMsg {
                unit: s.unit,
                c0: s.c0,
                c1: s.c1,
                r0: s.r0,
                r1: s.r1,
            })
            .collect(),
    })
}

/// Builds the artifact of an analysed and mapped graph.
pub fn build(
    a: &Analysis,
    m: &NpMapping,
    source_hash: u64,
    spec: &ChipSpec,
) -> Result<Artifact, LowerError> {
    let layers = a
        .layers
        .iter()
        .zip(&m.layers)
        .map(|(l, s)| layer_msg(l, s))
        .collect::<Result<Vec<_>, _>>()?;
    let artifact = Artifact {
        // One device: `chips` stays 0 and is not written.
        header: Some(ENVELOPE.header(source_hash)),
        inputs: a
            .inputs
            .iter()
            .map(|i| InputMsg {
                name: i.name.clone(),
                shape: u32s(&i.shape),
                scale: i.scale,
                bits: i.bits,
                // Written only when there is padding, so unpadded inputs encode as before.
                host_pads: if i.host_pads == [0; 4] {
                    Vec::new()
                } else {
                    u32s(&i.host_pads)
                },
            })
            .collect(),
        units: m
            .units
            .iter()
            .map(|u| UnitMsg {
                col: u.col,
                row: u.row,
                id: u.id,
                unit_type: unit_msg(u.ty) as i32,
                pass: u.pass,
            })
            .collect(),
        layers,
        outputs: a
            .outputs
            .iter()
            .map(|o| OutputMsg {
                name: o.name.clone(),
                layer: o.layer as u32,
                shape: u32s(&o.shape),
                scale: o.scale,
            })
            .collect(),
    };
    crate::validate::validate(&artifact, spec).map_err(|e| LowerError::Internal(e.to_string()))?;
    Ok(artifact)
}

/// Lowers a quantised canonical graph: analyse, map, build. A `mapping` given (the IR form
/// [`crate::map::to_ir_mapping`] returns, of [`crate::map::map`] or of a search's
/// [`crate::map::map_explicit`]) is checked and used instead of the default mapper's.
pub fn lower(
    graph: &Graph,
    mapping: Option<&nmc_ir::Mapping>,
    source_hash: u64,
    spec: &ChipSpec,
) -> Result<Artifact, LowerError> {
    let a = crate::layers::analyze(graph, spec)?;
    let m = match mapping {
        None => crate::map::map(&a, spec)?,
        Some(given) => {
            // A layer that cannot map at all is the mapper's error (it names the layer).
            crate::map::plan(&a, spec)?;
            let m = crate::map::map_given(&a, spec, given).map_err(LowerError::Mapping)?;
            if crate::map::to_ir_mapping(&a, &m) != *given {
                return Err(LowerError::Mapping(
                    "its core numbering is not the mapper's (layer order, one unit per slice)"
                        .into(),
                ));
            }
            m
        }
    };
    build(&a, &m, source_hash, spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conventions() {
        // A 3×3 kernel rotated by 180°.
        let w: Vec<i32> = (1..=9).collect();
        assert_eq!(flip_kernels(&w, 3, 3), vec![9, 8, 7, 6, 5, 4, 3, 2, 1]);
        // [c=2, h=2, w=3]: IR (c, h, w) row-major → h + 2·w + 6·c.
        let shape = [2, 2, 3];
        let w: Vec<i32> = (0..12).collect();
        let cm = to_column_major(&w, &shape);
        assert_eq!(cm[column_major_index(&shape, 1, 0, 2)], w[8]);
        assert_eq!(cm[column_major_index(&shape, 0, 1, 0)], w[3]);
        let mut sorted = cm.clone();
        sorted.sort();
        assert_eq!(sorted, w);
        assert_eq!(to_column_major(&w, &[12]), w);
    }
}
