//! DVS-style input events `(x, y, t, p)` (the structured form specksim and samna use, docs/chips.md
//! §2.6) binned into timesteps: Speck's event input, and the spike frames a Loihi 2 spiking
//! network takes from an event file.
//!
//! Binning ([`Steps`]): by default, with `t0`/`t1` the first and last timestamps, an event at `t`
//! belongs to step `⌊(t − t0) · T / (t1 − t0 + 1)⌋`, so the stream's time span is cut into `T`
//! equal bins; with a fixed `dt` (`nmc run --dt`), step `⌊(t − t_start) / dt⌋`, so every file
//! of a data set gets the same time per step. Events stay in sensor coordinates, polarity
//! first (`[2, h, w]`): Speck's DVS layer (`nmc_speck::dvs`) decides where they go. Events at the same
//! place in the same bin add up: a pixel may send several events in one step.

/// One sensor event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DvsEvent {
    /// Column.
    pub x: u32,
    /// Row.
    pub y: u32,
    /// Timestamp (any unit for span binning; the unit of `--dt`, µs in specksim's format, for
    /// fixed bins).
    pub t: u64,
    /// Polarity (0 = OFF, 1 = ON in samna's convention; nmc maps it to channel `p`).
    pub p: u32,
}

/// Per timestep, the `(flat index, count)` pairs, sorted by index.
pub type Binned = Vec<Vec<(u32, u32)>>;

/// How a stream's time is cut into timesteps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Steps {
    /// The stream's own span, first to last event, cut into this many equal bins.
    Span(u32),
    /// Bins of `dt` time units (µs in specksim's format) from `t_start` (default: the first
    /// event's time): an event at `t` is in step `⌊(t − t_start) / dt⌋`. `timesteps` bins when
    /// given (later events are dropped), else as many as reach the last event:
    /// `⌈(t_last − t_start + 1) / dt⌉`. Events before `t_start` are dropped.
    Fixed {
        /// Time units per step (≥ 1).
        dt: u64,
        /// Start of step 0.
        t_start: Option<u64>,
        /// Steps (`None`: to the last event).
        timesteps: Option<u32>,
    },
}

/// Events left out of the bins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Events before `t_start`.
    pub before: usize,
    /// Events after the last bin.
    pub after: usize,
}

