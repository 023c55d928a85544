//! The Speck cases held to SynSense's own engine (issue 15): `testdata/gen/sinabs_reference.py`
//! rebuilt each case's integer network in sinabs 3.1.3 (`DynapcnnNetwork`, merges as
//! `sl.Merge`), let sinabs map it onto cores and write its samna configuration, ran sinabs'
//! simulation on nmc's rate-encoded input events for T steps, and committed the results in the
//! case directory (`sinabs_reference.json`, `sinabs_counts.npy`, `sinabs_outputs.npy`). CI runs no
//! Python: these tests read the files.
//!
//! - the reference was built from the network nmc compiles now (per core: shapes, kernel,
//!   stride, padding, thresholds, reset, destinations, a hash of the weights, the biases), else
//!   it is stale and must be regenerated;
//! - every layer is on the core sinabs chose and needs the memory sinabs' `memory_summary` gives,
//!   and the samna configuration sinabs writes equals nmc's artifact core for core — both for
//!   nmc's integers and for sinabs' own conversion of `model.onnx` (`from_model`, then
//!   `DynapcnnNetwork(discretize=True)`), so nmc's discretisation, rescaling of average pools,
//!   merges and mapping are sinabs';
//! - nmc's rate encoding gives the input events sinabs was fed, and per sample and per step the
//!   emulator's spikes of every layer (before pooling) and its output counts equal sinabs'; so
//!   do they for the case's DVS event file binned over its span (`nmc run`'s default).
//!
//! `perturbed_references_fail` checks that the comparisons can fail.

use crate::common::{all_cases, Case, CALIB_SAMPLES};
use serde_json::Value;

const REGENERATE: &str = "the reference was built from another network: if nmc's Speck \
     integers or mapping changed on purpose, rerun testdata/gen/sinabs_reference.py \
     (PYTHONHASHSEED=0, testdata/README.md)";

/// One case's committed sinabs reference.
#[derive(Clone)]
struct Reference {
    json: Value,
    /// `sinabs_counts.npy`: `[samples, T, 1 + layers]`: input events, then each layer's spikes.
    counts: Vec<i64>,
    /// `sinabs_outputs.npy`: `[samples, T, outputs]`.
    outputs: Vec<i64>,
    samples: usize,
    timesteps: usize,
    columns: usize,
    n_out: usize,
}

fn npy_i64(path: &std::path::Path) -> (Vec<usize>, Vec<i64>) {
    crate::common::vendor_npy(path, "sinabs_reference.py")
}

fn reference(case: &Case) -> Reference {
    let path = case.dir.join("sinabs_reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (every Speck case has a sinabs reference: run testdata/gen/sinabs_reference.py)",
            path.display()
        )
    });
    let json: Value = serde_json::from_str(&text).unwrap();
    let (cs, counts) = npy_i64(&case.dir.join("sinabs_counts.npy"));
    let (os, outputs) = npy_i64(&case.dir.join("sinabs_outputs.npy"));
    assert_eq!(json["sinabs"], "3.1.3", "{}: sinabs version", case.name);
    assert_eq!(
        json["calibrate_samples"].as_u64(),
        Some(CALIB_SAMPLES as u64),
        "{}: the reference must be built from the network the tests compile",
        case.name
    );
    let layers = json["layers"].as_array().unwrap().len();
    assert_eq!(
        cs.len(),
        3,
        "{}: counts are [samples, T, columns]",
        case.name
    );
    assert_eq!(cs[2], 1 + layers, "{}: a column per layer", case.name);
    assert_eq!(
        os[..2],
        cs[..2],
        "{}: outputs and counts agree in shape",
        case.name
    );
    assert_eq!(
        json["samples"].as_u64(),
        Some(cs[0] as u64),
        "{}",
        case.name
    );
    assert_eq!(
        json["timesteps"].as_u64(),
        Some(cs[1] as u64),
        "{}",
        case.name
    );
    assert!(cs[0] >= 24, "{}: a few dozen samples", case.name);
    Reference {
        json,
        counts,
        outputs,
        samples: cs[0],
        timesteps: cs[1],
        columns: cs[2],
        n_out: os[2],
    }
}

