//! The AKD1000 cases held to BrainChip's own engine (issue 15): `testdata/gen/akida_reference.py`
//! rebuilt each case's integer network in akida 2.19.3, ran `Model.predict` on the chip's input
//! codes and mapped it with `MapMode.Minimal` on `akida.AKD1000()`, and committed the results in
//! the case directory (`akida_inputs.npy`, `akida_outputs.npy`, `akida_reference.json`). CI runs
//! no Python: these tests read the files.
//!
//! - the reference was built from the network nmc compiles now (layer kinds, shapes, bits,
//!   thresholds, steps and a hash of the weights), else it is stale and must be regenerated;
//! - nmc's input grid gives akida's input codes, and the emulator's integer outputs equal
//!   akida's `predict` for every recorded sample (from the float inputs through `run`, and from
//!   the recorded codes through the emulator directly);
//! - every layer takes as many NPs of the same types as in akida's Minimal mapping, and the
//!   layers fall into the same hardware passes.
//!
//! `perturbed_references_fail` checks that the comparisons can fail.

use crate::akd1000::{akd_cases, compiled};
use crate::common::{Case, CALIB_SAMPLES};
use serde_json::Value;

const REGENERATE: &str = "the reference was built from another network: if nmc's AKD1000 \
     integers changed on purpose, rerun testdata/gen/akida_reference.py (testdata/README.md)";

/// One case's committed akida reference.
#[derive(Clone)]
struct Reference {
    json: Value,
    /// `akida_inputs.npy`: uint8 codes, `[samples, ...input shape]`.
    input_shape: Vec<usize>,
    inputs: Vec<u8>,
    /// `akida_outputs.npy`: int64, `[samples, ...output shape]`.
    output_shape: Vec<usize>,
    outputs: Vec<i64>,
}

impl Reference {
    fn samples(&self) -> usize {
        self.output_shape[0]
    }
}

fn npy<T: npyz::Deserialize>(path: &std::path::Path) -> (Vec<usize>, Vec<T>) {
    crate::common::vendor_npy(path, "akida_reference.py")
}

fn reference(case: &Case) -> Reference {
    let path = case.dir.join("akida_reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (every AKD1000 case has an akida reference: run testdata/gen/akida_reference.py)",
            path.display()
        )
    });
    let json: Value = serde_json::from_str(&text).unwrap();
    let (input_shape, inputs) = npy::<u8>(&case.dir.join("akida_inputs.npy"));
    let (output_shape, outputs) = npy::<i64>(&case.dir.join("akida_outputs.npy"));
    let r = Reference {
        json,
        input_shape,
        inputs,
        output_shape,
        outputs,
    };
    assert_eq!(r.json["akida"], "2.19.3", "{}: akida version", case.name);
    assert_eq!(r.json["map_mode"], "Minimal", "{}", case.name);
    assert_eq!(
        r.json["calibrate_samples"].as_u64(),
        Some(CALIB_SAMPLES as u64),
        "{}: the reference must be built from the network the tests compile",
        case.name
    );
    assert_eq!(r.json["samples"].as_u64(), Some(r.samples() as u64));
    assert_eq!(r.input_shape[0], r.samples(), "{}", case.name);
    assert!(r.samples() >= 24, "{}: a few dozen samples", case.name);
    r
}

/// `nmc inspect --format json` of the case's artifact, as the tests compile it.
fn nmc_json(case: &Case) -> Value {
    nmc::LoadedArtifact::decode(&compiled(case).artifact)
        .unwrap()
        .to_json()
}

/// The reference was built from `nmc`'s network (the script's `fingerprint`).
fn same_network(nmc: &Value, r: &Value) -> Result<(), String> {
    crate::common::same_fingerprint(
        nmc,
        r,
        &[
            "name",
            "type",
            "in_shape",
            "shape",
            "input_bits",
            "weight_bits",
            "act_bits",
            "threshold",
            "act_step",
        ],
    )?;
    // A SeparableConv2D's depthwise kernels.
    let layers = nmc["layers"].as_array().unwrap();
    for (l, f) in layers.iter().zip(r["network"].as_array().unwrap()) {
        let dw = l["dw_weights"]
            .as_array()
            .map(|w| crate::common::weights_fnv1a64(w));
        if dw.as_deref() != f["dw_weights_fnv1a64"].as_str() {
            return Err(format!("{}: depthwise weights differ", l["name"]));
        }
    }
    Ok(())
}

