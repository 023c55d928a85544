//! The emulator equals the reference interpreter bit for bit on random Akida models, mapped on
//! the real device and on a device with tiny SRAMs (which forces spatial bands and channel
//! groups), and a damaged artifact never panics the decoder or the emulator.

mod common;

use common::*;
use nmc_akd1000::{akd1000, ChipSpec, Emulator};

/// A random model within the Akida 1.0 constraints: InputConv2D (+ optional max pool), a
/// Conv2D, maybe a max-pooled Conv2D and another Conv2D or a global-average-pooled one, and a
/// dense head with or without activation.
fn random_model(seed: u64) -> nmc_ir::Graph {
    let mut r = Rng(seed.wrapping_mul(7919));
    let c = r.pick(&[1usize, 3]);
    let (h, w) = (r.range(5, 12) as usize, r.range(5, 12) as usize);
    let mut b = Builder::new(vec![c, h, w], 8, seed);
    let k = r.pick(&[3usize, 5, 7]);
    let stride = r.pick(&[1usize, 2, 3]);
    let same = r.next().is_multiple_of(2) || k > h.min(w);
    // A third of the first convolutions have explicit pads, PyTorch's symmetric `k / 2` or any
    // below the kernel: where they are neither Same nor Valid the host pads the input.
    let pads = match r.range(0, 2) {
        0 => Some([k / 2; 4]),
        1 => Some([0; 4].map(|_| r.range(0, k as i64 - 1) as usize)),
        _ => None,
    }
    .filter(|p| {
        h + p[0] + p[2] >= k && w + p[1] + p[3] >= k && w + p[1] + p[3] >= 5 && h + p[0] + p[2] >= 5
    });
    let (oh, ow) = match pads {
        Some(p) => b.conv_out_padded(k, stride, p),
        None => b.conv_out(k, stride, same),
    };
    // Pools whose stride divides the map (akida pads an odd last window: refused).
    let pool = if stride == 1 && oh >= 2 && ow >= 2 {
        match r.range(0, 3) {
            1 if ow % 2 == 0 => max_pool2([1, 2], [1, 2]),
            2 if oh % 2 == 0 => max_pool2([2, 1], [2, 1]),
            3 if oh % 2 == 0 && ow % 2 == 0 => max_pool(2, 2),
            _ => None,
        }
    } else {
        None
    };
    b.conv(ConvSpec {
        co: r.range(1, 12) as usize,
        k,
        stride,
        same,
        pads,
        weight_bits: r.pick(&[1, 2, 4, 8]),
        act_bits: Some(r.pick(&[1, 2, 4])),
        pool,
        pool_first: false,
        max_step: 400,
    });
    let mut spec = conv(
        r.range(1, 16) as usize,
        r.pick(&[1, 3, 5, 7]),
        1,
        Some(r.pick(&[1, 2, 4])),
    );
    if spec.k == 3 {
        spec.stride = r.pick(&[1, 2]);
    }
    spec.weight_bits = r.pick(&[1, 2, 4]);
    b.conv(spec);
    let [_, oh, ow]: [usize; 3] = b.shape().try_into().unwrap();
    match r.range(0, 2) {
        0 if oh >= 2 && ow >= 2 => {
            let mut s = conv(r.range(1, 10) as usize, 3, 1, Some(4));
            // akida pools "same": only stride-2 pools of even maps are the model's pooling.
            s.pool = if oh % 2 == 0 && ow % 2 == 0 {
                max_pool(2, 2)
            } else {
                None
            };
            b.conv(s);
            b.conv(conv(r.range(1, 8) as usize, r.pick(&[1, 3]), 1, Some(2)));
        }
        1 if oh >= 3 => {
            let mut s = conv(r.range(1, 10) as usize, 3, 1, Some(4));
            s.pool = global_sum(oh, ow);
            s.pool_first = true;
            s.max_step = 600;
            b.conv(s);
        }
        _ => {}
    }
    let act = r.next().is_multiple_of(3).then(|| r.pick(&[1, 2, 4]));
    b.dense(r.range(1, 10) as usize, r.pick(&[1, 2, 4]), act, 60);
    b.finish()
}

/// Lowers, round-trips and emulates `g` against the reference; returns the most slices and row
/// bands of a layer, and whether the input is padded on the host.
fn check(g: &nmc_ir::Graph, spec: &ChipSpec, seed: u64) -> (usize, usize, bool) {
    let art =
        nmc_akd1000::lower(g, None, seed, spec).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    let bytes = nmc_akd1000::encode(&art);
    let back = nmc_akd1000::decode(&bytes).unwrap();
    assert_eq!(back, art);
    let emu = Emulator::new(&art, spec).unwrap();
    let n_in: usize = g.ty(g.inputs[0]).numel();
    let mut r = Rng(seed ^ 0x5eed);
    for _ in 0..3 {
        let x = random_input(&mut r, n_in, 8);
        let (outs, perf) = emu.run(std::slice::from_ref(&x)).unwrap();
        assert_eq!(outs[0], reference(g, &x), "seed {seed}: emulator differs");
        assert!(perf.latency_ns > 0.0 && perf.energy_nj > 0.0);
    }
    let slices: usize = art.layers.iter().map(|l| l.slices.len()).max().unwrap_or(0);
    let bands = art
        .layers
        .iter()
        .map(|l| {
            let mut r: Vec<u32> = l.slices.iter().map(|s| s.r0).collect();
            r.sort();
            r.dedup();
            r.len()
        })
        .max()
        .unwrap_or(0);
    // The artifact reports the model's input shape whether or not the host pads it.
    assert_eq!(
        art.inputs[0].shape,
        g.ty(g.inputs[0])
            .shape
            .iter()
            .map(|d| *d as u32)
            .collect::<Vec<_>>()
    );
    (slices, bands, !art.inputs[0].host_pads.is_empty())
}

