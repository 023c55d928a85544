//! The graph: an arena of nodes, each producing one value, addressed by [`NodeId`].
//!
//! Passes build new graphs rather than mutating in place, then call [`Graph::compact`], which drops
//! dead nodes and renumbers the rest in a deterministic topological order. Topological sorting and
//! cycle detection run on a `petgraph` view built on demand.

use crate::{ConstId, ConstPool, Op, TensorType};
use petgraph::graph::DiGraph;
use std::fmt;

/// Index of a node (and of the value it produces); prints as `%3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    /// Arena index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// One operation and the value it produces.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The operation.
    pub op: Op,
    /// Operand values.
    pub inputs: Vec<NodeId>,
    /// Type of the produced value.
    pub ty: TensorType,
    /// Name of the originating ONNX node (or graph input), for messages and traceability only.
    pub name: Option<String>,
}

/// A named graph output.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    /// The value returned.
    pub node: NodeId,
    /// Its name in the source model.
    pub name: String,
}

/// A dataflow graph with its constant pool.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    /// Graph name (from the model).
    pub name: String,
    /// Node arena.
    pub nodes: Vec<Node>,
    /// Graph inputs (each an [`Op::Input`] node), in order.
    pub inputs: Vec<NodeId>,
    /// Graph outputs, in order.
    pub outputs: Vec<Output>,
    /// Weights and biases.
    pub consts: ConstPool,
}

/// A node as error messages name it: `%3 ("/fc1/Gemm")`, or `%3` when it has no source name.
/// Every pass, partitioner and backend names nodes this way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRef {
    /// The node.
    pub id: NodeId,
    /// Its name in the source model.
    pub name: Option<String>,
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{} (\"{n}\")", self.id),
            None => write!(f, "{}", self.id),
        }
    }
}

/// A cycle was found; the node named is on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cycle(pub NodeId);

impl Graph {
    /// An empty graph.
    pub fn new(name: impl Into<String>) -> Self {
        Graph {
            name: name.into(),
            ..Default::default()
        }
    }

    /// Appends a node and returns its id.
    pub fn add(
        &mut self,
        op: Op,
        inputs: Vec<NodeId>,
        ty: TensorType,
        name: Option<String>,
    ) -> NodeId {
        self.nodes.push(Node {
            op,
            inputs,
            ty,
            name,
        });
        NodeId(self.nodes.len() as u32 - 1)
    }

    /// Adds an input node and registers it as the next graph input.
    pub fn add_input(&mut self, ty: TensorType, name: impl Into<String>) -> NodeId {
        let index = self.inputs.len();
        let id = self.add(Op::Input { index }, vec![], ty, Some(name.into()));
        self.inputs.push(id);
        id
    }

    /// The node with this id.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    /// The node as messages name it ([`NodeRef`]).
    pub fn node_ref(&self, id: NodeId) -> NodeRef {
        NodeRef {
            id,
            name: self.node(id).name.clone(),
        }
    }

