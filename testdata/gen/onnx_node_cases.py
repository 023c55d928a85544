#!/usr/bin/env python3
"""Selects the onnx package's node test cases for the operators of issue 12 and writes them to
testdata/onnx-node/ in the form `nmc eval` reads.

Source: the node test data shipped inside the pinned onnx wheel
(`onnx/backend/test/data/node/test_*/`), which onnx generates from `onnx.backend.test.case.node`
with its reference implementation. Pinned versions: testdata/gen/requirements-onnx-node.txt.

    python3 -m venv /tmp/onnxenv
    /tmp/onnxenv/bin/pip install -r testdata/gen/requirements-onnx-node.txt
    /tmp/onnxenv/bin/python testdata/gen/onnx_node_cases.py

Rules (also in testdata/onnx-node/README.md):

* in scope: a one-node graph whose operator is in OPS (default domain);
* applicable: the first node input is a float32 graph input of rank >= 1 and every graph output
  is float32 (nmc feeds one float32 input whose first axis is the sample axis, and compares the
  first output). Everything else is counted as not applicable and listed in the README;
* the second and later node inputs become initializers holding the test's input data
  ("weights as initializers"); the first input keeps its declared shape, so its first axis is
  the sample axis of `nmc eval`;
* cases whose files exceed MAX_BYTES are skipped (counted).

Expectations (`expect = "pass" | "fail"`) in cases.toml are kept from the existing file when the
script runs again; a new case starts as "fail". The Rust test (tests/src/onnx_node.rs) checks
them both ways and rewrites them when NMC_BLESS_ONNX_NODE=1 is set.
"""

import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

OPS = sorted(
    {
        # named by issue 12
        "AveragePool", "MaxPool", "Conv", "ConvTranspose", "ReduceSum", "ReduceMean",
        "LeakyRelu", "Pad", "Concat", "Flatten", "MatMul", "Slice", "Add", "Sub", "Mul",
        "Div", "Sum", "Max", "Min", "Mean",
        # already imported by nmc (compiler/src/onnx/registry.rs)
        "BatchNormalization", "Cast", "Clip", "Constant", "ConstantOfShape",
        "DequantizeLinear", "Dropout", "Gather", "Gemm", "GlobalAveragePool",
        "GlobalMaxPool", "Identity", "LogSoftmax", "QuantizeLinear", "Range", "Relu",
        "Reshape", "Shape", "Softmax", "Squeeze", "Transpose", "Unsqueeze",
    }
)
# Operators whose meaning does not change when a leading axis of 1 is added to every operand and
# result (Concat's non-negative axis moves by one).
# MatMul only when both operands have at least two axes (the leading ones broadcast).
LIFTABLE = {"Add", "Sub", "Mul", "Div", "Sum", "Max", "Min", "Mean", "Concat", "MatMul"}
BROADCASTING = {"Add", "Sub", "Mul", "Div", "Sum", "Max", "Min", "Mean", "Concat"}


# Operators that act on named axes: a case that moves, merges, slices or reduces the first axis
# cannot run with that axis as the sample axis; with a leading unit axis on every operand and
# result and the axis arguments moved by one it is the same computation (see `shift_axes`).
AXIS_LIFTABLE = {
    "Transpose", "Softmax", "LogSoftmax", "Squeeze", "Unsqueeze", "Slice", "Reshape", "Gather",
    "Flatten",
}


def attr(node, name):
    return next((a for a in node.attribute if a.name == name), None)


def touches_first_axis(node, opset, shapes, inits):
    """Whether the node as written acts on its first operand's first axis."""
    op, rank = node.op_type, len(shapes[0])
    norm = lambda a, r: a + r if a < 0 else a
    if op == "Transpose":
        a = attr(node, "perm")
        perm = list(a.ints) if a else list(range(rank))[::-1]
        return perm[0] != 0
    if op in ("Gather", "Flatten"):
        a = attr(node, "axis")
        return norm(a.i if a else (0 if op == "Gather" else 1), rank) == 0
    if op in ("Softmax", "LogSoftmax"):
        a = attr(node, "axis")
        axis = a.i if a else (1 if opset < 13 else -1)
        return norm(axis, rank) == 0
    if op in ("Squeeze", "Unsqueeze"):
        a = attr(node, "axes")
        axes = list(a.ints) if a else (list(inits[1]) if len(inits) > 1 else None)
        if axes is None:
            return False  # Squeeze of every unit axis: not liftable (it would drop the new one)
        r = rank + len(axes) if op == "Unsqueeze" else rank
        return 0 in [norm(x, r) for x in axes]
    if op == "Slice" and opset >= 10:
        axes = list(inits[3]) if len(inits) > 3 else list(range(len(inits[1])))
        return 0 in [norm(x, rank) for x in axes]
    if op == "Reshape" and opset >= 5:
        target = list(inits[1])
        return not target or target[0] not in (0, shapes[0][0])
    return False


