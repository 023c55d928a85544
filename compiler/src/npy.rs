//! `.npy` input and output. Inputs of any common numeric dtype are read as `f32` (regular files
//! within the size limit of [`crate::fsutil::read_file`]); outputs are written as little-endian
//! `f32`, C order, atomically.

use crate::fsutil::{read_file, write_atomic};
use std::path::Path;

pub use nmc_backend::{Array, EventArray};

/// What a `.npy` input holds: samples of a dense tensor, or an event stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Dense values, samples along the first axis.
    Dense(Array),
    /// Events `(x, y, t, p)`.
    Events(EventArray),
}

/// Reads an `.npy` input: a plain numeric array, or a structured one with fields x, y, t, p.
pub fn read_input(path: &Path) -> Result<Input, String> {
    let bytes = read_file(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_input(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses `.npy` bytes as [`Input`].
pub fn parse_input(bytes: &[u8]) -> Result<Input, String> {
    let file = npyz::NpyFile::new(bytes).map_err(|e| format!("not a valid .npy file ({e})"))?;
    let npyz::DType::Record(fields) = file.dtype() else {
        return parse(bytes).map(Input::Dense);
    };
    if file.order() != npyz::Order::C {
        return Err("Fortran-ordered arrays are not supported".into());
    }
    let n = file
        .shape()
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or("array shape overflows")?;
    // Field offsets: numpy packs the fields in order (padding appears as unnamed fields).
    let mut layout = Vec::new();
    let mut offset = 0usize;
    for f in &fields {
        let npyz::DType::Plain(ts) = &f.dtype else {
            return Err(format!("field '{}' is not a plain number", f.name));
        };
        let size = ts
            .num_bytes()
            .ok_or_else(|| format!("field '{}' has no fixed size", f.name))?;
        layout.push((
            f.name.clone(),
            offset,
            size,
            ts.type_char(),
            ts.endianness(),
        ));
        offset += size;
    }
    let record = offset.max(1);
    let data = file.into_inner();
    let n = usize::try_from(n).map_err(|_| "too many events")?;
    if n.checked_mul(record).is_none_or(|b| b > data.len()) {
        return Err(format!(
            "file holds fewer than the {n} events its shape says"
        ));
    }
    let field = |name: &str| -> Result<Vec<u64>, String> {
        let (_, off, size, kind, endian) =
            layout.iter().find(|(n, ..)| n == name).ok_or_else(|| {
                format!(
                    "structured array without field '{name}' (event input needs fields x, y, t, p)"
                )
            })?;
        use npyz::{Endianness, TypeChar};
        if !matches!(kind, TypeChar::Int | TypeChar::Uint) || ![1, 2, 4, 8].contains(size) {
            return Err(format!("field '{name}' must be an integer"));
        }
        (0..n)
            .map(|i| {
                let b = &data[i * record + off..][..*size];
                let mut buf = [0u8; 8];
                let big = matches!(endian, Endianness::Big);
                for (k, byte) in b.iter().enumerate() {
                    buf[if big { size - 1 - k } else { k }] = *byte;
                }
                let raw = u64::from_le_bytes(buf);
                let negative = *kind == TypeChar::Int && (raw >> (size * 8 - 1)) & 1 == 1;
                if negative {
                    Err(format!("event {i} has a negative '{name}'"))
                } else {
                    Ok(raw)
                }
            })
            .collect()
    };
    let small = |name: &str| -> Result<Vec<u32>, String> {
        field(name)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                u32::try_from(v).map_err(|_| format!("event {i}: '{name}' {v} is too large"))
            })
            .collect()
    };
    Ok(Input::Events(EventArray {
        x: small("x")?,
        y: small("y")?,
        t: field("t")?,
        p: small("p")?,
    }))
}

/// Whether the `.npy` file at `path` holds a plain integer (or boolean) array; reads the header
/// only. `false` for anything else, including files that are not `.npy` (reading them reports
/// that).
pub fn is_integer(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    match npyz::NpyFile::new(std::io::BufReader::new(file)).map(|f| f.dtype()) {
        Ok(npyz::DType::Plain(t)) => {
            matches!(t.to_string().as_bytes().get(1), Some(b'i' | b'u' | b'b'))
        }
        _ => false,
    }
}

/// Integer codes as the values they stand for (`code · scale`), so that quantising them with
/// `q` gives the codes back exactly (for codes below 2^16 the float round trip errs by far less
/// than half a unit). An element that is not an integer code in `[q.min, q.max]` is an error
/// naming its position and the range.
pub fn codes_as_values(a: &Array, q: &nmc_ir::QuantParams) -> Result<Array, String> {
    let data = a
        .data
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if c.fract() == 0.0 && c >= q.min as f32 && c <= q.max as f32 {
                Ok(c * q.scale)
            } else {
                Err(format!(
                    "element {i} is {c}, not an input code of the chip ({}..={}); pass values as a float array instead",
                    q.min, q.max
                ))
            }
        })
        .collect::<Result<Vec<f32>, String>>()?;
    Ok(Array {
        shape: a.shape.clone(),
        data,
    })
}

