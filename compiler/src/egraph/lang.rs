//! The e-graph language over the canonical float graph.
//!
//! Attributes are leaf children: an [`Nmc::Attr`] leaf is a symbol `aN` (the N-th interned op
//! attribute set: the `Op` with its node name) or `tN` (the N-th interned tensor type), both
//! indices into the [`Table`] the pass shares with every applier through the analysis. Weights
//! stay in the IR's `ConstPool`; a layer's attribute refers to them by `ConstId`.

use egg::{define_language, Id, Symbol};
use nmc_ir::{Op, TensorType};

define_language! {
    /// Canonical ops. The first child of every operator is its attribute leaf, the second its
    /// result type leaf; the rest are the operands in IR order.
    pub enum Nmc {
        // `(input aI tT)`: graph input (the attribute holds `Op::Input { index }`).
        "input" = Input([Id; 2]),
        // `(layer aL tT x0 x1 ...)`: one population; operand k feeds synapse group k.
        "layer" = Layer(Box<[Id]>),
        // `(reshape aR tT x)`: row-major view of `x` with type `tT`.
        "reshape" = Reshape([Id; 3]),
        // `(concat aC tT x0 x1 ...)`: concatenation (axis in the attribute).
        "concat" = Concat(Box<[Id]>),
        // `(op aO tT x0 ...)`: any other op, opaque to the rules.
        "op" = Other(Box<[Id]>),
        // `(outputs y0 y1 ...)`: the root, one child per graph output, in order.
        "outputs" = Outputs(Box<[Id]>),
        // `aN` / `tN`: an attribute or type leaf.
        Attr(Symbol),
    }
}

/// Interned attributes and types (deterministic: indices follow first insertion).
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// Op attributes with the node name.
    pub ops: Vec<(Op, Option<String>)>,
    /// Result types.
    pub tys: Vec<TensorType>,
}

impl Table {
    /// The leaf symbol of an op attribute set (interned by value).
    pub fn op(&mut self, op: &Op, name: &Option<String>) -> Symbol {
        let i = match self.ops.iter().position(|(o, n)| o == op && n == name) {
            Some(i) => i,
            None => {
                self.ops.push((op.clone(), name.clone()));
                self.ops.len() - 1
            }
        };
        Symbol::from(format!("a{i}"))
    }

    /// The leaf symbol of a type (interned by value).
    pub fn ty(&mut self, ty: &TensorType) -> Symbol {
        let i = match self.tys.iter().position(|t| t == ty) {
            Some(i) => i,
            None => {
                self.tys.push(ty.clone());
                self.tys.len() - 1
            }
        };
        Symbol::from(format!("t{i}"))
    }

    /// The op attribute set of an `aN` leaf.
    pub fn op_of(&self, s: Symbol) -> Option<&(Op, Option<String>)> {
        s.as_str()
            .strip_prefix('a')?
            .parse::<usize>()
            .ok()
            .and_then(|i| self.ops.get(i))
    }

    /// The type of a `tN` leaf.
    pub fn ty_of(&self, s: Symbol) -> Option<&TensorType> {
        s.as_str()
            .strip_prefix('t')?
            .parse::<usize>()
            .ok()
            .and_then(|i| self.tys.get(i))
    }
}

impl Nmc {
    /// The type leaf child of an operator node.
    pub fn ty_child(&self) -> Option<Id> {
        match self {
            Nmc::Input(c) => Some(c[1]),
            Nmc::Reshape(c) => Some(c[1]),
            Nmc::Layer(c) | Nmc::Concat(c) | Nmc::Other(c) => c.get(1).copied(),
            Nmc::Outputs(_) | Nmc::Attr(_) => None,
        }
    }
}
