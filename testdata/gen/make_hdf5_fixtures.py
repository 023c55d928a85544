"""Writes the small HDF5 fixtures of testdata/hdf5/ the way h5py-based exporters do.

lava-dl's netx export (slayer `export_hdf5`) writes groups, fixed-length `S10` type strings,
NumPy scalars (int64, bool as an HDF5 enum), Python str as variable-length strings and float32
weight arrays; `nir.write` writes variable-length strings and gzip-compressed chunked arrays.
These fixtures hold every such form, with known values that tests/src/snn_io.rs checks.
Run from the repository root: python3 testdata/gen/make_hdf5_fixtures.py (h5py >= 3).
"""

import h5py
import numpy as np

OUT = "testdata/hdf5"


def fill(f):
    f.attrs["title"] = "fixture"
    f.attrs["count"] = np.int32(7)
    f.attrs["scale"] = np.float64(0.5)
    f.create_dataset("int_scalar", data=np.int64(-42))
    f.create_dataset("float_scalar", data=np.float32(1.25))
    f.create_dataset("double_scalar", data=np.float64(-2.5))
    f.create_dataset("bool_scalar", data=np.bool_(True))
    f.create_dataset("u8_array", data=np.arange(5, dtype=np.uint8))
    f.create_dataset("i16_array", data=np.array([-3, 0, 3], dtype=np.int16))
    f.create_dataset("f32_1d", data=np.arange(6, dtype=np.float32) / 4)
    f.create_dataset("f32_2d", data=np.arange(12, dtype=np.float32).reshape(3, 4) - 5)
    f.create_dataset("f32_3d", data=np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    f.create_dataset("f32_4d", data=np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5) * 0.5)
    f.create_dataset("f64_2d", data=np.arange(6, dtype=np.float64).reshape(2, 3) + 0.25)
    f.create_dataset("i64_1d", data=np.array([1, -2, 3], dtype=np.int64))
    f.create_dataset("be_i32", data=np.array([1, 256, -1], dtype=">i4"))
    f.create_dataset("vlen_str", data="CUBA", dtype=h5py.string_dtype())
    f.create_dataset("py_str", data="hello")
    f.create_dataset("fixed_str", (1,), "S10", [b"dense"])
    f.create_dataset("bytes_scalar", data=np.bytes_(b"conv"))
    f.create_dataset("vlen_str_2d", data=np.array([["a", "bb"], ["ccc", "dddd"]], dtype=object),
                     dtype=h5py.string_dtype())
    f.create_dataset("gzip_f32", data=np.arange(1000, dtype=np.float32).reshape(10, 100),
                     compression="gzip", chunks=(4, 30))
    f.create_dataset("gzip_i64", data=np.arange(50, dtype=np.int64) * -3, compression="gzip")
    f.create_dataset("chunked_plain", data=np.arange(30, dtype=np.float32), chunks=(8,))
    f.create_dataset("empty_f32", data=np.zeros((0,), dtype=np.float32))
    g = f.create_group("group")
    g.create_dataset("nested/deep", data=np.float32(3.0))
    g.attrs["names"] = np.array([b"x", b"yy"])
    for i in range(12):  # enough entries to split a symbol-table B-tree node / go dense
        f.create_dataset(f"many/{i}", data=np.int64(i))


def main():
    with h5py.File(f"{OUT}/fixtures.h5", "w") as f:  # default: superblock v0, symbol tables
        fill(f)
    with h5py.File(f"{OUT}/fixtures_latest.h5", "w", libver="latest") as f:  # v3, link messages
        fill(f)
        g = f.create_group("dense_links")
        for i in range(40):  # more than 8 links: dense link storage (fractal heap + v2 B-tree)
            g.create_dataset(f"d{i:02}", data=np.int32(i))
    with h5py.File(f"{OUT}/userblock.h5", "w", userblock_size=512) as f:
        f.create_dataset("x", data=np.float32(9.0))


def netx_layer(layers, i, kind, shape, **data):
    """One `/layer/<i>` group as slayer's `export_hdf5` writes it."""
    g = layers.create_group(str(i))
    g.create_dataset("type", (1,), "S10", [kind.encode("ascii")])
    g.create_dataset("shape", data=np.array(shape))
    for k, v in data.items():
        g.create_dataset(k, data=v)
    return g


def cuba(g, i_decay, v_decay, v_th):
    for k, v in {"type": "CUBA", "iDecay": i_decay, "vDecay": v_decay, "vThMant": v_th,
                 "refDelay": 1, "gradedSpike": False}.items():
        g.create_dataset(f"neuron/{k}", data=v)


