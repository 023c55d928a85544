//! Tensor types. Shapes are *per sample*: the batch axis of the source model is not part of the IR,
//! because a neuromorphic chip processes one sample (frame) at a time and the driver loops over samples.

use std::fmt;

/// Element type of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// Real-valued activations (the imported model, the float reference).
    F32,
    /// Integer activations or states after quantisation (values fit the target's widths).
    I32,
}

impl DType {
    /// The name used by the text format.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I32 => "i32",
        }
    }

    /// Parses the text-format name.
    pub fn from_name(s: &str) -> Option<DType> {
        match s {
            "f32" => Some(DType::F32),
            "i32" => Some(DType::I32),
            _ => None,
        }
    }
}

/// Type of a value: element type and per-sample shape (row-major, channels first for images).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    /// Element type.
    pub dtype: DType,
    /// Per-sample dimensions, e.g. `[1, 8, 8]` for a one-channel 8×8 image or `[64]` for a vector.
    pub shape: Vec<usize>,
}

impl TensorType {
    /// A float tensor type.
    pub fn f32(shape: impl Into<Vec<usize>>) -> Self {
        TensorType {
            dtype: DType::F32,
            shape: shape.into(),
        }
    }

    /// An integer tensor type.
    pub fn i32(shape: impl Into<Vec<usize>>) -> Self {
        TensorType {
            dtype: DType::I32,
            shape: shape.into(),
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The same shape with another element type.
    pub fn with_dtype(&self, dtype: DType) -> Self {
        TensorType {
            dtype,
            shape: self.shape.clone(),
        }
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[", self.dtype.name())?;
        for (i, d) in self.shape.iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}
