//! The AKD1000 backend end to end, on the shipped cases whose case.toml lists `akd1000`:
//! the emulator equals the quantised reference bit for bit, quantised top-1 stays within 3 points
//! of float at 4/4 bits, listings and the quantised IR are snapshot-tested, every layer's NPs are
//! within the device and their count grows with the layer; and one error test (snapshot of the
//! message, exit code 3, no output file) per rule of the Akida 1.0 constraints table.

use crate::common::{argmax, cases, snap, snap_dump, temp_dir, Case, CALIB_SAMPLES};
use nmc::synth::{attr_int, attr_ints, ModelBuilder, Rng};
use nmc_ir::{Interpreter, Op, Value};
use std::path::Path;

pub(crate) fn akd_cases() -> Vec<&'static Case> {
    let v: Vec<&Case> = crate::common::cases_for("akd1000");
    assert!(v.len() >= 3, "the AKD1000 cases are shipped");
    v
}

/// A case compiled for the AKD1000 at the default 4/4 bits, calibrated on the first samples.
pub(crate) fn compiled(case: &Case) -> &'static nmc::Compiled {
    static COMPILED: std::sync::OnceLock<
        std::sync::Mutex<std::collections::BTreeMap<String, &'static nmc::Compiled>>,
    > = std::sync::OnceLock::new();
    let map = COMPILED.get_or_init(Default::default);
    if let Some(c) = map.lock().unwrap().get(&case.name) {
        return c;
    }
    let imported =
        nmc::onnx::import_file(&case.model).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let opts = nmc::Options::new(nmc::Target::lookup("akd1000").unwrap());
    let c = nmc::driver::compile_graph(imported.graph, &case.samples(CALIB_SAMPLES), &opts, 0)
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let leaked: &'static nmc::Compiled = Box::leak(Box::new(c));
    map.lock().unwrap().insert(case.name.clone(), leaked);
    leaked
}

fn reference_ints(graph: &nmc_ir::Graph, sample: &[f32]) -> Vec<i64> {
    let interp = Interpreter::new(graph).unwrap();
    let vals = interp.run_all(&[sample]).unwrap();
    let out = graph.outputs[0].node;
    assert!(matches!(graph.node(out).op, Op::Dequantize { .. }));
    match vals[graph.node(out).inputs[0].index()].as_ref().unwrap() {
        Value::I64(v) => v.clone(),
        Value::F32(_) => panic!("chip output is not integer"),
    }
}

#[test]
fn emulator_equals_quantized_reference_bit_for_bit() {
    for case in akd_cases() {
        let c = compiled(case);
        let art = nmc::LoadedArtifact::decode(&c.artifact).unwrap();
        let run = art
            .run(&case.inputs, None)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let per = case.inputs.data.len() / case.inputs.shape[0];
        for (i, got) in run.int_outputs.iter().enumerate() {
            let want = reference_ints(&c.quantized, &case.inputs.data[i * per..(i + 1) * per]);
            assert_eq!(
                got, &want,
                "{}: sample {i} differs from the quantised reference",
                case.name
            );
        }
    }
}

fn top1(out: &[f32], labels: &[i64]) -> f64 {
    let n = labels.len();
    let k = out.len() / n;
    let hits = (0..n)
        .filter(|&i| argmax(&out[i * k..(i + 1) * k]) as i64 == labels[i])
        .count();
    hits as f64 / n as f64
}

#[test]
fn quantized_top1_is_within_3_points_of_float_at_4_4_bits() {
    for case in akd_cases() {
        let c = compiled(case);
        let n = case.inputs.shape[0];
        let q = nmc::driver::interpret(&c.quantized, &case.samples(n)).unwrap();
        let float = top1(&case.expected.data, &case.labels);
        let quant = top1(&q[0].data, &case.labels);
        assert!(
            quant >= float - 0.03,
            "{}: quantised top-1 {quant:.3} vs float {float:.3}",
            case.name
        );
    }
}

#[test]
fn listing_and_quantized_ir_snapshots() {
    for case in akd_cases() {
        let c = compiled(case);
        snap_dump(nmc::Emit::QuantizedIr, &case.name, c);
        snap_dump(nmc::Emit::Listing, &case.name, c);
    }
}

#[test]
fn every_layer_is_on_the_hrc_or_nps_of_the_device() {
    let spec = nmc_akd1000::akd1000();
    for case in akd_cases() {
        let c = compiled(case);
        let loaded = nmc::LoadedArtifact::decode(&c.artifact).unwrap();
        let Some(nmc_akd1000::LoadedAkd1000(a)) = loaded.downcast() else {
            panic!("not an akd1000 artifact")
        };
        assert!(a.units.len() <= spec.nps.len() + 1);
        for l in &a.layers {
            assert!(
                !l.slices.is_empty(),
                "{}: {} has no units",
                case.name,
                l.name
            );
        }
        // The IR mapping indexes the artifact's units.
        assert_eq!(c.mapping.cores_used(), a.units.len());
    }
    // The measured vendor case (docs/chips.md §6): a 64-128-64-10 MLP at 4 bits takes 3 FNP3.
    let mlp = cases().iter().find(|c| c.name == "digits_mlp").unwrap();
    let listing = compiled(mlp).listing();
    assert_eq!(listing.matches(" FNP3 np ").count(), 6, "{listing}");
    assert!(listing.contains("units 3 (3 NPs)"), "{listing}");
}

/// An ONNX model built layer by layer, with seeded weights.
struct Net {
    b: ModelBuilder,
    prev: String,
    shape: Vec<i64>,
    rng: Rng,
    n: usize,
}

