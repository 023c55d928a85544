//! Spatial tiling of Loihi 2 populations (issue #12 item 1): populations split by output rows and
//! columns as well as channels run bit-exactly against the reference interpreter, each tile is
//! charged its own neurons and receives only its input window, camera-sized inputs compile, a
//! hostile tiling in an artifact is an error, and tiling a hot layer over more cores lowers the
//! emulated latency.

use nmc::synth::{attr_int, attr_ints, conv_net, ConvLayer, ModelBuilder, Rng};
use nmc_backend::{greedy_shapes, place, TileShape};
use nmc_ir::{Graph, Interpreter, Mapping, Op, Value};
use nmc_loihi2::{ChipSpec, Cores, Emulator, PerfReport};

fn l(channels: usize, kernel: usize, stride: usize) -> ConvLayer {
    ConvLayer {
        channels,
        kernel,
        stride,
    }
}

/// Uniform random samples of `shape`.
fn samples(shape: &[usize], n: usize, seed: u64) -> Vec<Vec<f32>> {
    let per: usize = shape.iter().product();
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| (0..per).map(|_| rng.uniform(0.0, 1.0)).collect())
        .collect()
}

/// Compiles for Loihi 2 with default options, calibrated on four random samples.
fn compile(onnx: &[u8], shape: &[usize], seed: u64) -> nmc::Compiled {
    let imported = nmc::onnx::import_bytes(onnx, None).expect("imports");
    let calib: Vec<Vec<Vec<f32>>> = samples(shape, 4, seed)
        .into_iter()
        .map(|s| vec![s])
        .collect();
    let opts = nmc::Options::new(nmc::Target::lookup("loihi2").unwrap());
    nmc::driver::compile_graph(imported.graph, &calib, &opts, 0).expect("compiles")
}

/// The integers feeding the graph's output Dequantize, from the reference interpreter.
fn reference(graph: &Graph, x: &[f32]) -> Vec<i64> {
    let vals = Interpreter::new(graph).unwrap().run_all(&[x]).unwrap();
    let out = graph.outputs[0].node;
    assert!(matches!(graph.node(out).op, Op::Dequantize { .. }));
    match vals[graph.node(out).inputs[0].index()].as_ref().unwrap() {
        Value::I64(v) => v.clone(),
        Value::F32(_) => panic!("chip output is not integer"),
    }
}

/// A four-chip Loihi 2 system with at most `neurons` neurons per core.
fn small(neurons: u32) -> ChipSpec {
    let mut s = nmc_loihi2::loihi2().with_chips(4);
    s.max_neurons_per_core = neurons;
    s
}

/// Layers split spatially (some slice names rows or columns).
fn tiled_layers(m: &Mapping) -> usize {
    m.layers
        .values()
        .filter(|s| s.iter().any(|s| s.is_tile()))
        .count()
}

/// Lowers `mapping` on `spec`, round-trips the artifact through its bytes, runs `xs` on the
/// emulator and checks every output against the reference interpreter; returns the reports.
fn run_exact(
    what: &str,
    c: &nmc::Compiled,
    mapping: &Mapping,
    spec: &ChipSpec,
    xs: &[Vec<f32>],
) -> Vec<PerfReport> {
    let art = nmc_loihi2::lower(&c.quantized, mapping, 0, spec).expect("lowers");
    let art = nmc_loihi2::decode(&nmc_loihi2::encode(&art)).expect("decodes");
    let mut emu = Emulator::new(&art, spec).expect("loads");
    let input = &art.inputs[0];
    let q = nmc_ir::QuantParams {
        scale: input.scale,
        min: input.min,
        max: input.max,
    };
    let t = nmc_loihi2::min_timesteps(&art);
    xs.iter()
        .enumerate()
        .map(|(i, x)| {
            let ints: Vec<i64> = x.iter().map(|v| nmc_ir::quantize(*v, &q)).collect();
            let (outs, report) = emu.run(&[ints], t).expect("runs");
            assert_eq!(
                outs[0],
                reference(&c.quantized, x),
                "{what}: sample {i} differs from the quantised reference"
            );
            report
        })
        .collect()
}

