//! Dense integer kernels for steps where many inputs of a synapse group change at once.
//!
//! Event-driven delivery costs a few nanoseconds per synapse (an index, a multiply, a
//! read-modify-write of a 64-bit sum, a dirty mark). The kernels here do the same arithmetic with
//! narrow integers the compiler vectorises (`i8`/`i16` weights, `i16` deltas, `i32` sums):
//! - a dense layer's batch that changes few of its inputs adds one weight column per changed
//!   input (`accumulate_columns`, column-major copy);
//! - a batch that changes many (a new camera frame) is one matrix–vector product over the
//!   changed span (`multiply`: SSE2's `pmaddwd` on any x86-64), about 16× cheaper per synapse
//!   than events but visiting every synapse of the span;
//! - a convolution's batch that changes many inputs is one product of the kernels with the
//!   receptive fields of every output position (im2col).
//!
//! **Exactness.** Each event adds `(w·δ) << e` to a neuron's 64-bit wrapping sum. The kernel adds
//! `(Σ w·δ) << e` once per neuron. Shifting left is multiplication by `2^e` modulo 2^64, which
//! distributes over the wrapping sum, so both give the same bits *provided* `Σ w·δ` is computed
//! exactly: the kernel runs only when `max|w| · max|δ| · span < 2^31`, so no `i32` partial sum
//! can overflow, and otherwise the step falls back to events. Counters are charged per event in
//! both cases, by the same function, so the performance report cannot differ either.

/// Which delivery the emulator uses for dense synapse groups. Results and counters are identical
/// for all three (the tests hold them to that); only speed differs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kernels {
    /// Per step and group, the cheaper of the two from the number of changed inputs (default).
    #[default]
    Auto,
    /// Always event by event (the reference the dense kernel is tested against).
    Events,
    /// Always the dense kernel wherever it is exact.
    Dense,
}

/// How many times cheaper a synapse is in the dense kernel than in the event path (measured by
/// `cargo xtask bench emulator`: about 1 ns per synapse event by event, about 0.06 ns in the
/// kernel on one x86-64 core); the crossover is a batch touching 1/16 of the span's synapses.
pub(crate) const DENSE_ADVANTAGE: f64 = 16.0;

/// Rows per parallel task of the dense kernel.
const ROWS_PER_TASK: usize = 64;

/// Multiply–adds below which a kernel call stays on the calling thread (a task costs a few µs).
pub(crate) const PARALLEL_MIN_MACS: usize = 1 << 18;

/// A dense group's weights row-major (`[rows, cols]`), in the narrowest type that holds them.
pub(crate) enum Matrix {
    I8(Vec<i8>),
    I16(Vec<i16>),
}

/// A dense group's row-major copy and what the kernel's exactness bound needs.
pub(crate) struct DenseMatrix {
    pub rows: usize,
    pub cols: usize,
    /// Largest |weight|.
    pub max_abs_w: i64,
    /// Mean non-zero weights per column (event-path synapse visits per event).
    pub mean_col_nnz: f64,
    pub weights: Matrix,
    /// The same weights column-major (`[cols, rows]`), for batches that change few inputs
    /// (dense layers only; `None` for convolutions).
    pub columns: Option<Matrix>,
    /// Changed inputs of the current batch, as deltas (zero elsewhere); `cols` long.
    pub deltas: Vec<i16>,
    /// Per-row sums of the current batch.
    pub sums: Vec<i32>,
}

/// Weight matrices larger than this stay event-driven only (the row-major copy would cost too
/// much memory for what it saves): 64 Mi weights, 64 MiB at 8 bits.
const MAX_DENSE_WEIGHTS: usize = 1 << 26;

impl DenseMatrix {
    /// The row-major copy of `by_row` (non-zero `(col, w)` lists per row), or `None` where the
    /// kernel would not pay: weights too wide for `i16`, a matrix too sparse (under a quarter
    /// non-zero) or too large.
    pub fn new(by_row: &[Vec<(u32, i32)>], cols: usize) -> Option<DenseMatrix> {
        let rows = by_row.len();
        let nnz: usize = by_row.iter().map(Vec::len).sum();
        let size = rows.checked_mul(cols)?;
        if nnz * 4 < size {
            return None;
        }
        let entries = by_row
            .iter()
            .enumerate()
            .flat_map(|(r, row)| row.iter().map(move |&(c, w)| (r * cols + c as usize, w)));
        let mut m = Self::from_entries(rows, cols, entries)?.with_columns();
        m.mean_col_nnz = nnz as f64 / cols.max(1) as f64;
        Some(m)
    }

