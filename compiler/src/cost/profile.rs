//! Activity profiles: how often each element of each chip-side value differs from its response to
//! a blank (all-zero) input, per sample. A graded sigma-delta network starts every inference from
//! that settled state and sends an event only where a value changes, so this is the event
//! density the cost model needs. (For a ReLU layer without bias it is the non-zero density.)

use nmc_ir::{Graph, Interpreter, NodeId, Op, Value};

/// Event density per element of every graph input (after quantisation) and every layer output.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityProfile {
    /// Where the numbers came from, for the report.
    pub from: String,
    /// Per graph input, per element.
    pub inputs: Vec<Vec<f64>>,
    /// Per layer node in topological order: the node, its name, per output element.
    pub layers: Vec<(NodeId, Option<String>, Vec<f64>)>,
}

/// The density assumed without calibration inputs.
pub const DEFAULT_DENSITY: f64 = 0.5;

fn quantize_of(graph: &Graph, input: NodeId) -> NodeId {
    graph
        .ids()
        .find(|&n| matches!(graph.node(n).op, Op::Quantize(_)) && graph.node(n).inputs == [input])
        .unwrap_or(input)
}

fn layer_nodes(graph: &Graph) -> Vec<NodeId> {
    graph
        .topo_order()
        .unwrap_or_default()
        .into_iter()
        .filter(|&n| matches!(graph.node(n).op, Op::Layer(_)))
        .collect()
}

impl ActivityProfile {
    /// Every element active with probability `density` (the stated default without data).
    pub fn uniform(graph: &Graph, density: f64) -> Self {
        ActivityProfile {
            from: format!(
                "no calibration inputs: every value assumed non-zero with probability {density}"
            ),
            inputs: graph
                .inputs
                .iter()
                .map(|&i| vec![density; graph.ty(i).numel()])
                .collect(),
            layers: layer_nodes(graph)
                .into_iter()
                .map(|n| {
                    (
                        n,
                        graph.node(n).name.clone(),
                        vec![density; graph.ty(n).numel()],
                    )
                })
                .collect(),
        }
    }

    /// Measures densities with the reference interpreter on a quantised graph.
    pub fn measure(graph: &Graph, samples: &[Vec<Vec<f32>>]) -> Result<Self, String> {
        if samples.is_empty() {
            return Ok(Self::uniform(graph, DEFAULT_DENSITY));
        }
        let interp = Interpreter::new(graph).map_err(|e| e.to_string())?;
        let qs: Vec<NodeId> = graph
            .inputs
            .iter()
            .map(|&i| quantize_of(graph, i))
            .collect();
        let layers = layer_nodes(graph);
        let mut inputs: Vec<Vec<f64>> =
            qs.iter().map(|&q| vec![0.0; graph.ty(q).numel()]).collect();
        let mut outs: Vec<Vec<f64>> = layers
            .iter()
            .map(|&l| vec![0.0; graph.ty(l).numel()])
            .collect();
        // The blank-input response every inference starts from.
        let zeros: Vec<Vec<f32>> = graph
            .inputs
            .iter()
            .map(|&i| vec![0.0; graph.ty(i).numel()])
            .collect();
        let zero_refs: Vec<&[f32]> = zeros.iter().map(|v| v.as_slice()).collect();
        let blank = interp.run_all(&zero_refs).map_err(|e| e.to_string())?;
        let count = |acc: &mut Vec<f64>, v: &Option<Value>, base: &Option<Value>| {
            if let (Some(Value::I64(x)), Some(Value::I64(b))) = (v, base) {
                acc.iter_mut()
                    .zip(x.iter().zip(b))
                    .for_each(|(a, (x, b))| *a += f64::from(u8::from(x != b)));
            }
        };
        for s in samples {
            let refs: Vec<&[f32]> = s.iter().map(|v| v.as_slice()).collect();
            let vals = interp.run_all(&refs).map_err(|e| e.to_string())?;
            for (acc, q) in inputs.iter_mut().zip(&qs) {
                count(acc, &vals[q.index()], &blank[q.index()]);
            }
            for (acc, l) in outs.iter_mut().zip(&layers) {
                count(acc, &vals[l.index()], &blank[l.index()]);
            }
        }
        let n = samples.len() as f64;
        let norm = |v: Vec<f64>| v.into_iter().map(|c| c / n).collect::<Vec<f64>>();
        Ok(ActivityProfile {
            from: format!("measured on {} calibration sample(s)", samples.len()),
            inputs: inputs.into_iter().map(norm).collect(),
            layers: layers
                .iter()
                .zip(outs)
                .map(|(&l, v)| (l, graph.node(l).name.clone(), norm(v)))
                .collect(),
        })
    }

    /// The same profile with every density multiplied by `factor` (clamped to [0, 1]): "what if
    /// the network were this much sparser".
    pub fn scaled(&self, factor: f64) -> Self {
        let f = |v: &Vec<f64>| v.iter().map(|p| (p * factor).clamp(0.0, 1.0)).collect();
        ActivityProfile {
            from: format!("{} × {factor}", self.from),
            inputs: self.inputs.iter().map(f).collect(),
            layers: self
                .layers
                .iter()
                .map(|(n, name, v)| (*n, name.clone(), f(v)))
                .collect(),
        }
    }

    /// Mean density over all layer outputs.
    pub fn mean_layer_density(&self) -> f64 {
        let (sum, n) = self
            .layers
            .iter()
            .flat_map(|(_, _, v)| v)
            .fold((0.0, 0usize), |(s, n), p| (s + p, n + 1));
        if n == 0 {
            0.0
        } else {
            sum / n as f64
        }
    }
}
