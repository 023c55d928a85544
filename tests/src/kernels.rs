//! The Loihi 2 emulator's dense kernels against its event-by-event path, which is the emulator
//! as it was before the kernels: outputs and every counter of every step identical, on every
//! shipped case and on random networks, per sample and streamed, with one thread and several.

use crate::common::{cases, compiled, CALIB_SAMPLES};
use nmc::synth::{conv_net, sparse_mlp, ConvLayer, Rng};
use nmc_loihi2::{Emulator, Kernels};

/// Integer frames of the artifact's input: `n` random frames, each redrawing a fraction of the
/// previous one (0.05, 0.5, 1.0 in turn), so both kernels get chosen.
fn frames(a: &nmc_loihi2::Artifact, n: usize, seed: u64) -> Vec<Vec<i64>> {
    let input = &a.inputs[0];
    let len: usize = input.shape.iter().map(|&d| d as usize).product();
    let mut rng = Rng::new(seed);
    let draw = |rng: &mut Rng| {
        let span = i64::from(input.max) - i64::from(input.min) + 1;
        i64::from(input.min) + (rng.next_u64() % span as u64) as i64
    };
    let mut cur: Vec<i64> = (0..len).map(|_| draw(&mut rng)).collect();
    (0..n)
        .map(|f| {
            let p = [0.05, 0.5, 1.0][f % 3];
            for v in cur.iter_mut() {
                if rng.unit() < p {
                    *v = draw(&mut rng);
                }
            }
            cur.clone()
        })
        .collect()
}

/// Outputs and reports of each frame: the first two from a reset (`run`), the rest as a
/// stream (`run_continue`, 2 steps per frame so that frames overlap in flight).
fn trace(a: &nmc_loihi2::Artifact, xs: &[Vec<i64>], kernels: Kernels) -> Vec<String> {
    let spec = nmc_loihi2::loihi2().with_chips(a.header.as_ref().map_or(1, |h| h.chips).max(1));
    let mut emu = Emulator::new(a, &spec).expect("loads");
    emu.set_kernels(kernels);
    let t = nmc_loihi2::min_timesteps(a);
    xs.iter()
        .enumerate()
        .map(|(i, x)| {
            let r = if i < 2 {
                emu.run(std::slice::from_ref(x), t)
            } else {
                emu.run_continue(std::slice::from_ref(x), 2)
            };
            format!("{:?}", r.expect("runs"))
        })
        .collect()
}

fn assert_kernels_agree(name: &str, artifact: &[u8], seed: u64) {
    let a = nmc_loihi2::decode(artifact).expect("decodes");
    let xs = frames(&a, 7, seed);
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    let reference = pool(1).install(|| trace(&a, &xs, Kernels::Events));
    // Three threads: big layers split the kernels' rows and positions over tasks.
    for k in [Kernels::Auto, Kernels::Dense] {
        let got = pool(3).install(|| trace(&a, &xs, k));
        for (i, (g, r)) in got.iter().zip(&reference).enumerate() {
            assert!(
                g == r,
                "{name}: frame {i} with {k:?} differs from the events path"
            );
        }
    }
}

#[test]
fn dense_kernels_equal_the_events_path_on_shipped_cases() {
    for case in cases() {
        assert_kernels_agree(&case.name, &compiled(case).artifact, 1);
    }
}

fn compile(onnx: &[u8], shape: &[usize], seed: u64) -> nmc::Compiled {
    let imported = nmc::onnx::import_bytes(onnx, None).expect("imports");
    let per: usize = shape.iter().product();
    let mut rng = Rng::new(seed);
    let samples: Vec<Vec<Vec<f32>>> = (0..4)
        .map(|_| vec![(0..per).map(|_| rng.uniform(0.0, 1.0)).collect()])
        .collect();
    let opts = nmc::Options::new(nmc::Target::lookup("loihi2").unwrap());
    nmc::driver::compile_graph(imported.graph, &samples, &opts, 0).expect("compiles")
}