def shift_axes(model, node, rank, ins):
    """Moves the axis arguments of a lifted node by one (inputs 1+ are TensorProtos in `ins`)."""
    op = node.op_type

    def set_ints(k, values):
        t = numpy_helper.from_array(np.array(values, dtype=np.int64), ins[k].name)
        ins[k].CopyFrom(t)

    if op == "Transpose":
        a = attr(node, "perm")
        perm = list(a.ints) if a else list(range(rank))[::-1]
        if a:
            node.attribute.remove(a)
        node.attribute.append(onnx.helper.make_attribute("perm", [0] + [p + 1 for p in perm]))
    elif op in ("Softmax", "LogSoftmax", "Gather", "Flatten"):
        a = attr(node, "axis")
        if a is None:
            # Gather's default axis is 0 (Flatten's 1 never touches the first axis).
            node.attribute.append(onnx.helper.make_attribute("axis", 1))
        elif a.i >= 0:
            a.i += 1
    elif op in ("Squeeze", "Unsqueeze"):
        a = attr(node, "axes")
        if a:
            new = [x + 1 if x >= 0 else x for x in a.ints]
            del a.ints[:]
            a.ints.extend(new)
        else:
            set_ints(1, [x + 1 if x >= 0 else x for x in numpy_helper.to_array(ins[1])])
    elif op == "Slice":
        if len(ins) > 3:
            set_ints(3, [x + 1 if x >= 0 else x for x in numpy_helper.to_array(ins[3])])
        else:
            n = len(numpy_helper.to_array(ins[1]))
            ins.append(numpy_helper.from_array(np.arange(1, n + 1, dtype=np.int64), "axes"))
            while len(node.input) < 3:
                node.input.append("")
            node.input.append("axes")
    elif op == "Reshape":
        set_ints(1, [1] + list(numpy_helper.to_array(ins[1])))


def varies_by_sample(op, shapes):
    """Whether an operand after the first one (an initializer in the written model) is aligned
    with the first operand's sample axis and has more than one entry there, so that it would
    differ from sample to sample."""
    rank = len(shapes[0])
    if rank == 0:
        return False
    if op in BROADCASTING:
        return any(len(s) >= rank and s[len(s) - rank] > 1 for s in shapes[1:])
    if op == "MatMul":
        # Leading axes broadcast as batch axes; a 1-D or 2-D B is a matrix.
        b = shapes[1]
        return len(b) >= 3 and (len(b) > rank or b[len(b) - rank] > 1)
    if op == "Gemm" and len(shapes) > 2:
        c = shapes[2]
        return len(c) == 2 and c[0] > 1
    return False

MAX_BYTES = 200 * 1024
FLOAT = onnx.TensorProto.FLOAT

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "testdata" / "onnx-node"
SRC = Path(onnx.__file__).parent / "backend" / "test" / "data" / "node"


def read_pb(path):
    t = onnx.TensorProto()
    t.ParseFromString(path.read_bytes())
    return t


def old_expectations():
    """Case name -> (expect, note) from an existing cases.toml."""
    path = OUT / "cases.toml"
    out = {}
    if not path.exists():
        return out
    name = None
    for line in path.read_text().splitlines():
        m = re.match(r'^\[(\w+)\]$', line)
        if m:
            name = m.group(1)
            out[name] = ["fail", None]
            continue
        m = re.match(r'^expect = "(pass|fail)"$', line)
        if m and name:
            out[name][0] = m.group(1)
    return out


