//! Synthetic ONNX models, built in memory: the error tests (models with unsupported ops, wrong
//! shapes, too large for a chip) and the benchmarks (sparse MLPs of millions of synapses) use
//! them. Weights come from a seeded generator, so a model is a pure function of its arguments.

use onnx_protobuf::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TypeProto,
    ValueInfoProto,
};
use protobuf::Message;

/// An ONNX node attribute (what [`attr_int`] and [`attr_ints`] build).
pub use onnx_protobuf::AttributeProto as Attribute;

/// SplitMix64: a tiny, well-mixed, seedable generator (no dependency needed for test data).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit() as f32
    }
}

/// Builds an ONNX model node by node.
pub struct ModelBuilder {
    graph: GraphProto,
    opset: i64,
    /// Extra (domain, version) opset imports.
    domains: Vec<(String, i64)>,
}

impl ModelBuilder {
    /// An empty model with a default-domain opset.
    pub fn new(name: &str, opset: i64) -> Self {
        let graph = GraphProto {
            name: name.into(),
            ..Default::default()
        };
        ModelBuilder {
            graph,
            opset,
            domains: Vec::new(),
        }
    }

    fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
        let mut shape = onnx_protobuf::TensorShapeProto::new();
        for (i, &d) in dims.iter().enumerate() {
            let mut dim = tensor_shape_proto::Dimension::new();
            if i == 0 && d < 0 {
                dim.set_dim_param("N".into());
            } else {
                dim.set_dim_value(d);
            }
            shape.dim.push(dim);
        }
        let tensor = type_proto::Tensor {
            elem_type: DataType::FLOAT as i32,
            shape: protobuf::MessageField::some(shape),
            ..Default::default()
        };
        let mut ty = TypeProto::new();
        ty.set_tensor_type(tensor);
        ValueInfoProto {
            name: name.into(),
            type_: protobuf::MessageField::some(ty),
            ..Default::default()
        }
    }

    /// A float graph input; a negative first dimension is a symbolic batch.
    pub fn input(&mut self, name: &str, dims: &[i64]) -> &mut Self {
        self.graph.input.push(Self::value_info(name, dims));
        self
    }

    /// A graph output (its type is left for the importer to infer).
    pub fn output(&mut self, name: &str) -> &mut Self {
        self.graph.output.push(ValueInfoProto {
            name: name.into(),
            ..Default::default()
        });
        self
    }

    /// A float initializer.
    pub fn init(&mut self, name: &str, dims: &[i64], data: &[f32]) -> &mut Self {
        let t = TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: DataType::FLOAT as i32,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        };
        self.graph.initializer.push(t);
        self
    }

    /// A node with attributes.
    pub fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> &mut Self {
        let n = NodeProto {
            name: format!("{op}_{}", self.graph.node.len()),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute: attrs,
            ..Default::default()
        };
        self.graph.node.push(n);
        self
    }

    /// A node of another operator domain (e.g. `ai.nmc`); the domain is imported at `version`.
    pub fn node_in(
        &mut self,
        domain: &str,
        version: i64,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> &mut Self {
        self.node(op, inputs, outputs, attrs);
        if let Some(n) = self.graph.node.last_mut() {
            n.domain = domain.into();
        }
        if !self.domains.iter().any(|(d, _)| d == domain) {
            self.domains.push((domain.into(), version));
        }
        self
    }

    /// The serialised model.
    pub fn finish(&self) -> Vec<u8> {
        let model = ModelProto {
            ir_version: 8,
            producer_name: "nmc-synth".into(),
            graph: protobuf::MessageField::some(self.graph.clone()),
            opset_import: std::iter::once((String::new(), self.opset))
                .chain(self.domains.iter().cloned())
                .map(|(domain, version)| OperatorSetIdProto {
                    domain,
                    version,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        model.write_to_bytes().expect("in-memory serialisation")
    }
}

/// A chain of `layers` 4-wide Gemm + Relu layers over a `[N, 4]` input: many layers, few
/// weights (every layer takes at least one core), for tests of deep graphs and many cores.
pub fn layer_chain(layers: usize) -> Vec<u8> {
    let mut b = ModelBuilder::new("chain", 13);
    b.input("x", &[-1, 4]);
    b.init("w", &[4, 4], &[0.25; 16]);
    let mut prev = "x".to_string();
    for i in 0..layers {
        let (g, r) = (format!("g{i}"), format!("r{i}"));
        b.node("Gemm", &[&prev, "w"], &[&g], vec![attr_int("transB", 1)]);
        b.node("Relu", &[&g], &[&r], vec![]);
        prev = r;
    }
    b.output(&prev);
    b.finish()
}

/// An integer-list attribute.
pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INTS.into(),
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// A float attribute.
pub fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::FLOAT.into(),
        f: v,
        ..Default::default()
    }
}

/// A string attribute.
pub fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::STRING.into(),
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// An integer attribute.
pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INT.into(),
        i: v,
        ..Default::default()
    }
}

