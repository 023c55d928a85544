//! Resource limits on what a model may ask for, checked before anything is allocated (see
//! docs/limits.md). A user with a legitimately larger model raises them with the environment
//! variable `NMC_MAX_ELEMENTS` (elements per value; the whole graph may hold twice that).

use std::sync::OnceLock;

/// Elements one value (a tensor of the graph, per sample) may have by default: 2^28, i.e. 1 GiB of
/// `f32` — ten times the largest activation of a 224×224 VGG-19.
pub const DEFAULT_MAX_ELEMENTS: usize = 1 << 28;

/// The per-value limit in force: `NMC_MAX_ELEMENTS` if set to a positive integer, else
/// [`DEFAULT_MAX_ELEMENTS`].
pub fn max_elements() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var("NMC_MAX_ELEMENTS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&v| v > 0)
            .unwrap_or(DEFAULT_MAX_ELEMENTS)
    })
}

/// Largest rank of a value: ONNX models use at most 6 or so; the limit keeps per-axis work
/// (strides, headers of `.npy` outputs) trivially bounded.
pub const MAX_RANK: usize = 32;

/// Elements all values of one graph may hold together: twice the per-value limit.
pub fn max_total_elements() -> usize {
    max_elements().saturating_mul(2)
}

/// The element count of `shape`, or an error naming the limit when it exceeds
/// [`max_elements`] (or overflows) or its rank exceeds [`MAX_RANK`].
pub fn check_elements(shape: &[usize]) -> Result<usize, String> {
    if shape.len() > MAX_RANK {
        return Err(format!(
            "its result has rank {}, more than the limit of {MAX_RANK}",
            shape.len()
        ));
    }
    let limit = max_elements();
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= limit)
        .ok_or_else(|| {
            format!(
                "its result {} has more than {limit} elements, the limit per value (raise it with NMC_MAX_ELEMENTS)",
                shape_text(shape)
            )
        })
}

/// A shape for a message, shortened when long: a hostile model's rank must not make the error
/// itself huge (`[1, 1, 1, 1, …, 1, 4] (rank 100001)`).
pub fn shape_text<T: std::fmt::Debug>(shape: &[T]) -> String {
    const SHOWN: usize = 8;
    if shape.len() <= SHOWN {
        return format!("{shape:?}");
    }
    let head: Vec<String> = shape[..SHOWN - 2]
        .iter()
        .map(|d| format!("{d:?}"))
        .collect();
    let tail: Vec<String> = shape[shape.len() - 2..]
        .iter()
        .map(|d| format!("{d:?}"))
        .collect();
    format!(
        "[{}, …, {}] (rank {})",
        head.join(", "),
        tail.join(", "),
        shape.len()
    )
}
