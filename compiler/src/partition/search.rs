//! Mapping searches over one genome for every target: extra units per layer (on top of each
//! layer's greedy minimum; a unit is one core on Loihi 2, one channel group = one NP per row band
//! on the AKD1000, none on Speck) and a placement permutation of every physical position, which
//! decodes by priority ([`Problem::layer_positions`]). `Target::search_space` builds the
//! [`Problem`] and the decoder to a mapping for each chip.
//!
//! - [`floorline_search`]: deterministic local search guided by the floorline model: split the
//!   slowest layers while they are memory- or compute-bound, take cores back from traffic-bound
//!   ones, and stop when the modelled latency per inference no longer improves.
//! - [`evolve`]: the evolutionary mapping of Pierro et al. (docs/papers.md §2.2): a nested, elitist
//!   (1+λ) evolution strategy. Each generation first tries `λ_part` partition offspring (move one
//!   or two cores between a layer and the unused pool, each layer with probability 0.3), then
//!   `λ_place` placement offspring for the current partition (swap, invert or scramble a span
//!   of positions). A repair step keeps every layer's cores where they were when its core count
//!   changes: surplus cores go back to the pool, missing ones are drawn from the pool nearest to
//!   the layer's existing cores (among the positions allowed for it). Fitness is supplied by the caller (nmc uses emulated latency on
//!   calibration inputs); offspring are evaluated in parallel (rayon) but generated from one
//!   seeded stream and compared with ties broken by offspring index, so a seed gives one result.

use crate::synth::Rng;
pub use nmc_backend::{Genome, Problem};
use rayon::prelude::*;

/// Search limits.
#[derive(Clone, Debug)]
pub struct SearchOptions {
    /// Seed of every random choice.
    pub seed: u64,
    /// Budget in fitness evaluations.
    pub evals: usize,
    /// Partition offspring per generation.
    pub lambda_part: usize,
    /// Placement offspring per generation.
    pub lambda_place: usize,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            seed: 0,
            evals: 500,
            lambda_part: 4,
            lambda_place: 4,
            progress: false,
        }
    }
}

/// Tries a mutation makes before giving up on producing a decodable child.
const MUTATION_TRIES: usize = 16;

fn mutate_partition(p: &Problem, g: &Genome, rng: &mut Rng) -> Genome {
    let mut extra = g.extra.clone();
    let mut tiles = g.tiles.clone();
    tiles.resize(extra.len(), 0);
    let mut free = p.positions.len().saturating_sub(p.used(g)) as i64;
    for l in 0..extra.len() {
        if rng.unit() >= 0.3 {
            continue;
        }
        let step = 1 + (rng.next_u64() % 2) as i64;
        let room = i64::from(p.max_extra[l]) - i64::from(extra[l]);
        let per = i64::from(p.step(l));
        if rng.unit() < 0.5 {
            let add = step.min(free / per).min(room.max(0));
            extra[l] += add as u32;
            free -= add * per;
        } else {
            let take = step.min(i64::from(extra[l]));
            extra[l] -= take as u32;
            free += take * per;
        }
    }
    // Spatially tiled layers also move by row bands (drawn only where a layer can tile, so
    // other targets' searches are unchanged).
    for l in 0..tiles.len() {
        let max = p.max_tiles.get(l).copied().unwrap_or(0);
        if max == 0 || rng.unit() >= 0.3 {
            continue;
        }
        let before = Genome {
            extra: extra.clone(),
            tiles: tiles.clone(),
            placement: Vec::new(),
        };
        let old = tiles[l];
        if rng.unit() < 0.5 {
            tiles[l] = (old + 1 + (rng.next_u64() % 2) as u32).min(max);
        } else {
            tiles[l] = old.saturating_sub(1 + (rng.next_u64() % 2) as u32);
        }
        let after = Genome {
            extra: extra.clone(),
            tiles: tiles.clone(),
            placement: Vec::new(),
        };
        let grow = p.cores(&after, l) as i64 - p.cores(&before, l) as i64;
        if grow > free {
            tiles[l] = old;
        } else {
            free -= grow;
        }
    }
    p.repair_tiles(g, extra, tiles).unwrap_or_else(|| g.clone())
}

