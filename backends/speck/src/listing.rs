//! A readable, deterministic listing of an artifact (the nine-core configuration), for
//! `nmc inspect`, snapshots and review. Weights are summarised by shape, non-zero count and an
//! FNV-1a hash of the stored `[f][c][kx][ky]` values (little-endian `i32`).

use crate::artifact::{Artifact, CnnLayerConfig, Destination};
use crate::spec::speck;
use std::fmt::Write;

/// The listing. Meant for validated artifacts; on others it never panics but may print nonsense.
pub fn listing(a: &Artifact) -> String {
    let mut s = String::new();
    let _ = write_listing(&mut s, a);
    s
}

fn hash(v: &[i32]) -> u64 {
    nmc_ir::fnv1a(v.iter().flat_map(|x| x.to_le_bytes()))
}

fn dests(d: &[Destination]) -> String {
    if d.is_empty() {
        return "none".into();
    }
    d.iter()
        .map(|d| format!("core {} (pooling {p}x{p})", d.layer, p = d.pooling))
        .collect::<Vec<_>>()
        .join(", ")
}

fn write_listing(s: &mut String, a: &Artifact) -> std::fmt::Result {
    match &a.header {
        Some(h) => writeln!(
            s,
            "artifact {} format {} source {:016x} timesteps {}",
            h.target,
            h.format_version,
            h.source_hash,
            a.timesteps().unwrap_or_default()
        )?,
        None => writeln!(s, "artifact (no header)")?,
    }
    if let Some(i) = &a.input {
        let m = i.map.map(|m| m.to_chw()).unwrap_or_default();
        writeln!(
            s,
            "input \"{}\" {:?} as events [c, h, w] {:?}: rate-encoded, {} levels of {:?} (level {} = 1 event/step)",
            i.name, i.shape, m, i.levels, i.scale, i.levels
        )?;
    }
    if let Some(d) = &a.dvs_layer {
        let p = d.pooling.unwrap_or_default();
        let r = d.input_shape.unwrap_or_default();
        if d.pass_sensor_events {
            let on = |b: bool| if b { "on" } else { "off" };
            let o = d.origin.unwrap_or_default();
            let cut = match d.cut {
                Some(c) => format!("({}, {})..=({}, {})", o.x, o.y, c.x, c.y),
                None => "all".into(),
            };
            writeln!(
                s,
                "dvs layer: sensor {}x{} events pass; polarities {}, merge {}; sum pooling {}x{} (x, y); region of interest {cut} (x, y pooled); mirror x {} y {} diagonal {} -> {}",
                r.x,
                r.y,
                ["both", "on", "off"].get(d.polarities as usize).unwrap_or(&"?"),
                on(d.merge),
                p.x,
                p.y,
                on(d.mirror_x),
                on(d.mirror_y),
                on(d.mirror_diagonal),
                dests(&d.destinations)
            )?;
        } else {
            writeln!(
                s,
                "dvs layer: bypassed (the input is not a DVS map); input events go straight to {}",
                dests(&d.destinations)
            )?;
        }
    }
    let spec = speck();
    // Who sends each core events: two senders are a merge (sinabs' `Merge`, docs/chips.md §2.9).
    let mut senders: Vec<Vec<String>> = vec![Vec::new(); a.cnn_layers.len()];
    let from_dvs = a.dvs_layer.iter().flat_map(|d| &d.destinations);
    for d in from_dvs {
        if let Some(v) = senders.get_mut(d.layer as usize) {
            v.push("the dvs layer".into());
        }
    }
    for (i, l) in a.cnn_layers.iter().enumerate() {
        for d in &l.destinations {
            if let Some(v) = senders.get_mut(d.layer as usize) {
                v.push(format!("core {i}"));
            }
        }
    }
    for (i, l) in a.cnn_layers.iter().enumerate() {
        write_layer(s, i, l, spec.cores.get(i))?;
        if l.used && senders[i].len() > 1 {
            writeln!(
                s,
                "  merge: the events of {} reach this kernel alike (sinabs Merge)",
                senders[i].join(" and ")
            )?;
        }
    }
    if let Some(o) = &a.output {
        writeln!(
            s,
            "output \"{}\" {:?} <- core {} events, pooling {p}x{p}, counted over the run; value = count · {:?} / T",
            o.name,
            o.shape,
            o.layer,
            o.scale,
            p = o.pooling
        )?;
    }
    Ok(())
}

fn write_layer(
    s: &mut String,
    i: usize,
    l: &CnnLayerConfig,
    core: Option<&crate::spec::CoreSpec>,
) -> std::fmt::Result {
    if !l.used {
        return writeln!(s, "core {i}: unused");
    }
    writeln!(
        s,
        "core {i}: \"{}\"{}",
        l.name,
        if l.from_dense {
            " (dense as convolution)"
        } else {
            ""
        }
    )?;
    let d = l.dimensions.unwrap_or_default();
    let inp = d.input_shape.map(|m| m.to_chw()).unwrap_or_default();
    let out = d.output_shape.map(|m| m.to_chw()).unwrap_or_default();
    let st = d.stride.unwrap_or_default();
    let pd = d.padding.unwrap_or_default();
    let k = d.kernel_size;
    writeln!(
        s,
        "  conv input {inp:?} kernel {k}x{k} stride ({}, {}) padding ({}, {}) -> neurons {out:?}",
        st.x, st.y, pd.x, pd.y
    )?;
    let nnz = l.weights.iter().filter(|w| **w != 0).count();
    writeln!(
        s,
        "  weights [{}, {}, {k}, {k}] (f, c, kx, ky) nnz {nnz} hash {:016x}",
        out[0],
        inp[0],
        hash(&l.weights)
    )?;
    if l.biases.is_empty() {
        writeln!(s, "  bias none")?;
    } else {
        writeln!(
            s,
            "  bias [{}] nnz {} hash {:016x} leak {}",
            l.biases.len(),
            l.biases.iter().filter(|b| **b != 0).count(),
            hash(&l.biases),
            if l.leak_enable { "on" } else { "off" }
        )?;
    }
    writeln!(
        s,
        "  neurons iaf threshold_high {} threshold_low {} reset {} max {} spikes/step",
        l.threshold_high,
        l.threshold_low,
        if l.return_to_zero {
            "to zero"
        } else {
            "subtract"
        },
        l.max_spikes
    )?;
    let m = l.memory.unwrap_or_default();
    match core {
        Some(c) => writeln!(
            s,
            "  memory kernel {}/{} neuron {}/{} bias {}/{} entries",
            m.kernel, c.kernel_memory, m.neuron, c.neuron_memory, m.bias, c.bias_memory
        )?,
        None => writeln!(
            s,
            "  memory kernel {} neuron {} bias {} entries",
            m.kernel, m.neuron, m.bias
        )?,
    }
    writeln!(
        s,
        "  -> {}{}",
        dests(&l.destinations),
        if l.monitor_enable {
            ", monitored (output)"
        } else {
            ""
        }
    )
}
