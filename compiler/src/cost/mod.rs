//! The floorline performance model (ARCHITECTURE.md §5; docs/papers.md §1.3 and §1.6).
//!
//! Per core `k` and timestep the model estimates `S_k` synaptic operations, `R_k` synaptic-memory
//! words read, `D_k` neuron updates and `M_k` messages, plus the bits on every mesh link, then
//!
//! ```text
//! T_step = max( a_syn·max S_k, a_mem·max R_k, a_neu·max D_k, a_msg·max M_k, a_link·max bits ) + b_sync
//! ```
//!
//! A core is **memory-bound** when synaptic processing (`max(a_syn·S, a_mem·R)`, the weight
//! stream) is its largest term, **compute-bound** when neuron updates are, and **traffic-bound**
//! when messages are. The workload takes the state of its slowest core (or traffic, when a mesh
//! link is slower than every core). Sparser activity moves a memory-bound core down the slope;
//! it does nothing for a core on the compute floor.
//!
//! Loads come from the lowered artifact and an [`ActivityProfile`] (how often each value is
//! non-zero, measured by the reference interpreter on calibration inputs). Targets supply the
//! loads (`cost/<target>.rs`); evaluation, advice and the plot are shared.

mod svg;

pub use nmc_backend::{ActivityProfile, Bound, Constants, CoreLoad, Loads};
pub use svg::floorline_svg;

/// Modelled time of each term for one core (ns).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BoundTimes {
    /// `max(a_syn·S, a_mem·R)`.
    pub memory: f64,
    /// `a_neu·D`.
    pub compute: f64,
    /// `a_msg·M`.
    pub traffic: f64,
}

/// One core in the analysis.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CoreCost {
    /// Its load.
    #[serde(flatten)]
    pub load: CoreLoad,
    /// Time per term.
    pub t_ns: BoundTimes,
    /// The largest term.
    pub bound: Bound,
}

impl CoreCost {
    /// The core's time per step (its largest term).
    pub fn time(&self) -> f64 {
        self.t_ns
            .memory
            .max(self.t_ns.compute)
            .max(self.t_ns.traffic)
    }
}

/// One chip in the analysis: the sums of its cores' modelled loads per step.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ChipCost {
    /// Chip index in the system.
    pub chip: u32,
    /// Cores the mapping uses on it.
    pub cores: usize,
    /// Σ synaptic operations.
    #[serde(rename = "S")]
    pub s: f64,
    /// Σ synaptic-memory words read.
    #[serde(rename = "R")]
    pub r: f64,
    /// Σ neuron updates.
    #[serde(rename = "D")]
    pub d: f64,
    /// Σ messages into its cores.
    pub m_in: f64,
    /// Σ messages out of its cores.
    pub m_out: f64,
    /// Its slowest core's time per step (ns).
    pub t_ns: f64,
}

/// Per-chip sums of `cores`, in chip order.
fn chip_costs(cores: &[CoreCost]) -> Vec<ChipCost> {
    let mut chips: Vec<ChipCost> = Vec::new();
    for c in cores {
        let at = match chips.binary_search_by_key(&c.load.chip, |x| x.chip) {
            Ok(i) => i,
            Err(i) => {
                chips.insert(
                    i,
                    ChipCost {
                        chip: c.load.chip,
                        ..ChipCost::default()
                    },
                );
                i
            }
        };
        let k = &mut chips[at];
        k.cores += 1;
        k.s += c.load.s;
        k.r += c.load.r;
        k.d += c.load.d;
        k.m_in += c.load.m_in;
        k.m_out += c.load.m_out;
        k.t_ns = k.t_ns.max(c.time());
    }
    chips
}

/// The floorline analysis of one mapping.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Analysis {
    /// Target name.
    pub target: String,
    /// The state of the workload.
    pub workload_bound: Bound,
    /// Modelled time per timestep (ns), barrier included.
    pub t_step_ns: f64,
    /// Modelled energy per timestep (nJ): dynamic energy of an inference spread over its
    /// timesteps, plus static power over `t_step_ns`.
    pub energy_step_nj: f64,
    /// Timesteps of one inference (pipeline depth + 1).
    pub timesteps: u32,
    /// The slowest core (index into `cores`), unless a link is slower.
    pub bottleneck_core: Option<usize>,
    /// The slowest mesh link's time per step (ns).
    pub link_ns: f64,
    /// Modelled latency of one inference (ns): every layer's work falls in its own timestep of
    /// the pipeline, so it is the sum over layers of the layer's slowest core, plus a barrier per
    /// timestep.
    pub latency_ns: f64,
    /// Per layer, slowest first.
    pub layers: Vec<LayerCost>,
    /// Where the activity came from.
    pub activity: String,
    /// Every core.
    pub cores: Vec<CoreCost>,
    /// Per chip of the system: its cores' loads summed, and its slowest core.
    pub chips: Vec<ChipCost>,
    /// Expected messages and bits of one inference over each pair of chips' links (multi-chip
    /// systems only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<nmc_backend::LinkPerf>,
    /// What to do about it.
    pub advice: Vec<String>,
    /// Whether layers can be split over more cores (from the backend's loads).
    #[serde(skip)]
    pub splittable: bool,
}

