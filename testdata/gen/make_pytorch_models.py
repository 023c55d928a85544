#!/usr/bin/env python3
"""Real-architecture test cases exported from PyTorch with both exporters (issue 12).

Each network is exported twice, once with the TorchScript exporter (``dynamo=False``, opset
17) and once with the torch.export exporter (``dynamo=True``, its default opset), each into its
own case directory (``<net>_ts`` and ``<net>_dynamo``), because the two exporters emit
different ONNX for the same module (opset, folded BatchNorm, pooling and flatten forms) and the
importer has to take both.

Networks (few channels, so that files stay small and the dev-profile tests stay fast):

* ``squeezenet``: SqueezeNet-style, 3x64x64: a stride-2 stem convolution, max pooling, three
  fire modules (squeeze 1x1, expand 1x1 and 3x3, channel concatenation), a 1x1 classifier
  convolution and global average pooling (BatchNorms for trainability, folded on export).
* ``densenet``: DenseNet-style, 3x64x64: two dense blocks (each layer's output concatenated to
  its input along channels) joined by a transition (1x1 convolution + 2x2 average pooling),
  global average pooling and a linear head. Each composite function is conv-BN-ReLU rather than
  DenseNet's pre-activation BN-ReLU-conv, because a neuromorphic core applies the nonlinearity
  in the neuron that sums the synapses (the exporters fold the eval-mode BN into the conv).
* ``cnn128``: a plain CNN on 3x128x128 (conv-BN-ReLU-max-pool x3, the first convolution at the
  full 128x128, linear head).
* ``dvs_gesture``: a DVS-gesture-style CNN on 2x128x128 event-count frames ([OFF, ON], the DVS
  convention) whose first layer is a 4x4 average pooling (as DVS128 Gesture networks do to
  bring 128x128 down to 32x32), 11 classes.

Data. The image nets classify scikit-learn's digits (make_models.py's fixed split), upscaled
(bilinear) to 3/4 of the canvas, placed off-centre by a seeded random offset of up to 1/16 of the
canvas on a 64x64 (128x128) canvas, with a random foreground and background colour per image; so
the classes are meaningful and the task needs some colour and translation invariance. Pixels
are rounded to 0..255 and ``inputs.npy`` is saved as uint8 (exact integers, a quarter of the
float32 size: 64 3x64x64 images are 786 KB as uint8): the networks are trained on x/255 and the
1/255 is folded into the first convolution's weights before export, so the exported model takes
the 0..255 values as they are. The gesture net
classifies synthetic event clips: a bright blob (or two) moving along one of 11 class-specific
trajectories, its brightness changes turned into ON/OFF event counts per pixel (saved as
uint8). Everything is seeded; each case seeds itself.

Cases on 128x128 need spatial tiling of Loihi 2 populations (a 128x128 channel is 16,384
neurons, a core holds 8,192), which nmc has (issue 12). Set ``TILING = False`` below to mark them
pending (``targets = []`` and a ``pending`` reason) for a compiler without it.

Run from the repository root (several minutes: about 10 on two busy CPU cores, mostly training
at 64x64 and 128x128; the gesture cases alone take seconds):

    pip install -r testdata/gen/requirements.txt
    python testdata/gen/make_pytorch_models.py                  # all cases into testdata/models
    python testdata/gen/make_pytorch_models.py --only squeezenet_ts --out /tmp/models

``python testdata/gen/make_models.py`` (and so ``cargo xtask testdata``) builds these cases too,
after the digits and Speck ones; ``--only`` takes their names there as well.
"""

from __future__ import annotations

import argparse
import copy
import functools
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import make_models as mm

