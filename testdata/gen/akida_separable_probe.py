#!/usr/bin/env python3
"""Measures Akida 1.0's SeparableConvolutional in BrainChip's akida package (issue 15).

docs/chips.md §3.6 records the results; nmc's AKD1000 backend relies on them
(backends/akd1000: layers.rs, map.rs, emulator.rs; compiler/src/passes/quantize_akida.rs).

Everything runs akida 2.19.3 (requirements-akida.txt) offline: models are built layer by layer
(``InputData`` or ``InputConvolutional`` first, then ``SeparableConvolutional``), weights,
thresholds and act_steps are set by hand, ``forward``/``predict`` run on the software backend,
and ``map(akida.AKD1000(), mode=MapMode.Minimal)`` maps on the virtual AKD1000. Each check
compares akida with an independent numpy model of the integer semantics below and stops with an
error if they differ, so a run that finishes has confirmed every stated fact.

Semantics checked (``x`` uint8 input codes, ``D`` depthwise sums, ``P`` potentials):

1. weight values: 1 bit {0, 1}, 2 bits [-1, 1], 4 bits [-7, 7] (both kernels);
2. ``D[c] = sum_{i,j} K[c][k-1-i][k-1-j] * x_pad[c][y*s+i][x*s+j]`` — a true convolution
   (flipped kernel), TensorFlow "Same" padding (``floor(total/2)`` before) or Valid, stride 1 or 2,
   kernels 3, 5, 7;
3. ``P[o] = sum_c W_pw[c][o] * D[c]`` with ``D`` at full precision (no saturation, no
   requantisation between the kernels; potentials up to 9,219,840 exact);
4. with an activation: ``clip(ceil((P - threshold) / (act_step * 2^(4 - act_bits))), 0,
   2^act_bits - 1)``, one threshold and act_step per pointwise filter; max pooling pools the
   activations (same as pooling potentials); global average pooling sums ``P`` over the map
   before the threshold; input bits 1, 2 and 4.

Mapping facts recorded: NPs per layer and their type for sweeps of channels, filters, kernel,
bits, stride, padding and input height; ``mem_info.weight_size``; and the two Done-when
architectures of issue 15 (DS-CNN 1x49x10, MobileNet v1 alpha 0.25 at 96x96) built directly.

Run (about a minute):

    /tmp/akvenv/bin/python testdata/gen/akida_separable_probe.py [--json OUT.json]

It is deterministic (seeded); the JSON holds the mapping measurements.
"""

import argparse
import json
import sys

import akida
import numpy as np

RNG = np.random.default_rng(2026)