#[test]
fn dense_kernels_equal_the_events_path_on_random_networks() {
    let mut rng = Rng::new(42);
    for seed in 0..4u64 {
        let widths: Vec<usize> = (0..3)
            .map(|_| 8 + (rng.next_u64() % 120) as usize)
            .collect();
        let sparsity = [0.0, 0.3, 0.7, 0.9][seed as usize];
        let onnx = sparse_mlp(&widths, sparsity, seed);
        let c = compile(&onnx, &widths[..1], seed);
        assert_kernels_agree(
            &format!("mlp {widths:?} sparsity {sparsity}"),
            &c.artifact,
            seed,
        );
    }
    for seed in 0..3u64 {
        let layers: Vec<ConvLayer> = (0..3)
            .map(|_| ConvLayer {
                channels: 2 + (rng.next_u64() % 6) as usize,
                kernel: [1, 3, 5][(rng.next_u64() % 3) as usize],
                stride: 1 + (rng.next_u64() % 2) as usize,
            })
            .collect();
        let input = [1 + seed as usize, 12, 10];
        let onnx = conv_net(input, &layers, 5, seed);
        let c = compile(&onnx, &input, seed);
        assert_kernels_agree(&format!("cnn {layers:?}"), &c.artifact, seed);
    }
}

#[test]
fn parallel_kernels_on_layers_big_enough_to_split_equal_the_events_path() {
    let onnx = sparse_mlp(&[512, 600, 10], 0.0, 5);
    let c = compile(&onnx, &[512], 5);
    assert_kernels_agree("mlp 512-600-10", &c.artifact, 5);
    let l = |channels, kernel, stride| ConvLayer {
        channels,
        kernel,
        stride,
    };
    let input = [4, 32, 32];
    let onnx = conv_net(input, &[l(8, 3, 1), l(12, 3, 1), l(8, 3, 2)], 4, 6);
    let c = compile(&onnx, &input, 6);
    assert_kernels_agree("cnn 4x32x32", &c.artifact, 6);
}

#[test]
fn dense_kernels_equal_the_events_path_on_tiled_mappings() {
    // Spatial tiles charge each event per tile (the taps landing on the tile's neurons) and
    // route it to the tiles whose windows hold it; the batched charge must agree event by event.
    use crate::tiling::{forced, pooled_net};
    use nmc_backend::TileShape;
    let input = [2, 48, 48];
    let c = compile(&pooled_net(48, 21), &input, 21);
    let plain_in = [3, 24, 20];
    let l = |channels, kernel, stride| ConvLayer {
        channels,
        kernel,
        stride,
    };
    let plain = compile(
        &conv_net(plain_in, &[l(6, 3, 1), l(8, 5, 2), l(4, 3, 1)], 4, 22),
        &plain_in,
        22,
    );
    for (name, c) in [("pooled_net", &c), ("conv_net", &plain)] {
        for (k, shape) in [(1, 3, 1), (2, 2, 3), (1, 4, 2)].into_iter().enumerate() {
            let shape = TileShape {
                channels: shape.0,
                rows: shape.1,
                cols: shape.2,
            };
            let m = forced(c, shape);
            let art = nmc_loihi2::lower(&c.quantized, &m, 0, &nmc_loihi2::loihi2()).unwrap();
            assert_kernels_agree(
                &format!("{name} tiled {shape:?}"),
                &nmc_loihi2::encode(&art),
                k as u64,
            );
        }
    }
}

#[test]
fn runs_are_identical_with_one_thread_and_several() {
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    for case in cases() {
        let art = nmc::LoadedArtifact::decode(&compiled(case).artifact).unwrap();
        let n = CALIB_SAMPLES.min(case.inputs.shape[0]).min(16);
        let per = case.inputs.data.len() / case.inputs.shape[0];
        let mut shape = case.inputs.shape.clone();
        shape[0] = n;
        let xs = nmc::npy::Array {
            shape,
            data: case.inputs.data[..n * per].to_vec(),
        };
        let show = |r: nmc_backend::RunResult| {
            format!(
                "{:?} {:?} {}",
                r.outputs.data,
                r.int_outputs,
                serde_json::to_string(&r.perf).unwrap()
            )
        };
        let one = pool(1).install(|| show(art.run(&xs, None).unwrap()));
        let three = pool(3).install(|| show(art.run(&xs, None).unwrap()));
        assert!(one == three, "{}: 1 and 3 threads differ", case.name);
    }
}
