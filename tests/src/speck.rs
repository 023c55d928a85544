//! Speck: rate mode end to end. The emulator equals the rate-mode reference interpreter bit for
//! bit (every case that compiles, random networks, event input); spike-count argmax agrees with
//! the float model; memory numbers follow sinabs' formulas; the matching finds an assignment
//! whenever one exists (against brute force over the 9! core orders); listings and every
//! violated limit are snapshot-tested; the `ai.nmc` domain imports and means what it says.

use crate::common::{all_cases, argmax, snap, snap_dump, temp_dir, Case, CALIB_SAMPLES};
use nmc::synth::{attr_float, attr_ints, attr_string, ModelBuilder, Rng};
use nmc_ir::Interpreter;
use nmc_speck::{MemoryUse, DEFAULT_TIMESTEPS};
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

fn options() -> nmc::Options {
    nmc::Options::new(nmc::Target::lookup("speck").unwrap())
}

/// A case compiled for Speck with calibration on its first samples (cached; `None` when the
/// model cannot run on Speck or the case is pending).
pub(crate) fn compiled(case: &Case) -> Option<&'static nmc::Compiled> {
    type Cache = Mutex<BTreeMap<String, Option<&'static nmc::Compiled>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(c) = cache.lock().unwrap().get(&case.name) {
        return *c;
    }
    // A case waiting for a compiler feature (`pending` in case.toml) is skipped by every chip
    // test, this one's "every case that fits" included, until it is enabled.
    if case.pending().is_some() {
        return None;
    }
    let imported =
        nmc::onnx::import_file(&case.model).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let c = nmc::driver::compile_graph(imported.graph, &case.samples(CALIB_SAMPLES), &options(), 0)
        .ok()
        .map(|c| &*Box::leak(Box::new(c)));
    cache.lock().unwrap().insert(case.name.clone(), c);
    c
}

fn case(name: &str) -> &'static Case {
    all_cases()
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

fn decode(c: &nmc::Compiled) -> nmc_speck::Artifact {
    nmc_speck::decode(&c.artifact).expect("artifact decodes")
}

/// Emulator vs `run_steps` on some samples, totals and every step.
pub(crate) fn check_bit_exact(name: &str, c: &nmc::Compiled, samples: &[Vec<f32>], steps: &[u32]) {
    let art = decode(c);
    let mut emu = nmc_speck::Emulator::new(&art).unwrap();
    let interp = Interpreter::new(&c.quantized).unwrap();
    for (i, x) in samples.iter().enumerate() {
        for &t in steps {
            let want = interp.run_steps(&[x.as_slice()], t).unwrap();
            let got = emu.run_dense(x, t, true).unwrap();
            assert_eq!(
                got.counts, want.counts[0],
                "{name}: sample {i}, T = {t}: spike counts differ from the reference"
            );
            assert_eq!(
                got.per_step.as_ref().unwrap(),
                &want.per_step[0],
                "{name}: sample {i}, T = {t}: per-step counts differ"
            );
        }
    }
}

#[test]
fn every_case_that_fits_runs_bit_exact() {
    let mut checked = Vec::new();
    for case in all_cases() {
        let Some(c) = compiled(case) else { continue };
        let samples: Vec<Vec<f32>> = case.samples(3).into_iter().map(|s| s[0].clone()).collect();
        check_bit_exact(&case.name, c, &samples, &[1, 3, DEFAULT_TIMESTEPS]);
        checked.push(case.name.as_str());
    }
    for must in ["dvs_cnn", "dvs_cnn_if", "dvs_gesture_speck", "digits_mlp"] {
        assert!(checked.contains(&must), "{must} did not compile for speck");
    }
}

#[test]
fn event_input_runs_bit_exact() {
    // dvs_cnn's 2x32x32 events, and dvs_gesture_speck's 2x128x128 sensor events that the DVS
    // layer pools 4x4.
    for name in ["dvs_cnn", "dvs_gesture_speck"] {
        let case = case(name);
        let c = compiled(case).unwrap();
        let file = case.meta.get("events").and_then(|v| v.as_str()).unwrap();
        let events = match nmc::npy::read_input(&case.dir.join(file)).unwrap() {
            nmc::npy::Input::Events(e) => e,
            nmc::npy::Input::Dense(_) => panic!("{name}: {file} is not an event stream"),
        };
        assert!(events.len() > 1000, "{name}: {} events", events.len());
        let art = nmc::LoadedArtifact::decode(&c.artifact).unwrap();
        let interp = Interpreter::new(&c.quantized).unwrap();
        for t in [4, DEFAULT_TIMESTEPS, 20] {
            let run = art.run_events(&events, Some(t)).unwrap();
            let want = interp
                .run_events(&art.bin_events(&events, t).unwrap())
                .unwrap();
            assert_eq!(run.int_outputs[0], want.counts[0], "{name}: T = {t}");
            assert_eq!(run.perf.timesteps, t);
        }
        // The events are a test sample (case.toml `events_sample`), and the network recognises
        // it.
        let sample = case.meta.get("events_sample").and_then(|v| v.as_integer());
        let sample = usize::try_from(sample.unwrap()).unwrap();
        let run = art.run_events(&events, None).unwrap();
        assert_eq!(
            argmax(&run.outputs.data) as i64,
            case.labels[sample],
            "{name}"
        );
    }
}