/// A conv, named after its output; pads `k / 2`.
fn conv(b: &mut ModelBuilder, rng: &mut Rng, x: &str, cin: usize, cout: usize, k: usize) -> String {
    let id = x;
    let scale = (6.0 / (cin * k * k) as f64).sqrt() as f32;
    let w: Vec<f32> = (0..cout * cin * k * k)
        .map(|_| rng.uniform(-scale, scale))
        .collect();
    let bias: Vec<f32> = (0..cout).map(|_| rng.uniform(-0.05, 0.05)).collect();
    let (wn, bn, yn) = (format!("w{id}"), format!("b{id}"), format!("c{id}"));
    b.init(&wn, &[cout as i64, cin as i64, k as i64, k as i64], &w);
    b.init(&bn, &[cout as i64], &bias);
    let p = (k / 2) as i64;
    b.node(
        "Conv",
        &[x, &wn, &bn],
        &[&yn],
        vec![
            attr_ints("kernel_shape", &[k as i64, k as i64]),
            attr_ints("pads", &[p, p, p, p]),
        ],
    );
    let r = format!("r{id}");
    b.node("Relu", &[&yn], &[&r], vec![]);
    r
}

/// A `[2, side, side]` CNN whose first layer is a 4×4/4 average pooling of the input (a DVS
/// camera's ON/OFF frames reduced), then a 3×3 convolution with overlapping 3×3/2 max pooling
/// (pad 1, as ResNet's stem), another convolution, and a dense classifier.
pub(crate) fn pooled_net(side: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut b = ModelBuilder::new("pooled_net", 13);
    b.input("x", &[-1, 2, side as i64, side as i64]);
    b.node(
        "AveragePool",
        &["x"],
        &["p0"],
        vec![
            attr_ints("kernel_shape", &[4, 4]),
            attr_ints("strides", &[4, 4]),
        ],
    );
    let y = conv(&mut b, &mut rng, "p0", 2, 6, 3);
    b.node(
        "MaxPool",
        &[&y],
        &["p1"],
        vec![
            attr_ints("kernel_shape", &[3, 3]),
            attr_ints("strides", &[2, 2]),
            attr_ints("pads", &[1, 1, 1, 1]),
        ],
    );
    let y = conv(&mut b, &mut rng, "p1", 6, 4, 3);
    let hw = side / 8;
    let features = 4 * hw * hw;
    b.node("Flatten", &[&y], &["flat"], vec![]);
    let w: Vec<f32> = (0..5 * features).map(|_| rng.uniform(-0.1, 0.1)).collect();
    b.init("fw", &[5, features as i64], &w);
    b.init("fb", &[5], &[0.01; 5]);
    b.node(
        "Gemm",
        &["flat", "fw", "fb"],
        &["out"],
        vec![attr_int("transB", 1)],
    );
    b.output("out");
    b.finish()
}

#[test]
fn small_neuron_limits_tile_layers_and_outputs_stay_bit_exact() {
    let plain = conv_net([2, 24, 20], &[l(6, 3, 1), l(8, 3, 2), l(4, 5, 1)], 5, 1);
    let nets = [
        ("conv_net 2x24x20", plain, vec![2, 24, 20]),
        ("pooled_net 2x48x48", pooled_net(48, 2), vec![2, 48, 48]),
    ];
    for (name, onnx, shape) in nets {
        let c = compile(&onnx, &shape, 3);
        let xs = samples(&shape, 3, 4);
        for neurons in [40, 130, 600] {
            let spec = small(neurons);
            let m = nmc_backend::greedy(&c.quantized, &Cores(spec.clone()))
                .unwrap_or_else(|e| panic!("{name}, {neurons} neurons per core: {e}"));
            if neurons <= 130 {
                assert!(tiled_layers(&m) > 0, "{name}: nothing tiled at {neurons}");
            }
            run_exact(&format!("{name}, {neurons} neurons"), &c, &m, &spec, &xs);
        }
    }
}

/// The greedy shapes of `c`'s layers with every convolution set to `shape` where its plane
/// allows (bands are clamped to the channels and rows).
pub(crate) fn forced(c: &nmc::Compiled, shape: TileShape) -> Mapping {
    let spec = nmc_loihi2::loihi2();
    let cores = Cores(spec);
    let shapes: Vec<_> = greedy_shapes(&c.quantized, &cores)
        .unwrap()
        .into_iter()
        .map(|(id, s)| {
            let conv = c.quantized.ty(id).shape.len() == 3;
            (id, if conv { shape } else { s })
        })
        .collect();
    place(&c.quantized, &cores, &shapes, &[], &[], None).expect("fits")
}

