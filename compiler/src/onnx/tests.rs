//! Importer tests: small models built in Rust, checked against hand-computed numbers through the
//! reference interpreter, plus error cases and the PyTorch-exported models in `testdata/`.

use super::{import_bytes, import_file, ImportError, Imported};
use nmc_ir::{print, Interpreter};
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::{DataLocation, DataType};
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use protobuf::Message;
use std::path::Path;

// ---------------------------------------------------------------------------------------------
// Model-building helpers
// ---------------------------------------------------------------------------------------------

enum A {
    I(i64),
    Is(Vec<i64>),
    F(f32),
    S(&'static str),
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<(&str, A)>,
) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.name = name.into();
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = outputs.iter().map(|s| s.to_string()).collect();
    for (k, v) in attrs {
        let mut a = AttributeProto::new();
        a.name = k.into();
        match v {
            A::I(i) => {
                a.type_ = AttributeType::INT.into();
                a.i = i;
            }
            A::Is(v) => {
                a.type_ = AttributeType::INTS.into();
                a.ints = v;
            }
            A::F(f) => {
                a.type_ = AttributeType::FLOAT.into();
                a.f = f;
            }
            A::S(s) => {
                a.type_ = AttributeType::STRING.into();
                a.s = s.as_bytes().to_vec();
            }
        }
        n.attribute.push(a);
    }
    n
}

fn tf(name: &str, dims: &[i64], vals: &[f32]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = DataType::FLOAT as i32;
    t.float_data = vals.to_vec();
    t
}

/// A float tensor stored as little-endian raw bytes.
fn tf_raw(name: &str, dims: &[i64], vals: &[f32]) -> TensorProto {
    let mut t = tf(name, dims, &[]);
    t.raw_data = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    t
}

fn ti64(name: &str, dims: &[i64], vals: &[i64]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = DataType::INT64 as i32;
    t.int64_data = vals.to_vec();
    t
}

/// An 8-bit integer tensor (raw bytes), signed or not by `dt`.
fn t8(name: &str, dims: &[i64], vals: &[i32], dt: DataType) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = dt as i32;
    t.raw_data = vals.iter().map(|&v| v as u8).collect();
    t
}

fn value_info(name: &str, dims: Option<&[i64]>) -> ValueInfoProto {
    let mut tt = type_proto::Tensor::new();
    tt.elem_type = DataType::FLOAT as i32;
    if let Some(dims) = dims {
        let mut s = TensorShapeProto::new();
        for (i, &d) in dims.iter().enumerate() {
            let mut dim = Dimension::new();
            dim.value = Some(if i == 0 && d < 0 {
                dimension::Value::DimParam("N".into())
            } else {
                dimension::Value::DimValue(d)
            });
            s.dim.push(dim);
        }
        tt.shape = Some(s).into();
    }
    let mut ty = TypeProto::new();
    ty.value = Some(type_proto::Value::TensorType(tt));
    let mut v = ValueInfoProto::new();
    v.name = name.into();
    v.type_ = Some(ty).into();
    v
}

/// A model with one input `x` of ONNX shape `x_dims` (-1 first = symbolic batch) and outputs.
struct M {
    opset: i64,
    x_dims: Vec<i64>,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    outputs: Vec<&'static str>,
}

impl M {
    fn new(opset: i64, x_dims: &[i64]) -> Self {
        M {
            opset,
            x_dims: x_dims.to_vec(),
            nodes: Vec::new(),
            inits: Vec::new(),
            outputs: vec!["y"],
        }
    }
    fn node(mut self, n: NodeProto) -> Self {
        self.nodes.push(n);
        self
    }
    fn init(mut self, t: TensorProto) -> Self {
        self.inits.push(t);
        self
    }
    fn proto(&self) -> ModelProto {
        let mut g = GraphProto::new();
        g.name = "test".into();
        g.node = self.nodes.clone();
        g.initializer = self.inits.clone();
        g.input.push(value_info("x", Some(&self.x_dims)));
        g.output = self.outputs.iter().map(|o| value_info(o, None)).collect();
        let mut m = ModelProto::new();
        m.ir_version = 8;
        m.producer_name = "nmc-tests".into();
        m.producer_version = "1".into();
        let mut o = OperatorSetIdProto::new();
        o.version = self.opset;
        m.opset_import.push(o);
        m.graph = Some(g).into();
        m
    }
    fn bytes(&self) -> Vec<u8> {
        self.proto().write_to_bytes().unwrap()
    }
    fn import(&self) -> Result<Imported, ImportError> {
        import_bytes(&self.bytes(), None)
    }
    fn ok(&self) -> Imported {
        self.import()
            .unwrap_or_else(|e| panic!("import failed: {e}"))
    }
    fn err(&self) -> ImportError {
        match self.import() {
            Ok(i) => panic!("import unexpectedly succeeded:\n{}", print(&i.graph)),
            Err(e) => e,
        }
    }
    /// Imports and runs one sample, returning the first output.
    fn run(&self, x: &[f32]) -> Vec<f32> {
        let imp = self.ok();
        let out = Interpreter::new(&imp.graph).unwrap().run(&[x]).unwrap();
        out[0].to_f32()
    }
}

fn close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "got {got:?}, want {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-5 * w.abs().max(1.0),
            "got {got:?}, want {want:?}"
        );
    }
}