/// A random small network (seeded): 1–4 conv layers with random kernels, strides, padding, bias,
/// average pooling and IF parameters (as ai.nmc nodes, some resetting to zero), then a dense head.
fn random_model(seed: u64) -> (Vec<u8>, [usize; 3]) {
    let mut rng = Rng::new(seed);
    let pick = |rng: &mut Rng, n: u64| (rng.next_u64() % n) as usize;
    let c0 = 1 + pick(&mut rng, 2);
    let s0 = 6 + pick(&mut rng, 11);
    let mut b = ModelBuilder::new("random", 13);
    b.input("x", &[-1, c0 as i64, s0 as i64, s0 as i64]);
    let (mut c, mut h) = (c0, s0);
    let mut prev = "x".to_string();
    let layers = 1 + pick(&mut rng, 4);
    for l in 0..layers {
        let f = 1 + pick(&mut rng, 12);
        let k = [1, 2, 3, 5][pick(&mut rng, 4)].min(h);
        // At most "same" padding, so maps never grow (dense heads stay ≤ 16×16 kernels).
        let p = pick(&mut rng, 3).min((k - 1) / 2);
        let s = if h + 2 * p >= k + 2 && rng.unit() < 0.3 {
            2
        } else {
            1
        };
        let oh = (h + 2 * p - k) / s + 1;
        let w: Vec<f32> = (0..f * c * k * k).map(|_| rng.uniform(-0.6, 0.8)).collect();
        let bias: Vec<f32> = (0..f).map(|_| rng.uniform(-0.3, 0.3)).collect();
        let (wn, bn, cn, an) = (
            format!("w{l}"),
            format!("b{l}"),
            format!("c{l}"),
            format!("a{l}"),
        );
        b.init(&wn, &[f as i64, c as i64, k as i64, k as i64], &w);
        let mut inputs = vec![prev.as_str(), wn.as_str()];
        if rng.unit() < 0.6 {
            b.init(&bn, &[f as i64], &bias);
            inputs.push(&bn);
        }
        b.node(
            "Conv",
            &inputs,
            &[&cn],
            vec![
                attr_ints("kernel_shape", &[k as i64, k as i64]),
                attr_ints("pads", &[p as i64; 4]),
                attr_ints("strides", &[s as i64, s as i64]),
            ],
        );
        if rng.unit() < 0.5 {
            b.node("Relu", &[&cn], &[&an], vec![]);
        } else {
            let reset = if rng.unit() < 0.5 { "zero" } else { "subtract" };
            let th = rng.uniform(0.3, 2.0);
            b.node_in(
                "ai.nmc",
                1,
                "IF",
                &[&cn],
                &[&an],
                vec![
                    attr_float("threshold", th),
                    attr_string("reset", reset),
                    attr_float("v_min", -th * rng.uniform(0.0, 3.0)),
                ],
            );
        }
        prev = an;
        (c, h) = (f, oh);
        if h >= 2 && rng.unit() < 0.4 {
            let pn = format!("p{l}");
            b.node(
                "AveragePool",
                &[&prev],
                &[&pn],
                vec![
                    attr_ints("kernel_shape", &[2, 2]),
                    attr_ints("strides", &[2, 2]),
                ],
            );
            prev = pn;
            h /= 2;
        }
    }
    let n = 2 + pick(&mut rng, 9);
    b.node("Flatten", &[&prev], &["flat"], vec![]);
    let w: Vec<f32> = (0..n * c * h * h).map(|_| rng.uniform(-0.5, 0.5)).collect();
    b.init("wf", &[n as i64, (c * h * h) as i64], &w);
    b.init("bf", &[n as i64], &vec![0.05; n]);
    b.node(
        "Gemm",
        &["flat", "wf", "bf"],
        &["y"],
        vec![nmc::synth::attr_int("transB", 1)],
    );
    b.output("y");
    (b.finish(), [c0, s0, s0])
}

