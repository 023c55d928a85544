#!/usr/bin/env python3
"""AKD1000 test cases built the way a PyTorch user targeting Akida 1.0 would write them (issue 15).

Two networks of BrainChip's model zoo, written in PyTorch and exported with the TorchScript
exporter (opset 17):

* ``ds_cnn_kws``: a DS-CNN keyword-spotting net on a 1x49x10 "spectrogram" (the KWS input
  shape): a 5x5 stride-2 first convolution with PyTorch's symmetric pads 2 (+BN+ReLU), four
  separable blocks of 64 channels (depthwise 3x3 + BN, **no activation**, then pointwise 1x1 +
  BN + ReLU), global average pooling and a linear classifier. The last block pools its
  pointwise potentials before the ReLU, as akida_models' DS-CNN does
  (``separable_conv_block(..., pooling='global_avg')`` applies the pooling before BN and ReLU):
  Akida 1.0 pools potentials, then activates (docs/chips.md §7).
* ``mobilenet_v1_025``: MobileNet v1 with width multiplier 0.25 on 3x96x96: a 3x3 stride-2 first
  convolution with PyTorch's symmetric pads 1, thirteen separable blocks (depthwise 3x3 + BN, no
  activation, pointwise 1x1 + BN + ReLU6), global average pooling (before the last ReLU6, as
  above) and a linear classifier. Stride-2 depthwise convolutions pad Keras-"same" on their
  even inputs: 0 rows/columns before and 1 after (an explicit ``ZeroPad2d((0, 1, 0, 1))``,
  which the exporter keeps as a Pad node before the convolution).

The separable blocks have no activation between the depthwise and pointwise convolutions because
Akida 1.0 has no standalone depthwise layer: its SeparableConvolutional runs both convolutions
with one activation after the pointwise one (docs/chips.md §3.6).

Training. A user targeting Akida 1.0's 4-bit weights fine-tunes with them in the loop (BrainChip's
flow quantises, then retrains: QuantizeML / cnn2snn, docs/chips.md §3.4). After float training
the net is fine-tuned for a few epochs with its weights fake-quantised to 4 bits as nmc's AKD1000
quantiser will quantise them (compiler/src/passes/quantize_akida.rs): BatchNorm frozen and folded,
each depthwise channel on its own scale, each pointwise row on one scale over the depthwise
scales it absorbs, the classifier on one scale (straight-through gradients). The exported model
is the plain float network with the fine-tuned weights. DS-CNN needs it (trained in float only, it
loses 11 points of top-1 at 4-bit weights; fine-tuned, none); MobileNet keeps within 2 points of
float without it, so it is not fine-tuned.

Data (10 classes, scikit-learn's digits through make_models' fixed split): DS-CNN reads each
8x8 digit upscaled (bilinear) to 49x10 as a one-channel "spectrogram"; MobileNet reads
make_pytorch_models' coloured digit scenes at 96x96. Pixels are 0..255 integers saved as uint8;
the nets are trained on x/255 and the 1/255 is folded into the first convolution's weights.
Everything is seeded.

Run from the repository root (a few minutes on two CPU cores):

    python testdata/gen/make_akida_models.py            # both cases into testdata/models
    python testdata/gen/make_akida_models.py --only ds_cnn_kws --out /tmp/models

then record akida's own outputs and mapping (testdata/gen/akida_reference.py).
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import make_models as mm
import make_pytorch_models as mp

OPSET = 17
MIN_TOP1 = 0.5


WMAX = 7  # 4-bit weights: akida takes [-7, 7] (docs/chips.md §3.6)


def fake_quant(w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """round(w / scale) clamped to [-WMAX, WMAX], times scale; straight-through gradient."""
    q = torch.clamp(torch.round(w / scale), -WMAX, WMAX) * scale
    return w + (q - w).detach()


def folded(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The convolution with its (frozen) BatchNorm folded in: weight, bias."""
    g = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    b = bn.bias - bn.running_mean * g
    if conv.bias is not None:
        b = b + conv.bias * g
    return conv.weight * g.reshape(-1, 1, 1, 1), b


