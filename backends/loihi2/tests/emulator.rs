//! The emulator against the reference interpreter, and its event-driven cost counters.

mod common;

use common::*;
use nmc_ir::{Graph, Interpreter, Op, Value};
use nmc_loihi2::{decode, encode, listing, loihi2, lower, min_timesteps, Emulator};

/// Quantised input and the integer value feeding each Dequantize output, per the interpreter.
fn reference(g: &Graph, x: &[f32]) -> (Vec<i64>, Vec<Vec<i64>>) {
    let vals = Interpreter::new(g).unwrap().run_all(&[x]).unwrap();
    let int = |id: nmc_ir::NodeId| match &vals[id.index()] {
        Some(Value::I64(v)) => v.clone(),
        other => panic!("{id} is not an integer value: {other:?}"),
    };
    let q = g
        .ids()
        .find(|&i| matches!(g.node(i).op, Op::Quantize(_)))
        .unwrap();
    let outs = g
        .outputs
        .iter()
        .map(|o| int(g.node(o.node).inputs[0]))
        .collect();
    (int(q), outs)
}

#[test]
fn emulator_matches_interpreter_on_random_graphs() {
    let spec = loihi2().with_chips(2);
    let mut rng = Rng(0x5eed_1234);
    let mut saw_csr = false;
    for case in 0..50 {
        let g = random_graph(&mut rng);
        let m = random_mapping(&mut rng, &g, 2);
        let art = lower(&g, &m, case, &spec).unwrap_or_else(|e| panic!("case {case}: {e}"));
        // Everything lowering produces survives the wire format and its validation.
        let bytes = encode(&art);
        assert_eq!(decode(&bytes).as_ref(), Ok(&art), "case {case}");
        assert_eq!(encode(&decode(&bytes).unwrap()), bytes);
        let text = listing(&art);
        saw_csr |= text.contains(" csr ");
        let steps = min_timesteps(&art);
        assert_eq!(steps, 4, "input → fc1 → conv2 → fc3 is three hops");
        let mut emu = Emulator::new(&art, &spec).unwrap();
        for sample in 0..2 {
            let x = random_input(&mut rng, &g, 0.3);
            let (xq, expected) = reference(&g, &x);
            let (got, perf) = emu.run(std::slice::from_ref(&xq), steps).unwrap();
            assert_eq!(got, expected, "case {case} sample {sample}\n{text}");
            assert_eq!(perf.timesteps, steps);
            assert_eq!(perf.per_step.len(), steps as usize);
            assert!(perf.latency_ns > 0.0 && perf.energy_nj > 0.0);
            // More steps change nothing: the network has settled.
            let (later, _) = emu.run(&[xq], steps + 3).unwrap();
            assert_eq!(later, expected, "case {case} sample {sample} (settled)");
        }
    }
    assert!(saw_csr, "some random layer should be stored sparse");
}

#[test]
fn sparse_input_costs_fewer_synaptic_ops() {
    let mut g = Graph::new("one");
    let (_, q) = quantized_input(&mut g, vec![64], "x");
    let mut rng = Rng(7);
    let d = dense_layer(&mut rng, &mut g, vec![q], 32, "fc");
    dequantize(&mut g, d, "y");
    let spec = loihi2();
    let art = lower(&g, &single_core_mapping(&g), 0, &spec).unwrap();
    let mut emu = Emulator::new(&art, &spec).unwrap();
    let steps = min_timesteps(&art);
    assert_eq!(steps, 2);
    let dense: Vec<i64> = (0..64)
        .map(|i| (i % 7) as i64 - 3)
        .map(|v| if v == 0 { 1 } else { v })
        .collect();
    let mut sparse = vec![0i64; 64];
    sparse[5] = 9;
    let (_, pd) = emu.run(&[dense], steps).unwrap();
    let (_, ps) = emu.run(std::slice::from_ref(&sparse), steps).unwrap();
    assert!(ps.synaptic_events < pd.synaptic_events);
    assert!(ps.synaptic_events > 0);
    // One event from the host per non-zero input element, delivered to the one core.
    assert_eq!(ps.cores[0].counts.msgs_in, 1);
    assert_eq!(pd.cores[0].counts.msgs_in, 64);
    // Step 0 updates every neuron (bias-only outputs), step 1 only those the event reached.
    assert_eq!(ps.per_step[0].cores[0].counts.neuron_updates, 32);
    assert!(ps.per_step[1].cores[0].counts.neuron_updates <= 32);
    // Without per-core step entries the totals are the same.
    emu.record_core_steps(false);
    let (_, pq) = emu.run(&[sparse], steps).unwrap();
    assert!(pq.per_step.iter().all(|s| s.cores.is_empty()));
    assert_eq!((pq.latency_ns, pq.energy_nj), (ps.latency_ns, ps.energy_nj));
    assert_eq!(pq.cores, ps.cores);
}