#[test]
fn explicit_row_and_column_tiles_run_bit_exact_and_kernels_agree() {
    let onnx = pooled_net(48, 5);
    let c = compile(&onnx, &[2, 48, 48], 6);
    let xs = samples(&[2, 48, 48], 3, 7);
    for shape in [
        TileShape {
            channels: 1,
            rows: 3,
            cols: 1,
        },
        TileShape {
            channels: 2,
            rows: 2,
            cols: 3,
        },
        TileShape {
            channels: 1,
            rows: 6,
            cols: 6,
        },
    ] {
        let m = forced(&c, shape);
        assert!(tiled_layers(&m) >= 2, "{shape:?} tiles the convolutions");
        let text = nmc::driver::print_partitioned(&c.quantized, &m);
        assert!(text.contains(" rows ["), "{text}");
        let (_, back) = nmc::driver::parse_partitioned(&text).unwrap();
        assert_eq!(back.as_ref(), Some(&m), "partitioned IR round-trips tiles");
        run_exact(&format!("{shape:?}"), &c, &m, &nmc_loihi2::loihi2(), &xs);
        // The listing and `inspect --format json` name each tile's rectangle.
        let art = nmc_loihi2::lower(&c.quantized, &m, 0, &nmc_loihi2::loihi2()).unwrap();
        let listing = nmc_loihi2::listing(&art);
        assert!(listing.contains("tile channels [0, "), "{listing}");
        let loaded = nmc::LoadedArtifact::decode(&nmc_loihi2::encode(&art)).unwrap();
        let json = loaded.to_json().to_string();
        assert!(json.contains("\"rows\":[0,"), "{json}");
    }
}

#[test]
fn tiles_hold_their_own_neurons_and_receive_only_their_windows() {
    // No pooling: the tiles' neurons partition each plane, so the work summed over cores is the
    // untiled work, while messages reach only the tiles whose windows hold them.
    let shape = [2, 24, 24];
    let onnx = conv_net(shape, &[l(4, 3, 1), l(4, 3, 1)], 3, 8);
    let c = compile(&onnx, &shape, 9);
    let xs = samples(&shape, 2, 10);
    let spec = nmc_loihi2::loihi2();
    let untiled = nmc_backend::greedy(&c.quantized, &Cores(spec.clone())).unwrap();
    assert_eq!(tiled_layers(&untiled), 0);
    let rows = 4;
    let tiled = forced(
        &c,
        TileShape {
            channels: 1,
            rows,
            cols: 1,
        },
    );
    let sum = |r: &PerfReport, f: fn(&nmc_backend::Counters) -> u64| -> u64 {
        r.cores.iter().map(|c| f(&c.counts)).sum()
    };
    let a = run_exact("untiled", &c, &untiled, &spec, &xs);
    let b = run_exact("tiled", &c, &tiled, &spec, &xs);
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(sum(a, |c| c.syn_ops), sum(b, |c| c.syn_ops));
        assert_eq!(sum(a, |c| c.mem_reads), sum(b, |c| c.mem_reads));
        assert_eq!(sum(a, |c| c.neuron_updates), sum(b, |c| c.neuron_updates));
        // Each convolution's input reaches one core untiled; tiled, each element reaches the
        // one or two tiles whose windows hold it (a 3×3 kernel's halo is one row), not all four.
        let (ma, mb) = (sum(a, |c| c.msgs_in), sum(b, |c| c.msgs_in));
        assert!(
            mb > ma && mb < ma * 2,
            "messages in: {ma} untiled, {mb} tiled"
        );
    }
}

#[test]
fn a_128x128_dvs_cnn_compiles_with_tiles_and_runs_bit_exact() {
    let shape = [2, 128, 128];
    let plain = conv_net(shape, &[l(4, 3, 1), l(8, 3, 2), l(8, 3, 2)], 10, 11);
    let nets = [("conv_net", plain), ("pooled_net", pooled_net(128, 12))];
    for (name, onnx) in nets {
        let c = compile(&onnx, &shape, 13);
        assert!(
            tiled_layers(&c.mapping) > 0,
            "{name}: a 128×128 plane needs tiles"
        );
        let art = nmc::LoadedArtifact::decode(&c.artifact).unwrap();
        let xs = samples(&shape, 2, 14);
        let arr = nmc::npy::Array {
            shape: vec![2, 2, 128, 128],
            data: xs.concat(),
        };
        let run = art.run(&arr, None).unwrap();
        for (i, x) in xs.iter().enumerate() {
            assert_eq!(
                run.int_outputs[i],
                reference(&c.quantized, x),
                "{name}: sample {i}"
            );
        }
    }
}