fn count(ir: &str, mnemonic: &str) -> usize {
    ir.lines()
        .filter(|l| l.contains(&format!("= {mnemonic}")))
        .count()
}

// ---------------------------------------------------------------------------------------------
// Linear layers
// ---------------------------------------------------------------------------------------------

#[test]
fn gemm_trans_b_alpha_beta() {
    let m = M::new(13, &[-1, 3])
        .init(tf("B", &[2, 3], &[1., 0., -1., 2., 1., 0.]))
        .init(tf("C", &[2], &[1., -2.]))
        .node(node(
            "Gemm",
            "fc",
            &["x", "B", "C"],
            &["y"],
            vec![
                ("transB", A::I(1)),
                ("alpha", A::F(2.0)),
                ("beta", A::F(0.5)),
            ],
        ));
    close(&m.run(&[1., 2., 3.]), &[-3.5, 7.0]);
    let imp = m.ok();
    let ir = print(&imp.graph);
    assert_eq!(count(&ir, "dense"), 1, "{ir}");
    assert!(ir.contains(": f32[2] ; onnx:\"fc\""), "{ir}");
    assert_eq!(imp.opset, 13);
    assert_eq!(imp.producer, "nmc-tests 1");
    assert!(
        imp.notes[0].contains("input 'x': batch axis 'N'"),
        "{:?}",
        imp.notes
    );
}

#[test]
fn gemm_no_trans_with_row_bias() {
    let m = M::new(11, &[-1, 3])
        .init(tf("B", &[3, 2], &[1., 2., 0., 1., -1., 0.]))
        .init(tf("C", &[1, 2], &[10., 20.]))
        .node(node("Gemm", "fc", &["x", "B", "C"], &["y"], vec![]));
    close(&m.run(&[1., 2., 3.]), &[8., 24.]);
}

#[test]
fn gemm_rejects_graph_weight_and_trans_a() {
    let m = M::new(13, &[-1, 3])
        .init(tf("B", &[3, 2], &[0.; 6]))
        .node(node(
            "Gemm",
            "fc",
            &["x", "B"],
            &["y"],
            vec![("transA", A::I(1))],
        ));
    let e = m.err();
    assert_eq!(e.kind(), "invalid");
    assert!(e.to_string().contains("node \"fc\" (Gemm): transA"), "{e}");
    let m = M::new(13, &[-1, 3])
        .node(node("Relu", "r", &["x"], &["h"], vec![]))
        .node(node("Gemm", "fc", &["x", "h"], &["y"], vec![]));
    let e = m.err();
    assert!(e.to_string().contains("must be a constant"), "{e}");
}

#[test]
fn matmul_then_add_is_one_dense_with_bias() {
    let m = M::new(13, &[-1, 2])
        .init(tf_raw("W", &[2, 3], &[1., 2., 3., 4., 5., 6.]))
        .init(tf("b", &[3], &[0.5, 1.0, 1.5]))
        .node(node("MatMul", "mm", &["x", "W"], &["h"], vec![]))
        .node(node("Add", "add", &["h", "b"], &["y"], vec![]));
    close(&m.run(&[1., -1.]), &[-2.5, -2.0, -1.5]);
    let ir = print(&m.ok().graph);
    assert_eq!(count(&ir, "dense"), 1, "{ir}");
    assert!(ir.contains("bias=@c"), "{ir}");
    assert_eq!(count(&ir, "channel_affine"), 0, "{ir}");
}

#[test]
fn add_to_shared_dense_does_not_fold() {
    // h feeds both the Add and the output: the Add must not rewrite the Dense.
    let mut m = M::new(13, &[-1, 2])
        .init(tf("W", &[2, 2], &[1., 0., 0., 1.]))
        .init(tf("b", &[2], &[1., 2.]))
        .node(node("MatMul", "mm", &["x", "W"], &["h"], vec![]))
        .node(node("Add", "add", &["h", "b"], &["y"], vec![]));
    m.outputs.push("h");
    let imp = m.ok();
    let out = Interpreter::new(&imp.graph)
        .unwrap()
        .run(&[&[3., 4.]])
        .unwrap();
    close(&out[0].to_f32(), &[4., 6.]);
    close(&out[1].to_f32(), &[3., 4.]);
    let ir = print(&imp.graph);
    assert_eq!(count(&ir, "dense"), 1, "{ir}");
    assert_eq!(count(&ir, "channel_affine"), 1, "{ir}");
}

#[test]
fn sub_mul_div_with_constants_are_channel_affine() {
    // ((c - x) * s) / 2 on a [N, 2, 1, 2] tensor with per-channel constants.
    let m = M::new(13, &[-1, 2, 1, 2])
        .init(tf("c", &[2, 1, 1], &[1., 10.]))
        .init(tf("s", &[1, 2, 1, 1], &[2., 4.]))
        .init(tf("two", &[], &[2.]))
        .node(node("Sub", "sub", &["c", "x"], &["a"], vec![]))
        .node(node("Mul", "mul", &["a", "s"], &["b"], vec![]))
        .node(node("Div", "div", &["b", "two"], &["y"], vec![]));
    close(&m.run(&[1., 2., 3., 4.]), &[0., -1., 14., 12.]);
    let ir = print(&m.ok().graph);
    assert_eq!(count(&ir, "channel_affine"), 1, "merged: {ir}");
    // A constant that varies inside a channel has no per-channel form: it broadcasts in a float
    // tensor op instead.
    let m = M::new(13, &[-1, 2, 1, 2])
        .init(tf("c", &[2], &[1., 2.]))
        .node(node("Add", "add", &["x", "c"], &["y"], vec![]));
    close(&m.run(&[1., 2., 3., 4.]), &[2., 4., 4., 6.]);
    assert_eq!(count(&print(&m.ok().graph), "binary"), 1);
    // A constant that differs from sample to sample cannot be expressed.
    let m = M::new(13, &[2, 2])
        .init(tf("c", &[2, 2], &[1., 2., 3., 4.]))
        .node(node("Add", "add", &["x", "c"], &["y"], vec![]));
    assert!(m.err().to_string().contains("differs along the batch axis"));
}

