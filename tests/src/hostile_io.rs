//! Hostile files, paths and flags (issue 16): every case ends in a clear error of the documented
//! kind and exit code, within seconds, and touches nothing but the command's named outputs.
//!
//! - outputs: devices and FIFOs are written in place, symbolic links followed, planted links at
//!   temporary names ignored; a failing command leaves no output; an output equal to an input is
//!   refused;
//! - reading: FIFOs, devices, folders and files over the size limit are refused before reading;
//! - flags: `--chips`, `--timesteps`, `--evals` within their limits, flags a target ignores
//!   refused;
//! - inputs and labels: shapes match the model's input up to leading 1s, labels are whole
//!   numbers in range.

use crate::common::{all_cases, temp_dir, Case};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

fn case(name: &str) -> &'static Case {
    all_cases().iter().find(|c| c.name == name).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs the CLI in process on another thread and waits at most `secs` seconds: a hang fails the
/// test instead of blocking the suite.
fn nmc_within(secs: u64, args: &[&str]) -> Result<(), nmc::Error> {
    let mut argv: Vec<String> = vec!["nmc".into()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(nmc::cli::run_args(argv));
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("`nmc {}` did not finish in {secs} s", args.join(" ")))
}

/// The command must fail with `kind` and exit `code`; returns the message.
fn fails(kind: &str, code: i32, args: &[&str]) -> String {
    match nmc_within(120, args) {
        Ok(()) => panic!("`nmc {}` succeeded", args.join(" ")),
        Err(e) => {
            assert_eq!(
                (e.kind(), e.exit_code()),
                (kind, code),
                "`nmc {}`: wrong error: {e}",
                args.join(" ")
            );
            e.to_string()
        }
    }
}

fn ok(args: &[&str]) {
    if let Err(e) = nmc_within(300, args) {
        panic!("`nmc {}` failed: {e}", args.join(" "));
    }
}

/// Every file in `dir` (not following links) with its bytes, or its link target.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let bytes = if m.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display()).into_bytes()
            } else if m.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                b"(special)".to_vec()
            };
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect()
}

/// Asserts `dir` holds what it held before, plus exactly `new` (names).
fn only_new(dir: &Path, before: &BTreeMap<String, Vec<u8>>, new: &[&str]) {
    let mut after = contents(dir);
    for n in new {
        assert!(after.remove(*n).is_some(), "{n} was not written");
    }
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "files appeared or vanished in {}",
        dir.display()
    );
    assert!(after == *before, "a file other than the outputs changed");
}

fn mkfifo(p: &Path) {
    let st = std::process::Command::new("mkfifo")
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success(), "mkfifo failed");
}

fn write_npy(p: &Path, shape: &[usize], data: Vec<f32>) {
    nmc::npy::write(
        p,
        &nmc::npy::Array {
            shape: shape.to_vec(),
            data,
        },
    )
    .unwrap();
}

/// The first `n` samples of a case's inputs, written to `dir/x.npy`.
fn few_inputs(c: &Case, dir: &Path, n: usize) -> PathBuf {
    let mut x = c.inputs.clone();
    let per: usize = x.shape[1..].iter().product();
    x.shape[0] = n;
    x.data.truncate(n * per);
    let p = dir.join("x.npy");
    nmc::npy::write(&p, &x).unwrap();
    p
}

/// digits_mlp compiled for `target` once, in its own folder.
fn artifact(target: &'static str) -> PathBuf {
    static ARTS: OnceLock<std::sync::Mutex<BTreeMap<&'static str, PathBuf>>> = OnceLock::new();
    let map = ARTS.get_or_init(Default::default);
    let mut map = map.lock().unwrap();
    map.entry(target)
        .or_insert_with(|| {
            let d = temp_dir(&format!("hostile-art-{target}"));
            let art = d.join(format!("mlp.{target}"));
            ok(&[
                "compile",
                s(&case("digits_mlp").model),
                "--target",
                target,
                "-o",
                s(&art),
            ]);
            art
        })
        .clone()
}

// ---- A. Outputs ------------------------------------------------------------------------------

