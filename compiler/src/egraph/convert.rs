//! Graph ⇄ RecExpr: the only place that sees both `NodeId`s and e-graph `Id`s.

use super::lang::{Nmc, Table};
use egg::{Id, Language, RecExpr};
use nmc_ir::{Graph, NodeId, Op, Output};

/// The graph as one expression rooted at `(outputs ...)`. Fails on a cycle.
pub fn to_expr(graph: &Graph, table: &mut Table) -> Result<RecExpr<Nmc>, String> {
    let order = graph
        .topo_order()
        .map_err(|c| format!("the graph has a cycle at {}", c.0))?;
    let mut expr = RecExpr::default();
    let mut ids: Vec<Option<Id>> = vec![None; graph.nodes.len()];
    for id in order {
        let n = graph.node(id);
        let a = expr.add(Nmc::Attr(table.op(&n.op, &n.name)));
        let t = expr.add(Nmc::Attr(table.ty(&n.ty)));
        let mut ch = vec![a, t];
        for i in &n.inputs {
            ch.push(ids[i.index()].ok_or("input out of range")?);
        }
        let node = match &n.op {
            Op::Input { .. } => Nmc::Input([a, t]),
            Op::Layer(_) => Nmc::Layer(ch.into()),
            Op::Reshape if ch.len() == 3 => Nmc::Reshape([ch[0], ch[1], ch[2]]),
            Op::Concat { .. } => Nmc::Concat(ch.into()),
            _ => Nmc::Other(ch.into()),
        };
        ids[id.index()] = Some(expr.add(node));
    }
    let outs: Vec<Id> = graph
        .outputs
        .iter()
        .map(|o| ids[o.node.index()].ok_or("output out of range"))
        .collect::<Result<_, _>>()?;
    expr.add(Nmc::Outputs(outs.into()));
    Ok(expr)
}

/// Back to a graph. `original` supplies the name, the inputs (kept in place and order, used or
/// not) and the output names; `consts` is the (possibly extended) constant pool.
pub fn from_expr(
    expr: &RecExpr<Nmc>,
    table: &Table,
    original: &Graph,
    consts: nmc_ir::ConstPool,
) -> Result<Graph, String> {
    let mut g = Graph::new(original.name.clone());
    for &i in &original.inputs {
        let n = original.node(i);
        g.add_input(n.ty.clone(), n.name.clone().unwrap_or_default());
    }
    g.consts = consts;
    let nodes = expr.as_ref();
    let mut map: Vec<Option<NodeId>> = vec![None; nodes.len()];
    let sym = |id: Id| match &nodes[usize::from(id)] {
        Nmc::Attr(s) => Ok(*s),
        other => Err(format!("expected an attribute leaf, found {other:?}")),
    };
    let mut outputs = None;
    for (k, node) in nodes.iter().enumerate() {
        let ch = node.children();
        match node {
            Nmc::Attr(_) => {}
            Nmc::Outputs(c) => outputs = Some(c.clone()),
            _ => {
                let (op, name) = table.op_of(sym(ch[0])?).ok_or("unknown attribute")?.clone();
                let ty = table.ty_of(sym(ch[1])?).ok_or("unknown type")?.clone();
                if let Op::Input { index } = op {
                    map[k] = Some(*g.inputs.get(index).ok_or("input index out of range")?);
                    continue;
                }
                let inputs = ch[2..]
                    .iter()
                    .map(|c| map[usize::from(*c)].ok_or("operand is not a value"))
                    .collect::<Result<Vec<_>, _>>()?;
                map[k] = Some(g.add(op, inputs, ty, name));
            }
        }
    }
    let outs = outputs.ok_or("the expression has no (outputs ...) root")?;
    if outs.len() != original.outputs.len() {
        return Err("output count changed".into());
    }
    for (o, id) in original.outputs.iter().zip(outs.iter()) {
        g.outputs.push(Output {
            node: map[usize::from(*id)].ok_or("output is not a value")?,
            name: o.name.clone(),
        });
    }
    // Drop constants no node uses any more (a folded conv kernel, ...).
    Ok(g.into_compact())
}
