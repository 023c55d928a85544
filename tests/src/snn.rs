//! The snn execution mode on Loihi 2: spiking networks (CUBA-LIF, LIF, IF) compile to Loihi's
//! fixed-point CUBA-LIF neurons, and the emulator's output spikes equal the reference
//! interpreter's at every timestep (the compiler's invariant, here per step), whatever the
//! mapping. Lava's own outputs are held in `netx.rs`.

use nmc::synth::{attr_float, attr_ints, attr_string, ModelBuilder, Rng};
use nmc::{driver, LoadedArtifact, Options, Target};
use nmc_ir::Interpreter;

/// The neuron of every layer of a random network.
#[derive(Clone, Copy)]
enum Kind {
    /// lava-dl's CUBA: integer weights and threshold (Loihi units), zero reset.
    Cuba,
    /// A float LIF with subtractive reset, a leak potential and a bias.
    Lif,
    /// Integrate-and-fire.
    If,
}

fn neuron(b: &mut ModelBuilder, kind: Kind, x: &str, y: &str) {
    match kind {
        Kind::Cuba => b.node_in(
            "ai.nmc",
            1,
            "CubaLIF",
            &[x],
            &[y],
            vec![
                attr_float("tau_syn", 4096.0 / 1024.0),
                attr_float("tau_mem", 4096.0 / 128.0),
                attr_float("threshold", 80.0),
                attr_string("reset", "zero"),
                attr_float("v_min", -1e30),
            ],
        ),
        Kind::Lif => b.node_in(
            "ai.nmc",
            1,
            "LIF",
            &[x],
            &[y],
            vec![
                attr_float("tau_mem", 5.0),
                attr_float("r", 1.5),
                attr_float("v_leak", 0.2),
                attr_float("threshold", 1.0),
                attr_string("reset", "subtract"),
                attr_float("v_min", -2.0),
            ],
        ),
        Kind::If => b.node_in(
            "ai.nmc",
            1,
            "IF",
            &[x],
            &[y],
            vec![attr_float("threshold", 1.0), attr_float("v_min", -1.0)],
        ),
    };
}

/// A random spiking MLP `widths[0] → … → widths[last]`, every layer with `kind` neurons.
fn mlp(widths: &[usize], kind: Kind, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut b = ModelBuilder::new("snn_mlp", 13);
    b.input("x", &[1, widths[0] as i64]);
    let mut x = "x".to_string();
    for (k, w) in widths.windows(2).enumerate() {
        let (i, o) = (w[0], w[1]);
        let weights: Vec<f32> = (0..i * o)
            .map(|_| match kind {
                Kind::Cuba => (rng.uniform(-60.0, 45.0)).round(),
                _ => rng.uniform(-0.5, 0.7),
            })
            .collect();
        let (wn, bn, h, y) = (
            format!("W{k}"),
            format!("B{k}"),
            format!("h{k}"),
            format!("y{k}"),
        );
        b.init(&wn, &[o as i64, i as i64], &weights);
        let mut inputs = vec![x.as_str(), wn.as_str()];
        let bias: Vec<f32> = (0..o).map(|_| rng.uniform(-0.1, 0.2)).collect();
        if matches!(kind, Kind::Lif) {
            b.init(&bn, &[o as i64], &bias);
            inputs.push(bn.as_str());
        }
        b.node(
            "Gemm",
            &inputs,
            &[&h],
            vec![nmc::synth::attr_int("transB", 1)],
        );
        neuron(&mut b, kind, &h, &y);
        x = y;
    }
    b.output(&x);
    b.finish()
}

/// A random spiking CNN on `[2, 10, 10]`: a 3×3 stride-2 convolution, then a dense layer.
fn cnn(kind: Kind, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut b = ModelBuilder::new("snn_cnn", 13);
    b.input("x", &[1, 2, 10, 10]);
    let scale = |r: &mut Rng| match kind {
        Kind::Cuba => r.uniform(-50.0, 45.0).round(),
        _ => r.uniform(-0.6, 0.65),
    };
    let w: Vec<f32> = (0..4 * 2 * 9).map(|_| scale(&mut rng)).collect();
    b.init("Wc", &[4, 2, 3, 3], &w);
    b.node(
        "Conv",
        &["x", "Wc"],
        &["c"],
        vec![
            attr_ints("kernel_shape", &[3, 3]),
            attr_ints("strides", &[2, 2]),
            attr_ints("pads", &[1, 1, 1, 1]),
        ],
    );
    neuron(&mut b, kind, "c", "s");
    b.node(
        "Flatten",
        &["s"],
        &["f"],
        vec![nmc::synth::attr_int("axis", 1)],
    );
    let wd: Vec<f32> = (0..100 * 5).map(|_| scale(&mut rng)).collect();
    b.init("Wd", &[5, 100], &wd);
    b.node(
        "Gemm",
        &["f", "Wd"],
        &["d"],
        vec![nmc::synth::attr_int("transB", 1)],
    );
    neuron(&mut b, kind, "d", "y");
    b.output("y");
    b.finish()
}