#[test]
fn add_of_two_graph_values() {
    let m = M::new(13, &[-1, 3])
        .node(node("Relu", "r", &["x"], &["h"], vec![]))
        .node(node("Add", "add", &["x", "h"], &["y"], vec![]));
    close(&m.run(&[-1., 0.5, 2.]), &[-1., 1., 4.]);
    let m = M::new(13, &[-1, 3])
        .node(node("Relu", "r", &["x"], &["h"], vec![]))
        .node(node("Mul", "mul", &["x", "h"], &["y"], vec![]));
    // Any other arithmetic of graph values is a float tensor op (eval only).
    close(&m.run(&[-1., 0.5, 2.]), &[0., 0.25, 4.]);
    assert_eq!(count(&print(&m.ok().graph), "binary"), 1);
}

// ---------------------------------------------------------------------------------------------
// Convolution and pooling
// ---------------------------------------------------------------------------------------------

fn conv_model(auto_pad: &'static str, strides: i64) -> M {
    M::new(13, &[-1, 1, 3, 3])
        .init(tf("W", &[1, 1, 2, 2], &[1.; 4]))
        .init(tf("B", &[1], &[0.5]))
        .node(node(
            "Conv",
            "conv",
            &["x", "W", "B"],
            &["y"],
            vec![
                ("auto_pad", A::S(auto_pad)),
                ("strides", A::Is(vec![strides, strides])),
            ],
        ))
}

const IMG: [f32; 9] = [1., 2., 3., 4., 5., 6., 7., 8., 9.];

#[test]
fn conv_same_upper_pads_at_the_end() {
    let want: Vec<f32> = [12., 16., 9., 24., 28., 15., 15., 17., 9.]
        .iter()
        .map(|v| v + 0.5)
        .collect();
    close(&conv_model("SAME_UPPER", 1).run(&IMG), &want);
    close(
        &conv_model("SAME_UPPER", 2).run(&IMG),
        &[12.5, 9.5, 15.5, 9.5],
    );
    // SAME_LOWER pads at the start instead.
    let out = conv_model("SAME_LOWER", 1).run(&IMG);
    close(&out[..2], &[1.5, 3.5]);
    let ir = print(&conv_model("SAME_UPPER", 1).ok().graph);
    assert!(ir.contains("pads=[0, 0, 1, 1]"), "{ir}");
}

#[test]
fn conv_explicit_pads_groups_and_1d_rejection() {
    let m = M::new(13, &[-1, 2, 2, 2])
        .init(tf("W", &[2, 1, 1, 1], &[2., 3.]))
        .node(node(
            "Conv",
            "dw",
            &["x", "W"],
            &["y"],
            vec![
                ("group", A::I(2)),
                ("pads", A::Is(vec![0, 0, 0, 0])),
                ("kernel_shape", A::Is(vec![1, 1])),
            ],
        ));
    close(
        &m.run(&[1., 2., 3., 4., 1., 1., 1., 1.]),
        &[2., 4., 6., 8., 3., 3., 3., 3.],
    );
    let m = M::new(13, &[-1, 1, 5])
        .init(tf("W", &[1, 1, 2], &[1., 1.]))
        .node(node("Conv", "c1", &["x", "W"], &["y"], vec![]));
    assert!(m.err().to_string().contains("only 2-D"));
}

