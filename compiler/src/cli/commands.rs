//! What each command does.

use super::{Cli, Command, Format};
use crate::driver::{self, Options};
use crate::fsutil::Outputs;
use crate::npy;
use crate::target::{ChipParams, LoadedArtifact, Target};
use crate::Emit;
use crate::Error;
use std::path::{Path, PathBuf};

/// Runs a parsed command line.
pub fn dispatch(cli: Cli) -> Result<(), Error> {
    // A malformed limit variable is a usage error before anything runs.
    crate::fsutil::max_file_bytes().map_err(|e| Error::Usage(e.to_string()))?;
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
            dvs_crop,
            dvs_mirror,
            dvs_polarity,
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
            chips.apply(&mut opts);
            opts.timesteps = timesteps;
            opts.dvs = super::dvs_options(dvs_crop, &dvs_mirror, dvs_polarity);
            opts.opt_level = opt_level;
            // Flag limits and flags the target ignores, before any file is read.
            opts.check()?;
            if opts.partition == crate::PartitionKind::Evolve && opts.calibrate.is_none() {
                return Err(Error::Usage(driver::EVOLVE_NEEDS_CALIBRATION.into()));
            }
            compile(&model, output, &opts, &emit)
        }
        Command::Run {
            artifact,
            input,
            timesteps,
            dt,
            t_start,
            output,
            report,
            labels,
            chip_params,
            stream,
            record,
            probe,
        } => run(
            &artifact,
            &input,
            nmc_backend::EventBinning {
                timesteps,
                dt,
                t_start,
            },
            RunOutputs {
                output: output.as_deref(),
                report: report.as_deref(),
                record: record.as_deref(),
                probes: &probe,
            },
            labels.as_deref(),
            chip_params.as_deref(),
            stream,
        ),
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
            let mut opts = Options::new(target);
            opts.opt_level = opt_level;
            opts.partition = partition.kind();
            opts.calibrate = calibrate;
            chips.apply(&mut opts);
            opts.check()?;
            analyze(
                &model,
                &opts,
                svg.as_deref(),
                format,
                chip_params.as_deref(),
            )
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

/// A progress bar on stderr when it is a terminal (never in pipes, logs or tests).
fn progress_bar(len: usize, what: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} samples, {elapsed} (eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    // A tick every half second keeps the elapsed time moving through long samples.
    bar.enable_steady_tick(std::time::Duration::from_millis(500));
    Some(bar)
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
            if matches!(kind, Emit::Artifact | Emit::Netx | Emit::Nir) && path.is_none() {
                return Err(Error::Usage(format!(
                    "--emit {0} needs a file: {0}=FILE{1}",
                    kind.name(),
                    if kind == Emit::Artifact {
                        " (or use -o)"
                    } else {
                        ""
                    }
                )));
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
    let out = output.unwrap_or_else(|| {
        let stem = model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        PathBuf::from(format!("{stem}.{}", opts.target.name()))
    });
    let mut outputs = Outputs::new();
    outputs.reads(model);
    if let Some(c) = &opts.calibrate {
        outputs.reads(c);
    }
    outputs.plan(&out)?;
    for p in emits.iter().filter_map(|e| e.path.as_deref()) {
        outputs.plan(p)?;
    }
    let compiled = driver::compile(model, opts)?;
    // External data files are inputs too.
    for f in &compiled.files {
        outputs.reads(f);
    }
    outputs.stage(&out, compiled.artifact.clone());
    let mut stdout = String::new();
    for e in &emits {
        match (compiled.dump(e.kind, &out), &e.path) {
            (Some(text), Some(p)) => outputs.stage(p, text.into_bytes()),
            (Some(text), None) => stdout.push_str(&text),
            (None, Some(p)) => outputs.stage(p, compiled.binary(e.kind)?),
            (None, None) => {
                return Err(Error::Usage(
                    "--emit artifact needs a file: artifact=FILE (or use -o)".into(),
                ))
            }
        }
    }
    outputs.commit()?;
    print!("{stdout}");
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

/// Reads `--labels` for `n` samples, before the run: `n` whole, non-negative numbers, else an
/// error naming the file. [`check_classes`] checks the upper bound once the outputs are known.
fn read_labels(path: &Path, n: usize) -> Result<Vec<usize>, Error> {
    let a = npy::read(path).map_err(|message| Error::Input { message })?;
    if a.data.len() != n || n == 0 {
        return Err(Error::Input {
            message: format!(
                "{}: {} labels (shape {:?}) for {n} samples",
                path.display(),
                a.data.len(),
                a.shape
            ),
        });
    }
    a.data
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if v.is_finite() && v.fract() == 0.0 && v >= 0.0 {
                Ok(v as usize)
            } else {
                Err(Error::Input {
                    message: format!(
                        "{}: label {i} is {v}; labels are whole numbers from 0",
                        path.display()
                    ),
                })
            }
        })
        .collect()
}