/// Random binary spike frames `[n, t, …shape]`.
fn spikes(n: usize, t: usize, shape: &[usize], p: f64, seed: u64) -> nmc::npy::Array {
    let mut rng = Rng::new(seed);
    let per: usize = shape.iter().product();
    let mut s = vec![n, t];
    s.extend_from_slice(shape);
    nmc::npy::Array {
        shape: s,
        data: (0..n * t * per)
            .map(|_| f32::from(rng.unit() < p))
            .collect(),
    }
}

/// Sample `s` of spike frames `[n, T, …]` as the interpreter's event counts for `k` steps: its `T`
/// frames, then silence.
fn steps_of(xs: &nmc::npy::Array, s: usize, k: usize) -> Vec<Vec<Vec<i64>>> {
    let (n, t_in) = (xs.shape[0], xs.shape[1]);
    let frame = xs.data.len() / (n * t_in);
    (0..k)
        .map(|t| {
            vec![if t < t_in {
                let at = (s * t_in + t) * frame;
                xs.data[at..at + frame].iter().map(|v| *v as i64).collect()
            } else {
                vec![0; frame]
            }]
        })
        .collect()
}

/// A run's spike counts per sample equal the interpreter's on the same frames over the run's
/// timesteps.
fn counts_equal_interpreter(
    quantized: &nmc_ir::Graph,
    r: &nmc_backend::RunResult,
    xs: &nmc::npy::Array,
) {
    let interp = Interpreter::new(quantized).unwrap();
    let k = r.perf.timesteps as usize;
    for s in 0..xs.shape[0] {
        let want = interp.run_events(&steps_of(xs, s, k)).unwrap();
        assert_eq!(r.int_outputs[s], want.counts[0], "sample {s}");
    }
}

/// Compiles `model`, runs it on the emulator with `--record`, and holds every step's output
/// spikes to the reference interpreter on the quantised graph. Returns the total spike count, so
/// a caller can make sure the network is not silent.
fn emulator_equals_interpreter(model: &[u8], opts: &Options, xs: &nmc::npy::Array) -> i64 {
    let imported = nmc::onnx::import_bytes(model, None).unwrap().graph;
    let c = driver::compile_graph(imported, &[], opts, 0).unwrap();
    let art = LoadedArtifact::decode(&c.artifact).unwrap();
    assert!(art.spike_frames());
    let (n, t_in) = (xs.shape[0], xs.shape[1]);
    let k = t_in + 4;
    let rec = art
        .run_recorded(xs, Some(k as u32), &Default::default(), false, &|| {})
        .unwrap();
    let steps = rec.steps.expect("recorded");
    let interp = Interpreter::new(&c.quantized).unwrap();
    let out = rec.int_outputs[0].len();
    let mut total = 0;
    for s in 0..n {
        // The same frames, silent after the last, as integer event counts per step.
        let events = steps_of(xs, s, k);
        let want = interp.run_events(&events).unwrap();
        assert_eq!(rec.int_outputs[s], want.counts[0], "sample {s}: counts");
        for t in 0..k {
            let at = (s * k + t) * out;
            let got: Vec<i64> = steps.data[at..at + out].iter().map(|v| *v as i64).collect();
            assert_eq!(got, want.per_step[0][t], "sample {s}, step {t}");
        }
        total += want.counts[0].iter().sum::<i64>();
    }
    // Neither silent nor saturated, or the comparison would say little.
    let most = (n * k * out) as i64;
    assert!(
        total > 0 && total < most * 3 / 4,
        "{total} of {most} possible spikes"
    );
    total
}

fn loihi2() -> Options {
    Options::new(Target::lookup("loihi2").unwrap())
}

#[test]
fn cuba_mlp_emulates_the_interpreter_at_every_step() {
    let xs = spikes(3, 12, &[12], 0.3, 1);
    for seed in 0..3 {
        let total =
            emulator_equals_interpreter(&mlp(&[12, 20, 6], Kind::Cuba, seed), &loihi2(), &xs);
        assert!(total > 0, "seed {seed}: the network never spikes");
    }
}

