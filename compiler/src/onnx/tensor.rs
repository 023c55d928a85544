//! Host tensors: ONNX `TensorProto`s decoded into plain `f32`/`i64` vectors with their full ONNX
//! shape (batch axis included), plus the index helpers that constant folding is built from.
//!
//! Everything here assumes hostile input: element counts use checked arithmetic and are capped at
//! [`nmc_ir::limits::max_elements`], every data field length is compared with the declared shape, and external
//! data is read only from files inside the model's folder, with bounds checks on offset and length.

use nmc_ir::limits::shape_text;
use onnx_protobuf::tensor_proto::{DataLocation, DataType};
use onnx_protobuf::TensorProto;
use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

/// Largest tensor (in elements) the importer materialises; larger ones are rejected, which keeps
/// a hostile `ConstantOfShape` or dims product from exhausting memory.
pub(crate) fn max_elements() -> usize {
    nmc_ir::limits::max_elements()
}

/// Element values, widened: floats of every width become `f32`, integers and booleans `i64`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Data {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A constant tensor known at import time, with its full ONNX shape.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Data,
    /// The ONNX element type the values came from (integers keep it: the zero point of a
    /// QuantizeLinear decides the quantisation range, a Cast its target).
    pub elem: DataType,
}

impl HostTensor {
    /// A float tensor; `values.len()` must equal the shape's element count.
    pub fn f32(shape: Vec<usize>, values: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        HostTensor {
            shape,
            data: Data::F32(values),
            elem: DataType::FLOAT,
        }
    }

    /// An int64 tensor.
    pub fn i64(shape: Vec<usize>, values: Vec<i64>) -> Self {
        Self::int(shape, values, DataType::INT64)
    }

    /// An integer tensor of element type `elem`.
    pub fn int(shape: Vec<usize>, values: Vec<i64>, elem: DataType) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        HostTensor {
            shape,
            data: Data::I64(values),
            elem,
        }
    }

    pub fn numel(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    pub fn is_float(&self) -> bool {
        matches!(self.data, Data::F32(_))
    }

    /// All values as floats.
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::I64(v) => v.iter().map(|x| *x as f32).collect(),
        }
    }

    /// The values of an integer tensor (shapes, axes, indices); `None` for floats.
    pub fn ints(&self) -> Option<&[i64]> {
        match &self.data {
            Data::I64(v) => Some(v),
            Data::F32(_) => None,
        }
    }

    /// The single value of a one-element tensor, as a float.
    pub fn scalar_f32(&self) -> Option<f32> {
        (self.numel() == 1).then(|| self.to_f32()[0])
    }

    /// A tensor of shape `shape` whose element `i` is element `src[i]` of `self` (same type).
    /// Every structural fold (gather, slice, transpose, broadcast) is expressed this way.
    pub fn select(&self, shape: Vec<usize>, src: &[usize]) -> HostTensor {
        let data = match &self.data {
            Data::F32(v) => Data::F32(src.iter().map(|&i| v[i]).collect()),
            Data::I64(v) => Data::I64(src.iter().map(|&i| v[i]).collect()),
        };
        HostTensor {
            shape,
            data,
            elem: self.elem,
        }
    }

    /// The same data with another shape of equal element count.
    pub fn reshaped(&self, shape: Vec<usize>) -> HostTensor {
        debug_assert_eq!(shape.iter().product::<usize>(), self.numel());
        HostTensor {
            shape,
            data: self.data.clone(),
            elem: self.elem,
        }
    }
}

/// Checked element count of a shape, at most [`nmc_ir::limits::max_elements`]. Zero-sized axes do not excuse
/// the others: the product of the non-zero dims must be within the limit too, so that strides
/// and partial products of any accepted shape never overflow.
pub(crate) fn checked_numel(shape: &[usize]) -> Option<usize> {
    if shape.len() > nmc_ir::limits::MAX_RANK {
        return None;
    }
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)))
        .filter(|&n| n <= max_elements())?;
    Some(shape.iter().product())
}

/// ONNX dims (signed) to a shape, rejecting negative dims and oversized tensors.
pub(crate) fn dims_to_shape(dims: &[i64]) -> Result<Vec<usize>, String> {
    if dims.len() > nmc_ir::limits::MAX_RANK {
        return Err(format!(
            "rank {} is more than the limit of {}",
            dims.len(),
            nmc_ir::limits::MAX_RANK
        ));
    }
    let mut shape = Vec::with_capacity(dims.len());
    for &d in dims {
        let d = usize::try_from(d).map_err(|_| format!("negative dimension {d} in {dims:?}"))?;
        shape.push(d);
    }
    if checked_numel(&shape).is_none() {
        return Err(format!(
            "shape {} has more than {} elements (the limit per tensor; raise it with NMC_MAX_ELEMENTS)",
            shape_text(dims),
            max_elements()
        ));
    }
    Ok(shape)
}

