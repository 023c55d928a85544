//! Multi-chip Loihi 2 systems in `run --report`: per-chip sums of the cores' counters and the
//! traffic over each pair of chips' links, checked against an identity the NoC does not compute
//! itself: every message a core receives from a core on another chip crossed that boundary once.

use crate::common::{cases, compiled};

#[test]
fn run_report_counts_chips_and_the_links_between_them() {
    let case = cases().iter().find(|c| c.name == "digits_mlp").unwrap();
    let c = compiled(case);
    // Layers alternate between chip 0 and chip 1 (same mesh positions on each chip).
    let mut mapping = c.mapping.clone();
    let mut layer_of_core = vec![usize::MAX; mapping.placement.len()];
    for (k, slices) in mapping.layers.values().enumerate() {
        for s in slices {
            layer_of_core[s.core as usize] = k;
        }
    }
    for (core, loc) in mapping.placement.iter_mut().enumerate() {
        loc.chip = (layer_of_core[core] % 2) as u32;
    }
    let spec = nmc_loihi2::loihi2().with_chips(2);
    let art = nmc_loihi2::lower(&c.quantized, &mapping, 0, &spec).expect("lowers");
    let art = nmc::LoadedArtifact::decode(&nmc_loihi2::encode(&art)).unwrap();
    let per = case.inputs.data.len() / case.inputs.shape[0];
    let xs = nmc::npy::Array {
        shape: vec![4, per],
        data: case.inputs.data[..4 * per].to_vec(),
    };
    let r = art.run(&xs, None).unwrap();
    let perf = &r.perf;

    // Per chip: the sums of its cores.
    assert_eq!(perf.chips.len(), 2);
    for k in &perf.chips {
        let cores: Vec<_> = perf.cores.iter().filter(|c| c.chip == k.chip).collect();
        assert_eq!(k.cores, cores.len());
        let mut sum = nmc_backend::Counters::default();
        for c in &cores {
            sum.add(&c.counts);
        }
        assert_eq!(k.counts, sum, "chip {}", k.chip);
    }

    // Links: messages into a core from the other chip crossed the boundary once. A layer's
    // inputs come from the previous layer (the first layer's from the host, which uses no link).
    let first_layer_cores: Vec<u32> = mapping
        .layers
        .values()
        .next()
        .unwrap()
        .iter()
        .map(|s| s.core)
        .collect();
    let crossing_into = |chip: u32| -> u64 {
        perf.cores
            .iter()
            .filter(|c| c.chip == chip && !first_layer_cores.contains(&c.id))
            .map(|c| c.counts.msgs_in)
            .sum()
    };
    let link = |from: u32, to: u32| {
        perf.links
            .iter()
            .find(|l| l.from_chip == from && l.to_chip == to)
            .map_or(0, |l| l.messages)
    };
    assert!(link(0, 1) > 0, "{:?}", perf.links);
    assert_eq!(link(0, 1), crossing_into(1));
    assert_eq!(link(1, 0), crossing_into(0));
    let json = serde_json::to_value(perf).unwrap();
    assert_eq!(json["links"][0]["from_chip"], 0);
    assert!(json["chips"][1]["syn_ops"].as_u64().unwrap() > 0);

    // The floorline model expects the same traffic over the boundaries for one sample, from the
    // activity measured on that sample (modelled and emulated counts agree exactly there).
    let one_sample: Vec<Vec<Vec<f32>>> = vec![vec![case.inputs.data[..per].to_vec()]];
    let profile = nmc::cost::ActivityProfile::measure(&c.quantized, &one_sample).unwrap();
    let lowered = nmc_loihi2::lower(&c.quantized, &mapping, 0, &spec).unwrap();
    let modelled = nmc_loihi2::floorline::modelled_loads(&lowered, &spec, &profile).unwrap();
    let first = nmc::npy::Array {
        shape: vec![1, per],
        data: case.inputs.data[..per].to_vec(),
    };
    let measured = art.run(&first, None).unwrap().perf.links;
    assert!(!modelled.links.is_empty());
    assert_eq!(modelled.links, measured);

    // The same network on one chip: one chip entry, no link entries.
    let one = nmc::LoadedArtifact::decode(&c.artifact)
        .unwrap()
        .run(&xs, None)
        .unwrap();
    assert_eq!(one.perf.chips.len(), 1);
    assert!(one.perf.links.is_empty());
    assert!(serde_json::to_value(&one.perf)
        .unwrap()
        .get("links")
        .is_none());
    // Placement does not change what the network computes.
    assert_eq!(one.int_outputs, r.int_outputs);
}
