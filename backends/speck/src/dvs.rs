//! Speck's DVS layer (the event pre-processing layer before the nine cores): which sensor events
//! reach the first cores, and where.
//!
//! The chip's order (sinabs `DVSLayer`: "MergePolarity -> Pool -> Cut -> Flip"; docs/chips.md
//! §2.8) is what [`DvsRoute::route`] applies to one sensor event `(p, y, x)`:
//! 1. polarity: only the enabled polarities pass; with `merge` they land in channel 0, else in
//!    channel `p`;
//! 2. pooling: `(y / pool_y, x / pool_x)`, so every event of a window goes to one pooled pixel
//!    (sum pooling: the pixel receives all of them);
//! 3. cut: only pooled pixels inside `origin ..= cut` pass, shifted so the region starts at 0;
//! 4. mirror: `x → width − 1 − x` (`mirror_x`), `y → height − 1 − y` (`mirror_y`), then the
//!    diagonal mirror swaps x and y.
//!
//! The network's own view is [`ModelView`]: the model input is the region of the sensor (in
//! sensor pixels), mirrored and transposed, with polarity as channel; the model pools it itself.
//! The two agree exactly because nmc aligns the region to the pooling (its corner and size are
//! multiples of it): [`ModelView::to_model`] feeds the reference interpreter and
//! [`ModelView::to_sensor`] turns a dense input into sensor events that take the chip's path.

use crate::artifact::{DvsLayerConfig, Xy, POLARITIES_BOTH, POLARITIES_OFF, POLARITIES_ON};
use crate::spec::ChipSpec;

/// A validated DVS layer that routes sensor events to the first cores' input map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DvsRoute {
    /// Sensor region `[h, w]` events may come from (samna's DVS input size).
    pub sensor: [u32; 2],
    /// Pooling `[y, x]`.
    pub pool: [u32; 2],
    /// Region of interest: top-left `[y, x]` in pooled pixels.
    pub origin: [u32; 2],
    /// Region of interest: size `[h, w]` in pooled pixels.
    pub size: [u32; 2],
    /// Mirror left to right.
    pub mirror_x: bool,
    /// Mirror top to bottom.
    pub mirror_y: bool,
    /// Swap x and y (after mirroring).
    pub swap: bool,
    /// Both polarities into channel 0.
    pub merge: bool,
    /// Which polarities pass ([`POLARITIES_BOTH`], [`POLARITIES_ON`], [`POLARITIES_OFF`]).
    pub polarities: u32,
}

impl DvsRoute {
    /// Reads and checks a DVS layer configuration that passes sensor events.
    pub fn from_config(d: &DvsLayerConfig, spec: &ChipSpec) -> Result<Self, String> {
        let sensor = d.input_shape.unwrap_or_default();
        if !(1..=spec.dvs_size).contains(&sensor.x) || !(1..=spec.dvs_size).contains(&sensor.y) {
            return Err(format!(
                "dvs layer: sensor region {}x{} outside 1..={} per side",
                sensor.x, sensor.y, spec.dvs_size
            ));
        }
        let pool = d.pooling.unwrap_or(Xy { x: 1, y: 1 });
        if !spec.pool_sizes.contains(&pool.x) || !spec.pool_sizes.contains(&pool.y) {
            return Err(format!(
                "dvs layer: pooling {}x{} is not one of {:?} per axis",
                pool.x, pool.y, spec.pool_sizes
            ));
        }
        let pooled = Xy {
            x: sensor.x / pool.x,
            y: sensor.y / pool.y,
        };
        if pooled.x == 0 || pooled.y == 0 {
            return Err("dvs layer: the pooling is larger than the sensor region".into());
        }
        let origin = d.origin.unwrap_or_default();
        let cut = d.cut.unwrap_or(Xy {
            x: pooled.x - 1,
            y: pooled.y - 1,
        });
        if origin.x > cut.x || origin.y > cut.y || cut.x >= pooled.x || cut.y >= pooled.y {
            return Err(format!(
                "dvs layer: region ({}, {})..=({}, {}) is not inside the pooled sensor {}x{}",
                origin.x, origin.y, cut.x, cut.y, pooled.x, pooled.y
            ));
        }
        if ![POLARITIES_BOTH, POLARITIES_ON, POLARITIES_OFF].contains(&d.polarities)
            || (d.polarities != POLARITIES_BOTH && !d.merge)
        {
            return Err(format!(
                "dvs layer: polarities {} with merge {}",
                d.polarities, d.merge
            ));
        }
        Ok(DvsRoute {
            sensor: [sensor.y, sensor.x],
            pool: [pool.y, pool.x],
            origin: [origin.y, origin.x],
            size: [cut.y - origin.y + 1, cut.x - origin.x + 1],
            mirror_x: d.mirror_x,
            mirror_y: d.mirror_y,
            swap: d.mirror_diagonal,
            merge: d.merge,
            polarities: d.polarities,
        })
    }