#[test]
fn hostile_tilings_in_an_artifact_are_errors() {
    let onnx = pooled_net(48, 15);
    let c = compile(&onnx, &[2, 48, 48], 16);
    let m = forced(
        &c,
        TileShape {
            channels: 2,
            rows: 2,
            cols: 2,
        },
    );
    let good = nmc_loihi2::lower(&c.quantized, &m, 0, &nmc_loihi2::loihi2()).unwrap();
    let p = good
        .populations
        .iter()
        .position(|p| p.slices.iter().any(|s| s.row_end != 0))
        .expect("a tiled population");
    let dense = good.populations.len() - 1;
    type Damage = Box<dyn Fn(&mut nmc_loihi2::Artifact)>;
    let damage: Vec<(&str, Damage)> = vec![
        (
            "row band beyond the plane",
            Box::new(move |a| a.populations[p].slices[1].row_end = 10_000),
        ),
        (
            "a whole-plane slice among tiles",
            Box::new(move |a| {
                let s = &mut a.populations[p].slices[0];
                (s.row_start, s.row_end, s.col_start, s.col_end) = (0, 0, 0, 0);
            }),
        ),
        (
            "overlapping column bands",
            Box::new(move |a| a.populations[p].slices[1].col_start = 0),
        ),
        (
            "a tile missing",
            Box::new(move |a| {
                a.populations[p].slices.pop();
            }),
        ),
        (
            "channel bands tiled differently",
            Box::new(move |a| {
                let n = a.populations[p].slices.len();
                a.populations[p].slices[n - 1].row_start += 1;
            }),
        ),
        (
            "rows on a dense population",
            Box::new(move |a| {
                a.populations[dense].slices[0].row_end = 1;
            }),
        ),
        (
            "huge row numbers",
            Box::new(move |a| {
                let s = &mut a.populations[p].slices[0];
                s.row_start = u32::MAX - 1;
                s.row_end = u32::MAX;
            }),
        ),
    ];
    for (what, f) in damage {
        let mut a = good.clone();
        f(&mut a);
        match nmc_loihi2::decode(&nmc_loihi2::encode(&a)) {
            Err(nmc_loihi2::ArtifactError::Corrupt(m)) => {
                assert!(m.contains("slice"), "{what}: {m}")
            }
            other => panic!("{what}: expected a corrupt-artifact error, got {other:?}"),
        }
    }
}

#[test]
fn a_tiling_finer_than_the_artifact_allows_is_an_error() {
    // 72×72 one-position tiles: more tile positions than an artifact may list (each would fit
    // a core, so only the cap stops the tables sized by them).
    let shape = [1, 72, 72];
    let c = compile(&conv_net(shape, &[l(1, 3, 1)], 2, 32), &shape, 33);
    let mut a = nmc_loihi2::decode(&c.artifact).unwrap();
    let p = &mut a.populations[0];
    p.slices = (0..72 * 72)
        .map(|k| nmc_loihi2::artifact::SliceMsg {
            core: 0,
            start: 0,
            end: 1,
            row_start: k / 72,
            row_end: k / 72 + 1,
            col_start: k % 72,
            col_end: k % 72 + 1,
        })
        .collect();
    match nmc_loihi2::decode(&nmc_loihi2::encode(&a)) {
        Err(nmc_loihi2::ArtifactError::Corrupt(m)) => {
            assert!(m.contains("exceed 4096 tile positions"), "{m}")
        }
        other => panic!("expected a corrupt-artifact error, got {other:?}"),
    }
}