impl Net {
    fn new(input: &[i64]) -> Net {
        let mut b = ModelBuilder::new("akd", 13);
        let mut dims = vec![-1];
        dims.extend_from_slice(input);
        b.input("x", &dims);
        Net {
            b,
            prev: "x".into(),
            shape: input.to_vec(),
            rng: Rng::new(7),
            n: 0,
        }
    }
    fn name(&mut self, p: &str) -> String {
        self.n += 1;
        format!("{p}{}", self.n)
    }
    fn weights(&mut self, dims: &[i64]) -> String {
        let n: i64 = dims.iter().product();
        let fan_in = (n / dims[0]).max(1) as f32;
        let s = (3.0 / fan_in).sqrt();
        let w: Vec<f32> = (0..n).map(|_| self.rng.uniform(-s, s)).collect();
        let name = self.name("w");
        self.b.init(&name, dims, &w);
        name
    }
    fn op(&mut self, op: &str, extra: &[&str], attrs: Vec<nmc::synth::Attribute>) -> &mut Self {
        let out = self.name("v");
        let mut ins = vec![self.prev.as_str()];
        ins.extend_from_slice(extra);
        let ins: Vec<String> = ins.iter().map(|s| s.to_string()).collect();
        let refs: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
        self.b.node(op, &refs, &[&out], attrs);
        self.prev = out;
        self
    }
    #[allow(clippy::too_many_arguments)]
    fn conv_full(
        &mut self,
        co: i64,
        k: [i64; 2],
        stride: i64,
        pads: [i64; 4],
        groups: i64,
        dilation: i64,
    ) -> &mut Self {
        let ci = self.shape[0];
        let w = self.weights(&[co, ci / groups, k[0], k[1]]);
        let (h, wd) = (self.shape[1], self.shape[2]);
        let eff = |k: i64| dilation * (k - 1) + 1;
        self.shape = vec![
            co,
            (h + pads[0] + pads[2] - eff(k[0])) / stride + 1,
            (wd + pads[1] + pads[3] - eff(k[1])) / stride + 1,
        ];
        self.op(
            "Conv",
            &[&w],
            vec![
                attr_ints("kernel_shape", &k),
                attr_ints("strides", &[stride, stride]),
                attr_ints("pads", &pads),
                attr_int("group", groups),
                attr_ints("dilations", &[dilation, dilation]),
            ],
        )
    }
    /// A k×k convolution with PyTorch-style symmetric padding `p`.
    fn conv(&mut self, co: i64, k: i64, stride: i64, p: i64) -> &mut Self {
        self.conv_full(co, [k, k], stride, [p; 4], 1, 1)
    }
    fn relu(&mut self) -> &mut Self {
        self.op("Relu", &[], vec![])
    }
    /// A depthwise k×k convolution (groups = channels) with explicit pads.
    fn dw(&mut self, k: i64, stride: i64, pads: [i64; 4]) -> &mut Self {
        let c = self.shape[0];
        self.conv_full(c, [k, k], stride, pads, c, 1)
    }
    /// A pointwise 1×1 convolution.
    fn pw(&mut self, co: i64) -> &mut Self {
        self.conv_full(co, [1, 1], 1, [0; 4], 1, 1)
    }
    fn pool(&mut self, op: &str, k: i64, s: i64) -> &mut Self {
        self.shape = vec![
            self.shape[0],
            (self.shape[1] - k) / s + 1,
            (self.shape[2] - k) / s + 1,
        ];
        self.op(
            op,
            &[],
            vec![
                attr_ints("kernel_shape", &[k, k]),
                attr_ints("strides", &[s, s]),
            ],
        )
    }
    fn gap(&mut self) -> &mut Self {
        self.shape = vec![self.shape[0], 1, 1];
        self.op("GlobalAveragePool", &[], vec![])
    }
    fn flatten(&mut self) -> &mut Self {
        self.shape = vec![self.shape.iter().product()];
        self.op("Flatten", &[], vec![])
    }
    fn dense(&mut self, out: i64) -> &mut Self {
        let n = self.shape[0];
        let w = self.weights(&[out, n]);
        self.shape = vec![out];
        self.op("Gemm", &[&w], vec![attr_int("transB", 1)])
    }
    fn write(&mut self, dir: &Path) -> std::path::PathBuf {
        let out = self.prev.clone();
        self.b.node("Identity", &[&out], &["y"], vec![]);
        self.b.output("y");
        let p = dir.join("model.onnx");
        std::fs::write(&p, self.b.finish()).unwrap();
        p
    }
}

/// Compiles `model` for the AKD1000 with `extra` flags; returns the error (the test fails if
/// the compile succeeds), after checking it is a does-not-fit error (exit 3) and left no file.
fn akd_fails(model: &Path, extra: &[&str]) -> String {
    let out = model.parent().unwrap().join("out.akd1000");
    let mut argv = vec![
        "nmc",
        "compile",
        model.to_str().unwrap(),
        "--target",
        "akd1000",
        "-o",
        out.to_str().unwrap(),
    ];
    argv.extend_from_slice(extra);
    let e = match nmc::cli::run_args(argv) {
        Ok(()) => panic!("compiling {} for akd1000 succeeded", model.display()),
        Err(e) => e,
    };
    assert_eq!((e.kind(), e.exit_code()), ("fit", 3), "wrong error: {e}");
    assert!(!out.exists(), "a failed compile left {}", out.display());
    e.to_string()
}

/// Builds the model, compiles it, snapshots the message and checks it names `rule`.
fn constraint(name: &str, rule: &str, extra: &[&str], build: impl FnOnce(&mut Net)) {
    let d = temp_dir(&format!("akd-{name}"));
    let mut net = Net::new(&[1, 8, 8]);
    build(&mut net);
    let model = net.write(&d);
    let msg = akd_fails(&model, extra);
    assert!(msg.contains(rule), "{name}: {msg}");
    snap("errors-akd1000", name, &msg);
}

fn net_on(input: &[i64], build: impl FnOnce(&mut Net)) -> impl FnOnce(&mut Net) {
    let input = input.to_vec();
    move |n: &mut Net| {
        *n = Net::new(&input);
        build(n)
    }
}

// InputConv2D rows of the table.