def make_netx():
    rng = np.random.default_rng(1)
    with h5py.File(f"{OUT}/netx_mlp.net", "w") as f:  # input 8 -> dense 6 -> dense 3
        layers = f.create_group("layer")
        cuba(netx_layer(layers, 0, "input", (8,)), 4096, 4096, 64)
        w1 = rng.integers(-20, 20, size=(6, 8)).astype(np.float32)
        cuba(netx_layer(layers, 1, "dense", (6,), weight=w1, inFeatures=8, outFeatures=6),
             1024, 128, 80)
        w2 = rng.integers(-20, 20, size=(3, 6)).astype(np.float32)
        cuba(netx_layer(layers, 2, "dense", (3,), weight=w2, inFeatures=6, outFeatures=3),
             0, 4096, 100)
        f.create_dataset("simulation/Ts", data=1.0)
        f.create_dataset("simulation/tSample", data=100)
    with h5py.File(f"{OUT}/netx_conv.net", "w") as f:  # input (2, 8, 6) -> conv -> flatten -> dense
        layers = f.create_group("layer")
        netx_layer(layers, 0, "input", (2, 8, 6))
        wc = rng.integers(-8, 8, size=(4, 2, 3, 3)).astype(np.float32)
        cuba(netx_layer(layers, 1, "conv", (4, 4, 3), weight=wc, inChannels=2, outChannels=4,
                        kernelSize=np.array([3, 3]), stride=np.array([2, 2]),
                        padding=np.array([1, 1]), dilation=np.array([1, 1]), groups=1),
             512, 256, 50)
        netx_layer(layers, 2, "flatten", (48,))
        wd = rng.integers(-8, 8, size=(5, 48)).astype(np.float32)
        netx_layer(layers, 3, "dense", (5,), weight=wd, inFeatures=48, outFeatures=5)
    with h5py.File(f"{OUT}/netx_sdnn.net", "w") as f:  # unsupported neuron
        layers = f.create_group("layer")
        netx_layer(layers, 0, "input", (4,))
        g = netx_layer(layers, 1, "dense", (2,), weight=np.ones((2, 4), np.float32))
        g.create_dataset("neuron/type", data="SDNN")
        g.create_dataset("neuron/vThMant", data=10)
    with h5py.File(f"{OUT}/netx_delay.net", "w") as f:  # unsupported delays
        layers = f.create_group("layer")
        netx_layer(layers, 0, "input", (4,))
        cuba(netx_layer(layers, 1, "dense", (2,), weight=np.ones((2, 4), np.float32),
                        delay=np.array([1.0, 2.0])), 0, 4096, 10)


def make_nir():
    import nir
    rng = np.random.default_rng(2)
    n = 5
    full = lambda v, k=n: np.full(k, v, dtype=np.float32)  # noqa: E731
    mlp = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([4])}),
            "fc1": nir.Affine(rng.normal(size=(n, 4)).astype(np.float32),
                              rng.normal(size=n).astype(np.float32)),
            "lif1": nir.LIF(tau=full(2e-3), r=full(20.0), v_leak=full(0.0),
                            v_threshold=full(1.0)),
            "fc2": nir.Linear(rng.normal(size=(3, n)).astype(np.float32)),
            "cuba2": nir.CubaLIF(tau_syn=full(5e-4, 3), tau_mem=full(1e-3, 3), r=full(10.0, 3),
                                 v_leak=full(0.0, 3), v_threshold=full(0.5, 3),
                                 w_in=full(5.0, 3)),
            "output": nir.Output(output_type={"output": np.array([3])}),
        },
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "cuba2"),
               ("cuba2", "output")],
    )
    nir.write(f"{OUT}/nir_mlp.nir", mlp)
    conv = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2, 8, 8])}),
            "conv": nir.Conv2d(input_shape=(8, 8),
                               weight=rng.normal(size=(3, 2, 3, 3)).astype(np.float32),
                               stride=1, padding=1, dilation=1, groups=1,
                               bias=np.zeros(3, np.float32)),
            "if1": nir.IF(r=np.full((3, 8, 8), 2.0, np.float32),
                          v_threshold=np.full((3, 8, 8), 1.0, np.float32)),
            "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                  padding=np.array([0, 0])),
            "flat": nir.Flatten(input_type={"input": np.array([3, 4, 4])}, start_dim=0),
            "fc": nir.Linear(rng.normal(size=(2, 48)).astype(np.float32)),
            "output": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[("input", "conv"), ("conv", "if1"), ("if1", "pool"), ("pool", "flat"),
               ("flat", "fc"), ("fc", "output")],
        type_check=False,
    )
    nir.write(f"{OUT}/nir_conv.nir", conv)
    dag = nir.NIRGraph(  # two branches summed into one LIF
        nodes={
            "input": nir.Input(input_type={"input": np.array([3])}),
            "a": nir.Linear(np.eye(3, dtype=np.float32)),
            "b": nir.Linear(2 * np.eye(3, dtype=np.float32)),
            "lif": nir.LIF(tau=full(1e-3, 3), r=full(1.0, 3), v_leak=full(0.0, 3),
                           v_threshold=full(1.0, 3)),
            "output": nir.Output(output_type={"output": np.array([3])}),
        },
        edges=[("input", "a"), ("input", "b"), ("a", "lif"), ("b", "lif"), ("lif", "output")],
    )
    nir.write(f"{OUT}/nir_dag.nir", dag)
    li = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2])}),
            "li": nir.LI(tau=full(1e-3, 2), r=full(1.0, 2), v_leak=full(0.0, 2)),
            "output": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[("input", "li"), ("li", "output")],
    )
    nir.write(f"{OUT}/nir_li.nir", li)
    mixed = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2])}),
            "lif": nir.LIF(tau=np.array([1e-3, 2e-3]), r=full(1.0, 2), v_leak=full(0.0, 2),
                           v_threshold=full(1.0, 2)),
            "output": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[("input", "lif"), ("lif", "output")],
    )
    nir.write(f"{OUT}/nir_nonuniform.nir", mixed)


if __name__ == "__main__":
    main()
    make_netx()
    make_nir()
