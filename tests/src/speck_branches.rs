//! Branching networks on Speck as sinabs 3 maps them (docs/chips.md §2.9): a layer with two
//! destinations and a merge (a layer reading the sum of two spike maps of one shape, both
//! through its one kernel). Random residual networks run bit-exactly against the rate-mode
//! reference interpreter and their artifacts have the destinations and sources the model asks
//! for; what sinabs cannot map is refused, naming the layer, the rule and what would map.

use crate::speck::check_bit_exact;
use nmc::synth::{attr_int, attr_ints, ModelBuilder, Rng};

fn options() -> nmc::Options {
    nmc::Options::new(nmc::Target::lookup("speck").unwrap())
}

/// Adds `conv(x)` (k×k, stride 1 or 2, "same" padding, no bias) and a ReLU; returns the output
/// name and its `[c, h, w]`.
#[allow(clippy::too_many_arguments)]
fn conv_relu(
    b: &mut ModelBuilder,
    rng: &mut Rng,
    name: &str,
    x: &str,
    [c, h]: [usize; 2],
    f: usize,
    k: usize,
    stride: usize,
) -> (String, [usize; 2]) {
    let w: Vec<f32> = (0..f * c * k * k).map(|_| rng.uniform(-0.5, 0.7)).collect();
    let (wn, cn, an) = (
        format!("{name}_w"),
        format!("{name}_c"),
        format!("{name}_a"),
    );
    b.init(&wn, &[f as i64, c as i64, k as i64, k as i64], &w);
    let p = (k - 1) / 2;
    b.node(
        "Conv",
        &[x, &wn],
        &[&cn],
        vec![
            attr_ints("kernel_shape", &[k as i64, k as i64]),
            attr_ints("pads", &[p as i64; 4]),
            attr_ints("strides", &[stride as i64, stride as i64]),
        ],
    );
    b.node("Relu", &[&cn], &[&an], vec![]);
    (an, [f, (h + 2 * p - k) / stride + 1])
}

/// A dense head `Flatten → Gemm` over `x` of `[c, h, h]`.
fn head(b: &mut ModelBuilder, rng: &mut Rng, x: &str, [c, h]: [usize; 2], n: usize) {
    b.node("Flatten", &[x], &["flat"], vec![]);
    let w: Vec<f32> = (0..n * c * h * h).map(|_| rng.uniform(-0.5, 0.5)).collect();
    b.init("wf", &[n as i64, (c * h * h) as i64], &w);
    b.init("bf", &[n as i64], &vec![0.05; n]);
    b.node(
        "Gemm",
        &["flat", "wf", "bf"],
        &["y"],
        vec![attr_int("transB", 1)],
    );
    b.output("y");
}

/// A random residual network (seeded): a stem convolution, then 1–3 blocks, each either a plain
/// convolution, `a → b = relu(conv(a))` (same shape) and `relu(conv(a + b))`, or two branches
/// of `a` pooled differently (`conv(avgpool(a))` and a stride-2 `conv(a)`) merged, then a dense
/// head. Returns the model, the input shape, the number of merges and of the
/// differently-pooled branch pairs in it.
fn random_residual(seed: u64) -> (Vec<u8>, [usize; 3], usize, usize) {
    let mut rng = Rng::new(seed);
    let pick = |rng: &mut Rng, n: u64| (rng.next_u64() % n) as usize;
    let c0 = 1 + pick(&mut rng, 2);
    let s0 = 8 + 2 * pick(&mut rng, 5);
    let mut b = ModelBuilder::new("residual", 13);
    b.input("x", &[-1, c0 as i64, s0 as i64, s0 as i64]);
    let f0 = 2 + pick(&mut rng, 6);
    let (mut prev, mut shape) = conv_relu(&mut b, &mut rng, "stem", "x", [c0, s0], f0, 3, 1);
    let (mut merges, mut pooled) = (0, 0);
    for blk in 0..1 + pick(&mut rng, 3) {
        let f = 2 + pick(&mut rng, 8);
        let k = [1, 3, 5][pick(&mut rng, 3)].min(shape[1]);
        let stride = if shape[1] >= 6 && rng.unit() < 0.4 {
            2
        } else {
            1
        };
        if rng.unit() < 0.7 {
            let kb = [1, 3][pick(&mut rng, 2)];
            let (bn, _) = conv_relu(
                &mut b,
                &mut rng,
                &format!("r{blk}"),
                &prev,
                shape,
                shape[0],
                kb,
                1,
            );
            let sum = format!("sum{blk}");
            b.node("Add", &[&prev, &bn], &[&sum], vec![]);
            let (o, s) = conv_relu(
                &mut b,
                &mut rng,
                &format!("m{blk}"),
                &sum,
                shape,
                f,
                k,
                stride,
            );
            (prev, shape) = (o, s);
            merges += 1;
        } else if shape[1] >= 4 && shape[1] % 2 == 0 && rng.unit() < 0.5 {
            // Two destinations with different poolings (sinabs 3 pools per destination):
            // c = relu(conv(avgpool(a))) and d = relu(conv_stride2(a)) meet in a merge.
            let half = [shape[0], shape[1] / 2];
            let pn = format!("pool{blk}");
            b.node(
                "AveragePool",
                &[&prev],
                &[&pn],
                vec![
                    attr_ints("kernel_shape", &[2, 2]),
                    attr_ints("strides", &[2, 2]),
                ],
            );
            let (cn, _) = conv_relu(&mut b, &mut rng, &format!("q{blk}"), &pn, half, f, 3, 1);
            let (dn, _) = conv_relu(&mut b, &mut rng, &format!("d{blk}"), &prev, shape, f, 2, 2);
            let sum = format!("sum{blk}");
            b.node("Add", &[&cn, &dn], &[&sum], vec![]);
            let (o, s) = conv_relu(
                &mut b,
                &mut rng,
                &format!("m{blk}"),
                &sum,
                [f, half[1]],
                f,
                3,
                1,
            );
            (prev, shape) = (o, s);
            merges += 1;
            pooled += 1;
        } else {
            let (o, s) = conv_relu(
                &mut b,
                &mut rng,
                &format!("p{blk}"),
                &prev,
                shape,
                f,
                k,
                stride,
            );
            (prev, shape) = (o, s);
        }
    }
    let classes = 2 + pick(&mut rng, 8);
    head(&mut b, &mut rng, &prev, shape, classes);
    (b.finish(), [c0, s0, s0], merges, pooled)
}

