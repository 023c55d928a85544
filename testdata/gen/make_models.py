#!/usr/bin/env python3
"""Generate the ONNX test models used by nmc's tests.

Every case trains a tiny network on scikit-learn's bundled ``load_digits``
data (so no download is needed), exports it from PyTorch to ONNX and writes
``testdata/models/<case>/`` with:

* ``model.onnx`` (and ``model.onnx.data`` for the external-data case),
* ``inputs.npy``   float32 held-out test images, first axis = sample,
* ``labels.npy``   int64 labels of those images,
* ``expected.npy`` float32 onnxruntime (CPU) outputs of the saved model file,
* ``case.toml``    metadata (exporter, opset, accuracy, sparsity, ops).

Everything is seeded and deterministic, and each case seeds itself, so
``--only CASE`` gives the same bytes as a full run.

Usage:  python make_models.py [--out DIR] [--only CASE]
"""

from __future__ import annotations

import argparse
import collections
import copy
import functools
import io
import logging
import random
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from onnxruntime import quantization as ortq
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

NUM_TEST = 200  # held-out images written to inputs.npy
SEED = 0
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "models"


# --------------------------------------------------------------------------
# Determinism and data
# --------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Reset every RNG so each case is reproducible regardless of run order."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_torch() -> None:
    """Pin threads and ask torch for deterministic kernels (CPU only here)."""
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)


@dataclass(frozen=True)
class Digits:
    """The digits split: flat float32 images in [0, 1] and int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@functools.lru_cache(maxsize=1)
def load_data() -> Digits:
    """Load the 8x8 digits, scale 0..16 to [0, 1] and split with a fixed seed.

    The test split has exactly NUM_TEST images (stratified), all of which go
    into inputs.npy, so the recorded accuracy is measured on unseen data.
    """
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=NUM_TEST, random_state=0, stratify=y
    )
    return Digits(x_tr, y_tr, x_te, y_te)


def as_images(x: np.ndarray) -> np.ndarray:
    """Reshape flat (N, 64) images to NCHW (N, 1, 8, 8) for the CNNs."""
    return np.ascontiguousarray(x.reshape(-1, 1, 8, 8))


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------


def mlp(*widths: int, relu: type[nn.Module] = nn.ReLU, softmax: bool = False) -> nn.Sequential:
    """Linear layers of the given widths with an activation between them."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(relu())
    if softmax:
        layers.append(nn.Softmax(dim=1))
    return nn.Sequential(*layers)


class DigitsCNN(nn.Module):
    """Two conv/pool stages and a linear head.

    The flatten uses ``x.view(x.size(0), -1)`` on purpose: the TorchScript
    exporter turns it into a Shape/Gather/Unsqueeze/Concat/Reshape subgraph,
    which the compiler has to constant-fold or otherwise understand.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(x.size(0), -1)
        return self.fc(x)


class DigitsResCNN(nn.Module):
    """Conv+BN stem, one residual block, global average pool, linear head.

    Global pooling is ``nn.AdaptiveAvgPool2d(1)`` (exported as
    GlobalAveragePool), followed by ``torch.flatten``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(8)
        self.conv_a = nn.Conv2d(8, 8, 3, padding=1)
        self.bn_a = nn.BatchNorm2d(8)
        self.conv_b = nn.Conv2d(8, 8, 3, padding=1)
        self.bn_b = nn.BatchNorm2d(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn0(self.stem(x)))
        y = F.relu(self.bn_a(self.conv_a(x)))
        y = self.bn_b(self.conv_b(y))
        x = F.relu(x + y)
        x = torch.flatten(self.pool(x), 1)
        return self.fc(x)


class DigitsAkidaCNN(nn.Module):
    """A CNN within the Akida 1.0 (AKD1000) constraints, with a dense head.

    conv1 (1->8, 3x3, Same) becomes an InputConv2D on 8-bit input; its 2x2 max
    pooling is followed by a convolution, as Akida requires; conv2 (8->16,
    3x3, Same) has no pooling, so it may feed the FullyConnected head, whose
    input (16x4x4 = 256) is flattened column-major by Akida.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.conv2(x))
        return self.fc(torch.flatten(x, 1))


class DigitsAkidaGapCNN(nn.Module):
    """A CNN within the Akida 1.0 constraints, with a global-average-pooling head.

    Akida 1.0 pools the potentials before the activation, so the head is
    conv3 -> GlobalAveragePool -> ReLU -> Linear (not ReLU before the pool).
    conv3's 4x4 output meets the pooling rules (width 1..32, at least 3 rows).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.conv2(x))
        x = F.relu(torch.flatten(self.pool(self.conv3(x)), 1))
        return self.fc(x)