N_INPUTS = 64  # test samples per case: enough for a 95 % agreement check, small files
TS_OPSET = 17  # TorchScript exporter's opset (the newest it supports well)
TILING = True  # Loihi 2 spatial tiling of 128x128 channels (issue 12)
PENDING = "needs spatial tiling of Loihi 2 populations (a 128x128 channel is 16,384 neurons, a core holds 8,192; issue 12)"
# The quantised top-1 agreement the Loihi 2 tests ask of these cases (issue 12 asks >= 95 %;
# the digits cases keep the tests' default 98 %).
AGREEMENT = 0.95
# Float top-1 the script asserts: well above chance (0.1), not state of the art, because the nets
# are trained for a few epochs only (the generation must stay cheap on a CPU).
MIN_TOP1 = 0.5


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def digit_scenes(x: np.ndarray, size: int, seed: int) -> np.ndarray:
    """(N, 64) digits in [0, 1] -> (N, 3, size, size) uint8 coloured scenes.

    The digit is upscaled to 3/4 of the canvas and placed up to size/16 off-centre, in a
    random foreground colour on a random background colour (all per image).
    """
    rng = np.random.default_rng(seed)
    n, d = len(x), size * 3 // 4
    digit = F.interpolate(torch.from_numpy(x.reshape(-1, 1, 8, 8)), size=d, mode="bilinear",
                          align_corners=False).clamp(0, 1).numpy()
    fg = rng.uniform(0.5, 1.0, (n, 3, 1, 1))
    bg = rng.uniform(0.0, 0.3, (n, 3, 1, 1))
    off = (size - d) // 2 + rng.integers(-size // 16, size // 16 + 1, (n, 2))
    mask = np.zeros((n, 1, size, size))
    for i, (oy, ox) in enumerate(off):
        mask[i, :, oy : oy + d, ox : ox + d] = digit[i]
    img = bg + (fg - bg) * mask
    return np.round(img * 255).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def scenes(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train and test scenes (uint8) with their labels for one canvas size."""
    data = mm.load_data()
    return (digit_scenes(data.x_train, size, seed=size), data.y_train,
            digit_scenes(data.x_test[:N_INPUTS], size, seed=size + 1), data.y_test[:N_INPUTS])


GESTURES = 11
STEPS = 12  # brightness frames per clip (events come from consecutive differences)
THRESH = 0.15  # brightness change that makes an event


def gesture_path(c: int, t: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Blob centres (in units of the 128 canvas) over time t in [0, 1] for gesture class c.

    The classes echo DVS128 Gesture's: clap, waves and arm circles on either side, an arm roll,
    drums, guitar and "other" (a random walk).
    """
    a = rng.uniform(14, 22)  # amplitude
    ph = rng.uniform(0, 2 * np.pi)
    jx, jy = rng.uniform(-8, 8, 2)
    w = 2 * np.pi * rng.uniform(0.8, 1.2) * t + ph
    left, right, mid = 40 + jx, 88 + jx, 64 + jx
    cy = 64 + jy
    if c == 0:  # clap: two blobs meeting in the middle
        s = a * (1 + np.cos(w)) / 2
        return [np.stack([mid - 6 - s, cy + 0 * t], 1), np.stack([mid + 6 + s, cy + 0 * t], 1)]
    if c in (1, 2):  # right / left hand wave: side to side
        x0 = right if c == 1 else left
        return [np.stack([x0 + a * np.sin(w), cy - 20 + 0 * t], 1)]
    if c in (3, 4, 5, 6):  # right/left arm clockwise/counter-clockwise
        x0 = right if c in (3, 4) else left
        sgn = 1 if c in (3, 5) else -1
        return [np.stack([x0 + a * np.cos(sgn * w), cy + a * np.sin(sgn * w)], 1)]
    if c == 7:  # arm roll: small fast circle in front
        return [np.stack([mid + a / 3 * np.cos(2 * w), cy + a / 3 * np.sin(2 * w)], 1)]
    if c == 8:  # air drums: both hands up and down, out of phase
        return [np.stack([left + 0 * t, cy + a * np.sin(w)], 1),
                np.stack([right + 0 * t, cy - a * np.sin(w)], 1)]
    if c == 9:  # air guitar: a diagonal strum
        return [np.stack([mid + a * np.sin(w), cy + a * np.sin(w)], 1)]
    steps = rng.normal(0, 6, (len(t), 2)).cumsum(0)  # other: random walk
    return [np.stack([mid + steps[:, 0], cy + steps[:, 1]], 1)]


def gesture_clips(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n event-count clips (N, 2, 128, 128) uint8 and balanced labels.

    Each clip renders Gaussian blobs along the class's path for STEPS frames; a pixel gets an ON
    (OFF) event each time its brightness rises (falls) by more than THRESH between frames, plus
    sparse background-activity noise, as a DVS sensor would report.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n) % GESTURES
    rng.shuffle(y)
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float32)
    t = np.linspace(0, 1, STEPS)
    out = np.zeros((n, 2, 128, 128), np.uint8)
    for i, c in enumerate(y):
        sigma = rng.uniform(5, 8)
        paths = gesture_path(int(c), t, rng)
        frames = np.zeros((STEPS, 128, 128), np.float32)
        for p in paths:
            for k in range(STEPS):
                frames[k] += np.exp(-((xx - p[k, 0]) ** 2 + (yy - p[k, 1]) ** 2) / (2 * sigma**2))
        d = np.diff(frames, axis=0)
        out[i, 0] = (d < -THRESH).sum(0)
        out[i, 1] = (d > THRESH).sum(0)
        out[i] += (rng.random((2, 128, 128)) < 0.002).astype(np.uint8)
    return out, y.astype(np.int64)


