#!/usr/bin/env python3
"""Vendor reference data for nmc's Loihi 2 emulator: lava-dl SLAYER CUBA
networks exported to netx HDF5 and run in Lava's bit-accurate CPU simulator.

Run (from anywhere) with the venv described in requirements-lava.txt:

    nice -n 10 /work/venvs/lava/bin/python testdata/gen/make_snn_models.py

Writes testdata/snn/netx_dense/ and testdata/snn/netx_conv/. Seeded, CPU
only, deterministic on one machine. See each case's README.md for the data
layout and the timing convention.
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lava_py311  # noqa: E402,F401  (must precede every lava import)

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import lava.lib.dl.slayer as slayer  # noqa: E402
import lava.lib.dl.netx as netx  # noqa: E402
from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: E402
from lava.proc.io.sink import RingBuffer as SinkRing  # noqa: E402
from lava.proc.io.source import RingBuffer as SourceRing  # noqa: E402
from lava.proc.monitor.process import Monitor  # noqa: E402

torch.set_num_threads(1)

OUT_ROOT = os.path.normpath(os.path.join(HERE, "..", "snn"))
T = 24
N_TEST = 40
N_HID_CONV = 20
SEED = 7
NEURON = {
    "threshold": 1.25,
    "current_decay": 0.25,
    "voltage_decay": 0.03,
    "tau_grad": 0.03,
    "scale_grad": 3,
    "requires_grad": False,
}


def digits_spikes():
    """load_digits rate-coded to Bernoulli spikes. Returns (spikes [N, T, 64]
    uint8, labels int64)."""
    d = load_digits()
    x = d.data.astype(np.float64) / 16.0  # [1797, 64] in [0, 1]
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(SEED)
    perm = rng.permutation(len(y))
    x, y = x[perm], y[perm]
    s = (rng.random((len(y), T, 64)) < x[:, None, :]).astype(np.uint8)
    return s, y


class DenseNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList([
            slayer.block.cuba.Dense(NEURON, 64, 48, weight_scale=2,
                                    weight_norm=False, delay=False),
            slayer.block.cuba.Dense(NEURON, 48, 10, weight_scale=2,
                                    weight_norm=False, delay=False),
        ])

    def forward(self, x):  # x: [N, 64, T]
        for b in self.blocks:
            x = b(x)
        return x


class ConvNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList([
            slayer.block.cuba.Conv(NEURON, 1, 4, 3, padding=1, weight_scale=2,
                                   weight_norm=False, delay=False),
            slayer.block.cuba.Flatten(),
            slayer.block.cuba.Dense(NEURON, 256, 10, weight_scale=2,
                                    weight_norm=False, delay=False),
        ])

    def forward(self, x):  # x: [N, 1, 8, 8, T]
        for b in self.blocks:
            x = b(x)
        return x


def to_slayer(spk, conv):
    """[N, T, 64] uint8 -> slayer layout float: NCT or NCHWT."""
    x = torch.tensor(spk, dtype=torch.float32).permute(0, 2, 1)  # N,64,T
    if conv:
        x = x.reshape(x.shape[0], 1, 8, 8, x.shape[-1])  # C,H,W row-major
    return x


def train(net, spk, y, conv, epochs, log):
    torch.manual_seed(SEED)
    opt = torch.optim.Adam(net.parameters(), lr=0.003)
    loss_fn = slayer.loss.SpikeRate(true_rate=0.3, false_rate=0.03,
                                    reduction="sum")
    g = torch.Generator().manual_seed(SEED)
    n = len(y)
    for ep in range(epochs):
        perm = torch.randperm(n, generator=g).numpy()
        tot, correct, t0 = 0.0, 0, time.time()
        for i in range(0, n, 32):
            idx = perm[i:i + 32]
            x = to_slayer(spk[idx], conv)
            lab = torch.tensor(y[idx])
            out = net(x)
            loss = loss_fn(out, lab)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item()
            correct += (slayer.classifier.Rate.predict(out) == lab).sum().item()
        log(f"  epoch {ep}: loss {tot / n:.4f} train acc {correct / n:.3f} "
            f"({time.time() - t0:.1f}s)")


def export(net, path, input_shape_chw=None):
    """Export as the lava-dl tutorials do: one group per block under 'layer'.
    For the conv case an extra leading 'input' group carrying only the input
    shape (C, H, W; netx reverses it to x, y, f) makes the file
    self-describing."""
    with h5py.File(path, "w") as h:
        layer = h.create_group("layer")
        off = 0
        if input_shape_chw is not None:
            g = layer.create_group("0")
            g.create_dataset("type", (1,), "S10", [b"input"])
            g.create_dataset("shape", data=np.array(input_shape_chw))
            off = 1
        for i, b in enumerate(net.blocks):
            b.export_hdf5(layer.create_group(f"{i + off}"))


def read_layers(path):
    out = []
    with h5py.File(path, "r") as h:
        for k in sorted(h["layer"].keys(), key=int):
            g = h["layer"][k]
            e = {"index": int(k),
                 "type": g["type"][0].decode("ascii"),
                 "shape": [int(v) for v in np.atleast_1d(g["shape"][()])]}
            if "weight" in g:
                e["weight_shape"] = list(g["weight"].shape)
                e["weight_dtype"] = str(g["weight"].dtype)
            if "neuron" in g:
                e["neuron"] = {}
                for nk in g["neuron"].keys():
                    v = g["neuron"][nk][()]
                    if isinstance(v, bytes):
                        v = v.decode("ascii")
                    elif isinstance(v, (np.bool_, bool)):
                        v = bool(v)
                    else:
                        v = v.item() if hasattr(v, "item") else v
                    e["neuron"][nk] = v
            for extra in ("stride", "padding", "dilation", "groups",
                          "inChannels", "outChannels", "inFeatures",
                          "outFeatures", "kernelSize"):
                if extra in g:
                    e[extra] = np.atleast_1d(g[extra][()]).tolist()
            out.append(e)
    return out


def lava_run(model_path, inputs_flat_lava, K, n_hidden_shape, n_out):
    """Run every sample on a freshly built netx network (state starts at 0).

    inputs_flat_lava: [N, T, *lava_in_shape] uint8 in Lava's own layout.
    Returns out [N, K, n_out], hid_s [N, K, n_hid], hid_v [N, K, n_hid],
    us_per_step list (one per sample), build/compile seconds list."""
    N = inputs_flat_lava.shape[0]
    Tin = inputs_flat_lava.shape[1]
    outs, hs, hv, us, comp = [], [], [], [], []
    for n in range(N):
        t0 = time.perf_counter()
        net = netx.hdf5.Network(net_config=model_path)
        in_shape = net.inp.shape
        data = np.zeros(in_shape + (K,), dtype=np.int32)
        x = inputs_flat_lava[n]  # [T, *in_shape]
        data[..., :Tin] = np.moveaxis(x, 0, -1)
        src = SourceRing(data=data)
        sink = SinkRing(shape=net.out.shape, buffer=K)
        src.s_out.connect(net.inp)
        net.out.connect(sink.a_in)
        mon_s = Monitor()
        mon_v = Monitor()
        l0 = net.layers[0]
        mon_s.probe(l0.neuron.s_out, K)
        mon_v.probe(l0.neuron.v, K)
        cfg = Loihi2SimCfg(select_tag="fixed_pt")
        # compile + start the runtime with a 0-step-free warm path: Lava
        # compiles inside the first run() call, so time the first run of 1
        # step separately and the remaining K-1 steps on their own.
        net.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
        t1 = time.perf_counter()
        net.run(condition=RunSteps(num_steps=K - 1), run_cfg=cfg)
        t2 = time.perf_counter()
        o = sink.data.get()  # [*out_shape, K]
        s = mon_s.get_data()[l0.neuron.name][l0.neuron.s_out.name]  # [K, ...]
        v = mon_v.get_data()[l0.neuron.name][l0.neuron.v.name]
        net.stop()
        outs.append(np.moveaxis(o, -1, 0).reshape(K, -1))
        hs.append(np.asarray(s).reshape(K, *n_hidden_shape))
        hv.append(np.asarray(v).reshape(K, *n_hidden_shape))
        us.append((t2 - t1) / (K - 1) * 1e6)
        comp.append(t1 - t0)
    return (np.stack(outs).astype(np.uint8), np.stack(hs),
            np.stack(hv), us, comp)


def slayer_eval(net, spk, conv, K):
    """Float slayer output over K steps (input zero-padded to K)."""
    pad = np.zeros((spk.shape[0], K, *spk.shape[2:]), dtype=spk.dtype)
    pad[:, :spk.shape[1]] = spk
    with torch.no_grad():
        out = net(to_slayer(pad, conv))  # [N, 10, K]
    return out.permute(0, 2, 1).numpy()


def rate_acc(out_nkc, y):
    return float((out_nkc.sum(axis=1).argmax(axis=1) == y).mean())


def do_case(name, conv, spk, y, log):
    d = os.path.join(OUT_ROOT, name)
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(SEED)
    net = ConvNet() if conv else DenseNet()
    tr, te = slice(N_TEST, 1400), slice(0, N_TEST)
    log(f"[{name}] training")
    train(net, spk[tr], y[tr], conv, epochs=40, log=log)
    net.eval()
    model = os.path.join(d, "model.net")
    export(net, model, input_shape_chw=[1, 8, 8] if conv else None)
    layers = read_layers(model)
    n_hops = 2  # synapse layers: Dense+Dense, or Conv+Dense
    K = T + n_hops + 2
    xs, ys = spk[te], y[te]
    # nmc per-sample layout: [64] dense, [C, H, W] = [1, 8, 8] conv.
    if conv:
        x_nmc = xs.reshape(N_TEST, T, 1, 8, 8)
        # Lava/netx conv layout is (x, y, f) = (W, H, C).
        x_lava = np.ascontiguousarray(x_nmc.transpose(0, 1, 4, 3, 2))
        hid_shape_lava = (8, 8, 4)  # (W, H, C)
    else:
        x_nmc = xs
        x_lava = xs
        hid_shape_lava = (48,)
    sl = slayer_eval(net, xs, conv, K)
    sl_spk = (sl > 0.5).astype(np.uint8)
    log(f"[{name}] running Lava fixed_pt on {N_TEST} samples, K={K}")
    out, hs, hv, us, comp = lava_run(model, x_lava, K, hid_shape_lava, 10)
    if conv:  # to nmc's [C, H, W] then flatten
        hs = hs.transpose(0, 1, 4, 3, 2).reshape(N_TEST, K, -1)
        hv = hv.transpose(0, 1, 4, 3, 2).reshape(N_TEST, K, -1)
    np.save(os.path.join(d, "input.npy"), x_nmc.astype(np.uint8))
    np.save(os.path.join(d, "labels.npy"), ys.astype(np.int64))
    np.save(os.path.join(d, "lava_output.npy"), out.astype(np.uint8))
    # conv hidden layer is 256 wide: keep the first N_HID_CONV samples only so
    # the case stays under 1 MB.
    n_hid = N_HID_CONV if conv else N_TEST
    np.save(os.path.join(d, "lava_hidden_spikes.npy"),
            hs[:n_hid].astype(np.uint8))
    np.save(os.path.join(d, "lava_hidden_v.npy"), hv[:n_hid].astype(np.int32))
    np.save(os.path.join(d, "slayer_output.npy"), sl_spk)
    first_in = [int(np.argmax(x_nmc[i].reshape(T, -1).any(1)))
                for i in range(N_TEST)]
    first_out = [int(np.argmax(out[i].any(1))) if out[i].any() else None
                 for i in range(N_TEST)]
    first_hid = [int(np.argmax(hs[i].any(1))) if hs[i].any() else None
                 for i in range(N_TEST)]
    case = {
        "generator": "testdata/gen/make_snn_models.py",
        "engine": "lava-nc 0.10.0 + lava-dl 0.6.0 netx, Loihi2SimCfg("
                  "select_tag='fixed_pt') (PyLifModelBitAcc, "
                  "PyDenseModelBitAcc / conv bit-acc models), CPython 3.11",
        "T": T,
        "K": K,
        "synapse_hops": n_hops,
        "input_shape": list(x_nmc.shape[2:]),
        "input_layout": "[N, T, 64]" if not conv else
                        "[N, T, C, H, W]; Lava was fed the (W, H, C) "
                        "transpose",
        "lava_input_shape": list(x_lava.shape[2:]),
        "n_out": 10,
        "n_test": N_TEST,
        "hidden_layer": {"index_in_lava_net_layers": 0,
                         "n_samples_recorded": n_hid,
                         "v_at_index0_all_zero": bool((hv[:, 0] == 0).all()),
                         "n": int(np.prod(hid_shape_lava)),
                         "layout": "[48]" if not conv else
                                   "[C, H, W] = [4, 8, 8] flattened "
                                   "row-major (transposed back from Lava's "
                                   "(W, H, C))"},
        "netx_layers": layers,
        "neuron_params_slayer_float": NEURON,
        "slayer_float_accuracy": rate_acc(sl_spk, ys),
        "lava_fixed_pt_accuracy": rate_acc(out, ys),
        "slayer_vs_lava_output_spike_agreement": float(
            (sl_spk == out).mean()),
        "lava_us_per_step": float(np.median(us)),
        "lava_us_per_step_min": float(np.min(us)),
        "lava_us_per_step_how": "per sample: time.perf_counter() around "
            "net.run(RunSteps(K-1)) after a first net.run(RunSteps(1)) that "
            "includes compilation and runtime start-up; divided by K-1; "
            "median over the samples (min also given). Includes the source "
            "RingBuffer, sink RingBuffer and two Monitors' processes. "
            "nice -n 10 on a 2-core machine.",
        "lava_first_run_incl_compile_s_median": float(np.median(comp)),
        "first_input_step": first_in,
        "first_hidden_spike_index": first_hid,
        "first_output_spike_index": first_out,
        "timing": "index k of every [N, K, ...] array is Lava time step k+1 "
                  "(see README.md)",
    }
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
    log(f"[{name}] slayer acc {case['slayer_float_accuracy']:.3f} lava acc "
        f"{case['lava_fixed_pt_accuracy']:.3f} agreement "
        f"{case['slayer_vs_lava_output_spike_agreement']:.4f} "
        f"{case['lava_us_per_step']:.0f} us/step")
    return case


def main():
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    spk, y = digits_spikes()
    which = sys.argv[1:] or ["netx_dense", "netx_conv"]
    for name in which:
        do_case(name, name == "netx_conv", spk, y, log=print)


if __name__ == "__main__":
    main()