fn mutate_placement(p: &Problem, g: &Genome, rng: &mut Rng) -> Genome {
    for _ in 0..MUTATION_TRIES {
        let child = mutate_placement_once(p, g, rng);
        if p.allowed.is_empty() || p.layer_positions(&child).is_some() {
            return child;
        }
    }
    g.clone()
}

fn mutate_placement_once(problem: &Problem, g: &Genome, rng: &mut Rng) -> Genome {
    let mut p = g.placement.clone();
    let n = p.len();
    if n < 2 {
        return g.clone();
    }
    let used = problem.used(g).max(2).min(n);
    let k = ((0.3 * used as f64).ceil() as usize).clamp(2, n);
    let start = (rng.next_u64() % (n - k + 1) as u64) as usize;
    match rng.next_u64() % 3 {
        0 => {
            // Swap a used core with any position (possibly an unused one).
            let a = (rng.next_u64() % used as u64) as usize;
            let b = (rng.next_u64() % n as u64) as usize;
            p.swap(a, b);
        }
        1 => p[start..start + k].reverse(),
        _ => {
            for i in (1..k).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                p.swap(start + i, start + j);
            }
        }
    }
    Genome {
        extra: g.extra.clone(),
        tiles: g.tiles.clone(),
        placement: p,
    }
}

/// Result of a search.
#[derive(Clone, Debug)]
pub struct SearchResult {
    /// The best genome found.
    pub best: Genome,
    /// Its fitness (lower is better).
    pub fitness: f64,
    /// The greedy genome's fitness.
    pub greedy_fitness: f64,
    /// Fitness evaluations spent.
    pub evals: usize,
}

fn progress(opts: &SearchOptions, len: usize, what: &str) -> Option<indicatif::ProgressBar> {
    if !opts.progress {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} evals, {elapsed}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    Some(bar)
}