#[test]
fn input_conv_channels() {
    constraint(
        "input_conv_channels",
        "input channels are 1, 3",
        &[],
        net_on(&[2, 8, 8], |n| {
            n.conv(4, 3, 1, 1).relu().flatten().dense(10);
        }),
    );
}

#[test]
fn input_conv_width() {
    constraint(
        "input_conv_width",
        "input width is in [5, 256]",
        &[],
        net_on(&[1, 8, 300], |n| {
            n.conv(2, 3, 1, 1).relu().flatten().dense(2);
        }),
    );
}

#[test]
fn input_conv_height() {
    constraint(
        "input_conv_height",
        "height at least 5",
        &[],
        net_on(&[1, 4, 8], |n| {
            n.conv(2, 3, 1, 1).relu().flatten().dense(2);
        }),
    );
}

#[test]
fn input_conv_even_kernel() {
    constraint(
        "input_conv_even_kernel",
        "kernel sizes are 3×3, 5×5, 7×7",
        &[],
        |n| {
            n.conv_full(4, [4, 4], 1, [1, 1, 2, 2], 1, 1)
                .relu()
                .flatten()
                .dense(10);
        },
    );
}

#[test]
fn input_conv_stride_4() {
    constraint("input_conv_stride_4", "strides are 1, 2, 3", &[], |n| {
        n.conv(4, 3, 4, 0).relu().flatten().dense(10);
    });
}

#[test]
fn input_conv_padded_width() {
    // PyTorch's stride-2 pads are taken by padding the image on the host, and the HRC's width
    // limit applies to the padded image: 255 + 1 + 1 columns.
    constraint(
        "input_conv_padded_width",
        "input width is in [5, 256] and height at least 5 (input 10×257 (H×W) after host padding top/left/bottom/right 1/1/1/1)",
        &[],
        net_on(&[1, 8, 255], |n| {
            n.conv(4, 3, 2, 1).relu().flatten().dense(10);
        }),
    );
}

#[test]
fn input_conv_too_many_filters() {
    constraint(
        "input_conv_too_many_filters",
        "at most 32 filters for a 7×7 kernel on 3 channel(s)",
        &[],
        net_on(&[3, 8, 8], |n| {
            n.conv(33, 7, 1, 3)
                .relu()
                .conv(4, 3, 1, 1)
                .relu()
                .flatten()
                .dense(10);
        }),
    );
}

#[test]
fn input_conv_pool_stride() {
    constraint(
        "input_conv_pool_stride",
        "with the stride equal to the size",
        &[],
        |n| {
            n.conv(4, 3, 1, 1)
                .relu()
                .pool("MaxPool", 2, 1)
                .conv(4, 3, 1, 1)
                .relu()
                .flatten()
                .dense(10);
        },
    );
}

// Conv2D rows.

#[test]
fn conv_5x5_stride_2() {
    constraint(
        "conv_5x5_stride_2",
        "stride 2 is only supported with 3×3 kernels",
        &[],
        |n| {
            n.conv(4, 3, 1, 1)
                .relu()
                .conv_full(8, [5, 5], 2, [1, 1, 2, 2], 1, 1)
                .relu()
                .flatten()
                .dense(10);
        },
    );
}

#[test]
fn conv_even_kernel() {
    constraint(
        "conv_even_kernel",
        "kernel sizes are 1×1, 3×3, 5×5, 7×7",
        &[],
        |n| {
            n.conv(4, 3, 1, 1)
                .relu()
                .conv_full(8, [2, 2], 1, [0, 0, 1, 1], 1, 1)
                .relu()
                .flatten()
                .dense(10);
        },
    );
}

#[test]
fn conv_stride_3() {
    constraint("conv_stride_3", "strides are 1, 2", &[], |n| {
        n.conv(4, 3, 1, 1)
            .relu()
            .conv(8, 3, 3, 1)
            .relu()
            .flatten()
            .dense(10);
    });
}

#[test]
fn conv_valid_padding() {
    constraint("conv_valid_padding", "padding is Same", &[], |n| {
        n.conv(4, 3, 1, 1)
            .relu()
            .conv(8, 3, 1, 0)
            .relu()
            .flatten()
            .dense(10);
    });
}

#[test]
fn conv_stride_2_pytorch_pads() {
    // A later layer cannot be padded on the host: PyTorch's 1/1/1/1 at stride 2 on an 8×8 map
    // is not Same's 0/0/1/1.
    constraint(
        "conv_stride_2_pytorch_pads",
        "padding is Same, which needs pads top/left/bottom/right 0/0/1/1 here",
        &[],
        |n| {
            n.conv(4, 3, 1, 1)
                .relu()
                .conv(8, 3, 2, 1)
                .relu()
                .flatten()
                .dense(10);
        },
    );
}

#[test]
fn conv_pool_3x3() {
    constraint("conv_pool_3x3", "max pooling is 1×1 or 2×2", &[], |n| {
        n.conv(4, 3, 1, 1)
            .relu()
            .conv(8, 3, 1, 1)
            .relu()
            .pool("MaxPool", 3, 3)
            .conv(8, 1, 1, 0)
            .relu()
            .flatten()
            .dense(10);
    });
}

#[test]
fn conv_pool_stride_above_size() {
    constraint(
        "conv_pool_stride_above_size",
        "not above the size",
        &[],
        |n| {
            n.conv(4, 3, 1, 1)
                .relu()
                .conv(8, 3, 1, 1)
                .relu()
                .pool("MaxPool", 1, 2)
                .conv(8, 1, 1, 0)
                .relu()
                .flatten()
                .dense(10);
        },
    );
}

#[test]
fn max_pool_before_dense() {
    constraint(
        "max_pool_before_dense",
        "a layer with max pooling must be followed by another Convolutional",
        &[],
        |n| {
            n.conv(4, 3, 1, 1)
                .relu()
                .conv(8, 3, 1, 1)
                .relu()
                .pool("MaxPool", 2, 2)
                .flatten()
                .dense(10);
        },
    );
}

