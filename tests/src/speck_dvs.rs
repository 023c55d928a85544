//! Speck's DVS layer: a pooling of a 128×128 two-polarity input runs in the DVS layer (sum and
//! average pooling), the emulator equals the rate-mode reference on dense inputs and on event
//! streams (binned by span and by a fixed `--dt`), the region of interest, mirrors and polarity
//! selection move events exactly as the chip does (a mirrored stream through a mirroring DVS
//! layer equals the plain stream through a plain one), hostile DVS fields are decode errors, and
//! every refusal names the layer or flag, the rule and the fix.

use crate::common::{snap, temp_dir};
use nmc::synth::{attr_int, attr_ints, ModelBuilder, Rng};
use nmc_backend::{DvsOptions, EventArray, EventBinning, Polarity};
use nmc_ir::Interpreter;

/// x `[c, h, w]` → AveragePool `pool` → Conv 3×3 (4 channels, stride 2, pad 1) → Relu →
/// Flatten → Gemm (5 classes), with seeded random weights.
fn pooled_net(c: usize, h: usize, w: usize, pool: [usize; 2], seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut b = ModelBuilder::new("dvs", 13);
    b.input("x", &[-1, c as i64, h as i64, w as i64]);
    let mut prev = "x";
    if pool != [1, 1] {
        let k = [pool[0] as i64, pool[1] as i64];
        b.node(
            "AveragePool",
            &["x"],
            &["p"],
            vec![attr_ints("kernel_shape", &k), attr_ints("strides", &k)],
        );
        prev = "p";
    }
    let (ph, pw) = (h / pool[0], w / pool[1]);
    let f = 4;
    let wc: Vec<f32> = (0..f * c * 9).map(|_| rng.uniform(-0.4, 1.0)).collect();
    b.init("wc", &[f as i64, c as i64, 3, 3], &wc);
    b.node(
        "Conv",
        &[prev, "wc"],
        &["conv"],
        vec![
            attr_ints("kernel_shape", &[3, 3]),
            attr_ints("pads", &[1, 1, 1, 1]),
            attr_ints("strides", &[2, 2]),
        ],
    );
    b.node("Relu", &["conv"], &["r"], vec![]);
    b.node("Flatten", &["r"], &["flat"], vec![]);
    let (oh, ow) = (ph.div_ceil(2), pw.div_ceil(2));
    let n = 5;
    let wf: Vec<f32> = (0..n * f * oh * ow)
        .map(|_| rng.uniform(-0.3, 0.4))
        .collect();
    b.init("wf", &[n as i64, (f * oh * ow) as i64], &wf);
    b.node("Gemm", &["flat", "wf"], &["y"], vec![attr_int("transB", 1)]);
    b.output("y");
    b.finish()
}

