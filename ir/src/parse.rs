//! The text format, parser side: reads what [`crate::print`] writes, so that
//! `print(parse(print(g))) == print(g)`. Constants come back as [`crate::ConstData::Opaque`]
//! (their values are not in the text).

use crate::{
    op_from_attrs, AttrValue, Attrs, ConstData, ConstId, Constant, DType, Graph, NodeId, Output,
    TensorType,
};
use std::collections::BTreeMap;

/// A parse error with its 1-based line number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// Line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor {
            s: s.as_bytes(),
            pos: 0,
        }
    }
    fn ws(&mut self) {
        while self.pos < self.s.len() && (self.s[self.pos] as char).is_ascii_whitespace() {
            self.pos += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.pos).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "expected `{}` at column {}",
                c as char,
                self.pos + 1
            ))
        }
    }
    fn word(&mut self) -> Result<&'a str, String> {
        self.ws();
        let start = self.pos;
        while self.pos < self.s.len() {
            let c = self.s[self.pos] as char;
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '+') {
                self.pos += 1;
            } else {
                break;
            }
        }
        if start == self.pos {
            return Err(format!("expected a word at column {}", start + 1));
        }
        Ok(std::str::from_utf8(&self.s[start..self.pos]).expect("ascii"))
    }
    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        while self.pos < self.s.len() {
            let c = self.s[self.pos];
            self.pos += 1;
            match c {
                b'"' => {
                    return String::from_utf8(out).map_err(|_| "string is not UTF-8".to_string())
                }
                b'\\' => {
                    let e = *self.s.get(self.pos).ok_or("unterminated escape")?;
                    self.pos += 1;
                    out.push(match e {
                        b'n' => b'\n',
                        other => other,
                    });
                }
                c => out.push(c),
            }
        }
        Err("unterminated string".into())
    }
    fn node_ref(&mut self) -> Result<u32, String> {
        self.expect(b'%')?;
        self.word()?
            .parse()
            .map_err(|_| "bad node number".to_string())
    }
    fn const_ref(&mut self) -> Result<ConstId, String> {
        self.expect(b'@')?;
        let w = self.word()?;
        w.strip_prefix('c')
            .and_then(|n| n.parse().ok())
            .map(ConstId)
            .ok_or_else(|| format!("bad constant `@{w}`"))
    }
    fn value(&mut self) -> Result<AttrValue, String> {
        match self.peek() {
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                if !self.eat(b']') {
                    loop {
                        items.push(self.value()?);
                        if self.eat(b']') {
                            break;
                        }
                        self.expect(b',')?;
                    }
                }
                Ok(AttrValue::List(items))
            }
            Some(b'{') => Ok(AttrValue::Map(self.map()?)),
            Some(b'@') => Ok(AttrValue::Const(self.const_ref()?)),
            _ => {
                let w = self.word()?;
                Ok(match w {
                    "true" => AttrValue::Bool(true),
                    "false" => AttrValue::Bool(false),
                    "inf" | "-inf" | "NaN" => AttrValue::Float(w.parse().expect("float keyword")),
                    _ if w.starts_with(|c: char| c.is_ascii_digit() || c == '-') => {
                        if w.contains(['.', 'e', 'E']) {
                            AttrValue::Float(w.parse().map_err(|_| format!("bad number `{w}`"))?)
                        } else {
                            AttrValue::Int(w.parse().map_err(|_| format!("bad integer `{w}`"))?)
                        }
                    }
                    _ => AttrValue::Ident(w.to_string()),
                })
            }
        }
    }
    fn map(&mut self) -> Result<Attrs, String> {
        self.expect(b'{')?;
        let mut m = BTreeMap::new();
        if self.eat(b'}') {
            return Ok(m);
        }
        loop {
            let k = self.word()?.to_string();
            self.expect(b'=')?;
            let v = self.value()?;
            m.insert(k, v);
            if self.eat(b'}') {
                return Ok(m);
            }
            self.expect(b',')?;
        }
    }
    fn ty(&mut self) -> Result<TensorType, String> {
        self.ws();
        let start = self.pos;
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_alphanumeric() {
            self.pos += 1;
        }
        let name = std::str::from_utf8(&self.s[start..self.pos]).expect("ascii");
        let dtype =
            DType::from_name(name).ok_or_else(|| format!("unknown element type `{name}`"))?;
        self.expect(b'[')?;
        let mut shape = Vec::new();
        if !self.eat(b']') {
            loop {
                shape.push(
                    self.word()?
                        .parse()
                        .map_err(|_| "bad dimension".to_string())?,
                );
                if self.eat(b']') {
                    break;
                }
                self.expect(b',')?;
            }
        }
        Ok(TensorType { dtype, shape })
    }
    fn done(&mut self) -> bool {
        self.peek().is_none()
    }
}