/// Checks labels against outputs `out` (`[N, K]`): each in `0..K`.
fn check_classes(path: &Path, labels: &[usize], out: &npy::Array) -> Result<(), Error> {
    let classes = out.data.len() / labels.len().max(1);
    match labels.iter().position(|&l| l >= classes) {
        Some(i) => Err(Error::Input {
            message: format!(
                "{}: label {i} is {}; labels are whole numbers in 0..{classes} (the model has {classes} outputs per sample)",
                path.display(),
                labels[i]
            ),
        }),
        None => Ok(()),
    }
}

/// Top-1 accuracy of `[N, K]` outputs against checked labels ([`read_labels`],
/// [`check_classes`]).
fn accuracy(out: &npy::Array, labels: &[usize]) -> f64 {
    let n = labels.len().max(1);
    let k = out.data.len() / n;
    let hits = labels
        .iter()
        .enumerate()
        .filter(|&(i, &l)| argmax(&out.data[i * k..(i + 1) * k]) == l)
        .count();
    hits as f64 / n as f64
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

/// An array's `.npy` bytes; an array nmc cannot write is an input error (the model's output).
fn npy_bytes(a: &npy::Array) -> Result<Vec<u8>, Error> {
    npy::try_encode(a).map_err(|message| Error::Input { message })
}

/// Prints the argmax of each sample.
fn print_argmax(out: &npy::Array) {
    let n = out.shape.first().copied().unwrap_or(0).max(1);
    let k = out.data.len() / n;
    for i in 0..n {
        println!(
            "sample {i}: argmax {}",
            argmax(&out.data[i * k..(i + 1) * k])
        );
    }
}

/// The files `nmc run` writes.
struct RunOutputs<'a> {
    output: Option<&'a Path>,
    report: Option<&'a Path>,
    record: Option<&'a Path>,
    /// `--probe LAYER=PREFIX`, as given.
    probes: &'a [String],
}

/// `--probe LAYER=PREFIX`: the layer and the two files it writes.
fn probe_files(spec: &str) -> Result<(String, PathBuf, PathBuf), Error> {
    let (layer, prefix) = spec
        .rsplit_once('=')
        .filter(|(l, p)| !l.is_empty() && !p.is_empty())
        .ok_or_else(|| {
            Error::Usage(format!(
                "--probe {spec}: expected LAYER=PREFIX (writes PREFIX.spikes.npy and PREFIX.v.npy)"
            ))
        })?;
    Ok((
        layer.to_string(),
        PathBuf::from(format!("{prefix}.spikes.npy")),
        PathBuf::from(format!("{prefix}.v.npy")),
    ))
}

