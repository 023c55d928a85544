#!/usr/bin/env python3
"""NIR graphs exported by snnTorch and sinabs, with the vendor libraries' own
float outputs, as reference data for nmc's NIR import.

    nice -n 10 /work/venvs/nir/bin/python testdata/gen/make_nir_models.py

(venv: requirements-nir.txt). Writes testdata/snn/nir_snntorch_lif/,
nir_snntorch_cuba/ and nir_sinabs_if/. Seeded, CPU only.
"""
import importlib.metadata as md
import json
import os
import sys

import h5py
import nir
import numpy as np
import torch
from sklearn.datasets import load_digits

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT_ROOT = os.path.normpath(os.path.join(HERE, "..", "snn"))
SEED = 11
N = 20
T = 16
SNNTORCH_DT = 1e-4  # hard-coded in snntorch.export_nir


def versions(*pkgs):
    return {p: md.version(p) for p in pkgs}


def digits():
    d = load_digits()
    x = d.data.astype(np.float64) / 16.0
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(SEED)
    perm = rng.permutation(len(y))
    return x[perm], y[perm], rng


def to_jsonable(v):
    if isinstance(v, (np.ndarray, torch.Tensor)):
        a = np.asarray(v.detach() if isinstance(v, torch.Tensor) else v)
        if a.size <= 16:
            return {"shape": list(a.shape), "dtype": str(a.dtype),
                    "values": a.tolist()}
        return {"shape": list(a.shape), "dtype": str(a.dtype),
                "min": float(a.min()), "max": float(a.max()),
                "first": a.reshape(-1)[:4].tolist()}
    if isinstance(v, (list, tuple)):
        return [to_jsonable(e) for e in v]
    if isinstance(v, dict):
        return {k: to_jsonable(e) for k, e in v.items()}
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return repr(v)


def node_list(path):
    """Node list read back from the written file (what a reader sees)."""
    g = nir.read(path)
    out = {}
    for name, node in g.nodes.items():
        e = {"type": type(node).__name__}
        for k, v in vars(node).items():
            e[k] = to_jsonable(v)
        out[name] = e
    return out, [list(e) for e in g.edges]


def write_case(d, graph, x, out, extra):
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "model.nir")
    nir.write(p, graph)
    np.save(os.path.join(d, "input.npy"), x.astype(np.uint8))
    np.save(os.path.join(d, "vendor_output.npy"), out.astype(np.float32))
    nodes, edges = node_list(p)
    case = {"generator": "testdata/gen/make_nir_models.py", "N": N, "T": T,
            "input_shape": list(x.shape[2:]), "n_out": int(out.shape[-1]),
            "nir_nodes": nodes, "nir_edges": edges}
    case.update(extra)
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
    print(f"{os.path.basename(d)}: nodes {list(nodes)}; "
          f"out spikes/sample {out.sum() / N:.1f}")