    /// Mutable access to a node.
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id.index()]
    }

    /// Type of a value.
    pub fn ty(&self, id: NodeId) -> &TensorType {
        &self.nodes[id.index()].ty
    }

    /// All node ids in arena order.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> {
        (0..self.nodes.len() as u32).map(NodeId)
    }

    /// Users of each node (indexed by arena position), in arena order.
    pub fn users(&self) -> Vec<Vec<NodeId>> {
        let mut users = vec![Vec::new(); self.nodes.len()];
        for id in self.ids() {
            for &i in &self.node(id).inputs {
                if i.index() < users.len() && !users[i.index()].contains(&id) {
                    users[i.index()].push(id);
                }
            }
        }
        users
    }

    /// A topological order of all nodes (inputs before users), or the cycle that prevents one.
    /// Among ready nodes the lowest arena index goes first, so the order is deterministic. Both
    /// the order (Kahn's algorithm) and the cycle search (petgraph's Kosaraju, whose depth-first
    /// searches keep an explicit stack) are iterative, so any depth of graph is fine.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, Cycle> {
        let n = self.nodes.len();
        let mut indeg: Vec<usize> = self
            .nodes
            .iter()
            .map(|node| node.inputs.iter().filter(|i| i.index() < n).count())
            .collect();
        let users = self.users_with_multiplicity();
        let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<u32>> = (0..n as u32)
            .filter(|&i| indeg[i as usize] == 0)
            .map(std::cmp::Reverse)
            .collect();
        let mut order = Vec::with_capacity(n);
        while let Some(std::cmp::Reverse(i)) = ready.pop() {
            order.push(NodeId(i));
            for &u in &users[i as usize] {
                indeg[u.index()] -= 1;
                if indeg[u.index()] == 0 {
                    ready.push(std::cmp::Reverse(u.0));
                }
            }
        }
        if order.len() == n {
            return Ok(order);
        }
        // Some nodes never became ready: name the lowest-numbered node that lies on a cycle.
        let mut view: DiGraph<(), ()> = DiGraph::with_capacity(n, 0);
        for _ in &self.nodes {
            view.add_node(());
        }
        for id in self.ids() {
            for &i in &self.node(id).inputs {
                if i.index() < n {
                    view.add_edge((i.0).into(), (id.0).into(), ());
                }
            }
        }
        let on_cycle = petgraph::algo::kosaraju_scc(&view)
            .iter()
            .filter(|c| c.len() > 1 || view.contains_edge(c[0], c[0]))
            .flat_map(|c| c.iter().map(|n| n.index()))
            .min()
            .unwrap_or(0);
        Err(Cycle(NodeId(on_cycle as u32)))
    }

    fn users_with_multiplicity(&self) -> Vec<Vec<NodeId>> {
        let mut users = vec![Vec::new(); self.nodes.len()];
        for id in self.ids() {
            for &i in &self.node(id).inputs {
                if let Some(u) = users.get_mut(i.index()) {
                    u.push(id);
                }
            }
        }
        users
    }

    /// Drops nodes that no output depends on (inputs are always kept) and renumbers the rest in
    /// topological order. Unused constants are dropped too. Panics on a cyclic graph, which the
    /// verifier rejects before any pass runs.
    pub fn compact(&self) -> Graph {
        self.compact_with(|c| self.consts.get_shared(c))
    }

    /// [`Graph::compact`], consuming the graph: constants move instead of being shared, so a
    /// constant no longer referenced is freed with the old graph.
    pub fn into_compact(mut self) -> Graph {
        let mut consts = std::mem::take(&mut self.consts);
        self.compact_with(|c| consts.take(c))
    }

    /// The compaction of both, with constants supplied by `constant`.
    fn compact_with(
        &self,
        mut constant: impl FnMut(ConstId) -> std::sync::Arc<crate::Constant>,
    ) -> Graph {
        let order = self.topo_order().expect("compact on a cyclic graph");
        let mut live = vec![false; self.nodes.len()];
        let mut stack: Vec<NodeId> = self.outputs.iter().map(|o| o.node).collect();
        stack.extend(self.inputs.iter().copied());
        while let Some(n) = stack.pop() {
            if !live[n.index()] {
                live[n.index()] = true;
                stack.extend(self.node(n).inputs.iter().copied());
            }
        }
        let mut out = Graph::new(self.name.clone());
        let mut map = vec![NodeId(u32::MAX); self.nodes.len()];
        let mut const_map = std::collections::BTreeMap::new();
        // Inputs first, in input order, so that numbering starts with them.
        let order: Vec<NodeId> = self
            .inputs
            .iter()
            .copied()
            .chain(order.into_iter().filter(|n| !self.inputs.contains(n)))
            .collect();
        for id in order {
            if !live[id.index()] {
                continue;
            }
            let node = self.node(id);
            let mut op = node.op.clone();
            crate::remap_constants(&mut op, |c| {
                *const_map
                    .entry(c)
                    .or_insert_with(|| out.consts.add_shared(constant(c)))
            });
            let inputs = node.inputs.iter().map(|i| map[i.index()]).collect();
            map[id.index()] = out.add(op, inputs, node.ty.clone(), node.name.clone());
        }
        out.inputs = self.inputs.iter().map(|i| map[i.index()]).collect();
        out.outputs = self
            .outputs
            .iter()
            .map(|o| Output {
                node: map[o.node.index()],
                name: o.name.clone(),
            })
            .collect();
        out
    }
}