#[test]
fn tiling_a_hot_layer_over_more_cores_lowers_emulated_latency() {
    // One wide convolution (16 channels of 32×32) dominates; splitting its rows spreads its
    // synaptic work and neuron updates over more cores.
    let shape = [4, 32, 32];
    let onnx = conv_net(shape, &[l(16, 3, 1)], 4, 17);
    let c = compile(&onnx, &shape, 18);
    let xs = samples(&shape, 2, 19);
    let spec = nmc_loihi2::loihi2();
    let cores = Cores(spec.clone());
    let shapes = greedy_shapes(&c.quantized, &cores).unwrap();
    let mut last = f64::INFINITY;
    let mut seen = Vec::new();
    for extra_rows in [0, 1, 3, 7] {
        let mut tiles = vec![0; shapes.len()];
        tiles[0] = extra_rows;
        let m = place(&c.quantized, &cores, &shapes, &[], &tiles, None).unwrap();
        let reports = run_exact(&format!("{extra_rows} extra rows"), &c, &m, &spec, &xs);
        let latency = reports.iter().map(|r| r.latency_ns).sum::<f64>() / reports.len() as f64;
        seen.push((m.layers[&shapes[0].0].len(), latency));
        eprintln!("cores of the hot layer, latency per inference (ns): {seen:?}");
        assert!(
            latency < last,
            "latency does not fall with more tiles: {seen:?}"
        );
        last = latency;
    }
}

#[test]
fn the_floorline_model_charges_each_tile_what_the_emulator_counts() {
    // On one sample the activity profile is that sample's events (0 or 1 per value), so the
    // model's expected loads are the emulator's counts: synaptic operations, memory words and
    // messages in and out of every core, tiled or not.
    let onnx = pooled_net(48, 23);
    let c = compile(&onnx, &[2, 48, 48], 24);
    let x = samples(&[2, 48, 48], 1, 25);
    let calib: Vec<Vec<Vec<f32>>> = vec![vec![x[0].clone()]];
    let profile = nmc::cost::ActivityProfile::measure(&c.quantized, &calib).unwrap();
    let spec = nmc_loihi2::loihi2();
    let untiled = c.mapping.clone();
    for (name, m) in [
        ("untiled", untiled),
        (
            "tiled 2×3×2",
            forced(
                &c,
                TileShape {
                    channels: 2,
                    rows: 3,
                    cols: 2,
                },
            ),
        ),
    ] {
        let art = nmc_loihi2::lower(&c.quantized, &m, 0, &spec).unwrap();
        let loads = nmc_loihi2::floorline::modelled_loads(&art, &spec, &profile)
            .unwrap()
            .cores;
        let report = &run_exact(name, &c, &m, &spec, &x)[0];
        assert_eq!(loads.len(), report.cores.len());
        assert!(loads.len() > 3 && loads.iter().all(|l| l.s > 0.0 || l.m_in > 0.0));
        for (l, e) in loads.iter().zip(&report.cores) {
            let got = [l.s, l.r, l.m_in, l.m_out];
            let want = [
                e.counts.syn_ops,
                e.counts.mem_reads,
                e.counts.msgs_in,
                e.counts.msgs_out,
            ]
            .map(|v| v as f64);
            assert_eq!(got, want, "{name}: core {} (S, R, M in, M out)", l.id);
        }
    }
}

#[test]
fn fit_errors_come_only_when_no_tiling_fits_and_name_what_would() {
    // One channel of one output position needs its kernels (2 input channels × 3 × 3 bytes):
    // with less synaptic memory per core no tiling fits, and the error says what one needs.
    let shape = [2, 16, 16];
    let onnx = conv_net(shape, &[l(4, 3, 1)], 3, 26);
    let c = compile(&onnx, &shape, 27);
    let mut spec = nmc_loihi2::loihi2();
    spec.synapse_bytes_per_core = 10;
    let e = nmc_backend::greedy(&c.quantized, &Cores(spec)).unwrap_err();
    assert!(
        e.to_string()
            .contains("no tiling fits a core: even one channel of one output position needs synaptic memory (bytes): needs 18, a core has 10"),
        "{e}"
    );
    // 80 channels of 128×128 need 1.3 M neurons: tiles fit, one chip's 128 cores do not; the
    // error names the cores the layer needs and the smallest system.
    let mut b = ModelBuilder::new("wide", 13);
    b.input("x", &[-1, 1, 128, 128]);
    let w: Vec<f32> = (0..80 * 9).map(|i| ((i % 7) as f32 - 3.0) / 10.0).collect();
    b.init("w", &[80, 1, 3, 3], &w);
    b.node(
        "Conv",
        &["x", "w"],
        &["c"],
        vec![attr_ints("pads", &[1, 1, 1, 1])],
    );
    b.node("Relu", &["c"], &["y"], vec![]);
    b.output("y");
    let imported = nmc::onnx::import_bytes(&b.finish(), None).unwrap();
    let calib = vec![samples(&[1, 128, 128], 1, 28)];
    let opts = nmc::Options::new(nmc::Target::lookup("loihi2").unwrap());
    let e = nmc::driver::compile_graph(imported.graph.clone(), &calib, &opts, 0).unwrap_err();
    let m = e.to_string();
    assert_eq!(e.exit_code(), 3, "{m}");
    assert!(
        m.contains("Conv_0") && m.contains("row band(s)") && m.contains("use --chips 2"),
        "{m}"
    );
    let mut opts = opts;
    opts.auto_chips = true;
    let ok = nmc::driver::compile_graph(imported.graph, &calib, &opts, 0).unwrap();
    assert!(tiled_layers(&ok.mapping) == 1 && ok.mapping.cores_used() > 128);
}

