//! The constant pool: weights and biases live here, not in the graph, so the graph stays small and
//! printable. Tensors whose density is below [`SPARSE_DENSITY_THRESHOLD`] are stored as sorted
//! (flat index, value) lists; the storage choice never changes a value.

use std::fmt;

/// Below this fraction of non-zeros a constant is stored sparse.
pub const SPARSE_DENSITY_THRESHOLD: f64 = 0.5;

/// Index of a constant in the [`ConstPool`]; prints as `@c3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConstId(pub u32);

impl fmt::Display for ConstId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@c{}", self.0)
    }
}

/// Element storage, dense or sparse by density.
#[derive(Clone, Debug, PartialEq)]
pub enum Storage<T> {
    /// All elements, row-major.
    Dense(Vec<T>),
    /// Non-zero elements only: strictly increasing flat indices and their values.
    Sparse {
        /// Number of elements of the full tensor.
        len: usize,
        /// Flat row-major index of each non-zero.
        indices: Vec<u32>,
        /// The non-zero values.
        values: Vec<T>,
    },
}

/// Element values of a constant.
#[derive(Clone, Debug, PartialEq)]
pub enum ConstData {
    /// Real values (imported weights).
    F32(Storage<f32>),
    /// Integer values (quantised weights and biases).
    I32(Storage<i32>),
    /// Values not available: a constant parsed from the text format, which prints only a summary.
    Opaque {
        /// Content hash as printed.
        hash: u64,
        /// Number of non-zeros as printed.
        nnz: usize,
        /// Element type as printed.
        dtype: crate::DType,
    },
}

/// One constant tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Constant {
    /// Shape of the tensor (weights keep all their axes, e.g. `[out, in]` or `[co, ci/g, kh, kw]`).
    pub shape: Vec<usize>,
    /// The values.
    pub data: ConstData,
}

trait Zero: Copy + PartialEq {
    const ZERO: Self;
}
impl Zero for f32 {
    const ZERO: f32 = 0.0;
}
impl Zero for i32 {
    const ZERO: i32 = 0;
}

fn store<T: Zero>(values: Vec<T>) -> Storage<T> {
    let nnz = values.iter().filter(|v| **v != T::ZERO).count();
    if values.is_empty() || (nnz as f64) / (values.len() as f64) >= SPARSE_DENSITY_THRESHOLD {
        return Storage::Dense(values);
    }
    let mut indices = Vec::with_capacity(nnz);
    let mut vals = Vec::with_capacity(nnz);
    for (i, v) in values.iter().enumerate() {
        if *v != T::ZERO {
            indices.push(i as u32);
            vals.push(*v);
        }
    }
    Storage::Sparse {
        len: values.len(),
        indices,
        values: vals,
    }
}

fn to_dense<T: Zero>(s: &Storage<T>) -> Vec<T> {
    match s {
        Storage::Dense(v) => v.clone(),
        Storage::Sparse {
            len,
            indices,
            values,
        } => {
            let mut out = vec![T::ZERO; *len];
            for (i, v) in indices.iter().zip(values) {
                out[*i as usize] = *v;
            }
            out
        }
    }
}

fn nnz<T: Zero + Sync>(s: &Storage<T>) -> usize {
    use rayon::prelude::*;
    match s {
        Storage::Dense(v) if v.len() >= 1 << 20 => v.par_iter().filter(|x| **x != T::ZERO).count(),
        Storage::Dense(v) => v.iter().filter(|x| **x != T::ZERO).count(),
        Storage::Sparse { values, .. } => values.len(),
    }
}