# --------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------


class Fire(nn.Module):
    """SqueezeNet's fire module: squeeze 1x1, then expand 1x1 and 3x3 side by side.

    Each convolution has a BatchNorm (folded into it by both exporters in eval mode): without
    it the tiny net does not leave chance level in the few epochs the script can afford.
    """

    def __init__(self, cin: int, squeeze: int, e1: int, e3: int) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.BatchNorm2d(squeeze))
        self.e1 = nn.Sequential(nn.Conv2d(squeeze, e1, 1), nn.BatchNorm2d(e1))
        self.e3 = nn.Sequential(nn.Conv2d(squeeze, e3, 3, padding=1), nn.BatchNorm2d(e3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.e1(s)), F.relu(self.e3(s))], 1)


class SqueezeNetS(nn.Module):
    """SqueezeNet 1.1's layout at 3x64x64 with few channels.

    Pooling is 2x2/2 instead of SqueezeNet's 3x3/2 ceil-mode pooling (same downsampling, no
    partial windows). The classifier is SqueezeNet's 1x1 convolution + global average pooling,
    without the ReLU before the pooling (logits may be negative, ties at 0 would make top-1
    agreement a coin toss).
    """

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)  # 32x32
        self.bn = nn.BatchNorm2d(16)
        self.fire2 = Fire(16, 8, 16, 16)  # after pool: 16x16
        self.fire3 = Fire(32, 8, 16, 16)
        self.fire4 = Fire(32, 12, 24, 24)  # after pool: 8x8
        self.classifier = nn.Conv2d(48, classes, 1)
        self.gap = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn(self.stem(x))), 2)
        x = F.max_pool2d(self.fire3(self.fire2(x)), 2)
        x = self.fire4(x)
        return torch.flatten(self.gap(self.classifier(x)), 1)


class DenseLayer(nn.Module):
    """conv3x3-BN-ReLU producing `growth` channels, concatenated to its input."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, growth, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(growth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, F.relu(self.bn(self.conv(x)))], 1)


class Transition(nn.Module):
    """DenseNet's transition: 1x1 convolution (BN, ReLU) and 2x2 average pooling."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.bn(self.conv(x))), 2)