#[test]
fn pools_and_global_pools() {
    let x: Vec<f32> = (1..=16).map(|v| v as f32).collect();
    let m = M::new(13, &[-1, 1, 4, 4]).node(node(
        "MaxPool",
        "mp",
        &["x"],
        &["y", "idx"],
        vec![
            ("kernel_shape", A::Is(vec![2, 2])),
            ("strides", A::Is(vec![2, 2])),
            ("ceil_mode", A::I(1)),
        ],
    ));
    close(&m.run(&x), &[6., 8., 14., 16.]);
    let m = M::new(13, &[-1, 1, 4, 4]).node(node(
        "AveragePool",
        "ap",
        &["x"],
        &["y"],
        vec![
            ("kernel_shape", A::Is(vec![3, 3])),
            ("strides", A::Is(vec![2, 2])),
            ("ceil_mode", A::I(1)),
        ],
    ));
    // A ceil_mode that changes the size is an N-d pool (eval only); the last windows are cut
    // by the input's end and average what they cover.
    close(&m.run(&x), &[6., 7.5, 12., 13.5]);
    assert_eq!(count(&print(&m.ok().graph), "pool_nd"), 1);
    let m =
        M::new(13, &[-1, 1, 4, 4]).node(node("GlobalAveragePool", "gap", &["x"], &["y"], vec![]));
    close(&m.run(&x), &[8.5]);
    let m = M::new(13, &[-1, 1, 4, 4]).node(node("GlobalMaxPool", "gmp", &["x"], &["y"], vec![]));
    close(&m.run(&x), &[16.]);
    // ReduceMean: axes attribute (opset 13, keepdims=0) and axes input (opset 18).
    let m = M::new(13, &[-1, 1, 4, 4]).node(node(
        "ReduceMean",
        "rm",
        &["x"],
        &["y"],
        vec![("axes", A::Is(vec![-1, -2])), ("keepdims", A::I(0))],
    ));
    close(&m.run(&x), &[8.5]);
    assert!(print(&m.ok().graph).contains("return \"y\" = %2"));
    let m = M::new(18, &[-1, 1, 4, 4])
        .init(ti64("axes", &[2], &[2, 3]))
        .node(node("ReduceMean", "rm", &["x", "axes"], &["y"], vec![]));
    close(&m.run(&x), &[8.5]);
    let m = M::new(18, &[-1, 1, 4, 4])
        .init(ti64("axes", &[1], &[1]))
        .node(node("ReduceMean", "rm", &["x", "axes"], &["y"], vec![]));
    // Other axes are a float reduction (a mean over one channel is the identity).
    close(&m.run(&x), &x);
    assert_eq!(count(&print(&m.ok().graph), "reduce_mean"), 1);
}

// ---------------------------------------------------------------------------------------------
// Activations and normalisation
// ---------------------------------------------------------------------------------------------

#[test]
fn clip_attribute_form_before_opset_11() {
    let m = M::new(9, &[-1, 3]).node(node(
        "Clip",
        "clip",
        &["x"],
        &["y"],
        vec![("min", A::F(-1.0)), ("max", A::F(2.0))],
    ));
    close(&m.run(&[-3., 0.5, 5.]), &[-1., 0.5, 2.]);
    assert!(print(&m.ok().graph).contains("clip(%0) {hi=2.0, lo=-1.0}"));
}

#[test]
fn clip_input_form_from_opset_11() {
    let m = M::new(13, &[-1, 3]).init(tf("lo", &[], &[0.])).node(node(
        "Clip",
        "relu",
        &["x", "lo"],
        &["y"],
        vec![],
    ));
    close(&m.run(&[-3., 0.5, 5.]), &[0., 0.5, 5.]);
    let m = M::new(13, &[-1, 3]).init(tf("hi", &[], &[1.])).node(node(
        "Clip",
        "clip",
        &["x", "", "hi"],
        &["y"],
        vec![],
    ));
    close(&m.run(&[-3., 0.5, 5.]), &[-3., 0.5, 1.]);
    let m = M::new(13, &[-1, 3])
        .init(tf("lo", &[], &[0.]))
        .init(tf("hi", &[], &[6.]))
        .node(node("Clip", "relu6", &["x", "lo", "hi"], &["y"], vec![]));
    close(&m.run(&[-3., 0.5, 7.]), &[0., 0.5, 6.]);
}

#[test]
fn batch_normalization_numbers() {
    let m = M::new(15, &[-1, 2, 1, 2])
        .init(tf("g", &[2], &[1., 2.]))
        .init(tf("b", &[2], &[0.5, -1.]))
        .init(tf("mean", &[2], &[1., 2.]))
        .init(tf("var", &[2], &[4., 0.25]))
        .node(node(
            "BatchNormalization",
            "bn",
            &["x", "g", "b", "mean", "var"],
            &["y"],
            vec![("epsilon", A::F(0.0))],
        ));
    close(&m.run(&[1., 2., 3., 4.]), &[0.5, 1.0, 3., 7.]);
    assert_eq!(count(&print(&m.ok().graph), "channel_affine"), 1);
}

#[test]
fn softmax_axis_defaults() {
    let e = [1f32.exp(), 2f32.exp(), 3f32.exp()];
    let s: f32 = e.iter().sum();
    let want: Vec<f32> = e.iter().map(|v| v / s).collect();
    for opset in [11, 13] {
        let m = M::new(opset, &[-1, 3]).node(node("Softmax", "sm", &["x"], &["y"], vec![]));
        close(&m.run(&[1., 2., 3.]), &want);
    }
    let m = M::new(13, &[-1, 3]).node(node(
        "LogSoftmax",
        "lsm",
        &["x"],
        &["y"],
        vec![("axis", A::I(1))],
    ));
    close(
        &m.run(&[1., 2., 3.]),
        &want.iter().map(|v| v.ln()).collect::<Vec<_>>(),
    );
    let m = M::new(13, &[-1, 3]).node(node(
        "Softmax",
        "sm",
        &["x"],
        &["y"],
        vec![("axis", A::I(0))],
    ));
    assert!(m.err().to_string().contains("batch axis"));
}

// ---------------------------------------------------------------------------------------------
// Shapes, views and constant folding
// ---------------------------------------------------------------------------------------------