#[test]
fn lif_and_if_networks_with_bias_leak_and_subtract_reset_emulate_exactly() {
    let xs = spikes(2, 10, &[8], 0.4, 2);
    for kind in [Kind::Lif, Kind::If] {
        let total = emulator_equals_interpreter(&mlp(&[8, 16, 4], kind, 7), &loihi2(), &xs);
        assert!(total > 0);
    }
}

/// The same network spread over many small cores (channel bands and spatial tiles): the mapping
/// changes the cost, never the spikes.
fn tiled_equals_interpreter(model: &[u8], xs: &nmc::npy::Array) {
    let imported = nmc::onnx::import_bytes(model, None).unwrap().graph;
    let c = driver::compile_graph(imported, &[], &loihi2(), 0).unwrap();
    let mut spec = nmc_loihi2::loihi2().with_chips(4);
    spec.max_neurons_per_core = 16;
    let m = nmc_backend::greedy(&c.quantized, &nmc_loihi2::Cores(spec.clone())).unwrap();
    assert!(m.layers.values().any(|s| s.len() > 2), "not spread out");
    let art = nmc_loihi2::lower(&c.quantized, &m, 0, &spec).unwrap();
    let art = nmc_loihi2::decode(&nmc_loihi2::encode(&art)).unwrap();
    let mut emu = nmc_loihi2::Emulator::new(&art, &spec).unwrap();
    emu.record_outputs(true);
    let interp = Interpreter::new(&c.quantized).unwrap();
    let (n, t_in) = (xs.shape[0], xs.shape[1]);
    let k = t_in + 3;
    for s in 0..n {
        let frames = steps_of(xs, s, k);
        let (counts, _) = emu.run_spikes(&frames[..t_in], k as u32).unwrap();
        let want = interp.run_events(&frames).unwrap();
        assert_eq!(counts[0], want.counts[0], "sample {s}");
        let rec = emu.take_recorded();
        let flat: Vec<i64> = want.per_step[0].iter().flatten().copied().collect();
        assert_eq!(rec, flat, "sample {s}: per step");
    }
}

#[test]
fn spiking_cnn_emulates_exactly_on_one_core_and_tiled() {
    let xs = spikes(2, 8, &[2, 10, 10], 0.25, 3);
    let model = cnn(Kind::Cuba, 5);
    let total = emulator_equals_interpreter(&model, &loihi2(), &xs);
    assert!(total > 0);
    tiled_equals_interpreter(&model, &xs);
    let lif = cnn(Kind::Lif, 6);
    emulator_equals_interpreter(&lif, &loihi2(), &xs);
    tiled_equals_interpreter(&lif, &xs);
}

#[test]
fn spiking_networks_on_chips_without_dynamics_are_refused_by_kind_and_message() {
    let model = mlp(&[4, 3], Kind::Cuba, 0);
    let imported = nmc::onnx::import_bytes(&model, None).unwrap().graph;
    for (target, says) in [
        ("akd1000", "Akida 1.0 has no spiking neuron dynamics"),
        ("speck", "integrate-and-fire neurons only"),
    ] {
        let opts = Options::new(Target::lookup(target).unwrap());
        let e = driver::compile_graph(imported.clone(), &[], &opts, 0).unwrap_err();
        assert_eq!(e.exit_code(), 1, "{target}: {e}");
        let m = e.to_string();
        assert!(
            m.contains("snn execution mode") && m.contains(says),
            "{target}: {m}"
        );
    }
}

#[test]
fn spike_inputs_are_checked_by_shape_and_value() {
    let model = mlp(&[4, 3], Kind::Cuba, 0);
    let imported = nmc::onnx::import_bytes(&model, None).unwrap().graph;
    let c = driver::compile_graph(imported, &[], &loihi2(), 0).unwrap();
    let art = LoadedArtifact::decode(&c.artifact).unwrap();
    // A frame per sample (no timestep axis) is not spike frames.
    let flat = nmc::npy::Array {
        shape: vec![2, 4],
        data: vec![0.0; 8],
    };
    let e = art.run(&flat, None).unwrap_err().to_string();
    assert!(
        e.contains("takes spike frames [samples, timesteps, 4]"),
        "{e}"
    );
    // A fractional value is not a spike.
    let mut xs = spikes(1, 3, &[4], 0.5, 0);
    xs.data[5] = 0.5;
    let e = art.run(&xs, None).unwrap_err().to_string();
    assert!(
        e.contains("step 1, element 1: 0.5 is not a spike value"),
        "{e}"
    );
}

