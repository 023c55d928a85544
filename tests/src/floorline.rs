//! The floorline model judged against the emulator, and the sparsity effects the papers describe
//! (docs/papers.md §1.3): sparser activity speeds up a memory-bound workload and not a compute-bound
//! one; splitting a memory-bound layer helps until traffic dominates.

use crate::common::cases;
use nmc::cost::{spearman, ActivityProfile, Analysis, Bound};
use nmc::synth::{attr_int, ModelBuilder, Rng};
use nmc::target::ChipParams;
use nmc::{LoadedArtifact, Target};
use nmc_ir::Graph;

const SAMPLES: usize = 16;

/// Lowers `graph` with `extra` cores per layer and `placement`; returns the artifact.
fn lower(graph: &Graph, extra: &[u32], placement: Option<&[usize]>) -> Vec<u8> {
    let loihi2 = Target::lookup("loihi2").unwrap();
    let topts = nmc_backend::TargetOptions::default();
    let space = loihi2.search_space(graph, &topts).expect("mapping fits");
    let mut genome = space.problem.greedy();
    genome.extra = extra.to_vec();
    genome.extra.resize(space.problem.min_cores.len(), 0);
    if let Some(p) = placement {
        genome.placement = p.to_vec();
    }
    let mapping = (space.decode)(&genome).expect("mapping fits");
    loihi2.lower(graph, &mapping, 0, &topts).expect("lowers")
}

fn model(artifact: &[u8], profile: &ActivityProfile) -> Analysis {
    let activity = nmc_backend::Activity::of(
        profile.clone(),
        nmc::npy::Array {
            shape: vec![0],
            data: vec![],
        },
    );
    nmc::driver::floorline(
        Target::lookup("loihi2").unwrap(),
        artifact,
        &activity,
        &ChipParams::default(),
    )
    .expect("analyses")
    .0
}

/// Emulated T_step (mean slowest step) and workload bound on `samples`.
fn emulate(artifact: &[u8], samples: &nmc::npy::Array) -> (f64, String) {
    let r = LoadedArtifact::decode(artifact)
        .unwrap()
        .run(samples, None)
        .unwrap();
    (r.perf.t_step_ns, r.perf.workload_bound)
}

fn as_array(samples: &[Vec<Vec<f32>>]) -> nmc::npy::Array {
    let per = samples[0][0].len();
    nmc::npy::Array {
        shape: vec![samples.len(), per],
        data: samples.iter().flat_map(|s| s[0].clone()).collect(),
    }
}

fn quantized(name: &str) -> (Graph, Vec<Vec<Vec<f32>>>) {
    let case = cases().iter().find(|c| c.name == name).unwrap();
    let imported = nmc::onnx::import_file(&case.model).unwrap();
    let samples = case.samples(SAMPLES);
    let (_, q, _) = nmc::driver::quantize_for(
        &imported.graph,
        &samples,
        &nmc::Options::new(Target::lookup("loihi2").unwrap()),
    )
    .unwrap();
    (q, samples)
}

#[test]
fn model_ranks_and_classifies_fifty_mappings_like_the_emulator() {
    let mut rng = Rng::new(2026);
    let (mut modelled, mut emulated, mut agree, mut n) = (Vec::new(), Vec::new(), 0, 0);
    for name in [
        "digits_mlp",
        "digits_cnn",
        "digits_rescnn",
        "digits_mlp_sparse",
        "digits_cnn_sparse",
    ] {
        let (q, samples) = quantized(name);
        let profile = ActivityProfile::measure(&q, &samples).unwrap();
        let arr = as_array(&samples);
        let layers = q
            .ids()
            .filter(|&i| matches!(q.node(i).op, nmc_ir::Op::Layer(_)))
            .count();
        for m in 0..10 {
            // Mapping 0 is greedy; the others add cores to layers and scatter them on the mesh.
            let extra: Vec<u32> = (0..layers)
                .map(|_| {
                    if m == 0 {
                        0
                    } else {
                        (rng.next_u64() % 8) as u32
                    }
                })
                .collect();
            let mut positions: Vec<usize> = (0..128).collect();
            if m > 0 {
                for i in (1..positions.len()).rev() {
                    positions.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
                }
            }
            let art = lower(&q, &extra, Some(&positions));
            let a = model(&art, &profile);
            let (t, bound) = emulate(&art, &arr);
            modelled.push(a.t_step_ns);
            emulated.push(t);
            agree += usize::from(a.workload_bound.as_str() == bound);
            n += 1;
        }
    }
    let rho = spearman(&modelled, &emulated);
    let agreement = agree as f64 / n as f64;
    assert!(n >= 50);
    assert!(
        rho >= 0.9,
        "Spearman rank correlation of modelled and emulated T_step is {rho:.3} over {n} mappings"
    );
    assert!(
        agreement >= 0.9,
        "the model names the emulator's bottleneck state on only {agreement:.3} of {n} mappings"
    );
}

/// `x → Gemm(w) → Relu` with the given weights `[out, in]`.
fn one_layer(n_in: usize, n_out: usize, w: &[f32]) -> Graph {
    let mut b = ModelBuilder::new("one_layer", 13);
    b.input("x", &[-1, n_in as i64]);
    b.init("w", &[n_out as i64, n_in as i64], w);
    b.node("Gemm", &["x", "w"], &["g"], vec![attr_int("transB", 1)]);
    b.node("Relu", &["g"], &["y"], vec![]);
    b.output("y");
    nmc::onnx::import_bytes(&b.finish(), None).unwrap().graph
}

