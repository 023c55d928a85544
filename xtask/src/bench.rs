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
        "all" => {
            compile();
            emulator()
        }
        other => {
            eprintln!("unknown bench `{other}` (compile, emulator, all)");
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