/// Reads an `.npy` file; the message says what is wrong with it.
pub fn read(path: &Path) -> Result<Array, String> {
    let bytes = read_file(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses `.npy` bytes.
pub fn parse(bytes: &[u8]) -> Result<Array, String> {
    let file = npyz::NpyFile::new(bytes).map_err(|e| format!("not a valid .npy file ({e})"))?;
    if file.order() != npyz::Order::C {
        return Err(
            "Fortran-ordered arrays are not supported; save with np.ascontiguousarray".into(),
        );
    }
    let shape: Vec<usize> = file.shape().iter().map(|&d| d as usize).collect();
    let total = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("array shape overflows")?;
    let descr = match file.dtype() {
        npyz::DType::Plain(t) => t.to_string(),
        _ => return Err("structured or record arrays are not supported here".into()),
    };
    let size = descr[2..]
        .parse::<usize>()
        .map_err(|_| format!("unsupported dtype {descr}"))?;
    if total.checked_mul(size).is_none_or(|n| n > bytes.len()) {
        return Err(format!(
            "file holds fewer values than its shape {shape:?} needs"
        ));
    }
    let conv = |e: std::io::Error| format!("cannot decode values ({e})");
    let data: Vec<f32> = match &descr[1..] {
        "f4" => file.into_vec::<f32>().map_err(conv)?,
        "f8" => file
            .into_vec::<f64>()
            .map_err(conv)?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        "i8" => file
            .into_vec::<i64>()
            .map_err(conv)?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        "i4" => file
            .into_vec::<i32>()
            .map_err(conv)?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        "i2" => file
            .into_vec::<i16>()
            .map_err(conv)?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        "i1" => file
            .into_vec::<i8>()
            .map_err(conv)?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        "u1" => file
            .into_vec::<u8>()
            .map_err(conv)?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        "u2" => file
            .into_vec::<u16>()
            .map_err(conv)?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        "b1" => file
            .into_vec::<bool>()
            .map_err(conv)?
            .into_iter()
            .map(|v| v as u8 as f32)
            .collect(),
        _ => {
            return Err(format!(
                "unsupported dtype {descr} (use float32, float64, or an integer type)"
            ))
        }
    };
    if data.len() != total {
        return Err(format!("expected {total} values, found {}", data.len()));
    }
    Ok(Array { shape, data })
}

/// How many samples an array of shape `array` holds of a tensor of shape `sample`: `[N, sample…]`
/// gives `N`, `sample` itself gives one. Leading 1s are ignored on both sides (`[N, 1, 8, 8]` and
/// `[N, 8, 8]` both hold samples of `[1, 8, 8]`); any other difference, a transposed array
/// included, gives `None`.
pub fn sample_count(array: &[usize], sample: &[usize]) -> Option<usize> {
    fn squeeze(s: &[usize]) -> &[usize] {
        &s[s.iter().take_while(|&&d| d == 1).count()..]
    }
    let want = squeeze(sample);
    if let Some((&n, rest)) = array.split_first() {
        if squeeze(rest) == want {
            return Some(n);
        }
    }
    (squeeze(array) == want).then_some(1)
}

/// Checks that `a` (read from `path`) holds samples of the input shape `sample`, as
/// [`sample_count`] says; returns the number of samples (at least one).
pub fn check_samples(path: &Path, a: &Array, sample: &[usize]) -> Result<usize, String> {
    let dims = |s: &[usize]| {
        s.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match sample_count(&a.shape, sample) {
        Some(0) => Err(format!(
            "{}: array of shape {:?} holds no samples",
            path.display(),
            a.shape
        )),
        Some(n) => Ok(n),
        None => Err(format!(
            "{}: array of shape {:?} does not hold samples of the model input shape {:?} (expected [N, {}]; leading 1s may be added or left out)",
            path.display(),
            a.shape,
            sample,
            dims(sample)
        )),
    }
}

/// Checks that `a` holds spike frames of a spiking network's input, `[N, T, …sample]` with
/// `N, T ≥ 1`; returns `N`.
pub fn check_spike_frames(path: &Path, a: &Array, sample: &[usize]) -> Result<usize, String> {
    if a.shape.len() == sample.len() + 2
        && a.shape[2..] == *sample
        && a.shape[0] > 0
        && a.shape[1] > 0
    {
        return Ok(a.shape[0]);
    }
    Err(format!(
        "{}: array of shape {:?} is not spike frames of the model input shape {:?} (a spiking network takes [samples, timesteps, {}])",
        path.display(),
        a.shape,
        sample,
        sample.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
    ))
}

/// Most dimensions an `.npy` file nmc writes may have (numpy's own limit, `NPY_MAXDIMS`, is 64).
pub const MAX_NPY_RANK: usize = 64;

/// Encodes an `f32` array as `.npy` bytes; an array of more than [`MAX_NPY_RANK`] dimensions or
/// whose shape does not match its data is an error.
pub fn try_encode(a: &Array) -> Result<Vec<u8>, String> {
    if a.shape.len() > MAX_NPY_RANK {
        return Err(format!(
            "an array of {} dimensions cannot be written as .npy (numpy reads at most {MAX_NPY_RANK})",
            a.shape.len()
        ));
    }
    let n = a.shape.iter().try_fold(1usize, |x, &d| x.checked_mul(d));
    if n != Some(a.data.len()) {
        return Err(format!(
            "an array of shape {:?} cannot hold {} values",
            a.shape,
            a.data.len()
        ));
    }
    Ok(encode(a))
}

/// Encodes an `f32` array as `.npy` bytes (see [`try_encode`] for arrays from outside).
pub fn encode(a: &Array) -> Vec<u8> {
    use npyz::WriterBuilder;
    let mut out = Vec::new();
    let shape: Vec<u64> = a.shape.iter().map(|&d| d as u64).collect();
    {
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&shape)
            .writer(&mut out)
            .begin_nd()
            .expect("writing to memory cannot fail");
        w.extend(a.data.iter().copied())
            .expect("writing to memory cannot fail");
        w.finish().expect("writing to memory cannot fail");
    }
    out
}

/// Writes an `f32` array atomically (see [`crate::fsutil`] for devices and symbolic links).
pub fn write(path: &Path, a: &Array) -> std::io::Result<()> {
    let bytes =
        try_encode(a).map_err(|m| std::io::Error::new(std::io::ErrorKind::InvalidInput, m))?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_match_the_input_shape_up_to_leading_ones() {
        assert_eq!(sample_count(&[5, 64], &[64]), Some(5));
        assert_eq!(sample_count(&[5, 1, 64], &[64]), Some(5));
        assert_eq!(sample_count(&[64], &[64]), Some(1));
        assert_eq!(sample_count(&[5, 1, 8, 8], &[1, 8, 8]), Some(5));
        assert_eq!(sample_count(&[5, 8, 8], &[1, 8, 8]), Some(5));
        assert_eq!(sample_count(&[1, 8, 8], &[1, 8, 8]), Some(1));
        assert_eq!(sample_count(&[8, 8], &[1, 8, 8]), Some(1));
        assert_eq!(sample_count(&[0, 64], &[64]), Some(0));
        // The right number of values in another shape is not a sample.
        assert_eq!(sample_count(&[5, 8, 8], &[64]), None);
        assert_eq!(sample_count(&[64, 5], &[64]), None);
        assert_eq!(sample_count(&[5, 64, 1], &[64]), None);
        let a = Array {
            shape: vec![3, 8, 8],
            data: vec![0.0; 192],
        };
        let e = check_samples(Path::new("x.npy"), &a, &[64]).unwrap_err();
        assert!(e.contains("x.npy") && e.contains("[3, 8, 8]") && e.contains("[N, 64]"));
    }

    #[test]
    fn arrays_numpy_cannot_read_are_not_written() {
        let deep = Array {
            shape: vec![1; MAX_NPY_RANK + 1],
            data: vec![0.0],
        };
        assert!(try_encode(&deep).unwrap_err().contains("dimensions"));
        let short = Array {
            shape: vec![2, 3],
            data: vec![0.0; 5],
        };
        assert!(try_encode(&short).is_err());
    }
}
