#!/usr/bin/env python3
"""BrainChip akida reference for nmc's AKD1000 cases (issue 15).

For every shipped case whose case.toml lists ``akd1000`` in ``targets``, this script

1. compiles the case with nmc (``nmc compile --target akd1000``, calibrated on the first
   ``CALIB_SAMPLES`` test images, as ``tests/src/akd1000.rs`` compiles it) and reads the integer
   network back with ``nmc inspect ARTIFACT --format json``;
2. rebuilds that network, integer for integer, as an ``akida.Model`` (the conversion is described
   in ``build_model``);
3. runs ``Model.predict`` (akida's software backend) on the first ``SAMPLES`` test images,
   given as the chip's uint8 input codes;
4. maps a second copy with ``MapMode.Minimal`` on the virtual ``akida.AKD1000()``;

and writes into the case directory:

- ``akida_inputs.npy``: uint8, ``(SAMPLES, *input shape)`` in nmc's layout (``[c, h, w]`` or
  ``[n]``): the input codes akida was given (nmc's input grid: ``round_half_even(x / scale)``
  in float32, clamped to ``[0, 2^bits - 1]``);
- ``akida_outputs.npy``: int64, ``(SAMPLES, *output shape)`` in nmc's layout: akida's outputs;
- ``akida_reference.json``: provenance (akida and numpy versions, sample counts), a fingerprint of
  the nmc network the reference was built from (per layer: kind, shapes, bits, thresholds,
  steps, FNV-1a 64 of the weights), and akida's mapping (sequences and their passes, per layer
  the NPs with their type).

CI never runs this script: ``tests/src/akida_reference.rs`` reads the committed files. Run it (a
few seconds) with the pinned packages of ``requirements-akida.txt``, after building nmc:

    cargo build --release
    python3.11 -m venv /tmp/akvenv
    /tmp/akvenv/bin/pip install -r testdata/gen/requirements-akida.txt
    /tmp/akvenv/bin/python testdata/gen/akida_reference.py --nmc target/release/nmc

It is deterministic: two runs give byte-identical files.
"""

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import tomllib

import akida
import numpy as np

# The calibration the integration tests use (tests/src/common.rs, CALIB_SAMPLES).
CALIB_SAMPLES = 64
# Samples run through akida per case.
SAMPLES = 48

ROOT = pathlib.Path(__file__).resolve().parents[2]


def fnv1a64(values):
    """FNV-1a 64 of int32 values as little-endian bytes (tests/src/akd1000.rs computes the same)."""
    h = 0xCBF29CE484222325
    for b in np.asarray(values, dtype="<i4").tobytes():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def akd_cases(models):
    for d in sorted(p for p in models.iterdir() if (p / "case.toml").is_file()):
        case = tomllib.loads((d / "case.toml").read_text())
        if "akd1000" in case.get("targets", ["loihi2"]) and "expect_error" not in case:
            yield d