/// Row-major strides.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1].saturating_mul(shape[i + 1]);
    }
    s
}

/// For every element of a tensor of shape `out` (row-major), `f(multi_index)`.
/// Callers check `out`'s element count before calling.
pub(crate) fn index_map(out: &[usize], mut f: impl FnMut(&[usize]) -> usize) -> Vec<usize> {
    let n: usize = out.iter().product();
    let mut idx = vec![0usize; out.len()];
    let mut res = Vec::with_capacity(n);
    for _ in 0..n {
        res.push(f(&idx));
        for d in (0..out.len()).rev() {
            idx[d] += 1;
            if idx[d] < out[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    res
}

/// Numpy broadcast of two shapes, or `None` when they are incompatible.
pub(crate) fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| {
        if i + s.len() >= r {
            s[i + s.len() - r]
        } else {
            1
        }
    };
    (0..r)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// Source offsets that broadcast a tensor of shape `from` to shape `to` (which must be a valid
/// broadcast target of `from`).
pub(crate) fn broadcast_src(from: &[usize], to: &[usize]) -> Vec<usize> {
    let st = strides(from);
    let lead = to.len() - from.len();
    index_map(to, |idx| {
        (0..from.len())
            .map(|d| {
                if from[d] == 1 {
                    0
                } else {
                    idx[lead + d] * st[d]
                }
            })
            .sum()
    })
}

/// Why a tensor could not be decoded; the caller attaches the node or tensor name.
#[derive(Debug)]
pub(crate) enum TensorError {
    /// Malformed tensor (bad dims, wrong data length, unsupported element type).
    Invalid(String),
    /// External data could not be read safely.
    External(String),
}

/// Reads external data files, confined to the model's folder, and records every file read.
pub(crate) struct Loader {
    base_dir: Option<PathBuf>,
    /// Every external-data file read (for dep-info).
    pub files: BTreeSet<PathBuf>,
}

impl Loader {
    pub fn new(base_dir: Option<&Path>) -> Self {
        Loader {
            base_dir: base_dir.map(Path::to_path_buf),
            files: BTreeSet::new(),
        }
    }

    /// The `len` bytes at `offset` (or to the end of the file when absent) of the file named by
    /// the tensor's `location`, which must be a relative path that stays inside the base folder.
    fn read(&mut self, t: &TensorProto, expected: usize) -> Result<Vec<u8>, TensorError> {
        let ext = |m: String| TensorError::External(m);
        let mut location = None;
        let mut offset = 0u64;
        let mut length = None;
        for kv in &t.external_data {
            let num = |v: &str| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| ext(format!("{} \"{v}\" is not a byte count", kv.key)))
            };
            match kv.key.as_str() {
                "location" => location = Some(kv.value.as_str()),
                "offset" => offset = num(&kv.value)?,
                "length" => length = Some(num(&kv.value)?),
                _ => {}
            }
        }
        let location = location.ok_or_else(|| ext("no location given".into()))?;
        let rel = Path::new(location);
        let confined = !location.is_empty()
            && rel
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !confined {
            return Err(ext(format!(
                "location \"{location}\" must be a relative path inside the model's folder"
            )));
        }
        let base = self.base_dir.clone().ok_or_else(|| {
            ext("the model was given as bytes without a folder for its external data".into())
        })?;
        let path = base.join(rel);
        // Symbolic links could still lead outside: compare canonical paths.
        let canon = path
            .canonicalize()
            .map_err(|e| ext(format!("cannot open \"{}\": {e}", path.display())))?;
        let canon_base = base
            .canonicalize()
            .map_err(|e| ext(format!("cannot open folder \"{}\": {e}", base.display())))?;
        if !canon.starts_with(&canon_base) {
            return Err(ext(format!(
                "location \"{location}\" resolves outside the model's folder"
            )));
        }
        // A regular file only (a FIFO would block the open), within the file size limit.
        let (mut file, size) = crate::fsutil::open_regular(&canon)
            .map_err(|e| ext(format!("cannot open \"{}\": {e}", path.display())))?;
        let limit = crate::fsutil::max_file_bytes().map_err(|e| ext(e.to_string()))?;
        if size > limit {
            return Err(ext(format!(
                "\"{}\" has {}, more than nmc's limit of {}; set {} to raise it",
                path.display(),
                crate::fsutil::human_bytes(size),
                crate::fsutil::human_bytes(limit),
                crate::fsutil::MAX_FILE_BYTES_VAR
            )));
        }
        let length = length.unwrap_or(size.saturating_sub(offset));
        offset
            .checked_add(length)
            .filter(|&e| e <= size)
            .ok_or_else(|| {
                ext(format!(
                    "offset {offset} + length {length} is beyond the end of \"{}\" ({size} bytes)",
                    path.display()
                ))
            })?;
        if length != expected as u64 {
            return Err(ext(format!(
                "length {length} does not match the {expected} bytes the tensor's shape needs"
            )));
        }
        let mut buf = vec![0u8; expected];
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut buf))
            .map_err(|e| ext(format!("cannot read \"{}\": {e}", path.display())))?;
        self.files.insert(path);
        Ok(buf)
    }
}