/// Bins sensor events into steps over the sensor's event space `[2, h, w]` (the polarity `p`,
/// 0 or 1, first): an event's index is `(p·h + y)·w + x` (see the module docs and [`Steps`]).
/// More than `max_steps` steps is an error that says what to give instead.
pub fn bin(
    events: &[DvsEvent],
    [h, w]: [u32; 2],
    steps: Steps,
    max_steps: u32,
) -> Result<(Binned, Dropped), String> {
    for (i, e) in events.iter().enumerate() {
        if e.x >= w || e.y >= h {
            return Err(format!(
                "event {i} at x {} y {} is outside the {w}×{h} input",
                e.x, e.y
            ));
        }
        if e.p > 1 {
            return Err(format!("event {i} has polarity {} (expected 0 or 1)", e.p));
        }
    }
    let first = events.iter().map(|e| e.t).min();
    let last = events.iter().map(|e| e.t).max();
    let mut dropped = Dropped::default();
    // Step of each event (None: dropped), and the step count.
    let (t, step_of): (u32, Box<dyn Fn(u64) -> Option<usize>>) = match steps {
        Steps::Span(t) => {
            let t = t.max(1);
            let (Some(t0), Some(t1)) = (first, last) else {
                return Ok((vec![Vec::new(); t as usize], dropped));
            };
            let span = u128::from(t1 - t0) + 1;
            (
                t,
                Box::new(move |e| Some((u128::from(e - t0) * u128::from(t) / span) as usize)),
            )
        }
        Steps::Fixed {
            dt,
            t_start,
            timesteps,
        } => {
            if dt == 0 {
                return Err("--dt must be at least 1 time unit per step".into());
            }
            let t0 = t_start.or(first).unwrap_or(0);
            let t = match timesteps {
                Some(t) => t.max(1),
                None => {
                    let reach = last.filter(|l| *l >= t0).map_or(1, |l| (l - t0) / dt + 1);
                    if reach > u64::from(max_steps) {
                        return Err(format!(
                            "--dt {dt} from {t0} to the last event at {} makes {reach} timesteps, more than {max_steps}; give a larger --dt, or --timesteps to drop the later events",
                            last.unwrap_or(0)
                        ));
                    }
                    reach as u32
                }
            };
            let n = u64::from(t);
            (
                t,
                Box::new(move |e| {
                    let k = e.checked_sub(t0)? / dt;
                    (k < n).then_some(k as usize)
                }),
            )
        }
    };
    let mut bins: Vec<std::collections::BTreeMap<u32, u32>> = vec![Default::default(); t as usize];
    let t0 = match steps {
        Steps::Fixed { t_start, .. } => t_start.or(first).unwrap_or(0),
        Steps::Span(_) => 0,
    };
    for e in events {
        let Some(k) = step_of(e.t) else {
            if e.t < t0 {
                dropped.before += 1;
            } else {
                dropped.after += 1;
            }
            continue;
        };
        let idx = (e.p * h + e.y) * w + e.x;
        let n = bins[k].entry(idx).or_insert(0);
        *n = n.saturating_add(1);
    }
    Ok((
        bins.into_iter().map(|m| m.into_iter().collect()).collect(),
        dropped,
    ))
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

    fn ev(x: u32, y: u32, t: u64, p: u32) -> DvsEvent {
        DvsEvent { x, y, t, p }
    }

    #[test]
    fn bins_split_the_span_evenly_with_polarity_as_channel() {
        let events = [
            ev(0, 0, 100, 1),
            ev(1, 0, 149, 0),
            ev(1, 0, 150, 0),
            ev(1, 0, 199, 0),
        ];
        let (b, d) = bin(&events, [1, 2], Steps::Span(2), 100).unwrap();
        // [2, 1, 2]: OFF at index x, ON at 2 + x.
        assert_eq!(b, vec![vec![(1, 1), (2, 1)], vec![(1, 2)]]);
        assert_eq!(d, Dropped::default());
        assert!(bin(&[ev(5, 0, 0, 0)], [1, 2], Steps::Span(4), 100)
            .unwrap_err()
            .contains("outside"));
        assert!(bin(&[ev(0, 0, 0, 2)], [1, 2], Steps::Span(4), 100)
            .unwrap_err()
            .contains("polarity 2"));
        assert_eq!(
            bin(&[], [1, 1], Steps::Span(3), 100).unwrap().0,
            vec![vec![]; 3]
        );
    }

    #[test]
    fn fixed_dt_bins_from_the_start_and_drops_what_falls_outside() {
        let events = [
            ev(0, 0, 1000, 0),
            ev(0, 0, 1999, 0),
            ev(1, 0, 2000, 1),
            ev(1, 0, 4500, 0),
            ev(0, 0, 500, 1),
        ];
        let fixed = |t_start, timesteps| Steps::Fixed {
            dt: 1000,
            t_start,
            timesteps,
        };
        // From the first event (500): bins [500, 1500), [1500, 2500), …; 4500 is in bin 4.
        let (b, d) = bin(&events, [1, 2], fixed(None, None), 100).unwrap();
        assert_eq!(
            b,
            vec![
                vec![(0, 1), (2, 1)],
                vec![(0, 1), (3, 1)],
                vec![],
                vec![],
                vec![(1, 1)]
            ]
        );
        assert_eq!(d, Dropped::default());
        // From 1000: the event at 500 is before the start; 4500 is in bin 3.
        let (b, d) = bin(&events, [1, 2], fixed(Some(1000), None), 100).unwrap();
        assert_eq!(b.len(), 4);
        assert_eq!(b[0], vec![(0, 2)]);
        assert_eq!(b[1], vec![(3, 1)]);
        assert_eq!(b[3], vec![(1, 1)]);
        assert_eq!((d.before, d.after), (1, 0));
        // Two steps given: 4500 falls after the last bin.
        let (b, d) = bin(&events, [1, 2], fixed(Some(1000), Some(2)), 100).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!((d.before, d.after), (1, 1));
        // A span exactly one dt long still needs two bins for its last event.
        let (b, _) = bin(
            &[ev(0, 0, 0, 0), ev(0, 0, 10, 0)],
            [1, 1],
            {
                Steps::Fixed {
                    dt: 10,
                    t_start: None,
                    timesteps: None,
                }
            },
            100,
        )
        .unwrap();
        assert_eq!(b, vec![vec![(0, 1)], vec![(0, 1)]]);
        // Too many steps and dt 0 say what to do.
        let e = bin(
            &events,
            [1, 2],
            Steps::Fixed {
                dt: 1,
                t_start: None,
                timesteps: None,
            },
            100,
        )
        .unwrap_err();
        assert!(e.contains("larger --dt"), "{e}");
        let e = bin(
            &events,
            [1, 2],
            Steps::Fixed {
                dt: 0,
                t_start: None,
                timesteps: None,
            },
            100,
        )
        .unwrap_err();
        assert!(e.contains("--dt must be at least 1"), "{e}");
    }
}
