//! Benchmarks. Each prints a table; absolute times are for orientation, ratios are the figures
//! to compare across machines.

use nmc::synth::sparse_mlp;
use nmc::{driver, Options, Target};
use nmc_backend::CostTable;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Runs the named suite.
pub fn run(which: &str) -> ExitCode {
    match which {
        "compile" => compile(),
        "emulator" => emulator(),
        "floorline" => floorline(),
        "mapping" => mapping(),
        "akd1000" => akd1000(),
        "speck" => speck(),
        "egraph" => egraph(),
        "eval" => eval(),
        "tiling" => tiling(),
        "snn" => snn(),
        "all" => {
            compile();
            emulator();
            floorline();
            mapping();
            akd1000();
            speck();
            eval();
            tiling();
            snn();
            egraph()
        }
        other => {
            eprintln!(
                "unknown bench `{other}` (compile, emulator, eval, floorline, mapping, akd1000, speck, egraph, tiling, snn, all)"
            );
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

/// The child side of `bench compile`: compiles one model in a fresh process (so that its peak
/// memory is the compile's own) and prints `seconds peak_bytes outcome`.
pub fn compile_one(model: &str) -> ExitCode {
    let mut opts = Options::new(Target::lookup("loihi2").unwrap());
    opts.auto_chips = true;
    let start = Instant::now();
    let outcome = match nmc::compile(std::path::Path::new(model), &opts) {
        Ok(c) => format!(
            "artifact: {} MB, {} cores",
            c.artifact.len() / 1_000_000,
            c.report.cores_used
        ),
        Err(e) => {
            let msg = e.to_string();
            let short: String = msg.chars().take(110).collect();
            format!("error: {short}")
        }
    };
    let t = start.elapsed().as_secs_f64();
    println!(
        "{t:.3} {} {outcome}",
        driver::memory().map_or(0, |(_, peak)| peak)
    );
    ExitCode::SUCCESS
}

/// onnxruntime's session creation time for `model` (seconds), when `python3` has onnxruntime.
fn onnxruntime_session(model: &std::path::Path) -> Option<f64> {
    let script = "import sys, time\nimport onnxruntime as ort\n\
                  o = ort.SessionOptions(); o.intra_op_num_threads = 1\n\
                  t = time.perf_counter(); ort.InferenceSession(sys.argv[1], o, providers=['CPUExecutionProvider'])\n\
                  print(time.perf_counter() - t)";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(model)
        .output()
        .ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

fn compile() -> ExitCode {
    use nmc::synth::vgg19;
    println!("## compile (release; Loihi 2, --chips auto; each model in a fresh process)\n");
    println!(
        "Peak memory is the process's high-water mark (VmHWM), model bytes the ONNX weights.\n"
    );
    println!("| model | weights | model bytes | compile | peak memory | peak / model bytes | onnxruntime session | nmc / onnxruntime | outcome | slowest stages |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let tmp = std::env::temp_dir().join("nmc-bench");
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let exe = std::env::current_exe().expect("own path");
    type Make = Box<dyn Fn() -> Vec<u8>>;
    let models: Vec<(&str, Make)> = vec![
        (
            "mlp-1M",
            Box::new(|| sparse_mlp(&[1024, 768, 256, 10], 0.0, 1)),
        ),
        (
            "mlp-10M",
            Box::new(|| sparse_mlp(&[2048, 4096, 512, 10], 0.0, 2)),
        ),
        (
            "mlp-25M",
            Box::new(|| sparse_mlp(&[4096, 4096, 2048, 10], 0.0, 3)),
        ),
        ("vgg19-224", Box::new(|| vgg19(224, 1000, 4))),
    ];
    for (label, make) in models {
        let path = tmp.join(format!("{label}.onnx"));
        let bytes = make();
        std::fs::write(&path, &bytes).expect("write model");
        drop(bytes);
        let imported = nmc::onnx::import_file(&path).expect("imports");
        let weights: usize = imported
            .graph
            .consts
            .iter()
            .map(|(_, c)| c.shape.iter().product::<usize>())
            .sum();
        drop(imported);
        let model_bytes = weights * 4;
        let out = std::process::Command::new(&exe)
            .args(["__compile-one", &path.to_string_lossy()])
            .env("NMC_TIME_PASSES", "1")
            .output()
            .expect("runs itself");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut parts = stdout.trim().splitn(3, ' ');
        let t: f64 = parts
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN);
        let peak: f64 = parts
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN);
        let outcome = parts.next().unwrap_or("?").to_string();
        // "time:   123.456 ms  stage" lines; the three slowest.
        let mut stages: Vec<(f64, String)> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("time:")?.trim_start();
                let (ms, rest) = rest.split_once(" ms")?;
                let name = rest.split_whitespace().last()?;
                Some((ms.trim().parse().ok()?, name.to_string()))
            })
            .collect();
        stages.sort_by(|a, b| b.0.total_cmp(&a.0));
        let slowest: Vec<String> = stages
            .iter()
            .take(3)
            .map(|(ms, n)| format!("{n} {:.2} s", ms / 1e3))
            .collect();
        let ort = onnxruntime_session(&path);
        println!(
            "| {label} | {:.1} M | {:.0} MB | {t:.2} s | {:.0} MB | {:.2} | {} | {} | {outcome} | {} |",
            weights as f64 / 1e6,
            model_bytes as f64 / 1e6,
            peak / 1e6,
            peak / model_bytes as f64,
            ort.map_or("n/a (no onnxruntime)".into(), |o| format!("{o:.2} s")),
            ort.map_or("".into(), |o| format!("{:.2}×", t / o)),
            slowest.join(", ")
        );
        if std::env::var_os("NMC_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_file(&path);
        }
    }
    ExitCode::SUCCESS
}

/// A network of the emulator bench: its ONNX bytes and the shape of one input sample.
struct BenchNet {
    label: &'static str,
    onnx: Vec<u8>,
    shape: Vec<usize>,
    /// Frames of the stream per activity level (fewer for the big ones).
    frames: usize,
}

fn bench_nets() -> Vec<BenchNet> {
    use nmc::synth::{conv_net, resnet18, ConvLayer};
    let l = |channels, kernel, stride| ConvLayer {
        channels,
        kernel,
        stride,
    };
    vec![
        BenchNet {
            label: "64-128-10",
            onnx: sparse_mlp(&[64, 128, 10], 0.0, 3),
            shape: vec![64],
            frames: 400,
        },
        BenchNet {
            label: "1024-1024-10",
            onnx: sparse_mlp(&[1024, 1024, 10], 0.0, 3),
            shape: vec![1024],
            frames: 100,
        },
        BenchNet {
            label: "cnn-2x128x128",
            onnx: conv_net(
                [2, 128, 128],
                &[l(8, 5, 2), l(16, 3, 2), l(32, 3, 2), l(32, 3, 1)],
                10,
                5,
            ),
            shape: vec![2, 128, 128],
            frames: 12,
        },
        BenchNet {
            label: "resnet18-224",
            onnx: resnet18(224, 1000, 7),
            shape: vec![3, 224, 224],
            frames: 2,
        },
    ]
}

/// `frames` inputs of one stream: the first uniform in [0, 1), each next one redraws each
/// element with probability `activity` (a camera frame where that fraction of pixels changed).
fn stream(shape: &[usize], frames: usize, activity: f64, seed: u64) -> nmc::npy::Array {
    let per: usize = shape.iter().product();
    let mut rng = nmc::synth::Rng::new(seed);
    let mut cur: Vec<f32> = (0..per).map(|_| rng.uniform(0.0, 1.0)).collect();
    let mut data = Vec::with_capacity(per * frames);
    for f in 0..frames {
        if f > 0 {
            for v in cur.iter_mut() {
                if rng.unit() < activity {
                    *v = rng.uniform(0.0, 1.0);
                }
            }
        }
        data.extend_from_slice(&cur);
    }
    let mut dims = vec![frames];
    dims.extend_from_slice(shape);
    nmc::npy::Array { shape: dims, data }
}

/// Runs `f` on a rayon pool of `threads` threads.
fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
        .install(f)
}

