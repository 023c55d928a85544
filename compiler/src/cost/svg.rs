//! The floorline plot as a standalone SVG (written by hand: a few dozen elements, deterministic
//! bytes, no plotting dependency). Log–log axes: x = synaptic operations per core per timestep,
//! y = modelled time per timestep. The sloped line is the memory bound `a_syn·S`; the horizontal
//! lines are the workload's compute floor (neuron updates) and traffic floor (messages, links).
//! Every core is a dot coloured by its bound; the bottleneck core is ringed and named.

use super::{Analysis, Bound, Constants};
use std::fmt::Write;

const W: f64 = 820.0;
const H: f64 = 540.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 72.0;
const BOTTOM: f64 = 70.0;

fn color(b: Bound) -> &'static str {
    match b {
        Bound::Memory => "#1f77b4",
        Bound::Compute => "#2ca02c",
        Bound::Traffic => "#d62728",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A power of ten as a short label: 1, 10, 100, 1k, 10k, …, 1M, …; 0.1, 0.01 below one.
fn tick_label(e: i32) -> String {
    match e {
        0..=2 => format!("{}", 10u64.pow(e as u32)),
        3..=5 => format!("{}k", 10u64.pow(e as u32 - 3)),
        6..=8 => format!("{}M", 10u64.pow(e as u32 - 6)),
        e if e > 8 => format!("1e{e}"),
        e => format!("{}", 10f64.powi(e)),
    }
}

struct Axis {
    lo: i32,
    hi: i32,
    px0: f64,
    px1: f64,
}

impl Axis {
    fn new(min: f64, max: f64, px0: f64, px1: f64) -> Axis {
        let lo = min.max(1e-3).log10().floor() as i32;
        let hi = (max.max(min * 10.0).log10().ceil() as i32).max(lo + 1);
        Axis { lo, hi, px0, px1 }
    }
    fn map(&self, v: f64) -> f64 {
        let l = v.max(10f64.powi(self.lo)).log10();
        self.px0 + (l - self.lo as f64) / (self.hi - self.lo) as f64 * (self.px1 - self.px0)
    }
}

/// Renders the analysis; `title` names the model.
pub fn floorline_svg(a: &Analysis, k: &Constants, title: &str) -> String {
    let xs: Vec<f64> = a.cores.iter().map(|c| c.load.s.max(1.0)).collect();
    let ts: Vec<f64> = a.cores.iter().map(|c| c.time().max(1e-2)).collect();
    let compute_floor = a.cores.iter().map(|c| c.t_ns.compute).fold(0.0, f64::max);
    let traffic_floor = a
        .cores
        .iter()
        .map(|c| c.t_ns.traffic)
        .fold(a.link_ns, f64::max);
    // Cores with no synaptic load sit at the left edge, S = 1.
    let x_min = 1.0;
    let x_max = xs.iter().copied().fold(1.0, f64::max) * 3.0;
    let y_candidates = ts
        .iter()
        .copied()
        .chain([compute_floor, traffic_floor])
        .filter(|v| *v > 0.0);
    let y_max = y_candidates
        .clone()
        .chain([k.a_syn * x_max])
        .fold(1.0, f64::max)
        * 2.0;
    let y_min = y_candidates.fold(f64::INFINITY, f64::min).max(1e-2) / 3.0;
    let xa = Axis::new(x_min, x_max, LEFT, W - RIGHT);
    let ya = Axis::new(y_min, y_max, H - BOTTOM, TOP);
    let mut s = String::new();
    writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
    )
    .unwrap();
    writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#).unwrap();
    writeln!(
        s,
        r#"<text x="{}" y="24" font-size="15" font-weight="bold">Floorline: {} on {}</text>"#,
        LEFT,
        esc(title),
        esc(&a.target)
    )
    .unwrap();
    writeln!(
        s,
        r##"<text x="{}" y="42" fill="#444">workload {}-bound, T_step = {:.0} ns, {:.2} nJ per step</text>"##,
        LEFT,
        a.workload_bound.as_str(),
        a.t_step_ns,
        a.energy_step_nj,
    )
    .unwrap();
    writeln!(
        s,
        r##"<text x="{}" y="58" fill="#777" font-size="11">activity: {}</text>"##,
        LEFT,
        esc(&a.activity)
    )
    .unwrap();
    // Grid and ticks.
    for e in xa.lo..=xa.hi {
        let x = xa.map(10f64.powi(e));
        writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#e6e6e6"/>"##,
            H - BOTTOM
        )
        .unwrap();
        writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            H - BOTTOM + 18.0,
            tick_label(e)
        )
        .unwrap();
    }
    for e in ya.lo..=ya.hi {
        let y = ya.map(10f64.powi(e));
        writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e6e6e6"/>"##,
            W - RIGHT
        )
        .unwrap();
        writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 8.0,
            y + 4.0,
            tick_label(e)
        )
        .unwrap();
    }
    writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}" fill="none" stroke="#333"/>"##,
        W - RIGHT - LEFT,
        H - BOTTOM - TOP
    )
    .unwrap();
    writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">synaptic operations per core per timestep (S)</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 22.0
    )
    .unwrap();
    writeln!(
        s,
        r#"<text transform="translate(24 {:.1}) rotate(-90)" text-anchor="middle">time per timestep (ns)</text>"#,
        (TOP + H - BOTTOM) / 2.0
    )
    .unwrap();
    // The memory slope t = a_syn·S, clipped to the plot.
    let x0 = 10f64.powi(xa.lo).max(10f64.powi(ya.lo) / k.a_syn);
    let x1 = 10f64.powi(xa.hi).min(10f64.powi(ya.hi) / k.a_syn);
    if x1 > x0 {
        writeln!(
            s,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"/>"##,
            xa.map(x0),
            ya.map(k.a_syn * x0),
            xa.map(x1),
            ya.map(k.a_syn * x1),
            color(Bound::Memory)
        )
        .unwrap();
    }
    for (floor, b, label) in [
        (compute_floor, Bound::Compute, "compute floor"),
        (traffic_floor, Bound::Traffic, "traffic floor"),
    ] {
        if floor > 0.0 {
            let y = ya.map(floor);
            writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{}" stroke-width="2" stroke-dasharray="6 4"/>"##,
                W - RIGHT,
                color(b)
            )
            .unwrap();
            writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" fill="{}">{label} {:.0} ns</text>"#,
                LEFT + 6.0,
                y - 5.0,
                color(b),
                floor
            )
            .unwrap();
        }
    }
    // Cores.
    for (i, c) in a.cores.iter().enumerate() {
        let (x, y) = (xa.map(xs[i]), ya.map(ts[i]));
        writeln!(
            s,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="5" fill="{}" fill-opacity="0.8"><title>core {} ({}): S={:.0} D={:.0} M={:.0}, {:.0} ns, {}</title></circle>"##,
            color(c.bound),
            c.load.id,
            esc(&c.load.layer),
            c.load.s,
            c.load.d,
            c.load.m,
            c.time(),
            c.bound.as_str()
        )
        .unwrap();
    }
    if let Some(i) = a.bottleneck_core {
        let c = &a.cores[i];
        let (x, y) = (xa.map(xs[i]), ya.map(ts[i]));
        writeln!(s, r##"<circle cx="{x:.1}" cy="{y:.1}" r="10" fill="none" stroke="black" stroke-width="2"/>"##).unwrap();
        writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-weight="bold">bottleneck: core {} ({})</text>"#,
            (x + 14.0).min(W - RIGHT - 200.0),
            (y - 12.0).max(TOP + 14.0),
            c.load.id,
            esc(&c.load.layer)
        )
        .unwrap();
    }
    // Legend.
    let lx = W - RIGHT + 20.0;
    writeln!(
        s,
        r#"<text x="{lx:.1}" y="{:.1}" font-weight="bold">cores by bound</text>"#,
        TOP + 100.0
    )
    .unwrap();
    for (j, b) in [Bound::Memory, Bound::Compute, Bound::Traffic]
        .into_iter()
        .enumerate()
    {
        let y = TOP + 120.0 + 20.0 * j as f64;
        let n = a.cores.iter().filter(|c| c.bound == b).count();
        writeln!(
            s,
            r#"<circle cx="{:.1}" cy="{:.1}" r="5" fill="{}"/>"#,
            lx + 5.0,
            y - 4.0,
            color(b)
        )
        .unwrap();
        writeln!(
            s,
            r#"<text x="{:.1}" y="{y:.1}">{}-bound ({n})</text>"#,
            lx + 16.0,
            b.as_str()
        )
        .unwrap();
    }
    writeln!(
        s,
        r#"<text x="{lx:.1}" y="{:.1}" fill="{}">memory slope a_syn·S</text>"#,
        TOP + 190.0,
        color(Bound::Memory)
    )
    .unwrap();
    writeln!(
        s,
        r##"<text x="{lx:.1}" y="{:.1}" fill="#444">a_syn = {:.3} ns/op</text>"##,
        TOP + 206.0,
        k.a_syn
    )
    .unwrap();
    s.push_str("</svg>\n");
    s
}
