//! What each command does.

use super::{Cli, Command, Format};
use crate::driver::{self, Options};
use crate::fsutil::write_atomic;
use crate::npy;
use crate::target::{ChipParams, LoadedArtifact, Target};
use crate::Emit;
use crate::Error;
use std::path::{Path, PathBuf};

/// Runs a parsed command line.
pub fn dispatch(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Compile {
            model,
            target,
            output,
            partition,
            seed,
            evals,
            calibrate,
            act_bits,
            weight_bits,
            chips,
            timesteps,
            opt_level,
            emit,
        } => {
            let mut opts = Options::new(target);
            opts.partition = partition.kind();
            opts.seed = seed;
            opts.evals = evals;
            opts.progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            opts.calibrate = calibrate;
            opts.act_bits = act_bits;
            opts.weight_bits = weight_bits;
            if chips == 0 {
                return Err(Error::Usage("--chips must be at least 1".into()));
            }
            opts.chips = chips;
            if timesteps == Some(0) {
                return Err(Error::Usage("--timesteps must be at least 1".into()));
            }
            opts.timesteps = timesteps;
            opts.opt_level = opt_level;
            compile(&model, output, &opts, &emit)
        }
        Command::Run {
            artifact,
            input,
            timesteps,
            output,
            report,
            labels,
            chip_params,
        } => {
            let params = load_params(chip_params.as_deref())?;
            run(
                &artifact,
                &input,
                timesteps,
                output.as_deref(),
                report.as_deref(),
                labels.as_deref(),
                &params,
            )
        }
        Command::Analyze {
            model,
            target,
            calibrate,
            partition,
            chips,
            svg,
            format,
            chip_params,
            opt_level,
        } => {
            let params = load_params(chip_params.as_deref())?;
            let mut opts = Options::new(target);
            opts.opt_level = opt_level;
            opts.partition = partition.kind();
            opts.calibrate = calibrate;
            if chips == 0 {
                return Err(Error::Usage("--chips must be at least 1".into()));
            }
            opts.chips = chips;
            analyze(&model, &opts, svg.as_deref(), format, &params)
        }
        Command::Eval {
            model,
            input,
            output,
            quantized,
            target,
            calibrate,
            act_bits,
            weight_bits,
            timesteps,
            labels,
        } => eval(
            &model,
            &input,
            output.as_deref(),
            quantized.then_some(target).flatten(),
            Bits {
                calibrate,
                act_bits,
                weight_bits,
            },
            timesteps,
            labels.as_deref(),
        ),
        Command::Inspect { file, format } => inspect(&file, format),
        Command::Targets { format, params } => {
            if params {
                print!("{}", target_params(format)?);
            } else {
                print!("{}", targets(format));
            }
            Ok(())
        }
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_atomic(path, bytes).map_err(|source| Error::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

/// One `--emit` request.
struct EmitRequest {
    kind: Emit,
    path: Option<PathBuf>,
}

fn parse_emit(items: &[String]) -> Result<Vec<EmitRequest>, Error> {
    items
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (name, path) = match s.split_once('=') {
                Some((k, p)) => (k, Some(PathBuf::from(p))),
                None => (s.as_str(), None),
            };
            let kind = Emit::parse(name).ok_or_else(|| {
                Error::Usage(format!(
                    "unknown --emit kind `{name}` (expected one of {})",
                    Emit::all()
                        .iter()
                        .map(|e| e.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            if kind == Emit::DepInfo && path.is_none() {
                return Err(Error::Usage(
                    "--emit dep-info needs a file: dep-info=FILE".into(),
                ));
            }
            if kind == Emit::Artifact && path.is_none() {
                return Err(Error::Usage(
                    "--emit artifact needs a file: artifact=FILE (or use -o)".into(),
                ));
            }
            Ok(EmitRequest { kind, path })
        })
        .collect()
}

fn compile(
    model: &Path,
    output: Option<PathBuf>,
    opts: &Options,
    emit: &[String],
) -> Result<(), Error> {
    let emits = parse_emit(emit)?;
    let compiled = driver::compile(model, opts)?;
    let out = output.unwrap_or_else(|| {
        let stem = model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        PathBuf::from(format!("{stem}.{}", opts.target.name()))
    });
    write_file(&out, &compiled.artifact)?;
    for e in &emits {
        match (compiled.dump(e.kind, &out), &e.path) {
            (Some(text), Some(p)) => write_file(p, text.as_bytes())?,
            (Some(text), None) => print!("{text}"),
            (None, Some(p)) => write_file(p, &compiled.artifact)?,
            (None, None) => unreachable!("parse_emit requires a file for the artifact"),
        }
    }
    eprintln!(
        "compiled {} for {}: {} layer(s) on {} core(s) -> {} ({} bytes); ranges from {}",
        model.display(),
        opts.target.name(),
        compiled.report.layers.len(),
        compiled.report.cores_used,
        out.display(),
        compiled.artifact.len(),
        compiled.report.ranges_from
    );
    for n in &compiled.report.notes {
        eprintln!("note: {n}");
    }
    if let Some(s) = &compiled.report.search {
        eprintln!("{}", search_text(s));
    }
    Ok(())
}

fn search_text(s: &driver::SearchSummary) -> String {
    let line = |name: &str, f: &driver::MappingFigures| {
        format!(
            "  {name:<9} {:>10.1} ns {:>10.3} nJ per inference, T_step {:>8.1} ns, {:>4} cores, {}-bound{}",
            f.latency_ns,
            f.energy_nj,
            f.t_step_ns,
            f.cores,
            f.bound,
            if f.emulated { "" } else { " (modelled)" }
        )
    };
    let gain = if s.chosen.latency_ns > 0.0 {
        s.greedy.latency_ns / s.chosen.latency_ns
    } else {
        f64::NAN
    };
    let mut text = format!(
        "mapping search: {} ({} evaluations; objective: {})\n{}\n{}\n  latency {:.2}× greedy's speed",
        s.partitioner,
        s.evals,
        s.objective,
        line("greedy", &s.greedy),
        line(&s.partitioner, &s.chosen),
        gain
    );
    if let Some(n) = &s.note {
        text.push_str(&format!("\n  note: {n}"));
    }
    text
}

fn read_labels(path: &Path) -> Result<Vec<i64>, Error> {
    let a = npy::read(path).map_err(|message| Error::Input { message })?;
    Ok(a.data.iter().map(|v| *v as i64).collect())
}

/// Top-1 accuracy of `[N, K]` outputs against labels.
fn accuracy(out: &npy::Array, labels: &[i64]) -> Result<f64, Error> {
    let n = out.shape.first().copied().unwrap_or(0);
    if n != labels.len() || n == 0 {
        return Err(Error::Input {
            message: format!("{} labels for {} samples", labels.len(), n),
        });
    }
    let k = out.data.len() / n;
    let hits = (0..n)
        .filter(|&i| argmax(&out.data[i * k..(i + 1) * k]) as i64 == labels[i])
        .count();
    Ok(hits as f64 / n as f64)
}

/// Index of the largest value (first on ties).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

fn run(
    artifact: &Path,
    input: &Path,
    timesteps: Option<u32>,
    output: Option<&Path>,
    report: Option<&Path>,
    labels: Option<&Path>,
    params: &ChipParams,
) -> Result<(), Error> {
    let bytes = std::fs::read(artifact).map_err(|source| Error::Io {
        action: "read",
        path: artifact.into(),
        source,
    })?;
    let art = LoadedArtifact::decode(&bytes).map_err(|e| Error::Artifact {
        path: artifact.into(),
        message: e.to_string(),
    })?;
    if timesteps == Some(0) {
        return Err(Error::Usage("--timesteps must be at least 1".into()));
    }
    // Unknown constant names are a usage error, before any input is read.
    Target::named(art.target())?.cost_params(params)?;
    let result = match npy::read_input(input).map_err(|message| Error::Input { message })? {
        npy::Input::Dense(samples) => art.run_with(&samples, timesteps, params),
        npy::Input::Events(events) => art.run_events_with(&events, timesteps, params),
    }
    .map_err(|e| Error::Input {
        message: format!("{}: {e}", input.display()),
    })?;
    if let Some(p) = output {
        npy::write(p, &result.outputs).map_err(|source| Error::Io {
            action: "write",
            path: p.into(),
            source,
        })?;
    }
    if let Some(p) = report {
        let json = serde_json::to_string_pretty(&result.perf).expect("report serialises");
        write_file(p, format!("{json}\n").as_bytes())?;
    }
    let perf = &result.perf;
    eprintln!(
        "ran {} sample(s) on {} for {} timestep(s) each: {:.1} ns and {:.3} nJ per inference, {} synaptic events",
        perf.samples, perf.target, perf.timesteps, perf.latency_ns, perf.energy_nj, perf.synaptic_events
    );
    if let Some(l) = labels {
        let acc = accuracy(&result.outputs, &read_labels(l)?)?;
        println!("top-1 accuracy: {:.4}", acc);
    }
    if output.is_none() && report.is_none() && labels.is_none() {
        let n = result.outputs.shape.first().copied().unwrap_or(0).max(1);
        let k = result.outputs.data.len() / n;
        for i in 0..n {
            println!(
                "sample {i}: argmax {}",
                argmax(&result.outputs.data[i * k..(i + 1) * k])
            );
        }
    }
    Ok(())
}

/// Quantisation choices of `eval --quantized`.
struct Bits {
    calibrate: Option<PathBuf>,
    act_bits: Option<u32>,
    weight_bits: Option<u32>,
}

fn eval(
    model: &Path,
    input: &Path,
    output: Option<&Path>,
    quantized: Option<Target>,
    bits: Bits,
    timesteps: Option<u32>,
    labels: Option<&Path>,
) -> Result<(), Error> {
    let imported = crate::onnx::import_file(model)?;
    let samples = driver::load_samples(input, &imported.graph)?;
    let graph = match quantized {
        None => imported.graph,
        Some(t) => {
            let mut opts = Options::new(t);
            opts.calibrate = bits.calibrate;
            opts.act_bits = bits.act_bits;
            opts.weight_bits = bits.weight_bits;
            opts.timesteps = timesteps;
            let calib = match &opts.calibrate {
                Some(p) => driver::load_samples(p, &imported.graph)?,
                None => Vec::new(),
            };
            driver::quantize_for(&imported.graph, &calib, &opts)?.1
        }
    };
    let outs = driver::interpret_with(&graph, &samples, timesteps)?;
    let first = outs.into_iter().next().ok_or_else(|| Error::Input {
        message: "model has no outputs".into(),
    })?;
    if let Some(p) = output {
        npy::write(p, &first).map_err(|source| Error::Io {
            action: "write",
            path: p.into(),
            source,
        })?;
    }
    if let Some(l) = labels {
        println!("top-1 accuracy: {:.4}", accuracy(&first, &read_labels(l)?)?);
    }
    if output.is_none() && labels.is_none() {
        let n = first.shape.first().copied().unwrap_or(0).max(1);
        let k = first.data.len() / n;
        for i in 0..n {
            println!(
                "sample {i}: argmax {}",
                argmax(&first.data[i * k..(i + 1) * k])
            );
        }
    }
    Ok(())
}

fn inspect(file: &Path, format: Format) -> Result<(), Error> {
    let bytes = std::fs::read(file).map_err(|source| Error::Io {
        action: "read",
        path: file.into(),
        source,
    })?;
    if LoadedArtifact::is_artifact(&bytes) {
        let art = LoadedArtifact::decode(&bytes).map_err(|e| Error::Artifact {
            path: file.into(),
            message: e.to_string(),
        })?;
        match format {
            Format::Text => print!("{}", art.listing()),
            Format::Json => println!(
                "{}",
                serde_json::to_string_pretty(&art.to_json()).expect("json")
            ),
        }
        return Ok(());
    }
    if let Ok(text) = std::str::from_utf8(&bytes) {
        if text.trim_start().starts_with("graph ") {
            // IR text, or partitioned IR (`--emit partitioned-ir`).
            let (g, mapping) = driver::parse_partitioned(text).map_err(|e| Error::Input {
                message: format!("{}: {e}", file.display()),
            })?;
            match mapping {
                Some(m) => print!("{}", driver::print_partitioned(&g, &m)),
                None => print!("{}", nmc_ir::print(&g)),
            }
            return Ok(());
        }
    }
    let imported = crate::onnx::import_bytes(&bytes, file.parent())?;
    match format {
        Format::Text => print!("{}", nmc_ir::print(&imported.graph)),
        Format::Json => {
            return Err(Error::Usage(
                "--format json is available for artifacts; ONNX models print as IR text".into(),
            ))
        }
    }
    Ok(())
}

/// The `targets` listing.
pub fn targets(format: Format) -> String {
    match format {
        Format::Text => Target::all()
            .iter()
            .map(|t| t.description())
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Json => {
            let v: Vec<serde_json::Value> =
                Target::all().iter().map(|t| t.describe_json()).collect();
            format!("{}\n", serde_json::to_string_pretty(&v).expect("json"))
        }
    }
}

fn load_params(path: Option<&Path>) -> Result<ChipParams, Error> {
    path.map(crate::target::load_chip_params)
        .transpose()
        .map(Option::unwrap_or_default)
}

fn analyze(
    model: &Path,
    opts: &Options,
    svg: Option<&Path>,
    format: Format,
    params: &ChipParams,
) -> Result<(), Error> {
    let (_, analysis, constants) = driver::analyze(model, opts, params)?;
    if let Some(p) = svg {
        let title = model
            .parent()
            .and_then(|d| d.file_name())
            .map(|s| s.to_string_lossy().into_owned());
        let title = title.unwrap_or_else(|| model.display().to_string());
        write_file(
            p,
            crate::cost::floorline_svg(&analysis, &constants, &title).as_bytes(),
        )?;
    }
    match format {
        Format::Text => print!("{}", crate::cost::report_text(&analysis)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&analysis).expect("json")),
    }
    Ok(())
}

/// The `targets --params` listing.
pub fn target_params(format: Format) -> Result<String, Error> {
    let mut text = String::new();
    let mut json = Vec::new();
    for t in Target::all() {
        let ps = t.cost_params(&ChipParams::default())?;
        text.push_str(&format!(
            "{} cost model (override with --chip-params FILE.toml):\n",
            t.name()
        ));
        for p in &ps {
            text.push_str(&format!(
                "  {:<18} {:>12} {:<10} {}\n",
                p.name, p.value, p.unit, p.source
            ));
        }
        json.push(serde_json::json!({ "target": t.name(), "params": ps }));
    }
    Ok(match format {
        Format::Text => text,
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&json).expect("json")),
    })
}