/// nmc's input codes and the emulator's integer outputs equal akida's, sample by sample.
fn same_outputs(case: &Case, r: &Reference) -> Result<(), String> {
    let c = compiled(case);
    let loaded = nmc::LoadedArtifact::decode(&c.artifact).unwrap();
    let Some(nmc_akd1000::LoadedAkd1000(a)) = loaded.downcast() else {
        panic!("not an akd1000 artifact")
    };
    let n = r.samples();
    let per_in = r.inputs.len() / n;
    let per_out = r.outputs.len() / n;
    // nmc's input grid (the same quantiser the emulator's `run` applies) gives akida's codes.
    let input = &a.inputs[0];
    let q = nmc_ir::QuantParams {
        scale: input.scale,
        min: 0,
        max: (1i32 << input.bits) - 1,
    };
    let floats = &case.inputs.data[..n * per_in];
    if let Some(i) = floats
        .iter()
        .zip(&r.inputs)
        .position(|(x, code)| nmc_ir::quantize(*x, &q) != i64::from(*code))
    {
        return Err(format!(
            "input code {i} (sample {}): nmc {}, akida was given {}",
            i / per_in,
            nmc_ir::quantize(floats[i], &q),
            r.inputs[i]
        ));
    }
    // From the float inputs, through `run`.
    let mut shape = vec![n];
    shape.extend_from_slice(&case.inputs.shape[1..]);
    let run = loaded
        .run(
            &nmc::npy::Array {
                shape,
                data: floats.to_vec(),
            },
            None,
        )
        .map_err(|e| e.to_string())?;
    // From the recorded codes, through the emulator itself.
    let emu = nmc_akd1000::Emulator::new(a, &nmc_akd1000::akd1000()).unwrap();
    for s in 0..n {
        let want = &r.outputs[s * per_out..(s + 1) * per_out];
        if run.int_outputs[s] != want {
            return Err(format!(
                "sample {s}: nmc run {:?}, akida predict {want:?}",
                run.int_outputs[s]
            ));
        }
        let codes: Vec<i64> = r.inputs[s * per_in..(s + 1) * per_in]
            .iter()
            .map(|&v| i64::from(v))
            .collect();
        let (outs, _) = emu.run(&[codes]).map_err(|e| e.to_string())?;
        if outs[0] != want {
            return Err(format!(
                "sample {s}: emulator on akida's codes {:?}, akida predict {want:?}",
                outs[0]
            ));
        }
    }
    Ok(())
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// NPs per layer (count and types) and hardware passes equal akida's Minimal mapping.
fn same_mapping(nmc: &Value, r: &Value) -> Result<(), String> {
    let map = &r["mapping"];
    let theirs = map["layers"].as_array().unwrap();
    let ours = nmc["layers"].as_array().unwrap();
    if ours.len() != theirs.len() {
        return Err(format!("{} layers, akida {}", ours.len(), theirs.len()));
    }
    for (l, t) in ours.iter().zip(theirs) {
        let mine = sorted(
            l["nps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["np_type"].as_str().unwrap().to_string())
                .collect(),
        );
        let akida = sorted(
            t["nps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["type"].as_str().unwrap().to_string())
                .collect(),
        );
        if mine != akida {
            return Err(format!(
                "{}: nmc {mine:?}, akida {} {akida:?}",
                l["name"], t["akida_type"]
            ));
        }
    }
    // akida's passes, in order over its sequences; every sequence on the hardware.
    let mut passes: Vec<Vec<String>> = Vec::new();
    for s in map["sequences"].as_array().unwrap() {
        if s["backend"] != "Hardware" {
            return Err(format!("akida runs sequence {} in software", s["name"]));
        }
        for p in s["passes"].as_array().unwrap() {
            passes.push(
                p.as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_str().unwrap().to_string())
                    .collect(),
            );
        }
    }
    let mut mine: Vec<Vec<String>> = Vec::new();
    for l in ours {
        let pass = l["nps"][0]["pass"].as_u64().unwrap() as usize;
        mine.resize(mine.len().max(pass + 1), Vec::new());
        mine[pass].push(l["name"].as_str().unwrap().to_string());
    }
    if mine != passes {
        return Err(format!("passes: nmc {mine:?}, akida {passes:?}"));
    }
    Ok(())
}

#[test]
fn every_akd1000_case_has_an_akida_reference_of_its_current_network() {
    for case in akd_cases() {
        let r = reference(case);
        if let Err(e) = same_network(&nmc_json(case), &r.json) {
            panic!("{}: {e}; {REGENERATE}", case.name);
        }
    }
}

#[test]
fn emulator_outputs_equal_akida_predict() {
    for case in akd_cases() {
        let r = reference(case);
        same_network(&nmc_json(case), &r.json)
            .unwrap_or_else(|e| panic!("{}: {e}; {REGENERATE}", case.name));
        if let Err(e) = same_outputs(case, &r) {
            panic!("{}: nmc disagrees with akida 2.19.3: {e}", case.name);
        }
    }
}

#[test]
fn np_mapping_equals_akida_minimal() {
    for case in akd_cases() {
        let r = reference(case);
        let nmc = nmc_json(case);
        same_network(&nmc, &r.json).unwrap_or_else(|e| panic!("{}: {e}; {REGENERATE}", case.name));
        if let Err(e) = same_mapping(&nmc, &r.json) {
            panic!(
                "{}: nmc's mapping differs from akida's MapMode.Minimal: {e}",
                case.name
            );
        }
    }
}

/// Each comparison fails when one recorded value changes.
#[test]
fn perturbed_references_fail() {
    let case = akd_cases()
        .into_iter()
        .find(|c| c.name == "digits_cnn_akida")
        .unwrap();
    let r = reference(case);
    let nmc = nmc_json(case);
    // One output of the last sample.
    let mut bad = r.clone();
    *bad.outputs.last_mut().unwrap() += 1;
    assert!(same_outputs(case, &bad).is_err());
    // One input code.
    let mut bad = r.clone();
    let mid = bad.inputs.len() / 2;
    bad.inputs[mid] ^= 1;
    assert!(same_outputs(case, &bad).is_err());
    // One NP's type, an extra NP, a second pass.
    let mut bad = r.json.clone();
    bad["mapping"]["layers"][1]["nps"][0]["type"] = "CNP2".into();
    assert!(same_mapping(&nmc, &bad).is_err());
    let mut bad = r.json.clone();
    let np = bad["mapping"]["layers"][2]["nps"][0].clone();
    bad["mapping"]["layers"][2]["nps"]
        .as_array_mut()
        .unwrap()
        .push(np);
    assert!(same_mapping(&nmc, &bad).is_err());
    let mut bad = r.json.clone();
    let last = bad["mapping"]["sequences"][0]["passes"][0]
        .as_array_mut()
        .unwrap()
        .pop()
        .unwrap();
    bad["mapping"]["sequences"][0]["passes"]
        .as_array_mut()
        .unwrap()
        .push(Value::Array(vec![last]));
    assert!(same_mapping(&nmc, &bad).is_err());
    // One threshold, one weight of the network the reference was built from.
    let mut bad = r.json.clone();
    bad["network"][1]["threshold"][0] = 12345.into();
    assert!(same_network(&nmc, &bad).is_err());
    let mut bad = r.json.clone();
    bad["network"][0]["weights_fnv1a64"] = "0000000000000000".into();
    assert!(same_network(&nmc, &bad).is_err());
    // And the unperturbed reference passes.
    assert_eq!(same_outputs(case, &r), Ok(()));
    assert_eq!(same_mapping(&nmc, &r.json), Ok(()));
    assert_eq!(same_network(&nmc, &r.json), Ok(()));
}

/// `nmc run` takes an integer `.npy` as the AKD1000's input codes, as akida does: the recorded
/// uint8 codes give akida's outputs, and a code out of range is an input error naming it.
#[test]
fn integer_inputs_are_the_chips_codes() {
    let case = akd_cases()
        .into_iter()
        .find(|c| c.name == "digits_cnn_akida")
        .expect("shipped case");
    let r = reference(case);
    let d = crate::common::temp_dir("akida-codes");
    let art = d.join("m.akd1000");
    std::fs::write(&art, &compiled(case).artifact).unwrap();
    let codes = case.dir.join("akida_inputs.npy");
    let out = d.join("out.npy");
    nmc::cli::run_args(vec![
        "nmc",
        "run",
        art.to_str().unwrap(),
        "--input",
        codes.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ])
    .unwrap();
    let got = nmc::npy::read(&out).unwrap();
    let loaded = nmc::LoadedArtifact::decode(&compiled(case).artifact).unwrap();
    let q = loaded.input_codes().expect("the AKD1000 takes codes");
    // The same codes given as float values reproduce akida's integer outputs exactly.
    let as_floats = nmc::npy::Array {
        shape: r.input_shape.clone(),
        data: r.inputs.iter().map(|&c| f32::from(c)).collect(),
    };
    let values = nmc::npy::codes_as_values(&as_floats, &q).unwrap();
    let run = loaded.run(&values, None).unwrap();
    let per = r.outputs.len() / r.samples();
    for (s, ints) in run.int_outputs.iter().enumerate() {
        assert_eq!(ints[..], r.outputs[s * per..(s + 1) * per], "sample {s}");
    }
    assert_eq!(
        got.data, run.outputs.data,
        "the CLI read the integer file as codes"
    );

    // Values no 8-bit code has.
    assert!(nmc::npy::is_integer(&codes));
    let too_big = nmc::npy::Array {
        shape: vec![1, 2],
        data: vec![3.0, 300.0],
    };
    let e = nmc::npy::codes_as_values(&too_big, &q).unwrap_err();
    assert_eq!(
        e,
        "element 1 is 300, not an input code of the chip (0..=255); pass values as a float array instead"
    );
    let e = nmc::npy::codes_as_values(
        &nmc::npy::Array {
            shape: vec![1],
            data: vec![1.5],
        },
        &q,
    )
    .unwrap_err();
    assert!(e.starts_with("element 0 is 1.5, not an input code"), "{e}");
}
