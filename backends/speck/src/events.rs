//! DVS-style input events `(x, y, t, p)` (the structured form specksim and samna use, docs/chips.md
//! §2.6) binned into timesteps.
//!
//! Binning: with `t0`/`t1` the first and last timestamps, an event at `t` belongs to step
//! `⌊(t − t0) · T / (t1 − t0 + 1)⌋`, so the stream's time span is cut into `T` equal bins. Its
//! channel is its polarity `p` (0 or 1) for a two-channel input, and 0 for a one-channel input
//! (polarities merged, like the DVS layer's `merge`). Events at the same place in the same bin
//! add up: a pixel may send several events in one step.

/// One sensor event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DvsEvent {
    /// Column.
    pub x: u32,
    /// Row.
    pub y: u32,
    /// Timestamp (any unit; only order and span matter).
    pub t: u64,
    /// Polarity (0 = OFF, 1 = ON in samna's convention; nmc maps it to channel `p`).
    pub p: u32,
}

/// Per timestep, the `(flat index into the [c, h, w] map, count)` pairs, sorted by index.
pub type Binned = Vec<Vec<(u32, u32)>>;

/// Bins `events` into `timesteps` steps for an input map `[c, h, w]` (see the module docs).
pub fn bin(events: &[DvsEvent], map: [u32; 3], timesteps: u32) -> Result<Binned, String> {
    let [c, h, w] = map;
    if c > 2 {
        return Err(format!(
            "event input needs a 1- or 2-channel (polarity) input; the model's input map is [{c}, {h}, {w}]"
        ));
    }
    let t = timesteps.max(1);
    let mut steps: Vec<std::collections::BTreeMap<u32, u32>> = vec![Default::default(); t as usize];
    let (Some(t0), Some(t1)) = (
        events.iter().map(|e| e.t).min(),
        events.iter().map(|e| e.t).max(),
    ) else {
        return Ok(vec![Vec::new(); t as usize]);
    };
    let span = u128::from(t1 - t0) + 1;
    for (i, e) in events.iter().enumerate() {
        if e.x >= w || e.y >= h {
            return Err(format!(
                "event {i} at x {} y {} is outside the {w}×{h} input",
                e.x, e.y
            ));
        }
        let ch = if c == 1 {
            0
        } else if e.p < 2 {
            e.p
        } else {
            return Err(format!("event {i} has polarity {} (expected 0 or 1)", e.p));
        };
        let step = (u128::from(e.t - t0) * u128::from(t) / span) as usize;
        let idx = (ch * h + e.y) * w + e.x;
        let n = steps[step].entry(idx).or_insert(0);
        *n = n.saturating_add(1);
    }
    Ok(steps.into_iter().map(|m| m.into_iter().collect()).collect())
}

/// Binned events as dense counts per step (`[step][element]`), for the reference interpreter.
pub fn dense(binned: &Binned, numel: usize) -> Vec<Vec<i64>> {
    binned
        .iter()
        .map(|s| {
            let mut v = vec![0i64; numel];
            for &(i, n) in s {
                if let Some(x) = v.get_mut(i as usize) {
                    *x += i64::from(n);
                }
            }
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_split_the_span_evenly_and_merge_polarities() {
        let ev = |x, y, t, p| DvsEvent { x, y, t, p };
        let events = [
            ev(0, 0, 100, 1),
            ev(1, 0, 149, 0),
            ev(1, 0, 150, 0),
            ev(1, 0, 199, 0),
        ];
        let b = bin(&events, [2, 1, 2], 2).unwrap();
        assert_eq!(b, vec![vec![(1, 1), (2, 1)], vec![(1, 2)]]);
        let merged = bin(&events, [1, 1, 2], 1).unwrap();
        assert_eq!(merged, vec![vec![(0, 1), (1, 3)]]);
        assert!(bin(&[ev(5, 0, 0, 0)], [1, 1, 2], 4)
            .unwrap_err()
            .contains("outside"));
        assert!(bin(&events, [3, 1, 2], 4).unwrap_err().contains("polarity"));
        assert_eq!(bin(&[], [1, 1, 1], 3).unwrap(), vec![vec![]; 3]);
    }
}