/// A multilayer perceptron `widths[0] → … → widths[last]` (Gemm + ReLU, linear last layer) whose
/// weights are zero with probability `sparsity`; non-zeros are uniform with a fan-in scaling.
pub fn sparse_mlp(widths: &[usize], sparsity: f64, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut b = ModelBuilder::new("sparse_mlp", 13);
    b.input("x", &[-1, widths[0] as i64]);
    let mut prev = "x".to_string();
    for (l, w) in widths.windows(2).enumerate() {
        let (n_in, n_out) = (w[0], w[1]);
        let keep = (1.0 - sparsity).max(1e-6);
        let scale = (3.0 / (n_in as f64 * keep)).sqrt() as f32;
        let weights: Vec<f32> = (0..n_in * n_out)
            .map(|_| {
                if rng.unit() < sparsity {
                    0.0
                } else {
                    rng.uniform(-scale, scale)
                }
            })
            .collect();
        let bias: Vec<f32> = (0..n_out).map(|_| rng.uniform(-0.05, 0.05)).collect();
        let (wn, bn, yn) = (format!("w{l}"), format!("b{l}"), format!("y{l}"));
        b.init(&wn, &[n_out as i64, n_in as i64], &weights);
        b.init(&bn, &[n_out as i64], &bias);
        b.node(
            "Gemm",
            &[&prev, &wn, &bn],
            &[&yn],
            vec![attr_int("transB", 1)],
        );
        prev = yn;
        if l + 2 < widths.len() {
            let rn = format!("r{l}");
            b.node("Relu", &[&prev], &[&rn], vec![]);
            prev = rn;
        }
    }
    b.node("Identity", &[&prev], &["out"], vec![]);
    b.output("out");
    b.finish()
}

/// One convolution of [`conv_net`]: output channels, square kernel, stride (padding `k / 2`).
#[derive(Clone, Copy, Debug)]
pub struct ConvLayer {
    /// Output channels.
    pub channels: usize,
    /// Kernel size (square).
    pub kernel: usize,
    /// Stride (both axes).
    pub stride: usize,
}

/// Adds a `k×k` convolution (He-scaled random weights, small bias, pads `k / 2`) and returns its
/// output name.
fn conv(
    b: &mut ModelBuilder,
    rng: &mut Rng,
    x: &str,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
) -> String {
    let id = b.graph.node.len();
    let scale = (6.0 / (cin * k * k) as f64).sqrt() as f32;
    let w: Vec<f32> = (0..cout * cin * k * k)
        .map(|_| rng.uniform(-scale, scale))
        .collect();
    let bias: Vec<f32> = (0..cout).map(|_| rng.uniform(-0.05, 0.05)).collect();
    let (wn, bn, yn) = (format!("cw{id}"), format!("cb{id}"), format!("c{id}"));
    b.init(&wn, &[cout as i64, cin as i64, k as i64, k as i64], &w);
    b.init(&bn, &[cout as i64], &bias);
    let p = (k / 2) as i64;
    b.node(
        "Conv",
        &[x, &wn, &bn],
        &[&yn],
        vec![
            attr_ints("kernel_shape", &[k as i64, k as i64]),
            attr_ints("strides", &[stride as i64, stride as i64]),
            attr_ints("pads", &[p, p, p, p]),
        ],
    );
    yn
}

fn relu(b: &mut ModelBuilder, x: &str) -> String {
    let y = format!("r{}", b.graph.node.len());
    b.node("Relu", &[x], &[&y], vec![]);
    y
}

/// Flatten + Gemm to `classes` outputs, named `out`.
fn classifier(b: &mut ModelBuilder, rng: &mut Rng, x: &str, features: usize, classes: usize) {
    b.node("Flatten", &[x], &["flat"], vec![]);
    let scale = (3.0 / features as f64).sqrt() as f32;
    let w: Vec<f32> = (0..classes * features)
        .map(|_| rng.uniform(-scale, scale))
        .collect();
    let bias: Vec<f32> = (0..classes).map(|_| rng.uniform(-0.05, 0.05)).collect();
    b.init("fw", &[classes as i64, features as i64], &w);
    b.init("fb", &[classes as i64], &bias);
    b.node(
        "Gemm",
        &["flat", "fw", "fb"],
        &["out"],
        vec![attr_int("transB", 1)],
    );
    b.output("out");
}

