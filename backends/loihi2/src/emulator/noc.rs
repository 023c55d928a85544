//! The network-on-chip: dimension-order (X then Y) routing over a mesh, counting bits per
//! directed link (docs/papers.md §1.6: Loihi 2 routes X-Y).
//!
//! No source read gives the multi-chip topology (docs/chips.md §5.3: routing formats are
//! proprietary). nmc assumes the chips of a system sit side by
//! side along X, so the system is one wide mesh of `chips × mesh_width` columns and a hop from
//! the last column of one chip to the first of the next is an inter-chip link. Messages from the
//! host (graph inputs) enter at their destination core and use no link (assumed).

use nmc_ir::CoreLoc;

/// Directions of the four links leaving a router.
const EAST: usize = 0;
const WEST: usize = 1;
const SOUTH: usize = 2;
const NORTH: usize = 3;

/// Link loads of one timestep.
pub struct Noc {
    mesh_width: u32,
    global_width: u32,
    /// Bits per directed link, indexed `router * 4 + direction`.
    bits: Vec<u64>,
    /// Links with non-zero load this step (so a step costs O(links used)).
    touched: Vec<u32>,
    /// Link traversals of all messages this step.
    hops: u64,
    /// Messages and bits over each chip boundary since the last [`Noc::take_links`], indexed
    /// `boundary * 2 + (0 eastward, 1 westward)`; boundary `k` joins chips `k` and `k + 1`.
    crossings: Vec<[u64; 2]>,
}

/// What the links did in one step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkLoad {
    /// Most bits on one link.
    pub max_bits: u64,
    /// Longest link time (bits × the link's time per bit).
    pub max_ns: f64,
    /// Link traversals.
    pub hops: u64,
}

impl Noc {
    /// An idle mesh of `chips` chips side by side, each `mesh_width × mesh_height` routers.
    pub fn new(mesh_width: u32, mesh_height: u32, chips: u32) -> Noc {
        let global_width = mesh_width * chips.max(1);
        Noc {
            mesh_width,
            global_width,
            bits: vec![0; global_width as usize * mesh_height as usize * 4],
            touched: Vec::new(),
            hops: 0,
            crossings: vec![[0; 2]; 2 * chips.max(1).saturating_sub(1) as usize],
        }
    }

    /// Traffic over the chip boundaries since the last call (see [`nmc_backend::LinkPerf`]),
    /// then forgets it.
    pub fn take_links(&mut self) -> Vec<nmc_backend::LinkPerf> {
        let mut out = Vec::new();
        for (i, c) in self.crossings.iter_mut().enumerate() {
            if c[0] > 0 {
                let k = (i / 2) as u32;
                let (from_chip, to_chip) = if i % 2 == 0 { (k, k + 1) } else { (k + 1, k) };
                out.push(nmc_backend::LinkPerf {
                    from_chip,
                    to_chip,
                    messages: c[0],
                    bits: c[1],
                });
            }
            *c = [0; 2];
        }
        out.sort_by_key(|l| (l.from_chip, l.to_chip));
        out
    }

    fn add(&mut self, gx: u32, gy: u32, dir: usize, bits: u64, msgs: u64) {
        let link = (gy as usize * self.global_width as usize + gx as usize) * 4 + dir;
        if self.bits[link] == 0 {
            self.touched.push(link as u32);
        }
        self.bits[link] += bits;
        self.hops += msgs;
        if let Some(i) = self.crossing(gx, dir) {
            let c = &mut self.crossings[i];
            c[0] += msgs;
            c[1] += bits;
        }
    }

    /// The chip boundary the link leaving column `gx` in direction `dir` crosses, as an index of
    /// `crossings` (`boundary * 2`, `+ 1` westward), or `None` for a link within a chip.
    fn crossing(&self, gx: u32, dir: usize) -> Option<usize> {
        let mw = self.mesh_width;
        match dir {
            EAST if (gx + 1).is_multiple_of(mw) && gx + 1 < self.global_width => {
                Some((gx / mw) as usize * 2)
            }
            WEST if gx.is_multiple_of(mw) && gx > 0 => Some((gx / mw - 1) as usize * 2 + 1),
            _ => None,
        }
    }

    /// Routes `msgs` messages of `msg_bits` bits each from `a` to `b`.
    pub fn route(&mut self, a: CoreLoc, b: CoreLoc, msgs: u64, msg_bits: u64) {
        let bits = msgs * msg_bits;
        let (mut x, y) = (a.chip * self.mesh_width + a.x, a.y);
        let (tx, ty) = (b.chip * self.mesh_width + b.x, b.y);
        while x != tx {
            if x < tx {
                self.add(x, y, EAST, bits, msgs);
                x += 1;
            } else {
                self.add(x, y, WEST, bits, msgs);
                x -= 1;
            }
        }
        let mut y = y;
        while y != ty {
            if y < ty {
                self.add(x, y, SOUTH, bits, msgs);
                y += 1;
            } else {
                self.add(x, y, NORTH, bits, msgs);
                y -= 1;
            }
        }
    }

    fn is_interchip(&self, link: usize) -> bool {
        let (router, dir) = (link / 4, link % 4);
        let gx = (router % self.global_width as usize) as u32;
        self.crossing(gx, dir).is_some()
    }

    /// The step's link load, costed with the intra- and inter-chip time per bit; clears it.
    pub fn end_step(&mut self, ns_per_bit: f64, ns_per_bit_interchip: f64) -> LinkLoad {
        let mut load = LinkLoad {
            hops: self.hops,
            ..LinkLoad::default()
        };
        for &l in &self.touched {
            let l = l as usize;
            let bits = self.bits[l];
            let per_bit = if self.is_interchip(l) {
                ns_per_bit_interchip
            } else {
                ns_per_bit
            };
            load.max_bits = load.max_bits.max(bits);
            load.max_ns = load.max_ns.max(bits as f64 * per_bit);
            self.bits[l] = 0;
        }
        self.touched.clear();
        self.hops = 0;
        load
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(chip: u32, x: u32, y: u32) -> CoreLoc {
        CoreLoc { chip, x, y }
    }

    #[test]
    fn xy_routing_counts_hops_and_interchip_links() {
        let mut noc = Noc::new(8, 16, 2);
        // (0,0) → (3,2): 3 east + 2 south hops, 2 messages of 32 bits.
        noc.route(loc(0, 0, 0), loc(0, 3, 2), 2, 32);
        let l = noc.end_step(1.0, 10.0);
        assert_eq!((l.hops, l.max_bits), (10, 64));
        assert_eq!(l.max_ns, 64.0);
        // Chip 0 (7,0) → chip 1 (0,0): one inter-chip hop.
        noc.route(loc(0, 7, 0), loc(1, 0, 0), 1, 32);
        let l = noc.end_step(1.0, 10.0);
        assert_eq!((l.hops, l.max_bits, l.max_ns), (1, 32, 320.0));
        // Back west across the boundary is inter-chip too; the step was cleared.
        noc.route(loc(1, 0, 5), loc(0, 6, 5), 1, 32);
        let l = noc.end_step(1.0, 10.0);
        assert_eq!((l.hops, l.max_ns), (2, 320.0));
        // Local delivery uses no link.
        noc.route(loc(0, 1, 1), loc(0, 1, 1), 5, 32);
        assert_eq!(noc.end_step(1.0, 10.0), LinkLoad::default());
    }
}