/// `x.view(x.size(0), -1)` as the TorchScript exporter writes it, then a Gemm.
fn view_model(opset: i64) -> M {
    let unsqueeze = if opset < 13 {
        node(
            "Unsqueeze",
            "unsq",
            &["n"],
            &["n1"],
            vec![("axes", A::Is(vec![0]))],
        )
    } else {
        node("Unsqueeze", "unsq", &["n", "zero_axis"], &["n1"], vec![])
    };
    M::new(opset, &[-1, 2, 2, 2])
        .init(ti64("zero_axis", &[1], &[0]))
        .init(tf("B", &[8, 1], &[1., 2., 3., 4., 5., 6., 7., 8.]))
        .node(node("Relu", "relu", &["x"], &["r"], vec![]))
        .node(node("Shape", "shape", &["r"], &["s"], vec![]))
        .node(node(
            "Constant",
            "c0",
            &[],
            &["i0"],
            vec![("value_int", A::I(0))],
        ))
        .node(node(
            "Gather",
            "gather",
            &["s", "i0"],
            &["n"],
            vec![("axis", A::I(0))],
        ))
        .node(unsqueeze)
        .node(node(
            "Constant",
            "cm1",
            &[],
            &["m1"],
            vec![("value_ints", A::Is(vec![-1]))],
        ))
        .node(node(
            "Concat",
            "cat",
            &["n1", "m1"],
            &["shape"],
            vec![("axis", A::I(0))],
        ))
        .node(node("Reshape", "view", &["r", "shape"], &["f"], vec![]))
        .node(node("Gemm", "fc", &["f", "B"], &["y"], vec![]))
}

#[test]
fn shape_gather_unsqueeze_concat_reshape_folds() {
    let x = [1., -1., 1., -1., 1., -1., 1., -1.];
    for opset in [11, 13] {
        let m = view_model(opset);
        close(&m.run(&x), &[1. + 3. + 5. + 7.]);
        let ir = print(&m.ok().graph);
        assert!(ir.contains("reshape(%1) : f32[8] ; onnx:\"view\""), "{ir}");
        assert_eq!(
            ir.lines().filter(|l| l.starts_with("  %")).count(),
            4,
            "{ir}"
        );
    }
}

#[test]
fn flatten_and_reshape_rules() {
    let m = M::new(13, &[-1, 2, 2, 2]).node(node("Flatten", "flat", &["x"], &["y"], vec![]));
    assert!(print(&m.ok().graph).contains("reshape(%0) : f32[8]"));
    let m = M::new(13, &[-1, 2, 2, 2]).node(node(
        "Flatten",
        "flat",
        &["x"],
        &["y"],
        vec![("axis", A::I(0))],
    ));
    assert!(m.err().to_string().contains("batch axis"));
    // Reshape to [0, 4, -1]: 0 copies the batch, -1 is inferred per sample.
    let m = M::new(13, &[-1, 2, 2, 2])
        .init(ti64("s", &[3], &[0, 4, -1]))
        .node(node("Reshape", "rs", &["x", "s"], &["y"], vec![]));
    assert!(print(&m.ok().graph).contains(": f32[4,2]"));
    // Reshape that merges samples into one row.
    let m = M::new(13, &[-1, 2, 2, 2])
        .init(ti64("s", &[1], &[-1]))
        .node(node("Reshape", "rs", &["x", "s"], &["y"], vec![]));
    assert!(m.err().to_string().contains("batch axis"));
    // Squeeze / Unsqueeze / Transpose on graph values.
    let m = M::new(13, &[-1, 3, 1])
        .init(ti64("a", &[1], &[2]))
        .node(node("Squeeze", "sq", &["x", "a"], &["y"], vec![]));
    assert!(print(&m.ok().graph).contains(": f32[3]"));
    let m = M::new(11, &[-1, 3]).node(node(
        "Unsqueeze",
        "us",
        &["x"],
        &["y"],
        vec![("axes", A::Is(vec![0]))],
    ));
    assert!(m.err().to_string().contains("batch axis"));
    let m = M::new(13, &[-1, 2, 3]).node(node(
        "Transpose",
        "t",
        &["x"],
        &["y"],
        vec![("perm", A::Is(vec![0, 2, 1]))],
    ));
    close(&m.run(&[1., 2., 3., 4., 5., 6.]), &[1., 4., 2., 5., 3., 6.]);
    let m = M::new(13, &[-1, 2, 3]).node(node("Transpose", "t", &["x"], &["y"], vec![]));
    assert!(m.err().to_string().contains("perm[0] must be 0"));
}

#[test]
fn concat_of_graph_values_and_identity_dropout() {
    let m = M::new(13, &[-1, 2])
        .node(node("Identity", "id", &["x"], &["a"], vec![]))
        .node(node("Dropout", "drop", &["a"], &["b", "mask"], vec![]))
        .node(node("Relu", "r", &["b"], &["c"], vec![]))
        .node(node(
            "Concat",
            "cat",
            &["b", "c"],
            &["y"],
            vec![("axis", A::I(-1))],
        ));
    close(&m.run(&[-1., 2.]), &[-1., 2., 0., 2.]);
    let m = M::new(13, &[-1, 2]).node(node(
        "Concat",
        "cat",
        &["x", "x"],
        &["y"],
        vec![("axis", A::I(0))],
    ));
    assert!(m.err().to_string().contains("batch axis"));
}