class Separable(nn.Module):
    """Depthwise kxk + BN (no activation), pointwise 1x1 + BN, then the activation.

    ``keras_same`` pads 0 before and 1 after (TensorFlow's Same at stride 2 on an even input);
    otherwise the depthwise convolution pads k // 2 on every side (Same at stride 1).
    ``pool_before_act`` pools the pointwise potentials globally before the activation.
    """

    def __init__(self, cin: int, cout: int, stride: int, act: nn.Module,
                 keras_same: bool = False, pool_before_act: bool = False) -> None:
        super().__init__()
        self.pad = nn.ZeroPad2d((0, 1, 0, 1)) if keras_same else nn.Identity()
        self.dw = nn.Conv2d(cin, cin, 3, stride=stride, padding=0 if keras_same else 1,
                            groups=cin, bias=False)
        self.dw_bn = nn.BatchNorm2d(cin)
        self.pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.pw_bn = nn.BatchNorm2d(cout)
        self.act = act
        self.pool_before_act = pool_before_act

    qat = False  # fake-quantised 4-bit weights (fine-tuning, see the module docs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.qat:
            x = self.quantised(x)
        else:
            x = self.dw_bn(self.dw(self.pad(x)))
            x = self.pw_bn(self.pw(x))
        if self.pool_before_act:
            x = F.adaptive_avg_pool2d(x, 1)
        return self.act(x)


    def quantised(self, x: torch.Tensor) -> torch.Tensor:
        """Depthwise and pointwise with weights quantised as nmc's AKD1000 quantiser does."""
        wd, bd = folded(self.dw, self.dw_bn)
        sd = (wd.abs().amax(dim=(1, 2, 3)) / WMAX).clamp_min(1e-12)
        wd = fake_quant(wd, sd.reshape(-1, 1, 1, 1))
        wp, bp = folded(self.pw, self.pw_bn)
        wp = wp[:, :, 0, 0] * sd.reshape(1, -1)  # the depthwise scales move into the rows
        sp = (wp.abs().amax(dim=1, keepdim=True) / WMAX).clamp_min(1e-12)
        wp = fake_quant(wp, sp) / sd.reshape(1, -1)
        x = F.conv2d(self.pad(x), wd, bd, self.dw.stride, self.dw.padding, groups=self.dw.groups)
        return F.conv2d(x, wp[:, :, None, None], bp)


def qat_finetune(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int,
                 lr: float = 1e-3) -> nn.Module:
    """A few epochs with fake-quantised 4-bit weights (BatchNorm frozen), seeded."""
    mm.seed_everything(mm.SEED)
    blocks = [m for m in model.modules() if isinstance(m, Separable)]
    for b in blocks:
        b.qat = True
    fc = model.fc
    plain = fc.forward

    def fc_quantised(v: torch.Tensor) -> torch.Tensor:
        s = (fc.weight.abs().max() / WMAX).clamp_min(1e-12)
        return F.linear(v, fake_quant(fc.weight, s), fc.bias)

    fc.forward = fc_quantised
    xt, yt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(mm.SEED)
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()  # frozen statistics: the fold the quantiser sees
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 16):
            idx = perm[i:i + 16]
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    for b in blocks:
        b.qat = False
    fc.forward = plain
    return model.eval()


class DsCnn(nn.Module):
    """DS-CNN for keyword spotting (akida_models' ds_cnn_kws layout, 64 channels)."""

    def __init__(self, classes: int = 10, width: int = 64) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(1, width, 5, stride=2, padding=2, bias=False)
        self.bn0 = nn.BatchNorm2d(width)
        self.blocks = nn.Sequential(*[
            Separable(width, width, 1, nn.ReLU(), pool_before_act=(i == 3)) for i in range(4)])
        self.fc = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn0(self.conv0(x)))
        x = self.blocks(x)
        return self.fc(torch.flatten(x, 1))


