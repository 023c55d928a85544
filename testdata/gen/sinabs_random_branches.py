#!/usr/bin/env python3
"""Random branching networks, nmc against sinabs 3.1.3 (a measurement, not test data).

Builds ``--count`` seeded random networks on 2xSxS event frames: a stem convolution, then blocks
that are a plain convolution (sometimes with 2x2 average pooling), a residual merge (``a -> b``,
``conv(a + b)``) or two branches merged (``a -> b``, ``a -> c``, ``conv(b + c)``), then a dense
head; channel counts up to 64 and maps up to 64x64, so that many layers fit only some cores and
some networks fit none. Each is exported to ONNX (PyTorch, ``Add`` for the merges) and

- compiled by nmc for speck (calibrated on its random inputs);
- converted by sinabs from the float model (``from_model`` with ``sl.Merge``,
  ``DynapcnnNetwork(discretize=True)``, ``make_config``), and nmc's own integers rebuilt in
  sinabs and simulated, as ``sinabs_reference.py`` does for the shipped cases;

and the script counts the networks where sinabs' configuration (cores, destinations, weights,
biases, thresholds) equals nmc's artifact, where sinabs' simulated output counts per step equal
``nmc run --record``'s, and where both refuse the network (no core assignment). It prints one
line per network and the totals; docs/chips.md §7 quotes them. Run it as
``sinabs_reference.py`` (same venv, ``PYTHONHASHSEED=0``):

    PYTHONHASHSEED=0 /tmp/sinabs-venv/bin/python testdata/gen/sinabs_random_branches.py --count 60
    ... --count 60 --opt-level 0
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import sinabs_reference as sr  # noqa: E402

SAMPLES = 4


def random_model(seed):
    import sinabs.layers as sl
    import torch
    from torch import nn

    rng = np.random.default_rng(seed)
    size = int(rng.choice([16, 24, 32, 48, 64]))
    torch.manual_seed(seed)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.plan = []
            c, h = 2, size
            f = int(rng.integers(2, 33))
            self.stem = nn.Conv2d(c, f, 3, padding=1, bias=False)
            c = f
            kinds = [str(rng.choice(["plain", "res", "two"]))
                     for _ in range(int(rng.integers(1, 4)))]
            for i, kind in enumerate(kinds):
                f = int(rng.choice([4, 8, 16, 32, 64]))
                stride = 2 if h >= 16 and rng.random() < 0.5 else 1
                if kind == "plain":
                    # No pooling into a merge: an average pool on one operand only changes what
                    # its spikes stand for (sinabs then approximates, nmc refuses: §2.9).
                    last = i + 1 == len(kinds) or kinds[i + 1] == "plain"
                    pool = last and h >= 8 and rng.random() < 0.4
                    self.add_module(f"p{i}", nn.Conv2d(c, f, 3, stride=stride, padding=1,
                                                       bias=False))
                    self.plan.append(("plain", i, pool))
                    h = (h + 2 - 3) // stride + 1
                    if pool:
                        h //= 2
                elif kind == "res":
                    self.add_module(f"r{i}", nn.Conv2d(c, c, 3, padding=1, bias=False))
                    self.add_module(f"m{i}", nn.Conv2d(c, f, 3, stride=stride, padding=1,
                                                       bias=False))
                    self.plan.append(("res", i, False))
                    h = (h + 2 - 3) // stride + 1
                else:
                    g = int(rng.choice([4, 8, 16]))
                    self.add_module(f"b{i}", nn.Conv2d(c, g, 3, padding=1, bias=False))
                    self.add_module(f"c{i}", nn.Conv2d(c, g, 1, bias=False))
                    self.add_module(f"m{i}", nn.Conv2d(g, f, 3, stride=stride, padding=1,
                                                       bias=False))
                    self.plan.append(("two", i, False))
                    h = (h + 2 - 3) // stride + 1
                c = f
            while h > 16:  # dense kernels are at most 16x16
                self.add_module(f"d{h}", nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False))
                self.plan.append(("down", h, False))
                h = (h + 1) // 2
            self.flat = nn.Flatten()
            self.fc = nn.Linear(c * h * h, 10)

        def forward(self, x):
            relu = torch.relu
            a = relu(self.stem(x))
            for kind, i, pool in self.plan:
                if kind == "plain":
                    a = relu(getattr(self, f"p{i}")(a))
                    if pool:
                        a = nn.functional.avg_pool2d(a, 2)
                elif kind == "res":
                    b = relu(getattr(self, f"r{i}")(a))
                    a = relu(getattr(self, f"m{i}")(a + b))
                elif kind == "two":
                    b = relu(getattr(self, f"b{i}")(a))
                    c = relu(getattr(self, f"c{i}")(a))
                    a = relu(getattr(self, f"m{i}")(b + c))
                else:
                    a = relu(getattr(self, f"d{i}")(a))
            return self.fc(self.flat(a))

    m = Net().eval()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(2.0)  # enough activity to spike through a few layers
    x = (rng.random((SAMPLES, 2, size, size)) < 0.2).astype(np.float32)
    return m, x, sl


def export(m, x, path):
    import torch
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.from_numpy(x[:1]),), path, dynamo=False, opset_version=13,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})


def same_config(net, cfg):
    """nmc's artifact (inspect JSON) and a configuration sinabs wrote, core for core."""
    ours = {l["core"]: l for l in net["layers"]}
    theirs = {c["core"]: c for c in cfg["cnn_layers"]}
    if set(ours) != set(theirs):
        return f"cores nmc {sorted(ours)}, sinabs {sorted(theirs)}"
    for core, c in theirs.items():
        l = ours[core]
        f = l["neuron_shape"][0]
        pairs = {
            "input_shape": (l["input_shape"], c["input_shape"]),
            "output_shape": (l["neuron_shape"], c["output_shape"]),
            "kernel/stride/padding": ([l["kernel_size"], l["stride"], l["padding"]],
                                      [c["kernel_size"], c["stride"], c["padding"]]),
            "thresholds": ([l["threshold_high"], l["threshold_low"]],
                           [c["threshold_high"], c["threshold_low"]]),
            "biases": (l["biases"] or [0] * f, c["biases"]),
            # As a set: which of the two slots a destination takes changes nothing on the
            # chip, and sinabs' slot order comes from iterating a set of edges.
            "destinations": (sorted((d["core"], d["pooling"]) for d in l["destinations"]),
                             sorted((d["layer"], d["pooling"]) for d in c["destinations"])),
            "weights": (sr.fnv1a64(l["weights"]), c["weights_fnv1a64"]),
        }
        for what, (a, b) in pairs.items():
            if a != b:
                return f"core {core}: {what} differ"
    if net["dvs_destinations"] != cfg["dvs_layer"]["destinations"]:
        return "dvs destinations differ"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nmc", default=str(sr.ROOT / "target" / "release" / "nmc"))
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--opt-level", default="2", help="nmc's --opt-level (default 2)")
    args = ap.parse_args()
    if os.environ.get("PYTHONHASHSEED") != "0":
        sys.exit("run with PYTHONHASHSEED=0 (see sinabs_reference.py)")
    sr.install_samna_stand_in()
    from sinabs.backend.dynapcnn import DynapcnnNetwork  # noqa: F401 (import with the stand-in)

    totals = {"networks": 0, "mapped by both": 0, "refused by both": 0, "config equal": 0,
              "conversion equal": 0, "outputs equal": 0, "disagree": 0, "merges": 0}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for seed in range(args.count):
            m, x, _ = random_model(seed)
            d = tmp / f"r{seed}"
            d.mkdir()
            export(m, x, d / "model.onnx")
            np.save(d / "inputs.npy", x)
            totals["networks"] += 1
            totals["merges"] += sum(k in ("res", "two") for k, _, _ in m.plan)
            try:
                extra = ["--opt-level", args.opt_level]
                net = sr.nmc_network(args.nmc, d, tmp, extra)
                nmc_err = None
            except subprocess.CalledProcessError as e:
                net, nmc_err = None, (e.returncode, e.stderr.decode().strip().splitlines()[0])
            try:
                import contextlib
                import io
                with contextlib.redirect_stderr(io.StringIO()):
                    ref = sr.reference(args.nmc, d, tmp, max_samples=SAMPLES,
                                       extra=extra) if net else None
                    conv = sr.sinabs_conversion(d, (2, x.shape[2], x.shape[3]), True, 1.0)
                sinabs_err = None
            except ValueError as e:
                ref, conv, sinabs_err = None, None, str(e).splitlines()[0]
            if net is None or conv is None:
                both = net is None and conv is None and nmc_err[0] == 3 and \
                    "No valid mapping" in (sinabs_err or "")
                totals["refused by both" if both else "disagree"] += 1
                print(f"seed {seed}: nmc {nmc_err}, sinabs {sinabs_err}"
                      f" -> {'both refuse' if both else 'DISAGREE'}")
                continue
            totals["mapped by both"] += 1
            bad = same_config(net, ref[0]["config"])
            bad_conv = same_config(net, conv)
            totals["config equal"] += bad is None
            totals["conversion equal"] += bad_conv is None
            # Output counts per step: nmc run --record against sinabs' simulation.
            art = tmp / f"r{seed}.speck"
            calib = tmp / f"r{seed}.calib.npy"
            np.save(calib, x)
            subprocess.run([args.nmc, "compile", d / "model.onnx", "--target", "speck",
                            "--calibrate", calib, "-o", art, *extra], check=True,
                           capture_output=True)
            rec = tmp / f"r{seed}.rec.npy"
            subprocess.run([args.nmc, "run", art, "--input", calib, "--record", rec],
                           check=True, capture_output=True)
            ours = np.load(rec).reshape(ref[2].shape)
            same_out = np.array_equal(ours.astype(np.int64), ref[2])
            totals["outputs equal"] += same_out
            if bad or bad_conv or not same_out:
                totals["disagree"] += 1
            cores = [l["core"] for l in net["layers"]]
            print(f"seed {seed}: {len(cores)} layers on cores {cores}; config "
                  f"{bad or 'equal'}, conversion {bad_conv or 'equal'}, outputs "
                  f"{'equal' if same_out else 'DIFFER'}")
    print(json.dumps(totals))


if __name__ == "__main__":
    main()
