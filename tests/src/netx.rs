//! lava-dl netx networks against Lava itself: SLAYER-trained CUBA-LIF networks exported to netx
//! (`testdata/snn/netx_*`, made by `testdata/gen/make_snn_models.py`, which also ran Lava's
//! `Loihi2SimCfg(select_tag="fixed_pt")` on them and recorded every step's output spikes) compile
//! from the `.net` file for Loihi 2, and the emulator's output spikes equal Lava's at every
//! timestep of every sample.

use nmc::{driver, LoadedArtifact, Options, Target};
use std::path::{Path, PathBuf};

fn case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/snn")
        .join(name)
}

fn npy(dir: &Path, f: &str) -> nmc::npy::Array {
    nmc::npy::read(&dir.join(f)).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// Compiles `model.net` for Loihi 2, runs `input.npy` for as many steps as Lava ran, and
/// compares every step's output spikes with `lava_output.npy`.
fn equals_lava(name: &str) {
    let dir = case(name);
    let opts = Options::new(Target::lookup("loihi2").unwrap());
    let c = driver::compile(&dir.join("model.net"), &opts).unwrap();
    let art = LoadedArtifact::decode(&c.artifact).unwrap();
    let xs = npy(&dir, "input.npy");
    let lava = npy(&dir, "lava_output.npy");
    let (n, k) = (lava.shape[0], lava.shape[1]);
    assert_eq!(xs.shape[0], n);
    let r = art
        .run_recorded(&xs, Some(k as u32), &Default::default(), false, &|| {})
        .unwrap();
    let steps = r.steps.expect("recorded");
    assert_eq!(steps.shape, lava.shape);
    let out = lava.shape[2];
    for s in 0..n {
        for t in 0..k {
            let at = (s * k + t) * out;
            assert_eq!(
                steps.data[at..at + out],
                lava.data[at..at + out],
                "{name}: sample {s}, step {t}"
            );
        }
    }
    // The counts behind `-o` are the recorded spikes summed.
    let total: f32 = r.outputs.data.iter().sum();
    assert_eq!(total, lava.data.iter().sum::<f32>());
    assert!(total > 0.0);
}

#[test]
fn slayer_dense_network_spikes_as_lava_fixed_pt_at_every_step() {
    equals_lava("netx_dense");
}

#[test]
fn slayer_conv_network_spikes_as_lava_fixed_pt_at_every_step() {
    equals_lava("netx_conv");
}

/// `run --probe`: the hidden layer's spikes and voltages after every step, as Lava's monitors
/// recorded them (`lava_hidden_*.npy`; the conv case holds its first 20 samples).
fn probe_equals_lava(name: &str) {
    let dir = case(name);
    let opts = Options::new(Target::lookup("loihi2").unwrap());
    let c = driver::compile(&dir.join("model.net"), &opts).unwrap();
    let art = LoadedArtifact::decode(&c.artifact).unwrap();
    let spikes = npy(&dir, "lava_hidden_spikes.npy");
    let volts = npy(&dir, "lava_hidden_v.npy");
    let (n, k) = (spikes.shape[0], spikes.shape[1]);
    let mut xs = npy(&dir, "input.npy");
    let per = xs.data.len() / xs.shape[0];
    xs.shape[0] = n;
    xs.data.truncate(n * per);
    let hidden = art.to_json()["layers"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let r = art
        .run_probed(&xs, Some(k as u32), &Default::default(), &[hidden], &|| {})
        .unwrap();
    let p = &r.probes[0];
    assert_eq!(p.spikes.data.len(), spikes.data.len());
    let per_step = spikes.data.len() / (n * k);
    for s in 0..n {
        for t in 0..k {
            let at = (s * k + t) * per_step;
            let r = at..at + per_step;
            assert_eq!(
                p.spikes.data[r.clone()],
                spikes.data[r.clone()],
                "{name}: sample {s}, step {t}: spikes"
            );
            assert_eq!(
                p.v.data[r.clone()],
                volts.data[r],
                "{name}: sample {s}, step {t}: voltages"
            );
        }
    }
}

#[test]
fn hidden_spikes_and_voltages_probe_as_lava_monitors_record_them() {
    probe_equals_lava("netx_dense");
    probe_equals_lava("netx_conv");
}

/// `--emit netx` and `--emit nir`: nmc's output for each case is byte for byte the file that
/// `testdata/gen/check_emitted.py` loaded in lava-dl (same spikes as the original network at
/// every step, in Lava fixed_pt) and in `nir.read`; the netx file compiles back to the same
/// network.
#[test]
fn emitted_files_are_the_checked_ones() {
    for name in ["netx_dense", "netx_conv"] {
        let dir = case(name);
        let opts = Options::new(Target::lookup("loihi2").unwrap());
        let c = driver::compile(&dir.join("model.net"), &opts).unwrap();
        let netx = c.binary(nmc::Emit::Netx).unwrap();
        let nir = c.binary(nmc::Emit::Nir).unwrap();
        assert!(
            netx == std::fs::read(dir.join("emitted.net")).unwrap(),
            "{name}: --emit netx changed; re-run testdata/gen/check_emitted.py on the new file"
        );
        assert!(
            nir == std::fs::read(dir.join("emitted.nir")).unwrap(),
            "{name}: --emit nir changed; re-run testdata/gen/check_emitted.py on the new file"
        );
        let check: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("emitted_check.json")).unwrap())
                .unwrap();
        assert_eq!(
            check["lava_fixed_pt_output_equals_original"], true,
            "{name}"
        );
        assert_eq!(check["differing_spikes"], 0, "{name}");
        // Compiled back, the emitted netx file is the same network.
        let back = driver::compile(&dir.join("emitted.net"), &opts).unwrap();
        assert_eq!(
            nmc_ir::print(&back.quantized).replace("emitted", "model"),
            nmc_ir::print(&c.quantized).replace("emitted", "model"),
            "{name}"
        );
    }
}
