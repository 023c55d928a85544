//! Host padding of the first convolution: an InputConv2D whose pads are neither TensorFlow's Same
//! nor Valid (PyTorch's stride-2 `padding=1` on an even image) runs Valid on an image the host
//! zero-pads. The artifact records the padding on the input and keeps the model's input shape,
//! the emulator pads before the HRC and equals the reference interpreter (which pads inside the
//! convolution) bit for bit, and two readers that need different padding are refused.

mod common;

use common::*;
use nmc_akd1000::{akd1000, AkError, Emulator};
use nmc_ir::Op;

/// An InputConv2D `k`×`k`, stride `s`, pads `pads` on `[c, h, w]`, then a Conv2D and a dense
/// head.
fn first_conv(c: usize, hw: [usize; 2], k: usize, s: usize, pads: [usize; 4]) -> nmc_ir::Graph {
    let mut b = Builder::new(vec![c, hw[0], hw[1]], 8, 11 + k as u64);
    let mut first = conv(6, k, s, Some(4));
    first.pads = Some(pads);
    first.weight_bits = 8;
    first.max_step = 400;
    b.conv(first);
    b.conv(conv(8, 3, 1, Some(4)));
    b.dense(5, 4, None, 1);
    b.finish()
}

fn emulate_against_reference(g: &nmc_ir::Graph, seed: u64) -> nmc_akd1000::Artifact {
    let spec = akd1000();
    let art = nmc_akd1000::lower(g, None, 0, &spec).unwrap();
    let back = nmc_akd1000::decode(&nmc_akd1000::encode(&art)).unwrap();
    assert_eq!(back, art, "the host padding survives encoding");
    let emu = Emulator::new(&art, &spec).unwrap();
    let n: usize = g.ty(g.inputs[0]).numel();
    let mut r = Rng(seed);
    for _ in 0..6 {
        let x = random_input(&mut r, n, 8);
        let (outs, _) = emu.run(std::slice::from_ref(&x)).unwrap();
        assert_eq!(
            outs[0],
            reference(g, &x),
            "emulator differs from the reference"
        );
    }
    // Inputs that light up the border: every value at its maximum.
    let x = vec![255i64; n];
    let (outs, _) = emu.run(std::slice::from_ref(&x)).unwrap();
    assert_eq!(outs[0], reference(g, &x), "all-255 input");
    art
}

#[test]
fn pytorch_stride_2_first_convolutions_run_valid_on_a_host_padded_image() {
    // 3×3 stride 2 pads 1 and 5×5 stride 2 pads 2 on even images (Same would be 0/0/1/1 and
    // 1/1/2/2), 7×7 stride 2 pads 3 on 3 channels, and asymmetric pads at stride 1.
    /// Channels, `[h, w]`, kernel, stride, pads.
    type Case = (usize, [usize; 2], usize, usize, [usize; 4]);
    let cases: [Case; 5] = [
        (1, [16, 16], 3, 2, [1; 4]),
        (3, [12, 10], 5, 2, [2; 4]),
        (3, [14, 14], 7, 2, [3; 4]),
        (1, [9, 8], 3, 1, [0, 2, 1, 0]),
        (1, [10, 12], 5, 3, [2; 4]),
    ];
    for (i, &(c, hw, k, s, pads)) in cases.iter().enumerate() {
        let g = first_conv(c, hw, k, s, pads);
        let art = emulate_against_reference(&g, i as u64);
        let input = &art.inputs[0];
        let padded = [c, hw[0] + pads[0] + pads[2], hw[1] + pads[1] + pads[3]];
        assert_eq!(input.shape, [c as u32, hw[0] as u32, hw[1] as u32]);
        assert_eq!(input.host_pads, pads.map(|p| p as u32));
        let l0 = &art.layers[0];
        assert_eq!(l0.pads, [0; 4], "the HRC runs Valid");
        assert_eq!(l0.in_shape, padded.map(|d| d as u32));
        // The neurons are the model's: the layer after reads the same map.
        let Op::Layer(_) = &g.node(g.node(g.outputs[0].node).inputs[0]).op else {
            panic!("output is a layer")
        };
        let conv0 = g
            .ids()
            .find(|id| matches!(g.node(*id).op, Op::Layer(_)))
            .unwrap();
        assert_eq!(
            l0.pre_shape,
            g.ty(conv0)
                .shape
                .iter()
                .map(|d| *d as u32)
                .collect::<Vec<_>>()
        );
        let listing = nmc_akd1000::listing(&art);
        let line = format!(
            "  host zero-padding top/left/bottom/right {}/{}/{}/{} (code 0 = real 0.0) -> {:?}",
            pads[0], pads[1], pads[2], pads[3], padded
        );
        assert!(listing.contains(&line), "{listing}");
        assert!(listing.contains("pads [0, 0, 0, 0]"), "{listing}");
    }
}