#[test]
fn run_probe_writes_a_layers_spikes_and_voltages_and_refuses_what_it_cannot_probe() {
    let d = crate::common::temp_dir("snn-probe");
    let model = d.join("snn.onnx");
    std::fs::write(&model, mlp(&[12, 20, 6], Kind::Cuba, 0)).unwrap();
    let art = d.join("snn.loihi2");
    let xs = d.join("x.npy");
    nmc::npy::write(&xs, &spikes(2, 6, &[12], 0.3, 1)).unwrap();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let nmc = |args: &[&str]| {
        let mut argv = vec!["nmc"];
        argv.extend_from_slice(args);
        nmc::cli::run_args(argv)
    };
    nmc(&["compile", &s(&model), "--target", "loihi2", "-o", &s(&art)]).unwrap();
    // The output layer probed: its spikes are the recorded output steps.
    let rec = d.join("rec.npy");
    let prefix = d.join("out");
    nmc(&[
        "run",
        &s(&art),
        "--input",
        &s(&xs),
        "--timesteps",
        "9",
        "--record",
        &s(&rec),
        "--probe",
        &format!("Gemm_2={}", s(&prefix)),
    ])
    .unwrap();
    let spikes = nmc::npy::read(&d.join("out.spikes.npy")).unwrap();
    let v = nmc::npy::read(&d.join("out.v.npy")).unwrap();
    let rec = nmc::npy::read(&rec).unwrap();
    assert_eq!(spikes.shape, [2, 9, 6]);
    assert_eq!(v.shape, [2, 9, 6]);
    assert_eq!(spikes.data, rec.data);
    // A voltage never exceeds the threshold after a step (it resets on a spike).
    assert!(v.data.iter().all(|x| *x <= (80 << 6) as f32));
    // Bad specifications and unknown layers are usage errors naming what exists.
    for (probe, says) in [
        ("Gemm_2", "expected LAYER=PREFIX"),
        (
            "nosuch=x",
            "--probe nosuch: no such layer (the layers are \"Gemm_0\", \"Gemm_2\")",
        ),
    ] {
        let e = nmc(&["run", &s(&art), "--input", &s(&xs), "--probe", probe]).unwrap_err();
        assert_eq!((e.kind(), e.exit_code()), ("usage", 2), "{e}");
        assert!(e.to_string().contains(says), "{e}");
    }
}

#[test]
fn floorline_and_evolve_measure_a_spiking_network_on_its_spike_frames() {
    let d = crate::common::temp_dir("snn-search");
    let model = d.join("snn.onnx");
    std::fs::write(&model, mlp(&[12, 40, 6], Kind::Cuba, 1)).unwrap();
    let calib = d.join("calib.npy");
    let xs = spikes(4, 8, &[12], 0.3, 5);
    nmc::npy::write(&calib, &xs).unwrap();
    let mut opts = loihi2();
    opts.calibrate = Some(calib.clone());
    // The activity is each element's spikes per step, from a run on the frames.
    let (_, a, _) = driver::analyze(&model, &opts, &Default::default()).unwrap();
    assert!(a.activity.contains("spike-frame"), "{}", a.activity);
    let quiet = {
        let mut silent = xs.clone();
        silent.data.iter_mut().for_each(|v| *v = 0.0);
        let q = d.join("quiet.npy");
        nmc::npy::write(&q, &silent).unwrap();
        let mut o = loihi2();
        o.calibrate = Some(q);
        driver::analyze(&model, &o, &Default::default()).unwrap().1
    };
    // Silent inputs make no synaptic work.
    assert!(
        quiet.latency_ns < a.latency_ns,
        "{} vs {}",
        quiet.latency_ns,
        a.latency_ns
    );
    // The evolutionary search runs the emulator on the same frames; whatever mapping it picks
    // spikes exactly as the interpreter.
    opts.partition = nmc::PartitionKind::Evolve;
    opts.evals = 24;
    let imported = nmc::onnx::import_file(&model).unwrap().graph;
    let samples = driver::load_samples(&calib, &imported).unwrap();
    let c = driver::compile_graph(imported, &samples, &opts, 0).unwrap();
    let s = c.report.search.as_ref().expect("searched");
    assert!(s.chosen.emulated && s.chosen.latency_ns <= s.greedy.latency_ns);
    let art = LoadedArtifact::decode(&c.artifact).unwrap();
    let r = art.run(&xs, None).unwrap();
    counts_equal_interpreter(&c.quantized, &r, &xs);
}

