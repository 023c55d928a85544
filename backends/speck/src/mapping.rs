//! Layer → core assignment: a bipartite matching between the network's layers and the nine cores,
//! where layer `i` may take core `j` when its memory needs fit that core ([`MemoryUse::fits`]).
//!
//! Algorithm: **Edmonds–Karp maximum flow** on the unit-capacity network
//! `source → layer i → core j (if it fits) → sink`, the algorithm sinabs uses
//! (`mapping.py`: `make_flow_graph`, `edmonds`, `recover_mapping`; docs/chips.md §2.2). The flow graph is
//! built in the same order and searched breadth-first in the same edge order as sinabs, so the two
//! should choose the same cores (checked against sinabs' reported assignment of a digits CNN,
//! cores 0, 1, 2 (docs/chips.md §6), not by running sinabs). A maximum flow of value = number of layers is a
//! complete assignment; by the max-flow/min-cut theorem none exists otherwise (Hall's condition
//! fails), so the matching finds an assignment whenever one exists.
//!
//! When there is none, the error is more precise than sinabs' "No valid mapping found": it names
//! every layer that fits no core, with each memory it overflows on the core where it comes
//! closest (needed vs the largest capacity), or — when every layer fits somewhere — the group of
//! layers that compete for too few cores.

use crate::memory::{Memory, MemoryUse};
use crate::spec::CoreSpec;
use std::collections::VecDeque;
use std::fmt;

/// Why no assignment exists.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssignError {
    /// More layers than cores.
    #[error("the network has {layers} layers but speck has {cores} cores (one layer per core)")]
    TooManyLayers {
        /// Layers.
        layers: usize,
        /// Cores.
        cores: usize,
    },
    /// Some layers fit no core at all.
    #[error("{}", show_unplaceable(.0))]
    Unplaceable(Vec<Unplaceable>),
    /// Every layer fits some core, but not all at once.
    #[error(
        "layers {} fit only cores {:?} between them: {} layers for {} cores",
        .layers.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(", "),
        .cores,
        .layers.len(),
        .cores.len()
    )]
    Crowded {
        /// Indices of the layers of a set that violates Hall's condition.
        layers: Vec<usize>,
        /// The cores those layers fit, together.
        cores: Vec<u32>,
    },
}

/// A layer that fits no core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unplaceable {
    /// Layer index (into the needs given to [`assign`]).
    pub layer: usize,
    /// Each memory that no core with enough of the others can hold: (memory, needed, largest
    /// capacity of that memory among all cores).
    pub overflows: Vec<(Memory, u64, u64)>,
}

impl fmt::Display for Unplaceable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .overflows
            .iter()
            .map(|(m, need, cap)| format!("{m} needs {need} entries, the largest core has {cap}"))
            .collect();
        write!(f, "layer {} fits no core: {}", self.layer, parts.join("; "))
    }
}