/// A plain CNN over a `[N, c, h, w]` input: each [`ConvLayer`] is a convolution and a ReLU, then
/// a dense classifier. Benchmarks use it for camera-sized inputs (e.g. 2×128×128).
pub fn conv_net(input: [usize; 3], layers: &[ConvLayer], classes: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut b = ModelBuilder::new("conv_net", 13);
    let [mut c, mut h, mut w] = input;
    b.input("x", &[-1, c as i64, h as i64, w as i64]);
    let mut x = "x".to_string();
    for l in layers {
        let y = conv(&mut b, &mut rng, &x, c, l.channels, l.kernel, l.stride);
        x = relu(&mut b, &y);
        c = l.channels;
        h = (h - 1) / l.stride + 1;
        w = (w - 1) / l.stride + 1;
    }
    classifier(&mut b, &mut rng, &x, c * h * w, classes);
    b.finish()
}

/// ResNet-18 (He et al. 2016, the torchvision layout with batch norm folded into the
/// convolutions): 7×7/2 stem, 3×3/2 max pooling, four stages of two basic blocks (64, 128, 256,
/// 512 channels; 1×1/2 projection shortcuts), global average pooling and a dense classifier.
/// Random He-scaled weights; `size` is the square input side (224 for ImageNet).
pub fn resnet18(size: usize, classes: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut b = ModelBuilder::new("resnet18", 13);
    b.input("x", &[-1, 3, size as i64, size as i64]);
    let y = conv(&mut b, &mut rng, "x", 3, 64, 7, 2);
    let y = relu(&mut b, &y);
    b.node(
        "MaxPool",
        &[&y],
        &["pool0"],
        vec![
            attr_ints("kernel_shape", &[3, 3]),
            attr_ints("strides", &[2, 2]),
            attr_ints("pads", &[1, 1, 1, 1]),
        ],
    );
    let mut x = "pool0".to_string();
    let mut c = 64;
    for (stage, &cout) in [64usize, 128, 256, 512].iter().enumerate() {
        for block in 0..2 {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            let a = conv(&mut b, &mut rng, &x, c, cout, 3, stride);
            let a = relu(&mut b, &a);
            let a = conv(&mut b, &mut rng, &a, cout, cout, 3, 1);
            let short = if stride != 1 || c != cout {
                conv(&mut b, &mut rng, &x, c, cout, 1, stride)
            } else {
                x.clone()
            };
            let s = format!("add{}", b.graph.node.len());
            b.node("Add", &[&a, &short], &[&s], vec![]);
            x = relu(&mut b, &s);
            c = cout;
        }
    }
    b.node("GlobalAveragePool", &[&x], &["gap"], vec![]);
    classifier(&mut b, &mut rng, "gap", c, classes);
    b.finish()
}

/// VGG-19 (Simonyan & Zisserman 2015, configuration E): sixteen 3×3 convolutions in five
/// stages (64, 128, 256, 512, 512 channels) each closed by 2×2/2 max pooling, then dense layers
/// 25,088 → 4,096 → 4,096 → `classes`; 143.7 M weights at 224×224 with 1,000 classes. Random
/// He-scaled weights: the compile benchmark's largest model.
pub fn vgg19(size: usize, classes: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut b = ModelBuilder::new("vgg19", 13);
    b.input("x", &[-1, 3, size as i64, size as i64]);
    let mut x = "x".to_string();
    let (mut c, mut hw) = (3, size);
    for (stage, &(cout, convs)) in [(64, 2), (128, 2), (256, 4), (512, 4), (512, 4)]
        .iter()
        .enumerate()
    {
        for _ in 0..convs {
            let y = conv(&mut b, &mut rng, &x, c, cout, 3, 1);
            x = relu(&mut b, &y);
            c = cout;
        }
        let p = format!("pool{stage}");
        b.node(
            "MaxPool",
            &[&x],
            &[&p],
            vec![
                attr_ints("kernel_shape", &[2, 2]),
                attr_ints("strides", &[2, 2]),
            ],
        );
        x = p;
        hw /= 2;
    }
    b.node("Flatten", &[&x], &["f0"], vec![]);
    let mut x = "f0".to_string();
    let mut features = c * hw * hw;
    for (l, width) in [4096, 4096].into_iter().enumerate() {
        let scale = (6.0 / features as f64).sqrt() as f32;
        let w: Vec<f32> = (0..width * features)
            .map(|_| rng.uniform(-scale, scale))
            .collect();
        let (wn, bn, yn) = (format!("dw{l}"), format!("db{l}"), format!("d{l}"));
        b.init(&wn, &[width as i64, features as i64], &w);
        b.init(&bn, &[width as i64], &vec![0.01; width]);
        b.node("Gemm", &[&x, &wn, &bn], &[&yn], vec![attr_int("transB", 1)]);
        x = relu(&mut b, &yn);
        features = width;
    }
    b.node("Identity", &[&x], &["feat"], vec![]);
    classifier(&mut b, &mut rng, "feat", features, classes);
    b.finish()
}