/// The Speck cases that compile (each must have a reference).
fn speck_cases() -> Vec<(&'static Case, &'static nmc::Compiled)> {
    all_cases()
        .iter()
        .filter(|c| c.targets().iter().any(|t| t == "speck"))
        .filter_map(|c| crate::speck::compiled(c).map(|k| (c, k)))
        .collect()
}

fn nmc_json(c: &nmc::Compiled) -> Value {
    nmc::LoadedArtifact::decode(&c.artifact).unwrap().to_json()
}

/// The reference was built from nmc's network (the script's `fingerprint`).
fn same_network(nmc: &Value, r: &Value) -> Result<(), String> {
    crate::common::same_fingerprint(
        nmc,
        r,
        &[
            "name",
            "core",
            "input_shape",
            "neuron_shape",
            "kernel_size",
            "stride",
            "padding",
            "threshold_high",
            "threshold_low",
            "return_to_zero",
            "destinations",
            "biases",
        ],
    )
}

/// Cores, memory and the samna configuration equal sinabs'.
fn same_mapping(nmc: &Value, r: &Value) -> Result<(), String> {
    let ours = nmc["layers"].as_array().unwrap();
    let by_name = |name: &Value| ours.iter().find(|l| &l["name"] == name);
    for t in r["layers"].as_array().unwrap() {
        let l = by_name(&t["nmc_name"]).ok_or(format!("no nmc layer {}", t["nmc_name"]))?;
        if l["core"] != t["sinabs_core"] {
            return Err(format!(
                "{}: nmc core {}, sinabs core {}",
                l["name"], l["core"], t["sinabs_core"]
            ));
        }
        for (ours, theirs) in [
            ("kernel_memory", "kernel"),
            ("neuron_memory", "neuron"),
            ("bias_memory", "bias"),
        ] {
            if l[ours] != t["memory"][theirs] {
                return Err(format!(
                    "{}: {ours} nmc {}, sinabs {}",
                    l["name"], l[ours], t["memory"][theirs]
                ));
            }
        }
    }
    same_config(nmc, &r["config"], r["dvs_input"].clone(), "")?;
    same_config(
        nmc,
        &r["conversion"],
        r["dvs_input"].clone(),
        " (sinabs' own conversion of model.onnx)",
    )
}

