//! The AKD1000 through the shared backend contract (`nmc_backend::Backend` and `Loaded`): the
//! default mapping, the search space's greedy genome and lowering agree with the crate's own
//! mapper and lowering; a run equals the reference interpreter; options and overrides fail with
//! the error kinds the compiler turns into exit codes.

mod common;

use common::*;
use nmc_akd1000::{akd1000, Akd1000};
use nmc_backend::{
    Activity, ActivityProfile, Array, Backend, BackendError, ChipParams, EventArray, Quantization,
    TargetOptions,
};

fn cnn() -> nmc_ir::Graph {
    let mut b = Builder::new(vec![1, 8, 8], 8, 1);
    let mut s = conv(4, 3, 1, Some(4));
    s.weight_bits = 8;
    b.conv(s).conv(conv(8, 3, 1, Some(4))).dense(10, 4, None, 1);
    b.finish()
}

fn params(pairs: &[(&str, f64)]) -> ChipParams {
    ChipParams {
        values: pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    }
}

#[test]
fn mapping_search_space_and_lowering_agree_with_the_crate() {
    let g = cnn();
    let opts = TargetOptions::default();
    let spec = akd1000();
    let (a, m) = nmc_akd1000::map_graph(&g, &spec).unwrap();
    let mapping = Akd1000.default_mapping(&g, &opts).unwrap();
    assert_eq!(mapping, nmc_akd1000::to_ir_mapping(&a, &m));
    let space = Akd1000.search_space(&g, &opts).unwrap();
    assert_eq!(space.greedy, mapping);
    assert_eq!(
        (space.decode)(&space.problem.greedy()),
        Some(mapping.clone())
    );
    // The HRC layer is fixed; the two NP layers are searched.
    assert_eq!(space.names.len(), 2);
    let bytes = Akd1000.lower(&g, &mapping, 42, &opts).unwrap();
    let own = nmc_akd1000::lower(&g, None, 42, &spec).unwrap();
    assert_eq!(bytes, nmc_akd1000::encode(&own));
    assert!(Akd1000.is_artifact(&bytes));
    assert!(!Akd1000.is_artifact(b"NMCL2ART"));
}

#[test]
fn a_run_equals_the_reference_and_measures_loads() {
    let g = cnn();
    let opts = TargetOptions::default();
    let mapping = Akd1000.default_mapping(&g, &opts).unwrap();
    let loaded = Akd1000
        .decode(&Akd1000.lower(&g, &mapping, 0, &opts).unwrap())
        .unwrap();
    assert_eq!(loaded.target(), "akd1000");
    let mut r = Rng(9);
    let xs: Vec<Vec<i64>> = (0..2).map(|_| random_input(&mut r, 64, 8)).collect();
    let samples = Array {
        shape: vec![2, 1, 8, 8],
        data: xs.iter().flatten().map(|v| *v as f32).collect(),
    };
    let run = loaded.run(&samples, None, &ChipParams::default()).unwrap();
    for (x, out) in xs.iter().zip(&run.int_outputs) {
        assert_eq!(*out, reference(&g, x));
    }
    assert_eq!(run.outputs.shape, [2, 10]);
    let perf = &run.perf;
    assert_eq!(
        (perf.target.as_str(), perf.samples, perf.timesteps),
        ("akd1000", 2, 1)
    );
    assert_eq!(perf.cores.len(), 3);
    assert_eq!(perf.cores[0].unit_type.as_deref(), Some("HRC"));
    assert!(perf.throughput_fps.is_some_and(|f| f > 0.0));
    // One timestep is the pipeline; more do not apply (a usage error: the flag is ignored here).
    assert!(loaded
        .run(&samples, Some(1), &ChipParams::default())
        .is_ok());
    let e = loaded
        .run(&samples, Some(3), &ChipParams::default())
        .unwrap_err();
    assert!(matches!(e, BackendError::Usage(_)), "{e}");
    // A slower synaptic operation shows in the latency.
    let slow = loaded
        .run(&samples, None, &params(&[("a_syn", 10.0)]))
        .unwrap();
    assert!(slow.perf.latency_ns > perf.latency_ns);
    let profile = ActivityProfile {
        from: String::new(),
        inputs: Vec::new(),
        layers: Vec::new(),
    };
    let loads = loaded
        .floorline_loads(&Activity::of(profile, samples), &ChipParams::default())
        .unwrap();
    assert_eq!(
        loads.activity,
        "loads measured by the emulator on 2 sample(s)"
    );
    assert_eq!((loads.timesteps, loads.chips, loads.link_ns), (1, 1, 0.0));
    assert_eq!(loads.cores.len(), 3);
    assert!(loads.cores.iter().all(|c| c.m == c.m_in + c.m_out));
    assert_eq!(loads.constants.b_sync, 0.0);
    // Event streams are not for the AKD1000.
    let e = loaded
        .run_events(&EventArray::default(), None, &ChipParams::default())
        .unwrap_err();
    assert!(matches!(e, BackendError::Input { .. }), "{e}");
    assert!(loaded.bin_events(&EventArray::default(), 1).is_err());
}

#[test]
fn options_and_cost_overrides() {
    let e = Akd1000
        .check_options(&TargetOptions {
            chips: 2,
            timesteps: None,
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(e, BackendError::Usage(_)));
    assert_eq!(
        e.to_string(),
        "--chips 2: the akd1000 is one device (nmc does not chain AKD1000s)"
    );
    assert!(Akd1000
        .default_mapping(
            &cnn(),
            &TargetOptions {
                chips: 2,
                timesteps: None,
                ..Default::default()
            }
        )
        .is_err());
    let p = Akd1000.cost_params(&params(&[("e_hop", 3.0)])).unwrap();
    assert_eq!(p.len(), 14);
    assert_eq!(p.iter().find(|c| c.name == "e_hop").unwrap().value, 3.0);
    let e = Akd1000.cost_params(&params(&[("bogus", 1.0)])).unwrap_err();
    assert!(matches!(e, BackendError::Usage(_)));
    assert_eq!(
        e.to_string(),
        "unknown akd1000 cost constant `bogus` (known: a_syn, a_mem, a_neu, a_event, a_hop, \
         e_syn, e_mem, e_neu, e_event, e_hop, p_static, a_load, a_pass, e_load)"
    );
    assert!(matches!(Akd1000.quantization(), Quantization::Akida(_)));
    let ops = Akd1000.native_ops();
    assert!(ops.avg_pool && !ops.sum_pool && !ops.concat);
    assert_eq!(Akd1000.default_timesteps(), None);
}

#[test]
fn constraint_violations_are_fit_errors() {
    // An InputConv2D on one channel with a 3×3 kernel takes at most 512 filters.
    let mut b = Builder::new(vec![1, 8, 8], 8, 1);
    let mut s = conv(600, 3, 1, Some(4));
    s.weight_bits = 8;
    b.conv(s).dense(10, 4, None, 1);
    let g = b.finish();
    let e = Akd1000
        .default_mapping(&g, &TargetOptions::default())
        .unwrap_err();
    assert!(matches!(e, BackendError::Fit { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("model does not fit akd1000: layer "),
        "{e}"
    );
    // A mapping the chip cannot run is a lowering error.
    let g = cnn();
    let e = Akd1000
        .lower(
            &g,
            &nmc_ir::Mapping::default(),
            0,
            &TargetOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(e, BackendError::Lower { .. }), "{e}");
    assert!(
        e.to_string().starts_with("cannot lower to akd1000: "),
        "{e}"
    );
}