#[test]
fn eval_of_the_quantised_spiking_network_gives_the_chips_spike_counts() {
    let d = crate::common::temp_dir("snn-eval");
    let model = d.join("snn.onnx");
    std::fs::write(&model, mlp(&[12, 20, 6], Kind::Cuba, 2)).unwrap();
    let xs = d.join("x.npy");
    nmc::npy::write(&xs, &spikes(3, 7, &[12], 0.3, 9)).unwrap();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let nmc = |args: &[&str]| {
        let mut argv = vec!["nmc"];
        argv.extend_from_slice(args);
        nmc::cli::run_args(argv)
    };
    let art = d.join("snn.loihi2");
    nmc(&["compile", &s(&model), "--target", "loihi2", "-o", &s(&art)]).unwrap();
    for k in [None, Some("12")] {
        let (ev, run) = (d.join("ev.npy"), d.join("run.npy"));
        let mut a = vec!["eval", "--quantized", "--target", "loihi2"];
        let (m, x, e, r) = (s(&model), s(&xs), s(&ev), s(&run));
        a.extend([m.as_str(), "--input", x.as_str(), "-o", e.as_str()]);
        let art_s = s(&art);
        let mut b = vec!["run", art_s.as_str()];
        b.extend(["--input", x.as_str(), "-o", r.as_str()]);
        if let Some(k) = k {
            a.extend(["--timesteps", k]);
            b.extend(["--timesteps", k]);
        }
        nmc(&a).unwrap();
        nmc(&b).unwrap();
        let (ev, run) = (nmc::npy::read(&ev).unwrap(), nmc::npy::read(&run).unwrap());
        assert_eq!(ev.data, run.data, "timesteps {k:?}");
        assert!(ev.data.iter().sum::<f32>() > 0.0);
    }
}

/// NIR graphs written by snnTorch (LIF) and sinabs (IF with sum pooling) compile for Loihi 2 and
/// spike as the reference interpreter at every step on their recorded inputs; the IF network
/// also runs on Speck in rate mode, as the interpreter says.
#[test]
fn nir_graphs_from_snntorch_and_sinabs_run_on_loihi2_and_speck() {
    let dir = |c: &str| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/snn")
            .join(c)
    };
    for case in ["nir_snntorch_lif", "nir_sinabs_if"] {
        let d = dir(case);
        let mut xs = nmc::npy::read(&d.join("input.npy")).unwrap();
        // A few samples keep the test short.
        let per = xs.data.len() / xs.shape[0];
        xs.shape[0] = 4;
        xs.data.truncate(4 * per);
        let c = driver::compile(&d.join("model.nir"), &loihi2()).unwrap();
        let art = LoadedArtifact::decode(&c.artifact).unwrap();
        let t_in = xs.shape[1];
        let k = t_in + 2;
        let r = art
            .run_recorded(&xs, Some(k as u32), &Default::default(), false, &|| {})
            .unwrap();
        let steps = r.steps.unwrap();
        let interp = Interpreter::new(&c.quantized).unwrap();
        let out = r.int_outputs[0].len();
        let mut total = 0;
        for s in 0..4 {
            let events = steps_of(&xs, s, k);
            let want = interp.run_events(&events).unwrap();
            for t in 0..k {
                let at = (s * k + t) * out;
                let got: Vec<i64> = steps.data[at..at + out].iter().map(|v| *v as i64).collect();
                assert_eq!(got, want.per_step[0][t], "{case}: sample {s}, step {t}");
            }
            total += want.counts[0].iter().sum::<i64>();
        }
        assert!(total > 0, "{case}: silent on loihi2");
    }
    // Speck: the IF network in rate mode, on the same spike frames.
    let d = dir("nir_sinabs_if");
    let mut xs = nmc::npy::read(&d.join("input.npy")).unwrap();
    let per = xs.data.len() / xs.shape[0];
    xs.shape[0] = 2;
    xs.data.truncate(2 * per);
    let c = driver::compile(
        &d.join("model.nir"),
        &Options::new(Target::lookup("speck").unwrap()),
    )
    .unwrap();
    let art = LoadedArtifact::decode(&c.artifact).unwrap();
    let r = art.run(&xs, None).unwrap();
    assert_eq!(r.perf.timesteps as usize, xs.shape[1]);
    counts_equal_interpreter(&c.quantized, &r, &xs);
}

