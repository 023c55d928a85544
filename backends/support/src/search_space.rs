//! The space a mapping search explores on a target: one genome for every chip — extra units per
//! layer (on top of each layer's greedy minimum; a unit is one core on Loihi 2, one channel group
//! = one NP per row band on the AKD1000, none on Speck) and a placement permutation of every
//! physical position, which decodes by priority ([`Problem::layer_positions`]). Each backend
//! builds its [`SearchSpace`] ([`crate::Backend::search_space`]); the compiler's searches
//! (floorline-guided, evolutionary) move through it.

use nmc_ir::{CoreLoc, Mapping};

/// A point of the mapping search space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Genome {
    /// Extra cores per layer, in topological order (on Loihi 2, extra channel bands).
    pub extra: Vec<u32>,
    /// Extra row bands per layer, in topological order, where the layer can be tiled
    /// spatially (empty or 0: the greedy tiling).
    pub tiles: Vec<u32>,
    /// Physical position index of every logical core, layers in order, then the unused pool.
    pub placement: Vec<usize>,
}

/// The shape of the problem: per layer its greedy core count, how many cores one more unit of
/// `extra` adds and how many units it can take at most, which positions may hold it, and the
/// physical positions.
///
/// Decoding a genome (see [`Problem::layer_positions`]): layers in order each take the first
/// positions of `placement` that are still free and allowed for them. When every position is
/// allowed for every layer (Loihi 2), layer `l` simply takes the next consecutive entries; where
/// positions differ (AKD1000: NP types; Speck: core memories), the placement is a priority list
/// and every permutation decodes to a mapping whose units are all of the right kind.
#[derive(Clone, Debug)]
pub struct Problem {
    /// Greedy (minimum) cores per layer.
    pub min_cores: Vec<u32>,
    /// Units of `extra` a layer can take on top of its minimum (Loihi 2: channels minus greedy
    /// cores, as a layer never gets more cores than channels).
    pub max_extra: Vec<u32>,
    /// Cores one unit of `extra` adds (empty: 1 for every layer; AKD1000: a convolution's row
    /// bands, as one more channel group takes one more NP per band).
    pub step: Vec<u32>,
    /// `allowed[l][p]`: whether position `p` can hold layer `l` (empty: every position can).
    pub allowed: Vec<Vec<bool>>,
    /// Placement of the greedy genome (empty: positions in id order).
    pub base: Vec<usize>,
    /// Greedy (row bands, column bands) per layer (empty: `(1, 1)`, untiled); `min_cores` is
    /// then the channel bands times both, and one unit of `extra` adds a channel band to every
    /// tile position.
    pub spatial: Vec<(u32, u32)>,
    /// Row bands a layer can take on top of its greedy tiling (empty: none).
    pub max_tiles: Vec<u32>,
    /// Every physical core position, indexed by position id.
    pub positions: Vec<CoreLoc>,
}

impl Problem {
    /// A problem in which every position can hold every layer and one extra is one core.
    pub fn uniform(min_cores: Vec<u32>, channels: Vec<u32>, positions: Vec<CoreLoc>) -> Self {
        let max_extra = min_cores
            .iter()
            .zip(&channels)
            .map(|(&m, &c)| c.max(1).saturating_sub(m))
            .collect();
        Problem {
            min_cores,
            max_extra,
            step: Vec::new(),
            allowed: Vec::new(),
            base: Vec::new(),
            spatial: Vec::new(),
            max_tiles: Vec::new(),
            positions,
        }
    }

    /// Cores one unit of `extra` adds to layer `l`.
    pub fn step(&self, l: usize) -> u32 {
        self.step.get(l).copied().unwrap_or(1).max(1)
    }

    /// Extra row bands layer `l` takes in genome `g`.
    pub fn tiles(&self, g: &Genome, l: usize) -> u32 {
        let max = self.max_tiles.get(l).copied().unwrap_or(0);
        g.tiles.get(l).copied().unwrap_or(0).min(max)
    }

    /// Cores layer `l` takes in genome `g`.
    pub fn cores(&self, g: &Genome, l: usize) -> usize {
        let e = g.extra[l].min(self.max_extra[l]);
        let (rows, cols) = self.spatial.get(l).copied().unwrap_or((1, 1));
        let bands = self.min_cores[l] / (rows * cols).max(1);
        (u64::from(bands + e * self.step(l)) * u64::from(rows + self.tiles(g, l)) * u64::from(cols))
            as usize
    }

    /// Cores all layers take in genome `g`.
    pub fn used(&self, g: &Genome) -> usize {
        (0..self.min_cores.len()).map(|l| self.cores(g, l)).sum()
    }

    /// Whether position `p` may hold layer `l`.
    pub fn allows(&self, l: usize, p: usize) -> bool {
        self.allowed
            .get(l)
            .is_none_or(|a| a.get(p).copied().unwrap_or(false))
    }

