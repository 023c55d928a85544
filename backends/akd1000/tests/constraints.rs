//! Rules of the Akida 1.0 table that the compiler's quantiser never breaks, checked on
//! hand-built quantised graphs: each is an error naming the layer and the rule, never a panic.

mod common;

use common::*;
use nmc_akd1000::{akd1000, AkError};
use nmc_ir::{Constant, Op};

fn fails(g: &nmc_ir::Graph) -> String {
    match nmc_akd1000::map_graph(g, &akd1000()) {
        Ok(_) => panic!("mapped"),
        Err(e @ AkError::Constraint { .. }) => e.to_string(),
        Err(e) => panic!("not a constraint error: {e}"),
    }
}

fn set_weights(g: &mut nmc_ir::Graph, layer: usize, f: impl Fn(&mut Vec<i32>)) {
    let id = g
        .ids()
        .filter(|i| matches!(g.node(*i).op, Op::Layer(_)))
        .nth(layer)
        .unwrap();
    let Op::Layer(l) = &g.node(id).op else {
        unreachable!()
    };
    let c = g.consts.get(l.synapses[0].weight()).clone();
    let mut v = c.to_i32().unwrap();
    f(&mut v);
    let w = g.consts.add(Constant::i32(c.shape.clone(), v));
    if let Op::Layer(l) = &mut g.node_mut(id).op {
        match &mut l.synapses[0] {
            nmc_ir::Synapse::Conv { weight, .. } | nmc_ir::Synapse::Dense { weight } => *weight = w,
        }
    }
}

fn set_quant(
    g: &mut nmc_ir::Graph,
    layer: usize,
    f: impl Fn(&mut nmc_ir::Graph, &mut nmc_ir::LayerQuant),
) {
    let id = g
        .ids()
        .filter(|i| matches!(g.node(*i).op, Op::Layer(_)))
        .nth(layer)
        .unwrap();
    let Op::Layer(l) = &g.node(id).op else {
        unreachable!()
    };
    let mut q = l.quant.clone().unwrap();
    f(g, &mut q);
    if let Op::Layer(l) = &mut g.node_mut(id).op {
        l.quant = Some(q);
    }
}

fn cnn() -> nmc_ir::Graph {
    let mut b = Builder::new(vec![1, 8, 8], 8, 1);
    let mut s = conv(4, 3, 1, Some(4));
    s.weight_bits = 8;
    b.conv(s).conv(conv(8, 3, 1, Some(4))).dense(10, 4, None, 1);
    b.finish()
}

#[test]
fn the_shipped_form_maps() {
    let (a, m) = nmc_akd1000::map_graph(&cnn(), &akd1000()).unwrap();
    let kinds: Vec<&str> = a.layers.iter().map(|l| l.kind.name()).collect();
    assert_eq!(kinds, ["InputConv2D", "Conv2D", "Dense"]);
    assert_eq!(m.units.len(), 3);
}

#[test]
fn input_conv_weights_beyond_8_bits() {
    let mut g = cnn();
    set_weights(&mut g, 0, |w| w[0] = 200);
    let e = fails(&g);
    assert!(e.contains("InputConv2D: weights are at most 8 bits"), "{e}");
}

#[test]
fn conv_weights_of_8_bits() {
    let mut g = cnn();
    set_weights(&mut g, 1, |w| w[0] = 100);
    let e = fails(&g);
    assert!(e.contains("Conv2D: weight bits must be 1, 2, 4"), "{e}");
}

#[test]
fn dense_on_8_bit_input() {
    let mut b = Builder::new(vec![64], 8, 2);
    b.dense(10, 4, None, 1);
    let e = fails(&b.finish());
    assert!(
        e.contains("8-bit inputs need a first layer that is a convolution"),
        "{e}"
    );
}

#[test]
fn activation_of_3_bits() {
    let mut g = cnn();
    set_quant(&mut g, 1, |_, q| q.act_max = 7);
    let e = fails(&g);
    assert!(e.contains("activations are unsigned 1, 2, 4-bit"), "{e}");
}

#[test]
fn act_step_beyond_16_bits() {
    let mut g = cnn();
    set_quant(&mut g, 1, |g, q| {
        if let nmc_ir::QuantMode::Step { act_step, .. } = &mut q.mode {
            *act_step = Some(g.consts.add(Constant::i32(vec![8], vec![70_000; 8])));
        }
    });
    let e = fails(&g);
    assert!(e.contains("act_step is at most 65535"), "{e}");
    // The shift counts: 40 000 · 2 is beyond 16 bits too.
    let mut g = cnn();
    set_quant(&mut g, 1, |g, q| {
        if let nmc_ir::QuantMode::Step { act_step, .. } = &mut q.mode {
            *act_step = Some(g.consts.add(Constant::i32(vec![8], vec![40_000; 8])));
        }
        q.act_shift = 1;
    });
    assert!(fails(&g).contains("act_step is at most 65535"));
}

#[test]
fn threshold_beyond_20_bits() {
    let mut g = cnn();
    set_quant(&mut g, 1, |g, q| {
        q.bias = Some(g.consts.add(Constant::i32(vec![8], vec![-(1 << 19); 8])))
    });
    let e = fails(&g);
    assert!(e.contains("thresholds are at most 524287"), "{e}");
}

#[test]
fn floor_rounding_is_not_akida() {
    let mut g = cnn();
    set_quant(&mut g, 1, |_, q| {
        if let nmc_ir::QuantMode::Step { act_round, .. } = &mut q.mode {
            *act_round = nmc_ir::ActRound::Floor;
        }
    });
    let e = nmc_akd1000::map_graph(&g, &akd1000()).unwrap_err();
    assert!(matches!(e, AkError::Invalid { .. }), "{e}");
    assert!(e.to_string().contains("round up"), "{e}");
}

/// An InputConv2D on a `side`×`side` image, then a convolution with a 2×2 max pool of `stride`,
/// a convolution and a dense layer (a max-pooled layer must feed a convolution).
fn pooled_cnn(side: usize, stride: usize) -> nmc_ir::Graph {
    let mut b = Builder::new(vec![1, side, side], 8, 1);
    let mut s = conv(4, 3, 1, Some(4));
    s.weight_bits = 8;
    b.conv(s);
    let mut c = conv(8, 3, 1, Some(4));
    c.pool = max_pool(2, stride);
    b.conv(c).conv(conv(8, 3, 1, Some(4))).dense(10, 4, None, 1);
    b.finish()
}

/// akida pools "same": a 2×2/2 max pool on a 9×9 map gives 5×5 there, 4×4 in an unpadded model,
/// so nmc refuses it with the rule rather than computing something akida does not.
#[test]
fn max_pooling_an_odd_map_by_two_is_refused() {
    let e = fails(&pooled_cnn(9, 2));
    assert!(
        e.contains("akida pads the last windows: 9 rows pool to 5, the model's unpadded 2-wide pooling gives 4"),
        "{e}"
    );
    // The same network on an even map maps.
    nmc_akd1000::map_graph(&pooled_cnn(10, 2), &akd1000()).unwrap();
}

/// A 2×2 pool with stride 1 keeps an 8×8 map at 8×8 in akida (measured); the model's unpadded
/// pooling gives 7×7: refused.
#[test]
fn max_pooling_with_stride_one_is_refused() {
    let e = fails(&pooled_cnn(8, 1));
    assert!(e.contains("8 rows pool to 8"), "{e}");
}