    /// The map `[c, h, w]` the DVS layer sends to its destinations.
    pub fn out_map(&self) -> [u32; 3] {
        let c = if self.merge { 1 } else { 2 };
        let [h, w] = self.size;
        if self.swap {
            [c, w, h]
        } else {
            [c, h, w]
        }
    }

    /// Values of the sensor event space `[2, h, w]` (polarity as the first axis).
    pub fn sensor_numel(&self) -> usize {
        2 * self.sensor[0] as usize * self.sensor[1] as usize
    }

    /// Whether polarity `p` (1 = ON, 0 = OFF) passes.
    fn passes(&self, p: u32) -> bool {
        match self.polarities {
            POLARITIES_ON => p == 1,
            POLARITIES_OFF => p == 0,
            _ => p < 2,
        }
    }

    /// Where a sensor event at polarity `p`, row `y`, column `x` lands in the output map
    /// `[c, y, x]`, in the chip's order (module docs); `None` when the DVS layer drops it.
    pub fn route(&self, p: u32, y: u32, x: u32) -> Option<[u32; 3]> {
        if !self.passes(p) || y >= self.sensor[0] || x >= self.sensor[1] {
            return None;
        }
        let c = if self.merge { 0 } else { p };
        let (yp, xp) = (y / self.pool[0], x / self.pool[1]);
        let [oy, ox] = self.origin;
        let [h, w] = self.size;
        if yp < oy || xp < ox || yp - oy >= h || xp - ox >= w {
            return None;
        }
        let (mut yr, mut xr) = (yp - oy, xp - ox);
        if self.mirror_x {
            xr = w - 1 - xr;
        }
        if self.mirror_y {
            yr = h - 1 - yr;
        }
        Some(if self.swap { [c, xr, yr] } else { [c, yr, xr] })
    }
}

/// The network's view of the DVS layer: the model input map (before its pooling) as a mirrored,
/// transposed region of the sensor, computed in sensor pixels (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelView {
    route: DvsRoute,
    /// Region top-left `[y, x]` in sensor pixels.
    top_left: [u32; 2],
    /// Region size `[h, w]` in sensor pixels.
    region: [u32; 2],
}

impl ModelView {
    /// The view of `route`.
    pub fn new(route: DvsRoute) -> Self {
        let [py, px] = route.pool;
        ModelView {
            route,
            top_left: [route.origin[0] * py, route.origin[1] * px],
            region: [route.size[0] * py, route.size[1] * px],
        }
    }

    /// The model input map `[c, h, w]` (before the model's pooling).
    pub fn map(&self) -> [u32; 3] {
        let c = if self.route.merge { 1 } else { 2 };
        let [h, w] = self.region;
        if self.route.swap {
            [c, w, h]
        } else {
            [c, h, w]
        }
    }

    /// The model input element `[c, y, x]` a sensor event feeds, or `None` when the DVS layer
    /// drops it (polarity filtered, outside the region).
    pub fn to_model(&self, p: u32, y: u32, x: u32) -> Option<[u32; 3]> {
        let r = &self.route;
        if !r.passes(p) || y >= r.sensor[0] || x >= r.sensor[1] {
            return None;
        }
        let c = if r.merge { 0 } else { p };
        let [ty, tx] = self.top_left;
        let [h, w] = self.region;
        if y < ty || x < tx || y - ty >= h || x - tx >= w {
            return None;
        }
        let (mut yr, mut xr) = (y - ty, x - tx);
        if r.mirror_x {
            xr = w - 1 - xr;
        }
        if r.mirror_y {
            yr = h - 1 - yr;
        }
        Some(if r.swap { [c, xr, yr] } else { [c, yr, xr] })
    }