fn run(
    artifact: &Path,
    input: &Path,
    binning: nmc_backend::EventBinning,
    files: RunOutputs<'_>,
    labels: Option<&Path>,
    chip_params: Option<&Path>,
    stream: bool,
) -> Result<(), Error> {
    let RunOutputs {
        output,
        report,
        record,
        probes,
    } = files;
    let probes: Vec<(String, PathBuf, PathBuf)> = probes
        .iter()
        .map(|p| probe_files(p))
        .collect::<Result<_, _>>()?;
    let timesteps = binning.timesteps;
    if let Some(t) = timesteps {
        driver::check_timesteps(t)?;
    }
    let mut outputs = Outputs::new();
    for p in [Some(artifact), Some(input), labels, chip_params]
        .into_iter()
        .flatten()
    {
        outputs.reads(p);
    }
    for p in [output, report, record].into_iter().flatten() {
        outputs.plan(p)?;
    }
    for (_, s, v) in &probes {
        outputs.plan(s)?;
        outputs.plan(v)?;
    }
    let params = load_params(chip_params)?;
    let bytes = crate::fsutil::read(artifact)?;
    let art = LoadedArtifact::decode(&bytes).map_err(|e| Error::Artifact {
        path: artifact.into(),
        message: e.to_string(),
    })?;
    // Unknown constant names are a usage error, before any input is read.
    Target::named(art.target())?.cost_params(&params)?;
    // Input errors from the backend concern the input file; usage and artifact errors keep
    // their kind.
    let blame = |e: nmc_backend::BackendError| match e {
        nmc_backend::BackendError::Input { .. } => Error::Input {
            message: format!("{}: {e}", input.display()),
        },
        other => Error::Backend(other),
    };
    let mut data = npy::read_input(input).map_err(|message| Error::Input { message })?;
    // A chip that takes integer codes from the host (the AKD1000's 8-bit images) reads an
    // integer array as those codes, as its vendor's runtime does; floats are values.
    if let (npy::Input::Dense(samples), Some(q)) = (&data, art.input_codes()) {
        if npy::is_integer(input) {
            let values = npy::codes_as_values(samples, &q).map_err(|m| Error::Input {
                message: format!("{}: {m}", input.display()),
            })?;
            eprintln!(
                "note: {}: integer array taken as {}'s input codes {}..={} (a float array would be quantised with scale {})",
                input.display(),
                art.target(),
                q.min,
                q.max,
                q.scale
            );
            data = npy::Input::Dense(values);
        }
    }
    if binning.dt.is_some() && matches!(data, npy::Input::Dense(_)) {
        return Err(Error::Usage(
            "--dt and --t-start bin an event stream (a .npy with fields x, y, t, p); dense samples are rate-encoded over --timesteps".into(),
        ));
    }
    let n = match &data {
        npy::Input::Dense(samples) => match art.input_shape() {
            Some(shape)
                if art.spike_frames()
                    || (art.accepts_frames() && samples.shape.len() == shape.len() + 2) =>
            {
                npy::check_spike_frames(input, samples, &shape)
                    .map_err(|message| Error::Input { message })?
            }
            Some(shape) => npy::check_samples(input, samples, &shape)
                .map_err(|message| Error::Input { message })?,
            None => samples.shape.first().copied().unwrap_or(1),
        },
        npy::Input::Events(_) => 1,
    };
    // Labels are checked before the run, which can be long.
    let label_values = labels.map(|l| read_labels(l, n)).transpose()?;
    let result = match data {
        npy::Input::Dense(samples) => {
            let bar = progress_bar(n, &format!("running on {}", art.target()));
            let tick = || {
                if let Some(b) = &bar {
                    b.inc(1);
                }
            };
            let r = if !probes.is_empty() {
                if stream {
                    return Err(Error::Usage(
                        "--probe runs each sample from rest; it does not take --stream".into(),
                    ));
                }
                let layers: Vec<String> = probes.iter().map(|p| p.0.clone()).collect();
                art.run_probed(&samples, timesteps, &params, &layers, &tick)
            } else if record.is_some() {
                art.run_recorded(&samples, timesteps, &params, stream, &tick)
            } else if stream {
                art.run_stream(&samples, timesteps, &params, &tick)
            } else {
                art.run_with_progress(&samples, timesteps, &params, &tick)
            };
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            r
        }
        npy::Input::Events(_) if stream => Err(nmc_backend::BackendError::Usage(
            "--stream takes dense frames; an event file is already one stream".into(),
        )),
        npy::Input::Events(_) if !probes.is_empty() => Err(nmc_backend::BackendError::Usage(
            "--probe takes spike frames (.npy [samples, timesteps, …]), not an event file".into(),
        )),
        npy::Input::Events(_) if record.is_some() => Err(nmc_backend::BackendError::Usage(
            "--record takes dense samples (.npy of frames); for an event file, bin it first".into(),
        )),
        npy::Input::Events(events) => {
            let r = art.run_events_binned(&events, &binning, &params);
            if let Ok(r) = &r {
                // Events outside the fixed bins are not silently lost.
                let (before, after) = binning.dropped(&events, r.perf.timesteps);
                if before > 0 {
                    eprintln!(
                        "note: {before} event(s) before --t-start were dropped"
                    );
                }
                if after > 0 {
                    eprintln!(
                        "note: {after} event(s) after the last of the {} timesteps were dropped (give more --timesteps, or none to bin up to the last event)",
                        r.perf.timesteps
                    );
                }
            }
            r
        }
    }
    .map_err(blame)?;
    let accuracy = match (labels, &label_values) {
        (Some(l), Some(v)) => {
            check_classes(l, v, &result.outputs)?;
            Some(accuracy(&result.outputs, v))
        }
        _ => None,
    };
    if let Some(p) = output {
        outputs.stage(p, npy_bytes(&result.outputs)?);
    }
    if let Some(p) = record {
        let steps = result.steps.as_ref().ok_or_else(|| {
            Error::Backend(nmc_backend::BackendError::Usage(format!(
                "--record: {} returned no per-step outputs",
                art.target()
            )))
        })?;
        outputs.stage(p, npy_bytes(steps)?);
    }
    for ((_, s, v), p) in probes.iter().zip(&result.probes) {
        outputs.stage(s, npy_bytes(&p.spikes)?);
        outputs.stage(v, npy_bytes(&p.v)?);
    }
    if let Some(p) = report {
        let json = serde_json::to_string_pretty(&result.perf).map_err(|e| Error::Input {
            message: format!("the performance report does not serialise: {e}"),
        })?;
        outputs.stage(p, format!("{json}\n").into_bytes());
    }
    outputs.commit()?;
    let perf = &result.perf;
    eprintln!(
        "ran {} sample(s) on {} for {} timestep(s) each: {:.1} ns and {:.3} nJ per inference, {} synaptic events",
        perf.samples, perf.target, perf.timesteps, perf.latency_ns, perf.energy_nj, perf.synaptic_events
    );
    if let Some(acc) = accuracy {
        println!("top-1 accuracy: {:.4}", acc);
    }
    if output.is_none()
        && report.is_none()
        && record.is_none()
        && labels.is_none()
        && probes.is_empty()
    {
        print_argmax(&result.outputs);
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
    if let Some(t) = timesteps {
        driver::check_timesteps(t)?;
        if quantized.is_none_or(|q| q.mode() != nmc_backend::ExecMode::Rate && !q.runs_snn()) {
            return Err(Error::Usage(format!(
                "--timesteps {t} applies to a rate-mode evaluation (--quantized --target {}) or a spiking network's; other evaluations have no timesteps",
                Target::all()
                    .iter()
                    .filter(|t| t.mode() == nmc_backend::ExecMode::Rate)
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join("|")
            )));
        }
    }
    let mut outputs = Outputs::new();
    for p in [Some(model), Some(input), bits.calibrate.as_deref(), labels]
        .into_iter()
        .flatten()
    {
        outputs.reads(p);
    }
    if let Some(p) = output {
        outputs.plan(p)?;
    }
    let imported = crate::import::import_file(model)?;
    for f in &imported.files {
        outputs.reads(f);
    }
    let samples = driver::load_samples(input, &imported.graph)?;
    let label_values = labels.map(|l| read_labels(l, samples.len())).transpose()?;
    let graph = match quantized {
        None => imported.graph,
        Some(t) => {
            let mut opts = Options::new(t);
            opts.calibrate = bits.calibrate;
            opts.act_bits = bits.act_bits;
            opts.weight_bits = bits.weight_bits;
            if t.mode() == nmc_backend::ExecMode::Rate {
                opts.timesteps = timesteps;
            }
            let calib = match &opts.calibrate {
                Some(p) => driver::load_samples(p, &imported.graph)?,
                None => Vec::new(),
            };
            let g = driver::quantize_for(&imported.graph, &calib, &opts)?.1;
            if let Some(k) = timesteps {
                if t.mode() != nmc_backend::ExecMode::Rate && !nmc_backend::floorline::is_snn(&g) {
                    return Err(Error::Usage(format!(
                        "--timesteps {k}: this model is not a spiking network; its {} evaluation has no timesteps",
                        t.name()
                    )));
                }
            }
            g
        }
    };
    let bar = progress_bar(samples.len(), "evaluating");
    let tick = || {
        if let Some(b) = &bar {
            b.inc(1);
        }
    };
    let outs = driver::interpret_progress(&graph, &samples, timesteps, &tick);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let first = outs?.into_iter().next().ok_or_else(|| Error::Input {
        message: "model has no outputs".into(),
    })?;
    let accuracy = match (labels, &label_values) {
        (Some(l), Some(v)) => {
            check_classes(l, v, &first)?;
            Some(accuracy(&first, v))
        }
        _ => None,
    };
    if let Some(p) = output {
        outputs.stage(p, npy_bytes(&first)?);
    }
    outputs.commit()?;
    if let Some(acc) = accuracy {
        println!("top-1 accuracy: {:.4}", acc);
    }
    if output.is_none() && labels.is_none() {
        print_argmax(&first);
    }
    Ok(())
}

fn inspect(file: &Path, format: Format) -> Result<(), Error> {
    let bytes = crate::fsutil::read(file)?;
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
    let imported = crate::import::import_bytes(&bytes, file.parent())?;
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
    chip_params: Option<&Path>,
) -> Result<(), Error> {
    let mut outputs = Outputs::new();
    for p in [Some(model), opts.calibrate.as_deref(), chip_params]
        .into_iter()
        .flatten()
    {
        outputs.reads(p);
    }
    if let Some(p) = svg {
        outputs.plan(p)?;
    }
    let params = load_params(chip_params)?;
    let (compiled, analysis, constants) = driver::analyze(model, opts, &params)?;
    for f in &compiled.files {
        outputs.reads(f);
    }
    if let Some(p) = svg {
        let title = model
            .parent()
            .and_then(|d| d.file_name())
            .map(|s| s.to_string_lossy().into_owned());
        let title = title.unwrap_or_else(|| model.display().to_string());
        let svg = crate::cost::floorline_svg(&analysis, &constants, &title);
        outputs.stage(p, svg.into_bytes());
    }
    outputs.commit()?;
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