#[test]
fn average_pool_2x2() {
    constraint(
        "average_pool_2x2",
        "average pooling is global only",
        &[],
        |n| {
            n.conv(4, 3, 1, 1)
                .relu()
                .conv(8, 3, 1, 1)
                .relu()
                .pool("AveragePool", 2, 2)
                .conv(8, 1, 1, 0)
                .relu()
                .flatten()
                .dense(10);
        },
    );
}

#[test]
fn global_average_pool_after_relu() {
    constraint(
        "global_average_pool_after_relu",
        "pools the potentials before the activation",
        &[],
        |n| {
            n.conv(4, 3, 1, 1)
                .relu()
                .conv(8, 3, 1, 1)
                .relu()
                .gap()
                .flatten()
                .dense(10);
        },
    );
}

#[test]
fn global_average_pool_width() {
    constraint(
        "global_average_pool_width",
        "global average pooling width is in [1, 32]",
        // -O0: at -O2 the e-graph folds conv + global average pool into one dense layer,
        // which has no pooling constraint (and compiles).
        &["-O0"],
        net_on(&[1, 8, 40], |n| {
            n.conv(4, 3, 1, 1)
                .relu()
                .conv(8, 3, 1, 1)
                .gap()
                .relu()
                .flatten()
                .dense(10);
        }),
    );
}

#[test]
fn global_average_pool_rows() {
    constraint(
        "global_average_pool_rows",
        "must have at least 3 rows",
        // -O0: at -O2 the e-graph folds conv + global average pool into one dense layer,
        // which has no pooling constraint (and compiles).
        &["-O0"],
        |n| {
            n.conv_full(4, [3, 3], 2, [0, 0, 1, 1], 1, 1)
                .relu()
                .conv_full(8, [3, 3], 2, [0, 0, 1, 1], 1, 1)
                .gap()
                .relu()
                .flatten()
                .dense(10);
        },
    );
}

#[test]
fn depthwise_conv() {
    // A PyTorch MobileNet v1 block: ReLU after the depthwise convolution too.
    constraint(
        "depthwise_conv",
        "is followed by a ReLU, which Akida 1.0 cannot run between the depthwise and pointwise convolutions",
        &[],
        |n| {
            n.conv(8, 3, 1, 1)
                .relu()
                .dw(3, 1, [1; 4])
                .relu()
                .pw(16)
                .relu()
                .flatten()
                .dense(10);
        },
    );
}

#[test]
fn depthwise_conv_without_pointwise() {
    constraint(
        "depthwise_conv_without_pointwise",
        "is not followed by a pointwise 1×1 convolution",
        &[],
        |n| {
            n.conv(8, 3, 1, 1)
                .relu()
                .dw(3, 1, [1; 4])
                .conv(8, 3, 1, 1)
                .relu()
                .flatten()
                .dense(10);
        },
    );
}

#[test]
fn separable_5x5_stride_2() {
    constraint(
        "separable_5x5_stride_2",
        "stride 2 is only supported with 3×3 kernels",
        &[],
        |n| {
            n.conv(8, 3, 1, 1)
                .relu()
                .dw(5, 2, [1, 1, 2, 2])
                .pw(16)
                .relu()
                .flatten()
                .dense(10);
        },
    );
}

#[test]
fn dilated_conv() {
    constraint("dilated_conv", "convolutions are not dilated", &[], |n| {
        n.conv(4, 3, 1, 1)
            .relu()
            .conv_full(8, [3, 3], 1, [2; 4], 1, 2)
            .relu()
            .flatten()
            .dense(10);
    });
}

// Dense row and the bit widths.

#[test]
fn dense_too_many_inputs() {
    constraint(
        "dense_too_many_inputs",
        "input W×H×C must be at most 57334",
        &[],
        net_on(&[57_335], |n| {
            n.dense(2);
        }),
    );
}

#[test]
fn weight_bits_8_outside_the_input_layer() {
    constraint(
        "weight_bits_8",
        "weight bits must be 1, 2, 4",
        &["--weight-bits", "8"],
        net_on(&[64], |n| {
            n.dense(32).relu().dense(10);
        }),
    );
}

#[test]
fn weight_bits_3() {
    constraint(
        "weight_bits_3",
        "weights are 1, 2 or 4 bits",
        &["--weight-bits", "3"],
        net_on(&[64], |n| {
            n.dense(32).relu().dense(10);
        }),
    );
}

#[test]
fn activation_bits_8() {
    constraint(
        "activation_bits_8",
        "activations are unsigned 1, 2, 4-bit values",
        &["--activation-bits", "8"],
        |n| {
            n.conv(4, 3, 1, 1).relu().flatten().dense(10);
        },
    );
}

// Structural rules of Akida 1.0.

#[test]
fn residual_add() {
    constraint("residual_add", "exactly one input", &[], |n| {
        n.conv(4, 3, 1, 1).relu();
        let skip = n.prev.clone();
        n.conv(4, 3, 1, 1);
        n.op("Add", &[&skip], vec![]);
        n.relu().flatten().dense(10);
    });
}

#[test]
fn hidden_layer_without_activation() {
    constraint(
        "hidden_layer_without_activation",
        "only the last layer may have no activation",
        &[],
        |n| {
            n.conv(4, 3, 1, 1)
                .relu()
                .conv(8, 3, 1, 1)
                .flatten()
                .dense(10);
        },
    );
}

#[test]
fn concatenation() {
    constraint("concatenation", "no concatenation layer", &[], |n| {
        n.conv(4, 3, 1, 1).relu();
        let a = n.prev.clone();
        n.conv(4, 3, 1, 1).relu();
        let b = n.prev.clone();
        n.prev = a;
        n.op("Concat", &[&b], vec![attr_int("axis", 1)]);
        n.shape[0] = 8;
        n.conv(4, 3, 1, 1).relu().flatten().dense(10);
    });
}