# MobileNet v1 (Howard et al. 2017, Table 1): (pointwise filters, depthwise stride) per block.
MOBILENET_V1 = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [
    (1024, 2), (1024, 1)]


class MobileNetV1(nn.Module):
    """MobileNet v1 with width multiplier ``alpha`` and ReLU6."""

    def __init__(self, alpha: float = 0.25, classes: int = 10) -> None:
        super().__init__()
        c = int(32 * alpha)
        self.conv0 = nn.Conv2d(3, c, 3, stride=2, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(c)
        blocks = []
        for i, (f, s) in enumerate(MOBILENET_V1):
            f = int(f * alpha)
            last = i == len(MOBILENET_V1) - 1
            blocks.append(Separable(c, f, s, nn.ReLU6(), keras_same=(s == 2),
                                    pool_before_act=last))
            c = f
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.bn0(self.conv0(x)))
        x = self.blocks(x)
        return self.fc(torch.flatten(x, 1))


def spectrograms(x: np.ndarray) -> np.ndarray:
    """(N, 64) digits in [0, 1] -> (N, 1, 49, 10) uint8 (bilinear upscaling)."""
    t = F.interpolate(torch.from_numpy(x.reshape(-1, 1, 8, 8)).float(), size=(49, 10),
                      mode="bilinear", align_corners=False).clamp(0, 1).numpy()
    return np.round(t * 255).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def kws_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data = mm.load_data()
    return (spectrograms(data.x_train), data.y_train,
            spectrograms(data.x_test[:mp.N_INPUTS]), data.y_test[:mp.N_INPUTS])


def built(model: nn.Module, x: np.ndarray, y: np.ndarray, description: str) -> mm.Built:
    onx = mm.export_torchscript(model, torch.from_numpy(x[:2].astype(np.float32)), opset=OPSET)
    extra = {
        "source": f"pytorch torchscript exporter (torch {torch.__version__.split('+')[0]}), "
                  "testdata/gen/make_akida_models.py",
        "targets": ["akd1000"],
    }
    return mm.Built(onx, x.astype(np.float32), description, "torchscript", OPSET,
                    min_top1=MIN_TOP1, torch_model=model, extra=extra, save_dtype="uint8",
                    labels=y)


def ds_cnn() -> mm.Built:
    xtr, ytr, xte, yte = kws_data()
    m = mp.train_net(DsCnn, xtr / 255.0, ytr, epochs=8, seed=301)
    m = qat_finetune(m, xtr / 255.0, ytr, epochs=6)
    m = mp.fold_input_scale(m, "conv0", 255.0)
    return built(m, xte, yte, "DS-CNN keyword-spotting net on 1x49x10 (digits as spectrograms, "
                 "10 classes): conv64 5x5/2 pads 2-BN-relu, 4 x separable (dw3x3-BN, pw64-BN-"
                 "relu; the last pools globally before its relu), linear 64->10")


def mobilenet() -> mm.Built:
    xtr, ytr, xte, yte = mp.scenes(96)
    m = mp.train_net(lambda: MobileNetV1(0.25), xtr / 255.0, ytr, epochs=6, seed=302)
    m = mp.fold_input_scale(m, "conv0", 255.0)
    return built(m, xte, yte, "MobileNet v1 alpha 0.25 on 3x96x96 digit scenes (10 classes): "
                 "conv8 3x3/2 pads 1-BN-relu6, 13 x separable (dw3x3-BN, Keras-same 0/1 pads at "
                 "stride 2; pw-BN-relu6; the last pools globally before its relu6), linear 256->10")


CASES: dict[str, Callable[[], mm.Built]] = {"ds_cnn_kws": ds_cnn, "mobilenet_v1_025": mobilenet}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=mm.DEFAULT_OUT)
    ap.add_argument("--only", choices=sorted(CASES), action="append")
    args = ap.parse_args(argv)
    mm.setup_torch()
    for name, build in CASES.items():
        if args.only and name not in args.only:
            continue
        b = build()
        mm.finish_case(name, b, args.out, b.labels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