#[test]
fn random_networks_run_bit_exact() {
    let mut ran = 0;
    for seed in 0..40 {
        let (bytes, [c, h, w]) = random_model(seed);
        let imported =
            nmc::onnx::import_bytes(&bytes, None).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let mut rng = Rng::new(seed + 1000);
        let samples: Vec<Vec<f32>> = (0..3)
            .map(|_| {
                (0..c * h * w)
                    .map(|_| {
                        if rng.unit() < 0.4 {
                            rng.uniform(0.0, 1.5)
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect();
        let calib: Vec<Vec<Vec<f32>>> = samples.iter().map(|s| vec![s.clone()]).collect();
        let c = match nmc::driver::compile_graph(imported.graph, &calib, &options(), 0) {
            Ok(c) => c,
            // Dense heads over non-square maps are a real limit; everything else must compile.
            Err(e) => {
                assert!(e.to_string().contains("square"), "seed {seed}: {e}");
                continue;
            }
        };
        check_bit_exact(&format!("seed {seed}"), &c, &samples, &[1, 5, 12]);
        ran += 1;
    }
    assert!(ran >= 30, "only {ran} random networks compiled");
}

#[test]
fn spike_count_argmax_agrees_with_the_float_model_at_the_default_t() {
    // dvs_gesture_speck (32 clips): 27 agree with the float model, 28 are right (float: 29).
    for (name, min_agree, min_top1) in [("dvs_cnn", 0.90, 0.0), ("dvs_gesture_speck", 0.8, 0.8)] {
        let case = case(name);
        let c = compiled(case).unwrap();
        let art = nmc::LoadedArtifact::decode(&c.artifact).unwrap();
        let run = art.run(&case.inputs, None).unwrap();
        assert_eq!(run.perf.timesteps, DEFAULT_TIMESTEPS);
        let n = case.labels.len();
        let k = case.expected.data.len() / n;
        let ours = |i: usize| argmax(&run.outputs.data[i * k..(i + 1) * k]);
        let agree = (0..n)
            .filter(|&i| ours(i) == argmax(&case.expected.data[i * k..(i + 1) * k]))
            .count();
        let right = (0..n).filter(|&i| ours(i) as i64 == case.labels[i]).count();
        let (rate, top1) = (agree as f64 / n as f64, right as f64 / n as f64);
        assert!(
            rate >= min_agree && top1 >= min_top1,
            "{name}: agreement {rate:.3}, top-1 {top1:.3} at T = {DEFAULT_TIMESTEPS}"
        );
    }
}

fn sinabs_memory(c: u64, k: u64, f: u64, oh: u64, ow: u64, bias: bool) -> [u64; 3] {
    let l = |x: u64| (x as f64).log2().ceil();
    [
        (c as f64 * 2f64.powf(l(k * k) + l(f))) as u64,
        (f as f64 * 2f64.powf(l(oh) + l(ow))) as u64,
        if bias { f } else { 0 },
    ]
}

#[test]
fn memory_per_layer_is_sinabs_formula_on_every_case() {
    for case in all_cases() {
        let Some(c) = compiled(case) else { continue };
        let art = decode(c);
        for (i, l) in art.cnn_layers.iter().enumerate().filter(|(_, l)| l.used) {
            let d = l.dimensions.unwrap();
            let [cin, ..] = d.input_shape.unwrap().to_chw();
            let [f, oh, ow] = d.output_shape.unwrap().to_chw();
            let m = l.memory.unwrap();
            let want = sinabs_memory(
                cin.into(),
                d.kernel_size.into(),
                f.into(),
                oh.into(),
                ow.into(),
                !l.biases.is_empty(),
            );
            assert_eq!(
                [m.kernel, m.neuron, m.bias],
                want,
                "{}: core {i} \"{}\"",
                case.name,
                l.name
            );
            assert!(MemoryUse {
                kernel: m.kernel,
                neuron: m.neuron,
                bias: m.bias
            }
            .fits(&nmc_speck::speck().cores[i]));
        }
    }
    // The numbers by hand for dvs_cnn (inspect --format json gives them per layer).
    let json = nmc::LoadedArtifact::decode(&compiled(case("dvs_cnn")).unwrap().artifact)
        .unwrap()
        .to_json();
    let got: Vec<(String, u64, u64, u64, u64)> = json["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_string(),
                l["core"].as_u64().unwrap(),
                l["kernel_memory"].as_u64().unwrap(),
                l["neuron_memory"].as_u64().unwrap(),
                l["bias_memory"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = [
        // 2 · 2^(⌈log2 9⌉ + ⌈log2 16⌉) = 512; 16 · 2^(5 + 5) = 16384.
        ("/conv1/Conv", 0, 512, 16384, 0),
        // 16 · 2^(4 + 5) = 8192; 32 · 2^(4 + 4) = 8192.
        ("/conv2/Conv", 1, 8192, 8192, 0),
        // The dense head as a 4×4 convolution: 64 · 2^(4 + 4) = 16384; 10 · 2^0 = 10.
        ("/fc/Gemm", 2, 16384, 10, 10),
        // 32 · 2^(4 + 6) = 32768 fits only cores 3–6; 64 · 2^(3 + 3) = 4096.
        ("/conv3/Conv", 3, 32768, 4096, 0),
    ];
    let want: Vec<(String, u64, u64, u64, u64)> = want
        .iter()
        .map(|(n, c, k, ne, b)| (n.to_string(), *c, *k, *ne, *b))
        .collect();
    assert_eq!(got, want);
    assert_eq!(json["layers"][1]["destinations"][0]["core"], 3);
    assert_eq!(json["layers"][1]["destinations"][0]["pooling"], 2);
}

/// Whether some injective layer → core map fits, by trying all 9! orders of the cores.
fn brute_force(needs: &[MemoryUse]) -> bool {
    let cores = nmc_speck::speck().cores;
    let fits: Vec<Vec<bool>> = needs
        .iter()
        .map(|u| cores.iter().map(|c| u.fits(c)).collect())
        .collect();
    let mut perm: Vec<usize> = (0..cores.len()).collect();
    let ok = |p: &[usize]| fits.iter().enumerate().all(|(i, f)| f[p[i]]);
    if ok(&perm) {
        return true;
    }
    // Heap's algorithm over all 9! permutations.
    let n = perm.len();
    let mut c = vec![0usize; n];
    let mut i = 0;
    while i < n {
        if c[i] < i {
            if i % 2 == 0 {
                perm.swap(0, i);
            } else {
                perm.swap(c[i], i);
            }
            if ok(&perm) {
                return true;
            }
            c[i] += 1;
            i = 0;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
    false
}

#[test]
fn matching_finds_an_assignment_whenever_one_exists() {
    let cores = nmc_speck::speck().cores;
    let mut rng = Rng::new(7);
    let (mut found, mut none) = (0, 0);
    for _ in 0..120 {
        let layers = 1 + (rng.next_u64() % 9) as usize;
        // Random layer shapes in the range where memories compete (kernel up to 32 Ki, neurons up
        // to 256 Ki entries): about half the networks have an assignment.
        let needs: Vec<MemoryUse> = (0..layers)
            .map(|_| {
                let c = 1 + rng.next_u64() % 32;
                let k = 1 + rng.next_u64() % 3;
                let f = 1 + rng.next_u64() % 64;
                let side = 1 + rng.next_u64() % 40;
                MemoryUse::of(c, k, f, side, side, rng.unit() < 0.5)
            })
            .collect();
        let exists = brute_force(&needs);
        match nmc_speck::assign(&needs, &cores) {
            Ok(a) => {
                assert!(exists, "matching found {a:?} where brute force found none");
                let mut used = a.clone();
                used.sort_unstable();
                used.dedup();
                assert_eq!(used.len(), a.len(), "a core used twice: {a:?}");
                for (u, &core) in needs.iter().zip(&a) {
                    assert!(
                        u.fits(&cores[core as usize]),
                        "{u:?} does not fit core {core}"
                    );
                }
                found += 1;
            }
            Err(e) => {
                assert!(
                    !exists,
                    "matching failed ({e}) but {needs:?} has an assignment"
                );
                none += 1;
            }
        }
    }
    // Both outcomes must be exercised.
    assert!(found >= 20 && none >= 20, "found {found}, none {none}");
}

#[test]
fn listing_snapshots() {
    for case in all_cases() {
        if let Some(c) = compiled(case) {
            snap_dump(nmc::Emit::Listing, &case.name, c);
            snap_dump(nmc::Emit::QuantizedIr, &case.name, c);
        }
    }
}

#[test]
fn relu_and_ai_nmc_if_models_compile_to_the_same_configuration() {
    let calib = case("dvs_cnn").samples(CALIB_SAMPLES);
    let build = |name: &str| {
        let imported = nmc::onnx::import_file(&case(name).model).unwrap();
        nmc::driver::compile_graph(imported.graph, &calib, &options(), 0).unwrap()
    };
    let (relu, iff) = (build("dvs_cnn"), build("dvs_cnn_if"));
    assert_eq!(relu.artifact, iff.artifact);
    assert!(nmc_ir::print(&iff.imported).contains("= if("));
    // And the IF model's float meaning (its rate limit) is the ReLU model's.
    let case = case("dvs_cnn_if");
    let n = case.labels.len();
    let outs = nmc::driver::interpret(&iff.imported, &case.samples(n)).unwrap();
    let worst = outs[0]
        .data
        .iter()
        .zip(&case.expected.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1e-4, "{worst}");
}

#[test]
fn rate_mode_ir_round_trips_and_compiles_deterministically() {
    let c = compiled(case("dvs_cnn")).unwrap();
    let text = nmc_ir::print(&c.quantized);
    assert!(
        text.contains("spiking={reset=subtract, threshold="),
        "{text}"
    );
    let parsed = nmc_ir::parse(&text).unwrap();
    assert_eq!(nmc_ir::print(&parsed), text);
    nmc_ir::verify(&parsed).unwrap();
    let again = compiled_fresh("dvs_cnn");
    assert_eq!(again.artifact, c.artifact);
}

fn compiled_fresh(name: &str) -> nmc::Compiled {
    let case = case(name);
    let imported = nmc::onnx::import_file(&case.model).unwrap();
    nmc::driver::compile_graph(imported.graph, &case.samples(CALIB_SAMPLES), &options(), 0).unwrap()
}

fn nmc_cli(args: &[&str]) -> Result<(), nmc::Error> {
    let mut argv = vec!["nmc"];
    argv.extend_from_slice(args);
    nmc::cli::run_args(argv)
}

#[test]
fn cli_compiles_runs_events_and_inspects() {
    let case = case("dvs_cnn");
    let d = temp_dir("speck-cli");
    let art = d.join("net.speck");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    nmc_cli(&[
        "compile",
        &s(&case.model),
        "--target",
        "speck",
        "--calibrate",
        &s(&case.dir.join("inputs.npy")),
        "--timesteps",
        "6",
        "-o",
        &s(&art),
    ])
    .unwrap();
    let report = d.join("perf.json");
    let out = d.join("out.npy");
    nmc_cli(&[
        "run",
        &s(&art),
        "--input",
        &s(&case.dir.join("events.npy")),
        "--report",
        &s(&report),
        "-o",
        &s(&out),
    ])
    .unwrap();
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["target"], "speck");
    assert_eq!(r["timesteps"], 6, "the artifact's timesteps");
    assert!(r["latency_ns"].as_f64().unwrap() > 0.0);
    let cores = r["cores"].as_array().unwrap();
    assert_eq!(cores.len(), 4);
    for c in cores {
        assert!(c["msgs_in"].as_u64().unwrap() > 0, "{c}");
        assert!(c["syn_ops"].as_u64().unwrap() > 0, "{c}");
    }
    assert_eq!(nmc::npy::read(&out).unwrap().shape, vec![1, 10]);
    let json = nmc::LoadedArtifact::decode(&std::fs::read(&art).unwrap())
        .unwrap()
        .to_json();
    for l in json["layers"].as_array().unwrap() {
        for k in [
            "name",
            "core",
            "kernel_memory",
            "neuron_memory",
            "bias_memory",
            "destinations",
        ] {
            assert!(l.get(k).is_some(), "layer lacks `{k}`: {l}");
        }
    }
    // Event input is for event-driven chips: a graded artifact says what it is for.
    let mlp = all_cases().iter().find(|c| c.name == "digits_mlp").unwrap();
    let l2 = d.join("m.loihi2");
    nmc_cli(&[
        "compile",
        &s(&mlp.model),
        "--target",
        "loihi2",
        "-o",
        &s(&l2),
    ])
    .unwrap();
    let e = nmc_cli(&["run", &s(&l2), "--input", &s(&case.dir.join("events.npy"))]).unwrap_err();
    assert_eq!(e.exit_code(), 1);
    assert!(
        e.to_string().contains("event input") && e.to_string().contains("loihi2"),
        "{e}"
    );
    let text = nmc::cli::targets(nmc::cli::Format::Text);
    assert!(text.contains("speck") && text.contains("65536"), "{text}");
}

/// What a failed Speck compile says, with its kind and exit code (for snapshots).
fn speck_error(bytes: &[u8]) -> (nmc::Error, String) {
    let imported = match nmc::onnx::import_bytes(bytes, None) {
        Ok(i) => i,
        Err(e) => {
            let e = nmc::Error::from(e);
            let s = format!("kind {} exit {}\n{e}\n", e.kind(), e.exit_code());
            return (e, s);
        }
    };
    match nmc::driver::compile_graph(imported.graph, &[], &options(), 0) {
        Ok(_) => panic!("compiled"),
        Err(e) => {
            let s = format!("kind {} exit {}\n{e}\n", e.kind(), e.exit_code());
            (e, s)
        }
    }
}

/// x [c, h, w] → Conv (given attributes) → Relu (→ AveragePool) → y.
fn one_conv(
    c: usize,
    h: usize,
    w: usize,
    f: usize,
    kernel: [usize; 2],
    attrs: Vec<onnx_protobuf::AttributeProto>,
    pool: Option<([i64; 2], [i64; 2])>,
) -> Vec<u8> {
    let mut b = ModelBuilder::new("limit", 13);
    b.input("x", &[-1, c as i64, h as i64, w as i64]);
    let wt = vec![0.01; f * c * kernel[0] * kernel[1]];
    b.init(
        "w",
        &[f as i64, c as i64, kernel[0] as i64, kernel[1] as i64],
        &wt,
    );
    b.node("Conv", &["x", "w"], &["c"], attrs);
    if let Some((k, s)) = pool {
        b.node("Relu", &["c"], &["r"], vec![]);
        b.node(
            "AveragePool",
            &["r"],
            &["y"],
            vec![attr_ints("kernel_shape", &k), attr_ints("strides", &s)],
        );
    } else {
        b.node("Relu", &["c"], &["y"], vec![]);
    }
    b.output("y");
    b.finish()
}

/// A chain of `n` 3×3 convolutions of `c` channels on an `h × h` input.
fn conv_chain(n: usize, c: usize, h: usize) -> Vec<u8> {
    let mut b = ModelBuilder::new("chain", 13);
    b.input("x", &[-1, c as i64, h as i64, h as i64]);
    let mut prev = "x".to_string();
    for i in 0..n {
        let (w, cv, r) = (format!("w{i}"), format!("c{i}"), format!("r{i}"));
        b.init(&w, &[c as i64, c as i64, 3, 3], &vec![0.01; c * c * 9]);
        b.node(
            "Conv",
            &[&prev, &w],
            &[&cv],
            vec![attr_ints("pads", &[1, 1, 1, 1])],
        );
        b.node("Relu", &[&cv], &[&r], vec![]);
        prev = r;
    }
    b.node("Identity", &[&prev], &["y"], vec![]);
    b.output("y");
    b.finish()
}

#[test]
fn every_violated_limit_is_named_with_its_layer() {
    let pads = |p: i64| attr_ints("pads", &[p, p, p, p]);
    let strides = |s: i64| attr_ints("strides", &[s, s]);
    let cases: Vec<(&str, Vec<u8>, &str, i32)> = vec![
        (
            "kernel-17",
            one_conv(1, 32, 32, 4, [17, 17], vec![], None),
            "fit",
            3,
        ),
        (
            "kernel-not-square",
            one_conv(1, 16, 16, 4, [3, 5], vec![], None),
            "fit",
            3,
        ),
        (
            "channels-1025",
            one_conv(1, 8, 8, 1025, [1, 1], vec![], None),
            "fit",
            3,
        ),
        (
            "input-130",
            one_conv(2, 130, 130, 2, [3, 3], vec![strides(4)], None),
            "fit",
            3,
        ),
        (
            "output-65",
            one_conv(1, 65, 65, 2, [1, 1], vec![], None),
            "fit",
            3,
        ),
        (
            "stride-3",
            one_conv(1, 16, 16, 2, [3, 3], vec![strides(3)], None),
            "fit",
            3,
        ),
        (
            "padding-8",
            one_conv(1, 16, 16, 2, [3, 3], vec![pads(8)], None),
            "fit",
            3,
        ),
        (
            "pool-3",
            one_conv(1, 18, 18, 2, [3, 3], vec![pads(1)], Some(([3, 3], [3, 3]))),
            "fit",
            3,
        ),
        (
            "pool-stride",
            one_conv(1, 16, 16, 2, [3, 3], vec![pads(1)], Some(([2, 2], [1, 1]))),
            "fit",
            3,
        ),
        ("ten-layers", conv_chain(10, 2, 8), "fit", 3),
        // 65·2^(4+7) = 133120 kernel entries: more than any core's 64 Ki.
        ("kernel-memory", conv_chain(1, 65, 4), "fit", 3),
        // Each needs 64·2^(4+6) = 64 Ki kernel entries: only cores 5 and 6 hold that.
        ("crowded", conv_chain(3, 64, 4), "fit", 3),
    ];
    for (name, bytes, kind, code) in cases {
        let (e, text) = speck_error(&bytes);
        assert_eq!((e.kind(), e.exit_code()), (kind, code), "{name}: {e}");
        snap("errors-speck", name, &text);
    }
    // Fan-out: one layer feeding three (the graph then also has three outputs).
    let mut b = ModelBuilder::new("fanout", 13);
    b.input("x", &[-1, 1, 8, 8]);
    b.init("w", &[2, 1, 3, 3], &[0.1; 18]);
    b.node("Conv", &["x", "w"], &["a"], vec![pads(1)]);
    b.node("Relu", &["a"], &["ra"], vec![]);
    for o in ["y0", "y1", "y2"] {
        let (w, c) = (format!("w{o}"), format!("c{o}"));
        b.init(&w, &[2, 2, 3, 3], &[0.1; 36]);
        b.node("Conv", &["ra", &w], &[&c], vec![pads(1)]);
        b.node("Relu", &[&c], &[o], vec![]);
        b.output(o);
    }
    let (e, text) = speck_error(&b.finish());
    assert!(e.to_string().contains("fan-out 3"), "{e}");
    snap("errors-speck", "fan-out", &text);
}

#[test]
fn unsupported_models_and_the_shipped_misfit_say_why() {
    let too_big = case("speck_too_big");
    let (e, text) = speck_error(&std::fs::read(&too_big.model).unwrap());
    assert_eq!(
        (e.kind(), e.exit_code()),
        ("fit", 3),
        "case.toml: expect_error = fit: {e}"
    );
    assert!(
        text.contains("/conv2/Conv") && text.contains("131072"),
        "{text}"
    );
    snap("errors-speck", "speck_too_big", &text);
    for (name, kind) in [("digits_cnn", "pass"), ("digits_rescnn", "lower")] {
        let (e, text) = speck_error(&std::fs::read(&case(name).model).unwrap());
        assert_eq!((e.kind(), e.exit_code()), (kind, 1), "{name}: {e}");
        snap("errors-speck", name, &text);
    }
}

/// x [1, 4] → Gemm → ai.nmc `op` (attributes) → y.
fn nmc_node_model(op: &str, attrs: Vec<onnx_protobuf::AttributeProto>, version: i64) -> Vec<u8> {
    let mut b = ModelBuilder::new("nmc", 13);
    b.input("x", &[-1, 4]);
    b.init(
        "w",
        &[3, 4],
        &[
            0.5, -1.0, 0.25, 2.0, 1.0, 1.0, -1.0, 0.0, -0.5, 0.5, 0.5, 0.5,
        ],
    );
    b.node(
        "Gemm",
        &["x", "w"],
        &["g"],
        vec![nmc::synth::attr_int("transB", 1)],
    );
    b.node_in("ai.nmc", version, op, &["g"], &["y"], attrs);
    b.output("y");
    b.finish()
}

#[test]
fn ai_nmc_domain_imports_with_its_documented_meaning() {
    let eval = |bytes: &[u8]| {
        let g = nmc::onnx::import_bytes(bytes, None).unwrap().graph;
        let x = [1.0f32, 0.5, -2.0, 0.25];
        nmc::driver::interpret(&g, &[vec![x.to_vec()]]).unwrap()[0]
            .data
            .clone()
    };
    // W·x = [0.5·1 − 0.5 − 0.5 + 0.5, 1 + 0.5 + 2, −0.5 + 0.25 − 1 + 0.125] = [0, 3.5, −1.125].
    // IF's float meaning is its rate limit max(x, 0) / threshold; r scales the input.
    let y = eval(&nmc_node_model(
        "IF",
        vec![attr_float("threshold", 2.0), attr_float("r", 0.5)],
        1,
    ));
    assert_eq!(y, vec![0.0, 0.875, 0.0]);
    let y = eval(&nmc_node_model(
        "SigmaDelta",
        vec![attr_string("activation", "identity")],
        1,
    ));
    assert_eq!(y, vec![0.0, 3.5, -1.125]);
    let ir = nmc_ir::print(
        &nmc::onnx::import_bytes(
            &nmc_node_model("LIF", vec![attr_float("tau_mem", 8.0)], 1),
            None,
        )
        .unwrap()
        .graph,
    );
    assert!(
        ir.contains(
            "lif(%1) {r=1.0, reset=subtract, tau_mem=8.0, threshold=1.0, v_leak=0.0, v_min=-1.0}"
        ),
        "{ir}"
    );
    // LIF has no single-pass meaning, Speck does not run it (Loihi 2 does: tests/src/snn.rs),
    // and errors say so.
    let lif = nmc_node_model("LIF", vec![attr_float("tau_mem", 8.0)], 1);
    let g = nmc::onnx::import_bytes(&lif, None).unwrap().graph;
    let e = nmc::driver::interpret(&g, &[vec![vec![0.0; 4]]]).unwrap_err();
    assert!(e.to_string().contains("snn"), "{e}");
    let (e, text) = speck_error(&lif);
    assert_eq!(e.exit_code(), 1);
    assert!(
        text.contains(
            "snn execution mode: speck's DYNAP-CNN cores run integrate-and-fire neurons only"
        ),
        "{text}"
    );
    // Loihi 2 runs IF in the snn mode, as a non-leaky CUBA-LIF neuron.
    let iff = nmc_node_model("IF", vec![], 1);
    let g = nmc::onnx::import_bytes(&iff, None).unwrap().graph;
    let c = nmc::driver::compile_graph(
        g,
        &[],
        &nmc::Options::new(nmc::Target::lookup("loihi2").unwrap()),
        0,
    )
    .unwrap();
    assert!(nmc_backend::floorline::is_snn(&c.quantized));
    assert!(c
        .report
        .notes
        .iter()
        .any(|n| n.contains("IF runs as Loihi's non-leaky neuron")));
    // Bad attributes, versions and op types are import errors that name the node.
    for (bytes, want) in [
        (
            nmc_node_model("IF", vec![attr_float("treshold", 1.0)], 1),
            "unknown attribute 'treshold'",
        ),
        (
            nmc_node_model("IF", vec![attr_string("reset", "hard")], 1),
            "expected \"zero\" or \"subtract\"",
        ),
        (
            nmc_node_model("IF", vec![attr_float("threshold", -1.0)], 1),
            "must be finite and > 0",
        ),
        (nmc_node_model("LIF", vec![], 1), "'tau_mem' is required"),
        (
            nmc_node_model("IF", vec![], 2),
            "version 2 is not supported",
        ),
        (
            nmc_node_model("Izhikevich", vec![], 1),
            "has no operator Izhikevich",
        ),
    ] {
        let e = nmc::onnx::import_bytes(&bytes, None).unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
    }
}

#[test]
fn corrupt_speck_artifacts_are_errors_not_panics() {
    let c = compiled(case("dvs_cnn")).unwrap();
    let bytes = &c.artifact;
    let mut rng = Rng::new(3);
    for i in 0..300 {
        let mut b = bytes.clone();
        match i % 3 {
            0 => b.truncate((rng.next_u64() as usize) % bytes.len()),
            _ => {
                for _ in 0..1 + i % 5 {
                    let at = (rng.next_u64() as usize) % b.len();
                    b[at] ^= 1 << (rng.next_u64() % 8);
                }
            }
        }
        if let Ok(a) = nmc::LoadedArtifact::decode(&b) {
            // Whatever decodes must run without panicking.
            let x = nmc::npy::Array {
                shape: vec![1, 2, 32, 32],
                data: vec![1.0; 2048],
            };
            let _ = a.run(&x, Some(2));
            let _ = a.listing();
        }
    }
    let mut art = decode(c);
    // A destination moved onto its own core leaves core 3 without a source.
    art.cnn_layers[1].destinations[0].layer = 1;
    let e = nmc_speck::decode(&nmc_speck::encode(&art))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("core 3: used but nothing sends it events"),
        "{e}"
    );
    // A second destination back to itself: a merge of core 0 and core 1's own (pooled) output,
    // whose map is not core 1's input.
    let mut art = decode(c);
    let back = art.cnn_layers[1].destinations[0];
    art.cnn_layers[1]
        .destinations
        .push(nmc_speck::artifact::Destination { layer: 1, ..back });
    let e = nmc_speck::decode(&nmc_speck::encode(&art))
        .unwrap_err()
        .to_string();
    assert!(e.contains("core 1"), "{e}");
    // In dvs_res core 1 (conv2) keeps its map's shape, so sending its events back to itself
    // fits every shape check: the cycle itself is the error.
    let mut art = decode(compiled(case("dvs_res")).unwrap());
    let back = art.cnn_layers[1].destinations[0];
    art.cnn_layers[1]
        .destinations
        .push(nmc_speck::artifact::Destination { layer: 1, ..back });
    let e = nmc_speck::decode(&nmc_speck::encode(&art))
        .unwrap_err()
        .to_string();
    assert!(e.contains("core 1: destinations form a cycle"), "{e}");
}

#[test]
fn emulator_work_follows_events_not_neurons() {
    let c = compiled(case("dvs_cnn")).unwrap();
    let art = decode(c);
    let mut emu = nmc_speck::Emulator::new(&art).unwrap();
    let t = 5;
    // No input: the bias-free convolutions do nothing at all; the dense head (bias 10 channels,
    // 1×1) updates its 10 neurons every step, as its leak does on the chip.
    let r = emu.run_dense(&[0.0; 2048], t, false).unwrap();
    for core in &r.perf.cores {
        let leak = if core.id == 2 { 10 * u64::from(t) } else { 0 };
        assert_eq!(
            (
                core.counts.msgs_in,
                core.counts.syn_ops,
                core.counts.neuron_updates,
            ),
            (0, 0, leak),
            "core {}",
            core.id
        );
    }
    // One event at an interior pixel of channel 1 reaches 3×3 positions of 16 channels.
    let mut binned = vec![Vec::new(); 1];
    binned[0].push((1024 + 5 * 32 + 7, 1));
    let r = emu.run_events(&binned, false).unwrap();
    let first = r.perf.cores.iter().find(|c| c.id == 0).unwrap();
    assert_eq!(
        (
            first.counts.msgs_in,
            first.counts.syn_ops,
            first.counts.neuron_updates,
        ),
        (1, 9 * 16, 9 * 16)
    );
}

#[test]
fn event_files_must_have_integer_x_y_t_p() {
    let npy = |descr: &str, rec: &[u8], n: usize| {
        let header = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': ({n},), }}");
        let mut h = header.into_bytes();
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(b' ');
        }
        h.push(b'\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(&h);
        for _ in 0..n {
            b.extend_from_slice(rec);
        }
        b
    };
    let ok = npy(
        "[('x', '<u2'), ('y', '<u2'), ('t', '<u8'), ('p', '|u1'), ('pad', '|u1')]",
        &[1, 0, 2, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, 7],
        3,
    );
    match nmc::npy::parse_input(&ok).unwrap() {
        nmc::npy::Input::Events(e) => {
            assert_eq!(
                (e.x, e.y, e.t, e.p),
                (vec![1; 3], vec![2; 3], vec![9; 3], vec![1; 3])
            )
        }
        nmc::npy::Input::Dense(_) => panic!("not events"),
    }
    let no_p = npy("[('x', '<u4'), ('y', '<u4'), ('t', '<u4')]", &[0; 12], 2);
    let e = nmc::npy::parse_input(&no_p).unwrap_err();
    assert!(e.contains("field 'p'"), "{e}");
    let float_t = npy(
        "[('x', '<u4'), ('y', '<u4'), ('t', '<f8'), ('p', '<u4')]",
        &[0; 20],
        1,
    );
    assert!(nmc::npy::parse_input(&float_t)
        .unwrap_err()
        .contains("integer"));
    let negative = npy(
        "[('x', '<i4'), ('y', '<u4'), ('t', '<u4'), ('p', '<u4')]",
        &[255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        1,
    );
    assert!(nmc::npy::parse_input(&negative)
        .unwrap_err()
        .contains("negative"));
    let short = npy(
        "[('x', '<u4'), ('y', '<u4'), ('t', '<u4'), ('p', '<u4')]",
        &[0; 16],
        1,
    );
    assert!(nmc::npy::parse_input(&short[..short.len() - 4]).is_err());
}