/// Size in bytes of one element in `raw_data`, for the element types the importer reads.
fn elem_size(dt: DataType) -> Option<usize> {
    use DataType::*;
    Some(match dt {
        FLOAT | INT32 | UINT32 => 4,
        DOUBLE | INT64 | UINT64 => 8,
        FLOAT16 | BFLOAT16 | INT16 | UINT16 => 2,
        INT8 | UINT8 | BOOL => 1,
        _ => return None,
    })
}

/// IEEE half precision to single precision.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: value = m · 2^-24.
            let v = m as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// Decodes one element from its little-endian bytes.
fn decode_raw(dt: DataType, b: &[u8]) -> Result<Data, TensorError> {
    use DataType::*;
    let size = elem_size(dt).unwrap_or(1);
    let chunks = b.chunks_exact(size);
    let arr2 = |c: &[u8]| [c[0], c[1]];
    let arr4 = |c: &[u8]| [c[0], c[1], c[2], c[3]];
    let arr8 = |c: &[u8]| [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]];
    Ok(match dt {
        FLOAT => Data::F32(chunks.map(|c| f32::from_le_bytes(arr4(c))).collect()),
        DOUBLE => Data::F32(chunks.map(|c| f64::from_le_bytes(arr8(c)) as f32).collect()),
        FLOAT16 => Data::F32(
            chunks
                .map(|c| f16_to_f32(u16::from_le_bytes(arr2(c))))
                .collect(),
        ),
        BFLOAT16 => Data::F32(
            chunks
                .map(|c| f32::from_bits((u16::from_le_bytes(arr2(c)) as u32) << 16))
                .collect(),
        ),
        INT8 => Data::I64(b.iter().map(|&x| x as i8 as i64).collect()),
        UINT8 => Data::I64(b.iter().map(|&x| x as i64).collect()),
        BOOL => Data::I64(b.iter().map(|&x| (x != 0) as i64).collect()),
        INT16 => Data::I64(chunks.map(|c| i16::from_le_bytes(arr2(c)) as i64).collect()),
        UINT16 => Data::I64(chunks.map(|c| u16::from_le_bytes(arr2(c)) as i64).collect()),
        INT32 => Data::I64(chunks.map(|c| i32::from_le_bytes(arr4(c)) as i64).collect()),
        UINT32 => Data::I64(chunks.map(|c| u32::from_le_bytes(arr4(c)) as i64).collect()),
        INT64 => Data::I64(chunks.map(|c| i64::from_le_bytes(arr8(c))).collect()),
        UINT64 => Data::I64(
            chunks
                .map(|c| i64::try_from(u64::from_le_bytes(arr8(c))))
                .collect::<Result<_, _>>()
                .map_err(|_| TensorError::Invalid("uint64 value does not fit in int64".into()))?,
        ),
        other => {
            return Err(TensorError::Invalid(format!(
                "element type {other:?} is not supported"
            )))
        }
    })
}

/// The ONNX element type of a `data_type` field, if it is one the importer reads.
pub(crate) fn data_type(code: i32) -> Option<DataType> {
    use protobuf::Enum;
    DataType::from_i32(code).filter(|dt| elem_size(*dt).is_some())
}