#[test]
fn same_and_valid_first_convolutions_are_not_host_padded() {
    for (k, s, pads) in [(3, 1, [1; 4]), (3, 2, [0, 0, 1, 1]), (5, 2, [0; 4])] {
        let g = first_conv(1, [8, 8], k, s, pads);
        let art = emulate_against_reference(&g, 3);
        assert!(art.inputs[0].host_pads.is_empty(), "{k}×{k}/{s} {pads:?}");
        assert_eq!(art.layers[0].pads, pads.map(|p| p as u32));
        assert!(!nmc_akd1000::listing(&art).contains("host zero-padding"));
    }
}

#[test]
fn the_emulator_takes_the_models_input_size_not_the_padded_one() {
    let g = first_conv(1, [8, 8], 3, 2, [1; 4]);
    let art = nmc_akd1000::lower(&g, None, 0, &akd1000()).unwrap();
    let emu = Emulator::new(&art, &akd1000()).unwrap();
    assert!(emu.run(&[vec![1; 64]]).is_ok());
    let e = emu.run(&[vec![1; 100]]).unwrap_err();
    assert!(e.to_string().contains("64"), "{e}");
}

#[test]
fn the_padded_width_is_what_the_hrc_limit_applies_to() {
    // 255 columns fit the HRC's [5, 256]; padded by 1 + 1 they do not.
    let g = first_conv(1, [6, 255], 3, 2, [1; 4]);
    let e = nmc_akd1000::map_graph(&g, &akd1000()).unwrap_err();
    let AkError::Constraint { rule, detail, .. } = &e else {
        panic!("{e}")
    };
    assert!(rule.contains("input width is in [5, 256]"), "{e}");
    assert_eq!(
        detail, "input 8×257 (H×W) after host padding top/left/bottom/right 1/1/1/1",
        "{e}"
    );
}

#[test]
fn two_readers_of_one_input_need_the_same_host_padding() {
    // Two InputConv2D on one input: one Same, one with PyTorch's stride-2 pads.
    let mut b = Builder::new(vec![1, 8, 8], 8, 5);
    let q = b.last;
    let mut a = conv(4, 3, 2, Some(4));
    a.pads = Some([1; 4]);
    a.weight_bits = 8;
    b.conv(a);
    let first = b.last;
    b.last = q;
    let mut s = conv(4, 3, 1, Some(4));
    s.weight_bits = 8;
    b.conv(s);
    let ty = b.g.ty(first).with_dtype(nmc_ir::DType::F32);
    let node =
        b.g.add(Op::Dequantize { scale: 1.0 }, vec![first], ty, None);
    b.g.outputs.push(nmc_ir::Output {
        node,
        name: "a".into(),
    });
    let g = b.finish();
    let e = nmc_akd1000::map_graph(&g, &akd1000()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, AkError::Constraint { .. }), "{msg}");
    assert!(
        msg.contains("the host zero-pads an input image once")
            && msg.contains("it needs host pads top/left/bottom/right 0/0/0/0")
            && msg.contains("needs 1/1/1/1"),
        "{msg}"
    );
}

#[test]
fn corrupt_host_padding_is_an_artifact_error() {
    let spec = akd1000();
    let g = first_conv(1, [8, 8], 3, 2, [1; 4]);
    let good = nmc_akd1000::lower(&g, None, 0, &spec).unwrap();
    type Mutation = fn(&mut nmc_akd1000::Artifact);
    let cases: Vec<(&str, Mutation)> = vec![
        ("three pads", |a| a.inputs[0].host_pads = vec![1, 1, 1]),
        ("other pads", |a| a.inputs[0].host_pads = vec![2, 1, 1, 1]),
        ("no pads", |a| a.inputs[0].host_pads.clear()),
        ("overflow", |a| a.inputs[0].host_pads = vec![u32::MAX; 4]),
        ("huge", |a| a.inputs[0].host_pads = vec![1 << 20; 4]),
        ("flat input", |a| {
            a.inputs[0].shape = vec![64];
        }),
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