def main():
    old = old_expectations()
    in_scope = []
    not_applicable = []  # (case, op, reason)
    too_big = []
    cases = []
    for d in sorted(SRC.iterdir()):
        model_path = d / "model.onnx"
        if not d.name.startswith("test_") or not model_path.exists():
            continue
        model = onnx.load(str(model_path))
        g = model.graph
        if len(g.node) != 1 or g.node[0].domain not in ("", "ai.onnx"):
            continue
        node = g.node[0]
        if node.op_type not in OPS:
            continue
        name = d.name[len("test_"):]
        in_scope.append(name)
        opset = next(
            (o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0
        )
        data = d / "test_data_set_0"
        inputs = sorted(data.glob("input_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
        outputs = sorted(data.glob("output_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
        graph_inputs = [i.name for i in g.input]
        reason = None
        tensors = all(v.type.HasField("tensor_type") for v in list(g.input) + list(g.output))
        ins = [read_pb(p) for p in inputs] if tensors else []
        outs = [read_pb(p) for p in outputs] if tensors else []
        if not tensors:
            reason = "an input or output is not a tensor (sequence or optional)"
        elif not node.input or not node.input[0] or not graph_inputs:
            reason = "the node has no graph input"
        elif node.input[0] != graph_inputs[0]:
            reason = "the first node input is not the first graph input"
        elif ins[0].data_type != FLOAT:
            reason = "the first input is not float32"
        elif any(o.data_type != FLOAT for o in outs):
            reason = "an output is not float32"
        elif len(ins) != len(graph_inputs) or len(outs) != len(g.output):
            reason = "the test data does not match the graph's inputs and outputs"
        lift = False
        axis_lift = False
        if not reason and node.op_type in AXIS_LIFTABLE:
            ints = [numpy_helper.to_array(t) for t in ins]
            axis_lift = touches_first_axis(node, opset, [list(t.dims) for t in ins], ints)
            lift = axis_lift
        if not reason and not lift:
            rank = len(ins[0].dims)
            # A constant operand whose axis aligned with the sample axis has more than one
            # entry would differ from sample to sample, which a per-sample model cannot say.
            varies = varies_by_sample(node.op_type, [list(t.dims) for t in ins])
            if rank == 0 or varies:
                if node.op_type in LIFTABLE and (
                    node.op_type != "MatMul" or all(len(t.dims) >= 2 for t in ins)
                ):
                    lift = True
                elif rank == 0:
                    reason = "the first input is a scalar (no sample axis)"
                else:
                    reason = "an operand given as an initializer varies along the sample axis"
        if reason:
            not_applicable.append((name, node.op_type, reason))
            continue
        if axis_lift:
            shift_axes(model, node, len(ins[0].dims), ins)
            if len(ins) > len(g.input):
                # Slice's added `axes` operand.
                vi = onnx.helper.make_tensor_value_info("axes", onnx.TensorProto.INT64, list(ins[-1].dims))
                g.input.append(vi)
        if lift:
            # Element-wise broadcasting and Concat mean the same with a leading unit axis on
            # every operand and result: the whole test is one sample.
            # Flatten at axis 0 already gives a leading unit axis: at axis 1 of the lifted
            # operand it gives the same result.
            flat = node.op_type == "Flatten"
            outs_lifted = [] if flat else list(g.output)
            for v in ([g.input[0]] if axis_lift else list(g.input)) + outs_lifted:
                dims = v.type.tensor_type.shape.dim
                d = onnx.TensorShapeProto.Dimension(dim_value=1)
                dims.insert(0, d)
            ins[0].dims.insert(0, 1)
            for t in [] if flat else outs:
                t.dims.insert(0, 1)
            if not axis_lift:
                for t in ins[1:]:
                    t.dims.insert(0, 1)
            for a in node.attribute:
                if a.name == "axis" and a.i >= 0 and not axis_lift:
                    a.i += 1
        # The second and later inputs become initializers with the test's data.
        inits = []
        for vi, t in zip(g.input[1:], ins[1:]):
            t = onnx.TensorProto.FromString(t.SerializeToString())
            t.name = vi.name
            inits.append(t)
        first = g.input[0]
        del g.input[1:]
        g.initializer.extend(inits)
        x = numpy_helper.to_array(ins[0]).astype(np.float32)
        y = numpy_helper.to_array(outs[0]).astype(np.float32)
        model_bytes = model.SerializeToString()
        size = len(model_bytes) + x.nbytes + y.nbytes + 256
        if size > MAX_BYTES:
            too_big.append((name, size))
            continue
        cases.append((name, node.op_type, opset, model_bytes, x, y, lift))

    if OUT.exists():
        for p in OUT.iterdir():
            if p.is_dir():
                shutil.rmtree(p)
    OUT.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Generated by testdata/gen/onnx_node_cases.py (onnx %s); `expect` is maintained by"
        % onnx.__version__,
        "# tests/src/onnx_node.rs (NMC_BLESS_ONNX_NODE=1 rewrites it from the observed results).",
        "",
    ]
    for name, op, opset, model_bytes, x, y, lift in cases:
        c = OUT / name
        c.mkdir()
        (c / "model.onnx").write_bytes(model_bytes)
        np.save(c / "input.npy", x)
        np.save(c / "expected.npy", y)
        expect = old.get(name, ["fail"])[0]
        lines += [
            f"[{name}]",
            f'op = "{op}"',
            f"opset = {opset}",
            f"input_shape = {list(x.shape)}",
            f"output_shape = {list(y.shape)}",
            f"unit_sample_axis = {'true' if lift else 'false'}",
            f'expect = "{expect}"',
            "",
        ]
    (OUT / "cases.toml").write_text("\n".join(lines))

    per_op = {}
    for name, op, *_ in cases:
        per_op.setdefault(op, 0)
        per_op[op] += 1
    readme = [
        "# onnx-node",
        "",
        "ONNX's own operator test cases (`onnx.backend.test.case.node`, generated by onnx's",
        "reference implementation and shipped as `onnx/backend/test/data/node/` in the onnx",
        f"{onnx.__version__} wheel) for the operators of issue 12, in the form `nmc eval` reads.",
        "Made by `testdata/gen/onnx_node_cases.py` with the versions pinned in",
        "`testdata/gen/requirements-onnx-node.txt`; checked by `tests/src/onnx_node.rs`",
        "(`cargo test -p nmc-tests -- onnx_node`), which needs no Python.",
        "",
        "Each `<case>/` holds `model.onnx` (the test's one-node model, its second and later inputs",
        "turned into initializers holding the test's data), `input.npy` (the first input, whose",
        "first axis is the sample axis of `nmc eval`) and `expected.npy` (the first output).",
        "`cases.toml` lists every case with its operator, opset, shapes and whether nmc is",
        "expected to pass (rtol 1e-4, atol 1e-5, NaN equals NaN).",
        "",
        "The sample axis: a case is used as onnx wrote it, its first input's first axis being the",
        "samples, when that works: every operand given as an initializer is the same for every",
        "sample (its axis aligned with the sample axis, if any, has size 1). Otherwise, and when",
        "the first input is a scalar, cases of " + ", ".join(sorted(LIFTABLE)) + " get a leading",
        "axis of 1 on every operand and result (the whole test is one sample; Concat's",
        "non-negative `axis` moves by one: the same computation), marked",
        "`unit_sample_axis = true`; cases of other operators are not applicable.",
        "Likewise cases of " + ", ".join(sorted(AXIS_LIFTABLE)) + " that move, merge or slice",
        "the first axis (a per-sample model cannot) get a leading axis of 1 on their data",
        "operand and result, with their axis arguments (perm, axis, axes, the target shape) moved",
        "by one: the same computation on one sample; also marked `unit_sample_axis = true`.",
        "Other cases that act on the first axis (Flatten at axis 0 or 2+, a reduction over all",
        "axes, Gather along axis 0, Gemm with transA) are kept as written and fail: nmc cannot",
        "express them.",
        "",
        f"Operators: {', '.join(OPS)}.",
        "",
        f"* one-node cases of these operators in onnx {onnx.__version__}: {len(in_scope)}",
        f"* not applicable (listed below): {len(not_applicable)}",
        f"* skipped as larger than {MAX_BYTES // 1024} KB: {len(too_big)}"
        + (" (" + ", ".join(n for n, _ in too_big) + ")" if too_big else ""),
        f"* committed: {len(cases)}",
        "",
        "Committed cases per operator: "
        + ", ".join(f"{op} {k}" for op, k in sorted(per_op.items()))
        + ".",
        "",
        "## Not applicable",
        "",
        "nmc feeds a model one float32 graph input whose first axis is the sample axis and",
        "compares float32 outputs, so these cases cannot be expressed:",
        "",
        "| case | operator | why |",
        "| --- | --- | --- |",
    ]
    readme += [f"| `{n}` | {op} | {r} |" for n, op, r in not_applicable]
    (OUT / "README.md").write_text("\n".join(readme) + "\n")
    print(
        f"in scope {len(in_scope)}, not applicable {len(not_applicable)}, "
        f"too big {len(too_big)}, committed {len(cases)}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