#[test]
fn signed_clip_activation() {
    constraint(
        "signed_clip_activation",
        "activations are unsigned",
        &[],
        |n| {
            n.b.init("lo", &[], &[-1.0]);
            n.b.init("hi", &[], &[1.0]);
            n.conv(4, 3, 1, 1).op("Clip", &["lo", "hi"], vec![]);
            n.flatten().dense(10);
        },
    );
}

#[test]
fn input_sram_band_does_not_fit() {
    // 192 channels × 256 columns × 4 bits = 24 KiB per input row; a 3×3 kernel needs 3 rows.
    constraint(
        "input_sram_band",
        "input SRAM",
        &[],
        net_on(&[3, 8, 256], |n| {
            n.conv(192, 3, 1, 1).relu().conv(8, 3, 1, 1).relu();
        }),
    );
}

#[test]
fn more_nps_than_the_device_has() {
    // 4 bands of 2 rows × 21 groups of 51 filters = 84 NPs.
    constraint(
        "too_many_nps",
        "NPs (CNP1)",
        &[],
        net_on(&[3, 8, 100], |n| {
            n.conv(192, 3, 1, 1).relu().conv(1024, 3, 1, 1).relu();
        }),
    );
}

#[test]
fn negative_inputs() {
    let d = temp_dir("akd-negative");
    let mut net = Net::new(&[64]);
    net.dense(16).relu().dense(10);
    let model = net.write(&d);
    let calib = d.join("calib.npy");
    nmc::npy::write(
        &calib,
        &nmc::npy::Array {
            shape: vec![2, 64],
            data: (0..128).map(|i| i as f32 / 64.0 - 1.0).collect(),
        },
    )
    .unwrap();
    let msg = akd_fails(&model, &["--calibrate", calib.to_str().unwrap()]);
    assert!(msg.contains("inputs are unsigned"), "{msg}");
    snap("errors-akd1000", "negative_inputs", &msg);
}

/// NPs of the one Conv2D layer of a synthetic model (after an 8-bit InputConv2D on the HRC).
fn conv_nps(width: i64, filters: i64) -> usize {
    let d = temp_dir(&format!("akd-np-{width}-{filters}"));
    let mut net = Net::new(&[1, 8, width]);
    net.conv(64, 3, 1, 1).relu().conv(filters, 3, 1, 1).relu();
    let model = net.write(&d);
    let mut opts = nmc::Options::new(nmc::Target::lookup("akd1000").unwrap());
    opts.act_bits = Some(4);
    let c = nmc::compile(&model, &opts).unwrap_or_else(|e| panic!("{width}×{filters}: {e}"));
    let slices: Vec<&Vec<nmc_ir::CoreSlice>> = c.mapping.layers.values().collect();
    assert_eq!(slices.len(), 2);
    // The InputConv2D is on the HRC (one unit); the Conv2D's units are NPs.
    slices[1].len()
}

#[test]
fn np_count_per_layer_is_monotone_in_layer_size_and_within_the_device() {
    let spec = nmc_akd1000::akd1000();
    let mut last = 0;
    for filters in [8, 64, 128, 256, 512, 1024] {
        let n = conv_nps(8, filters);
        assert!(
            n >= last && n <= spec.nps.len(),
            "{filters} filters: {n} NPs after {last}"
        );
        last = n;
    }
    assert!(last > 1, "large layers are split by output channels");
    let mut last = 0;
    for width in [8, 32, 128, 256] {
        let n = conv_nps(width, 16);
        assert!(
            n >= last && n <= spec.nps.len(),
            "width {width}: {n} NPs after {last}"
        );
        last = n;
    }
    assert!(last > 1, "wide layers are split into spatial bands");
}

