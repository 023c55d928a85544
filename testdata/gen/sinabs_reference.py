#!/usr/bin/env python3
"""SynSense sinabs reference for nmc's Speck cases (issue 15).

For every shipped case whose case.toml lists ``speck`` in ``targets`` (and expects no error), this
script

1. compiles the case with nmc (``nmc compile --target speck``, calibrated on the first
   ``CALIB_SAMPLES`` inputs, as ``tests/src/speck.rs`` compiles it) and reads the integer network
   back with ``nmc inspect ARTIFACT --format json`` (per core: shapes, kernel, stride, padding,
   thresholds, reset, the weights in samna's ``[f][c][kx][ky]`` order, biases, destinations);
2. rebuilds that network, integer for integer, as a sinabs model (``build_model``): per core a
   ``Conv2d`` with nmc's kernel (samna order transposed back to torch's), an ``IAFSqueeze`` with
   nmc's thresholds (``MultiSpike``, subtractive reset or reset to zero, ``min_v_mem`` = nmc's
   lower bound), a ``SumPool2d`` for each destination's pooling, and an ``sl.Merge`` where a core has two
   sources; dense layers are already full-size convolutions in nmc's artifact; nmc's DVS-layer
   pooling is a ``SumPool2d`` on the input, which sinabs moves into its ``DVSLayer``
   (``consolidate_dvs_pooling``), as it does for a user's model that pools its input first;
3. hands it to sinabs 3's ``DynapcnnNetwork(dvs_input=..., discretize=False)`` (the integers are
   nmc's, not discretised again), and records sinabs' layer -> core assignment
   (``make_config``: Edmonds-Karp over ``get_constraints()``), its ``memory_summary()`` and the
   samna configuration sinabs writes (dimensions, thresholds, destinations with their pooling, a
   hash of the weights) - the configuration object comes from a stand-in for samna (below);
   and, as a check of nmc's discretisation itself, converts the case's float ``model.onnx`` the
   way a sinabs user would (``float_model``, ``from_model``, ``DynapcnnNetwork(discretize=True)``,
   ``make_config``) and records that configuration too (``conversion``);
4. runs sinabs' own simulation (``DynapcnnNetwork.forward``, i.e. the ``DynapcnnLayer`` modules
   in sinabs' topological order, merges summed by ``sl.Merge``) for T timesteps on the same
   input events nmc's emulator sees: each dense input rate-encoded exactly as nmc does it
   (``nmc_ir::quantize`` then ``nmc_ir::RateEncoder``, reimplemented in ``encode``), and counts,
   per sample and step, the spikes of every layer's neurons (before pooling) and the output;
   and the same for the case's DVS event file (``events`` in case.toml), binned over its span
   into T steps as ``nmc run`` bins it (``bin_span``);

and writes into the case directory:

- ``sinabs_counts.npy``: int64, ``(samples, T, 1 + layers)``: column 0 the input events per step,
  then each layer's spikes per step, layers in the order of ``sinabs_reference.json``'s ``layers``;
- ``sinabs_outputs.npy``: int64, ``(samples, T, outputs)``: the output layer's spike counts per
  step (after its pooling);
- ``sinabs_reference.json``: provenance (versions, samples, T, calibration), the nmc network it
  was built from (a fingerprint per core), sinabs' mapping, memory and configuration of it, and
  the configuration of sinabs' own conversion of the float model (``conversion``).

samna 0.48.6 on PyPI is a placeholder that downloads the real package when imported, so it is
not importable offline; sinabs imports it at module level. ``install_samna_stand_in`` registers a
stand-in module tree before sinabs is imported: it provides the configuration object sinabs
fills (``SpeckConfiguration`` with a DVS layer and nine CNN layers of two destinations each) and
a ``validate_configuration`` that accepts everything, so samna's own validator is NOT run (the
JSON says so). Everything else - discretisation, memory formulas, mapping, the configuration
writer and the simulation - is sinabs' own Python code.

CI never runs this script: ``tests/src/sinabs_reference.rs`` reads the committed files. Run it
(under a minute) with the pinned packages of ``requirements-sinabs.txt``, after building nmc:

    cargo build --release
    python3.11 -m venv --system-site-packages /tmp/sinabs-venv   # system torch 2.15.0
    /tmp/sinabs-venv/bin/pip install -r testdata/gen/requirements-sinabs.txt
    PYTHONHASHSEED=0 /tmp/sinabs-venv/bin/python testdata/gen/sinabs_reference.py

It is deterministic: two runs give byte-identical files (sinabs sorts its layers from a set of
edges that holds the string 'input', so its order of sibling layers depends on PYTHONHASHSEED;
the script refuses to run without PYTHONHASHSEED=0).
"""