#[test]
fn the_mapping_searches_tile_a_hot_layer_by_rows() {
    // Two channels of 64×64 fit one core, so channel bands can add one core at most; row bands
    // spread the layer further, and both searches use them.
    let shape = [2, 64, 64];
    let onnx = conv_net(shape, &[l(2, 3, 1)], 3, 29);
    let imported = nmc::onnx::import_bytes(&onnx, None).unwrap();
    let calib: Vec<Vec<Vec<f32>>> = samples(&shape, 2, 30)
        .into_iter()
        .map(|s| vec![s])
        .collect();
    for kind in [nmc::PartitionKind::Floorline, nmc::PartitionKind::Evolve] {
        let mut opts = nmc::Options::new(nmc::Target::lookup("loihi2").unwrap());
        opts.partition = kind;
        opts.evals = 40;
        let c = nmc::driver::compile_graph(imported.graph.clone(), &calib, &opts, 0).unwrap();
        let s = c.report.search.as_ref().expect("searched");
        eprintln!(
            "{kind:?}: greedy {:.0} ns on {} cores, chosen {:.0} ns on {} cores",
            s.greedy.latency_ns, s.greedy.cores, s.chosen.latency_ns, s.chosen.cores
        );
        assert!(
            s.chosen.latency_ns < s.greedy.latency_ns && tiled_layers(&c.mapping) > 0,
            "{kind:?}: greedy {} ns, chosen {} ns on {} cores, {} tiled layers",
            s.greedy.latency_ns,
            s.chosen.latency_ns,
            s.chosen.cores,
            tiled_layers(&c.mapping)
        );
        let xs = samples(&shape, 2, 31);
        run_exact(
            &format!("{kind:?}"),
            &c,
            &c.mapping,
            &nmc_loihi2::loihi2(),
            &xs,
        );
    }
}

#[test]
fn resnet18_at_224_compiles_for_loihi2_with_chips_auto() {
    // Its stem (64 channels of 112×112, 3×3/2 max pooling) has 12,544 neurons per channel: it
    // needs tiles, and the whole network needs several chips.
    let onnx = nmc::synth::resnet18(224, 1000, 7);
    let imported = nmc::onnx::import_bytes(&onnx, None).unwrap();
    let calib = vec![samples(&[3, 224, 224], 1, 34)];
    let mut opts = nmc::Options::new(nmc::Target::lookup("loihi2").unwrap());
    opts.auto_chips = true;
    let c = nmc::driver::compile_graph(imported.graph, &calib, &opts, 0).unwrap();
    let a = nmc_loihi2::decode(&c.artifact).unwrap();
    let chips = a.header.as_ref().map_or(0, |h| h.chips);
    eprintln!(
        "resnet18-224: {chips} chips, {} cores, {} tiled layers",
        c.mapping.cores_used(),
        tiled_layers(&c.mapping)
    );
    assert!(chips > 1 && tiled_layers(&c.mapping) >= 1);
    let stem = c
        .mapping
        .layers
        .values()
        .find(|s| s.iter().any(|s| s.is_tile()));
    assert!(stem.is_some_and(|s| s.iter().all(|s| s.rows.is_some())));
}