# --------------------------------------------------------------------------
# Training and pruning
# --------------------------------------------------------------------------


def prunable(model: nn.Module) -> list[torch.Tensor]:
    """Weights that become Gemm/MatMul/Conv weights (biases and BN excluded)."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def train(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    lr: float = 1e-2,
    masks: list[torch.Tensor] | None = None,
    batch: int = 64,
) -> nn.Module:
    """Adam + cross-entropy with a seeded shuffle and linearly decaying LR.

    The decay to zero makes the last epochs settle instead of bouncing,
    which matters for the heavily pruned networks.

    If ``masks`` are given, pruned weights are kept at exactly 0.0: their
    gradients are masked before the step and the weights re-masked after it.
    Models that end in Softmax are trained on the pre-softmax logits.
    """
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(xt) // batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 - step / steps)
    gen = torch.Generator().manual_seed(SEED)
    weights = prunable(model)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), batch):
            idx = perm[i : i + batch]
            loss = F.cross_entropy(logits(model, xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            if masks is not None:
                for w, m in zip(weights, masks):
                    w.grad.mul_(m)
            opt.step()
            sched.step()
            if masks is not None:
                apply_masks(weights, masks)
    return model.eval()


def logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Forward pass that skips a trailing Softmax (cross_entropy wants logits)."""
    if isinstance(model, nn.Sequential) and isinstance(model[-1], nn.Softmax):
        return model[:-1](x)
    return model(x)


@torch.no_grad()
def apply_masks(weights: list[torch.Tensor], masks: list[torch.Tensor]) -> None:
    """Zero the pruned weights in place (multiplying by 0/1 gives exact zeros)."""
    for w, m in zip(weights, masks):
        w.mul_(m)