fn show_unplaceable(v: &[Unplaceable]) -> String {
    v.iter()
        .map(|u| u.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(Clone, Copy, Debug)]
struct Edge {
    to: usize,
    cap: i32,
    flow: i32,
    /// Index of the reverse edge in `graph[to]`.
    rev: usize,
}

fn add_edge(g: &mut [Vec<Edge>], from: usize, to: usize) {
    let (rf, rt) = (g[to].len(), g[from].len());
    g[from].push(Edge {
        to,
        cap: 1,
        flow: 0,
        rev: rf,
    });
    g[to].push(Edge {
        to: from,
        cap: 0,
        flow: 0,
        rev: rt,
    });
}

/// Edmonds–Karp on a unit-capacity graph; returns the flow value. BFS visits edges in insertion
/// order, like sinabs' `edmonds`.
fn max_flow(g: &mut [Vec<Edge>], source: usize, sink: usize) -> usize {
    let mut flow = 0;
    loop {
        let mut pred: Vec<Option<(usize, usize)>> = vec![None; g.len()];
        let mut q = VecDeque::from([source]);
        while let Some(u) = q.pop_front() {
            for (k, e) in g[u].iter().enumerate() {
                if pred[e.to].is_none() && e.to != source && e.cap > e.flow {
                    pred[e.to] = Some((u, k));
                    q.push_back(e.to);
                }
            }
        }
        if pred[sink].is_none() {
            return flow;
        }
        // Unit capacities: the bottleneck of an augmenting path is 1.
        let mut v = sink;
        while let Some((u, k)) = pred[v] {
            g[u][k].flow += 1;
            let r = g[u][k].rev;
            g[v][r].flow -= 1;
            v = u;
        }
        flow += 1;
    }
}

/// The cores each layer fits, in core order.
pub fn candidates(needs: &[MemoryUse], cores: &[CoreSpec]) -> Vec<Vec<u32>> {
    needs
        .iter()
        .map(|u| {
            (0..cores.len() as u32)
                .filter(|&j| u.fits(&cores[j as usize]))
                .collect()
        })
        .collect()
}

/// Assigns each layer (by its memory needs) a distinct core; `result[i]` is layer `i`'s core.
pub fn assign(needs: &[MemoryUse], cores: &[CoreSpec]) -> Result<Vec<u32>, AssignError> {
    let cand = candidates(needs, cores);
    let unplaceable: Vec<Unplaceable> = cand
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_empty())
        .map(|(i, _)| Unplaceable {
            layer: i,
            overflows: overflows(&needs[i], cores),
        })
        .collect();
    if !unplaceable.is_empty() {
        return Err(AssignError::Unplaceable(unplaceable));
    }
    if needs.len() > cores.len() {
        return Err(AssignError::TooManyLayers {
            layers: needs.len(),
            cores: cores.len(),
        });
    }
    // Nodes: 0 = source, 1..=L layers, L+1..=L+C cores, L+C+1 = sink (sinabs' layout).
    let (l, c) = (needs.len(), cores.len());
    let sink = l + c + 1;
    let mut g: Vec<Vec<Edge>> = vec![Vec::new(); sink + 1];
    for i in 0..l {
        add_edge(&mut g, 0, i + 1);
    }
    for (i, targets) in cand.iter().enumerate() {
        for &j in targets {
            add_edge(&mut g, i + 1, l + 1 + j as usize);
        }
    }
    for j in 0..c {
        add_edge(&mut g, l + 1 + j, sink);
    }
    let flow = max_flow(&mut g, 0, sink);
    if flow == l {
        let mut out = vec![0u32; l];
        for (i, o) in out.iter_mut().enumerate() {
            let e = g[i + 1]
                .iter()
                .find(|e| e.flow == 1 && e.to > l)
                .expect("a saturated layer has one matched core");
            *o = (e.to - l - 1) as u32;
        }
        return Ok(out);
    }
    // No complete matching: the layers reachable from the source in the residual graph form a
    // set whose neighbourhood is too small (König / Hall).
    let mut seen = vec![false; g.len()];
    let mut q = VecDeque::from([0usize]);
    seen[0] = true;
    while let Some(u) = q.pop_front() {
        for e in &g[u] {
            if !seen[e.to] && e.cap > e.flow {
                seen[e.to] = true;
                q.push_back(e.to);
            }
        }
    }
    let layers: Vec<usize> = (0..l).filter(|&i| seen[i + 1]).collect();
    let mut cores_of: Vec<u32> = layers.iter().flat_map(|&i| cand[i].clone()).collect();
    cores_of.sort_unstable();
    cores_of.dedup();
    Err(AssignError::Crowded {
        layers,
        cores: cores_of,
    })
}

/// For a layer that fits no core: each memory it overflows on the core(s) where it overflows
/// the fewest memories, with the need and the largest capacity of that memory on any core.
fn overflows(u: &MemoryUse, cores: &[CoreSpec]) -> Vec<(Memory, u64, u64)> {
    let over = |c: &CoreSpec| -> Vec<Memory> {
        Memory::ALL
            .into_iter()
            .filter(|m| m.of(u) > m.capacity(c))
            .collect()
    };
    let fewest = cores.iter().map(|c| over(c).len()).min().unwrap_or(0);
    let mut mems: Vec<Memory> = cores
        .iter()
        .map(over)
        .filter(|o| o.len() == fewest)
        .flatten()
        .collect();
    mems.sort();
    mems.dedup();
    mems.into_iter()
        .map(|m| {
            let cap = cores.iter().map(|c| m.capacity(c)).max().unwrap_or(0);
            (m, m.of(u), cap)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::CORES;

    fn need(kernel: u64, neuron: u64) -> MemoryUse {
        MemoryUse {
            kernel,
            neuron,
            bias: 8,
        }
    }

    #[test]
    fn small_layers_take_the_first_cores_like_sinabs() {
        let needs = [need(128, 512), need(2048, 256), need(1024, 10)];
        assert_eq!(assign(&needs, &CORES), Ok(vec![0, 1, 2]));
    }

    #[test]
    fn big_kernels_go_to_the_big_kernel_cores() {
        // 64 Ki kernel only fits cores 5 and 6; 64 Ki neurons only cores 0..=2.
        let needs = [
            need(64 * 1024, 100),
            need(100, 64 * 1024),
            need(64 * 1024, 100),
        ];
        assert_eq!(assign(&needs, &CORES), Ok(vec![5, 0, 6]));
    }

    #[test]
    fn errors_name_the_memory_and_the_largest_core() {
        let needs = [need(100, 100), need(128 * 1024, 100)];
        let e = assign(&needs, &CORES).unwrap_err();
        assert_eq!(
            e.to_string(),
            "layer 1 fits no core: kernel memory needs 131072 entries, the largest core has 65536"
        );
        let three_big = [need(64 * 1024, 1), need(64 * 1024, 1), need(64 * 1024, 1)];
        assert_eq!(
            assign(&three_big, &CORES).unwrap_err(),
            AssignError::Crowded {
                layers: vec![0, 1, 2],
                cores: vec![5, 6]
            }
        );
        let ten = vec![need(1, 1); 10];
        assert!(matches!(
            assign(&ten, &CORES),
            Err(AssignError::TooManyLayers {
                layers: 10,
                cores: 9
            })
        ));
    }
}