#[test]
fn constant_folding_of_weight_preprocessing() {
    // W = Transpose(Cast(Slice(big))) computed on the host, then MatMul.
    let m = M::new(13, &[-1, 2])
        .init(tf("big", &[3, 2], &[1., 2., 3., 4., 9., 9.]))
        .init(ti64("st", &[1], &[0]))
        .init(ti64("en", &[1], &[-1]))
        .node(node("Slice", "sl", &["big", "st", "en"], &["w0"], vec![]))
        .node(node(
            "Cast",
            "cast",
            &["w0"],
            &["w1"],
            vec![("to", A::I(1))],
        ))
        .node(node("Transpose", "tr", &["w1"], &["w"], vec![]))
        .node(node("MatMul", "mm", &["x", "w"], &["y"], vec![]));
    // w = [[1, 3], [2, 4]]: y = [x0 + 2 x1, 3 x0 + 4 x1].
    close(&m.run(&[1., 1.]), &[3., 7.]);
}

// ---------------------------------------------------------------------------------------------
// Quantisation
// ---------------------------------------------------------------------------------------------

#[test]
fn qdq_pair_becomes_fake_quant() {
    let m = M::new(13, &[-1, 4])
        .init(tf("s", &[], &[0.5]))
        .init(t8("z", &[], &[10], DataType::UINT8))
        .node(node(
            "QuantizeLinear",
            "q",
            &["x", "s", "z"],
            &["xq"],
            vec![],
        ))
        .node(node(
            "DequantizeLinear",
            "dq",
            &["xq", "s", "z"],
            &["y"],
            vec![],
        ));
    close(&m.run(&[0.3, -10., 200., 1.25]), &[0.5, -5., 122.5, 1.0]);
    let ir = print(&m.ok().graph);
    assert!(
        ir.contains("fake_quant(%0) {max=255, min=0, scale=0.5, zero_point=10}"),
        "{ir}"
    );
    // int8 zero point: the grid is -128..127.
    let m = M::new(13, &[-1, 2])
        .init(tf("s", &[], &[1.0]))
        .init(t8("z", &[], &[0], DataType::INT8))
        .node(node(
            "QuantizeLinear",
            "q",
            &["x", "s", "z"],
            &["xq"],
            vec![],
        ))
        .node(node(
            "DequantizeLinear",
            "dq",
            &["xq", "s", "z"],
            &["y"],
            vec![],
        ));
    close(&m.run(&[-300., 300.]), &[-128., 127.]);
    // The integer tensor read by anything but DequantizeLinear is rejected.
    let m = M::new(13, &[-1, 2])
        .init(tf("s", &[], &[1.0]))
        .node(node("QuantizeLinear", "q", &["x", "s"], &["xq"], vec![]))
        .node(node("Relu", "r", &["xq"], &["y"], vec![]));
    let e = m.err().to_string();
    assert!(
        e.contains("node \"r\" (Relu)") && e.contains("QuantizeLinear node \"q\""),
        "{e}"
    );
}

#[test]
fn dequantize_linear_of_int8_weights_folds() {
    // Per-axis (axis 0) int8 weights with zero points, used by Gemm(transB=1), and a per-tensor
    // int32 bias.
    let m = M::new(13, &[-1, 3])
        .init(t8("wq", &[2, 3], &[10, -20, 30, 1, 2, 3], DataType::INT8))
        .init(tf("ws", &[2], &[0.1, 1.0]))
        .init(t8("wz", &[2], &[0, 1], DataType::INT8))
        .init({
            let mut t = TensorProto::new();
            t.name = "bq".into();
            t.dims = vec![2];
            t.data_type = DataType::INT32 as i32;
            t.int32_data = vec![4, -8];
            t
        })
        .init(tf("bs", &[], &[0.25]))
        .node(node(
            "DequantizeLinear",
            "dqw",
            &["wq", "ws", "wz"],
            &["w"],
            vec![("axis", A::I(0))],
        ))
        .node(node(
            "DequantizeLinear",
            "dqb",
            &["bq", "bs"],
            &["b"],
            vec![],
        ))
        .node(node(
            "Gemm",
            "fc",
            &["x", "w", "b"],
            &["y"],
            vec![("transB", A::I(1))],
        ));
    // W = [[1, -2, 3], [0, 1, 2]], b = [1, -2].
    close(&m.run(&[1., 1., 1.]), &[3., 1.]);
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn every_unsupported_node_is_reported_at_once() {
    let mut lstm = node("LSTM", "n1", &["x"], &["a"], vec![]);
    lstm.domain = String::new();
    let mut fused = node("FusedConv", "", &["a"], &["b"], vec![]);
    fused.domain = "com.microsoft".into();
    let m =
        M::new(13, &[-1, 3])
            .node(lstm)
            .node(fused)
            .node(node("Relu", "r", &["b"], &["y"], vec![]));
    let e = m.err();
    assert_eq!(e.kind(), "unsupported");
    let ImportError::Unsupported(nodes) = &e else {
        panic!("{e}")
    };
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[1].name, "b");
    assert_eq!(nodes[1].domain, "com.microsoft");
    assert_eq!(
        e.to_string(),
        "unsupported operators (2):\n  node \"n1\" (LSTM, opset 13): no importer for this operator\n  \
         node \"b\" (com.microsoft.FusedConv, opset 0): operators of domain \"com.microsoft\" are not supported"
    );
}