    /// The positions each layer takes (see the type's docs), or `None` when some layer finds
    /// too few free positions it may use.
    pub fn layer_positions(&self, g: &Genome) -> Option<Vec<Vec<usize>>> {
        let mut free = vec![true; self.positions.len()];
        let mut out = Vec::with_capacity(self.min_cores.len());
        for l in 0..self.min_cores.len() {
            let want = self.cores(g, l);
            let mut mine = Vec::with_capacity(want);
            for &p in &g.placement {
                if mine.len() == want {
                    break;
                }
                if *free.get(p)? && self.allows(l, p) {
                    free[p] = false;
                    mine.push(p);
                }
            }
            if mine.len() < want {
                return None;
            }
            out.push(mine);
        }
        Some(out)
    }

    /// The greedy genome: no extra cores, the base placement.
    pub fn greedy(&self) -> Genome {
        let placement = if self.base.is_empty() {
            (0..self.positions.len()).collect()
        } else {
            self.base.clone()
        };
        Genome {
            extra: vec![0; self.min_cores.len()],
            tiles: vec![0; self.min_cores.len()],
            placement,
        }
    }

    /// Re-derives the placement after core counts changed from `old` to `new_extra`: each layer
    /// keeps its cores; surplus returns to the pool; missing cores come from the pool, the
    /// allowed ones nearest (Manhattan distance on the mesh, chips side by side) to the layer's
    /// first core. A layer that finds too few keeps what it can get (its extra shrinks).
    pub fn repair(&self, old: &Genome, new_extra: Vec<u32>) -> Option<Genome> {
        self.repair_tiles(old, new_extra, old.tiles.clone())
    }

    /// [`Problem::repair`] with new row band counts too; a layer that finds too few cores gives
    /// up row bands first, then channel bands.
    pub fn repair_tiles(
        &self,
        old: &Genome,
        new_extra: Vec<u32>,
        new_tiles: Vec<u32>,
    ) -> Option<Genome> {
        let layers = self.min_cores.len();
        let mut per_layer = self.layer_positions(old)?;
        let mut taken = vec![false; self.positions.len()];
        per_layer.iter().flatten().for_each(|&p| taken[p] = true);
        let mut pool: Vec<usize> = old
            .placement
            .iter()
            .copied()
            .filter(|&p| !taken[p])
            .collect();
        let mut target = Genome {
            extra: new_extra,
            tiles: new_tiles,
            placement: Vec::new(),
        };
        for l in 0..layers {
            let want = self.cores(&target, l);
            while per_layer[l].len() > want {
                pool.push(per_layer[l].pop().expect("non-empty"));
            }
        }
        let dist = |a: CoreLoc, b: CoreLoc| -> u64 {
            let (ax, bx) = (
                u64::from(a.chip) * 1000 + u64::from(a.x),
                u64::from(b.chip) * 1000 + u64::from(b.x),
            );
            ax.abs_diff(bx) + u64::from(a.y.abs_diff(b.y))
        };
        for l in 0..layers {
            let want = self.cores(&target, l);
            while per_layer[l].len() < want {
                let anchor = per_layer[l].first().map(|&p| self.positions[p]);
                let pick = (0..pool.len())
                    .filter(|&i| self.allows(l, pool[i]))
                    .min_by_key(|&i| {
                        let d = anchor.map_or(0, |a| dist(a, self.positions[pool[i]]));
                        (d, pool[i])
                    });
                match pick {
                    Some(i) => per_layer[l].push(pool.swap_remove(i)),
                    None => break,
                }
            }
            // Keep the genome honest about what the layer got.
            let got = per_layer[l].len();
            if got < want {
                while self.cores(&target, l) > got {
                    if target.tiles.get(l).is_some_and(|&t| t > 0) {
                        target.tiles[l] = self.tiles(&target, l).saturating_sub(1);
                    } else if target.extra[l] > 0 {
                        target.extra[l] = target.extra[l].min(self.max_extra[l]).saturating_sub(1);
                    } else {
                        break;
                    }
                }
                while per_layer[l].len() > self.cores(&target, l) {
                    pool.push(per_layer[l].pop().expect("non-empty"));
                }
            }
        }
        let mut placement: Vec<usize> = per_layer.into_iter().flatten().collect();
        pool.sort_unstable();
        placement.extend(pool);
        let g = Genome {
            extra: target.extra,
            tiles: target.tiles,
            placement,
        };
        self.layer_positions(&g).map(|_| g)
    }
}

/// A decoder from genomes to mappings (`None`: the genome does not map).
pub type Decoder<'g> = Box<dyn Fn(&Genome) -> Option<Mapping> + Sync + 'g>;

/// What a mapping search explores on a target ([`crate::Backend::search_space`]).
pub struct SearchSpace<'g> {
    /// The genome's shape and constraints.
    pub problem: Problem,
    /// Name of the layer behind each problem index (as the floorline analysis names layers).
    pub names: Vec<String>,
    /// The default mapping, which the searches start from and are measured against.
    pub greedy: Mapping,
    /// Genome → mapping.
    pub decode: Decoder<'g>,
    /// Why the search cannot change the latency on this target, where that is so.
    pub note: Option<String>,
}