def nmc_network(nmc, case_dir, tmp, extra=()):
    """Compiles the case as the tests do; returns nmc's `inspect --format json` of the artifact."""
    x = np.load(case_dir / "inputs.npy")
    calib = tmp / f"{case_dir.name}.calib.npy"
    np.save(calib, x[:CALIB_SAMPLES])
    art = tmp / f"{case_dir.name}.akd1000"
    subprocess.run(
        [nmc, "compile", case_dir / "model.onnx", "--target", "akd1000",
         "--calibrate", calib, "-o", art, *extra],
        check=True, capture_output=True)
    out = subprocess.run([nmc, "inspect", art, "--format", "json"],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def input_codes(x, inp):
    """nmc's input grid (nmc_ir::quantize): round half to even of x / scale in float32, clamped."""
    scale = np.float32(inp["scale"])
    q = np.round(x.astype(np.float32) / scale)
    return np.clip(q, 0, 2 ** inp["bits"] - 1).astype(np.uint8)


def same_pads(n, k, s):
    """TensorFlow's Same padding (docs/chips.md §3.5): (before, after)."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def padding_of(layer, h, w):
    """akida's Padding for nmc's explicit [top, left, bottom, right] pads."""
    pads = layer["pads"]
    if not any(pads):
        return akida.Padding.Valid
    (kh, kw), (sh, sw) = layer["kernel"], layer["strides"]
    t, b = same_pads(h, kh, sh)
    l, r = same_pads(w, kw, sw)
    if pads != [t, l, b, r]:
        sys.exit(f"{layer['name']}: pads {pads} are neither Valid nor Same")
    return akida.Padding.Same


def square(layer, key):
    v = layer[key]
    # akida's (X, Y) order of sizes and strides is not established for non-square values;
    # every shipped case is square.
    if len(v) != 2 or v[0] != v[1]:
        sys.exit(f"{layer['name']}: non-square {key} {v} (orientation not established)")
    return (v[0], v[1])


def build_model(net):
    """The akida.Model of nmc's integer network (the artifact's layers, in order).

    Conversion, per nmc layer (backends/akd1000/src/artifact.rs gives nmc's conventions):
    - the input: an ``InputConv2D`` first layer takes the 8-bit image itself
      (``InputConvolutional(input_shape=(H, W, C))``, H and W including any host padding, which
      then runs Valid); any other first layer reads an ``InputData`` of ``input_bits`` bits and
      shape (H, W, C), or (1, 1, N) for a vector;
    - ``InputConv2D`` -> ``InputConvolutional``, ``Conv2D`` -> ``Convolutional``: kernel, stride,
      Same (TensorFlow's, checked against nmc's explicit pads) or Valid, max pooling
      (``PoolType.Max`` with nmc's size and stride) or global average pooling
      (``PoolType.Average``, akida's default size is the whole map); weights as akida's
      ``(kh, kw, c_in, c_out)``. nmc's artifact (format 5) stores each kernel in akida's
      orientation: flipped for ``Convolutional`` (a true convolution), as given for
      ``InputConvolutional`` (a cross-correlation, docs/chips.md §7); both are taken as is;
    - ``SeparableConv2D`` -> ``SeparableConvolutional`` (kernel, stride, Same, pooling as above):
      ``weights`` is nmc's depthwise kernel ``dw_weights`` (``[c][kh][kw]``, already flipped:
      akida's separable layer is a true convolution, docs/chips.md §3.6) as ``(kh, kw, c, 1)``,
      and ``weights_pw`` nmc's pointwise ``weights`` (``[co][c]``) as ``(1, 1, c, co)``;
    - ``Dense`` -> ``FullyConnected``: weights ``(1, 1, N, units)``; nmc's columns are already in
      akida's column-major flatten order ``h + H*w + H*W*c`` of a spatial input (docs/chips.md §6);
    - ``threshold`` (int32) is nmc's threshold; ``act_bits`` and ``weights_bits`` are nmc's;
      ``act_step`` (float32) is nmc's integer step divided by 2^(4 - act_bits) (akida stores it so,
      docs/chips.md §7; exact for nmc's integer steps at 4 bits). A layer without activation
      (nmc's act_bits 0, the output layer) has ``activation=False`` and act_step 1, so that
      ``predict`` returns the raw ``potential - threshold`` that nmc outputs.
    """
    layers = net["layers"]
    inp = net["inputs"][0]
    model = akida.Model()
    first = layers[0]
    if first["type"] != "InputConv2D":
        shape = inp["shape"]
        hwc = (1, 1, shape[0]) if len(shape) == 1 else (shape[1], shape[2], shape[0])
        model.add(akida.InputData(input_shape=hwc, input_bits=inp["bits"], name="input"))
    for i, l in enumerate(layers):
        src = l["source"]
        want = {"kind": "input", "index": 0} if i == 0 else {"kind": "layer", "index": i - 1}
        if src != want:
            sys.exit(f"{l['name']}: not a chain (reads {src}); the script handles chains only")
        act = l["act_bits"] > 0
        common = dict(name=l["name"], weights_bits=l["weight_bits"], activation=act)
        if act:
            common["act_bits"] = l["act_bits"]
        cout = l["pre_shape"][0]
        if l["type"] in ("InputConv2D", "Conv2D", "SeparableConv2D"):
            c, h, w = l["in_shape"]
            kw = dict(common, filters=cout, kernel_size=square(l, "kernel"),
                      kernel_stride=square(l, "strides"), padding=padding_of(l, h, w))
            if l["pool"] == "max":
                kw.update(pool_type=akida.PoolType.Max, pool_size=square(l, "pool_size"),
                          pool_stride=square(l, "pool_stride"))
            elif l["pool"] == "global_avg":
                kw.update(pool_type=akida.PoolType.Average)
            if l["type"] == "InputConv2D":
                layer = akida.InputConvolutional(input_shape=(h, w, c), **kw)
            elif l["type"] == "SeparableConv2D":
                layer = akida.SeparableConvolutional(**kw)
            else:
                layer = akida.Convolutional(**kw)
        elif l["type"] == "Dense":
            layer = akida.FullyConnected(units=cout, **common)
        else:
            sys.exit(f"{l['name']}: layer type {l['type']} has no akida counterpart here")
        model.add(layer)
        w = np.asarray(l["weights"], dtype=np.int64)
        if l["type"] == "Dense":
            n = int(np.prod(l["in_shape"]))
            kernel = w.reshape(cout, n).T.reshape(1, 1, n, cout)
        elif l["type"] == "SeparableConv2D":
            kh, kwd = l["kernel"]
            c = l["in_shape"][0]
            dw = np.asarray(l["dw_weights"], dtype=np.int64).reshape(c, kh, kwd)  # flipped
            pw = w.reshape(cout, c)
            kernel = np.ascontiguousarray(pw.T.reshape(1, 1, c, cout))
            model.layers[-1].set_variable(
                "weights", np.ascontiguousarray(dw.transpose(1, 2, 0)[..., None]).astype(np.int8))
        else:
            kh, kwd = l["kernel"]
            k = w.reshape(cout, l["in_shape"][0], kh, kwd)  # [o][c][y][x], akida's orientation
            kernel = k.transpose(2, 3, 1, 0)
        layer = model.layers[-1]
        # A SeparableConvolutional's depthwise kernel is its "weights", the pointwise "weights_pw".
        name = "weights_pw" if l["type"] == "SeparableConv2D" else "weights"
        layer.set_variable(name, np.ascontiguousarray(kernel).astype(np.int8))
        layer.set_variable("threshold", np.asarray(l["threshold"], dtype=np.int32))
        if act:
            step = np.asarray(l["act_step"], dtype=np.float64) / 2 ** (4 - l["act_bits"])
        else:
            step = np.ones(cout)
        layer.set_variable("act_step", step.astype(np.float32))
    return model


def to_akida_input(codes, inp):
    """nmc's [c, h, w] / [n] samples -> akida's (N, H, W, C) uint8, host padding added."""
    if codes.ndim == 2:
        return codes.reshape(codes.shape[0], 1, 1, codes.shape[1])
    x = codes.transpose(0, 2, 3, 1)
    if inp["host_pads"]:
        t, l, b, r = inp["host_pads"]
        x = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
    return np.ascontiguousarray(x)


def from_akida_output(y, shape):
    """akida's (N, H, W, C) output -> nmc's layout (shape [n] or [c, h, w])."""
    if len(shape) == 1:
        return y.reshape(y.shape[0], -1)
    return y.transpose(0, 3, 1, 2)


def np_type(t):
    return str(t).split(".")[-1]


def mapping_of(model):
    """akida's mapping: sequences with their passes, and per layer the NPs."""
    seqs = [{"name": s.name, "backend": str(s.backend).split(".")[-1],
             "passes": [[l.name for l in p.layers] for p in s.passes]}
            for s in model.sequences]
    layers = []
    for l in model.layers:
        if l.parameters.layer_type == akida.LayerType.InputData:
            continue
        nps = []
        if l.mapping is not None:
            for n in l.mapping.nps:
                i = n.ident
                nps.append({"col": i.col, "row": i.row, "id": i.id, "type": np_type(n.type),
                            "filters": n.filters})
        layers.append({"name": l.name, "akida_type": np_type(l.parameters.layer_type),
                       "nps": nps})
    return {"sequences": seqs, "layers": layers}


def fingerprint(net):
    return [{"name": l["name"], "type": l["type"], "in_shape": l["in_shape"],
             "shape": l["shape"], "input_bits": l["input_bits"],
             "weight_bits": l["weight_bits"], "act_bits": l["act_bits"],
             "threshold": l["threshold"], "act_step": l["act_step"],
             "weights_fnv1a64": fnv1a64(l["weights"]),
             **({"dw_weights_fnv1a64": fnv1a64(l["dw_weights"])} if "dw_weights" in l else {})}
            for l in net["layers"]]


def reference(nmc, case_dir, tmp, out_dir, extra):
    net = nmc_network(nmc, case_dir, tmp, extra)
    if len(net["inputs"]) != 1 or len(net["outputs"]) != 1:
        sys.exit(f"{case_dir.name}: one input and one output expected")
    inp, out = net["inputs"][0], net["outputs"][0]
    if out["layer"] != len(net["layers"]) - 1:
        sys.exit(f"{case_dir.name}: the output is not the last layer")
    x = np.load(case_dir / "inputs.npy")[:SAMPLES]
    codes = input_codes(x.reshape(x.shape[0], *inp["shape"]), inp)

    model = build_model(net)
    y = model.predict(to_akida_input(codes, inp))
    y = from_akida_output(np.asarray(y), out["shape"])
    if not np.all(np.isfinite(y)) or not np.array_equal(y, np.round(y)):
        sys.exit(f"{case_dir.name}: akida's outputs are not integers")
    outputs = np.ascontiguousarray(y.astype(np.int64))

    mapped = build_model(net)
    mapped.map(akida.AKD1000(), hw_only=False, mode=akida.MapMode.Minimal)
    ref = {
        "generator": "testdata/gen/akida_reference.py",
        "akida": akida.__version__,
        "numpy": np.__version__,
        "calibrate_samples": CALIB_SAMPLES,
        "samples": int(outputs.shape[0]),
        "map_mode": "Minimal",
        "device": "AKD1000",
        "network": fingerprint(net),
        "mapping": mapping_of(mapped),
    }
    if extra:
        ref["nmc_compile_args"] = list(extra)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / "akida_inputs.npy", np.ascontiguousarray(codes))
    np.save(out_dir / "akida_outputs.npy", outputs)
    (out_dir / "akida_reference.json").write_text(json.dumps(ref, indent=1, sort_keys=True) + "\n")
    per = ", ".join(f"{l['name']} {len(l['nps'])}x{'/'.join(sorted({n['type'] for n in l['nps']}))}"
                    for l in ref["mapping"]["layers"])
    print(f"{case_dir.name}: {outputs.shape[0]} samples; {per}; "
          f"{len(ref['mapping']['sequences'])} sequence(s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nmc", default=str(ROOT / "target" / "release" / "nmc"),
                    help="the nmc binary (default: target/release/nmc)")
    ap.add_argument("--models", default=str(ROOT / "testdata" / "models"))
    ap.add_argument("--only", action="append", help="case name (repeatable)")
    ap.add_argument("--out", help="write into OUT/<case>/ instead of the case directories "
                    "(for experiments; the tests read the case directories)")
    ap.add_argument("--compile-arg", action="append", default=[],
                    help="extra nmc compile argument (repeatable; experiments only)")
    args = ap.parse_args()
    if akida.__version__ != "2.19.3":
        sys.exit(f"akida 2.19.3 is pinned (requirements-akida.txt); found {akida.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        for d in akd_cases(pathlib.Path(args.models)):
            if args.only and d.name not in args.only:
                continue
            out = pathlib.Path(args.out) / d.name if args.out else d
            reference(args.nmc, d, pathlib.Path(tmp), out, args.compile_arg)


if __name__ == "__main__":
    main()