class DenseNetS(nn.Module):
    """DenseNet's stem (stride-2 convolution and 2x2 max pooling, 16x16), dense block (3 layers,
    growth 6), transition (8x8), dense block (3 layers), transition (4x4), global average
    pooling, linear head."""

    def __init__(self, classes: int = 10, growth: int = 6) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 12, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(12)
        c = 12
        b1 = []
        for _ in range(3):
            b1.append(DenseLayer(c, growth))
            c += growth
        self.block1 = nn.Sequential(*b1)
        self.trans1 = Transition(c, c // 2)
        c //= 2
        b2 = []
        for _ in range(3):
            b2.append(DenseLayer(c, growth))
            c += growth
        self.block2 = nn.Sequential(*b2)
        self.trans2 = Transition(c, c // 2)
        self.fc = nn.Linear(c // 2, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn(self.stem(x))), 2)
        x = self.trans1(self.block1(x))
        x = self.trans2(self.block2(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class CNN128(nn.Module):
    """conv8-pool4-conv16-pool2-conv16-pool2 (3x3, BN, ReLU, max pooling), linear 1024->10.

    conv1 runs at the full 128x128 (the layer that needs spatial tiling on Loihi 2). The 4x4
    pooling after it and the flatten head (not global pooling) give the few-epoch training
    a receptive field and position information to work with; the BNs are folded into the
    convolutions by both exporters.
    """

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.conv3 = nn.Conv2d(16, 16, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16 * 8 * 8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 4)  # 32x32
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)  # 16x16
        x = F.max_pool2d(F.relu(self.bn3(self.conv3(x))), 2)  # 8x8
        return self.fc(torch.flatten(x, 1))


class DvsGestureCNN(nn.Module):
    """4x4 average pooling (128 -> 32), then conv8-pool-conv16-pool-conv16-pool, linear 11."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.conv3 = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 4 * 4, GESTURES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, 4)  # 32x32
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # 16x16
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # 8x8
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)  # 4x4
        return self.fc(torch.flatten(x, 1))


# --------------------------------------------------------------------------
# Training and export
# --------------------------------------------------------------------------


@torch.no_grad()
def fold_input_scale(model: nn.Module, conv: str, scale: float) -> nn.Module:
    """A copy of `model` whose convolution `conv` takes inputs `scale` times larger.

    The nets are trained on x/255; dividing the first convolution's weights by 255 (bias
    unchanged) gives the same function of the raw 0..255 pixels, with no extra node.
    """
    m = copy.deepcopy(model)
    m.get_submodule(conv).weight.div_(scale)
    return m.eval()


def train_net(net: Callable[[], nn.Module], x: np.ndarray, y: np.ndarray, epochs: int,
              seed: int, lr: float = 5e-3) -> nn.Module:
    """make_models.train (Adam, seeded shuffle, linear LR decay) on float32 inputs.

    The network is built after seeding, so that its initial weights do not depend on what ran
    before in the process (``--only`` gives the same bytes as a full run). Batches of 16: four
    times the updates of make_models' 64 for the same compute, which is what these few-epoch
    runs are short of.
    """
    mm.seed_everything(seed)
    return mm.train(net(), x.astype(np.float32), y, epochs, lr=lr, batch=16)


def exported(model: nn.Module, x: np.ndarray, exporter: str) -> tuple:
    """(ONNX model, opset) from one exporter, with a dynamic batch axis."""
    sample = torch.from_numpy(x[:2].astype(np.float32))
    if exporter == "torchscript":
        return mm.export_torchscript(model, sample, opset=TS_OPSET), TS_OPSET
    onx = strip_node_metadata(export_dynamo_default(model, sample))
    return onx, mm.opset_of(onx)


def strip_node_metadata(onx):
    """Drop the dynamo exporter's per-node debug metadata (``metadata_props``).

    It records the Python stack trace (the script's absolute path and line numbers) and the
    module path (``__main__.`` or ``make_pytorch_models.``, by entry point), so the bytes would
    depend on where and how the script runs; it has no meaning for the model.
    """
    for node in onx.graph.node:
        del node.metadata_props[:]
    return onx


def export_dynamo_default(model: nn.Module, sample: torch.Tensor):
    """The dynamo exporter at its default opset (what a user gets without asking)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(model, (sample,), None, dynamo=True, input_names=["input"],
                                 output_names=["output"],
                                 dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    return prog.model_proto


def built(model: nn.Module, x: np.ndarray, y: np.ndarray, exporter: str, description: str,
          min_top1: float, pending: bool) -> mm.Built:
    """A make_models.Built for one exporter (targets loihi2 unless waiting for tiling)."""
    onx, opset = exported(model, x, exporter)
    extra = {
        "source": f"pytorch {exporter} exporter (torch {torch.__version__.split('+')[0]}), "
                  "testdata/gen/make_pytorch_models.py",
        "targets": [] if pending and not TILING else ["loihi2"],
        "min_top1_agreement": AGREEMENT,
    }
    if pending and not TILING:
        extra["pending"] = PENDING
    return mm.Built(onx, x.astype(np.float32), description, exporter, opset, min_top1=min_top1,
                    torch_model=model, extra=extra, save_dtype="uint8", labels=y)


@functools.lru_cache(maxsize=None)
def squeezenet() -> nn.Module:
    x, y, _, _ = scenes(64)
    m = train_net(SqueezeNetS, x / 255.0, y, epochs=6, seed=101)
    return fold_input_scale(m, "stem", 255.0)


@functools.lru_cache(maxsize=None)
def densenet() -> nn.Module:
    x, y, _, _ = scenes(64)
    m = train_net(DenseNetS, x / 255.0, y, epochs=6, seed=102)
    return fold_input_scale(m, "stem", 255.0)


@functools.lru_cache(maxsize=None)
def cnn128() -> nn.Module:
    x, y, _, _ = scenes(128)
    # The largest net: two epochs on half the training set keep the script's run time down.
    m = train_net(CNN128, x[:800] / 255.0, y[:800], epochs=3, seed=103)
    return fold_input_scale(m, "conv1", 255.0)


@functools.lru_cache(maxsize=None)
def gesture_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    xtr, ytr = gesture_clips(66 * GESTURES, seed=200)
    xte, yte = gesture_clips(N_INPUTS, seed=201)
    return xtr, ytr, xte, yte


@functools.lru_cache(maxsize=None)
def dvs_gesture() -> nn.Module:
    xtr, ytr, _, _ = gesture_data()
    return train_net(DvsGestureCNN, xtr, ytr, epochs=40, seed=104).eval()


def image_case(net: Callable[[], nn.Module], size: int, description: str, pending: bool):
    def make(exporter: str) -> Callable[[], mm.Built]:
        def build() -> mm.Built:
            _, _, x, y = scenes(size)
            return built(net(), x, y, exporter, description, MIN_TOP1, pending)
        return build
    return make


def gesture_case(exporter: str) -> Callable[[], mm.Built]:
    def build() -> mm.Built:
        _, _, x, y = gesture_data()
        return built(dvs_gesture(), x, y, exporter,
                     "DVS-gesture-style CNN on 2x128x128 ON/OFF event counts (synthetic clips, "
                     "11 classes): avgpool 4x4, conv8-pool-conv16-pool-conv16-pool (3x3, ReLU, "
                     "2x2 max), linear 256->11", MIN_TOP1, True)
    return build


SQUEEZE = image_case(squeezenet, 64, "SqueezeNet-style on 3x64x64 digit scenes: conv16/2-relu-"
                     "maxpool, fire(8;16+16) x2, maxpool, fire(12;24+24), conv1x1->10, global "
                     "average pool", False)
DENSE = image_case(densenet, 64, "DenseNet-style on 3x64x64 digit scenes: conv12/2-BN-relu-maxpool, "
                   "dense block (3 x conv3x3-BN-relu, growth 6, concat), transition (conv1x1-BN-"
                   "relu, avgpool 2x2), dense block, transition, global average pool, linear 10",
                   False)
CNN = image_case(cnn128, 128, "CNN on 3x128x128 digit scenes: conv8-pool4-conv16-pool2-conv16-"
                 "pool2 (3x3, ReLU, max pooling), linear 1024->10", True)

PYTORCH_CASES: dict[str, Callable[[], mm.Built]] = {}
for _net, _make in [("squeezenet", SQUEEZE), ("densenet", DENSE), ("cnn128", CNN),
                    ("dvs_gesture", gesture_case)]:
    PYTORCH_CASES[f"{_net}_ts"] = _make("torchscript")
    PYTORCH_CASES[f"{_net}_dynamo"] = _make("dynamo")


def main(argv: list[str] | None = None) -> int:
    """Build the requested cases into --out."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=mm.DEFAULT_OUT,
                    help="output dir (default: %(default)s)")
    ap.add_argument("--only", choices=sorted(PYTORCH_CASES), action="append",
                    help="build just this case (may be given more than once)")
    args = ap.parse_args(argv)
    mm.setup_torch()
    for name, build in PYTORCH_CASES.items():
        if args.only and name not in args.only:
            continue
        b = build()
        mm.finish_case(name, b, args.out, b.labels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