#[test]
fn output_onto_a_device_writes_the_device_and_keeps_it() {
    use std::os::unix::fs::FileTypeExt;
    let c = case("digits_mlp");
    let d = temp_dir("hostile-dev");
    let x = few_inputs(c, &d, 4);
    let before = contents(&d);
    ok(&["eval", s(&c.model), "--input", s(&x), "-o", "/dev/null"]);
    let m = std::fs::symlink_metadata("/dev/null").unwrap();
    assert!(m.file_type().is_char_device(), "/dev/null was replaced");
    only_new(&d, &before, &[]);
}

#[test]
fn output_onto_a_fifo_writes_into_it() {
    use std::os::unix::fs::FileTypeExt;
    let c = case("digits_mlp");
    let d = temp_dir("hostile-fifo-out");
    let x = few_inputs(c, &d, 4);
    let fifo = d.join("out.fifo");
    mkfifo(&fifo);
    // A reader, so that the write does not wait forever; killed if nmc never opens the FIFO.
    let mut cat = std::process::Command::new("cat")
        .arg(&fifo)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let r = nmc_within(
        120,
        &["eval", s(&c.model), "--input", s(&x), "-o", s(&fifo)],
    );
    if r.is_err() {
        let _ = cat.kill();
    }
    r.unwrap();
    let out = cat.wait_with_output().unwrap();
    let written = nmc::npy::parse(&out.stdout).unwrap();
    assert_eq!(written.shape, vec![4, 10]);
    let m = std::fs::symlink_metadata(&fifo).unwrap();
    assert!(m.file_type().is_fifo(), "the FIFO was replaced");
}

#[test]
fn output_onto_a_symlink_writes_its_target_and_keeps_the_link() {
    let c = case("digits_mlp");
    let d = temp_dir("hostile-link-out");
    let x = few_inputs(c, &d, 4);
    let real = d.join("real.npy");
    std::fs::write(&real, "old").unwrap();
    let link = d.join("link.npy");
    std::os::unix::fs::symlink("real.npy", &link).unwrap();
    // A dangling link is followed too: its target is created.
    let dangling = d.join("dangling.json");
    std::os::unix::fs::symlink("made.json", &dangling).unwrap();
    let before = contents(&d);
    ok(&[
        "run",
        s(&artifact("loihi2")),
        "--input",
        s(&x),
        "-o",
        s(&link),
        "--report",
        s(&dangling),
    ]);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(nmc::npy::read(&real).unwrap().shape, vec![4, 10]);
    assert!(std::fs::read_to_string(d.join("made.json"))
        .unwrap()
        .contains("latency_ns"));
    let mut before = before;
    before.remove("real.npy");
    only_new(&d, &before, &["real.npy", "made.json"]);
}

#[test]
fn a_link_planted_at_the_old_temporary_name_is_not_followed() {
    let c = case("digits_mlp");
    let d = temp_dir("hostile-plant");
    let x = few_inputs(c, &d, 4);
    let victim = d.join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    // nmc used to write `.NAME.nmc-tmp-PID` and follow a link there.
    let planted = d.join(format!(".out.npy.nmc-tmp-{}", std::process::id()));
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    let before = contents(&d);
    let out = d.join("out.npy");
    ok(&["eval", s(&c.model), "--input", s(&x), "-o", s(&out)]);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    only_new(&d, &before, &["out.npy"]);
}

#[test]
fn run_with_a_bad_report_path_leaves_no_output() {
    let c = case("digits_mlp");
    let d = temp_dir("hostile-report");
    let x = few_inputs(c, &d, 4);
    let before = contents(&d);
    let out = d.join("out.npy");
    let report = d.join("nodir/r.json");
    let msg = fails(
        "io",
        1,
        &[
            "run",
            s(&artifact("loihi2")),
            "--input",
            s(&x),
            "-o",
            s(&out),
            "--report",
            s(&report),
        ],
    );
    assert!(msg.contains("nodir"), "{msg}");
    only_new(&d, &before, &[]);
}