/// One layer in the analysis.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LayerCost {
    /// Layer name.
    pub name: String,
    /// Its slowest core's time per step (ns).
    pub t_ns: f64,
    /// That core's bound.
    pub bound: Bound,
    /// Cores holding it.
    pub cores: usize,
}

/// Evaluates the model on a backend's loads (per-core loads, the slowest link's time per step,
/// the expected link traversals of one inference, the chips powered and the constants).
pub fn evaluate(target: &str, loads: Loads) -> Analysis {
    let Loads {
        cores: loads,
        link_ns,
        hops,
        timesteps,
        chips,
        constants,
        activity,
        splittable,
        links,
    } = loads;
    let k = &constants;
    let cores: Vec<CoreCost> = loads
        .into_iter()
        .map(|l| {
            let t = BoundTimes {
                memory: (k.a_syn * l.s).max(k.a_mem * l.r),
                compute: k.a_neu * l.d,
                traffic: k.a_msg * l.m,
            };
            let bound = Bound::of(t.memory, t.compute, t.traffic);
            CoreCost {
                load: l,
                t_ns: t,
                bound,
            }
        })
        .collect();
    let slowest = cores
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.time().total_cmp(&b.1.time()).then(b.0.cmp(&a.0)));
    let (work, bound, bottleneck) = match slowest {
        Some((i, c)) if c.time() >= link_ns => (c.time(), c.bound, Some(i)),
        _ => (link_ns, Bound::Traffic, None),
    };
    let t_step = work + k.b_sync;
    let dynamic_pj: f64 = cores
        .iter()
        .map(|c| {
            k.e_syn * c.load.s
                + k.e_mem * c.load.r
                + k.e_neu * c.load.d
                + k.e_msg * (c.load.m_in + c.load.m_out)
        })
        .sum::<f64>()
        + k.e_hop * hops;
    let steps = timesteps.max(1) as f64;
    let energy_step_nj = (dynamic_pj / steps + k.p_static * chips as f64 * t_step) / 1000.0;
    let mut layers: Vec<LayerCost> = Vec::new();
    for c in &cores {
        match layers.iter_mut().find(|l| l.name == c.load.layer) {
            Some(l) => {
                l.cores += 1;
                if c.time() > l.t_ns {
                    l.t_ns = c.time();
                    l.bound = c.bound;
                }
            }
            None => layers.push(LayerCost {
                name: c.load.layer.clone(),
                t_ns: c.time(),
                bound: c.bound,
                cores: 1,
            }),
        }
    }
    let latency_ns =
        layers.iter().map(|l| l.t_ns).sum::<f64>() + k.b_sync * timesteps.max(1) as f64;
    layers.sort_by(|a, b| b.t_ns.total_cmp(&a.t_ns).then(a.name.cmp(&b.name)));
    let mut a = Analysis {
        latency_ns,
        layers,
        target: target.into(),
        workload_bound: bound,
        t_step_ns: t_step,
        energy_step_nj,
        timesteps,
        bottleneck_core: bottleneck,
        link_ns,
        activity,
        chips: chip_costs(&cores),
        links,
        cores,
        advice: Vec::new(),
        splittable,
    };
    a.advice = advice(&a);
    a
}

/// What the state of the workload suggests (docs/papers.md §1.3: move a memory-bound workload down
/// the slope; stop at the compute or traffic floor).
fn advice(a: &Analysis) -> Vec<String> {
    let mut out = Vec::new();
    let Some(i) = a.bottleneck_core else {
        out.push(format!(
            "traffic-bound on a mesh link ({:.0} ns per step): place communicating cores closer, or use fewer cores \
             per layer so that each event reaches fewer destinations",
            a.link_ns
        ));
        return out;
    };
    let c = &a.cores[i];
    let layer = &c.load.layer;
    let same_layer = a.cores.iter().filter(|o| o.load.layer == *layer).count();
    match c.bound {
        Bound::Memory => {
            // A chip that gives every layer exactly one core: the fix is fewer events, not more
            // cores.
            let how = if !a.splittable {
                format!(
                    "lower {layer}'s event rate (higher firing thresholds, sparser inputs) or shrink its kernels \
                     or channels: {} runs each layer on one core",
                    a.target
                )
            } else {
                format!(
                    "split {layer} over more cores (it uses {same_layer}), or raise activation or weight sparsity"
                )
            };
            out.push(format!(
                "memory-bound: core {} ({layer}) streams {:.0} synaptic operations per step; {how}: time falls with \
                 the synaptic load of this core",
                c.load.id, c.load.s
            ));
            let compute_floor = a.cores.iter().map(|o| o.t_ns.compute).fold(0.0, f64::max);
            let traffic_floor = a.cores.iter().map(|o| o.t_ns.traffic).fold(a.link_ns, f64::max);
            let floor = compute_floor.max(traffic_floor);
            if floor > 0.0 {
                out.push(format!(
                    "at most {:.1}× faster before the {} floor ({:.0} ns) holds",
                    c.time() / floor,
                    if compute_floor >= traffic_floor { "compute" } else { "traffic" },
                    floor
                ));
            }
        }
        Bound::Compute => out.push(format!(
            "compute-bound: core {} ({layer}) updates {:.0} neurons per step; more sparsity will not help here — split \
             the population over more cores, or shrink it (pool earlier, fewer channels)",
            c.load.id, c.load.d
        )),
        Bound::Traffic => out.push(format!(
            "traffic-bound: core {} ({layer}) handles {:.0} messages per step; merge {layer}'s {same_layer} core(s) or \
             co-locate them with their sources, since every event is sent to every core of a population",
            c.load.id, c.load.m
        )),
    }
    out
}