import argparse
import contextlib
import io
import importlib.abc
import importlib.machinery
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import tomllib
import types

import numpy as np

# The calibration the integration tests use (tests/src/common.rs, CALIB_SAMPLES).
CALIB_SAMPLES = 64
# At most this many samples per case (all of dvs_cnn's 200 test images).
MAX_SAMPLES = 200
# samna device whose configuration builder sinabs uses (make_config's default).
DEVICE = "speck2fdevkit"

ROOT = pathlib.Path(__file__).resolve().parents[2]


# --- samna stand-in ---------------------------------------------------------------------------


class _Xy:
    def __init__(self, x=0, y=0):
        self.x, self.y = x, y


class _Destination:
    def __init__(self):
        self.layer, self.enable, self.pooling = 0, False, 1


class _CnnLayer:
    def __init__(self):
        self.destinations = [_Destination(), _Destination()]
        self.dimensions = None
        self.weights, self.biases = [], []
        self.leak_enable = False
        self.return_to_zero = False
        self.threshold_high, self.threshold_low = 0, 0
        self.monitor_enable = False
        self.neurons_initial_value = []


class _DvsLayer:
    def __init__(self):
        self.destinations = [_Destination(), _Destination()]
        self.pooling = _Xy(1, 1)
        self.pass_sensor_events = True
        self.merge = False
        self.monitor_enable = False


class SpeckConfiguration:
    """What sinabs' config builder writes into (samna's SpeckConfiguration, docs/chips.md §2.5)."""

    def __init__(self):
        self.dvs_layer = _DvsLayer()
        self.cnn_layers = [_CnnLayer() for _ in range(9)]

    @property
    def DVSLayerConfig(self):  # noqa: N802 (samna's name)
        return _DvsLayer


class _Stub(types.ModuleType):
    """A samna module: known members are defined below, anything else is another stub."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        m = _Stub(f"{self.__name__}.{name}")
        setattr(self, name, m)
        return m

    def __call__(self, *args, **kwargs):
        return _Stub(f"{self.__name__}()")


class _SamnaFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in ("samna", "samnagui"):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        m = _Stub(spec.name)
        m.__path__ = []
        if spec.name.endswith(".configuration"):
            m.SpeckConfiguration = SpeckConfiguration
        if spec.name in ("samna.speck2e", "samna.speck2f"):
            m.validate_configuration = lambda config: (True, "")
        return m

    def exec_module(self, module):
        pass


def install_samna_stand_in():
    sys.meta_path.insert(0, _SamnaFinder())


# --- nmc --------------------------------------------------------------------------------------


def fnv1a64(values):
    """FNV-1a 64 of int32 values as little-endian bytes (tests/src/sinabs_reference.rs too)."""
    h = 0xCBF29CE484222325
    for b in np.asarray(values, dtype="<i4").tobytes():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def speck_cases(models):
    for d in sorted(p for p in models.iterdir() if (p / "case.toml").is_file()):
        case = tomllib.loads((d / "case.toml").read_text())
        if "speck" in case.get("targets", ["loihi2"]) and "expect_error" not in case:
            yield d


def nmc_network(nmc, case_dir, tmp, extra=()):
    """Compiles the case as the tests do; returns nmc's `inspect --format json` of the artifact."""
    x = np.load(case_dir / "inputs.npy").astype(np.float32)
    calib = tmp / f"{case_dir.name}.calib.npy"
    np.save(calib, x[:CALIB_SAMPLES])
    art = tmp / f"{case_dir.name}.speck"
    subprocess.run(
        [nmc, "compile", case_dir / "model.onnx", "--target", "speck", "--calibrate", calib,
         "-o", art, *extra], check=True, capture_output=True)
    out = subprocess.run([nmc, "inspect", art, "--format", "json"], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout)


