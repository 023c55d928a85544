#!/usr/bin/env python3
"""The DVS-like test cases for the Speck target (built by make_models.py, which imports this).

Data: the digits of make_models.py, upscaled to 32x32 (bilinear) and turned into one "event
frame" of a small diagonal motion, as a dynamic vision sensor would see it: channel 0 (OFF) is 1
where the image got darker by more than a contrast threshold when shifted by one pixel, channel 1
(ON) where it got brighter. So inputs are binary 2x32x32 maps (saved as uint8: small files),
with the DVS convention that polarity p is channel p.

Cases (case.toml has `targets = ["speck"]`: the Loihi 2 integration tests skip them):

* ``dvs_cnn``: conv 2->16->32->64 (3x3, padding 1, no bias) each with ReLU and 2x2 average
  pooling, then Linear 1024->10, trained in PyTorch and exported with ReLU activations. Also
  writes ``events.npy``: the first test image as a DVS event stream (structured x, y, t, p,
  uint32 each, specksim's format): every active pixel fires 8 times, evenly over 100 ms with a
  random phase.
* ``dvs_cnn_if``: the same trained network with every ReLU node replaced by an ``ai.nmc`` IF
  node (threshold 1.0, subtractive reset, v_min -1.0, i.e. sinabs' defaults). PyTorch cannot
  export custom-domain nodes directly, so the exported ReLU model is edited with the ``onnx``
  package; that is the supported way to write ``ai.nmc`` models. onnxruntime cannot run
  ``ai.nmc`` nodes, so ``expected.npy`` is onnxruntime's output of the ReLU twin (an IF
  network's float meaning is its rate limit, max(x, 0)/threshold = ReLU for threshold 1).
  32 test images only, to keep the files small.
* ``dvs_res``: a residual network as sinabs 3 maps it: conv 2->8 (3x3, stride 2, padding 1)
  with ReLU gives ``a``; conv 8->8 (3x3, padding 1) with ReLU reads ``a`` and gives ``b``; the
  sum ``a + b`` (sinabs' ``Merge``, written here as ``+``) feeds conv 8->16 (3x3, stride 2,
  padding 1) with ReLU, then Linear 1024->10. On the chip ``a``'s core has two destinations
  (``b``'s core and the merge's) and the merge's core two sources; the sum is taken before the
  convolution, so both operands use the same kernel (docs/chips.md §2.9). No pooling before the
  merge: an average pool on one operand only would make its spikes stand for a different amount
  (sinabs then averages rescale factors, ``weight_rescaling_methods.py``; nmc refuses).
* ``dvs_gesture_speck``: a DVS-gesture CNN on 2x128x128 ON/OFF event counts, written as sinabs
  users write one for Speck (an ``nn.Sequential``): ``nn.AvgPool2d(4)`` on the input first
  (run in the DVS layer, 128x128 -> 32x32), then conv 2->8, 8->16, 16->16 (3x3, padding 1, no
  bias) each with ReLU and 2x2 average pooling, flatten, Linear 256->11 without bias. Trained
  on make_pytorch_models.py's synthetic gesture clips (its ``gesture_data``: event counts of
  blobs moving along 11 class paths); the first 32 test clips are the inputs (uint8 counts).
  Also writes ``events.npy``: test clip 0 as a DVS event stream in sensor coordinates, each
  pixel firing 8 events per count evenly over 100 ms (``write_events``), so that binned into
  the default T = 8 steps every step carries about the clip's counts, as dvs_cnn's every step
  carries its frame.
* ``speck_too_big``: an untrained network that does not fit Speck: its second convolution
  (16->32, 3x3) on a 64x64 map needs 32 * 2^(6+6) = 128 Ki neuron entries, twice the largest
  core's 64 Ki (the example of sinabs' documentation). Two random inputs.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper
from torch import nn

import make_models as mm

CONTRAST = 0.08  # brightness change that makes an event (images are in [0, 1])
SPECK = {"targets": ["speck"]}


def dvs_frames(x: np.ndarray) -> np.ndarray:
    """(N, 64) digits in [0, 1] -> (N, 2, 32, 32) float32 binary event frames [OFF, ON]."""
    img = torch.from_numpy(x.reshape(-1, 1, 8, 8))
    img = F.interpolate(img, size=32, mode="bilinear", align_corners=False)
    moved = F.pad(img, (1, 0, 1, 0))[:, :, :32, :32]  # one pixel down and right
    d = moved - img
    return torch.cat([d < -CONTRAST, d > CONTRAST], 1).float().numpy()


class DvsCNN(nn.Module):
    """Three conv/ReLU/avg-pool stages and a linear head; convolutions without bias."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 16, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, bias=False)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.fc = nn.Linear(1024, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(F.relu(self.conv1(x)), 2)
        x = F.avg_pool2d(F.relu(self.conv2(x)), 2)
        x = F.avg_pool2d(F.relu(self.conv3(x)), 2)
        return self.fc(torch.flatten(x, 1))