fn emulator() -> ExitCode {
    let threads = rayon::current_num_threads();
    println!(
        "\n## Loihi 2 emulator (release; a stream of frames, a new frame every 3 timesteps)\n"
    );
    println!(
        "Activity: the fraction of input elements that change from one frame to the next. Lava's"
    );
    println!(
        "`fixed_pt` CPU simulation takes 1.4–2.7 ms per step on 64-128-10 and 1024-1024-10 alike"
    );
    println!("(docs/chips.md §7); the last column divides its fastest figure by nmc's.\n");
    println!("| network | activity | µs per timestep (1 thread) | ({threads} threads) | events-only path (1 thread) | kernels' speed-up | synaptic events per step | events/s per thread | vs Lava (1.4 ms/step) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut loaded = Vec::new();
    // NMC_BENCH_ONLY=<label> runs one network (for profiling).
    let only = std::env::var("NMC_BENCH_ONLY").ok();
    for net in bench_nets() {
        if only.as_deref().is_some_and(|o| o != net.label) {
            continue;
        }
        let imported = match nmc::onnx::import_bytes(&net.onnx, None) {
            Ok(i) => i,
            Err(e) => {
                println!("| {} | – | import fails: {e} | | | |", net.label);
                continue;
            }
        };
        let calib = stream(&net.shape, 4, 1.0, 11);
        let per: usize = net.shape.iter().product();
        let samples: Vec<Vec<Vec<f32>>> =
            calib.data.chunks(per).map(|c| vec![c.to_vec()]).collect();
        // The smallest system the network fits (ResNet-18 at 224×224 needs several chips).
        let mut opts = Options::new(Target::lookup("loihi2").unwrap());
        opts.auto_chips = true;
        let c = match driver::compile_graph(imported.graph, &samples, &opts, 0) {
            Ok(c) => c,
            Err(e) => {
                println!("| {} | – | does not compile: {e} | | | |", net.label);
                continue;
            }
        };
        let art = nmc::LoadedArtifact::decode(&c.artifact).expect("decodes");
        let a = nmc_loihi2::decode(&c.artifact).expect("decodes");
        let spec = nmc_loihi2::loihi2().with_chips(a.header.as_ref().map_or(1, |h| h.chips).max(1));
        let input = &a.inputs[0];
        let q = nmc_ir::QuantParams {
            scale: input.scale,
            min: input.min,
            max: input.max,
        };
        for activity in [0.01, 0.1, 1.0] {
            let frames = stream(&net.shape, net.frames + 1, activity, 21);
            let ints: Vec<Vec<i64>> = frames
                .data
                .chunks(per)
                .map(|f| f.iter().map(|&v| nmc_ir::quantize(v, &q)).collect())
                .collect();
            // The first frame starts from rest (every input changes); the figures are for the
            // frames after it, on one loaded emulator, as a camera stream runs.
            let time = |kernels, n| {
                let mut emu = nmc_loihi2::Emulator::new(&a, &spec).expect("loads");
                emu.record_core_steps(false);
                emu.set_kernels(kernels);
                let mut events = 0;
                let t = on_threads(n, || {
                    median(3, || {
                        emu.run(std::slice::from_ref(&ints[0]), 3).expect("runs");
                        events = 0;
                        for f in &ints[1..] {
                            let (_, r) =
                                emu.run_continue(std::slice::from_ref(f), 3).expect("runs");
                            events += r.synaptic_events;
                        }
                    })
                });
                (t.as_secs_f64(), events as f64)
            };
            let (t_events, _) = time(nmc_loihi2::Kernels::Events, 1);
            let (t, events) = time(nmc_loihi2::Kernels::Auto, 1);
            let (t_all, _) = time(nmc_loihi2::Kernels::Auto, threads);
            let steps = (net.frames * 3) as f64;
            let per_step = t / steps;
            println!(
                "| {} | {:.0} % | {:.2} | {:.2} | {:.2} | {:.1}× | {:.0} | {:.0} M | {:.0}× |",
                net.label,
                activity * 100.0,
                per_step * 1e6,
                t_all / steps * 1e6,
                t_events / steps * 1e6,
                t_events / t,
                events / steps,
                events / t / 1e6,
                1.4e-3 / per_step
            );
        }
        loaded.push((net, art));
    }
    println!("\n### scaling: independent samples (`nmc run`), 1 thread vs {threads}\n");
    println!("| network | samples | 1 thread | {threads} threads | speed-up |");
    println!("|---|---|---|---|---|");
    for (net, art) in &loaded {
        let n = (net.frames / 2).max(2) * 2;
        let samples = stream(&net.shape, n, 1.0, 31);
        let run = || {
            median(3, || {
                art.run(&samples, None).expect("runs");
            })
        };
        let t1 = on_threads(1, run);
        let tn = on_threads(threads, run);
        println!(
            "| {} | {n} | {:.2} ms | {:.2} ms | {:.2}× |",
            net.label,
            t1.as_secs_f64() * 1e3,
            tn.as_secs_f64() * 1e3,
            t1.as_secs_f64() / tn.as_secs_f64()
        );
    }
    ExitCode::SUCCESS
}

/// Multiply–adds of one sample through the dense and convolution nodes of a float graph.
fn macs(g: &nmc_ir::Graph) -> usize {
    g.ids()
        .map(|id| {
            let n = g.node(id);
            let out = n.ty.numel();
            match &n.op {
                nmc_ir::Op::Dense { weight, .. } => g.consts.get(*weight).shape.iter().product(),
                nmc_ir::Op::Conv2d { weight, .. } => {
                    let s = &g.consts.get(*weight).shape;
                    out * s[1..].iter().product::<usize>()
                }
                _ => 0,
            }
        })
        .sum()
}

/// The reference interpreter (`nmc eval`) on the float graph of big CNNs: time per sample, with
/// one thread and with all.
fn eval() -> ExitCode {
    let threads = rayon::current_num_threads();
    println!("\n## reference interpreter (`nmc eval`, float graph, release)\n");
    println!("| network | GFLOP per sample | 1 thread: s per sample | GFLOP/s | {threads} threads: s per sample | GFLOP/s |");
    println!("|---|---|---|---|---|---|");
    for net in bench_nets().into_iter().skip(2) {
        let imported = nmc::onnx::import_bytes(&net.onnx, None).expect("imports");
        let flops = 2.0 * macs(&imported.graph) as f64 / 1e9;
        let samples: Vec<Vec<Vec<f32>>> = stream(&net.shape, 2, 1.0, 41)
            .data
            .chunks(net.shape.iter().product())
            .map(|c| vec![c.to_vec()])
            .collect();
        let time = |n| {
            on_threads(n, || {
                median(3, || {
                    driver::interpret(&imported.graph, &samples).expect("interprets");
                })
            })
            .as_secs_f64()
                / samples.len() as f64
        };
        let (t1, tn) = (time(1), time(threads));
        println!(
            "| {} | {flops:.2} | {t1:.3} | {:.1} | {tn:.3} | {:.1} |",
            net.label,
            flops / t1,
            flops / tn
        );
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
        let opts = Options::new(Target::lookup("loihi2").unwrap());
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
        let loihi2 = Target::lookup("loihi2").expect("registered");
        let topts = nmc_backend::TargetOptions::default();
        let space = loihi2.search_space(&q, &topts).expect("fits");
        let activity = nmc_backend::Activity::of(profile.clone(), arr.clone());
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
            let genome = nmc_backend::Genome {
                extra,
                tiles: Vec::new(),
                placement: pos,
            };
            let Some(mapping) = (space.decode)(&genome) else {
                continue;
            };
            let art = loihi2.lower(&q, &mapping, 0, &topts).expect("lowers");
            let (a, _) =
                driver::floorline(loihi2, &art, &activity, &Default::default()).expect("analyses");
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

/// Greedy vs floorline vs evolve on sparse MLPs in the style of Pierro et al. (docs/papers.md §2.2:
/// 3–10 layers, 256–4096 wide, 80–95 % weight sparsity) and on the shipped CNNs. Latency and
/// energy are emulated per inference on the calibration inputs; search time is wall time.
fn mapping() -> ExitCode {
    println!("\n## mapping: greedy vs floorline vs evolve (emulated per inference)\n");
    println!(
        "| model | target | partitioner | cores | latency | energy | bound | vs greedy | search time |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let tmp = std::env::temp_dir().join("nmc-bench");
    std::fs::create_dir_all(&tmp).expect("temp dir");
    type Samples = Vec<Vec<Vec<f32>>>;
    let mut cases: Vec<(String, Target, std::path::PathBuf, Samples)> = Vec::new();
    let mlps: [(&str, Vec<usize>, f64); 3] = [
        ("mlp-4x1024-90", vec![256, 1024, 1024, 1024, 10], 0.90),
        (
            "mlp-6x2048-95",
            vec![512, 2048, 2048, 2048, 2048, 512, 10],
            0.95,
        ),
        ("mlp-3x4096-80", vec![256, 4096, 4096, 10], 0.80),
    ];
    for (name, widths, sparsity) in mlps {
        let path = tmp.join(format!("{name}.onnx"));
        std::fs::write(&path, sparse_mlp(&widths, sparsity, 11)).expect("write");
        let mut rng = nmc::synth::Rng::new(5);
        // Calibrated activity: inputs active with probability 0.5.
        let samples = (0..8)
            .map(|_| {
                vec![(0..widths[0])
                    .map(|_| {
                        if rng.unit() < 0.5 {
                            rng.uniform(0.0, 1.0)
                        } else {
                            0.0
                        }
                    })
                    .collect()]
            })
            .collect();
        cases.push((
            name.to_string(),
            Target::lookup("loihi2").unwrap(),
            path,
            samples,
        ));
    }
    // The shipped CNNs on Loihi 2 (the AKD1000 variants are benched on the AKD1000), and every
    // shipped model on the AKD1000 and on Speck.
    for (name, dir) in models() {
        let targets: Vec<Target> = [
            (
                Target::lookup("loihi2").unwrap(),
                name.contains("cnn") && !name.contains("akida") && for_target(&dir, "loihi2"),
            ),
            (
                Target::lookup("akd1000").unwrap(),
                for_target(&dir, "akd1000"),
            ),
            (Target::lookup("speck").unwrap(), for_target(&dir, "speck")),
        ]
        .into_iter()
        .filter_map(|(t, on)| on.then_some(t))
        .collect();
        for target in targets {
            let imported = nmc::onnx::import_file(&dir.join("model.onnx")).expect("import");
            let s = driver::load_samples(&dir.join("inputs.npy"), &imported.graph)
                .expect("inputs")
                .into_iter()
                .take(8)
                .collect();
            cases.push((name.clone(), target, dir.join("model.onnx"), s));
        }
    }
    for (name, target, path, samples) in cases {
        let imported = nmc::onnx::import_file(&path).expect("import");
        let mut greedy_latency = f64::NAN;
        for (label, kind) in [
            ("greedy", nmc::PartitionKind::Greedy),
            ("floorline", nmc::PartitionKind::Floorline),
            ("evolve", nmc::PartitionKind::Evolve),
        ] {
            let mut opts = Options::new(target);
            opts.partition = kind;
            opts.seed = 1;
            opts.evals = 300;
            opts.chips = if target == Target::lookup("loihi2").unwrap() {
                2
            } else {
                1
            };
            let start = Instant::now();
            let c = match driver::compile_graph(imported.graph.clone(), &samples, &opts, 0) {
                Ok(c) => c,
                Err(e) => {
                    println!(
                        "| {name} | {} | {label} | error: {e} | | | | | |",
                        target.name()
                    );
                    continue;
                }
            };
            let secs = start.elapsed().as_secs_f64();
            let per = samples[0][0].len();
            let arr = nmc::npy::Array {
                shape: vec![samples.len(), per],
                data: samples.iter().flat_map(|s| s[0].clone()).collect(),
            };
            let run = nmc::LoadedArtifact::decode(&c.artifact)
                .expect("decodes")
                .run(&arr, None)
                .expect("runs");
            if label == "greedy" {
                greedy_latency = run.perf.latency_ns;
            }
            println!(
                "| {name} | {} | {label} | {} | {:.0} ns | {:.1} nJ | {} | {:+.0}% | {:.2} s |",
                target.name(),
                c.mapping.cores_used(),
                run.perf.latency_ns,
                run.perf.energy_nj,
                run.perf.workload_bound,
                (run.perf.latency_ns / greedy_latency - 1.0) * 100.0,
                secs
            );
        }
    }
    ExitCode::SUCCESS
}

/// Whether a case is meant for `target`: its case.toml's `targets` line lists it (a case without
/// one is for Loihi 2).
fn for_target(dir: &std::path::Path, target: &str) -> bool {
    let toml = std::fs::read_to_string(dir.join("case.toml")).unwrap_or_default();
    match toml.lines().find(|l| l.starts_with("targets")) {
        Some(l) => l.contains(&format!("\"{target}\"")),
        None => target == "loihi2",
    }
}

/// Per shipped AKD1000 model: NPs per layer, emulated latency, throughput and energy per frame,
/// and top-1 (calibrated on the first 64 samples at the default 4/4 bits, like the tests).
fn akd1000() -> ExitCode {
    println!("\n## AKD1000 (emulated; 4-bit weights and activations, 8-bit InputConv2D weights)\n");
    println!(
        "Latency, throughput and energy come from the emulator's cost model, whose constants are"
    );
    println!("assumed (no public per-NP figures; see backends/akd1000/src/spec.rs).\n");
    println!("| model | layers: type @ units | NPs | float top-1 | emulated top-1 | latency | throughput | energy/frame |");
    println!("|---|---|---|---|---|---|---|---|");
    let spec = nmc_akd1000::akd1000();
    for (name, dir) in models()
        .into_iter()
        .filter(|(_, d)| for_target(d, "akd1000"))
    {
        let imported = nmc::onnx::import_file(&dir.join("model.onnx")).expect("import");
        let samples =
            driver::load_samples(&dir.join("inputs.npy"), &imported.graph).expect("inputs");
        let labels = nmc::npy::read(&dir.join("labels.npy")).expect("labels");
        let expected = nmc::npy::read(&dir.join("expected.npy")).expect("expected");
        let calib: Vec<Vec<Vec<f32>>> = samples.iter().take(64).cloned().collect();
        let opts = Options::new(Target::lookup("akd1000").unwrap());
        let c = driver::compile_graph(imported.graph, &calib, &opts, 0).expect("compiles");
        let art = nmc_akd1000::decode(&c.artifact).expect("decodes");
        let emu = nmc_akd1000::Emulator::new(&art, &spec).expect("loads");
        let input = &art.inputs[0];
        let q = nmc_ir::QuantParams {
            scale: input.scale,
            min: 0,
            max: (1 << input.bits) - 1,
        };
        let out_scale = art.outputs[0].scale;
        let (mut lat, mut interval, mut energy, mut hits, mut float_hits) = (0.0, 0.0, 0.0, 0, 0);
        let mut layer_ns = vec![0.0; art.layers.len()];
        for (i, s) in samples.iter().enumerate() {
            let x: Vec<i64> = s[0].iter().map(|v| nmc_ir::quantize(*v, &q)).collect();
            let (outs, r) = emu.run(&[x]).expect("runs");
            lat += r.latency_ns;
            interval += r.interval_ns;
            energy += r.energy_nj;
            for (t, l) in layer_ns.iter_mut().zip(&r.layers) {
                *t += l.t_ns;
            }
            let y: Vec<f32> = outs[0].iter().map(|v| *v as f32 * out_scale).collect();
            let label = labels.data[i] as usize;
            hits += usize::from(nmc::cli::argmax(&y) == label);
            let k = expected.data.len() / samples.len();
            float_hits +=
                usize::from(nmc::cli::argmax(&expected.data[i * k..(i + 1) * k]) == label);
        }
        let n = samples.len() as f64;
        let layers: Vec<String> = art
            .layers
            .iter()
            .zip(&layer_ns)
            .map(|(l, t)| {
                let units: Vec<String> = l
                    .slices
                    .iter()
                    .map(|s| {
                        let u = &art.units[s.unit as usize];
                        let ty = nmc_akd1000::listing::unit_type_name(u.unit_type);
                        if ty == "HRC" {
                            "HRC".to_string()
                        } else {
                            format!("{ty}({},{},{})", u.col, u.row, u.id)
                        }
                    })
                    .collect();
                format!(
                    "{} @ {} ({:.0} ns)",
                    nmc_akd1000::listing::layer_kind_name(l.kind),
                    units.join(" "),
                    t / n
                )
            })
            .collect();
        let nps = art
            .units
            .iter()
            .filter(|u| u.unit_type != nmc_akd1000::artifact::UnitTypeMsg::Hrc as i32)
            .count();
        println!(
            "| {name} | {} | {nps} | {:.3} | {:.3} | {:.2} µs | {:.0} k frames/s | {:.1} nJ |",
            layers.join("; "),
            float_hits as f64 / n,
            hits as f64 / n,
            lat / n / 1e3,
            1e6 / (interval / n),
            energy / n
        );
    }
    println!("\nconstants:");
    for (k, c) in spec.cost.entries() {
        println!("- {k} = {} {} ({})", c.value, c.unit, c.source);
    }
    ExitCode::SUCCESS
}

/// Speck: the accuracy-vs-T curve of rate mode on the DVS digits CNN, and emulator throughput.
fn speck() -> ExitCode {
    let dir = crate::root().join("testdata/models/dvs_cnn");
    let model = dir.join("model.onnx");
    let imported = nmc::onnx::import_file(&model).expect("dvs_cnn imports");
    let samples = driver::load_samples(&dir.join("inputs.npy"), &imported.graph).expect("inputs");
    let opts = Options::new(Target::lookup("speck").unwrap());
    let c = driver::compile_graph(imported.graph, &samples, &opts, 0).expect("dvs_cnn compiles");
    let expected = nmc::npy::read(&dir.join("expected.npy")).expect("expected.npy");
    let labels = nmc::npy::read(&dir.join("labels.npy")).expect("labels.npy");
    let inputs = nmc::npy::read(&dir.join("inputs.npy")).expect("inputs.npy");
    let art = nmc::LoadedArtifact::decode(&c.artifact).expect("decodes");
    let n = labels.data.len();
    let float_top1 = (0..n)
        .filter(|&i| {
            nmc::cli::argmax(&expected.data[i * 10..(i + 1) * 10]) as f32 == labels.data[i]
        })
        .count() as f64
        / n as f64;
    println!(
        "\n## speck: accuracy vs timesteps (dvs_cnn, {n} test images, rate-encoded; float top-1 {float_top1:.3})\n"
    );
    println!("| T | argmax agreement with float | top-1 | synaptic ops / inference | modelled latency / inference |");
    println!("|---|---|---|---|---|");
    for t in [1u32, 2, 4, 8, 16, 32, 64] {
        let r = art.run(&inputs, Some(t)).expect("runs");
        let (mut agree, mut hits) = (0, 0);
        for i in 0..n {
            let got = nmc::cli::argmax(&r.outputs.data[i * 10..(i + 1) * 10]);
            agree += usize::from(got == nmc::cli::argmax(&expected.data[i * 10..(i + 1) * 10]));
            hits += usize::from(got as f32 == labels.data[i]);
        }
        println!(
            "| {t}{} | {:.3} | {:.3} | {:.2} M | {:.2} ms |",
            if t == nmc_speck::DEFAULT_TIMESTEPS {
                " (default)"
            } else {
                ""
            },
            agree as f64 / n as f64,
            hits as f64 / n as f64,
            r.perf.synaptic_events as f64 / n as f64 / 1e6,
            r.perf.latency_ns / 1e6
        );
    }
    println!(
        "\n## speck: emulator throughput (release, one thread, T = {})\n",
        nmc_speck::DEFAULT_TIMESTEPS
    );
    println!("| input | samples | core input events | synaptic ops | emulator | events/s | synaptic ops/s | reference interpreter | emulator / interpreter time |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let a = nmc_speck::decode(&c.artifact).expect("decodes");
    let t = nmc_speck::DEFAULT_TIMESTEPS;
    let per = inputs.data.len() / n;
    let (mut events, mut syn) = (0u64, 0u64);
    let t_emu = median(3, || {
        let mut emu = nmc_speck::Emulator::new(&a).expect("emulator");
        (events, syn) = (0, 0);
        for i in 0..n {
            let r = emu
                .run_dense(&inputs.data[i * per..(i + 1) * per], t, false)
                .expect("runs");
            events += r.perf.cores.iter().map(|c| c.counts.msgs_in).sum::<u64>();
            syn += r.perf.synaptic_events;
        }
    });
    let interp = nmc_ir::Interpreter::new(&c.quantized).expect("interpreter");
    let t_ref = median(3, || {
        for i in 0..n {
            interp
                .run_steps(&[&inputs.data[i * per..(i + 1) * per]], t)
                .expect("runs");
        }
    });
    let row = |name: &str, samples: usize, events: u64, syn: u64, te: Duration, tr: Duration| {
        println!(
            "| {name} | {samples} | {events} | {syn} | {:.1} ms | {:.1} M | {:.0} M | {:.1} ms | {:.2} |",
            te.as_secs_f64() * 1e3,
            events as f64 / te.as_secs_f64() / 1e6,
            syn as f64 / te.as_secs_f64() / 1e6,
            tr.as_secs_f64() * 1e3,
            te.as_secs_f64() / tr.as_secs_f64()
        )
    };
    row("rate-encoded images", n, events, syn, t_emu, t_ref);
    // The shipped DVS event stream of test image 0.
    if let Ok(nmc::npy::Input::Events(ev)) = nmc::npy::read_input(&dir.join("events.npy")) {
        let counts = art.bin_events(&ev, t).expect("bins");
        let (mut events, mut syn) = (0u64, 0u64);
        let t_emu = median(5, || {
            let r = art.run_events(&ev, Some(t)).expect("runs");
            syn = r.perf.synaptic_events;
            events = r.perf.cores.iter().map(|c| c.counts.msgs_in).sum::<u64>();
        });
        let t_ref = median(5, || {
            interp.run_events(&counts).expect("runs");
        });
        row(
            &format!("events.npy ({} events)", ev.len()),
            1,
            events,
            syn,
            t_emu,
            t_ref,
        );
    }
    println!(
        "\nevents = events entering the cores (input events included); a synaptic op is one kernel entry applied to one event.\n\
         Latency uses the assumed Speck cost constants (backends/speck/src/spec.rs), not measurements."
    );
    ExitCode::SUCCESS
}

/// -O0 against -O2 (the e-graph pass) per shipped model and target: layers, modelled
/// T_step (floorline, where the target models loads) and emulated latency per inference, on the
/// first 32 inputs (also the calibration set).
fn egraph() -> ExitCode {
    println!(
        "\n## e-graph rewriting: -O0 vs -O2 (32 calibration inputs, emulated per inference)\n"
    );
    println!("| model | target | layers -O0 → -O2 | modelled T_step -O0 → -O2 | emulated latency -O0 → -O2 | rules fired |");
    println!("|---|---|---|---|---|---|");
    for (name, dir) in models() {
        let toml = std::fs::read_to_string(dir.join("case.toml")).unwrap_or_default();
        let targets: Vec<Target> = if for_target(&dir, "akd1000") {
            vec![
                Target::lookup("loihi2").unwrap(),
                Target::lookup("akd1000").unwrap(),
            ]
        } else if toml.lines().any(|l| l.starts_with("expect_error")) {
            // A case that must not compile has nothing to compare.
            continue;
        } else if toml
            .lines()
            .any(|l| l.starts_with("targets") && l.contains("\"speck\""))
        {
            // Rate mode: the dense inputs run for the default number of timesteps.
            vec![Target::lookup("speck").unwrap()]
        } else if toml.lines().any(|l| l.starts_with("targets")) {
            continue;
        } else {
            vec![Target::lookup("loihi2").unwrap()]
        };
        let Ok(imported) = nmc::onnx::import_file(&dir.join("model.onnx")) else {
            continue;
        };
        let samples: Vec<_> = driver::load_samples(&dir.join("inputs.npy"), &imported.graph)
            .expect("inputs")
            .into_iter()
            .take(32)
            .collect();
        let per = samples[0][0].len();
        let arr = nmc::npy::Array {
            shape: vec![samples.len(), per],
            data: samples.iter().flat_map(|s| s[0].clone()).collect(),
        };
        for target in targets {
            let mut row = Vec::new();
            let mut fired = String::new();
            for level in [0u8, 2] {
                let mut opts = Options::new(target);
                opts.opt_level = level;
                let c = match driver::compile_graph(imported.graph.clone(), &samples, &opts, 0) {
                    Ok(c) => c,
                    Err(e) => {
                        println!(
                            "| {name} | {} | error at -O{level}: {e} | | | |",
                            target.name()
                        );
                        row.clear();
                        break;
                    }
                };
                let layers = c
                    .quantized
                    .nodes
                    .iter()
                    .filter(|n| matches!(n.op, nmc_ir::Op::Layer(_)))
                    .count();
                let activity = nmc_backend::Activity::new(&c.quantized, &samples);
                let t_step = driver::floorline(target, &c.artifact, &activity, &Default::default())
                    .map(|(a, _)| format!("{:.0} ns", a.t_step_ns))
                    .unwrap_or_else(|e| format!("error: {e}"));
                let run = nmc::LoadedArtifact::decode(&c.artifact)
                    .expect("decodes")
                    .run(&arr, None)
                    .expect("runs");
                if let Some(e) = c.report.egraph.as_ref().filter(|_| level == 2) {
                    let rules: Vec<String> =
                        e.fired.iter().map(|(r, n)| format!("{r}×{n}")).collect();
                    fired = if rules.is_empty() {
                        "none".into()
                    } else {
                        rules.join(", ")
                    };
                    if !e.changed {
                        fired.push_str(" (graph unchanged)");
                    }
                }
                row.push((layers, t_step, run.perf.latency_ns));
            }
            if let [a, b] = &row[..] {
                println!(
                    "| {name} | {} | {} → {} | {} → {} | {:.0} → {:.0} ns ({:+.0}%) | {fired} |",
                    target.name(),
                    a.0,
                    b.0,
                    a.1,
                    b.1,
                    a.2,
                    b.2,
                    (b.2 / a.2 - 1.0) * 100.0
                );
            }
        }
    }
    ExitCode::SUCCESS
}

fn per_sample(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Spatial tiling on Loihi 2 (issue #12 item 1): what the greedy partitioner makes of
/// camera-sized and ImageNet-sized inputs (`--chips auto`), and the emulated latency per
/// inference as the hot layer of a 2×128×128 CNN (the one holding the busiest core) is tiled
/// over more row bands.
/// ResNet-18 at 224×224 on a Loihi 2 system of `--chips auto`, mapped by each partitioner:
/// compile time, chips and cores, emulated latency and energy of one inference.
fn resnet18_partitioners() {
    use nmc::PartitionKind;
    let shape = vec![3, 224, 224];
    let onnx = nmc::synth::resnet18(224, 1000, 7);
    let calib = stream(&shape, 2, 1.0, 11);
    let per: usize = shape.iter().product();
    let samples: Vec<Vec<Vec<f32>>> = calib.data.chunks(per).map(|c| vec![c.to_vec()]).collect();
    println!(
        "\n### resnet18-224 (`--chips auto`) by partitioner (evolve: 12 evaluations, seed 1)\n"
    );
    println!(
        "| partitioner | compile | chips | cores | latency per inference | energy per inference |"
    );
    println!("|---|---|---|---|---|---|");
    for (label, kind) in [
        ("greedy", PartitionKind::Greedy),
        ("floorline", PartitionKind::Floorline),
        ("evolve", PartitionKind::Evolve),
    ] {
        let imported = nmc::onnx::import_bytes(&onnx, None).expect("imports");
        let mut opts = Options::new(Target::lookup("loihi2").unwrap());
        opts.auto_chips = true;
        opts.partition = kind;
        opts.evals = 12;
        opts.seed = 1;
        let start = Instant::now();
        let c = match driver::compile_graph(imported.graph, &samples, &opts, 0) {
            Ok(c) => c,
            Err(e) => {
                println!("| {label} | fails: {e} | | | | |");
                continue;
            }
        };
        let t = start.elapsed().as_secs_f64();
        let chips = nmc_loihi2::decode(&c.artifact)
            .ok()
            .and_then(|a| a.header.map(|h| h.chips))
            .unwrap_or(1);
        let run = nmc::LoadedArtifact::decode(&c.artifact)
            .expect("decodes")
            .run(&stream(&shape, 1, 1.0, 41), None)
            .expect("runs");
        println!(
            "| {label} | {t:.1} s | {chips} | {} | {:.2} ms | {:.1} µJ |",
            c.report.cores_used,
            run.perf.latency_ns / 1e6,
            run.perf.energy_nj / 1e3
        );
    }
}

fn tiling() -> ExitCode {
    use nmc::synth::{conv_net, resnet18, ConvLayer};
    use nmc_backend::{greedy_shapes, place};
    let l = |channels, kernel, stride| ConvLayer {
        channels,
        kernel,
        stride,
    };
    println!("\n## Loihi 2 spatial tiling (release, `--chips auto`)\n");
    println!(
        "| network | compile | chips | cores | tiled layers | latency per inference (1 sample) |"
    );
    println!("|---|---|---|---|---|---|");
    let nets: Vec<(&str, Vec<u8>, Vec<usize>)> = vec![
        (
            "cnn-2x128x128 (stride-1 stem)",
            conv_net(
                [2, 128, 128],
                &[l(8, 3, 1), l(16, 3, 2), l(32, 3, 2)],
                10,
                5,
            ),
            vec![2, 128, 128],
        ),
        ("resnet18-224", resnet18(224, 1000, 7), vec![3, 224, 224]),
    ];
    let mut first = None;
    for (label, onnx, shape) in nets {
        let imported = nmc::onnx::import_bytes(&onnx, None).expect("imports");
        let calib = stream(&shape, 2, 1.0, 11);
        let per: usize = shape.iter().product();
        let samples: Vec<Vec<Vec<f32>>> =
            calib.data.chunks(per).map(|c| vec![c.to_vec()]).collect();
        let mut opts = Options::new(Target::lookup("loihi2").unwrap());
        opts.auto_chips = true;
        let start = Instant::now();
        let c = match driver::compile_graph(imported.graph, &samples, &opts, 0) {
            Ok(c) => c,
            Err(e) => {
                println!("| {label} | does not compile: {e} | | | | |");
                continue;
            }
        };
        let t_compile = start.elapsed().as_secs_f64();
        let a = nmc_loihi2::decode(&c.artifact).expect("decodes");
        let chips = a.header.as_ref().map_or(1, |h| h.chips);
        let tiled = c
            .mapping
            .layers
            .values()
            .filter(|s| s.iter().any(|s| s.is_tile()))
            .count();
        let art = nmc::LoadedArtifact::decode(&c.artifact).expect("decodes");
        let one = stream(&shape, 1, 1.0, 41);
        let run = art.run(&one, None).expect("runs");
        println!(
            "| {label} | {t_compile:.1} s | {chips} | {} | {tiled} | {:.1} µs |",
            c.report.cores_used,
            run.perf.latency_ns / 1e3
        );
        if first.is_none() {
            first = Some((c, shape));
        }
    }
    resnet18_partitioners();
    let Some((c, shape)) = first else {
        return ExitCode::FAILURE;
    };
    let spec = nmc_loihi2::loihi2();
    let cores = nmc_loihi2::Cores(spec.clone());
    let shapes = greedy_shapes(&c.quantized, &cores).expect("fits");
    let topts = nmc_backend::TargetOptions::default();
    let loihi2 = Target::lookup("loihi2").unwrap();
    let xs = stream(&shape, 2, 1.0, 43);
    // The hot layer: the one holding the busiest core of the greedy mapping.
    let a = nmc_loihi2::decode(&c.artifact).expect("decodes");
    let mut emu = nmc_loihi2::Emulator::new(&a, &spec).expect("loads");
    let input = &a.inputs[0];
    let q = nmc_ir::QuantParams {
        scale: input.scale,
        min: input.min,
        max: input.max,
    };
    let x: Vec<i64> = xs.data[..per_sample(&shape)]
        .iter()
        .map(|v| nmc_ir::quantize(*v, &q))
        .collect();
    let (_, report) = emu.run(&[x], nmc_loihi2::min_timesteps(&a)).expect("runs");
    let busiest = report
        .cores
        .iter()
        .max_by(|a, b| a.busy_ns.total_cmp(&b.busy_ns))
        .map_or(0, |c| c.id);
    let hot = shapes
        .iter()
        .position(|(id, _)| c.mapping.layers[id].iter().any(|s| s.core == busiest))
        .unwrap_or(0);
    let name = c
        .quantized
        .node(shapes[hot].0)
        .name
        .clone()
        .unwrap_or_default();
    println!("\n### cnn-2x128x128: its hot layer ({name}) tiled over more row bands\n");
    println!("| hot layer's cores | total cores | latency per inference | T_step (slowest step) | bound |");
    println!("|---|---|---|---|---|");
    for extra in [0, 1, 3, 7, 15, 31] {
        let mut tiles = vec![0; shapes.len()];
        tiles[hot] = extra;
        let Ok(m) = place(&c.quantized, &cores, &shapes, &[], &tiles, None) else {
            continue;
        };
        let art = loihi2.lower(&c.quantized, &m, 0, &topts).expect("lowers");
        let run = nmc::LoadedArtifact::decode(&art)
            .expect("decodes")
            .run(&xs, None)
            .expect("runs");
        println!(
            "| {} | {} | {:.1} µs | {:.0} ns | {} |",
            m.layers[&shapes[hot].0].len(),
            m.cores_used(),
            run.perf.latency_ns / 1e3,
            run.perf.t_step_ns,
            run.perf.workload_bound
        );
    }
    ExitCode::SUCCESS
}

/// A number field of a flat JSON file (`case.json`), without a JSON dependency here.
fn json_number(text: &str, key: &str) -> Option<f64> {
    let at = text.find(&format!("\"{key}\""))?;
    let rest = text[at..].split_once(':')?.1.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// `bench snn`: the SLAYER networks of `testdata/snn/netx_*` on the Loihi 2 emulator — time per
/// timestep on one thread next to the reference interpreter's (same process) and Lava's
/// `fixed_pt` figure recorded by `testdata/gen/make_snn_models.py` (another process, another
/// day: an indication, not a ratio), and accuracy on the test inputs, emulated.
fn snn() -> ExitCode {
    println!("\n## snn: lava-dl netx networks on the Loihi 2 emulator (release, one thread)\n");
    println!("| network | samples × steps | emulator µs/step | emulator steps/s | interpreter µs/step | emulator vs interpreter | Lava fixed_pt µs/step (recorded) | Lava / emulator | top-1 (emulated) | top-1 (Lava) | spikes equal Lava's |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    for name in ["netx_dense", "netx_conv"] {
        let dir = crate::root().join("testdata/snn").join(name);
        let opts = Options::new(Target::lookup("loihi2").unwrap());
        let c = driver::compile(&dir.join("model.net"), &opts).expect("compiles");
        let art = nmc::LoadedArtifact::decode(&c.artifact).expect("decodes");
        let xs = nmc::npy::read(&dir.join("input.npy")).expect("input.npy");
        let lava = nmc::npy::read(&dir.join("lava_output.npy")).expect("lava_output.npy");
        let labels = nmc::npy::read(&dir.join("labels.npy")).expect("labels.npy");
        let case = std::fs::read_to_string(dir.join("case.json")).unwrap_or_default();
        let (n, k) = (lava.shape[0], lava.shape[1]);
        let out = lava.shape[2];
        let mut rec = None;
        let t_emu = pool.install(|| {
            median(3, || {
                rec = Some(
                    art.run_recorded(&xs, Some(k as u32), &Default::default(), false, &|| {})
                        .expect("runs"),
                )
            })
        });
        let r = rec.expect("ran");
        let equal = r.steps.as_ref().is_some_and(|s| s.data == lava.data);
        // The interpreter on the same spikes, step by step.
        let interp = nmc_ir::Interpreter::new(&c.quantized).expect("interpreter");
        let t_in = xs.shape[1];
        let per = xs.data.len() / (n * t_in);
        let events: Vec<Vec<Vec<Vec<i64>>>> = (0..n)
            .map(|s| {
                (0..k)
                    .map(|t| {
                        vec![if t < t_in {
                            let at = (s * t_in + t) * per;
                            xs.data[at..at + per].iter().map(|v| *v as i64).collect()
                        } else {
                            vec![0; per]
                        }]
                    })
                    .collect()
            })
            .collect();
        let t_ref = median(3, || {
            for e in &events {
                interp.run_events(e).expect("interprets");
            }
        });
        let steps = (n * k) as f64;
        let (emu_us, ref_us) = (
            t_emu.as_secs_f64() * 1e6 / steps,
            t_ref.as_secs_f64() * 1e6 / steps,
        );
        let top1 = |counts: &dyn Fn(usize) -> Vec<f32>| {
            (0..n)
                .filter(|&i| nmc::cli::argmax(&counts(i)) as f32 == labels.data[i])
                .count() as f64
                / n as f64
        };
        let emu_top1 = top1(&|i| r.outputs.data[i * out..(i + 1) * out].to_vec());
        let lava_top1 = top1(&|i| {
            (0..out)
                .map(|o| (0..k).map(|t| lava.data[(i * k + t) * out + o]).sum())
                .collect()
        });
        let lava_us = json_number(&case, "lava_us_per_step");
        println!(
            "| {name} | {n} × {k} | {emu_us:.2} | {:.0} | {ref_us:.2} | {:.2}× | {} | {} | {emu_top1:.3} | {lava_top1:.3} | {} |",
            1e6 / emu_us,
            ref_us / emu_us,
            lava_us.map_or("-".into(), |l| format!("{l:.0}")),
            lava_us.map_or("-".into(), |l| format!("{:.0}×", l / emu_us)),
            if equal { "yes, every step" } else { "NO" }
        );
    }
    ExitCode::SUCCESS
}