def sources_of(net):
    """core -> list of sources (None = the network input), in the order nmc lists them."""
    src = {l["core"]: [] for l in net["layers"]}
    for c in net["dvs_destinations"]:
        src[c].append(None)
    for l in net["layers"]:
        for d in l["destinations"]:
            src[d["core"]].append(l["core"])
    return src


def topological(net, src):
    """Cores in source-before-consumer order (ascending core among the ready ones)."""
    order, placed = [], set()
    while len(order) < len(src):
        ready = [c for c in sorted(src) if c not in placed
                 and all(s is None or s in placed for s in src[c])]
        if not ready:
            raise ValueError("nmc's destinations form a cycle")
        placed.add(ready[0])
        order.append(ready[0])
    return order


def fingerprint(net):
    """What the reference was built from, per core (tests/src/sinabs_reference.rs checks it)."""
    keys = ["name", "core", "input_shape", "neuron_shape", "kernel_size", "stride", "padding",
            "threshold_high", "threshold_low", "return_to_zero"]
    out = []
    for l in net["layers"]:
        f = {k: l[k] for k in keys}
        f["destinations"] = l["destinations"]
        f["weights_fnv1a64"] = fnv1a64(l["weights"])
        f["biases"] = l["biases"]
        out.append(f)
    return out


# --- the sinabs model -------------------------------------------------------------------------


def build_model(net, src, order):
    """nmc's integer network as a torch module of sinabs layers (see the module docs)."""
    import sinabs.layers as sl
    import torch
    from sinabs.activation import MembraneReset, MembraneSubtract, MultiSpike
    from torch import nn

    by_core = {l["core"]: l for l in net["layers"]}
    out_core = net["output"]["core"]
    pool_to = {(l["core"], d["core"]): d["pooling"] for l in net["layers"]
               for d in l["destinations"]}

    class FromNmc(nn.Module):
        def __init__(self):
            super().__init__()
            self.order = order
            self.src = src
            self.out_core = out_core
            self.convs = nn.ModuleDict()
            self.spks = nn.ModuleDict()
            self.pools = nn.ModuleDict()
            self.merges = nn.ModuleDict()
            for core in order:
                l = by_core[core]
                c = l["input_shape"][0]
                f = l["neuron_shape"][0]
                k = l["kernel_size"]
                conv = nn.Conv2d(c, f, k, stride=tuple(l["stride"]), padding=tuple(l["padding"]),
                                 bias=bool(l["biases"]))
                # samna's [f][c][kx][ky] is torch's [f][c][ky][kx] transposed on axes (2, 3).
                w = np.asarray(l["weights"], dtype=np.float32).reshape(f, c, k, k)
                conv.weight.data = torch.from_numpy(w.transpose(0, 1, 3, 2).copy())
                if l["biases"]:
                    conv.bias.data = torch.tensor(l["biases"], dtype=torch.float32)
                self.convs[str(core)] = conv
                self.spks[str(core)] = sl.IAFSqueeze(
                    batch_size=1,
                    spike_threshold=float(l["threshold_high"]),
                    min_v_mem=float(l["threshold_low"]),
                    spike_fn=MultiSpike,
                    reset_fn=MembraneReset() if l["return_to_zero"] else MembraneSubtract(),
                )
                # One sum pooling per destination (sinabs 3's per-destination pooling).
                pools = {d["pooling"] for d in l["destinations"]}
                if core == out_core:
                    pools.add(net["output"]["pooling"])
                for p in sorted(pools):
                    if p > 1:
                        self.pools[f"{core}_{p}"] = sl.SumPool2d(p)
                if len(src[core]) > 1:
                    self.merges[str(core)] = sl.Merge()
            # The DVS layer's pooling, as a pooling of the input (sinabs takes it into its
            # DVSLayer); nmc's region and mirrors are not modelled (the cases use neither).
            dvs = net["dvs_layer"]
            if dvs["origin"] != {"x": 0, "y": 0} or any(dvs["mirror"].values()) or \
                    dvs["mirror_diagonal"]:
                raise ValueError("a DVS region or mirror: not modelled by this script")
            pool = (dvs["pooling"]["y"], dvs["pooling"]["x"])
            self.dvs_pool = sl.SumPool2d(pool) if pool != (1, 1) else None

        def pooled(self, outs, core, p):
            key = f"{core}_{p}"
            return self.pools[key](outs[core]) if key in self.pools else outs[core]

        def forward(self, x):
            if self.dvs_pool is not None:
                x = self.dvs_pool(x)
            outs = {}
            for core in self.order:
                ins = [x if s is None else self.pooled(outs, s, pool_to[(s, core)])
                       for s in self.src[core]]
                h = ins[0] if len(ins) == 1 else self.merges[str(core)](*ins)
                outs[core] = self.spks[str(core)](self.convs[str(core)](h))
            return self.pooled(outs, self.out_core, net["output"]["pooling"])

    return FromNmc()