class DvsRes(nn.Module):
    """A residual block as sinabs 3 runs it: two spike maps summed before a convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 8, 3, stride=2, padding=1, bias=False)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.conv3 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)
        self.fc = nn.Linear(1024, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.conv1(x))
        b = F.relu(self.conv2(a))
        c = F.relu(self.conv3(a + b))
        return self.fc(torch.flatten(c, 1))


class TooBig(nn.Module):
    """A network whose second layer needs 128 Ki neuron entries (no core has more than 64 Ki)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 16, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, bias=False)
        self.conv3 = nn.Conv2d(32, 32, 3, stride=2, padding=1, bias=False)
        self.fc = nn.Linear(512, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.avg_pool2d(F.relu(self.conv2(x)), 4)
        x = F.avg_pool2d(F.relu(self.conv3(x)), 2)
        return self.fc(torch.flatten(x, 1))


def gesture_net() -> nn.Module:
    """The sinabs-style gesture network: the input pooling first, average pooling only."""
    return nn.Sequential(
        nn.AvgPool2d(4),  # the DVS layer's pooling: 2x128x128 -> 2x32x32
        nn.Conv2d(2, 8, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2),  # 8x16x16
        nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2),  # 16x8x8
        nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2),  # 16x4x4
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 11, bias=False),
    )


@functools.lru_cache(maxsize=1)
def _data() -> tuple[np.ndarray, np.ndarray]:
    d = mm.load_data()
    return dvs_frames(d.x_train), dvs_frames(d.x_test)


@functools.lru_cache(maxsize=1)
def _trained() -> nn.Module:
    mm.seed_everything(mm.SEED + 10)
    xtr, _ = _data()
    return mm.train(DvsCNN(), xtr, mm.load_data().y_train, epochs=15, lr=3e-3)


def _export(m: nn.Module, x: np.ndarray) -> onnx.ModelProto:
    return mm.export_torchscript(m, torch.from_numpy(x[:2]), opset=13)


def write_events(path: Path, frame: np.ndarray, seed: int, per_unit: int = 8) -> int:
    """Writes one frame (2, H, W) of non-negative integers as a DVS event stream; returns the
    number of events. A pixel of value v fires v * per_unit events, evenly over 100 ms with a
    random phase (binary frames: 8 events per active pixel)."""
    rng = np.random.default_rng(seed)
    window_us = 100_000
    rows = []
    for p, y, x in zip(*np.nonzero(frame)):
        phase = rng.random()
        n = int(frame[p, y, x]) * per_unit
        for k in range(n):
            t = int((k + phase) * window_us / n)
            rows.append((x, y, t, p))
    rows.sort(key=lambda r: (r[2], r[3], r[1], r[0]))
    dtype = np.dtype([("x", "<u4"), ("y", "<u4"), ("t", "<u4"), ("p", "<u4")])
    np.save(path, np.array(rows, dtype=dtype))
    return len(rows)


def case_dvs_cnn() -> mm.Built:
    m = copy.deepcopy(_trained())
    _, xte = _data()
    onx = _export(m, xte)
    return mm.Built(
        onx, xte, "DVS-like digits (2x32x32 ON/OFF event frames): conv16-conv32-conv64 (ReLU, "
        "2x2 average pooling each), linear 1024->10", "torchscript", 13, torch_model=m,
        save_dtype="uint8",
        extra={**SPECK, "events": "events.npy", "events_sample": 0})