/// A samna configuration sinabs wrote (`config_of` in the script) equals nmc's artifact, core
/// for core.
fn same_config(nmc: &Value, cfg: &Value, dvs_input: Value, from: &str) -> Result<(), String> {
    let ours = nmc["layers"].as_array().unwrap();
    let dvs = &cfg["dvs_layer"];
    if nmc["dvs_destinations"] != dvs["destinations"] || nmc["dvs_input"] != dvs_input {
        return Err(format!(
            "dvs layer{from}: nmc sends to {}, sinabs to {}",
            nmc["dvs_destinations"], dvs["destinations"]
        ));
    }
    // The DVS layer's pooling (sinabs moves a pooling of the input into it) and polarity merge.
    for key in ["pooling", "merge"] {
        if nmc["dvs_layer"][key] != dvs[key] {
            return Err(format!(
                "dvs layer{from}: {key} nmc {}, sinabs {}",
                nmc["dvs_layer"][key], dvs[key]
            ));
        }
    }
    let cores = cfg["cnn_layers"].as_array().unwrap();
    if cores.len() != ours.len() {
        return Err(format!(
            "sinabs configures {} cores{from}, nmc {}",
            cores.len(),
            ours.len()
        ));
    }
    for c in cores {
        let l = ours.iter().find(|l| l["core"] == c["core"]).ok_or(format!(
            "sinabs uses core {}{from}, nmc does not",
            c["core"]
        ))?;
        let dests: Vec<Value> = l["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| serde_json::json!({ "layer": d["core"], "pooling": d["pooling"] }))
            .collect();
        // samna has a bias per channel always: sinabs writes zeros for a layer without one.
        let f = l["neuron_shape"][0].as_u64().unwrap() as usize;
        let biases = match l["biases"].as_array().unwrap() {
            b if b.is_empty() => Value::from(vec![0; f]),
            b => Value::from(b.clone()),
        };
        let leak = Value::from(biases.as_array().unwrap().iter().any(|b| b != 0));
        let pairs = [
            ("input_shape", &l["input_shape"], &c["input_shape"]),
            ("output_shape", &l["neuron_shape"], &c["output_shape"]),
            ("kernel_size", &l["kernel_size"], &c["kernel_size"]),
            ("stride", &l["stride"], &c["stride"]),
            ("padding", &l["padding"], &c["padding"]),
            ("threshold_high", &l["threshold_high"], &c["threshold_high"]),
            ("threshold_low", &l["threshold_low"], &c["threshold_low"]),
            ("return_to_zero", &l["return_to_zero"], &c["return_to_zero"]),
            ("biases", &biases, &c["biases"]),
            ("leak_enable", &leak, &c["leak_enable"]),
            ("monitor_enable", &l["monitor"], &c["monitor_enable"]),
        ];
        for (what, a, b) in pairs {
            if a != b {
                return Err(format!(
                    "core {}{from}: {what} nmc {a}, sinabs {b}",
                    c["core"]
                ));
            }
        }
        if Value::Array(dests.clone()) != c["destinations"] {
            return Err(format!(
                "core {}{from}: destinations nmc {dests:?}, sinabs {}",
                c["core"], c["destinations"]
            ));
        }
        if crate::common::weights_fnv1a64(l["weights"].as_array().unwrap()) != c["weights_fnv1a64"]
        {
            return Err(format!("core {}{from}: samna weights differ", c["core"]));
        }
    }
    Ok(())
}

/// Input events, every layer's spikes and the output counts, per sample and step, equal sinabs'.
fn same_spikes(case: &Case, c: &nmc::Compiled, r: &Reference) -> Result<(), String> {
    let art = nmc_speck::decode(&c.artifact).unwrap();
    let mut emu = nmc_speck::Emulator::new(&art).unwrap();
    let input = art.input.as_ref().unwrap();
    let q = nmc_ir::QuantParams {
        scale: input.scale,
        min: 0,
        max: input.levels,
    };
    let cores: Vec<usize> = r.json["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["sinabs_core"].as_u64().unwrap() as usize)
        .collect();
    let t = r.timesteps;
    for (s, x) in case
        .inputs
        .samples()
        .into_iter()
        .take(r.samples)
        .enumerate()
    {
        let row = |step: usize, col: usize| r.counts[(s * t + step) * r.columns + col];
        // The events sinabs was fed are nmc's rate encoding of the sample.
        let levels: Vec<i64> = x.iter().map(|v| nmc_ir::quantize(*v, &q)).collect();
        let mut enc = nmc_ir::RateEncoder::new(&levels, i64::from(q.max));
        for step in 0..t {
            let mut n = 0i64;
            enc.step(|_| n += 1);
            if n != row(step, 0) {
                return Err(format!(
                    "sample {s} step {step}: nmc sends {n} input events, sinabs was fed {}",
                    row(step, 0)
                ));
            }
        }
        let run = emu
            .run_dense(&x, t as u32, true)
            .map_err(|e| e.to_string())?;
        let per_core = run.core_spikes.as_ref().unwrap();
        let per_step = run.per_step.as_ref().unwrap();
        for step in 0..t {
            for (j, &core) in cores.iter().enumerate() {
                let ours = per_core[step][core] as i64;
                if ours != row(step, 1 + j) {
                    return Err(format!(
                        "sample {s} step {step} layer {} (core {core}): nmc {ours} spikes, sinabs {}",
                        r.json["layers"][j]["nmc_name"],
                        row(step, 1 + j)
                    ));
                }
            }
            let theirs = &r.outputs[(s * t + step) * r.n_out..][..r.n_out];
            if per_step[step] != theirs {
                return Err(format!(
                    "sample {s} step {step}: outputs nmc {:?}, sinabs {theirs:?}",
                    per_step[step]
                ));
            }
        }
    }
    Ok(())
}

/// The case's DVS event file, binned over its span into the reference's T steps (`nmc run`'s
/// default), gives the recorded input events, every layer's spikes and the outputs per step.
fn same_event_spikes(case: &Case, c: &nmc::Compiled, r: &Reference) -> Result<(), String> {
    let ev = &r.json["events"];
    let file = ev["file"].as_str().unwrap();
    let events = match nmc::npy::read_input(&case.dir.join(file)).unwrap() {
        nmc::npy::Input::Events(e) => e,
        nmc::npy::Input::Dense(_) => return Err(format!("{file} is not an event stream")),
    };
    let art = nmc_speck::decode(&c.artifact).unwrap();
    let s = art
        .dvs_layer
        .as_ref()
        .unwrap()
        .input_shape
        .unwrap_or_default();
    let list: Vec<nmc_speck::DvsEvent> = (0..events.len())
        .map(|i| nmc_speck::DvsEvent {
            x: events.x[i],
            y: events.y[i],
            t: events.t[i],
            p: events.p[i],
        })
        .collect();
    let t = r.timesteps;
    let (binned, _) = nmc_speck::bin(
        &list,
        [s.y, s.x],
        nmc_speck::events::Steps::Span(t as u32),
        nmc_speck::MAX_TIMESTEPS,
    )?;
    let mut emu = nmc_speck::Emulator::new(&art).unwrap();
    let run = emu.run_events(&binned, true).map_err(|e| e.to_string())?;
    let cores: Vec<usize> = r.json["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["sinabs_core"].as_u64().unwrap() as usize)
        .collect();
    for step in 0..t {
        let want = &ev["counts"][step];
        let n_in: u32 = binned[step].iter().map(|(_, n)| n).sum();
        if want[0].as_u64() != Some(u64::from(n_in)) {
            return Err(format!(
                "step {step}: {n_in} input events, sinabs {}",
                want[0]
            ));
        }
        for (j, &core) in cores.iter().enumerate() {
            let ours = run.core_spikes.as_ref().unwrap()[step][core];
            if want[1 + j].as_u64() != Some(ours) {
                return Err(format!(
                    "step {step} core {core}: nmc {ours} spikes, sinabs {}",
                    want[1 + j]
                ));
            }
        }
        let outs = &run.per_step.as_ref().unwrap()[step];
        if Value::from(outs.clone()) != ev["outputs"][step] {
            return Err(format!(
                "step {step}: outputs nmc {outs:?}, sinabs {}",
                ev["outputs"][step]
            ));
        }
    }
    Ok(())
}

#[test]
fn event_file_spikes_equal_sinabs() {
    let mut checked = 0;
    for (case, c) in speck_cases() {
        let r = reference(case);
        if r.json["events"].is_null() {
            assert!(
                case.meta.get("events").is_none(),
                "{}: the reference lacks the events file",
                case.name
            );
            continue;
        }
        if let Err(e) = same_event_spikes(case, c, &r) {
            panic!("{}: {e}", case.name);
        }
        let mut bad = r.clone();
        bad.json["events"]["counts"][3][2] = Value::from(0);
        assert!(same_event_spikes(case, c, &bad).is_err(), "can fail");
        checked += 1;
    }
    assert!(
        checked >= 2,
        "dvs_cnn and dvs_gesture_speck have events files"
    );
}

#[test]
fn every_speck_case_has_a_current_sinabs_reference() {
    let cases = speck_cases();
    let names: Vec<&str> = cases.iter().map(|(c, _)| c.name.as_str()).collect();
    for must in ["dvs_cnn", "dvs_cnn_if", "dvs_res", "dvs_gesture_speck"] {
        assert!(names.contains(&must), "{must} did not compile for speck");
    }
    for (case, c) in cases {
        let r = reference(case);
        if let Err(e) = same_network(&nmc_json(c), &r.json) {
            panic!("{}: {e}; {REGENERATE}", case.name);
        }
    }
}

#[test]
fn cores_memory_and_configuration_equal_sinabs() {
    for (case, c) in speck_cases() {
        let r = reference(case);
        if let Err(e) = same_mapping(&nmc_json(c), &r.json) {
            panic!("{}: {e}", case.name);
        }
    }
}

#[test]
fn spikes_per_layer_and_step_equal_sinabs() {
    let mut agreed = Vec::new();
    for (case, c) in speck_cases() {
        let r = reference(case);
        if let Err(e) = same_spikes(case, c, &r) {
            panic!("{}: {e}", case.name);
        }
        agreed.push(format!("{} ({} samples)", case.name, r.samples));
    }
    eprintln!(
        "sinabs agreement, every layer and step: {}",
        agreed.join(", ")
    );
}

#[test]
fn the_residual_case_merges_and_branches_as_sinabs() {
    // dvs_res: conv1 sends to two cores (conv2 and the merge), the merge core has two sources.
    let case = all_cases().iter().find(|c| c.name == "dvs_res").unwrap();
    let r = reference(case);
    let layers = r.json["layers"].as_array().unwrap();
    let two_dests = layers
        .iter()
        .filter(|l| l["destinations"].as_array().unwrap().len() == 2)
        .count();
    assert_eq!(two_dests, 1, "one layer with two destinations in sinabs");
    let c = crate::speck::compiled(case).unwrap();
    let art = nmc_speck::decode(&c.artifact).unwrap();
    let mut sources = [0usize; 9];
    for l in art.cnn_layers.iter().filter(|l| l.used) {
        for d in &l.destinations {
            sources[d.layer as usize] += 1;
        }
    }
    assert_eq!(sources.iter().filter(|&&n| n == 2).count(), 1, "one merge");
}

#[test]
fn the_gesture_case_pools_its_input_in_the_dvs_layer_as_sinabs() {
    // dvs_gesture_speck: a sinabs-style model on 2x128x128 whose nn.AvgPool2d(4) on the input
    // runs in the DVS layer; sinabs (both from nmc's integers and from its own conversion of
    // model.onnx) sets the same 4x4 DVS pooling and puts every layer on the core nmc chose.
    let case = all_cases()
        .iter()
        .find(|c| c.name == "dvs_gesture_speck")
        .unwrap();
    let r = reference(case);
    let four = serde_json::json!({ "x": 4, "y": 4 });
    assert_eq!(r.json["config"]["dvs_layer"]["pooling"], four);
    assert_eq!(r.json["conversion"]["dvs_layer"]["pooling"], four);
    assert_eq!(r.json["layers"].as_array().unwrap().len(), 4);
    let nmc = nmc_json(crate::speck::compiled(case).unwrap());
    assert_eq!(nmc["input"]["map"], serde_json::json!([2, 128, 128]));
    assert_eq!(nmc["dvs_layer"]["pooling"], four);
    assert_eq!(
        nmc["layers"][0]["input_shape"],
        serde_json::json!([2, 32, 32])
    );
    let mut bad = r.json.clone();
    bad["conversion"]["dvs_layer"]["pooling"]["x"] = Value::from(2);
    assert!(
        same_mapping(&nmc, &bad).is_err(),
        "the DVS pooling is compared"
    );
}

#[test]
fn perturbed_references_fail() {
    let (case, c) = speck_cases()
        .into_iter()
        .find(|(c, _)| c.name == "dvs_res")
        .unwrap();
    let r = reference(case);
    let nmc = nmc_json(c);
    let mut bad = r.clone();
    bad.json["network"][1]["threshold_high"] = Value::from(1);
    assert!(same_network(&nmc, &bad.json).is_err());
    let mut bad = r.clone();
    bad.json["layers"][0]["sinabs_core"] = Value::from(7);
    assert!(same_mapping(&nmc, &bad.json).is_err());
    let mut bad = r.clone();
    bad.json["config"]["cnn_layers"][0]["destinations"][1]["pooling"] = Value::from(2);
    assert!(same_mapping(&nmc, &bad.json).is_err());
    let mut bad = r.clone();
    bad.json["conversion"]["cnn_layers"][2]["threshold_low"] = Value::from(-1);
    assert!(same_mapping(&nmc, &bad.json).is_err());
    let mut small = r.clone();
    small.samples = 2;
    assert!(same_spikes(case, c, &small).is_ok());
    let mut bad = small.clone();
    bad.counts[2 * bad.columns + 2] += 1; // sample 0, step 2, the second column's layer
    assert!(same_spikes(case, c, &bad).is_err());
    let mut bad = small.clone();
    bad.counts[0] += 1; // sample 0, step 0, input events
    assert!(same_spikes(case, c, &bad).is_err());
    let mut bad = small;
    bad.outputs[bad.n_out + 3] += 1;
    assert!(same_spikes(case, c, &bad).is_err());
}