#[test]
fn unchanged_frame_costs_no_synaptic_work() {
    let mut rng = Rng(99);
    let g = random_graph(&mut rng);
    let spec = loihi2().with_chips(2);
    let m = random_mapping(&mut rng, &g, 2);
    let art = lower(&g, &m, 0, &spec).unwrap();
    let mut emu = Emulator::new(&art, &spec).unwrap();
    let x = random_input(&mut rng, &g, 0.0);
    let (xq, expected) = reference(&g, &x);
    let steps = min_timesteps(&art);
    let (first, p1) = emu.run(std::slice::from_ref(&xq), steps).unwrap();
    assert_eq!(first, expected);
    assert!(p1.synaptic_events > 0);
    // The same frame again: sigma-delta neurons see no change and stay silent.
    let (second, p2) = emu.run_continue(&[xq], steps).unwrap();
    assert_eq!(second, expected);
    assert_eq!(p2.synaptic_events, 0);
    assert!(p2.cores.iter().all(|c| c.counts.messages() == 0));
    // A new frame after a continued run is still exact.
    let y = random_input(&mut rng, &g, 0.5);
    let (yq, expected_y) = reference(&g, &y);
    let (third, _) = emu.run_continue(&[yq], steps).unwrap();
    assert_eq!(third, expected_y);
}

#[test]
fn run_rejects_bad_inputs() {
    let mut g = Graph::new("one");
    let (_, q) = quantized_input(&mut g, vec![4], "x");
    let d = dense_layer(&mut Rng(1), &mut g, vec![q], 2, "fc");
    dequantize(&mut g, d, "y");
    let spec = loihi2();
    let art = lower(&g, &single_core_mapping(&g), 0, &spec).unwrap();
    let mut emu = Emulator::new(&art, &spec).unwrap();
    use nmc_backend::InputError;
    use nmc_loihi2::EmuError;
    assert!(matches!(
        emu.run(&[], 2),
        Err(EmuError::Input(InputError::Count {
            expected: 1,
            got: 0
        }))
    ));
    assert!(matches!(
        emu.run(&[vec![0; 3]], 2),
        Err(EmuError::Input(InputError::Size { .. }))
    ));
    let e = emu.run(&[vec![0, 0, 500, 0]], 2).unwrap_err();
    assert!(
        matches!(
            e,
            EmuError::Input(InputError::Range {
                position: 2,
                value: 500,
                ..
            })
        ),
        "{e}"
    );
    // A system too small for the artifact.
    let mut far = art.clone();
    far.cores[0].y = 20;
    assert!(matches!(
        Emulator::new(&far, &spec),
        Err(EmuError::Placement { core: 0, .. })
    ));
}

#[test]
fn emulator_can_move_to_worker_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Emulator>();
    send_sync::<nmc_loihi2::Artifact>();
    send_sync::<nmc_loihi2::PerfReport>();
}