#[test]
fn run_with_mismatched_labels_leaves_no_output() {
    let c = case("digits_mlp");
    let d = temp_dir("hostile-run-labels");
    let x = few_inputs(c, &d, 4);
    let labels = d.join("y.npy");
    write_npy(&labels, &[3], vec![1.0, 2.0, 3.0]);
    let before = contents(&d);
    let (out, report) = (d.join("out.npy"), d.join("r.json"));
    let msg = fails(
        "input",
        1,
        &[
            "run",
            s(&artifact("loihi2")),
            "--input",
            s(&x),
            "-o",
            s(&out),
            "--report",
            s(&report),
            "--labels",
            s(&labels),
        ],
    );
    assert!(msg.contains("y.npy") && msg.contains("3 labels"), "{msg}");
    only_new(&d, &before, &[]);
}

#[test]
fn eval_with_empty_labels_leaves_no_output() {
    let c = case("digits_mlp");
    let d = temp_dir("hostile-eval-labels");
    let x = few_inputs(c, &d, 4);
    let labels = d.join("y.npy");
    write_npy(&labels, &[0], vec![]);
    let before = contents(&d);
    let out = d.join("out.npy");
    let msg = fails(
        "input",
        1,
        &[
            "eval",
            s(&c.model),
            "--input",
            s(&x),
            "-o",
            s(&out),
            "--labels",
            s(&labels),
        ],
    );
    assert!(msg.contains("y.npy"), "{msg}");
    only_new(&d, &before, &[]);
}

#[test]
fn compile_with_a_bad_emit_path_leaves_no_artifact() {
    let c = case("digits_mlp");
    let d = temp_dir("hostile-emit");
    let before = contents(&d);
    let art = d.join("m.loihi2");
    let ir = d.join("nodir/ir.txt");
    let emit = format!("ir={}", s(&ir));
    fails(
        "io",
        1,
        &[
            "compile",
            s(&c.model),
            "--target",
            "loihi2",
            "-o",
            s(&art),
            "--emit",
            &emit,
        ],
    );
    only_new(&d, &before, &[]);
}

#[test]
fn an_output_equal_to_an_input_is_refused() {
    let c = case("digits_mlp_extdata");
    let d = temp_dir("hostile-same");
    for f in ["model.onnx", "model.onnx.data"] {
        std::fs::copy(c.dir.join(f), d.join(f)).unwrap();
    }
    let model = d.join("model.onnx");
    let x = few_inputs(c, &d, 4);
    std::fs::create_dir(d.join("sub")).unwrap();
    std::os::unix::fs::symlink("x.npy", d.join("x-link.npy")).unwrap();
    let before = contents(&d);
    // The input itself, another spelling of it, and a link to it.
    let spelled = d.join("sub/../x.npy");
    let link = d.join("x-link.npy");
    for out in [&x, &spelled, &link] {
        let msg = fails(
            "usage",
            2,
            &["eval", s(&model), "--input", s(&x), "-o", s(out)],
        );
        assert!(msg.contains("x.npy") && msg.contains("input"), "{msg}");
    }
    // The model, and its external data (an input found while importing).
    for out in [&model, &d.join("model.onnx.data")] {
        let msg = fails(
            "usage",
            2,
            &["compile", s(&model), "--target", "loihi2", "-o", s(out)],
        );
        assert!(msg.contains("model.onnx"), "{msg}");
    }
    // Two outputs naming one file.
    let same = d.join("r.out");
    let msg = fails(
        "usage",
        2,
        &[
            "run",
            s(&artifact("loihi2")),
            "--input",
            s(&x),
            "-o",
            s(&same),
            "--report",
            s(&same),
        ],
    );
    assert!(msg.contains("same file"), "{msg}");
    // A folder is not a file name.
    let msg = fails(
        "usage",
        2,
        &["eval", s(&model), "--input", s(&x), "-o", s(&d.join("sub"))],
    );
    assert!(msg.contains("folder"), "{msg}");
    only_new(&d, &before, &[]);
}