/// Parses the text format.
pub fn parse(text: &str) -> Result<Graph, ParseError> {
    let err = |line: usize, message: String| ParseError { line, message };
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    // Constants first: nodes refer to them by number.
    let mut consts: BTreeMap<u32, Constant> = BTreeMap::new();
    for (ln, l) in &lines {
        if let Some(rest) = l.strip_prefix("const ") {
            let mut c = Cursor::new(rest);
            let parsed = (|| -> Result<(ConstId, Constant), String> {
                let id = c.const_ref()?;
                c.expect(b':')?;
                let ty = c.ty()?;
                let mut nnz = None;
                let mut hash = None;
                while !c.done() {
                    let k = c.word()?;
                    c.expect(b'=')?;
                    let v = c.word()?;
                    match k {
                        "nnz" => nnz = Some(v.parse().map_err(|_| "bad nnz".to_string())?),
                        "fnv" => {
                            let hex = v.strip_prefix("0x").ok_or("fnv must be hex")?;
                            hash = Some(
                                u64::from_str_radix(hex, 16).map_err(|_| "bad fnv".to_string())?,
                            )
                        }
                        other => return Err(format!("unknown constant field `{other}`")),
                    }
                }
                let data = ConstData::Opaque {
                    hash: hash.ok_or("constant without fnv")?,
                    nnz: nnz.ok_or("constant without nnz")?,
                    dtype: ty.dtype,
                };
                Ok((
                    id,
                    Constant {
                        shape: ty.shape,
                        data,
                    },
                ))
            })()
            .map_err(|m| err(*ln, m))?;
            if consts.insert(parsed.0 .0, parsed.1).is_some() {
                return Err(err(*ln, format!("constant {} defined twice", parsed.0)));
            }
        }
    }
    let mut graph = Graph::default();
    let mut const_map = BTreeMap::new();
    for (i, (k, c)) in consts.into_iter().enumerate() {
        if k as usize != i {
            return Err(err(
                0,
                format!("constants must be numbered densely; @c{i} is missing"),
            ));
        }
        const_map.insert(k, graph.consts.add(c));
    }
    let mut nodes: BTreeMap<u32, NodeId> = BTreeMap::new();
    let mut in_graph = false;
    let mut closed = false;
    for (ln, l) in lines {
        if l.starts_with("const ") {
            continue;
        }
        let mut c = Cursor::new(l);
        let res = (|| -> Result<(), String> {
            if !in_graph {
                if c.word()? != "graph" {
                    return Err("expected `graph`".into());
                }
                graph.name = c.string()?;
                c.expect(b'{')?;
                in_graph = true;
                return Ok(());
            }
            if closed {
                return Err("text after the end of the graph".into());
            }
            if c.eat(b'}') {
                closed = true;
                return Ok(());
            }
            if c.peek() == Some(b'r') {
                if c.word()? != "return" {
                    return Err("expected `return` or a node".into());
                }
                let name = c.string()?;
                c.expect(b'=')?;
                let n = c.node_ref()?;
                let node = *nodes
                    .get(&n)
                    .ok_or_else(|| format!("%{n} is not defined"))?;
                graph.outputs.push(Output { node, name });
                return Ok(());
            }
            let num = c.node_ref()?;
            c.expect(b'=')?;
            let mnemonic = c.word()?;
            let mut inputs = Vec::new();
            if c.eat(b'(') {
                loop {
                    let n = c.node_ref()?;
                    inputs.push(
                        *nodes
                            .get(&n)
                            .ok_or_else(|| format!("%{n} is used before it is defined"))?,
                    );
                    if c.eat(b')') {
                        break;
                    }
                    c.expect(b',')?;
                }
            }
            let attrs = if c.peek() == Some(b'{') {
                c.map()?
            } else {
                Attrs::new()
            };
            let mut op = op_from_attrs(mnemonic, &attrs)?;
            let mut bad = None;
            crate::remap_constants(&mut op, |id| match const_map.get(&id.0) {
                Some(m) => *m,
                None => {
                    bad = Some(id);
                    id
                }
            });
            if let Some(id) = bad {
                return Err(format!("constant {id} is not defined"));
            }
            c.expect(b':')?;
            let ty = c.ty()?;
            let name = if c.eat(b';') {
                if c.peek() == Some(b'o') {
                    let tag = c.word()?;
                    if tag != "onnx:" && tag != "onnx" {
                        return Err(format!("unknown comment tag `{tag}`"));
                    }
                    c.eat(b':');
                }
                Some(c.string()?)
            } else {
                None
            };
            if !c.done() {
                return Err("unexpected text at the end of the line".into());
            }
            let is_input = matches!(op, crate::Op::Input { .. });
            let id = graph.add(op, inputs, ty, name);
            if is_input {
                graph.inputs.push(id);
            }
            if nodes.insert(num, id).is_some() {
                return Err(format!("%{num} defined twice"));
            }
            Ok(())
        })();
        res.map_err(|m| err(ln, m))?;
    }
    if !closed {
        return Err(err(
            text.lines().count(),
            "missing closing `}` of the graph".into(),
        ));
    }
    // Inputs are numbered by their `index` attribute, not by position in the file.
    let mut inputs = std::mem::take(&mut graph.inputs);
    inputs.sort_by_key(|i| match graph.node(*i).op {
        crate::Op::Input { index } => index,
        _ => usize::MAX,
    });
    graph.inputs = inputs;
    Ok(graph)
}