#[test]
fn emulator_equals_reference_on_random_models() {
    let (mut split, mut banded, mut padded) = (0, 0, 0);
    for seed in 0..40 {
        let g = random_model(seed);
        padded += usize::from(check(&g, &akd1000(), seed).2);
        // The same model on a tiny weight SRAM, then on a tiny input SRAM: the smallest capacity
        // of each it maps with (convolutions split by channel groups, then by row bands; dense
        // layers are never split, docs/chips.md §7).
        let mut mapped = false;
        for words in [8u64, 16, 32, 64, 128, 256, 512, 1024, 7168] {
            let mut tiny = akd1000();
            tiny.weight_sram_bytes = words * 50 / 8;
            if nmc_akd1000::map_graph(&g, &tiny).is_ok() {
                let (s, _, _) = check(&g, &tiny, seed);
                split += usize::from(s > 1);
                mapped = true;
                break;
            }
        }
        for bytes in [16u64, 32, 64, 128, 256, 512, 1024, 43_008] {
            let mut tiny = akd1000();
            tiny.input_sram_bytes = bytes;
            if nmc_akd1000::map_graph(&g, &tiny).is_ok() {
                let (_, b, _) = check(&g, &tiny, seed);
                banded += usize::from(b > 1);
                break;
            }
        }
        assert!(mapped || seed > 0, "seed {seed} maps on no tiny device");
    }
    assert!(
        split >= 3 && banded >= 5 && padded >= 5,
        "{split} split, {banded} banded and {padded} host-padded models"
    );
}

#[test]
fn damaged_artifacts_never_panic() {
    let spec = akd1000();
    let g = random_model(3);
    let art = nmc_akd1000::lower(&g, None, 0, &spec).unwrap();
    let bytes = nmc_akd1000::encode(&art);
    let mut r = Rng(99);
    let n_in: usize = g.ty(g.inputs[0]).numel();
    let x = random_input(&mut r, n_in, 8);
    let mut decoded = 0;
    for i in 0..3000 {
        let mut b = bytes.clone();
        match i % 3 {
            0 => {
                let at = r.range(0, b.len() as i64 - 1) as usize;
                b[at] ^= 1 << r.range(0, 7);
            }
            1 => {
                let at = r.range(0, b.len() as i64 - 1) as usize;
                b[at] = r.next() as u8;
            }
            _ => b.truncate(r.range(0, b.len() as i64 - 1) as usize),
        }
        if let Ok(a) = nmc_akd1000::decode(&b) {
            decoded += 1;
            let _ = nmc_akd1000::listing(&a);
            let emu = Emulator::new(&a, &spec).unwrap();
            let _ = emu.run(std::slice::from_ref(&x));
        }
    }
    assert!(decoded > 0, "some mutations (of weights) still decode");
}

#[test]
fn structural_mutations_are_rejected_not_panicking() {
    let spec = akd1000();
    let g = random_model(5);
    let good = nmc_akd1000::lower(&g, None, 0, &spec).unwrap();
    type Mutation = fn(&mut nmc_akd1000::Artifact);
    let cases: Vec<(&str, Mutation)> = vec![
        ("source", |a| a.layers[1].source_index = 9),
        ("unit", |a| a.layers[0].slices[0].unit = 99),
        ("np slot", |a| a.units[1].id = 7),
        ("np type", |a| a.units.last_mut().unwrap().unit_type = 1),
        ("weights", |a| {
            a.layers[1].weights.pop();
        }),
        ("weight range", |a| a.layers[1].weights[0] = 100),
        ("kernel", |a| a.layers[1].kernel = vec![4, 4]),
        ("step", |a| a.layers[0].act_step[0] = 0),
        ("threshold", |a| a.layers[0].threshold[0] = 1 << 20),
        ("coverage", |a| a.layers[0].slices[0].c1 -= 1),
        ("output", |a| a.outputs[0].layer = 7),
        ("shape", |a| a.layers[0].pre_shape = vec![0]),
        ("bits", |a| a.layers[1].input_bits = 3),
    ];
    for (what, f) in cases {
        let mut a = good.clone();
        f(&mut a);
        let e = nmc_akd1000::decode(&nmc_akd1000::encode(&a));
        assert!(
            matches!(e, Err(nmc_akd1000::ArtifactError::Corrupt(_))),
            "{what}: {e:?}"
        );
        assert!(Emulator::new(&a, &spec).is_err(), "{what}");
    }
}