/// FNV-1a, 64 bit: a stable content hash for printing constants (not for security).
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A fast stable 64-bit content hash of a byte string, for large inputs such as model files:
/// FNV-1a's multiply over 8-byte little-endian words, with an xor-shift per word so that high
/// bits reach the low ones. Not cryptographic.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    for &b in chunks.remainder() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Constant {
    /// A float constant, stored sparse when it is sparse enough.
    pub fn f32(shape: Vec<usize>, values: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        Constant {
            shape,
            data: ConstData::F32(store(values)),
        }
    }

    /// An integer constant, stored sparse when it is sparse enough.
    pub fn i32(shape: Vec<usize>, values: Vec<i32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        Constant {
            shape,
            data: ConstData::I32(store(values)),
        }
    }

    /// Element type.
    pub fn dtype(&self) -> crate::DType {
        match &self.data {
            ConstData::F32(_) => crate::DType::F32,
            ConstData::I32(_) => crate::DType::I32,
            ConstData::Opaque { dtype, .. } => *dtype,
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Number of non-zero elements.
    pub fn nnz(&self) -> usize {
        match &self.data {
            ConstData::F32(s) => nnz(s),
            ConstData::I32(s) => nnz(s),
            ConstData::Opaque { nnz, .. } => *nnz,
        }
    }

    /// Whether the storage is sparse.
    pub fn is_sparse(&self) -> bool {
        matches!(
            &self.data,
            ConstData::F32(Storage::Sparse { .. }) | ConstData::I32(Storage::Sparse { .. })
        )
    }

    /// All values as floats (integers converted), or `None` for an opaque constant.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        match &self.data {
            ConstData::F32(s) => Some(to_dense(s)),
            ConstData::I32(s) => Some(to_dense(s).into_iter().map(|v| v as f32).collect()),
            ConstData::Opaque { .. } => None,
        }
    }

    /// Non-zero elements per row of a `[rows, cols]` view of the values (`None` if the
    /// constant has no values or a different size), read from the storage as it is: no dense
    /// copy, so sizing a layer of 100 M weights costs one pass and no allocation but the counts.
    pub fn row_nnz(&self, rows: usize, cols: usize) -> Option<Vec<u64>> {
        fn count<T: Zero + Sync>(s: &Storage<T>, rows: usize, cols: usize) -> Option<Vec<u64>> {
            use rayon::prelude::*;
            let mut out = vec![0u64; rows];
            match s {
                Storage::Dense(v) => {
                    if v.len() != rows.checked_mul(cols)? {
                        return None;
                    }
                    let nnz = |(o, row): (&mut u64, &[T])| {
                        *o = row.iter().filter(|x| **x != T::ZERO).count() as u64;
                    };
                    if v.len() >= 1 << 20 {
                        out.par_iter_mut()
                            .zip(v.par_chunks_exact(cols.max(1)))
                            .for_each(nnz);
                    } else {
                        out.iter_mut()
                            .zip(v.chunks_exact(cols.max(1)))
                            .for_each(nnz);
                    }
                }
                Storage::Sparse {
                    len,
                    indices,
                    values,
                } => {
                    if *len != rows.checked_mul(cols)? || cols == 0 {
                        return None;
                    }
                    for (&i, v) in indices.iter().zip(values) {
                        if *v != T::ZERO {
                            *out.get_mut(i as usize / cols)? += 1;
                        }
                    }
                }
            }
            Some(out)
        }
        match &self.data {
            ConstData::F32(s) => count(s, rows, cols),
            ConstData::I32(s) => count(s, rows, cols),
            ConstData::Opaque { .. } => None,
        }
    }

    /// The stored float values: every element when dense, the non-zeros when sparse. Enough for
    /// reductions that ignore zeros (maximum magnitude, sum of squares) without densifying.
    pub fn stored_f32(&self) -> Option<&[f32]> {
        match &self.data {
            ConstData::F32(Storage::Dense(v)) => Some(v),
            ConstData::F32(Storage::Sparse { values, .. }) => Some(values),
            _ => None,
        }
    }

    /// Maps a float constant element-wise to integers with `f`, which must map 0 to 0, keeping
    /// sparse storage sparse (only the non-zeros are visited). `None` unless this is a float
    /// constant.
    /// Large constants are mapped on all threads (`f` is pure, so the result is the same).
    pub fn map_f32_to_i32(&self, f: impl Fn(f32) -> i32 + Sync) -> Option<Constant> {
        use rayon::prelude::*;
        debug_assert_eq!(f(0.0), 0);
        let data = match &self.data {
            ConstData::F32(Storage::Dense(v)) if v.len() >= 1 << 16 => {
                store(v.par_iter().map(|x| f(*x)).collect())
            }
            ConstData::F32(Storage::Dense(v)) => store(v.iter().map(|x| f(*x)).collect()),
            ConstData::F32(Storage::Sparse {
                len,
                indices,
                values,
            }) => {
                let mut idx = Vec::with_capacity(values.len());
                let mut vals = Vec::with_capacity(values.len());
                for (i, v) in indices.iter().zip(values) {
                    let q = f(*v);
                    if q != 0 {
                        idx.push(*i);
                        vals.push(q);
                    }
                }
                Storage::Sparse {
                    len: *len,
                    indices: idx,
                    values: vals,
                }
            }
            _ => return None,
        };
        Some(Constant {
            shape: self.shape.clone(),
            data: ConstData::I32(data),
        })
    }

    /// All values as integers, or `None` unless this is an integer constant.
    pub fn to_i32(&self) -> Option<Vec<i32>> {
        match &self.data {
            ConstData::I32(s) => Some(to_dense(s)),
            _ => None,
        }
    }

    /// Content hash over dtype, shape and dense values (FNV-1a over bytes); independent of the
    /// storage choice.
    pub fn hash(&self) -> u64 {
        if let ConstData::Opaque { hash, .. } = &self.data {
            return *hash;
        }
        let mut bytes = Vec::new();
        bytes.extend_from_slice(self.dtype().name().as_bytes());
        for d in &self.shape {
            bytes.extend_from_slice(&(*d as u64).to_le_bytes());
        }
        match &self.data {
            ConstData::F32(s) => {
                for v in to_dense(s) {
                    // Normalise -0.0 so that equal values hash equal.
                    let v = if v == 0.0 { 0.0f32 } else { v };
                    bytes.extend_from_slice(&v.to_bits().to_le_bytes());
                }
            }
            ConstData::I32(s) => {
                for v in to_dense(s) {
                    bytes.extend_from_slice(&v.to_le_bytes());
                }
            }
            ConstData::Opaque { .. } => unreachable!(),
        }
        fnv1a(bytes)
    }
}

