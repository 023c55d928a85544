//! The text format, printer side. Deterministic and line-oriented: nodes renumbered densely in
//! topological order (inputs first), constants in order of first use, attributes sorted, floats in
//! shortest round-trip form, weights summarised by shape, non-zero count and content hash.
//!
//! ```text
//! graph "digits_mlp" {
//!   %0 = input {index=0} : f32[64] ; "input"
//!   %1 = dense(%0) {bias=@c1, weight=@c0} : f32[128] ; onnx:"/fc1/Gemm"
//!   return "logits" = %1
//! }
//! const @c0 : f32[128,64] nnz=8192 fnv=0x1f0c…
//! ```

use crate::{op_attrs, AttrValue, Graph, Op};
use std::fmt::Write;

/// Escapes a string literal.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn write_value(out: &mut String, v: &AttrValue) {
    match v {
        AttrValue::Int(i) => write!(out, "{i}").unwrap(),
        AttrValue::Float(f) => write!(out, "{f:?}").unwrap(),
        AttrValue::Bool(b) => write!(out, "{b}").unwrap(),
        AttrValue::Ident(s) => out.push_str(s),
        AttrValue::Const(c) => write!(out, "{c}").unwrap(),
        AttrValue::List(l) => {
            out.push('[');
            for (i, x) in l.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, x);
            }
            out.push(']');
        }
        AttrValue::Map(m) => write_map(out, m),
    }
}

fn write_map(out: &mut String, m: &crate::Attrs) {
    out.push('{');
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write!(out, "{k}=").unwrap();
        write_value(out, v);
    }
    out.push('}');
}

/// Prints `graph` in the text format. Dead nodes are not printed.
pub fn print(graph: &Graph) -> String {
    let g = match graph.topo_order() {
        Ok(_) => graph.compact(),
        Err(_) => graph.clone(),
    };
    let mut out = String::new();
    writeln!(out, "graph {} {{", quote(&g.name)).unwrap();
    for id in g.ids() {
        let node = g.node(id);
        write!(out, "  {id} = {}", node.op.mnemonic()).unwrap();
        if !node.inputs.is_empty() {
            let ops: Vec<String> = node.inputs.iter().map(|i| i.to_string()).collect();
            write!(out, "({})", ops.join(", ")).unwrap();
        }
        let attrs = op_attrs(&node.op);
        if !attrs.is_empty() {
            out.push(' ');
            write_map(&mut out, &attrs);
        }
        write!(out, " : {}", node.ty).unwrap();
        if let Some(name) = &node.name {
            let tag = if matches!(node.op, Op::Input { .. }) {
                ""
            } else {
                "onnx:"
            };
            write!(out, " ; {tag}{}", quote(name)).unwrap();
        }
        out.push('\n');
    }
    for o in &g.outputs {
        writeln!(out, "  return {} = {}", quote(&o.name), o.node).unwrap();
    }
    out.push_str("}\n");
    for (id, c) in g.consts.iter() {
        let shape: Vec<String> = c.shape.iter().map(|d| d.to_string()).collect();
        writeln!(
            out,
            "const {id} : {}[{}] nnz={} fnv={:#018x}",
            c.dtype().name(),
            shape.join(","),
            c.nnz(),
            c.hash()
        )
        .unwrap();
    }
    out
}