def float_model(case_dir, x_max):
    """The case's float ONNX model as a torch module sinabs can convert (``from_model``).

    Supports what the shipped Speck cases use: Conv, Relu, ``ai.nmc`` IF with sinabs' defaults
    (threshold 1, subtractive reset, v_min -1: the ReLU that ``from_model`` turns into exactly
    that neuron), AveragePool (stride = window; on the input, sinabs moves it into the DVS
    layer), Flatten, Gemm (transB), MatMul by a constant (a Linear without bias) and Add of two
    maps (as ``sl.Merge``). The output layer gets a ReLU, which ``from_model`` turns into the spiking
    output ``add_spiking_output`` would add. The first convolution's weights are multiplied by
    ``x_max``, the input's full scale: one input event stands for it (nmc's rate encoding).
    """
    import onnx
    import sinabs.layers as sl
    import torch
    from onnx import numpy_helper
    from torch import nn

    m = onnx.load(case_dir / "model.onnx")
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    attrs = lambda n: {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}  # noqa: E731

    class FromOnnx(nn.Module):
        def __init__(self):
            super().__init__()
            self.steps = []  # (module name, input value names, output value name)
            first = True
            for i, n in enumerate(m.graph.node):
                a = attrs(n)
                name = f"n{i}_{n.op_type.lower()}"
                if n.op_type == "Conv":
                    w = torch.from_numpy(inits[n.input[1]].copy())
                    if a.get("group", 1) != 1 or a.get("dilations", [1, 1]) != [1, 1]:
                        raise ValueError("grouped or dilated convolution")
                    pads = a.get("pads", [0, 0, 0, 0])
                    if pads[0] != pads[2] or pads[1] != pads[3]:
                        raise ValueError("asymmetric pads")
                    conv = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]),
                                     stride=tuple(a.get("strides", [1, 1])),
                                     padding=(pads[0], pads[1]), bias=len(n.input) > 2)
                    conv.weight.data = w * (x_max if first else 1.0)
                    if len(n.input) > 2:
                        conv.bias.data = torch.from_numpy(inits[n.input[2]].copy())
                    first = False
                    mod, ins = conv, [n.input[0]]
                elif n.op_type == "Relu":
                    mod, ins = nn.ReLU(), [n.input[0]]
                elif n.op_type == "IF" and n.domain == "ai.nmc":
                    if (a.get("threshold", 1.0), a.get("v_min", -1.0)) != (1.0, -1.0) or \
                            a.get("reset", b"subtract") not in (b"subtract", "subtract"):
                        raise ValueError("an IF other than from_model's defaults")
                    mod, ins = nn.ReLU(), [n.input[0]]
                elif n.op_type == "AveragePool":
                    k = tuple(a["kernel_shape"])
                    if tuple(a.get("strides", k)) != k or any(a.get("pads", [0])):
                        raise ValueError("average pooling other than stride = window")
                    mod, ins = nn.AvgPool2d(k), [n.input[0]]
                elif n.op_type == "Flatten":
                    mod, ins = nn.Flatten(), [n.input[0]]
                elif n.op_type == "Gemm":
                    if a.get("transB", 0) != 1 or a.get("alpha", 1.0) != 1.0 or \
                            a.get("beta", 1.0) != 1.0:
                        raise ValueError("Gemm other than x @ W^T + b")
                    w = torch.from_numpy(inits[n.input[1]].copy())
                    lin = nn.Linear(w.shape[1], w.shape[0], bias=len(n.input) > 2)
                    lin.weight.data = w
                    if len(n.input) > 2:
                        lin.bias.data = torch.from_numpy(inits[n.input[2]].copy())
                    mod, ins = lin, [n.input[0]]
                elif n.op_type == "MatMul" and n.input[1] in inits:
                    w = torch.from_numpy(inits[n.input[1]].copy())
                    lin = nn.Linear(w.shape[0], w.shape[1], bias=False)
                    lin.weight.data = w.T.contiguous()
                    mod, ins = lin, [n.input[0]]
                elif n.op_type == "Add":
                    mod, ins = sl.Merge(), list(n.input)
                else:
                    raise ValueError(f"{n.op_type} is not supported by this converter")
                self.add_module(name, mod)
                self.steps.append((name, ins, n.output[0]))
            self.out = m.graph.output[0].name
            self.add_module("spike_output", nn.ReLU())

        def forward(self, x):
            vals = {m.graph.input[0].name: x}
            for name, ins, out in self.steps:
                vals[out] = getattr(self, name)(*[vals[i] for i in ins])
            return self.spike_output(vals[self.out])

    return FromOnnx()