#[test]
fn compile_run_inspect_on_the_command_line() {
    let case = akd_cases()
        .into_iter()
        .find(|c| c.name == "digits_cnn_akida")
        .unwrap();
    let d = temp_dir("akd-cli");
    let art = d.join("cnn.akd1000");
    let report = d.join("perf.json");
    let run = |args: &[&str]| {
        let mut argv = vec!["nmc"];
        argv.extend_from_slice(args);
        nmc::cli::run_args(argv).unwrap_or_else(|e| panic!("`nmc {}`: {e}", args.join(" ")))
    };
    let inputs = case.dir.join("inputs.npy");
    run(&[
        "compile",
        case.model.to_str().unwrap(),
        "--target",
        "akd1000",
        "--weight-bits",
        "4",
        "--activation-bits",
        "4",
        "-o",
        art.to_str().unwrap(),
    ]);
    run(&[
        "run",
        art.to_str().unwrap(),
        "--input",
        inputs.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    let perf: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(perf["target"], "akd1000");
    assert!(perf["latency_ns"].as_f64().unwrap() > 0.0);
    assert!(perf["energy_nj"].as_f64().unwrap() > 0.0);
    assert!(perf["throughput_fps"].as_f64().unwrap() > 0.0);
    let cores = perf["cores"].as_array().unwrap();
    assert!(cores.iter().any(|c| c["unit_type"] == "HRC"));
    assert!(cores
        .iter()
        .any(|c| c["unit_type"] == "FNP3" && c["slot"] == 0));
    // inspect --format json: layers with name, type and nps {col, row, id, np_type}.
    let bytes = std::fs::read(&art).unwrap();
    let json = nmc::LoadedArtifact::decode(&bytes).unwrap().to_json();
    let layers = json["layers"].as_array().unwrap();
    let types: Vec<&str> = layers.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["InputConv2D", "Conv2D", "Dense"]);
    for l in layers {
        assert!(l["name"].is_string());
        for np in l["nps"].as_array().unwrap() {
            assert!(np["col"].is_u64() && np["row"].is_u64() && np["np_type"].is_string());
            assert!(np["id"].is_u64() || np["np_type"] == "HRC");
        }
    }
    assert_eq!(layers[0]["nps"][0]["np_type"], "HRC");
    assert_eq!(layers[2]["nps"][0]["np_type"], "FNP3");
    run(&["inspect", art.to_str().unwrap(), "--format", "json"]);
    // eval --quantized agrees with the emulator's output argmax.
    run(&[
        "eval",
        case.model.to_str().unwrap(),
        "--input",
        inputs.to_str().unwrap(),
        "--quantized",
        "--target",
        "akd1000",
        "--weight-bits",
        "4",
        "--activation-bits",
        "2",
        "-o",
        d.join("q.npy").to_str().unwrap(),
    ]);
    // A damaged artifact is an artifact error (exit 4).
    let bad = d.join("bad.akd1000");
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let e = nmc::cli::run_args([
        "nmc",
        "run",
        bad.to_str().unwrap(),
        "--input",
        inputs.to_str().unwrap(),
    ])
    .unwrap_err();
    assert_eq!((e.kind(), e.exit_code()), ("artifact", 4), "{e}");
}

#[test]
fn compiling_twice_gives_identical_bytes() {
    let case = akd_cases()
        .into_iter()
        .find(|c| c.name == "digits_cnn_akida_gap")
        .unwrap();
    let build = || {
        let imported = nmc::onnx::import_file(&case.model).unwrap();
        let opts = nmc::Options::new(nmc::Target::lookup("akd1000").unwrap());
        nmc::driver::compile_graph(imported.graph, &case.samples(CALIB_SAMPLES), &opts, 7).unwrap()
    };
    let (a, b) = (build(), build());
    assert_eq!(a.artifact, b.artifact);
    assert_eq!(a.listing(), b.listing());
}

#[test]
fn lower_widths_still_run_bit_exact() {
    let case = akd_cases()
        .into_iter()
        .find(|c| c.name == "digits_mlp")
        .unwrap();
    for (w, a) in [(2, 2), (1, 1), (4, 2)] {
        let imported = nmc::onnx::import_file(&case.model).unwrap();
        let mut opts = nmc::Options::new(nmc::Target::lookup("akd1000").unwrap());
        opts.weight_bits = Some(w);
        opts.act_bits = Some(a);
        let c = nmc::driver::compile_graph(imported.graph, &case.samples(CALIB_SAMPLES), &opts, 0)
            .unwrap_or_else(|e| panic!("{w}/{a}: {e}"));
        let art = nmc::LoadedArtifact::decode(&c.artifact).unwrap();
        let n = 16;
        let per = case.inputs.data.len() / case.inputs.shape[0];
        let sub = nmc::npy::Array {
            shape: vec![n, per],
            data: case.inputs.data[..n * per].to_vec(),
        };
        let run = art.run(&sub, None).unwrap();
        for (i, got) in run.int_outputs.iter().enumerate() {
            let want = reference_ints(&c.quantized, &case.inputs.data[i * per..(i + 1) * per]);
            assert_eq!(got, &want, "{w}/{a} bits: sample {i}");
        }
    }
}

#[test]
fn searches_on_a_banded_layer_keep_bands_and_outputs() {
    // 64 channels × 256 columns × 4 bits = 8 KiB per input row: the second convolution needs
    // several row bands, so each extra channel group takes one NP per band.
    let d = temp_dir("akd-banded-search");
    let mut net = Net::new(&[1, 8, 256]);
    net.conv(64, 3, 1, 1).relu().conv(16, 3, 1, 1).relu();
    let model = net.write(&d);
    let mut rng = Rng::new(9);
    let calib: Vec<Vec<Vec<f32>>> = (0..2)
        .map(|_| vec![(0..8 * 256).map(|_| rng.uniform(0.0, 1.0)).collect()])
        .collect();
    let compile = |kind: nmc::PartitionKind| {
        let graph = nmc::onnx::import_file(&model).unwrap().graph;
        let mut opts = nmc::Options::new(nmc::Target::lookup("akd1000").unwrap());
        opts.partition = kind;
        opts.seed = 2;
        opts.evals = 10;
        nmc::driver::compile_graph(graph, &calib, &opts, 0).unwrap()
    };
    let x = nmc::npy::Array {
        shape: vec![calib.len(), 8 * 256],
        data: calib.iter().flat_map(|s| s[0].clone()).collect(),
    };
    let outputs = |c: &nmc::Compiled| {
        nmc::LoadedArtifact::decode(&c.artifact)
            .unwrap()
            .run(&x, None)
            .unwrap()
            .int_outputs
    };
    let greedy = compile(nmc::PartitionKind::Greedy);
    let conv2 = |c: &nmc::Compiled| c.mapping.layers.values().nth(1).unwrap().clone();
    let g = conv2(&greedy);
    let bands = g.iter().filter(|s| s.start == g[0].start).count();
    assert!(bands > 1, "the test model should need row bands: {g:?}");
    for kind in [nmc::PartitionKind::Floorline, nmc::PartitionKind::Evolve] {
        let c = compile(kind);
        let s = conv2(&c);
        // Every band holds the same channel groups, so NPs come in multiples of the bands.
        assert_eq!(s.len() % bands, 0, "{kind:?}: {s:?}");
        assert!(
            s.len() > g.len(),
            "{kind:?} did not split the banded layer: {s:?}"
        );
        assert_eq!(
            outputs(&c),
            outputs(&greedy),
            "{kind:?} changed the outputs"
        );
        let sum = c.report.search.as_ref().unwrap();
        assert!(sum.chosen.latency_ns <= sum.greedy.latency_ns, "{sum:?}");
    }
}

/// Compiles a synthetic model for the AKD1000 with calibration on `n` seeded images in [0, 1],
/// and checks the emulator against the quantised reference on them, bit for bit.
fn compile_and_emulate(name: &str, input: &[i64], build: impl FnOnce(&mut Net)) -> nmc::Compiled {
    compile_and_emulate_with(name, input, build, |b| b)
}

/// [`compile_and_emulate`] with the model's bytes passed through `edit` first.
fn compile_and_emulate_with(
    name: &str,
    input: &[i64],
    build: impl FnOnce(&mut Net),
    edit: impl FnOnce(Vec<u8>) -> Vec<u8>,
) -> nmc::Compiled {
    let mut net = Net::new(input);
    build(&mut net);
    let out = net.prev.clone();
    net.b.node("Identity", &[&out], &["y"], vec![]);
    net.b.output("y");
    let bytes = edit(net.b.finish());
    let per: usize = input.iter().product::<i64>() as usize;
    let mut rng = Rng::new(21);
    let samples: Vec<Vec<Vec<f32>>> = (0..8)
        .map(|i| {
            vec![(0..per)
                .map(|_| {
                    // Two of eight images are all 1.0, which lights up every border window.
                    if i < 2 {
                        1.0
                    } else {
                        rng.uniform(0.0, 1.0)
                    }
                })
                .collect()]
        })
        .collect();
    let graph = nmc::onnx::import_bytes(&bytes, None).unwrap().graph;
    let opts = nmc::Options::new(nmc::Target::lookup("akd1000").unwrap());
    let c = nmc::driver::compile_graph(graph, &samples, &opts, 0)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let art = nmc::LoadedArtifact::decode(&c.artifact).unwrap();
    assert_eq!(
        art.input_shape(),
        Some(input.iter().map(|d| *d as usize).collect()),
        "{name}: the artifact reports the model's input shape"
    );
    let x = nmc::npy::Array {
        shape: vec![samples.len(), per],
        data: samples.iter().flat_map(|s| s[0].clone()).collect(),
    };
    let run = art.run(&x, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    for (i, got) in run.int_outputs.iter().enumerate() {
        let want = reference_ints(&c.quantized, &samples[i][0]);
        assert_eq!(
            got, &want,
            "{name}: sample {i} differs from the quantised reference"
        );
        assert!(
            want.iter().any(|v| *v != 0),
            "{name}: sample {i} gives all zeros"
        );
    }
    c
}

/// Depthwise + pointwise blocks (no activation between) become SeparableConv2D layers and run
/// bit-exactly: Same padding at stride 1 (3×3, 5×5, 7×7) and Keras' 0/1 pads at stride 2, max
/// pooling and global average pooling after the pointwise kernel, row bands (a 40-row input
/// takes two NPs, docs/chips.md §3.6).
#[test]
fn separable_blocks_run_bit_exactly() {
    let c = compile_and_emulate("separable", &[1, 40, 16], |n| {
        n.conv(8, 3, 1, 1)
            .relu()
            .dw(3, 1, [1; 4])
            .pw(16)
            .relu()
            .dw(3, 2, [0, 0, 1, 1])
            .pw(16)
            .relu()
            .dw(5, 1, [2; 4])
            .pw(24)
            .relu()
            .pool("MaxPool", 2, 2)
            .dw(7, 1, [3; 4])
            .pw(16)
            .gap()
            .relu()
            .flatten()
            .dense(10);
    });
    let listing = c.listing();
    assert_eq!(
        listing.matches(" SeparableConv2D <- ").count(),
        4,
        "{listing}"
    );
    assert!(
        listing.contains(
            "depthwise kernel 3×3 stride 2×2 pads [0, 0, 1, 1], then pointwise 1×1 -> [16, 20, 8]"
        ),
        "{listing}"
    );
    assert!(
        listing.contains("pool max 2×2 stride 2×2 -> [24, 10, 4]"),
        "{listing}"
    );
    snap("listing-akd1000", "separable_blocks", &listing);
    // The first separable layer reads 40 rows: two NPs (akida: ⌈H / 32⌉ row bands).
    let json = nmc::LoadedArtifact::decode(&c.artifact).unwrap().to_json();
    assert_eq!(
        json["layers"][1]["nps"].as_array().unwrap().len(),
        2,
        "{json}"
    );
}

/// MobileNet v1 α = 0.5 at 160×160 with 1,000 classes (untrained weights: the mapping does not
/// depend on them) takes the NPs per layer akida 2.19.3's `MapMode.Minimal` gives the same
/// architecture (testdata/gen/akida_separable_probe.json, docs/chips.md §3.6), and runs
/// bit-exactly.
#[test]
fn mobilenet_v1_half_at_160_maps_as_akida() {
    let c = compile_and_emulate("mobilenet-0.5-160", &[3, 160, 160], |n| {
        n.conv(16, 3, 2, 1).relu();
        let blocks = [
            (32, 1),
            (64, 2),
            (64, 1),
            (128, 2),
            (128, 1),
            (256, 2),
            (256, 1),
            (256, 1),
            (256, 1),
            (256, 1),
            (256, 1),
            (512, 2),
            (512, 1),
        ];
        for (i, &(f, s)) in blocks.iter().enumerate() {
            let pads = if s == 2 { [0, 0, 1, 1] } else { [1; 4] };
            n.dw(3, s, pads).pw(f);
            if i + 1 == blocks.len() {
                n.gap();
            }
            n.relu();
        }
        n.flatten().dense(1000);
    });
    let json = nmc::LoadedArtifact::decode(&c.artifact).unwrap().to_json();
    let nps: Vec<(usize, String)> = json["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let nps = l["nps"].as_array().unwrap();
            (nps.len(), nps[0]["np_type"].as_str().unwrap().to_string())
        })
        .collect();
    let akida = [1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 2, 4, 1];
    assert_eq!(
        nps.iter().map(|n| n.0).collect::<Vec<_>>(),
        akida,
        "{nps:?}"
    );
    assert_eq!(nps[0].1, "HRC");
    assert!(nps[1..14].iter().all(|n| n.1 == "CNP1"), "{nps:?}");
    assert_eq!(nps[14].1, "FNP2");
}

#[test]
fn pytorch_stride_2_first_convolutions_run_on_a_host_padded_input() {
    // PyTorch's `Conv2d(k, stride=2, padding=k // 2)` on even images: pads 1/1/1/1 (3×3) and
    // 2/2/2/2 (5×5), where TensorFlow's Same is 0/0/1/1 and 1/1/2/2.
    let c3 = compile_and_emulate("host-pad-3x3", &[1, 16, 16], |n| {
        n.conv(8, 3, 2, 1)
            .relu()
            .conv(16, 3, 1, 1)
            .relu()
            .flatten()
            .dense(10);
    });
    let listing = c3.listing();
    assert!(
        listing.contains(
            "  host zero-padding top/left/bottom/right 1/1/1/1 (code 0 = real 0.0) -> [1, 18, 18]"
        ),
        "{listing}"
    );
    snap("listing-akd1000", "host_padded_conv_3x3_stride_2", &listing);
    let c5 = compile_and_emulate("host-pad-5x5", &[3, 16, 16], |n| {
        n.conv(8, 5, 2, 2)
            .relu()
            .conv(16, 3, 1, 1)
            .relu()
            .flatten()
            .dense(10);
    });
    let listing = c5.listing();
    assert!(
        listing.contains(
            "  host zero-padding top/left/bottom/right 2/2/2/2 (code 0 = real 0.0) -> [3, 20, 20]"
        ),
        "{listing}"
    );
    assert!(
        listing.contains("InputConv2D <- input 0 [3, 20, 20]")
            && listing.contains("conv kernel 5×5 stride 2×2 pads [0, 0, 0, 0] -> [8, 8, 8]"),
        "{listing}"
    );
    snap("listing-akd1000", "host_padded_conv_5x5_stride_2", &listing);
    // inspect --format json reports the padding with the model's input shape.
    let json = nmc::LoadedArtifact::decode(&c5.artifact).unwrap().to_json();
    assert_eq!(json["inputs"][0]["shape"], serde_json::json!([3, 16, 16]));
    assert_eq!(
        json["inputs"][0]["host_pads"],
        serde_json::json!([2, 2, 2, 2])
    );
}

#[test]
fn a_zero_pad_before_the_first_convolution_is_host_padding_too() {
    // PyTorch's F.pad(x, (1, 1, 1, 1)) then a Valid stride-2 convolution: the Pad folds into the
    // convolution's pads, which the host then applies.
    let c = compile_and_emulate_with(
        "host-pad-fpad",
        &[1, 14, 14],
        |n| {
            n.op("Pad", &["pads"], vec![]);
            n.shape = vec![1, 16, 16];
            n.conv(8, 3, 2, 0).relu().flatten().dense(10);
        },
        // N, C, H, W begins then ends.
        |b| crate::common::with_int_initializer(b, "pads", vec![0, 0, 1, 1, 0, 0, 1, 1]),
    );
    assert!(
        c.listing()
            .contains("host zero-padding top/left/bottom/right 1/1/1/1"),
        "{}",
        c.listing()
    );
}

/// A model whose layers need more NPs than the device has at once compiles in several hardware
/// passes (as akida splits it, docs/chips.md §7), each pass on a freshly configured mesh, and
/// its outputs stay bit-exact with the quantised reference.
#[test]
fn a_model_larger_than_the_mesh_runs_in_several_passes_bit_exact() {
    // 24 dense layers: 18 take the FNP3s and 4 the FNP2s of the first pass (akida 2.19.3 maps
    // 22 such layers in one pass and the rest in a second, docs/chips.md §7.1).
    let c = compile_and_emulate("many_dense", &[64], |n| {
        for _ in 0..23 {
            n.dense(64).relu();
        }
        n.dense(10);
    });
    let art = nmc_akd1000::decode(&c.artifact).unwrap();
    let passes: Vec<u32> = art
        .layers
        .iter()
        .map(|l| art.units[l.slices[0].unit as usize].pass)
        .collect();
    assert_eq!(passes.iter().filter(|p| **p == 0).count(), 22, "{passes:?}");
    assert_eq!(passes.iter().filter(|p| **p == 1).count(), 2, "{passes:?}");
    let types = |p: u32| {
        let mut t: Vec<&str> = art
            .units
            .iter()
            .filter(|u| u.pass == p)
            .map(|u| nmc_akd1000::listing::unit_type_name(u.unit_type))
            .collect();
        t.sort();
        t.dedup_by(|a, b| a == b);
        t
    };
    assert_eq!(types(0), ["FNP2", "FNP3"]);
    assert_eq!(types(1), ["FNP3"]);
    let listing = nmc_akd1000::listing(&art);
    assert!(
        listing.contains("passes 2 (the mesh is reconfigured between them)"),
        "{listing}"
    );
    // The emulator charges the pass boundary: the same layers in one pass would be faster.
    let spec = nmc_akd1000::akd1000();
    let emu = nmc_akd1000::Emulator::new(&art, &spec).unwrap();
    let (_, r) = emu.run(&[vec![1; 64]]).unwrap();
    assert_eq!(r.passes, 2);
    assert!(r.reload_ns >= spec.cost.a_pass.value, "{}", r.reload_ns);
    assert!(r.latency_ns > r.reload_ns && r.interval_ns >= r.latency_ns);
}

/// Convolutions that need more NPs together than the device has: a new pass starts at the
/// layer that no longer fits, and the outputs are bit-exact.
#[test]
fn convolutions_beyond_the_mesh_split_into_passes_bit_exact() {
    // 3×3 over 256 channels at 4 bits: 16 filters per CNP (docs/chips.md §7.1), so each
    // 64-filter layer takes 4 NPs... and 160 filters take 10: eight such layers need 80.
    let c = compile_and_emulate("many_convs", &[1, 5, 5], |n| {
        n.conv(256, 3, 1, 1).relu();
        for _ in 0..7 {
            n.conv(256, 3, 1, 1).relu();
        }
        n.flatten().dense(10);
    });
    let art = nmc_akd1000::decode(&c.artifact).unwrap();
    let last = art.units.iter().map(|u| u.pass).max().unwrap();
    assert!(last >= 1, "{}", nmc_akd1000::listing(&art));
    for p in 0..=last {
        let nps = art
            .units
            .iter()
            .filter(|u| u.pass == p && u.unit_type != 0)
            .count();
        assert!(nps <= 78, "pass {p}: {nps} NPs");
    }
}