def same_pads(n, k, s):
    """TensorFlow's Same padding (docs/chips.md §3.5): (before, after)."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def model_sums(x, dw, pw, s, same, flip=True):
    """numpy model: x (N,H,W,C) codes; dw (k,k,C,1); pw (1,1,C,F) -> (D, P) int64."""
    n, h, w, c = x.shape
    k = dw.shape[0]
    (t, b), (l, r) = (same_pads(h, k, s), same_pads(w, k, s)) if same else ((0, 0), (0, 0))
    xp = np.pad(x.astype(np.int64), ((0, 0), (t, b), (l, r), (0, 0)))
    kern = dw[:, :, :, 0].astype(np.int64)
    if flip:
        kern = kern[::-1, ::-1]
    oh, ow = (h + t + b - k) // s + 1, (w + l + r - k) // s + 1
    d = np.zeros((n, oh, ow, c), np.int64)
    for i in range(k):
        for j in range(k):
            d += xp[:, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s, :] * kern[i, j]
    return d, np.einsum("nhwc,cf->nhwf", d, pw[0, 0].astype(np.int64))


def wrange(bits):
    return (0, 1) if bits == 1 else (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1)


def sep_model(h, w, c, f, k, s=1, wbits=4, ibits=4, padding=akida.Padding.Same, act_bits=None,
              pool=None):
    m = akida.Model()
    m.add(akida.InputData(input_shape=(h, w, c), input_bits=ibits, name="in"))
    kw = {}
    if pool == "max":
        kw = dict(pool_type=akida.PoolType.Max, pool_size=(2, 2), pool_stride=(2, 2))
    elif pool == "max_s1":
        kw = dict(pool_type=akida.PoolType.Max, pool_size=(2, 2), pool_stride=(1, 1))
    elif pool == "gap":
        kw = dict(pool_type=akida.PoolType.Average)
    act = act_bits is not None
    m.add(akida.SeparableConvolutional(
        kernel_size=(k, k), filters=f, name="sep", weights_bits=wbits, kernel_stride=(s, s),
        padding=padding, activation=act, **(dict(act_bits=act_bits) if act else {}), **kw))
    return m


def set_vars(layer, dw, pw, thr, step):
    layer.set_variable("weights", dw.astype(np.int8))
    layer.set_variable("weights_pw", pw.astype(np.int8))
    layer.set_variable("threshold", np.asarray(thr, np.int32))
    layer.set_variable("act_step", np.asarray(step, np.float32))


def check(cond, what):
    if not cond:
        sys.exit(f"MISMATCH: {what}")
    print(f"ok: {what}")


def weight_ranges():
    out = {}
    for bits in (1, 2, 4):
        m = sep_model(8, 8, 4, 8, 3, wbits=bits)
        layer = m.layers[1]
        for var, shape in (("weights", (3, 3, 4, 1)), ("weights_pw", (1, 1, 4, 8))):
            ok = []
            for v in range(-9, 10):
                try:
                    layer.set_variable(var, np.full(shape, v, np.int8))
                    ok.append(v)
                except ValueError:
                    pass
            out[f"{bits}:{var}"] = [min(ok), max(ok)]
    for bits, lo_hi in ((1, (0, 1)), (2, (-1, 1)), (4, (-7, 7))):
        check(out[f"{bits}:weights"] == list(lo_hi) and out[f"{bits}:weights_pw"] == list(lo_hi),
              f"{bits}-bit separable weights take [{lo_hi[0]}, {lo_hi[1]}] (both kernels)")
    return out


def raw_sums():
    """Orientation, padding, strides, kernels, widths, precision (no activation: P returned)."""
    cases = []
    for k in (3, 5, 7):
        for s in (1, 2):
            for same in (True, False):
                for (h, w) in ((8, 8), (9, 10), (7, 11)):
                    cases.append(dict(h=h, w=w, c=4, f=8, k=k, s=s, same=same, wbits=4, ibits=4))
    for wbits in (1, 2):
        cases.append(dict(h=8, w=8, c=4, f=8, k=3, s=1, same=True, wbits=wbits, ibits=4))
    for ibits in (1, 2):
        cases.append(dict(h=8, w=8, c=4, f=8, k=3, s=1, same=True, wbits=4, ibits=ibits))
    flipped_differs = 0
    for cs in cases:
        m = sep_model(cs["h"], cs["w"], cs["c"], cs["f"], cs["k"], cs["s"], cs["wbits"],
                      cs["ibits"], akida.Padding.Same if cs["same"] else akida.Padding.Valid)
        lo, hi = wrange(cs["wbits"])
        dw = RNG.integers(lo, hi + 1, (cs["k"], cs["k"], cs["c"], 1))
        pw = RNG.integers(lo, hi + 1, (1, 1, cs["c"], cs["f"]))
        set_vars(m.layers[1], dw, pw, np.zeros(cs["f"]), np.ones(cs["f"]))
        x = RNG.integers(0, 2 ** cs["ibits"], (3, cs["h"], cs["w"], cs["c"])).astype(np.uint8)
        y = m.predict(x)
        _, p = model_sums(x, dw, pw, cs["s"], cs["same"])
        check(np.array_equal(y, p), f"sums {cs}")
        _, pu = model_sums(x, dw, pw, cs["s"], cs["same"], flip=False)
        flipped_differs += int(not np.array_equal(y, pu))
    check(flipped_differs == len(cases),
          "the depthwise kernel is applied flipped (a true convolution) in every case")
    # Full precision: the largest sums 4-bit inputs and weights can make.
    for k in (3, 7):
        for c in (8, 256):
            m = sep_model(9, 9, c, 8, k)
            dw = np.full((k, k, c, 1), 7)
            pw = np.full((1, 1, c, 8), 7)
            pw[..., 1::2] = -7
            set_vars(m.layers[1], dw, pw, np.zeros(8), np.ones(8))
            x = np.full((1, 9, 9, c), 15, np.uint8)
            d, p = model_sums(x, dw, pw, 1, True)
            y = m.predict(x)
            check(np.array_equal(y, p),
                  f"full precision: k={k}, {c} channels, depthwise sums up to {d.max()}, "
                  f"potentials {p.min()}..{p.max()}")


def activations():
    for bits in (1, 2, 4):
        for pool in (None, "max", "max_s1", "gap"):
            h = w = 8
            c, f, k = 4, 8, 3
            m = sep_model(h, w, c, f, k, act_bits=bits, pool=pool)
            dw = RNG.integers(-7, 8, (k, k, c, 1))
            pw = RNG.integers(-7, 8, (1, 1, c, f))
            thr = RNG.integers(-300, 300, f)
            step = RNG.integers(1, 200, f) * (h * w if pool == "gap" else 1)
            set_vars(m.layers[1], dw, pw, thr, step / 2 ** (4 - bits))
            x = RNG.integers(0, 16, (4, h, w, c)).astype(np.uint8)
            y = m.forward(x)
            _, p = model_sums(x, dw, pw, 1, True)
            if pool == "max":
                p = p.reshape(4, 4, 2, 4, 2, f).max(axis=(2, 4))
            elif pool == "max_s1":
                q = np.pad(p, ((0, 0), (0, 1), (0, 1), (0, 0)),
                           constant_values=np.iinfo(np.int64).min)
                p = np.maximum.reduce([q[:, a:a + h, b:b + w] for a in (0, 1) for b in (0, 1)])
            elif pool == "gap":
                p = p.sum(axis=(1, 2), keepdims=True)
            want = np.clip(np.ceil((p - thr) / step), 0, 2 ** bits - 1)
            check(np.array_equal(y, want), f"activation {bits} bits, pooling {pool}")


def mapped(m):
    m.map(akida.AKD1000(), hw_only=False, mode=akida.MapMode.Minimal)
    out = []
    for layer in m.layers:
        if layer.parameters.layer_type == akida.LayerType.InputData:
            continue
        nps = layer.mapping.nps if layer.mapping is not None else []
        out.append({
            "layer": layer.name,
            "hardware": layer.mapping is not None,
            "nps": [{"type": str(n.type).split(".")[-1], "filters": n.filters,
                     "weight_size": n.mem_info.weight_size} for n in nps]})
    passes = sum(len(seq.passes) for seq in m.sequences)
    return out, passes


def one_layer_map(**a):
    m = sep_model(a["h"], a["w"], a["c"], a["f"], a["k"], a.get("s", 1), a.get("wbits", 4),
                  4, a.get("padding", akida.Padding.Same), act_bits=4, pool=a.get("pool"))
    lo, hi = wrange(a.get("wbits", 4))
    set_vars(m.layers[1], RNG.integers(lo, hi + 1, (a["k"], a["k"], a["c"], 1)),
             RNG.integers(lo, hi + 1, (1, 1, a["c"], a["f"])), np.zeros(a["f"]),
             np.ones(a["f"]))
    layers, _ = mapped(m)
    return layers[0]


def mapping_sweeps():
    rows = []

    def rec(tag, **a):
        r = one_layer_map(**a)
        nps = r["nps"]
        desc = (f"{len(nps)} x {'/'.join(sorted({n['type'] for n in nps}))} "
                f"filters {[n['filters'] for n in nps]} weight_size {[n['weight_size'] for n in nps]}"
                if r["hardware"] else "software (not mapped to hardware)")
        a = {k: (str(v) if not isinstance(v, (int, str, type(None))) else v) for k, v in a.items()}
        rows.append({"sweep": tag, "params": a, "result": r})
        print(f"map {tag} {a}: {desc}")
        return r

    for c in (8, 32, 64, 128, 256, 512):
        rec("channels", h=8, w=8, c=c, f=c, k=3)
    for f in (8, 64, 256, 504, 512, 1008, 1016):
        rec("filters", h=8, w=8, c=8, f=f, k=3)
    for k in (3, 5, 7):
        for wbits in (1, 2, 4):
            rec("kernel_bits", h=8, w=8, c=64, f=64, k=k, wbits=wbits)
    for k in (3, 5):
        rec("stride2", h=8, w=8, c=64, f=64, k=k, s=2)
    rec("valid", h=8, w=8, c=64, f=64, k=3, padding=akida.Padding.Valid)
    rec("gap", h=8, w=8, c=64, f=64, k=3, pool="gap")
    for h in (32, 33, 64, 65, 96, 97):
        rec("height", h=h, w=48, c=8, f=16, k=3)
    for h, w, c in ((64, 152, 16), (64, 160, 16), (64, 336, 16), (64, 344, 16), (128, 128, 32),
                    (8, 700, 16), (8, 1300, 16)):
        rec("sram", h=h, w=w, c=c, f=16, k=3)
    # Square maps as in MobileNets: the count does not depend on the stride.
    for c in (16, 32, 64, 128, 256):
        for h in (14, 28, 40, 56, 80, 112):
            for st in (1, 2):
                rec("square", h=h, w=h, c=c, f=16, k=3, s=st)
    for c in (1, 4, 8, 9, 16, 17):
        for wbits in (2, 4):
            rec("weight_size", h=8, w=8, c=c, f=8, k=3, wbits=wbits)
    for f in (8, 16, 32, 64, 128, 256):
        for k in (3, 5, 7):
            rec("weight_size", h=8, w=8, c=8, f=f, k=k)
            rec("weight_size", h=8, w=8, c=16, f=f, k=k, wbits=2)
    return rows


def set_random(layer, shapes, f):
    for name, shape in shapes.items():
        layer.set_variable(name, RNG.integers(-7, 8, shape).astype(np.int8))
    layer.set_variable("threshold", np.zeros(f, np.int32))
    layer.set_variable("act_step", np.ones(f, np.float32))


def add_sep(m, cin, f, s, name, gap=False):
    kw = dict(pool_type=akida.PoolType.Average) if gap else {}
    m.add(akida.SeparableConvolutional(kernel_size=(3, 3), filters=f, name=name, weights_bits=4,
                                       kernel_stride=(s, s), activation=True, act_bits=4, **kw))
    set_random(m.layers[-1], {"weights": (3, 3, cin, 1), "weights_pw": (1, 1, cin, f)}, f)


def architectures():
    """The Done-when networks of issue 15 (and two larger MobileNets), built directly in akida
    (random 4-bit weights)."""
    out = {}
    m = akida.Model()
    m.add(akida.InputConvolutional(input_shape=(53, 14, 1), kernel_size=(5, 5),
                                   kernel_stride=(2, 2), filters=64, padding=akida.Padding.Valid,
                                   weights_bits=8, act_bits=4, name="conv0"))
    set_random(m.layers[-1], {"weights": (5, 5, 1, 64)}, 64)
    for i in range(4):
        add_sep(m, 64, 64, 1, f"sep{i + 1}", gap=(i == 3))
    m.add(akida.FullyConnected(units=10, weights_bits=4, activation=False, name="fc"))
    set_random(m.layers[-1], {"weights": (1, 1, 64, 10)}, 10)
    out["ds_cnn"] = mapped(m)
    # MobileNet v1 (alpha, resolution, classes): the shipped case's shape, and two larger ones
    # (the largest needs two hardware passes).
    for alpha, res, classes in ((0.25, 96, 10), (0.5, 160, 1000), (1.0, 224, 1000)):
        m = akida.Model()
        c0 = int(32 * alpha)
        m.add(akida.InputConvolutional(input_shape=(res + 2, res + 2, 3), kernel_size=(3, 3),
                                       kernel_stride=(2, 2), filters=c0,
                                       padding=akida.Padding.Valid, weights_bits=8, act_bits=4,
                                       name="conv0"))
        set_random(m.layers[-1], {"weights": (3, 3, 3, c0)}, c0)
        cin = c0
        cfg = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [
            (1024, 2), (1024, 1)]
        for i, (f, s) in enumerate(cfg):
            f = int(f * alpha)
            add_sep(m, cin, f, s, f"sep{i + 1}", gap=(i == len(cfg) - 1))
            cin = f
        m.add(akida.FullyConnected(units=classes, weights_bits=4, activation=False, name="fc"))
        set_random(m.layers[-1], {"weights": (1, 1, cin, classes)}, classes)
        out[f"mobilenet_v1_{alpha}_{res}_{classes}"] = mapped(m)
    for name, (layers, seqs) in out.items():
        print(f"{name}: {seqs} pass(es); " + ", ".join(
            f"{l['layer']} {len(l['nps'])}x{'/'.join(sorted({n['type'] for n in l['nps']})) or 'HRC'}"
            for l in layers))
    return {k: {"layers": v[0], "passes": v[1]} for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write the measurements here")
    args = ap.parse_args()
    if akida.__version__ != "2.19.3":
        sys.exit(f"akida 2.19.3 is pinned (requirements-akida.txt); found {akida.__version__}")
    res = {"akida": akida.__version__, "weight_ranges": weight_ranges()}
    raw_sums()
    activations()
    res["mapping"] = mapping_sweeps()
    res["architectures"] = architectures()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1, sort_keys=True)
            f.write("\n")


if __name__ == "__main__":
    main()