/// Spearman's rank correlation of two equally long series (ties get their average rank); the
/// measure by which the model is judged against the emulator.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            let avg = (i + j) as f64 / 2.0 + 1.0;
            for k in i..=j {
                r[idx[k]] = avg;
            }
            i = j + 1;
        }
        r
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let mean = (n + 1.0) / 2.0;
    let cov: f64 = ra
        .iter()
        .zip(&rb)
        .map(|(x, y)| (x - mean) * (y - mean))
        .sum();
    let sa: f64 = ra.iter().map(|x| (x - mean).powi(2)).sum::<f64>().sqrt();
    let sb: f64 = rb.iter().map(|y| (y - mean).powi(2)).sum::<f64>().sqrt();
    if sa == 0.0 || sb == 0.0 {
        return 0.0;
    }
    cov / (sa * sb)
}

/// The text report of `nmc analyze`.
pub fn report_text(a: &Analysis) -> String {
    let mut s = format!(
        "floorline analysis — target {}\nactivity: {}\n\n{:>4} {:<24} {:>10} {:>10} {:>8} {:>8} {:>9} {:>9} {:>9}  {}\n",
        a.target, a.activity, "core", "layer", "S", "R", "D", "M", "mem ns", "comp ns", "traf ns", "bound"
    );
    for (i, c) in a.cores.iter().enumerate() {
        let mark = if a.bottleneck_core == Some(i) {
            "  ◀ bottleneck"
        } else {
            ""
        };
        let name: String = c.load.layer.chars().take(24).collect();
        s.push_str(&format!(
            "{:>4} {:<24} {:>10.1} {:>10.1} {:>8.1} {:>8.1} {:>9.1} {:>9.1} {:>9.1}  {}{}\n",
            c.load.id,
            name,
            c.load.s,
            c.load.r,
            c.load.d,
            c.load.m,
            c.t_ns.memory,
            c.t_ns.compute,
            c.t_ns.traffic,
            c.bound.as_str(),
            mark
        ));
    }
    if a.chips.len() > 1 {
        s.push_str(&format!(
            "\n{:>4} {:>5} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10}\n",
            "chip", "cores", "S", "R", "D", "M in", "M out", "max ns"
        ));
        for k in &a.chips {
            s.push_str(&format!(
                "{:>4} {:>5} {:>12.1} {:>12.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}\n",
                k.chip, k.cores, k.s, k.r, k.d, k.m_in, k.m_out, k.t_ns
            ));
        }
    }
    for l in &a.links {
        s.push_str(&format!(
            "chips {} -> {}: {} messages, {} bits per inference\n",
            l.from_chip, l.to_chip, l.messages, l.bits
        ));
    }
    s.push_str(&format!(
        "\nslowest link: {:.1} ns per step\nworkload: {}-bound, T_step = {:.1} ns, energy = {:.3} nJ per step, {} steps per inference\n",
        a.link_ns,
        a.workload_bound.as_str(),
        a.t_step_ns,
        a.energy_step_nj,
        a.timesteps
    ));
    for line in &a.advice {
        s.push_str(&format!("advice: {line}\n"));
    }
    s
}

#[cfg(test)]
mod chip_tests {
    use super::*;

    fn core(id: u32, chip: u32, s: f64, time: f64) -> CoreCost {
        CoreCost {
            load: CoreLoad {
                id,
                chip,
                s,
                r: 2.0 * s,
                d: 1.0,
                m_in: 3.0,
                m_out: 4.0,
                ..CoreLoad::default()
            },
            t_ns: BoundTimes {
                memory: time,
                compute: 0.0,
                traffic: 0.0,
            },
            bound: Bound::Memory,
        }
    }

    #[test]
    fn chips_sum_their_cores_and_keep_the_slowest() {
        let cores = [
            core(0, 1, 10.0, 5.0),
            core(1, 0, 1.0, 2.0),
            core(2, 1, 5.0, 9.0),
        ];
        let chips = chip_costs(&cores);
        assert_eq!(chips.len(), 2);
        assert_eq!((chips[0].chip, chips[0].cores, chips[0].s), (0, 1, 1.0));
        let k = &chips[1];
        assert_eq!((k.chip, k.cores, k.s, k.r, k.d), (1, 2, 15.0, 30.0, 2.0));
        assert_eq!((k.m_in, k.m_out, k.t_ns), (6.0, 8.0, 9.0));
    }
}