/// Decodes every initializer that is stored in the model itself, in parallel, emptying its
/// `raw_data` once decoded (the bytes are not needed again, and freeing them as the decode goes
/// keeps the weights in memory about once). External tensors give `None`: they decode through
/// the [`Loader`], which reads files, in the importer.
pub(crate) fn decode_inline_all(
    inits: &mut [TensorProto],
) -> Vec<Option<Result<HostTensor, TensorError>>> {
    use rayon::prelude::*;
    inits
        .par_iter_mut()
        .map(|t| {
            if t.data_location.enum_value() == Ok(DataLocation::EXTERNAL) {
                return None;
            }
            let raw = std::mem::take(&mut t.raw_data);
            let decoded = decode_with(t, &raw, None);
            t.float_data = Vec::new();
            t.double_data = Vec::new();
            t.int32_data = Vec::new();
            t.int64_data = Vec::new();
            t.uint64_data = Vec::new();
            Some(decoded)
        })
        .collect()
}

/// Decodes a `TensorProto` (raw data, typed fields or external data).
pub(crate) fn decode(t: &TensorProto, loader: &mut Loader) -> Result<HostTensor, TensorError> {
    decode_with(t, &t.raw_data, Some(loader))
}

/// [`decode`] with the raw bytes given apart from the proto (they may have been taken out of
/// it); external data needs the loader.
fn decode_with(
    t: &TensorProto,
    raw_data: &[u8],
    loader: Option<&mut Loader>,
) -> Result<HostTensor, TensorError> {
    use DataType::*;
    let inv = |m: String| TensorError::Invalid(m);
    let dt = data_type(t.data_type).ok_or_else(|| {
        inv(format!(
            "element type code {} is not supported",
            t.data_type
        ))
    })?;
    if t.segment.is_some() {
        return Err(inv("segmented tensors are not supported".into()));
    }
    let shape = dims_to_shape(&t.dims).map_err(inv)?;
    let n: usize = shape.iter().product();
    let size = elem_size(dt).unwrap_or(1);
    let bytes = n
        .checked_mul(size)
        .ok_or_else(|| inv(format!("shape {} is too large", shape_text(&t.dims))))?;
    let external = t.data_location.enum_value() == Ok(DataLocation::EXTERNAL);
    let data = if external {
        let loader = loader.ok_or_else(|| inv("external data needs the model's folder".into()))?;
        decode_raw(dt, &loader.read(t, bytes)?)?
    } else if !raw_data.is_empty() {
        if raw_data.len() != bytes {
            return Err(inv(format!(
                "raw data has {} bytes, shape {:?} of {dt:?} needs {bytes}",
                raw_data.len(),
                shape
            )));
        }
        decode_raw(dt, raw_data)?
    } else {
        let (data, len) = match dt {
            FLOAT => (Data::F32(t.float_data.clone()), t.float_data.len()),
            DOUBLE => (
                Data::F32(t.double_data.iter().map(|&x| x as f32).collect()),
                t.double_data.len(),
            ),
            FLOAT16 => (
                Data::F32(t.int32_data.iter().map(|&x| f16_to_f32(x as u16)).collect()),
                t.int32_data.len(),
            ),
            BFLOAT16 => (
                Data::F32(
                    t.int32_data
                        .iter()
                        .map(|&x| f32::from_bits((x as u32 & 0xffff) << 16))
                        .collect(),
                ),
                t.int32_data.len(),
            ),
            INT64 => (Data::I64(t.int64_data.clone()), t.int64_data.len()),
            UINT32 | UINT64 => (
                Data::I64(
                    t.uint64_data
                        .iter()
                        .map(|&x| i64::try_from(x))
                        .collect::<Result<_, _>>()
                        .map_err(|_| inv("uint64 value does not fit in int64".into()))?,
                ),
                t.uint64_data.len(),
            ),
            _ => (
                Data::I64(t.int32_data.iter().map(|&x| x as i64).collect()),
                t.int32_data.len(),
            ),
        };
        if len != n {
            return Err(inv(format!("has {len} values, shape {shape:?} needs {n}")));
        }
        data
    };
    Ok(HostTensor {
        shape,
        data,
        elem: dt,
    })
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn half_precision_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
    }

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast_shape(&[3, 1], &[4]), Some(vec![3, 4]));
        assert_eq!(broadcast_shape(&[3], &[4]), None);
        assert_eq!(broadcast_src(&[2, 1], &[2, 3]), vec![0, 0, 0, 1, 1, 1]);
        assert_eq!(broadcast_src(&[3], &[2, 3]), vec![0, 1, 2, 0, 1, 2]);
    }
}