# --------------------------------------------------------------- snnTorch
def snntorch_cases():
    import snntorch as snn
    import snntorch.functional as SF
    import snntorch.utils as su
    from snntorch.export_nir import export_to_nir

    x, y, rng = digits()
    spk = (rng.random((len(y), T, 64)) < x[:, None, :]).astype(np.uint8)
    test = slice(0, N)
    train = slice(N, 1400)

    def build(kind):
        torch.manual_seed(SEED)
        # Per-neuron parameter tensors: with scalar beta/threshold the export
        # writes 0-d tau/r/v_threshold datasets and nir 1.0.8's
        # infer_types() (called inside export_to_nir) rejects the graph
        # ("type mismatch: 0.output: [[32]] -> 1.input: []").
        def full(n, v):
            return torch.full((n,), float(v))
        if kind == "lif":
            l1 = snn.Leaky(beta=full(32, 0.9), threshold=full(32, 1.0),
                           reset_mechanism="zero", init_hidden=True)
            l2 = snn.Leaky(beta=full(10, 0.9), threshold=full(10, 1.0),
                           reset_mechanism="zero", init_hidden=True,
                           output=True)
        else:
            l1 = snn.Synaptic(alpha=torch.linspace(0.5, 0.8, 32),
                              beta=full(32, 0.9), threshold=full(32, 1.0),
                              reset_mechanism="zero", init_hidden=True)
            l2 = snn.Synaptic(alpha=full(10, 0.7), beta=full(10, 0.9),
                              threshold=full(10, 1.0),
                              reset_mechanism="zero", init_hidden=True,
                              output=True)
        return torch.nn.Sequential(
            torch.nn.Linear(64, 32, bias=False), l1,
            torch.nn.Linear(32, 10, bias=False), l2)

    def run(net, xs):  # xs [B, T, 64] -> spikes [B, T, 10]
        su.reset(net)
        outs = []
        for t in range(xs.shape[1]):
            o = net(xs[:, t])
            outs.append(o[0])
        return torch.stack(outs, 1)

    for kind in ("lif", "cuba"):
        net = build(kind)
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        loss_fn = SF.ce_rate_loss()
        g = torch.Generator().manual_seed(SEED)
        xs_tr = torch.tensor(spk[train], dtype=torch.float32)
        ys_tr = torch.tensor(y[train])
        for ep in range(6):
            perm = torch.randperm(len(ys_tr), generator=g)
            for i in range(0, len(perm), 64):
                idx = perm[i:i + 64]
                o = run(net, xs_tr[idx])  # [B, T, 10]
                loss = loss_fn(o.permute(1, 0, 2), ys_tr[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            xt = torch.tensor(spk[test], dtype=torch.float32)
            out = run(net, xt).numpy()
            acc = float((out.sum(1).argmax(1) == y[test]).mean())
            su.reset(net)
            graph = export_to_nir(net, xt[:1, 0], ignore_dims=[0])
        su.reset(net)
        if kind == "lif":
            dyn = ("snn.Leaky, reset_mechanism='zero': reset_t = "
                   "H(mem_{t-1} - thr) (from the previous step's membrane); "
                   "mem_t = beta * (1 - reset_t) * mem_{t-1} + I_t; "
                   "spk_t = H(mem_t - thr) with H(x) = 1 iff x > 0. "
                   "mem_0 = 0.")
        else:
            dyn = ("snn.Synaptic, reset_mechanism='zero': reset_t = "
                   "H(mem_{t-1} - thr); syn_t = alpha * syn_{t-1} + I_t "
                   "(syn is never reset); mem_t = (1 - reset_t) * "
                   "(beta * mem_{t-1} + syn_t) (the whole update, input "
                   "included, is zeroed on a reset step); spk_t = "
                   "H(mem_t - thr), H(x) = 1 iff x > 0. syn_0 = mem_0 = 0.")
        write_case(
            os.path.join(OUT_ROOT, f"nir_snntorch_{kind}"), graph,
            spk[test], out,
            {"labels": y[test].tolist(),
             "vendor": "snntorch",
             "versions": versions("snntorch", "nir", "nirtorch", "torch",
                                  "numpy", "h5py"),
             "export": "snntorch.export_nir.export_to_nir(net, sample[1,64], ignore_dims=[0])"
                       " then nir.write",
             "dt_used_in_export": SNNTORCH_DT,
             "export_param_mapping": "tau = dt/(1-beta), r = tau/dt = "
                 "1/(1-beta), v_leak = 0, v_reset = 0" +
                 ("" if kind == "lif" else
                  ", tau_syn = dt/(1-alpha), tau_mem = dt/(1-beta), "
                  "w_in = tau_syn/dt = 1/(1-alpha)"),
             "reset_mode": "zero",
             "reset_mode_why": "NIR 1.0.4 LIF/CubaLIF only know reset to "
                 "v_reset; snnTorch exports v_reset=0 whatever the "
                 "reset_mechanism, so 'zero' keeps the graph and the "
                 "vendor run meaning the same thing (modulo snnTorch's "
                 "one-step-late reset, see vendor_dynamics)",
             "vendor_dynamics": dyn,
             "vendor_run": "net stepped T times on input[:, t] (float 0/1), "
                 "snntorch.utils.reset(net) before each batch; "
                 "vendor_output[n, t] = output layer spk_t",
             "weights": "nn.Linear(bias=False), trained 6 epochs with "
                 "snntorch.functional.ce_rate_loss on load_digits "
                 "Bernoulli spikes (samples 20..1399)",
             "vendor_accuracy_on_these_N": acc,
             "input_coding": "load_digits / 16, Bernoulli per step, seed "
                             f"{SEED}"})


# ----------------------------------------------------------------- sinabs
def sinabs_case():
    import sinabs
    import sinabs.layers as sl
    from sinabs.nir import to_nir

    x, y, rng = digits()
    img = x[:N].reshape(N, 8, 8)
    img = img.repeat(2, axis=1).repeat(2, axis=2)  # 16x16
    p_on = 0.5 * img
    p_off = 0.15 * (1.0 - img)
    u = rng.random((N, T, 2, 16, 16))
    spk = np.stack([u[:, :, 0] < p_on[:, None],
                    u[:, :, 1] < p_off[:, None]], axis=2).astype(np.uint8)

    torch.manual_seed(SEED)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, stride=2, bias=False),  # 2x16x16 -> 4x7x7
        sl.IAFSqueeze(batch_size=1),
        sl.SumPool2d(2),                                  # -> 4x3x3
        torch.nn.Flatten(),
        torch.nn.Linear(36, 10, bias=False),
        sl.IAFSqueeze(batch_size=1),
    )
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[4].weight.mul_(2.0)
    outs = []
    with torch.no_grad():
        for n in range(N):
            for m in net.modules():
                if isinstance(m, sl.StatefulLayer):
                    m.reset_states()
            xt = torch.tensor(spk[n], dtype=torch.float32)  # [T,2,16,16]
            outs.append(net(xt).numpy())  # [T, 10]
        out = np.stack(outs)
        for m in net.modules():
            if isinstance(m, sl.StatefulLayer):
                m.reset_states()
        graph = to_nir(net, torch.zeros(1, 2, 16, 16))
        # sinabs leaves Conv2d.input_shape and Flatten.input_type as None,
        # which nir.write (1.0.4) cannot store; nir's own type inference
        # fills them in (snntorch's export calls the same method itself).
        graph.infer_types()
    iaf = net[1]
    write_case(
        os.path.join(OUT_ROOT, "nir_sinabs_if"), graph, spk, out,
        {"labels": y[:N].tolist(),
         "vendor": "sinabs",
         "versions": versions("sinabs", "nir", "nirtorch", "torch", "numpy",
                              "h5py", "samna"),
         "export": "sinabs.nir.to_nir(net, torch.zeros(1,2,16,16)), "
                   "graph.infer_types(), then nir.write",
         "dt_used_in_export": None,
         "dt_note": "sinabs IF export carries no dt/tau (nir.IF has r and "
                    "v_threshold only; r = 1)",
         "reset_mode": "subtract (sinabs MembraneSubtract, the IAF default)",
         "spike_fn": type(iaf.spike_fn).__name__ if not isinstance(
             iaf.spike_fn, type) else iaf.spike_fn.__name__,
         "min_v_mem": iaf.min_v_mem,
         "spike_threshold": float(iaf.spike_threshold),
         "vendor_dynamics": "sinabs IAFSqueeze, defaults: v_t = v_{t-1} + "
             "I_t; spikes_t = MultiSpike = floor(v_t / thr) if v_t >= thr "
             "else 0 (can be >1 per step: vendor_output holds counts); "
             "v_t -= spikes_t * thr; no lower bound on v (min_v_mem None). "
             "SumPool2d(2) sums 2x2 windows of spike counts (floor mode, "
             "7x7 -> 3x3, last row/col dropped). Conv2d/Linear bias=False "
             "(the export writes zero biases).",
         "vendor_run": "each sample [T,2,16,16] fed as one batch of T "
             "frames (IAFSqueeze batch_size=1 => time is the leading "
             "axis), states reset before each sample; vendor_output[n,t] "
             "= last IAFSqueeze output for frame t",
         "weights": "seeded torch default init (seed 11), conv x3, linear "
                    "x2, untrained",
         "input_coding": "load_digits upsampled 2x to 16x16; channel 0 "
             "Bernoulli(0.5*pixel), channel 1 Bernoulli(0.15*(1-pixel)); "
             "layout [N, T, C=2, H=16, W=16]"})


def main():
    which = sys.argv[1:] or ["snntorch", "sinabs"]
    if "snntorch" in which:
        snntorch_cases()
    if "sinabs" in which:
        sinabs_case()


if __name__ == "__main__":
    main()
