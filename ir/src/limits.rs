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

/// Elements all values of one graph may hold together: twice the per-value limit.
pub fn max_total_elements() -> usize {
    max_elements().saturating_mul(2)
}

/// The element count of `shape`, or an error naming the limit when it exceeds
/// [`max_elements`] (or overflows).
pub fn check_elements(shape: &[usize]) -> Result<usize, String> {
    let limit = max_elements();
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= limit)
        .ok_or_else(|| {
            format!(
                "its result {shape:?} has more than {limit} elements, the limit per value (raise it with NMC_MAX_ELEMENTS)"
            )
        })
}