#[test]
fn an_existing_output_keeps_its_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let c = case("digits_mlp");
    let d = temp_dir("hostile-perms");
    let x = few_inputs(c, &d, 4);
    let out = d.join("out.npy");
    std::fs::write(&out, "old").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o640)).unwrap();
    ok(&["eval", s(&c.model), "--input", s(&x), "-o", s(&out)]);
    let m = std::fs::metadata(&out).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o640);
    assert_eq!(nmc::npy::read(&out).unwrap().shape, vec![4, 10]);
}

// ---- B. Reading ------------------------------------------------------------------------------

#[test]
fn fifos_are_refused_without_blocking() {
    let c = case("digits_mlp");
    let d = temp_dir("hostile-fifo-in");
    let x = few_inputs(c, &d, 4);
    let fifo = d.join("pipe");
    mkfifo(&fifo);
    let art = artifact("loihi2");
    let out = d.join("out.npy");
    let check = |kind: &str, code: i32, args: &[&str]| {
        let msg = match nmc_within(20, args) {
            Ok(()) => panic!("`nmc {}` succeeded", args.join(" ")),
            Err(e) => {
                assert_eq!((e.kind(), e.exit_code()), (kind, code), "{e}");
                e.to_string()
            }
        };
        assert!(msg.contains("pipe") && msg.contains("FIFO"), "{msg}");
    };
    check(
        "io",
        1,
        &["compile", s(&fifo), "--target", "loihi2", "-o", s(&out)],
    );
    check("input", 1, &["eval", s(&c.model), "--input", s(&fifo)]);
    check("io", 1, &["run", s(&fifo), "--input", s(&x)]);
    check("io", 1, &["inspect", s(&fifo)]);
    check(
        "input",
        1,
        &["eval", s(&c.model), "--input", s(&x), "--labels", s(&fifo)],
    );
    check(
        "usage",
        2,
        &["run", s(&art), "--input", s(&x), "--chip-params", s(&fifo)],
    );
    assert!(!out.exists());
}

#[test]
fn external_data_that_is_a_fifo_is_refused_without_blocking() {
    let c = case("digits_mlp_extdata");
    let d = temp_dir("hostile-fifo-ext");
    std::fs::copy(&c.model, d.join("model.onnx")).unwrap();
    mkfifo(&d.join("model.onnx.data"));
    let out = d.join("out.loihi2");
    let msg = match nmc_within(
        20,
        &[
            "compile",
            s(&d.join("model.onnx")),
            "--target",
            "loihi2",
            "-o",
            s(&out),
        ],
    ) {
        Ok(()) => panic!("compiled"),
        Err(e) => {
            assert_eq!((e.kind(), e.exit_code()), ("external-data", 1), "{e}");
            e.to_string()
        }
    };
    assert!(msg.contains("FIFO"), "{msg}");
    assert!(!out.exists());
}

#[test]
fn dev_zero_is_refused_as_model_input_artifact_labels_and_params() {
    let c = case("digits_mlp");
    let d = temp_dir("hostile-zero");
    let x = few_inputs(c, &d, 4);
    let art = artifact("loihi2");
    let before = contents(&d);
    let z = "/dev/zero";
    let out = d.join("out.npy");
    let o = s(&out);
    for (kind, code, args) in [
        ("io", 1, vec!["compile", z, "--target", "loihi2", "-o", o]),
        ("io", 1, vec!["inspect", z]),
        ("input", 1, vec!["eval", s(&c.model), "--input", z, "-o", o]),
        ("io", 1, vec!["run", z, "--input", s(&x), "-o", o]),
        ("input", 1, vec!["run", s(&art), "--input", z, "-o", o]),
        (
            "input",
            1,
            vec!["run", s(&art), "--input", s(&x), "--labels", z, "-o", o],
        ),
        (
            "usage",
            2,
            vec![
                "run",
                s(&art),
                "--input",
                s(&x),
                "--chip-params",
                z,
                "-o",
                o,
            ],
        ),
    ] {
        let msg = match nmc_within(20, &args) {
            Ok(()) => panic!("`nmc {}` succeeded", args.join(" ")),
            Err(e) => {
                assert_eq!((e.kind(), e.exit_code()), (kind, code), "{e}");
                e.to_string()
            }
        };
        assert!(
            msg.contains("/dev/zero") && msg.contains("character device"),
            "{msg}"
        );
    }
    only_new(&d, &before, &[]);
}