def sinabs_conversion(case_dir, shape, dvs_input, x_max):
    """sinabs' own conversion of the float model: ``from_model`` then
    ``DynapcnnNetwork(discretize=True)`` and ``make_config``; returns its configuration per core
    (as ``config_of``) and the layer -> core map."""
    from sinabs.backend.dynapcnn import DynapcnnNetwork
    from sinabs.from_torch import from_model

    ann = float_model(case_dir, x_max)
    snn = from_model(ann, input_shape=shape, batch_size=1)
    dn = DynapcnnNetwork(snn, input_shape=shape, batch_size=1, dvs_input=dvs_input,
                         discretize=True)
    with contextlib.redirect_stdout(io.StringIO()):
        cfg = dn.make_config(device=DEVICE)
    cores, dvs = config_of(cfg, dn.layer2core_map.values())
    return {"cnn_layers": cores, "dvs_layer": dvs}


def encode(x, scale, levels, timesteps):
    """nmc's rate encoding of one dense sample: `(timesteps, *x.shape)` int64 event counts.

    nmc_ir::quantize: round half to even of x / scale in float32, clamped to [0, levels];
    nmc_ir::RateEncoder: an accumulator per element starting at levels // 2 adds the level each
    step and sends one event whenever it reaches `levels`.
    """
    q = np.round(x.astype(np.float32) / np.float32(scale))
    q = np.nan_to_num(q, nan=0.0)
    q = np.clip(q, 0, levels).astype(np.int64)
    acc = np.full(q.shape, levels // 2, dtype=np.int64)
    out = np.zeros((timesteps, *q.shape), dtype=np.int64)
    for t in range(timesteps):
        acc += q
        fire = acc >= levels
        acc[fire] -= levels
        out[t] = fire
    return out


def bin_span(ev, shape, timesteps):
    """nmc's default binning of an event stream (``nmc_speck::events::bin``, ``Steps::Span``):
    an event at ``t`` is in step ``(t - t_first) * T // (t_last - t_first + 1)``, at element
    ``(p, y, x)``; returns ``(T, *shape)`` int64 counts in sensor pixels: the DVS layer's pooling
    is the model's (``build_model``). (Only for a region at the sensor's origin without mirrors,
    both polarities as channels.)"""
    t = ev["t"].astype(np.int64)
    t0, t1 = int(t.min()), int(t.max())
    step = (t - t0) * timesteps // (t1 - t0 + 1)
    out = np.zeros((timesteps, *shape), dtype=np.int64)
    np.add.at(out, (step, ev["p"].astype(np.int64), ev["y"].astype(np.int64),
                    ev["x"].astype(np.int64)), 1)
    return out


def config_of(cfg, used_cores):
    """The samna configuration sinabs wrote, per used core (weights as a hash)."""
    cores = []
    for core in sorted(used_cores):
        c = cfg.cnn_layers[core]
        d = c.dimensions
        cores.append({
            "core": core,
            "input_shape": [d["input_shape"]["feature_count"], d["input_shape"]["size"]["y"],
                            d["input_shape"]["size"]["x"]],
            "output_shape": [d["output_shape"]["feature_count"],
                             d["output_shape"]["size"]["y"], d["output_shape"]["size"]["x"]],
            "kernel_size": int(d["kernel_size"]),
            "stride": [int(d["stride"]["y"]), int(d["stride"]["x"])],
            "padding": [int(d["padding"]["y"]), int(d["padding"]["x"])],
            "weights_fnv1a64": fnv1a64(np.asarray(c.weights).reshape(-1)),
            "biases": [int(b) for b in c.biases],
            "leak_enable": bool(c.leak_enable),
            "return_to_zero": bool(c.return_to_zero),
            "threshold_high": int(c.threshold_high),
            "threshold_low": int(c.threshold_low),
            "monitor_enable": bool(c.monitor_enable),
            "destinations": [{"layer": int(x.layer), "pooling": int(x.pooling)}
                             for x in c.destinations if x.enable],
        })
    dvs = cfg.dvs_layer
    return cores, {
        "destinations": [int(x.layer) for x in dvs.destinations if x.enable],
        "pooling": {"x": int(dvs.pooling["x"] if isinstance(dvs.pooling, dict) else dvs.pooling.x),
                    "y": int(dvs.pooling["y"] if isinstance(dvs.pooling, dict) else dvs.pooling.y)},
        "merge": bool(dvs.merge),
        "pass_sensor_events": bool(dvs.pass_sensor_events),
    }


def reference(nmc, case_dir, tmp, max_samples=MAX_SAMPLES, extra=()):
    import sinabs
    import torch
    from sinabs.backend.dynapcnn import DynapcnnNetwork

    net = nmc_network(nmc, case_dir, tmp, extra)
    src = sources_of(net)
    order = topological(net, src)
    model = build_model(net, src, order)
    shape = tuple(net["input"]["map"])
    dvs_input = bool(net["dvs_input"])
    dn = DynapcnnNetwork(model, input_shape=shape, batch_size=1, dvs_input=dvs_input,
                         discretize=False)
    with contextlib.redirect_stdout(io.StringIO()):  # "Network is valid"
        cfg = dn.make_config(device=DEVICE)
    l2c = {int(k): int(v) for k, v in dn.layer2core_map.items()}
    mem = dn.memory_summary()
    layers = dn.dynapcnn_layers

    # Which sinabs layer is which nmc core: the same weights (each layer's are distinct).
    def which(layer):
        hits = [c for c in order
                if torch.equal(layer.conv.weight.data, model.convs[str(c)].weight.data)]
        if len(hits) != 1:
            raise ValueError(f"cannot tell which nmc layer a sinabs layer is ({hits})")
        return hits[0]

    idx = sorted(layers)
    nmc_core = {i: which(layers[i]) for i in idx}
    by_core = {l["core"]: l for l in net["layers"]}
    dest_map = dn.layer_destination_map
    ref_layers = []
    for i in idx:
        ref_layers.append({
            "sinabs_index": i,
            "nmc_name": by_core[nmc_core[i]]["name"],
            "nmc_core": nmc_core[i],
            "sinabs_core": l2c[i],
            "memory": {k: int(mem[k][i]) for k in ("kernel", "neuron", "bias")},
            "destinations": [int(d) for d in dest_map[i]],
            "pooling": [int(sinabs.utils.collapse_pair(p)) for p in layers[i].pool],
        })
    cores, dvs_cfg = config_of(cfg, l2c.values())
    # sinabs' own conversion of the float model, from the same full scale as nmc's encoder.
    x_cal = np.load(case_dir / "inputs.npy").astype(np.float32)[:CALIB_SAMPLES]
    x_max = float(x_cal.max()) if x_cal.max() > 0 else 1.0
    conversion = sinabs_conversion(case_dir, shape, dvs_input, x_max)

    # Simulation: one sample at a time from the reset state, per-layer spikes by forward hooks.
    x_all = np.load(case_dir / "inputs.npy").astype(np.float32)[:max_samples]
    t_steps = int(net["timesteps"])
    scale, levels = net["input"]["scale"], int(net["input"]["levels"])
    record = {}

    def hook(i):
        def f(_module, _inp, out):
            record[i] = out.detach().sum(dim=(1, 2, 3)).to(torch.int64).numpy()
        return f

    for i in idx:
        layers[i].spk.register_forward_hook(hook(i))
    counts = np.zeros((len(x_all), t_steps, 1 + len(idx)), dtype=np.int64)
    outputs = []
    with torch.no_grad():
        for s, x in enumerate(x_all):
            ev = encode(x.reshape(shape), scale, levels, t_steps)
            # (DynapcnnNetwork.reset_states reads a `sequence` attribute that sinabs 3.1.3's
            # graph-based network no longer has, so each layer's state is reset directly.)
            for i in idx:
                layers[i].spk.reset_states()
            record.clear()
            y = dn(torch.from_numpy(ev.astype(np.float32)))
            counts[s, :, 0] = ev.reshape(t_steps, -1).sum(1)
            for j, i in enumerate(idx):
                counts[s, :, 1 + j] = record[i]
            yv = y.detach().numpy().reshape(t_steps, -1)
            if not np.array_equal(yv, np.round(yv)):
                raise ValueError("sinabs gave non-integer spike counts")
            outputs.append(yv.astype(np.int64))
    outputs = np.stack(outputs)

    # The case's DVS event file (case.toml `events`), binned as `nmc run` bins it by default.
    toml = case_dir / "case.toml"
    case = tomllib.loads(toml.read_text()) if toml.is_file() else {}
    events = None
    if "events" in case:
        ev = bin_span(np.load(case_dir / case["events"]), shape, t_steps)
        for i in idx:
            layers[i].spk.reset_states()
        record.clear()
        with torch.no_grad():
            y = dn(torch.from_numpy(ev.astype(np.float32)))
        ev_counts = np.zeros((t_steps, 1 + len(idx)), dtype=np.int64)
        ev_counts[:, 0] = ev.reshape(t_steps, -1).sum(1)
        for j, i in enumerate(idx):
            ev_counts[:, 1 + j] = record[i]
        events = {"file": case["events"], "binning": "span", "counts": ev_counts.tolist(),
                  "outputs": y.detach().numpy().reshape(t_steps, -1).astype(np.int64).tolist()}

    import nir
    import nirtorch
    ref = {
        "sinabs": sinabs.__version__,
        "torch": torch.__version__.split("+")[0],
        "numpy": np.__version__,
        "nir": nir.__version__ if hasattr(nir, "__version__") else "1.0.4",
        "nirtorch": nirtorch.__version__ if hasattr(nirtorch, "__version__") else "2.0.2",
        "samna": "stand-in (samna 0.48.6 cannot be imported offline): validate_configuration not run",
        "device": DEVICE,
        "calibrate_samples": CALIB_SAMPLES,
        "samples": len(x_all),
        "timesteps": t_steps,
        "dvs_input": dvs_input,
        "network": fingerprint(net),
        "layers": ref_layers,
        "config": {"dvs_layer": dvs_cfg, "cnn_layers": cores},
        # From model.onnx by sinabs itself (from_model, DynapcnnNetwork(discretize=True)).
        "conversion": {"input_full_scale": x_max, **conversion},
        "columns": ["input events"] + [l["nmc_name"] for l in ref_layers],
        # The events file: per step the same columns, and the output counts.
        "events": events,
        "output_core": net["output"]["core"],
    }
    return ref, counts, outputs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nmc", default=str(ROOT / "target" / "release" / "nmc"),
                    help="the nmc binary (default: target/release/nmc)")
    ap.add_argument("--models", default=str(ROOT / "testdata" / "models"),
                    help="the cases (default: testdata/models)")
    ap.add_argument("--only", help="just this case")
    args = ap.parse_args()
    if os.environ.get("PYTHONHASHSEED") != "0":
        sys.exit("run with PYTHONHASHSEED=0: sinabs' layer order comes from a set of edges")
    install_samna_stand_in()
    import torch
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        for d in speck_cases(pathlib.Path(args.models)):
            if args.only and d.name != args.only:
                continue
            ref, counts, outputs = reference(args.nmc, d, pathlib.Path(tmp))
            (d / "sinabs_reference.json").write_text(json.dumps(ref, indent=1) + "\n")
            np.save(d / "sinabs_counts.npy", counts)
            np.save(d / "sinabs_outputs.npy", outputs)
            cores = {l["nmc_name"]: l["sinabs_core"] for l in ref["layers"]}
            print(f"{d.name}: {ref['samples']} samples x T={ref['timesteps']}, "
                  f"{int(counts[:, :, 1:].sum())} layer spikes, cores {cores}")


if __name__ == "__main__":
    main()