#[test]
fn truncated_and_random_bytes_do_not_decode() {
    let bytes = view_model(11).bytes();
    for cut in [bytes.len() / 2, bytes.len() - 1, 7] {
        let e = import_bytes(&bytes[..cut], None).unwrap_err();
        assert_eq!(e.kind(), "decode", "cut at {cut}: {e}");
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let e = import_bytes(&random, None).unwrap_err();
    assert_eq!(e.kind(), "decode", "{e}");
    assert!(e.to_string().starts_with("not a valid onnx model"));
    assert_eq!(import_bytes(&[], None).unwrap_err().kind(), "decode");
}

#[test]
fn missing_input_is_reported() {
    let m = M::new(13, &[-1, 3]).node(node("Add", "add", &["x", "nope"], &["y"], vec![]));
    match m.err() {
        ImportError::MissingInput { node, input } => {
            assert_eq!((node.as_str(), input.as_str()), ("add", "nope"));
        }
        e => panic!("{e}"),
    }
}

#[test]
fn opset_and_structure_errors() {
    let m = M::new(0, &[-1, 3]).node(node("Relu", "r", &["x"], &["y"], vec![]));
    assert_eq!(m.err().kind(), "opset");
    let m = M::new(26, &[-1, 3]).node(node("Relu", "r", &["x"], &["y"], vec![]));
    assert_eq!(
        m.err().to_string(),
        "unsupported opset 26 for domain \"ai.onnx\" (supported: 1 to 25)"
    );
    // An output that does not depend on the input.
    let m = M::new(13, &[-1, 3]).node(node(
        "Constant",
        "c",
        &[],
        &["y"],
        vec![("value_float", A::F(1.0))],
    ));
    assert!(m
        .err()
        .to_string()
        .contains("node \"y\" (graph output): is a constant"));
    // A symbolic non-batch axis.
    let mut p = M::new(13, &[-1, 3])
        .node(node("Relu", "r", &["x"], &["y"], vec![]))
        .proto();
    let g = p.graph.as_mut().unwrap();
    let Some(type_proto::Value::TensorType(t)) = &mut g.input[0].type_.as_mut().unwrap().value
    else {
        unreachable!()
    };
    t.shape.as_mut().unwrap().dim[1].value = Some(dimension::Value::DimParam("K".into()));
    let e = import_bytes(&p.write_to_bytes().unwrap(), None).unwrap_err();
    assert!(
        e.to_string()
            .contains("node \"x\" (graph input): axis 1 is symbolic"),
        "{e}"
    );
    // Raw data whose length does not match the shape.
    let mut w = tf_raw("W", &[2, 2], &[1., 2., 3., 4.]);
    w.raw_data.pop();
    let m = M::new(13, &[-1, 2])
        .init(w)
        .node(node("MatMul", "mm", &["x", "W"], &["y"], vec![]));
    assert!(m.err().to_string().contains("raw data has 15 bytes"));
    // Hostile dims: no panic, no allocation.
    let m = M::new(13, &[-1, 2])
        .init(tf("W", &[i64::MAX, 4], &[]))
        .node(node("MatMul", "mm", &["x", "W"], &["y"], vec![]));
    assert_eq!(m.err().kind(), "invalid");
    let m = M::new(13, &[-1, 2])
        .init(ti64("s", &[3], &[1 << 40, 1 << 40, 1 << 40]))
        .node(node("ConstantOfShape", "cos", &["s"], &["w"], vec![]))
        .node(node("MatMul", "mm", &["x", "w"], &["y"], vec![]));
    assert_eq!(m.err().kind(), "invalid");
    // A cycle, a value defined twice, an attribute of the wrong type.
    let m = M::new(13, &[-1, 2])
        .node(node("Add", "a", &["x", "c"], &["b"], vec![]))
        .node(node("Relu", "r", &["b"], &["c"], vec![]))
        .node(node("Relu", "out", &["b"], &["y"], vec![]));
    assert!(m.err().to_string().contains("cycle"));
    let m = M::new(13, &[-1, 2])
        .node(node("Relu", "r1", &["x"], &["y"], vec![]))
        .node(node("Relu", "r2", &["x"], &["y"], vec![]));
    assert!(m.err().to_string().contains("defined more than once"));
    let m = M::new(13, &[-1, 2]).node(node(
        "Softmax",
        "sm",
        &["x"],
        &["y"],
        vec![("axis", A::F(1.0))],
    ));
    assert!(m
        .err()
        .to_string()
        .contains("attribute 'axis' must be INT, is FLOAT"));
}

// ---------------------------------------------------------------------------------------------
// External data
// ---------------------------------------------------------------------------------------------

fn external(
    name: &str,
    dims: &[i64],
    location: &str,
    offset: Option<u64>,
    length: Option<u64>,
) -> TensorProto {
    let mut t = tf(name, dims, &[]);
    t.data_location = DataLocation::EXTERNAL.into();
    let mut kv = |k: &str, v: String| {
        let mut e = StringStringEntryProto::new();
        e.key = k.into();
        e.value = v;
        t.external_data.push(e);
    };
    kv("location", location.into());
    if let Some(o) = offset {
        kv("offset", o.to_string());
    }
    if let Some(l) = length {
        kv("length", l.to_string());
    }
    t
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("nmc-onnx-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn external_data_is_read_with_bounds_and_recorded() {
    let dir = temp_dir("ext");
    let mut data = vec![0xffu8; 8];
    data.extend([1f32, 0., 0., 1.].iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(dir.join("w.bin"), &data).unwrap();
    let m = M::new(13, &[-1, 2])
        .init(external("W", &[2, 2], "w.bin", Some(8), Some(16)))
        .node(node("MatMul", "mm", &["x", "W"], &["y"], vec![]));
    let model = dir.join("model.onnx");
    std::fs::write(&model, m.bytes()).unwrap();
    let imp = import_file(&model).unwrap();
    assert_eq!(imp.files, vec![model.clone(), dir.join("w.bin")]);
    let out = Interpreter::new(&imp.graph)
        .unwrap()
        .run(&[&[2., 3.]])
        .unwrap();
    close(&out[0].to_f32(), &[2., 3.]);
    // Out of range, missing file, no folder.
    let m = M::new(13, &[-1, 2])
        .init(external("W", &[2, 2], "w.bin", Some(16), Some(16)))
        .node(node("MatMul", "mm", &["x", "W"], &["y"], vec![]));
    let e = import_bytes(&m.bytes(), Some(&dir)).unwrap_err();
    assert!(e.to_string().contains("beyond the end"), "{e}");
    let m = M::new(13, &[-1, 2])
        .init(external("W", &[2, 2], "absent.bin", None, None))
        .node(node("MatMul", "mm", &["x", "W"], &["y"], vec![]));
    assert_eq!(
        import_bytes(&m.bytes(), Some(&dir)).unwrap_err().kind(),
        "external-data"
    );
    assert_eq!(m.err().kind(), "external-data");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn external_data_cannot_leave_the_model_folder() {
    let dir = temp_dir("escape");
    let inner = dir.join("model");
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::write(dir.join("secret.bin"), [0u8; 16]).unwrap();
    for location in ["../secret.bin", "sub/../../secret.bin", "/etc/passwd"] {
        let m = M::new(13, &[-1, 2])
            .init(external("W", &[2, 2], location, None, None))
            .node(node("MatMul", "mm", &["x", "W"], &["y"], vec![]));
        let e = import_bytes(&m.bytes(), Some(&inner)).unwrap_err();
        assert_eq!(e.kind(), "external-data", "{location}: {e}");
        assert!(
            e.to_string().starts_with("external data of tensor \"W\""),
            "{e}"
        );
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(dir.join("secret.bin"), inner.join("link.bin")).unwrap();
        let m = M::new(13, &[-1, 2])
            .init(external("W", &[2, 2], "link.bin", None, None))
            .node(node("MatMul", "mm", &["x", "W"], &["y"], vec![]));
        let e = import_bytes(&m.bytes(), Some(&inner)).unwrap_err();
        assert!(e.to_string().contains("outside the model's folder"), "{e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// PyTorch-exported models in testdata/
// ---------------------------------------------------------------------------------------------

fn read_npy(path: &Path) -> Option<(Vec<usize>, Vec<f32>)> {
    let file = std::fs::File::open(path).ok()?;
    let npy = npyz::NpyFile::new(std::io::BufReader::new(file)).ok()?;
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    Some((shape, npy.into_vec::<f32>().ok()?))
}

#[test]
fn testdata_models_match_onnxruntime() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/models");
    let Ok(entries) = std::fs::read_dir(&root) else {
        eprintln!("no {} (skipped)", root.display());
        return;
    };
    let mut cases: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    cases.sort();
    let mut checked = 0;
    for dir in cases {
        let model = dir.join("model.onnx");
        let (Some((xs, x)), Some((ys, y))) = (
            read_npy(&dir.join("inputs.npy")),
            read_npy(&dir.join("expected.npy")),
        ) else {
            continue;
        };
        if !model.exists() {
            continue;
        }
        let imp = import_file(&model).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let interp = Interpreter::new(&imp.graph).unwrap();
        let (x_len, y_len) = (
            xs[1..].iter().product::<usize>(),
            ys[1..].iter().product::<usize>(),
        );
        let samples = xs[0].min(ys[0]).min(64);
        let mut worst = 0f32;
        for s in 0..samples {
            let out = interp.run(&[&x[s * x_len..(s + 1) * x_len]]).unwrap()[0].to_f32();
            let want = &y[s * y_len..(s + 1) * y_len];
            assert_eq!(out.len(), want.len(), "{}", dir.display());
            for (g, w) in out.iter().zip(want) {
                worst = worst.max((g - w).abs());
            }
        }
        eprintln!("{}: {samples} samples, max |diff| {worst:e}", dir.display());
        assert!(
            worst <= 1e-4,
            "{}: max |diff| {worst} > 1e-4",
            dir.display()
        );
        checked += 1;
    }
    eprintln!("{checked} testdata models checked");
}

#[test]
fn mutated_models_never_panic() {
    // Every truncation and many byte mutations of small valid models: errors are fine, panics
    // are not.
    let models = [view_model(11).bytes(), conv_model("SAME_UPPER", 2).bytes()];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for bytes in &models {
        for cut in 0..bytes.len() {
            let _ = import_bytes(&bytes[..cut], None);
        }
        for _ in 0..3000 {
            let mut b = bytes.clone();
            for _ in 0..1 + next() % 3 {
                let i = (next() as usize) % b.len();
                b[i] = next() as u8;
            }
            if let Ok(imp) = import_bytes(&b, None) {
                nmc_ir::verify(&imp.graph).unwrap();
            }
        }
    }
}