fn samples(rng: &mut Rng, n: usize, len: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            (0..len)
                .map(|_| {
                    if rng.unit() < 0.4 {
                        rng.uniform(0.0, 1.5)
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect()
}

#[test]
fn random_residual_networks_run_bit_exact_with_merges_and_destination_pooling() {
    let (mut ran, mut merged, mut mixed_pools) = (0, 0, 0);
    for seed in 0..30 {
        let (bytes, [c, h, w], merges, pooled) = random_residual(seed);
        let imported =
            nmc::onnx::import_bytes(&bytes, None).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let mut rng = Rng::new(seed + 2000);
        let xs = samples(&mut rng, 3, c * h * w);
        let calib: Vec<Vec<Vec<f32>>> = xs.iter().map(|s| vec![s.clone()]).collect();
        let compiled = nmc::driver::compile_graph(imported.graph, &calib, &options(), 0)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        check_bit_exact(&format!("seed {seed}"), &compiled, &xs, &[1, 4, 9]);
        // Each merge is a core with two sources, one of them also sending to the merge's
        // other source: two destinations.
        let art = nmc_speck::decode(&compiled.artifact).unwrap();
        let mut sources = [0usize; 9];
        for l in art.cnn_layers.iter().filter(|l| l.used) {
            for d in &l.destinations {
                sources[d.layer as usize] += 1;
            }
        }
        let two_sources = sources.iter().filter(|&&n| n == 2).count();
        let two_dests = art
            .cnn_layers
            .iter()
            .filter(|l| l.destinations.len() == 2)
            .count();
        assert_eq!(two_sources, merges, "seed {seed}: merges on the chip");
        assert_eq!(
            two_dests, merges,
            "seed {seed}: layers with two destinations"
        );
        // A pooling of one branch runs as that destination's pooling, not on a core.
        let mixed = art
            .cnn_layers
            .iter()
            .filter(|l| {
                let pools: std::collections::BTreeSet<u32> =
                    l.destinations.iter().map(|d| d.pooling).collect();
                pools.len() == 2
            })
            .count();
        assert_eq!(
            mixed, pooled,
            "seed {seed}: destinations pooled differently"
        );
        ran += 1;
        merged += merges;
        mixed_pools += pooled;
    }
    assert_eq!(ran, 30);
    assert!(merged >= 20, "only {merged} merges in the random networks");
    assert!(
        mixed_pools >= 5,
        "only {mixed_pools} per-destination poolings"
    );
}

/// The compile error of a model for Speck (it must not compile).
fn refusal(bytes: &[u8]) -> nmc::Error {
    let imported = nmc::onnx::import_bytes(bytes, None).unwrap();
    match nmc::driver::compile_graph(imported.graph, &[], &options(), 0) {
        Ok(_) => panic!("compiled"),
        Err(e) => e,
    }
}

/// x [2, 8, 8] → stem → `body` (given the stem's output) → head; the body returns its output.
fn model(body: impl FnOnce(&mut ModelBuilder, &mut Rng, &str) -> (String, [usize; 2])) -> Vec<u8> {
    let mut rng = Rng::new(7);
    let mut b = ModelBuilder::new("m", 13);
    b.input("x", &[-1, 2, 8, 8]);
    let (a, _) = conv_relu(&mut b, &mut rng, "stem", "x", [2, 8], 4, 3, 1);
    let (o, s) = body(&mut b, &mut rng, &a);
    head(&mut b, &mut rng, &o, s, 3);
    b.finish()
}

#[test]
fn merges_sinabs_cannot_map_are_refused_naming_rule_and_fix() {
    // A convolution's output added to a map (a ResNet shortcut): two kernels on one core.
    let e = refusal(&model(|b, rng, a| {
        let w: Vec<f32> = (0..4 * 4 * 9).map(|_| rng.uniform(-0.5, 0.5)).collect();
        b.init("w2", &[4, 4, 3, 3], &w);
        b.node(
            "Conv",
            &[a, "w2"],
            &["c2"],
            vec![
                attr_ints("kernel_shape", &[3, 3]),
                attr_ints("pads", &[1; 4]),
            ],
        );
        b.node("Add", &["c2", a], &["s"], vec![]);
        b.node("Relu", &["s"], &["r"], vec![]);
        ("r".into(), [4, 8])
    }));
    let m = e.to_string();
    assert_eq!(e.exit_code(), 1, "{m}");
    assert!(
        m.contains("different kernels") && m.contains("relu(conv(x) + x)"),
        "{m}"
    );
    // An average pool on one operand only: its spikes stand for a quarter as much.
    let e = refusal(&model(|b, rng, a| {
        b.node(
            "AveragePool",
            &[a],
            &["p"],
            vec![
                attr_ints("kernel_shape", &[2, 2]),
                attr_ints("strides", &[2, 2]),
            ],
        );
        let (r, s) = conv_relu(b, rng, "r", "p", [4, 4], 4, 3, 1);
        b.node("Add", &["p", &r], &["s"], vec![]);
        conv_relu(b, rng, "m", "s", s, 4, 3, 1)
    }));
    let m = e.to_string();
    assert!(
        m.contains("\"/") || m.contains("layer %"),
        "names the layer: {m}"
    );
    assert!(
        m.contains("different kernels") && m.contains("same pooling"),
        "{m}"
    );
    // Three maps summed before one convolution: sinabs' Merge joins two.
    let e = refusal(&model(|b, rng, a| {
        let (r1, s) = conv_relu(b, rng, "r1", a, [4, 8], 4, 3, 1);
        let (r2, _) = conv_relu(b, rng, "r2", a, [4, 8], 4, 1, 1);
        b.node("Add", &[a, &r1], &["s1"], vec![]);
        b.node("Add", &["s1", &r2], &["s2"], vec![]);
        conv_relu(b, rng, "m", "s2", s, 4, 3, 1)
    }));
    let m = e.to_string();
    assert!(
        m.contains("sums 3 maps") && m.contains("two at a time"),
        "{m}"
    );
    // A map added to itself.
    let e = refusal(&model(|b, rng, a| {
        b.node("Add", &[a, a], &["s"], vec![]);
        conv_relu(b, rng, "m", "s", [4, 8], 4, 3, 1)
    }));
    let m = e.to_string();
    assert!(m.contains("adds a map to itself"), "{m}");
    // Three consumers of one layer: the chip has two destinations per layer.
    let e = refusal(&model(|b, rng, a| {
        let (r1, s) = conv_relu(b, rng, "r1", a, [4, 8], 4, 3, 1);
        let (r2, _) = conv_relu(b, rng, "r2", a, [4, 8], 4, 3, 1);
        let (r3, _) = conv_relu(b, rng, "r3", a, [4, 8], 4, 3, 1);
        b.node("Add", &[&r1, &r2], &["s1"], vec![]);
        let (m1, _) = conv_relu(b, rng, "m1", "s1", s, 4, 3, 1);
        b.node("Add", &[&m1, &r3], &["s2"], vec![]);
        conv_relu(b, rng, "m2", "s2", s, 4, 3, 1)
    }));
    let m = e.to_string();
    assert_eq!(e.exit_code(), 3, "a fan-out beyond two is a limit: {m}");
    assert!(m.contains("exceeds speck's 2 destinations"), "{m}");
}