#[test]
fn folders_are_refused_as_inputs() {
    let c = case("digits_mlp");
    let d = temp_dir("hostile-dir-in");
    let msg = fails("input", 1, &["eval", s(&c.model), "--input", s(&d)]);
    assert!(msg.contains("folder"), "{msg}");
    let msg = fails("io", 1, &["inspect", s(&d)]);
    assert!(msg.contains("folder"), "{msg}");
}

#[test]
fn files_over_the_size_limit_are_refused_before_reading() {
    let c = case("digits_mlp");
    let d = temp_dir("hostile-big");
    let x = few_inputs(c, &d, 4);
    // A sparse file one byte over the 2 GiB limit: no disk space, and nmc must not read it.
    let big = d.join("big.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(nmc::fsutil::DEFAULT_MAX_FILE_BYTES + 1)
        .unwrap();
    let art = artifact("loihi2");
    for (kind, code, args) in [
        ("io", 1, vec!["compile", s(&big), "--target", "loihi2"]),
        ("input", 1, vec!["eval", s(&c.model), "--input", s(&big)]),
        ("io", 1, vec!["run", s(&big), "--input", s(&x)]),
        ("io", 1, vec!["inspect", s(&big)]),
        (
            "usage",
            2,
            vec!["run", s(&art), "--input", s(&x), "--chip-params", s(&big)],
        ),
    ] {
        let msg = match nmc_within(20, &args) {
            Ok(()) => panic!("`nmc {}` succeeded", args.join(" ")),
            Err(e) => {
                assert_eq!((e.kind(), e.exit_code()), (kind, code), "{e}");
                e.to_string()
            }
        };
        assert!(msg.contains("big.bin") && msg.contains("limit"), "{msg}");
        if kind != "usage" {
            assert!(
                msg.contains("NMC_MAX_FILE_BYTES") && msg.contains("2 GiB"),
                "{msg}"
            );
        }
    }
}

// ---- C. Flags --------------------------------------------------------------------------------

#[test]
fn chips_beyond_the_limit_are_a_usage_error() {
    let c = case("digits_mlp");
    let d = temp_dir("hostile-chips");
    let x = d.join("x.npy");
    std::fs::copy(c.dir.join("inputs.npy"), &x).unwrap();
    let before = contents(&d);
    let out = d.join("m.loihi2");
    for chips in ["4294967295", "300000", "1153"] {
        for args in [
            vec![
                "analyze",
                s(&c.model),
                "--target",
                "loihi2",
                "--chips",
                chips,
            ],
            vec![
                "compile",
                s(&c.model),
                "--target",
                "loihi2",
                "--partition",
                "floorline",
                "--chips",
                chips,
                "-o",
                s(&out),
            ],
            vec![
                "compile",
                s(&c.model),
                "--target",
                "loihi2",
                "--partition",
                "evolve",
                "--calibrate",
                s(&x),
                "--chips",
                chips,
                "-o",
                s(&out),
            ],
        ] {
            let msg = match nmc_within(20, &args) {
                Ok(()) => panic!("`nmc {}` succeeded", args.join(" ")),
                Err(e) => {
                    assert_eq!((e.kind(), e.exit_code()), ("usage", 2), "{e}");
                    e.to_string()
                }
            };
            assert!(
                msg.contains(&format!("--chips {chips}")) && msg.contains("1152"),
                "{msg}"
            );
        }
    }
    only_new(&d, &before, &[]);
    // The limit itself is fine.
    ok(&[
        "analyze",
        s(&c.model),
        "--target",
        "loihi2",
        "--chips",
        "1152",
    ]);
}

#[test]
fn timesteps_beyond_the_limit_are_a_usage_error() {
    let c = case("digits_mlp");
    let d = temp_dir("hostile-timesteps");
    let x = few_inputs(c, &d, 2);
    let before = contents(&d);
    let out = d.join("out.npy");
    for args in [
        vec![
            "run",
            s(&artifact("loihi2")),
            "--input",
            s(&x),
            "--timesteps",
            "4294967295",
            "-o",
            s(&out),
        ],
        vec![
            "compile",
            s(&case("dvs_cnn").model),
            "--target",
            "speck",
            "--timesteps",
            "4294967295",
            "-o",
            s(&out),
        ],
        vec![
            "run",
            s(&artifact("loihi2")),
            "--input",
            s(&x),
            "--timesteps",
            "0",
        ],
    ] {
        let msg = fails("usage", 2, &args);
        assert!(msg.contains("--timesteps"), "{msg}");
    }
    let msg = fails(
        "usage",
        2,
        &[
            "run",
            s(&artifact("loihi2")),
            "--input",
            s(&x),
            "--timesteps",
            "1048577",
        ],
    );
    assert!(msg.contains("1048576"), "{msg}");
    only_new(&d, &before, &[]);
}

#[test]
fn evals_beyond_the_limit_are_a_usage_error() {
    let c = case("digits_mlp");
    let d = temp_dir("hostile-evals");
    let x = d.join("x.npy");
    std::fs::copy(c.dir.join("inputs.npy"), &x).unwrap();
    let out = d.join("m.loihi2");
    let msg = fails(
        "usage",
        2,
        &[
            "compile",
            s(&c.model),
            "--target",
            "loihi2",
            "--partition",
            "evolve",
            "--calibrate",
            s(&x),
            "--evals",
            "100000000",
            "-o",
            s(&out),
        ],
    );
    assert!(
        msg.contains("--evals 100000000")
            && msg.contains("100000")
            && msg.contains("NMC_MAX_EVALS"),
        "{msg}"
    );
    assert!(!out.exists());
}

#[test]
fn flags_a_target_ignores_are_refused_there() {
    let c = case("digits_mlp");
    let d = temp_dir("hostile-ignored");
    let x = few_inputs(c, &d, 2);
    let before = contents(&d);
    let out = d.join("m.art");
    // Compile-time timesteps: only Speck's rate-mode artifacts have default timesteps.
    for target in ["loihi2", "akd1000"] {
        let msg = fails(
            "usage",
            2,
            &[
                "compile",
                s(&c.model),
                "--target",
                target,
                "--timesteps",
                "8",
                "-o",
                s(&out),
            ],
        );
        assert!(
            msg.contains("--timesteps 8") && msg.contains(target),
            "{msg}"
        );
    }
    // The AKD1000 has no timesteps at run time either.
    let msg = fails(
        "usage",
        2,
        &[
            "run",
            s(&artifact("akd1000")),
            "--input",
            s(&x),
            "--timesteps",
            "4",
        ],
    );
    assert!(msg.contains("--timesteps"), "{msg}");
    // eval's --timesteps is for a rate-mode (speck) or spiking quantised evaluation only.
    let msg = fails(
        "usage",
        2,
        &[
            "eval",
            s(&c.model),
            "--input",
            s(&x),
            "--quantized",
            "--target",
            "loihi2",
            "--timesteps",
            "4",
        ],
    );
    assert!(msg.contains("not a spiking network"), "{msg}");
    // --calibrate without --quantized would be ignored.
    fails(
        "usage",
        2,
        &["eval", s(&c.model), "--input", s(&x), "--calibrate", s(&x)],
    );
    only_new(&d, &before, &[]);
}

// ---- D. Inputs and labels --------------------------------------------------------------------

#[test]
fn inputs_must_have_the_model_input_shape() {
    let c = case("digits_mlp");
    let d = temp_dir("hostile-shape");
    // 4 samples of 8×8 for a model that takes 64 values; and the transposed [64, 4].
    let square = d.join("square.npy");
    write_npy(&square, &[4, 8, 8], c.inputs.data[..256].to_vec());
    let transposed = d.join("transposed.npy");
    write_npy(&transposed, &[64, 4], c.inputs.data[..256].to_vec());
    let art = artifact("loihi2");
    for bad in [&square, &transposed] {
        for args in [
            vec!["eval", s(&c.model), "--input", s(bad)],
            vec!["run", s(&art), "--input", s(bad)],
            vec![
                "compile",
                s(&c.model),
                "--target",
                "loihi2",
                "--calibrate",
                s(bad),
                "-o",
                s(&d.join("m.loihi2")),
            ],
        ] {
            let msg = fails("input", 1, &args);
            let name = bad.file_name().unwrap().to_str().unwrap();
            assert!(
                msg.contains(name) && msg.contains("[N, 64]"),
                "{}: {msg}",
                args.join(" ")
            );
        }
    }
    assert!(!d.join("m.loihi2").exists());
    // Leading 1s may be added or left out: [N, 1, 64] and one unbatched [64] sample run.
    let ones = d.join("ones.npy");
    write_npy(&ones, &[4, 1, 64], c.inputs.data[..256].to_vec());
    let one = d.join("one.npy");
    write_npy(&one, &[64], c.inputs.data[..64].to_vec());
    for x in [&ones, &one] {
        ok(&["eval", s(&c.model), "--input", s(x)]);
        ok(&["run", s(&art), "--input", s(x)]);
    }
    // [N, 8, 8] holds samples of digits_cnn's [1, 8, 8].
    let cnn = case("digits_cnn");
    let squeezed = d.join("squeezed.npy");
    write_npy(&squeezed, &[4, 8, 8], cnn.inputs.data[..256].to_vec());
    ok(&["eval", s(&cnn.model), "--input", s(&squeezed)]);
}

#[test]
fn labels_must_be_whole_numbers_in_range() {
    let c = case("digits_mlp");
    let d = temp_dir("hostile-label-values");
    let x = few_inputs(c, &d, 4);
    let art = artifact("loihi2");
    for (tag, bad) in [
        ("nan", f32::NAN),
        ("inf", f32::INFINITY),
        ("fraction", 2.5),
        ("negative", -1.0),
        ("too-large", 10.0),
    ] {
        let labels = d.join(format!("{tag}.npy"));
        write_npy(&labels, &[4], vec![1.0, bad, 3.0, 4.0]);
        for cmd in ["eval", "run"] {
            let first = if cmd == "eval" { s(&c.model) } else { s(&art) };
            let msg = fails(
                "input",
                1,
                &[cmd, first, "--input", s(&x), "--labels", s(&labels)],
            );
            assert!(
                msg.contains(&format!("{tag}.npy")) && msg.contains("label 1 is"),
                "{msg}"
            );
            if tag == "too-large" {
                assert!(msg.contains("0..10"), "{msg}");
            }
        }
    }
    // Whole numbers in range, stored as floats, are fine.
    let good = d.join("good.npy");
    write_npy(&good, &[4], vec![0.0, 9.0, 3.0, 4.0]);
    ok(&["eval", s(&c.model), "--input", s(&x), "--labels", s(&good)]);
}

// ---- E. Progress -----------------------------------------------------------------------------

#[test]
fn runs_report_progress_once_per_sample_on_every_target() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    for (name, target) in [
        ("digits_mlp", "loihi2"),
        ("digits_mlp", "akd1000"),
        ("dvs_cnn", "speck"),
    ] {
        let c = case(name);
        let art = if name == "digits_mlp" {
            std::fs::read(artifact(target)).unwrap()
        } else {
            let d = temp_dir("hostile-progress-speck");
            let p = d.join("m.speck");
            ok(&["compile", s(&c.model), "--target", target, "-o", s(&p)]);
            std::fs::read(&p).unwrap()
        };
        let art = nmc::LoadedArtifact::decode(&art).unwrap();
        let mut x = c.inputs.clone();
        let per: usize = x.shape[1..].iter().product();
        x.shape[0] = 3;
        x.data.truncate(3 * per);
        let count = AtomicUsize::new(0);
        let tick = || {
            count.fetch_add(1, Ordering::Relaxed);
        };
        let r = art
            .run_with_progress(&x, None, &Default::default(), &tick)
            .unwrap();
        assert_eq!(r.perf.samples, 3, "{target}");
        assert_eq!(count.load(Ordering::Relaxed), 3, "{target}");
        let shape = art.input_shape().unwrap();
        assert_eq!(
            nmc::npy::sample_count(&x.shape, &shape),
            Some(3),
            "{target}"
        );
    }
}