    /// The sensor event `[p, y, x]` that feeds model input element `[c, y, x]` (the inverse of
    /// [`ModelView::to_model`]; a merged channel is fed by an event of a polarity that passes).
    pub fn to_sensor(&self, c: u32, y: u32, x: u32) -> [u32; 3] {
        let r = &self.route;
        let p = match (r.merge, r.polarities) {
            (false, _) => c,
            (true, POLARITIES_OFF) => 0,
            (true, _) => 1,
        };
        let (mut yr, mut xr) = if r.swap { (x, y) } else { (y, x) };
        let [h, w] = self.region;
        if r.mirror_x {
            xr = w - 1 - xr;
        }
        if r.mirror_y {
            yr = h - 1 - yr;
        }
        [p, self.top_left[0] + yr, self.top_left[1] + xr]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::speck;

    fn config(pool: [u32; 2], origin: [u32; 2], cut: [u32; 2]) -> DvsLayerConfig {
        DvsLayerConfig {
            pass_sensor_events: true,
            pooling: Some(Xy {
                y: pool[0],
                x: pool[1],
            }),
            input_shape: Some(Xy { x: 128, y: 128 }),
            origin: Some(Xy {
                y: origin[0],
                x: origin[1],
            }),
            cut: Some(Xy {
                y: cut[0],
                x: cut[1],
            }),
            ..Default::default()
        }
    }

    /// The chip's order (pool, cut, mirror) and the model's (cut, mirror, then its own pooling)
    /// send every sensor event to the same pooled pixel, for every option.
    #[test]
    fn chip_order_and_model_view_agree_on_every_event() {
        for (pool, origin, cut) in [
            ([4, 4], [0, 0], [31, 31]),
            ([2, 4], [3, 1], [20, 9]),
            ([1, 2], [5, 7], [40, 30]),
        ] {
            for bits in 0..32u32 {
                let mut d = config(pool, origin, cut);
                d.mirror_x = bits & 1 != 0;
                d.mirror_y = bits & 2 != 0;
                d.mirror_diagonal = bits & 4 != 0;
                d.merge = bits & 8 != 0;
                d.polarities = if d.merge && bits & 16 != 0 { 2 } else { 0 };
                let r = DvsRoute::from_config(&d, &speck()).unwrap();
                let v = ModelView::new(r);
                let (kh, kw) = if r.swap {
                    (pool[1], pool[0])
                } else {
                    (pool[0], pool[1])
                };
                let [_, mh, mw] = v.map();
                assert_eq!(r.out_map(), [v.map()[0], mh / kh, mw / kw]);
                for p in 0..2 {
                    for y in (0..128).step_by(3) {
                        for x in (0..128).step_by(5) {
                            let chip = r.route(p, y, x);
                            let model = v.to_model(p, y, x).map(|[c, y, x]| [c, y / kh, x / kw]);
                            assert_eq!(chip, model, "{d:?} p {p} y {y} x {x}");
                            if let Some(m) = v.to_model(p, y, x) {
                                let s = v.to_sensor(m[0], m[1], m[2]);
                                assert_eq!(v.to_model(s[0], s[1], s[2]), Some(m));
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn hostile_configurations_are_refused() {
        let spec = speck();
        let ok = config([4, 4], [0, 0], [31, 31]);
        assert!(DvsRoute::from_config(&ok, &spec).is_ok());
        let mut d = ok.clone();
        d.pooling = Some(Xy { x: 3, y: 4 });
        assert!(DvsRoute::from_config(&d, &spec)
            .unwrap_err()
            .contains("pooling 3x4"));
        let mut d = ok.clone();
        d.cut = Some(Xy { x: 32, y: 31 });
        assert!(DvsRoute::from_config(&d, &spec)
            .unwrap_err()
            .contains("not inside"));
        let mut d = ok.clone();
        d.origin = Some(Xy { x: 40, y: 0 });
        assert!(DvsRoute::from_config(&d, &spec).is_err());
        let mut d = ok.clone();
        d.input_shape = Some(Xy { x: 129, y: 128 });
        assert!(DvsRoute::from_config(&d, &spec).is_err());
        let mut d = ok.clone();
        d.polarities = 1;
        assert!(DvsRoute::from_config(&d, &spec)
            .unwrap_err()
            .contains("merge false"));
        d.polarities = 7;
        d.merge = true;
        assert!(DvsRoute::from_config(&d, &spec).is_err());
        let mut d = ok;
        d.input_shape = Some(Xy { x: 2, y: 2 });
        assert!(DvsRoute::from_config(&d, &spec).is_err(), "4x4 pool of 2x2");
    }
}
