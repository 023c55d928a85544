"""Checks nmc's `--emit netx` and `--emit nir` outputs in the vendors' own readers.

For each case of testdata/snn/netx_*, nmc wrote `emitted.net` and `emitted.nir`
(`nmc compile model.net --target loihi2 --emit netx=emitted.net --emit nir=emitted.nir`; the
integration test `netx::emitted_files_are_the_checked_ones` holds nmc's current output to these
bytes). This script

- loads `emitted.net` in lava-dl's `netx.hdf5.Network`, runs the case's inputs in Lava
  `Loihi2SimCfg(select_tag="fixed_pt")` exactly as make_snn_models.py ran the original, and
  compares every step's output spikes with `lava_output.npy` (the original file's);
- reads `emitted.nir` with `nir.read` (type checking on) and lists its nodes;

and records the result in `emitted_check.json`. Run with the Lava venv of requirements-lava.txt
(CPython 3.11, see make_snn_models.py), which also has nir:

    python testdata/gen/check_emitted.py
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import make_snn_models as m  # noqa: E402  (imports Lava through its 3.11 shim)
import nir  # noqa: E402
import numpy as np  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "snn")


def check(case):
    d = os.path.join(ROOT, case)
    x = np.load(os.path.join(d, "input.npy"))
    want = np.load(os.path.join(d, "lava_output.npy"))
    n, k = want.shape[0], want.shape[1]
    conv = x.ndim == 5
    # Lava takes (W, H, C) for a convolutional input; nmc's files are (C, H, W).
    x_lava = np.ascontiguousarray(x.transpose(0, 1, 4, 3, 2)) if conv else x
    hid = m.read_layers(os.path.join(d, "emitted.net"))
    first = next(layer for layer in hid if layer["type"] in ("dense", "conv"))
    hid_shape = tuple(first["shape"][::-1]) if conv else tuple(first["shape"])
    out, _, _, _, _ = m.lava_run(os.path.join(d, "emitted.net"), x_lava[:n], k, hid_shape, want.shape[2])
    equal = bool((out == want).all())
    g = nir.read(os.path.join(d, "emitted.nir"))
    return {
        "netx_loads_in_lava_dl": True,
        "lava_fixed_pt_output_equals_original": equal,
        "differing_spikes": int((out != want).sum()),
        "samples": int(n),
        "steps": int(k),
        "nir_read_nodes": {name: type(node).__name__ for name, node in sorted(g.nodes.items())},
        "nir_read_edges": sorted([list(e) for e in g.edges]),
        "versions": {"nir": nir.__version__ if hasattr(nir, "__version__") else "see requirements-lava.txt"},
    }


def main():
    for case in ["netx_dense", "netx_conv"]:
        r = check(case)
        with open(os.path.join(ROOT, case, "emitted_check.json"), "w") as f:
            json.dump(r, f, indent=1, sort_keys=True)
            f.write("\n")
        print(case, r["lava_fixed_pt_output_equals_original"], r["differing_spikes"])


if __name__ == "__main__":
    main()