/// The nested (1+λ) evolution strategy; `fitness` returns `None` for a genome that does not
/// map (it is then never selected). Starts from `start` (greedy, or another partitioner's
/// result).
pub fn evolve(
    problem: &Problem,
    start: Genome,
    opts: &SearchOptions,
    fitness: &(dyn Fn(&Genome) -> Option<f64> + Sync),
) -> SearchResult {
    let mut rng = Rng::new(opts.seed ^ 0x6e6d_6365_766f_6c76);
    let greedy_fitness = fitness(&problem.greedy()).unwrap_or(f64::INFINITY);
    let mut best = start;
    let mut best_fit = fitness(&best).unwrap_or(f64::INFINITY);
    let mut evals = 2;
    let bar = progress(opts, opts.evals, "evolve");
    // A child equal to its parent (a mutation that changed nothing) has the parent's fitness.
    let pick = |children: &[Genome], parent: &Genome, parent_fit: f64| -> Option<(usize, f64)> {
        let fits: Vec<Option<f64>> = children
            .par_iter()
            .map(|c| {
                if c == parent {
                    Some(parent_fit)
                } else {
                    fitness(c)
                }
            })
            .collect();
        fits.iter()
            .enumerate()
            .filter_map(|(i, f)| f.map(|f| (i, f)))
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
    };
    // Without a choice of core counts (Speck), every generation is a placement generation.
    let partition_free =
        problem.max_extra.iter().any(|&m| m > 0) || problem.max_tiles.iter().any(|&m| m > 0);
    let lambda_part = if partition_free {
        opts.lambda_part.max(1)
    } else {
        0
    };
    while evals + lambda_part.max(opts.lambda_place.max(1)) <= opts.evals {
        let kids: Vec<Genome> = (0..lambda_part)
            .map(|_| mutate_partition(problem, &best, &mut rng))
            .collect();
        evals += kids.len();
        if let Some((i, f)) = pick(&kids, &best, best_fit) {
            if f <= best_fit {
                best = kids[i].clone();
                best_fit = f;
            }
        }
        if evals + opts.lambda_place.max(1) > opts.evals {
            break;
        }
        let kids: Vec<Genome> = (0..opts.lambda_place.max(1))
            .map(|_| mutate_placement(problem, &best, &mut rng))
            .collect();
        evals += kids.len();
        if let Some((i, f)) = pick(&kids, &best, best_fit) {
            if f <= best_fit {
                best = kids[i].clone();
                best_fit = f;
            }
        }
        if let Some(b) = &bar {
            b.set_position(evals as u64);
            b.set_message(format!(
                "evolve: best {best_fit:.0} ns (greedy {greedy_fitness:.0})"
            ));
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    SearchResult {
        best,
        fitness: best_fit,
        greedy_fitness,
        evals,
    }
}

/// What the floorline model says about a genome: the objective (modelled latency per
/// inference), and the layers (index in topological order) from slowest to fastest with the
/// bound of each one's slowest core.
pub type FloorlineVerdict = (f64, Vec<(usize, crate::cost::Bound)>);

/// The floorline-informed partitioner (see the module docs). Layers keep compact, in-order
/// placement (consecutive cores are mesh neighbours, which keeps hop-weighted traffic low).
pub fn floorline_search(
    problem: &Problem,
    max_evals: usize,
    verdict: &dyn Fn(&Genome) -> Option<FloorlineVerdict>,
) -> SearchResult {
    let mut best = problem.greedy();
    let Some(mut cur) = verdict(&best) else {
        return SearchResult {
            best,
            fitness: f64::INFINITY,
            greedy_fitness: f64::INFINITY,
            evals: 1,
        };
    };
    let greedy_fitness = cur.0;
    let mut evals = 1;
    while evals < max_evals {
        let used = problem.used(&best);
        let free = problem.positions.len().saturating_sub(used) as u32;
        // (extra channel bands, extra row bands) per layer.
        let mut candidates: Vec<(Vec<u32>, Vec<u32>)> = Vec::new();
        let mut tiles = best.tiles.clone();
        tiles.resize(best.extra.len(), 0);
        // Work on the two slowest layers: split a memory- or compute-bound one (one more core,
        // or half again as many; where the layer tiles spatially, also one more row band or
        // half again as many); give cores back from a traffic-bound one.
        for &(l, bound) in cur.1.iter().take(2) {
            let k = problem.cores(&best, l) as u32;
            let per = problem.step(l);
            if bound == crate::cost::Bound::Traffic {
                if best.extra[l] > 0 {
                    let mut e = best.extra.clone();
                    e[l] -= 1;
                    candidates.push((e, tiles.clone()));
                }
                if tiles[l] > 0 {
                    let mut t = tiles.clone();
                    t[l] -= 1;
                    candidates.push((best.extra.clone(), t));
                }
            } else {
                for add in [1, k.div_ceil(2).div_ceil(per)] {
                    let add = add
                        .min(free / per)
                        .min(problem.max_extra[l].saturating_sub(best.extra[l]));
                    if add > 0 {
                        let mut e = best.extra.clone();
                        e[l] += add;
                        candidates.push((e, tiles.clone()));
                    }
                }
                let max = problem.max_tiles.get(l).copied().unwrap_or(0);
                let (rows, _) = problem.spatial.get(l).copied().unwrap_or((1, 1));
                for add in [1, (rows + tiles[l]).div_ceil(2)] {
                    let mut t = tiles.clone();
                    t[l] = (t[l] + add).min(max);
                    let g = Genome {
                        extra: best.extra.clone(),
                        tiles: t.clone(),
                        placement: Vec::new(),
                    };
                    if t[l] > tiles[l] && problem.used(&g) <= problem.positions.len() {
                        candidates.push((best.extra.clone(), t));
                    }
                }
            }
        }
        candidates.dedup();
        let mut step: Option<(Genome, FloorlineVerdict)> = None;
        for (e, t) in candidates {
            if evals >= max_evals {
                break;
            }
            let g = Genome {
                extra: e,
                tiles: t,
                placement: problem.greedy().placement,
            };
            evals += 1;
            if let Some(v) = verdict(&g) {
                if v.0 < step.as_ref().map_or(cur.0, |s| s.1 .0) {
                    step = Some((g, v));
                }
            }
        }
        match step {
            Some((g, v)) => {
                best = g;
                cur = v;
            }
            None => break,
        }
    }
    SearchResult {
        best,
        fitness: cur.0,
        greedy_fitness,
        evals,
    }
}