#[test]
fn emit_netx_refuses_what_lava_cannot_load_and_writes_nothing() {
    let d = crate::common::temp_dir("snn-emit");
    let model = d.join("lif.onnx");
    std::fs::write(&model, mlp(&[8, 16, 4], Kind::Lif, 7)).unwrap();
    let (art, net, nir) = (d.join("a.loihi2"), d.join("x.net"), d.join("x.nir"));
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let e = nmc::cli::run_args([
        "nmc".to_string(),
        "compile".into(),
        s(&model),
        "--target".into(),
        "loihi2".into(),
        "-o".into(),
        s(&art),
        "--emit".into(),
        format!("netx={}", s(&net)),
    ])
    .unwrap_err();
    assert_eq!(e.exit_code(), 1, "{e}");
    let m = e.to_string();
    assert!(
        m.contains("Lava's LIF resets to 0") && m.contains("reset subtract"),
        "{m}"
    );
    assert!(
        !net.exists() && !art.exists(),
        "a failed compile leaves no files"
    );
    // The same network as NIR: subtractive reset has no NIR 1.0.8 form either.
    let e = nmc::cli::run_args([
        "nmc".to_string(),
        "compile".into(),
        s(&model),
        "--target".into(),
        "loihi2".into(),
        "-o".into(),
        s(&art),
        "--emit".into(),
        format!("nir={}", s(&nir)),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("NIR 1.0.8 resets to v_reset"), "{e}");
    // A file is required.
    let e = nmc::cli::run_args([
        "nmc",
        "compile",
        &s(&model),
        "--target",
        "loihi2",
        "--emit",
        "netx",
    ])
    .unwrap_err();
    assert_eq!(e.kind(), "usage");
    assert!(
        e.to_string()
            .contains("--emit netx needs a file: netx=FILE"),
        "{e}"
    );
}

/// An event file `(x, y, t, p)` as a spiking network's input on Loihi 2: binned into spike
/// frames by span or by `--dt`, then run as frames; graded artifacts and missing binning are
/// refused.
#[test]
fn event_files_run_as_the_spike_frames_they_bin_into() {
    let imported = nmc::onnx::import_bytes(&cnn(Kind::Cuba, 5), None)
        .unwrap()
        .graph;
    let c = driver::compile_graph(imported, &[], &loihi2(), 0).unwrap();
    let art = LoadedArtifact::decode(&c.artifact).unwrap();
    let mut rng = Rng::new(4);
    let n = 300;
    let ev = nmc_backend::EventArray {
        x: (0..n).map(|_| (rng.unit() * 10.0) as u32).collect(),
        y: (0..n).map(|_| (rng.unit() * 10.0) as u32).collect(),
        t: (0..n).map(|i| 1000 + 7 * i as u64).collect(),
        p: (0..n).map(|_| u32::from(rng.unit() < 0.5)).collect(),
    };
    let list: Vec<nmc_backend::events::DvsEvent> = (0..n)
        .map(|i| nmc_backend::events::DvsEvent {
            x: ev.x[i],
            y: ev.y[i],
            t: ev.t[i],
            p: ev.p[i],
        })
        .collect();
    for binning in [
        nmc_backend::EventBinning {
            timesteps: Some(6),
            ..Default::default()
        },
        nmc_backend::EventBinning {
            dt: Some(100),
            t_start: Some(1000),
            ..Default::default()
        },
    ] {
        let steps = match binning.dt {
            None => nmc_backend::events::Steps::Span(6),
            Some(dt) => nmc_backend::events::Steps::Fixed {
                dt,
                t_start: binning.t_start,
                timesteps: None,
            },
        };
        let (binned, _) = nmc_backend::events::bin(&list, [10, 10], steps, 1 << 20).unwrap();
        let frames = nmc_backend::events::dense(&binned, 200);
        assert!(
            frames.iter().flatten().any(|v| *v > 1),
            "some pixel spikes twice in a step"
        );
        let xs = nmc::npy::Array {
            shape: vec![1, frames.len(), 2, 10, 10],
            data: frames.iter().flatten().map(|v| *v as f32).collect(),
        };
        let want = art.run(&xs, None).unwrap();
        let got = art
            .run_events_binned(&ev, &binning, &Default::default())
            .unwrap();
        assert_eq!(got.int_outputs, want.int_outputs, "{binning:?}");
        assert_eq!(got.perf.timesteps, want.perf.timesteps);
    }
    let e = art.run_events(&ev, None).unwrap_err();
    assert!(e.to_string().contains("needs --timesteps T"), "{e}");
}