/// Arena of constants addressed by [`ConstId`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConstPool {
    /// Shared, so that passes which keep a weight as it is (most of them, for most weights)
    /// reference it instead of copying it: a graph and the graphs derived from it hold one copy
    /// of the model's weights.
    items: Vec<std::sync::Arc<Constant>>,
}

impl ConstPool {
    /// Adds a constant and returns its id.
    pub fn add(&mut self, c: Constant) -> ConstId {
        self.add_shared(std::sync::Arc::new(c))
    }

    /// Adds a constant another pool holds too (no copy).
    pub fn add_shared(&mut self, c: std::sync::Arc<Constant>) -> ConstId {
        self.items.push(c);
        ConstId(self.items.len() as u32 - 1)
    }

    /// The constant with this id.
    ///
    /// Panics on an id from another pool: that is a compiler bug, not a user error.
    pub fn get(&self, id: ConstId) -> &Constant {
        &self.items[id.0 as usize]
    }

    /// The constant with this id as a shared handle, to add to another pool without copying.
    /// Panics on an id from another pool, as [`ConstPool::get`] does.
    pub fn get_shared(&self, id: ConstId) -> std::sync::Arc<Constant> {
        self.items[id.0 as usize].clone()
    }

    /// Moves the constant with this id out, leaving an empty one in its place (for passes that
    /// consume a graph). Panics on an id from another pool, as [`ConstPool::get`] does.
    pub fn take(&mut self, id: ConstId) -> std::sync::Arc<Constant> {
        std::mem::replace(
            &mut self.items[id.0 as usize],
            std::sync::Arc::new(Constant::f32(vec![0], Vec::new())),
        )
    }

    /// The constant with this id, if the id is valid.
    pub fn try_get(&self, id: ConstId) -> Option<&Constant> {
        self.items.get(id.0 as usize).map(|c| &**c)
    }

    /// Number of constants.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Iterates over (id, constant).
    pub fn iter(&self) -> impl Iterator<Item = (ConstId, &Constant)> {
        self.items
            .iter()
            .enumerate()
            .map(|(i, c)| (ConstId(i as u32), &**c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_nnz_counts_dense_and_sparse_storage_alike() {
        // 3 × 4; the sparse one (2 of 12 non-zero) is stored as (index, value) lists.
        let dense = Constant::f32(
            vec![3, 4],
            vec![1.0, 0.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 5.0, 0.0, 7.0, 6.0],
        );
        assert!(!dense.is_sparse());
        assert_eq!(dense.row_nnz(3, 4), Some(vec![3, 1, 3]));
        let mut v = vec![0i32; 12];
        v[5] = 7;
        v[11] = -1;
        let sparse = Constant::i32(vec![3, 4], v);
        assert!(sparse.is_sparse());
        assert_eq!(sparse.row_nnz(3, 4), Some(vec![0, 1, 1]));
        assert_eq!(sparse.row_nnz(2, 6), Some(vec![1, 1]));
        assert_eq!(dense.row_nnz(5, 4), None);
        assert_eq!(sparse.row_nnz(4, 4), None);
    }

    #[test]
    fn sparse_storage_round_trips_and_hash_ignores_storage() {
        let vals = vec![0.0, 0.0, 1.5, 0.0, 0.0, 0.0, -2.0, 0.0];
        let c = Constant::f32(vec![2, 4], vals.clone());
        assert!(c.is_sparse());
        assert_eq!(c.nnz(), 2);
        assert_eq!(c.to_f32().unwrap(), vals);
        let dense = Constant {
            shape: vec![2, 4],
            data: ConstData::F32(Storage::Dense(vals)),
        };
        assert_eq!(c.hash(), dense.hash());
    }
}
