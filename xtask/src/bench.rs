//! Benchmarks. Each prints a table; absolute times are for orientation, ratios are the figures
//! to compare across machines.

use nmc::synth::sparse_mlp;
use nmc::{driver, Options, Target};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Runs the named suite.
pub fn run(which: &str) -> ExitCode {
    match which {
        "compile" => compile(),
        "emulator" => emulator(),
        "floorline" => floorline(),
        "all" => {
            compile();
            emulator();
            floorline()
        }
        other => {
            eprintln!("unknown bench `{other}` (compile, emulator, floorline, all)");
            ExitCode::from(2)
        }
    }
}

/// Median of `n` timings of `f`.
fn median(n: usize, mut f: impl FnMut()) -> Duration {
    let mut t: Vec<Duration> = (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    t[n / 2]
}

fn models() -> Vec<(String, std::path::PathBuf)> {
    let dir = crate::root().join("testdata/models");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn compile() -> ExitCode {
    println!("## compile time (release, median of 5; Loihi 2, greedy, no calibration)\n");
    println!("| model | synapses (nnz) | time | time per M synapses |");
    println!("|---|---|---|---|");
    for (name, dir) in models() {
        let model = dir.join("model.onnx");
        let opts = Options::new(Target::Loihi2);
        let mut syn = 0;
        let t = median(5, || {
            let c = nmc::compile(&model, &opts).expect("shipped models compile");
            syn = c.report.layers.iter().map(|l| l.synapses).sum::<usize>();
        });
        println!("| {name} | {syn} | {:.2} ms | |", t.as_secs_f64() * 1e3);
    }
    let tmp = std::env::temp_dir().join("nmc-bench");
    std::fs::create_dir_all(&tmp).expect("temp dir");
    // Sparse MLPs at 80 % weight sparsity with about 1 M and 10 M non-zero synapses.
    let mut per_m = Vec::new();
    for (label, widths) in [
        ("mlp-1M", vec![1024, 2048, 1024, 256]),
        ("mlp-10M", vec![3584, 6144, 3584, 512]),
    ] {
        let bytes = sparse_mlp(&widths, 0.8, 1);
        let path = tmp.join(format!("{label}.onnx"));
        std::fs::write(&path, &bytes).expect("write model");
        let mut opts = Options::new(Target::Loihi2);
        opts.chips = 16;
        let mut syn = 0;
        let t = median(3, || {
            let c = nmc::compile(&path, &opts).expect("synthetic model compiles");
            syn = c.report.layers.iter().map(|l| l.synapses).sum::<usize>();
        });
        let ms_per_m = t.as_secs_f64() * 1e3 / (syn as f64 / 1e6);
        per_m.push(ms_per_m);
        println!(
            "| {label} ({:?}, 80% sparse, 16 chips) | {syn} | {:.0} ms | {ms_per_m:.0} ms |",
            widths,
            t.as_secs_f64() * 1e3
        );
    }
    if let [a, b] = per_m[..] {
        println!(
            "\ngrowth: time per synapse at 10 M / at 1 M = {:.2} (1.00 = linear)",
            b / a
        );
    }
    ExitCode::SUCCESS
}

fn emulator() -> ExitCode {
    println!("\n## emulator throughput (release, one thread)\n");
    println!("| model | samples × steps | synaptic events | emulator | events/s | interpreter | emulator / interpreter time |");
    println!("|---|---|---|---|---|---|---|");
    let mut cases: Vec<(String, Vec<u8>, Option<std::path::PathBuf>)> = models()
        .into_iter()
        .map(|(n, d)| (n, Vec::new(), Some(d)))
        .collect();
    // The network size of chips.md §6's Lava measurement (64-128-10, 3.1 ms per timestep).
    cases.push((
        "mlp-64-128-10".into(),
        sparse_mlp(&[64, 128, 10], 0.0, 3),
        None,
    ));
    for (name, bytes, dir) in cases {
        let (imported, samples) = match &dir {
            Some(d) => {
                let imported = nmc::onnx::import_file(&d.join("model.onnx")).expect("import");
                let s =
                    driver::load_samples(&d.join("inputs.npy"), &imported.graph).expect("inputs");
                (imported, s)
            }
            None => {
                let imported = nmc::onnx::import_bytes(&bytes, None).expect("import");
                let mut rng = nmc::synth::Rng::new(9);
                let s = (0..200)
                    .map(|_| vec![(0..64).map(|_| rng.uniform(0.0, 1.0)).collect()])
                    .collect();
                (imported, s)
            }
        };
        let opts = Options::new(Target::Loihi2);
        let c = driver::compile_graph(imported.graph, &samples, &opts, 0).expect("compiles");
        let art = nmc::LoadedArtifact::decode(&c.artifact).expect("decodes");
        let per = samples[0][0].len();
        let flat: Vec<f32> = samples.iter().flat_map(|s| s[0].iter().copied()).collect();
        let arr = nmc::npy::Array {
            shape: vec![samples.len(), per],
            data: flat,
        };
        let mut events = 0;
        let mut steps = 0;
        let t_emu = median(3, || {
            let r = art.run(&arr, None).expect("runs");
            events = r.perf.synaptic_events;
            steps = r.perf.timesteps;
        });
        let t_ref = median(3, || {
            driver::interpret(&c.quantized, &samples).expect("interprets");
        });
        let eps = events as f64 / t_emu.as_secs_f64();
        println!(
            "| {name} | {} × {steps} | {events} | {:.2} ms | {:.1} M | {:.2} ms | {:.2} |",
            samples.len(),
            t_emu.as_secs_f64() * 1e3,
            eps / 1e6,
            t_ref.as_secs_f64() * 1e3,
            t_emu.as_secs_f64() / t_ref.as_secs_f64()
        );
        if dir.is_none() {
            let per_step = t_emu.as_secs_f64() / (samples.len() as f64 * steps as f64);
            println!(
                "\n64-128-10: {:.2} µs per timestep; Lava's fixed-point CPU simulation needs about 3.1 ms per timestep \
                 for this size (chips.md §6): {:.0}× faster",
                per_step * 1e6,
                3.1e-3 / per_step
            );
        }
    }
    ExitCode::SUCCESS
}

/// The floorline model against the emulator over many mappings of every shipped model: extra
/// cores per layer and scattered placements, seeded.
fn floorline() -> ExitCode {
    use nmc::cost::{spearman, ActivityProfile};
    println!("\n## floorline model vs emulator (T_step = slowest timestep; bound = its state)\n");
    println!("| model | mappings | Spearman ρ | bound agreement | emulated bounds (m/c/t) |");
    println!("|---|---|---|---|---|");
    let mut rng = nmc::synth::Rng::new(7);
    let (mut all_m, mut all_e, mut all_agree, mut all_n) = (Vec::new(), Vec::new(), 0usize, 0usize);
    for (name, dir) in models() {
        let imported = nmc::onnx::import_file(&dir.join("model.onnx")).expect("import");
        let samples: Vec<_> = driver::load_samples(&dir.join("inputs.npy"), &imported.graph)
            .expect("inputs")
            .into_iter()
            .take(32)
            .collect();
        let opts = Options::new(Target::Loihi2);
        let (_, q, _) = driver::quantize_for(&imported.graph, &samples, &opts).expect("quantises");
        let profile = ActivityProfile::measure(&q, &samples).expect("profile");
        let per = samples[0][0].len();
        let arr = nmc::npy::Array {
            shape: vec![samples.len(), per],
            data: samples.iter().flat_map(|s| s[0].clone()).collect(),
        };
        let layers = q
            .ids()
            .filter(|&i| matches!(q.node(i).op, nmc_ir::Op::Layer(_)))
            .count();
        let model = Target::Loihi2.core_model(1);
        let (mut m, mut e, mut agree, mut bounds) = (Vec::new(), Vec::new(), 0usize, [0usize; 3]);
        for k in 0..40 {
            let extra: Vec<u32> = (0..layers)
                .map(|_| {
                    if k == 0 {
                        0
                    } else {
                        (rng.next_u64() % 16) as u32
                    }
                })
                .collect();
            let mut pos: Vec<usize> = (0..128).collect();
            if k > 0 {
                for i in (1..pos.len()).rev() {
                    pos.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
                }
            }
            let Ok(mapping) = nmc::partition::assign(&q, model.as_ref(), &extra, Some(&pos)) else {
                continue;
            };
            let art = Target::Loihi2.lower(&q, &mapping, 0, 1).expect("lowers");
            let (a, _) = Target::Loihi2
                .analyze(&art, &profile, 1, &Default::default())
                .expect("analyses");
            let run = nmc::LoadedArtifact::decode(&art)
                .expect("decodes")
                .run(&arr, None)
                .expect("runs");
            m.push(a.t_step_ns);
            e.push(run.perf.t_step_ns);
            agree += usize::from(a.workload_bound.as_str() == run.perf.workload_bound);
            bounds[["memory", "compute", "traffic"]
                .iter()
                .position(|b| *b == run.perf.workload_bound)
                .unwrap_or(0)] += 1;
        }
        println!(
            "| {name} | {} | {:.3} | {:.3} | {}/{}/{} |",
            m.len(),
            spearman(&m, &e),
            agree as f64 / m.len() as f64,
            bounds[0],
            bounds[1],
            bounds[2]
        );
        all_n += m.len();
        all_agree += agree;
        all_m.extend(m);
        all_e.extend(e);
    }
    println!(
        "| all | {all_n} | {:.3} | {:.3} | |",
        spearman(&all_m, &all_e),
        all_agree as f64 / all_n as f64
    );
    ExitCode::SUCCESS
}