@torch.no_grad()
def magnitude_mask(w: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Unstructured magnitude mask zeroing the smallest ``sparsity`` of ``w``."""
    k = int(round(sparsity * w.numel()))
    order = torch.argsort(w.abs().flatten(), stable=True)
    m = torch.ones(w.numel())
    m[order[:k]] = 0.0
    return m.view_as(w)


def prune_and_finetune(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    targets: list[float],
    steps: tuple[float, ...] = (0.6, 0.8, 0.9, 1.0),
    epochs: int = 8,
) -> nn.Module:
    """Gradual per-layer magnitude pruning: prune a bit more, fine-tune, repeat.

    ``targets`` is the final sparsity of each prunable weight (in module
    order); stage i prunes each layer to ``targets * steps[i]``. Pruning in
    stages lets the surviving weights compensate. Per-layer targets let a
    tiny layer (the 72-weight first conv) stay denser while the big layers
    carry most of the zeros.
    """
    weights = prunable(model)
    assert len(weights) == len(targets)
    for frac in steps:
        masks = [magnitude_mask(w, t * frac) for w, t in zip(weights, targets)]
        apply_masks(weights, masks)
        train(model, x, y, epochs, masks=masks)
    return model


@torch.no_grad()
def torch_top1(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of the torch model (used as a sanity check)."""
    return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


# --------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------


def export_torchscript(model: nn.Module, sample: torch.Tensor, opset: int, **kw) -> onnx.ModelProto:
    """Legacy TorchScript exporter (dynamo=False) with a dynamic batch axis."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (sample,),
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            **kw,
        )
    return onnx.load_from_string(buf.getvalue())


def export_dynamo(model: nn.Module, sample: torch.Tensor, opset: int) -> onnx.ModelProto:
    """torch.export-based exporter (dynamo=True), asking for a dynamic batch.

    Without ``dynamic_shapes`` torch.export specialises the batch to the
    sample's size; with it the ONNX input gets a symbolic ``batch`` dim.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(
            model,
            (sample,),
            None,
            dynamo=True,
            opset_version=opset,
            input_names=["input"],
            output_names=["output"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            verbose=False,
        )
    return prog.model_proto


# --------------------------------------------------------------------------
# ONNX inspection and onnxruntime
# --------------------------------------------------------------------------


def op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    """Op-type counts of the main graph, in order of first appearance."""
    return dict(collections.Counter(n.op_type for n in model.graph.node))


def _const_values(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Initializers and Constant-node outputs by name."""
    vals = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    vals[n.output[0]] = numpy_helper.to_array(a.t)
    return vals


def _weight_zero_mask(name: str, producers: dict, consts: dict) -> np.ndarray | None:
    """Zero mask of a weight, following Transpose/Identity/DequantizeLinear back.

    For a DequantizeLinear weight the dequantised value is zero exactly when
    the stored integer equals its zero point.
    """
    while name not in consts:
        node = producers.get(name)
        if node is None:
            return None
        if node.op_type == "DequantizeLinear":
            q = consts.get(node.input[0])
            zp = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else 0
            return None if q is None else (q == zp)
        if node.op_type not in ("Transpose", "Identity", "Reshape", "Cast"):
            return None
        name = node.input[0]
    return consts[name] == 0


def weight_sparsity(model: onnx.ModelProto) -> float:
    """Fraction of exactly-zero weights over all Gemm/MatMul/Conv weights."""
    consts = _const_values(model)
    producers = {o: n for n in model.graph.node for o in n.output}
    zeros = total = 0
    for n in model.graph.node:
        if n.op_type in ("Gemm", "Conv"):
            cands = [n.input[1]]
        elif n.op_type == "MatMul":
            cands = list(n.input)
        else:
            continue
        for c in cands:
            m = _weight_zero_mask(c, producers, consts)
            if m is not None:
                zeros += int(m.sum())
                total += m.size
    assert total > 0, "no weights found"
    return zeros / total


def ort_run(path: Path, x: np.ndarray) -> np.ndarray:
    """Run the saved model with onnxruntime CPU; per-sample if batch is static."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # single thread: bit-reproducible outputs
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    if isinstance(inp.shape[0], int) and inp.shape[0] != len(x):
        outs = [sess.run(None, {inp.name: x[i : i + 1]})[0] for i in range(len(x))]
        return np.concatenate(outs).astype(np.float32)
    return sess.run(None, {inp.name: x})[0].astype(np.float32)


def batch_is_static(model: onnx.ModelProto) -> bool:
    """True if the model's first input has a fixed (numeric) batch dim."""
    d0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    return d0.HasField("dim_value")


# --------------------------------------------------------------------------
# Case plumbing
# --------------------------------------------------------------------------


@dataclass
class Built:
    """What a case builder hands back for checking and writing."""

    model: onnx.ModelProto
    inputs: np.ndarray
    description: str
    exporter: str
    opset: int
    min_top1: float = 0.95
    torch_model: nn.Module | None = None  # for the ORT-vs-torch check
    external_data: bool = False
    extra: dict = field(default_factory=dict)
    save_dtype: str = "float32"  # dtype of inputs.npy (the values must be exact in it)
    expected_model: onnx.ModelProto | None = None  # run by onnxruntime instead of `model`
    labels: np.ndarray | None = None  # instead of the test labels (cases with fewer inputs)


def save_model(built: Built, path: Path) -> None:
    """Write model.onnx, with all initializers in model.onnx.data if asked."""
    data = path.with_name("model.onnx.data")
    if data.exists():
        data.unlink()
    if built.external_data:
        onnx.save_model(
            built.model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location="model.onnx.data",
            size_threshold=0,
        )
    else:
        onnx.save_model(built.model, str(path))


def toml_value(v) -> str:
    """Minimal TOML literal for the few types case.toml uses."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(round(v, 6))
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(type(v))


def write_case_toml(path: Path, fields: dict) -> None:
    """Write case.toml with keys in a stable order."""
    path.write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in fields.items()))


def finish_case(name: str, built: Built, out: Path, labels: np.ndarray) -> None:
    """Save, run with onnxruntime from disk, verify, and write all files."""
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    onnx.checker.check_model(built.model)
    model_path = d / "model.onnx"
    save_model(built, model_path)

    if built.expected_model is not None:
        with tempfile.TemporaryDirectory() as tmp:
            twin = Path(tmp) / "twin.onnx"
            onnx.save_model(built.expected_model, str(twin))
            expected = ort_run(twin, built.inputs)
    else:
        expected = ort_run(model_path, built.inputs)
    if built.labels is not None:
        labels = built.labels
    top1 = float((expected.argmax(1) == labels).mean())
    reloaded = onnx.load(str(model_path))  # also pulls in external data
    sparsity = weight_sparsity(reloaded)
    hist = op_histogram(reloaded)
    static = batch_is_static(reloaded)

    if built.torch_model is not None:
        with torch.no_grad():
            ref = built.torch_model(torch.from_numpy(built.inputs)).numpy()
        diff = float(np.abs(ref - expected).max())
        assert diff < 1e-4, f"{name}: onnxruntime vs torch max diff {diff}"
    assert top1 >= built.min_top1, f"{name}: top-1 {top1} < {built.min_top1}"

    saved = built.inputs.astype(built.save_dtype)
    assert np.array_equal(saved.astype(np.float32), built.inputs), "inputs not exact in save_dtype"
    np.save(d / "inputs.npy", saved)
    np.save(d / "labels.npy", labels.astype(np.int64))
    np.save(d / "expected.npy", expected)
    fields = {
        "description": built.description,
        "exporter": built.exporter,
        "opset": built.opset,
        "float_top1": top1,
        "weight_sparsity": sparsity,
        "features": list(hist),
        "static_batch": static,
        "input_shape": list(built.inputs.shape),
        "output_shape": list(expected.shape),
    }
    fields.update(built.extra)
    write_case_toml(d / "case.toml", fields)

    print(f"== {name}: opset {built.opset} ({built.exporter}), input {built.inputs.shape}, "
          f"static_batch={static}")
    print(f"   float top-1 {top1:.4f}  weight sparsity {sparsity:.4f}")
    print(f"   ops {hist}")


def opset_of(model: onnx.ModelProto) -> int:
    """Default-domain opset actually recorded in the model."""
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _trained_dense_mlp() -> nn.Module:
    """The 64-128-64-10 MLP shared by digits_mlp, the sparse and QDQ cases."""
    seed_everything(SEED)
    data = load_data()
    return train(mlp(64, 128, 64, 10), data.x_train, data.y_train, epochs=30)


def dense_mlp() -> nn.Module:
    """A fresh copy of the trained dense MLP (callers may mutate it)."""
    return copy.deepcopy(_trained_dense_mlp())


@functools.lru_cache(maxsize=None)
def _trained_cnn() -> nn.Module:
    """The dense CNN shared by digits_cnn and digits_cnn_sparse."""
    seed_everything(SEED)
    data = load_data()
    return train(DigitsCNN(), as_images(data.x_train), data.y_train, epochs=30)


def case_digits_mlp() -> Built:
    """Baseline: TorchScript Gemm/Relu MLP with a dynamic batch axis."""
    m = dense_mlp()
    x = load_data().x_test
    onx = export_torchscript(m, torch.from_numpy(x[:2]), opset=13)
    return Built(onx, x, "MLP 64-128-64-10 with ReLU", "torchscript", 13, torch_model=m,
                 extra={"targets": ["loihi2", "akd1000"]})


def case_digits_mlp_sparse() -> Built:
    """Same MLP pruned to 85 % exact zeros, exported with the dynamo exporter."""
    seed_everything(SEED + 1)
    data = load_data()
    m = prune_and_finetune(dense_mlp(), data.x_train, data.y_train, targets=[0.85, 0.85, 0.85])
    onx = export_dynamo(m, torch.from_numpy(data.x_test[:2]), opset=18)
    return Built(onx, data.x_test, "MLP 64-128-64-10 with ReLU, 85% unstructured magnitude pruning",
                 "dynamo", opset_of(onx), torch_model=m, extra={"targets": ["loihi2", "akd1000"]})


def case_digits_cnn() -> Built:
    """CNN with the TorchScript shape subgraph (view(size(0), -1)) at opset 11."""
    m = copy.deepcopy(_trained_cnn())
    x = as_images(load_data().x_test)
    onx = export_torchscript(m, torch.from_numpy(x[:2]), opset=11)
    return Built(onx, x, "CNN conv8-pool-conv16-pool-view-linear10", "torchscript", 11, torch_model=m)


def case_digits_cnn_sparse() -> Built:
    """Same CNN with 85 % of conv+linear weights pruned, dynamo exporter."""
    seed_everything(SEED + 2)
    data = load_data()
    xtr = as_images(data.x_train)
    # conv1 has only 72 weights; 85 % of it leaves ~1 tap per filter and
    # the net collapses, so it is pruned to 50 % and the rest to 85 %.
    m = prune_and_finetune(copy.deepcopy(_trained_cnn()), xtr, data.y_train,
                           targets=[0.5, 0.85, 0.85])
    x = as_images(data.x_test)
    onx = export_dynamo(m, torch.from_numpy(x[:2]), opset=18)
    return Built(onx, x, "CNN conv8-pool-conv16-pool-view-linear10, unstructured magnitude pruning (conv1 50%, conv2 85%, fc 85%)",
                 "dynamo", opset_of(onx), torch_model=m)


def case_digits_rescnn() -> Built:
    """Residual CNN whose ONNX keeps BatchNormalization nodes (not folded).

    The TorchScript exporter folds BN into the preceding Conv in EVAL mode;
    TrainingMode.PRESERVE with the module in eval() skips that fold and
    emits inference-mode BatchNormalization with the trained running stats.
    """
    seed_everything(SEED + 3)
    data = load_data()
    m = train(DigitsResCNN(), as_images(data.x_train), data.y_train, epochs=30)
    bn = m.bn_a
    assert not torch.allclose(bn.running_mean, torch.zeros(8)), "BN stats untrained"
    assert not torch.allclose(bn.running_var, torch.ones(8)), "BN stats untrained"
    x = as_images(data.x_test)
    onx = export_torchscript(m, torch.from_numpy(x[:2]), opset=15,
                             training=torch.onnx.TrainingMode.PRESERVE)
    n_bn = sum(n.op_type == "BatchNormalization" for n in onx.graph.node)
    assert n_bn == 3, f"expected 3 BatchNormalization nodes, got {n_bn}"
    return Built(onx, x, "Residual CNN: conv+BN+relu, [conv+BN+relu+conv+BN]+skip, relu, "
                 "AdaptiveAvgPool2d(1) (GlobalAveragePool), flatten, linear8->10",
                 "torchscript", 15, torch_model=m)


def case_digits_mlp_extdata() -> Built:
    """Small softmax MLP stored with every initializer in model.onnx.data."""
    seed_everything(SEED + 4)
    data = load_data()
    m = train(mlp(64, 96, 10, softmax=True), data.x_train, data.y_train, epochs=30)
    onx = export_torchscript(m, torch.from_numpy(data.x_test[:2]), opset=17)
    return Built(onx, data.x_test, "MLP 64-96-10 with ReLU and Softmax, all initializers external",
                 "torchscript", 17, torch_model=m, external_data=True,
                 extra={"external_data": "model.onnx.data", "targets": ["loihi2", "akd1000"]})


def case_digits_mlp_relu6_opset9() -> Built:
    """ReLU6 at opset 9: the old Clip with min/max attributes, not inputs."""
    seed_everything(SEED + 5)
    data = load_data()
    m = train(mlp(64, 64, 10, relu=nn.ReLU6), data.x_train, data.y_train, epochs=30)
    onx = export_torchscript(m, torch.from_numpy(data.x_test[:2]), opset=9)
    clips = [n for n in onx.graph.node if n.op_type == "Clip"]
    assert clips, "no Clip emitted"
    for c in clips:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in c.attribute}
        assert attrs == {"min": 0.0, "max": 6.0} and len(c.input) == 1, attrs
    return Built(onx, data.x_test, "MLP 64-64-10 with ReLU6 as opset-9 Clip(min=0,max=6 attributes)",
                 "torchscript", 9, torch_model=m, extra={"targets": ["loihi2", "akd1000"]})


class DigitsCalibration(ortq.CalibrationDataReader):
    """Feeds ~200 training images, 20 at a time, to the ORT calibrator."""

    def __init__(self, x: np.ndarray, input_name: str, batch: int = 20) -> None:
        self._batches = iter([{input_name: x[i : i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self._batches, None)


def case_digits_mlp_qdq() -> Built:
    """digits_mlp quantized by onnxruntime (static, QDQ, per-tensor U8/S8)."""
    data = load_data()
    float_model = export_torchscript(dense_mlp(), torch.from_numpy(data.x_test[:2]), opset=13)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "qdq.onnx"
        onnx.save_model(float_model, str(src))
        calib = DigitsCalibration(data.x_train[:200], "input")
        logging.getLogger().setLevel(logging.ERROR)
        ortq.quantize_static(
            str(src),
            str(dst),
            calib,
            quant_format=ortq.QuantFormat.QDQ,
            per_channel=False,
            activation_type=ortq.QuantType.QUInt8,
            weight_type=ortq.QuantType.QInt8,
            calibrate_method=ortq.CalibrationMethod.MinMax,
        )
        onx = onnx.load(str(dst))
    hist = op_histogram(onx)
    assert hist.get("QuantizeLinear") and hist.get("DequantizeLinear"), hist
    return Built(onx, data.x_test, "digits_mlp statically quantized by onnxruntime: QDQ, per-tensor, "
                 "activations QUInt8, weights QInt8, MinMax calibration on 200 training images",
                 "torchscript", opset_of(onx), min_top1=0.93,
                 extra={"source_case": "digits_mlp",
                        "quantization": "onnxruntime quantize_static QDQ U8/S8 per-tensor",
                        "targets": ["loihi2", "akd1000"]})


def case_digits_cnn_akida() -> Built:
    """CNN within the AKD1000 constraints, dense head (TorchScript, opset 13)."""
    seed_everything(SEED + 6)
    data = load_data()
    m = train(DigitsAkidaCNN(), as_images(data.x_train), data.y_train, epochs=30)
    x = as_images(data.x_test)
    onx = export_torchscript(m, torch.from_numpy(x[:2]), opset=13)
    return Built(onx, x, "AKD1000-compatible CNN conv8-relu-maxpool-conv16-relu-flatten-linear10",
                 "torchscript", 13, torch_model=m, extra={"targets": ["loihi2", "akd1000"]})


def case_digits_cnn_akida_gap() -> Built:
    """CNN within the AKD1000 constraints, global-average-pooling head."""
    seed_everything(SEED + 7)
    data = load_data()
    m = train(DigitsAkidaGapCNN(), as_images(data.x_train), data.y_train, epochs=40)
    x = as_images(data.x_test)
    onx = export_torchscript(m, torch.from_numpy(x[:2]), opset=13)
    return Built(onx, x, "AKD1000-compatible CNN conv16-relu-maxpool-conv32-relu-conv64-globalavgpool-relu-linear10",
                 "torchscript", 13, torch_model=m, extra={"targets": ["loihi2", "akd1000"]})


CASES: dict[str, Callable[[], Built]] = {
    "digits_mlp": case_digits_mlp,
    "digits_mlp_sparse": case_digits_mlp_sparse,
    "digits_cnn": case_digits_cnn,
    "digits_cnn_sparse": case_digits_cnn_sparse,
    "digits_rescnn": case_digits_rescnn,
    "digits_mlp_extdata": case_digits_mlp_extdata,
    "digits_mlp_relu6_opset9": case_digits_mlp_relu6_opset9,
    "digits_mlp_qdq": case_digits_mlp_qdq,
    "digits_cnn_akida": case_digits_cnn_akida,
    "digits_cnn_akida_gap": case_digits_cnn_akida_gap,
}


def main(argv: list[str] | None = None) -> int:
    """Build the requested cases into --out."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output dir (default: %(default)s)")
    # The DVS/Speck cases live in make_speck_models.py (imported here so that one command builds
    # every case).
    from make_speck_models import SPECK_CASES, finish_events
    # The real-architecture cases of make_pytorch_models.py (issue 12) too: they take most of
    # the run time (training at 64x64 and 128x128), and that script alone builds just them.
    from make_pytorch_models import PYTORCH_CASES
    # And the AKD1000 cases written for Akida 1.0 (issue 15: DS-CNN, MobileNet v1 0.25).
    from make_akida_models import CASES as AKIDA_CASES

    cases = {**CASES, **SPECK_CASES, **PYTORCH_CASES, **AKIDA_CASES}
    ap.add_argument("--only", choices=sorted(cases), help="build just this case")
    args = ap.parse_args(argv)
    setup_torch()
    labels = load_data().y_test
    for name, build in cases.items():
        if args.only and name != args.only:
            continue
        finish_case(name, build(), args.out, labels)
        if name in ("dvs_cnn", "dvs_gesture_speck"):
            finish_events(args.out, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