fn random_samples(n_in: usize, keep: f64, seed: u64) -> Vec<Vec<Vec<f32>>> {
    let mut rng = Rng::new(seed);
    (0..SAMPLES)
        .map(|_| {
            vec![(0..n_in)
                .map(|_| {
                    if rng.unit() < keep {
                        rng.uniform(0.1, 1.0)
                    } else {
                        0.0
                    }
                })
                .collect()]
        })
        .collect()
}

fn quantize(g: &Graph, calib: &[Vec<Vec<f32>>]) -> Graph {
    nmc::driver::quantize_for(
        g,
        calib,
        &nmc::Options::new(Target::lookup("loihi2").unwrap()),
    )
    .unwrap()
    .1
}

#[test]
fn sparsity_helps_a_memory_bound_workload_and_not_a_compute_bound_one() {
    // Memory-bound: every input event streams a 512-weight column.
    let mut rng = Rng::new(5);
    let (n_in, n_out) = (128, 512);
    let w: Vec<f32> = (0..n_in * n_out).map(|_| rng.uniform(-0.2, 0.2)).collect();
    let q = quantize(&one_layer(n_in, n_out, &w), &random_samples(n_in, 0.8, 1));
    let art = lower(&q, &[], None);
    let dense = random_samples(n_in, 0.8, 2);
    let sparse = random_samples(n_in, 0.2, 3);
    let (a_dense, a_sparse) = (
        model(&art, &ActivityProfile::measure(&q, &dense).unwrap()),
        model(&art, &ActivityProfile::measure(&q, &sparse).unwrap()),
    );
    assert_eq!(a_dense.workload_bound, Bound::Memory);
    assert!(
        a_sparse.t_step_ns < 0.5 * a_dense.t_step_ns,
        "{} vs {}",
        a_sparse.t_step_ns,
        a_dense.t_step_ns
    );
    let (e_dense, _) = emulate(&art, &as_array(&dense));
    let (e_sparse, _) = emulate(&art, &as_array(&sparse));
    assert!(e_sparse < 0.5 * e_dense, "emulated {e_sparse} vs {e_dense}");

    // Compute-bound: 6,000 neurons with one synapse each; every neuron is updated every step.
    let (n_in, n_out) = (64, 6000);
    let mut w = vec![0f32; n_in * n_out];
    for o in 0..n_out {
        w[o * n_in + o % n_in] = 0.5;
    }
    let q = quantize(&one_layer(n_in, n_out, &w), &random_samples(n_in, 0.8, 1));
    let art = lower(&q, &[], None);
    let (a_dense, a_sparse) = (
        model(
            &art,
            &ActivityProfile::measure(&q, &dense_of(n_in, 0.8)).unwrap(),
        ),
        model(
            &art,
            &ActivityProfile::measure(&q, &dense_of(n_in, 0.2)).unwrap(),
        ),
    );
    assert_eq!(a_dense.workload_bound, Bound::Compute);
    assert_eq!(
        a_sparse.t_step_ns, a_dense.t_step_ns,
        "the compute floor does not move with sparsity"
    );
    let (e_dense, b) = emulate(&art, &as_array(&dense_of(n_in, 0.8)));
    let (e_sparse, _) = emulate(&art, &as_array(&dense_of(n_in, 0.2)));
    assert_eq!(b, "compute");
    assert_eq!(e_sparse, e_dense);
}

fn dense_of(n_in: usize, keep: f64) -> Vec<Vec<Vec<f32>>> {
    random_samples(n_in, keep, 11)
}

#[test]
fn splitting_a_memory_bound_layer_helps_until_traffic_dominates() {
    let mut rng = Rng::new(9);
    let (n_in, n_out) = (512, 256);
    let w: Vec<f32> = (0..n_in * n_out).map(|_| rng.uniform(-0.1, 0.1)).collect();
    let calib = random_samples(n_in, 0.7, 4);
    let q = quantize(&one_layer(n_in, n_out, &w), &calib);
    let profile = ActivityProfile::measure(&q, &calib).unwrap();
    let extra = [0u32, 1, 3, 7, 31, 63, 127];
    let analyses: Vec<Analysis> = extra
        .iter()
        .map(|&e| model(&lower(&q, &[e], None), &profile))
        .collect();
    let t: Vec<f64> = analyses.iter().map(|a| a.t_step_ns).collect();
    assert_eq!(analyses[0].workload_bound, Bound::Memory);
    for w in t.windows(2).take(4) {
        assert!(w[1] < w[0], "splitting a memory-bound layer helps: {t:?}");
    }
    let last = analyses.last().unwrap();
    assert_eq!(
        last.workload_bound,
        Bound::Traffic,
        "over many cores every event reaches every core: {t:?}"
    );
    // Doubling the cores on the traffic floor buys far less than doubling them on the slope.
    let n = t.len();
    assert!(
        t[n - 2] / t[n - 1] < 1.5 && t[0] / t[1] > 1.9,
        "diminishing returns: {t:?}"
    );
    // The emulator sees the same turn.
    let arr = as_array(&calib);
    let (e_last, b_last) = emulate(&lower(&q, &[127], None), &arr);
    let (e_first, b_first) = emulate(&lower(&q, &[0], None), &arr);
    assert_eq!((b_first.as_str(), b_last.as_str()), ("memory", "traffic"));
    assert!(e_last < e_first);
}
