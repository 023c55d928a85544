//! The command line's machine-readable outputs, whose field names scripts and build systems rely
//! on: `--emit`, dep-info, `inspect --format json`, `run --report`, `run -o`.

use crate::common::{all_cases, cases, temp_dir};

fn nmc(args: &[&str]) {
    let mut argv = vec!["nmc"];
    argv.extend_from_slice(args);
    nmc::cli::run_args(argv).unwrap_or_else(|e| panic!("`nmc {}` failed: {e}", args.join(" ")));
}

#[test]
fn compile_emits_stage_dumps_and_dep_info() {
    let case = cases()
        .iter()
        .find(|c| c.name == "digits_mlp_extdata")
        .unwrap();
    let d = temp_dir("emit");
    let art = d.join("m.loihi2");
    let p = |f: &str| d.join(f).to_str().unwrap().to_string();
    let emit = format!(
        "ir={},canonical-ir={},egraph-ir={},quantized-ir={},opt-ir={},partitioned-ir={},listing={},report={},dep-info={}",
        p("ir.txt"),
        p("canonical.txt"),
        p("egraph.txt"),
        p("opt.txt"),
        p("opt-alias.txt"),
        p("part.txt"),
        p("listing.txt"),
        p("report.txt"),
        p("m.d")
    );
    nmc(&[
        "compile",
        case.model.to_str().unwrap(),
        "--target",
        "loihi2",
        "-o",
        art.to_str().unwrap(),
        "--emit",
        &emit,
    ]);
    let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    assert!(read("ir.txt").starts_with("graph "));
    assert!(read("opt.txt").contains("= quantize("));
    // `opt-ir` is the old name of `quantized-ir`, accepted for one release.
    assert_eq!(read("opt-alias.txt"), read("opt.txt"));
    // The layer graphs before and after the e-graph pass are float graphs of layers.
    for f in ["canonical.txt", "egraph.txt"] {
        let g = read(f);
        assert!(
            g.contains("= layer(") && !g.contains("= quantize("),
            "{f}: {g}"
        );
        assert_eq!(nmc_ir::print(&nmc_ir::parse(&g).unwrap()), g);
    }
    assert!(read("part.txt").contains("mapping {"));
    assert!(read("listing.txt").starts_with("artifact loihi2"));
    assert!(
        read("report.txt").contains("Softmax"),
        "the report says the softmax was left off"
    );
    // The artifact depends on the model and its external data, and on nothing else.
    let dep = read("m.d");
    let first = dep.lines().next().unwrap();
    assert!(first.starts_with(&format!("{}:", art.display())), "{dep}");
    assert!(
        first.contains("model.onnx ") && first.ends_with("model.onnx.data"),
        "{dep}"
    );
    // Parsing an emitted IR dump back gives the same text.
    let ir = read("opt.txt");
    assert_eq!(nmc_ir::print(&nmc_ir::parse(&ir).unwrap()), ir);
}