def case_dvs_cnn_if() -> mm.Built:
    m = copy.deepcopy(_trained())
    _, xte = _data()
    n = 32
    relu = _export(m, xte)
    onx = copy.deepcopy(relu)
    for node in onx.graph.node:
        if node.op_type == "Relu":
            node.op_type = "IF"
            node.domain = "ai.nmc"
            node.attribute.extend([
                helper.make_attribute("threshold", 1.0),
                helper.make_attribute("reset", "subtract"),
                helper.make_attribute("v_min", -1.0),
            ])
    onx.opset_import.append(helper.make_opsetid("ai.nmc", 1))
    assert sum(n.op_type == "IF" for n in onx.graph.node) == 3
    return mm.Built(
        onx, xte[:n], "dvs_cnn with its ReLU nodes replaced by ai.nmc IF nodes (threshold 1.0, "
        "reset subtract, v_min -1.0); expected.npy is onnxruntime on the ReLU twin",
        "torchscript + onnx edit", 13, torch_model=m, save_dtype="uint8",
        expected_model=relu, labels=mm.load_data().y_test[:n],
        extra={**SPECK, "source_case": "dvs_cnn"})


def case_dvs_res() -> mm.Built:
    mm.seed_everything(mm.SEED + 12)
    xtr, xte = _data()
    m = mm.train(DvsRes(), xtr, mm.load_data().y_train, epochs=10, lr=3e-3)
    n = 64
    onx = _export(m, xte)
    return mm.Built(
        onx, xte[:n], "residual DVS digits (2x32x32 ON/OFF event frames): a = conv8/2(x), "
        "b = conv8(a), conv16/2(a + b) (ReLU each, sinabs Merge: two destinations, two sources), "
        "linear 1024->10", "torchscript", 13, torch_model=m, save_dtype="uint8",
        labels=mm.load_data().y_test[:n], extra=SPECK)


N_GESTURE = 32  # test clips in dvs_gesture_speck (2x128x128 uint8: 1 MB)


def case_dvs_gesture_speck() -> mm.Built:
    import make_pytorch_models as mp

    xtr, ytr, xte, yte = mp.gesture_data()
    mm.seed_everything(mm.SEED + 13)
    m = mm.train(gesture_net(), xtr.astype(np.float32), ytr, epochs=30, lr=5e-3, batch=16).eval()
    x = xte[:N_GESTURE].astype(np.float32)
    onx = _export(m, x)
    return mm.Built(
        onx, x, "sinabs-style DVS-gesture CNN on 2x128x128 ON/OFF event counts (synthetic clips, "
        "11 classes): avgpool 4x4 (the DVS layer's), conv8-conv16-conv16 (3x3, no bias, ReLU, "
        "2x2 average pooling each), linear 256->11 without bias", "torchscript", 13,
        min_top1=0.5, torch_model=m, save_dtype="uint8", labels=yte[:N_GESTURE],
        extra={**SPECK, "events": "events.npy", "events_sample": 0})


def case_speck_too_big() -> mm.Built:
    mm.seed_everything(mm.SEED + 11)
    m = TooBig().eval()
    x = (np.random.default_rng(0).random((2, 2, 64, 64)) < 0.1).astype(np.float32)
    onx = _export(m, x)
    return mm.Built(
        onx, x, "untrained conv16-conv32(64x64: 128 Ki neuron entries)-pool4-conv32/2-pool2-"
        "linear10: does not fit speck", "torchscript", 13, min_top1=0.0, torch_model=m,
        save_dtype="uint8", labels=np.zeros(2, dtype=np.int64),
        extra={**SPECK, "expect_error": "fit"})


SPECK_CASES = {
    "dvs_cnn": case_dvs_cnn,
    "dvs_cnn_if": case_dvs_cnn_if,
    "dvs_res": case_dvs_res,
    "dvs_gesture_speck": case_dvs_gesture_speck,
    "speck_too_big": case_speck_too_big,
}


def finish_events(out: Path, name: str = "dvs_cnn") -> None:
    """events.npy next to dvs_cnn (its first test image) or dvs_gesture_speck (its first test
    clip): 8 events per unit of a pixel's value."""
    if name == "dvs_gesture_speck":
        import make_pytorch_models as mp

        _, _, xte, yte = mp.gesture_data()
        n = write_events(out / name / "events.npy", xte[0], seed=1)
        print(f"   events.npy: {n} events of test clip 0 (label {yte[0]})")
        return
    _, xte = _data()
    n = write_events(out / "dvs_cnn" / "events.npy", xte[0], seed=0)
    print(f"   events.npy: {n} events of test image 0 (label {mm.load_data().y_test[0]})")