    /// The row-major matrix of dense `values` (`[rows, cols]`), e.g. a convolution's kernels as
    /// `[out channels, in channels · kh · kw]`; `None` if too large or too wide for `i16`.
    pub fn from_dense(values: &[i32], rows: usize, cols: usize) -> Option<DenseMatrix> {
        if values.len() != rows.checked_mul(cols)? {
            return None;
        }
        Self::from_entries(rows, cols, values.iter().copied().enumerate())
    }

    fn from_entries(
        rows: usize,
        cols: usize,
        entries: impl Iterator<Item = (usize, i32)> + Clone,
    ) -> Option<DenseMatrix> {
        let size = rows.checked_mul(cols)?;
        if size == 0 || size > MAX_DENSE_WEIGHTS {
            return None;
        }
        let max_abs_w = entries
            .clone()
            .map(|(_, w)| i64::from(w).abs())
            .max()
            .unwrap_or(0);
        let weights = if max_abs_w <= i64::from(i8::MAX) {
            let mut m = vec![0i8; size];
            entries.for_each(|(i, w)| m[i] = w as i8);
            Matrix::I8(m)
        } else if max_abs_w <= i64::from(i16::MAX) {
            let mut m = vec![0i16; size];
            entries.for_each(|(i, w)| m[i] = w as i16);
            Matrix::I16(m)
        } else {
            return None;
        };
        Some(DenseMatrix {
            rows,
            cols,
            max_abs_w,
            mean_col_nnz: rows as f64,
            weights,
            columns: None,
            deltas: vec![0; cols],
            sums: vec![0; rows],
        })
    }

    /// Adds the column-major copy.
    fn with_columns(mut self) -> Self {
        let (rows, cols) = (self.rows, self.cols);
        fn transpose<T: Copy + Default>(m: &[T], rows: usize, cols: usize) -> Vec<T> {
            let mut t = vec![T::default(); m.len()];
            for r in 0..rows {
                for c in 0..cols {
                    t[c * rows + r] = m[r * cols + c];
                }
            }
            t
        }
        self.columns = Some(match &self.weights {
            Matrix::I8(m) => Matrix::I8(transpose(m, rows, cols)),
            Matrix::I16(m) => Matrix::I16(transpose(m, rows, cols)),
        });
        self
    }

    /// `sums = Σ_(c, δ) W[:, c] · δ` over the changed inputs `(column, delta)`, one vectorised
    /// multiply–add of a column per input: the kernel for batches that change few of the
    /// group's inputs (the product over the whole span would cost more). The caller checks
    /// [`DenseMatrix::exact`] with the number of inputs.
    pub fn accumulate_columns(&mut self, inputs: impl Iterator<Item = (usize, i16)>) {
        let rows = self.rows;
        self.sums.fill(0);
        let Some(cols) = &self.columns else {
            unreachable!("accumulate_columns on a matrix without columns")
        };
        for (c, d) in inputs {
            match cols {
                Matrix::I8(m) => axpy(&mut self.sums, &m[c * rows..(c + 1) * rows], d),
                Matrix::I16(m) => axpy(&mut self.sums, &m[c * rows..(c + 1) * rows], d),
            }
        }
    }

    /// `Σ_{c ∈ lo..hi} W[r, c] · x[c − lo]`.
    #[inline]
    pub fn row_dot(&self, r: usize, lo: usize, x: &[i16]) -> i32 {
        let at = r * self.cols + lo;
        match &self.weights {
            Matrix::I8(m) => dot(&m[at..at + x.len()], x),
            Matrix::I16(m) => dot(&m[at..at + x.len()], x),
        }
    }

    /// Whether a batch of `events` changed inputs spanning `span` columns is cheaper dense:
    /// the event path visits `events · mean_col_nnz` synapses at a few ns each, the kernel
    /// `rows · span` at a fraction of a ns.
    pub fn pays(&self, events: usize, span: usize) -> bool {
        events as f64 * self.mean_col_nnz * DENSE_ADVANTAGE >= (self.rows * span) as f64
    }

