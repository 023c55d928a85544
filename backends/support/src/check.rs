//! Validation helpers for untrusted artifacts, with one set of limits for every backend: after a
//! backend's `validate` built from these succeeds, every allocation an emulator makes is bounded.
//! All arithmetic on untrusted numbers is done in `u64` after each factor is capped, so no check
//! can overflow.

use crate::envelope::{corrupt, ArtifactError};

/// Most values (neurons, outputs, input elements) in one tensor or artifact, each kind counted
/// separately.
pub const MAX_VALUES: u64 = 1 << 24;
/// Most weights in one synapse group or layer (dense shape, zeros included).
pub const MAX_WEIGHTS: u64 = 1 << 26;
/// Most weights in one dense (fully connected) synapse group: its weights, or its non-zeros,
/// are stored in the artifact itself and every table an emulator builds from it is sized by
/// them, so a larger cap costs nothing a file does not hold (VGG-19's first dense layer has
/// 102.8 M weights). Convolutions keep [`MAX_WEIGHTS`]: their kernels are expanded.
pub const MAX_DENSE_GROUP_WEIGHTS: u64 = 1 << 28;
/// Largest kernel, stride, dilation or padding, and largest mesh coordinate.
pub const MAX_WINDOW: u32 = 1 << 10;
/// Most cores, populations, layers, inputs or outputs.
pub const MAX_ITEMS: usize = 1 << 20;
/// Largest tensor rank.
pub const MAX_RANK: usize = 8;

/// Element count of a shape whose dims are all ≥ 1, whose rank is in `ranks` (empty: 1 to
/// [`MAX_RANK`]) and whose count is at most [`MAX_VALUES`].
pub fn numel(shape: &[u32], ranks: &[usize], what: &str) -> Result<u64, ArtifactError> {
    let rank_ok = if ranks.is_empty() {
        (1..=MAX_RANK).contains(&shape.len())
    } else {
        ranks.contains(&shape.len())
    };
    if !rank_ok || shape.contains(&0) {
        return Err(corrupt(format!("{what}: bad shape {shape:?}")));
    }
    let n = shape
        .iter()
        .fold(1u64, |n, &d| n.saturating_mul(u64::from(d)));
    if n > MAX_VALUES {
        return Err(corrupt(format!(
            "{what}: shape {shape:?} has more than {MAX_VALUES} values"
        )));
    }
    Ok(n)
}

/// At most [`MAX_ITEMS`] of each listed kind of item.
pub fn item_counts(counts: &[(&str, usize)]) -> Result<(), ArtifactError> {
    for &(what, n) in counts {
        if n > MAX_ITEMS {
            return Err(corrupt(format!("{n} {what} (at most {MAX_ITEMS})")));
        }
    }
    Ok(())
}

/// Adds `n` to a running total of values, at most [`MAX_VALUES`].
pub fn add_values(total: &mut u64, n: u64, what: &str) -> Result<(), ArtifactError> {
    *total = total.saturating_add(n);
    if *total > MAX_VALUES {
        return Err(corrupt(format!("{what}: exceed {MAX_VALUES} values")));
    }
    Ok(())
}

/// `[n]` values each in `lo..=MAX_WINDOW`.
pub fn window<const N: usize>(v: &[u32], lo: u32, what: &str) -> Result<[u32; N], ArtifactError> {
    let arr: [u32; N] = v
        .try_into()
        .map_err(|_| corrupt(format!("{what}: expected {N} values, found {}", v.len())))?;
    if arr.iter().any(|&x| x < lo || x > MAX_WINDOW) {
        return Err(corrupt(format!(
            "{what}: values {v:?} outside {lo}..={MAX_WINDOW}"
        )));
    }
    Ok(arr)
}

/// Output extent of a window `k` (dilation `dil`) sliding with `stride` over `n` padded by
/// `p0 + p1`, or `None` if it never fits.
pub fn out_extent(n: u32, k: u32, stride: u32, dil: u32, p0: u32, p1: u32) -> Option<u32> {
    let eff = u64::from(dil) * u64::from(k.checked_sub(1)?) + 1;
    let padded = u64::from(n) + u64::from(p0) + u64::from(p1);
    if padded < eff || stride == 0 {
        return None;
    }
    u32::try_from((padded - eff) / u64::from(stride) + 1).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(numel(&[2, 3], &[], "x"), Ok(6));
        assert!(numel(&[2, 3], &[1, 3], "x").is_err());
        assert!(numel(&[0], &[], "x").is_err());
        assert!(numel(&[1 << 13, 1 << 12], &[], "x").is_err());
        assert!(item_counts(&[("cores", MAX_ITEMS + 1)]).is_err());
        assert_eq!(window::<2>(&[3, 3], 1, "k"), Ok([3, 3]));
        assert!(window::<2>(&[0, 3], 1, "k").is_err());
        assert_eq!(out_extent(28, 3, 1, 1, 1, 1), Some(28));
        assert_eq!(out_extent(28, 5, 2, 1, 0, 0), Some(12));
        assert_eq!(out_extent(2, 5, 1, 1, 0, 0), None);
        let mut t = MAX_VALUES;
        assert!(add_values(&mut t, 1, "inputs").is_err());
    }
}

/// Longest name an artifact may carry (ONNX names are short; a bound keeps messages small).
pub const MAX_NAME: usize = 4096;

/// The label of item `index` of a `kind` named `name`, for messages (`input 0 "x"`), after
/// checking the name: at most [`MAX_NAME`] bytes and no control characters, so that nothing read
/// from an artifact can put an escape sequence on the user's terminal (nmc escapes them in ONNX
/// names at import, so its own artifacts never have any).
pub fn named(kind: &str, index: usize, name: &str) -> Result<String, ArtifactError> {
    if name.len() > MAX_NAME {
        return Err(corrupt(format!(
            "{kind} {index}: name of {} bytes (at most {MAX_NAME})",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(corrupt(format!(
            "{kind} {index}: name {:?} has control characters",
            name
        )));
    }
    Ok(format!("{kind} {index} \"{name}\""))
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn names_with_control_characters_or_too_long_are_corrupt() {
        assert_eq!(named("layer", 2, "conv1"), Ok("layer 2 \"conv1\"".into()));
        let e = named("layer", 2, "\u{1b}[31mred").unwrap_err().to_string();
        assert!(
            e.contains("\\u{1b}") && !e.chars().any(char::is_control),
            "{e}"
        );
        assert!(named("input", 0, &"x".repeat(MAX_NAME + 1)).is_err());
    }
}