/// Sparse non-negative dense samples of `numel` values.
fn samples(numel: usize, n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            (0..numel)
                .map(|_| {
                    if rng.unit() < 0.3 {
                        rng.uniform(0.0, 1.0)
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect()
}

fn compile(bytes: &[u8], opt_level: u8, dvs: DvsOptions, calib: &[Vec<f32>]) -> nmc::Compiled {
    let mut opts = nmc::Options::new(nmc::Target::lookup("speck").unwrap());
    opts.opt_level = opt_level;
    opts.dvs = dvs;
    let g = nmc::onnx::import_bytes(bytes, None).unwrap().graph;
    let calib: Vec<Vec<Vec<f32>>> = calib.iter().map(|s| vec![s.clone()]).collect();
    nmc::driver::compile_graph(g, &calib, &opts, 0).unwrap_or_else(|e| panic!("{e}"))
}

/// A random event stream on a `w × h` sensor region starting at `(x0, y0)`.
fn events(n: usize, [x0, y0]: [u32; 2], [w, h]: [u32; 2], seed: u64) -> EventArray {
    let mut rng = Rng::new(seed);
    let mut e = EventArray::default();
    let mut t = 1_000u64;
    for _ in 0..n {
        // Clustered activity (a blob that drifts) so that pooled pixels see many events.
        e.x.push(x0 + (rng.next_u64() % u64::from(w)) as u32);
        e.y.push(y0 + (rng.next_u64() % u64::from(h)) as u32);
        e.p.push((rng.next_u64() % 2) as u32);
        t += rng.next_u64() % 40;
        e.t.push(t);
    }
    e
}

fn map_events(e: &EventArray, f: impl Fn(u32, u32, u32) -> (u32, u32, u32)) -> EventArray {
    let mut out = e.clone();
    for i in 0..e.len() {
        let (x, y, p) = f(e.x[i], e.y[i], e.p[i]);
        (out.x[i], out.y[i], out.p[i]) = (x, y, p);
    }
    out
}

/// The emulator's output counts on an event stream, checked against the rate-mode reference on
/// the same binning (through the network's own view of the DVS layer).
fn run_checked(c: &nmc::Compiled, e: &EventArray, binning: &EventBinning) -> Vec<i64> {
    let art = nmc::LoadedArtifact::decode(&c.artifact).unwrap();
    let run = art
        .run_events_binned(e, binning, &Default::default())
        .unwrap();
    let steps = art.bin_events_binned(e, binning).unwrap();
    assert_eq!(steps.len() as u32, run.perf.timesteps);
    let want = Interpreter::new(&c.quantized)
        .unwrap()
        .run_events(&steps)
        .unwrap();
    assert_eq!(run.int_outputs[0], want.counts[0], "emulator vs reference");
    run.int_outputs[0].clone()
}

fn span(t: u32) -> EventBinning {
    EventBinning {
        timesteps: Some(t),
        ..Default::default()
    }
}

/// 2×128×128 → 4×4 pooling in the DVS layer: sum pooling (-O2's `avgpool-to-sumpool` moves the
/// 1/16 onto the convolution) and average pooling (-O0: the rate quantiser's avg → sum), and a
/// non-square 2×4 pooling; each equals the reference on dense samples and on event streams.
#[test]
fn input_pooling_runs_in_the_dvs_layer_bit_exact() {
    for (h, w, pool, opt, kind) in [
        (128, 128, [4, 4], 2, "kind=sum"),
        (128, 128, [4, 4], 0, "kind=avg"),
        (64, 128, [2, 4], 0, "kind=avg"),
    ] {
        let bytes = pooled_net(2, h, w, pool, 7);
        let xs = samples(2 * h * w, 3, 11);
        let c = compile(&bytes, opt, DvsOptions::default(), &xs);
        let layer_ir = nmc_ir::print(c.layers());
        assert!(layer_ir.contains(kind), "-O{opt}: {layer_ir}");
        let listing = nmc_speck::listing(&nmc_speck::decode(&c.artifact).unwrap());
        let want = format!("sum pooling {}x{} (x, y)", pool[1], pool[0]);
        assert!(listing.contains(&want), "{listing}");
        assert!(
            listing.contains(&format!("conv input [2, {}, {}]", h / pool[0], w / pool[1])),
            "{listing}"
        );
        crate::speck::check_bit_exact(&format!("-O{opt} {pool:?}"), &c, &xs, &[1, 4]);
        let e = events(4000, [0, 0], [w as u32, h as u32], 5);
        let counts = run_checked(&c, &e, &span(6));
        assert!(counts.iter().any(|v| *v > 0), "{pool:?}: no output spikes");
        run_checked(
            &c,
            &e,
            &EventBinning {
                dt: Some(2000),
                ..Default::default()
            },
        );
    }
}

/// The same network with other DVS options: each option changes the result, and undoing it on
/// the events (mirroring the stream, shifting it into the region, swapping x and y, flipping
/// polarities) gives the plain run back, exactly; dense inputs through the options equal the
/// reference too.
#[test]
fn crop_mirror_and_polarity_move_events_as_the_chip_does() {
    let (h, w) = (64u32, 64u32);
    let bytes = pooled_net(2, h as usize, w as usize, [4, 4], 21);
    let xs = samples((2 * h * w) as usize, 2, 3);
    let build = |dvs: DvsOptions| compile(&bytes, 2, dvs, &xs);
    let plain = build(DvsOptions::default());
    let e = events(3000, [0, 0], [w, h], 9);
    let b = span(5);
    let base = run_checked(&plain, &e, &b);
    assert!(base.iter().any(|v| *v > 0));
    let mirrored = |dvs: DvsOptions, f: &dyn Fn(u32, u32, u32) -> (u32, u32, u32)| {
        let c = build(dvs);
        crate::speck::check_bit_exact("dvs options", &c, &xs, &[3]);
        let changed = run_checked(&c, &e, &b);
        let undone = run_checked(&c, &map_events(&e, f), &b);
        (changed, undone)
    };
    let opt = |mx, my, swap| DvsOptions {
        mirror_x: mx,
        mirror_y: my,
        swap_xy: swap,
        ..Default::default()
    };
    let (c, u) = mirrored(opt(true, false, false), &|x, y, p| (w - 1 - x, y, p));
    assert_ne!(c, base, "mirror x changes the result");
    assert_eq!(u, base, "mirror x of a mirrored stream");
    let (c, u) = mirrored(opt(false, true, false), &|x, y, p| (x, h - 1 - y, p));
    assert_ne!(c, base, "mirror y changes the result");
    assert_eq!(u, base, "mirror y of a mirrored stream");
    let (c, u) = mirrored(opt(false, false, true), &|x, y, p| (y, x, p));
    assert_ne!(c, base, "the diagonal mirror changes the result");
    assert_eq!(u, base, "diagonal mirror of a transposed stream");
    let (_, u) = mirrored(opt(true, true, true), &|x, y, p| (h - 1 - y, w - 1 - x, p));
    assert_eq!(u, base, "all three mirrors");
    // Crop: the region at (32, 16) of the 128×128 sensor; events outside it are dropped.
    let crop = build(DvsOptions {
        crop: Some([32, 16]),
        ..Default::default()
    });
    crate::speck::check_bit_exact("crop", &crop, &xs, &[3]);
    let shifted = map_events(&e, |x, y, p| (x + 32, y + 16, p));
    assert_eq!(
        run_checked(&crop, &shifted, &b),
        base,
        "shifted into the region"
    );
    let mut noisy = shifted.clone();
    let outside = events(500, [96, 80], [32, 48], 4);
    for i in 0..outside.len() {
        // Interleaved in time so that the binning's span is unchanged.
        noisy.x.push(outside.x[i]);
        noisy.y.push(outside.y[i]);
        noisy.p.push(outside.p[i]);
        noisy.t.push(shifted.t[i % shifted.len()]);
    }
    assert_eq!(run_checked(&crop, &noisy, &b), base, "outside the region");
    assert_ne!(
        run_checked(&crop, &e, &b),
        base,
        "the crop changes the result"
    );
    // Polarity: a one-channel model merges both (flipping every polarity changes nothing) or
    // takes one (the run equals the merged run on that polarity's events alone).
    let one = pooled_net(1, h as usize, w as usize, [4, 4], 8);
    let xs1 = samples((h * w) as usize, 2, 4);
    let with = |p: Option<Polarity>| {
        compile(
            &one,
            2,
            DvsOptions {
                polarity: p,
                ..Default::default()
            },
            &xs1,
        )
    };
    let merged = with(None);
    assert_eq!(merged.artifact, with(Some(Polarity::Merge)).artifact);
    let m = run_checked(&merged, &e, &b);
    assert_eq!(
        run_checked(&merged, &map_events(&e, |x, y, p| (x, y, 1 - p)), &b),
        m
    );
    for (pol, keep) in [(Polarity::On, 1), (Polarity::Off, 0)] {
        let c = with(Some(pol));
        crate::speck::check_bit_exact("polarity", &c, &xs1, &[3]);
        let only = run_checked(&c, &e, &b);
        assert_ne!(only, m, "{pol:?} changes the result");
        // The other polarity's events turned into this one's: they count now.
        let as_kept = map_events(
            &e,
            |x, y, p| if p == keep { (x, y, p) } else { (x, y, keep) },
        );
        let mut filtered = e.clone();
        let keep_idx: Vec<usize> = (0..e.len()).filter(|&i| e.p[i] == keep).collect();
        filtered.x = keep_idx.iter().map(|&i| e.x[i]).collect();
        filtered.y = keep_idx.iter().map(|&i| e.y[i]).collect();
        filtered.p = keep_idx.iter().map(|&i| e.p[i]).collect();
        filtered.t = keep_idx.iter().map(|&i| e.t[i]).collect();
        let fixed = EventBinning {
            dt: Some(8000),
            t_start: Some(e.t[0]),
            timesteps: Some(8),
        };
        assert_eq!(
            run_checked(&c, &e, &fixed),
            run_checked(&merged, &filtered, &fixed),
            "{pol:?}: only its events count"
        );
        assert_ne!(
            run_checked(&c, &as_kept, &fixed),
            run_checked(&c, &e, &fixed)
        );
    }
}

/// What a DVS refusal says: kind, exit code, message.
fn refusal(bytes: &[u8], dvs: DvsOptions) -> (nmc::Error, String) {
    let mut opts = nmc::Options::new(nmc::Target::lookup("speck").unwrap());
    opts.dvs = dvs;
    let g = nmc::onnx::import_bytes(bytes, None).unwrap().graph;
    let e = match nmc::driver::compile_graph(g, &[], &opts, 0) {
        Ok(_) => panic!("compiled"),
        Err(e) => e,
    };
    let s = format!("kind {} exit {}\n{e}\n", e.kind(), e.exit_code());
    (e, s)
}

#[test]
fn dvs_refusals_name_the_rule_and_the_fix() {
    // (snapshot, model, options, kind, exit code, what the message says)
    type Case = (
        &'static str,
        Vec<u8>,
        DvsOptions,
        &'static str,
        i32,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "dvs-pool-3",
            pooled_net(2, 96, 96, [3, 3], 1),
            DvsOptions::default(),
            "fit",
            3,
            "the DVS layer pools by 1, 2 or 4 per axis",
        ),
        (
            "dvs-pool-divides",
            pooled_net(2, 18, 20, [4, 4], 1),
            DvsOptions::default(),
            "fit",
            3,
            "does not divide the input map 18×20",
        ),
        (
            "dvs-crop-outside",
            pooled_net(2, 64, 64, [4, 4], 1),
            DvsOptions {
                crop: Some([80, 0]),
                ..Default::default()
            },
            "usage",
            2,
            "must lie inside the 128×128 sensor",
        ),
        (
            "dvs-crop-unaligned",
            pooled_net(2, 64, 64, [4, 4], 1),
            DvsOptions {
                crop: Some([6, 8]),
                ..Default::default()
            },
            "usage",
            2,
            "a multiple of the pooling",
        ),
        (
            "dvs-polarity-two-channels",
            pooled_net(2, 64, 64, [4, 4], 1),
            DvsOptions {
                polarity: Some(Polarity::On),
                ..Default::default()
            },
            "usage",
            2,
            "needs a one-channel input",
        ),
        (
            "dvs-options-without-dvs",
            pooled_net(3, 16, 16, [1, 1], 1),
            DvsOptions {
                mirror_x: true,
                ..Default::default()
            },
            "usage",
            2,
            "takes inputs of 1 or 2 polarity channels",
        ),
    ];
    for (name, bytes, dvs, kind, code, says) in cases {
        let (e, text) = refusal(&bytes, dvs);
        assert_eq!((e.kind(), e.exit_code()), (kind, code), "{name}: {e}");
        assert!(text.contains(says), "{name}: {text}");
        snap("errors-speck", name, &text);
    }
    // A layer that reads the input unpooled beside the DVS layer's pooling.
    let mut b = ModelBuilder::new("two-views", 13);
    b.input("x", &[-1, 2, 16, 16]);
    b.node(
        "AveragePool",
        &["x"],
        &["p"],
        vec![
            attr_ints("kernel_shape", &[2, 2]),
            attr_ints("strides", &[2, 2]),
        ],
    );
    b.init("w", &[2, 2, 1, 1], &[0.5; 4]);
    b.node("Conv", &["p", "w"], &["a"], vec![]);
    b.node("Conv", &["x", "w"], &["b"], vec![]);
    b.node("Relu", &["a"], &["y0"], vec![]);
    b.node("Relu", &["b"], &["y1"], vec![]);
    b.output("y0");
    b.output("y1");
    let (e, text) = refusal(&b.finish(), DvsOptions::default());
    assert_eq!(e.exit_code(), 1, "{e}");
    assert!(
        text.contains("reads the input unpooled while %3 (\"AveragePool_0\") reads it through the DVS layer's pooling"),
        "{text}"
    );
    // The 3×3 pooling error names its layer.
    let (e, _) = refusal(&pooled_net(2, 96, 96, [3, 3], 1), DvsOptions::default());
    assert!(e.to_string().contains("layer %2"), "{e}");
    // Other targets have no DVS layer.
    let mut opts = nmc::Options::new(nmc::Target::lookup("loihi2").unwrap());
    opts.dvs.mirror_y = true;
    let e = opts.check().unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("loihi2 has no event sensor"), "{e}");
}

/// Hostile DVS fields in an artifact are decode errors, never panics.
#[test]
fn hostile_dvs_fields_are_corrupt_artifacts() {
    let bytes = pooled_net(2, 128, 128, [4, 4], 2);
    let c = compile(&bytes, 2, DvsOptions::default(), &[]);
    let good = nmc_speck::decode(&c.artifact).unwrap();
    fn xy(x: u32, y: u32) -> Option<nmc_speck::artifact::Xy> {
        Some(nmc_speck::artifact::Xy { x, y })
    }
    type Edit = fn(&mut nmc_speck::artifact::DvsLayerConfig);
    let edits: Vec<(Edit, &str)> = vec![
        (|d| d.pooling = xy(3, 4), "pooling 3x4"),
        (|d| d.pooling = xy(2, 4), "region is the model input"),
        (|d| d.cut = xy(32, 31), "not inside"),
        (|d| d.origin = xy(40, 40), "not inside"),
        (|d| d.input_shape = xy(129, 128), "sensor region"),
        (|d| d.polarities = 9, "polarities 9"),
        (|d| d.merge = true, "region is the model input"),
        (|d| d.mirror_diagonal = true, ""),
        (
            |d| {
                d.pass_sensor_events = false;
                d.mirror_x = true
            },
            "bypassed",
        ),
        (|d| d.destinations[0].pooling = 2, "destination pooling"),
    ];
    for (edit, says) in edits {
        let mut a = good.clone();
        edit(a.dvs_layer.as_mut().unwrap());
        match nmc_speck::decode(&nmc_speck::encode(&a)) {
            Err(e) => assert!(e.to_string().contains(says), "{says}: {e}"),
            // A square region with mirrors is a valid artifact: it must run.
            Ok(a) => {
                assert_eq!(says, "", "decoded");
                let mut emu = nmc_speck::Emulator::new(&a).unwrap();
                emu.run_dense(&vec![0.5; 2 * 128 * 128], 2, false).unwrap();
            }
        }
    }
}

/// Writes an event stream as specksim's structured `.npy` (`x, y, t, p`, each `<u4`/`<u8`).
fn write_events(path: &std::path::Path, e: &EventArray) {
    let header =
        format!("{{'descr': [('x', '<u4'), ('y', '<u4'), ('t', '<u8'), ('p', '<u4')], 'fortran_order': False, 'shape': ({},), }}", e.len());
    let mut h = header.into_bytes();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(b' ');
    }
    h.push(b'\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(&h);
    for i in 0..e.len() {
        b.extend_from_slice(&e.x[i].to_le_bytes());
        b.extend_from_slice(&e.y[i].to_le_bytes());
        b.extend_from_slice(&e.t[i].to_le_bytes());
        b.extend_from_slice(&e.p[i].to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn cli_takes_dvs_flags_and_fixed_dt_binning() {
    let d = temp_dir("speck-dvs-cli");
    let model = d.join("m.onnx");
    std::fs::write(&model, pooled_net(2, 64, 64, [4, 4], 3)).unwrap();
    let art = d.join("m.speck");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let cli = |args: &[&str]| {
        let mut argv = vec!["nmc"];
        argv.extend_from_slice(args);
        nmc::cli::run_args(argv)
    };
    cli(&[
        "compile",
        &s(&model),
        "--target",
        "speck",
        "--dvs-crop",
        "32,64",
        "--dvs-mirror",
        "x,diagonal",
        "-o",
        &s(&art),
    ])
    .unwrap();
    let a = nmc_speck::decode(&std::fs::read(&art).unwrap()).unwrap();
    let dvs = a.dvs_layer.as_ref().unwrap();
    assert!(dvs.mirror_x && !dvs.mirror_y && dvs.mirror_diagonal);
    assert_eq!(dvs.origin, Some(nmc_speck::artifact::Xy { x: 8, y: 16 }));
    let listing = nmc_speck::listing(&a);
    assert!(
        listing.contains("region of interest (8, 16)..=(23, 31)")
            && listing.contains("mirror x on y off diagonal on"),
        "{listing}"
    );
    snap("listing-speck", "dvs-pool-crop-mirror", &listing);
    let json = nmc::LoadedArtifact::decode(&std::fs::read(&art).unwrap())
        .unwrap()
        .to_json();
    assert_eq!(json["dvs_layer"]["pooling"]["x"], 4, "{json}");
    assert_eq!(json["dvs_layer"]["mirror_diagonal"], true, "{json}");
    // 1000 µs per step from t = 1000: 3000 events over ≈ 60 ms.
    let e = events(3000, [32, 64], [64, 64], 1);
    let ev = d.join("e.npy");
    write_events(&ev, &e);
    let report = d.join("r.json");
    cli(&[
        "run",
        &s(&art),
        "--input",
        &s(&ev),
        "--dt",
        "1000",
        "--t-start",
        "1000",
        "--report",
        &s(&report),
    ])
    .unwrap();
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let last = *e.t.iter().max().unwrap();
    assert_eq!(r["timesteps"], (last - 1000) / 1000 + 1);
    cli(&[
        "run",
        &s(&art),
        "--input",
        &s(&ev),
        "--dt",
        "1000",
        "--timesteps",
        "4",
        "--report",
        &s(&report),
    ])
    .unwrap();
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["timesteps"], 4);
    let dropped = EventBinning {
        timesteps: Some(4),
        dt: Some(1000),
        t_start: None,
    }
    .dropped(&e, 4);
    assert!(dropped.0 == 0 && dropped.1 > 2000, "{dropped:?}");
    // Usage errors: --t-start without --dt, --dt 0, --dt on dense input, a bad crop.
    for (args, says) in [(vec!["--t-start", "5"], "--dt"), (vec!["--dt", "0"], "0")] {
        let mut argv = vec![
            "run",
            art.to_str().unwrap(),
            "--input",
            ev.to_str().unwrap(),
        ];
        argv.extend(args);
        let e = cli(&argv).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(e.to_string().contains(says), "{e}");
    }
    let dense = d.join("x.npy");
    nmc::npy::write(
        &dense,
        &nmc::npy::Array {
            shape: vec![1, 2, 64, 64],
            data: vec![0.0; 2 * 64 * 64],
        },
    )
    .unwrap();
    let e = cli(&["run", &s(&art), "--input", &s(&dense), "--dt", "10"]).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("bin an event stream"), "{e}");
    let e = cli(&[
        "compile",
        &s(&model),
        "--target",
        "speck",
        "--dvs-crop",
        "3",
        "-o",
        &s(&art),
    ])
    .unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("X,Y"), "{e}");
}