    /// Whether `Σ w·δ` over `span` columns with |δ| ≤ `max_abs_delta` fits `i32` exactly.
    pub fn exact(&self, max_abs_delta: i64, span: usize) -> bool {
        max_abs_delta <= i64::from(i16::MAX)
            && (self.max_abs_w as i128) * (max_abs_delta as i128) * (span as i128) < (1i128 << 31)
    }

    /// `sums[r] = Σ_{c ∈ lo..hi} W[r, c] · deltas[c]` for every row.
    /// Row blocks run in parallel when the product is large (rows are independent, so the
    /// result does not depend on the threads).
    pub fn multiply(&mut self, lo: usize, hi: usize) {
        use rayon::prelude::*;
        let mut sums = std::mem::take(&mut self.sums);
        let d = &self.deltas[lo..hi];
        let block = |(b, s): (usize, &mut [i32])| {
            for (j, v) in s.iter_mut().enumerate() {
                *v = self.row_dot(b * ROWS_PER_TASK + j, lo, d);
            }
        };
        if self.rows * (hi - lo) >= PARALLEL_MIN_MACS && rayon::current_num_threads() > 1 {
            sums.par_chunks_mut(ROWS_PER_TASK)
                .enumerate()
                .for_each(block);
        } else {
            sums.chunks_mut(ROWS_PER_TASK).enumerate().for_each(block);
        }
        self.sums = sums;
    }
}

/// `acc += w · d` in `i32` lanes (vectorised; the caller's bound makes every sum exact).
#[inline]
fn axpy<W: Copy + Into<i32>>(acc: &mut [i32], w: &[W], d: i16) {
    let d = i32::from(d);
    for (a, &x) in acc.iter_mut().zip(w) {
        *a = a.wrapping_add(x.into().wrapping_mul(d));
    }
}

/// `Σ a·b` in `i32`, written so that the compiler vectorises it (independent lanes, no
/// overflow checks: the caller's bound makes every partial sum exact).
#[inline]
fn dot<W: Copy + Into<i32>>(a: &[W], b: &[i16]) -> i32 {
    const LANES: usize = 16;
    let mut acc = [0i32; LANES];
    let (ac, ar) = a.split_at(a.len() - a.len() % LANES);
    let (bc, br) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(LANES).zip(bc.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] = acc[l].wrapping_add(x[l].into().wrapping_mul(i32::from(y[l])));
        }
    }
    let mut s = acc.iter().fold(0i32, |s, &v| s.wrapping_add(v));
    for (&x, &y) in ar.iter().zip(br) {
        s = s.wrapping_add(x.into().wrapping_mul(i32::from(y)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_scalar_on_odd_lengths() {
        let a: Vec<i8> = (0..37).map(|i| (i * 7 % 255 - 127) as i8).collect();
        let b: Vec<i16> = (0..37).map(|i| (i * 13 % 511 - 255) as i16).collect();
        for n in 0..=37 {
            let want: i32 = a[..n]
                .iter()
                .zip(&b[..n])
                .map(|(&x, &y)| i32::from(x) * i32::from(y))
                .sum();
            assert_eq!(dot(&a[..n], &b[..n]), want, "length {n}");
        }
    }

    #[test]
    fn matrix_picks_the_narrowest_type_and_refuses_sparse_or_wide() {
        let rows = vec![vec![(0, 100), (1, -3)], vec![(0, 5), (1, 127)]];
        let m = DenseMatrix::new(&rows, 2).expect("dense enough");
        assert!(matches!(m.weights, Matrix::I8(_)));
        let wide = vec![vec![(0, 300), (1, 1)], vec![(0, 1), (1, 1)]];
        assert!(matches!(
            DenseMatrix::new(&wide, 2).unwrap().weights,
            Matrix::I16(_)
        ));
        let too_wide = vec![vec![(0, 40_000), (1, 1)]];
        assert!(DenseMatrix::new(&too_wide, 2).is_none());
        let sparse = vec![vec![(0, 1)], vec![], vec![], vec![]];
        assert!(DenseMatrix::new(&sparse, 2).is_none());
    }

    #[test]
    fn exactness_bound_is_tight_at_i32() {
        let rows = vec![vec![(0, 127)]];
        let m = DenseMatrix::new(&rows, 1).unwrap();
        // 127 · 16_384 · 1_032 = 2_147_352_576 < 2^31; one more column crosses it.
        assert!(m.exact(16_384, 1_032));
        assert!(!m.exact(16_384, 1_033));
        assert!(!m.exact(40_000, 1));
    }
}