#[test]
fn run_report_and_inspect_json_have_the_documented_fields() {
    let case = cases().iter().find(|c| c.name == "digits_cnn").unwrap();
    let d = temp_dir("json");
    let art = d.join("m.loihi2");
    let inputs = case.dir.join("inputs.npy");
    nmc(&[
        "compile",
        case.model.to_str().unwrap(),
        "--target",
        "loihi2",
        "-o",
        art.to_str().unwrap(),
    ]);
    let out = d.join("out.npy");
    let report = d.join("perf.json");
    nmc(&[
        "run",
        art.to_str().unwrap(),
        "--input",
        inputs.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    let outputs = nmc::npy::read(&out).unwrap();
    assert_eq!(
        outputs.shape,
        vec![case.inputs.shape[0], 10],
        "batch first, then the output shape"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["target"], "loihi2");
    assert!(
        r["timesteps"].as_u64().unwrap() >= 4,
        "3 layers need at least 4 steps"
    );
    assert!(r["latency_ns"].as_f64().unwrap() > 0.0);
    assert!(r["energy_nj"].as_f64().unwrap() > 0.0);
    let cores = r["cores"].as_array().unwrap();
    assert_eq!(cores.len(), 3);
    for c in cores {
        for k in [
            "id",
            "syn_ops",
            "mem_reads",
            "neuron_updates",
            "msgs_in",
            "msgs_out",
            "bound",
        ] {
            assert!(c.get(k).is_some(), "core entry lacks `{k}`: {c}");
        }
    }
    // inspect --format json: one entry per layer with its name and where it was placed.
    let listing = nmc::LoadedArtifact::decode(&std::fs::read(&art).unwrap())
        .unwrap()
        .to_json();
    let layers = listing["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    assert_eq!(layers[0]["name"], "/conv1/Conv");
    assert_eq!(layers[0]["cores"][0]["core"], 0);
}

#[test]
fn targets_lists_loihi2_with_its_limits() {
    let text = nmc::cli::targets(nmc::cli::Format::Text);
    assert!(text.contains("loihi2") && text.contains("128"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&nmc::cli::targets(nmc::cli::Format::Json)).unwrap();
    assert_eq!(json[0]["name"], "loihi2");
    assert_eq!(json[0]["cores_per_chip"], 128);
}

#[test]
fn run_chip_params_change_cost_not_outputs_on_every_target() {
    // (case, target, a time constant of that target's cost model)
    for (name, target, constant) in [
        ("digits_mlp", "loihi2", "a_neu"),
        ("digits_mlp", "akd1000", "a_syn"),
        ("dvs_cnn", "speck", "t_syn"),
    ] {
        let case = crate::common::all_cases()
            .iter()
            .find(|c| c.name == name)
            .unwrap();
        let d = temp_dir(&format!("params-{target}"));
        let art = d.join(format!("m.{target}"));
        nmc(&[
            "compile",
            case.model.to_str().unwrap(),
            "--target",
            target,
            "-o",
            art.to_str().unwrap(),
        ]);
        // Four samples are enough: the figures are per inference.
        let mut x = case.inputs.clone();
        let per: usize = x.shape[1..].iter().product();
        x.shape[0] = 4;
        x.data.truncate(4 * per);
        let inputs = d.join("x.npy");
        nmc::npy::write(&inputs, &x).unwrap();
        let run = |params: Option<&std::path::Path>, tag: &str| {
            let (out, report) = (d.join(format!("{tag}.npy")), d.join(format!("{tag}.json")));
            let mut args = vec![
                "run",
                art.to_str().unwrap(),
                "--input",
                inputs.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--report",
                report.to_str().unwrap(),
            ];
            if let Some(p) = params {
                args.extend(["--chip-params", p.to_str().unwrap()]);
            }
            nmc(&args);
            let r: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
            (
                std::fs::read(&out).unwrap(),
                r["latency_ns"].as_f64().unwrap(),
            )
        };
        let (out0, lat0) = run(None, "default");
        let params = d.join("slow.toml");
        std::fs::write(&params, format!("{constant} = 1000.0\n")).unwrap();
        let (out1, lat1) = run(Some(&params), "slow");
        assert_eq!(out0, out1, "{target}: cost constants changed the outputs");
        assert!(
            lat1 > lat0,
            "{target}: {constant} = 1000 did not slow the run: {lat0} -> {lat1}"
        );
        // An unknown constant is a usage error (exit code 2), not silently ignored.
        std::fs::write(&params, "no_such_constant = 1.0\n").unwrap();
        let e = nmc::cli::run_args([
            "nmc",
            "run",
            art.to_str().unwrap(),
            "--input",
            inputs.to_str().unwrap(),
            "--chip-params",
            params.to_str().unwrap(),
        ])
        .unwrap_err();
        assert_eq!(e.exit_code(), 2, "{target}: {e}");
        assert!(e.to_string().contains("no_such_constant"), "{target}: {e}");
    }
}

/// Make rebuilds an artifact when any file the compile read changes: the depfile names the model,
/// its external data and the calibration inputs (the test drives GNU make in question mode).
#[test]
fn make_rebuilds_when_the_calibration_data_changes() {
    let case = cases()
        .iter()
        .find(|c| c.name == "digits_mlp_extdata")
        .unwrap();
    let d = temp_dir("make");
    let calib = d.join("calib.npy");
    std::fs::copy(case.dir.join("inputs.npy"), &calib).unwrap();
    let art = d.join("m.loihi2");
    let dep = d.join("m.d");
    nmc(&[
        "compile",
        case.model.to_str().unwrap(),
        "--target",
        "loihi2",
        "--calibrate",
        calib.to_str().unwrap(),
        "-o",
        art.to_str().unwrap(),
        "--emit",
        &format!("dep-info={}", dep.display()),
    ]);
    // The depfile names the artifact as the compile was told it (here an absolute path).
    std::fs::write(
        d.join("Makefile"),
        format!("{0}:\n\ttouch {0}\n-include m.d\n", art.display()),
    )
    .unwrap();
    let up_to_date = || {
        let st = std::process::Command::new("make")
            .arg("-q")
            .arg(&art)
            .current_dir(&d)
            .status()
            .expect("GNU make runs");
        st.success()
    };
    // Everything the depfile names is older than the artifact.
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for f in [&case.model, &case.model.with_extension("onnx.data"), &calib] {
        if f.starts_with(&d) {
            let file = std::fs::File::options().write(true).open(f).unwrap();
            file.set_modified(past).unwrap();
        }
    }
    let text = std::fs::read_to_string(&dep).unwrap();
    for f in [&case.model, &case.model.with_extension("onnx.data"), &calib] {
        assert!(
            text.contains(f.to_str().unwrap()),
            "{} not in {text}",
            f.display()
        );
    }
    let art_file = std::fs::File::options().write(true).open(&art).unwrap();
    art_file.set_modified(std::time::SystemTime::now()).unwrap();
    assert!(up_to_date(), "a fresh artifact is up to date:\n{text}");
    // New calibration data: the artifact is out of date.
    let future = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    let file = std::fs::File::options().write(true).open(&calib).unwrap();
    file.set_modified(future).unwrap();
    assert!(
        !up_to_date(),
        "calibration data changed but make sees nothing to do:\n{text}"
    );
}

/// `run --stream` on a graded Loihi 2 artifact writes the outputs an independent run writes; an
/// event file is already a stream (usage error).
#[test]
fn run_stream_from_the_command_line() {
    let case = cases().iter().find(|c| c.name == "digits_mlp").unwrap();
    let d = temp_dir("stream");
    let art = d.join("m.loihi2");
    nmc(&[
        "compile",
        case.model.to_str().unwrap(),
        "--target",
        "loihi2",
        "--calibrate",
        case.dir.join("inputs.npy").to_str().unwrap(),
        "-o",
        art.to_str().unwrap(),
    ]);
    let (a, b) = (d.join("a.npy"), d.join("b.npy"));
    let inputs = case.dir.join("inputs.npy");
    nmc(&[
        "run",
        art.to_str().unwrap(),
        "--input",
        inputs.to_str().unwrap(),
        "-o",
        a.to_str().unwrap(),
    ]);
    nmc(&[
        "run",
        art.to_str().unwrap(),
        "--input",
        inputs.to_str().unwrap(),
        "--stream",
        "-o",
        b.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let events = all_cases().iter().find(|c| c.name == "dvs_cnn").unwrap();
    let e = nmc::cli::run_args([
        "nmc",
        "run",
        art.to_str().unwrap(),
        "--input",
        events.dir.join("events.npy").to_str().unwrap(),
        "--stream",
    ])
    .unwrap_err();
    assert!(e.to_string().contains("--stream"), "{e}");
}
