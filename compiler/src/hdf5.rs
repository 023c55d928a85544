//! Read-only HDF5 access for the spiking-network importers (lava-dl netx, NIR).
//!
//! The parsing is the `hdf5-reader` crate's (pure Rust, reads what h5py writes: superblocks
//! v0–v3, symbol-table and link-message groups including dense link storage, compact,
//! contiguous and chunked layouts, deflate; see docs/formats.md for why this crate). This module
//! turns a file into a small owned tree, [`H5Group`], so that the importers never touch the
//! crate's types, and it bounds what a hostile file can make nmc do: the number of objects, the
//! nesting depth, and every dataset's element count ([`nmc_ir::limits::max_elements`]) are
//! checked before anything is read, and all datasets together may hold at most
//! [`nmc_ir::limits::max_total_elements`] elements. Members are kept sorted by name (the file's
//! own order depends on hashing in dense link storage), so everything built from the tree is
//! deterministic. Every error names the object's path in the file.

use hdf5_reader::{ByteOrder, Datatype, Hdf5File, OpenOptions, StringSize, VarLenKind};
use std::collections::BTreeMap;

/// The 8-byte signature every HDF5 superblock starts with.
pub const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// Deepest group nesting read: netx files nest 3 levels, NIR graphs a few more.
pub const MAX_DEPTH: usize = 64;

/// Most groups and datasets one file may hold (links to the same object count each time).
pub const MAX_OBJECTS: usize = 1 << 20;

/// Whether `bytes` is an HDF5 file: the signature at offset 0, 512, 1024, 2048, … (the
/// superblock follows a user block of a power-of-two size of at least 512 bytes).
pub fn is_hdf5(bytes: &[u8]) -> bool {
    signature_offset(bytes).is_some()
}

/// The offset of the HDF5 superblock signature, if any.
pub fn signature_offset(bytes: &[u8]) -> Option<usize> {
    let mut off = 0usize;
    loop {
        let end = off.checked_add(SIGNATURE.len())?;
        if end > bytes.len() {
            return None;
        }
        if &bytes[off..end] == SIGNATURE {
            return Some(off);
        }
        off = if off == 0 { 512 } else { off.checked_mul(2)? };
    }
}

/// Why a file could not be read; `place` is the object's path in the file (`/` for the root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct H5Error {
    /// Path of the object being read.
    pub place: String,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for H5Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

impl std::error::Error for H5Error {}

fn err(place: &str, message: impl Into<String>) -> H5Error {
    H5Error {
        place: place.to_string(),
        message: message.into(),
    }
}

/// The values of a dataset, converted to one of four element kinds.
#[derive(Clone, Debug, PartialEq)]
pub enum H5Data {
    /// Signed or unsigned integers of any width, booleans and other integer enums (h5py writes
    /// `numpy.bool_` as an enum of `int8`).
    Int(Vec<i64>),
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit floats.
    F64(Vec<f64>),
    /// Fixed-length or variable-length strings (trailing NULs and padding removed).
    Str(Vec<String>),
    /// A type nmc does not read (compound, opaque, reference, …); reading it is an error that
    /// names the type, but a file holding one is still readable.
    Other(String),
}

impl H5Data {
    /// A short name of the element type, for messages.
    pub fn kind(&self) -> &str {
        match self {
            H5Data::Int(_) => "integer",
            H5Data::F32(_) => "float32",
            H5Data::F64(_) => "float64",
            H5Data::Str(_) => "string",
            H5Data::Other(t) => t,
        }
    }
}

/// One dataset: its path, shape (`[]` for a scalar) and values in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct H5Dataset {
    /// Path in the file, e.g. `/layer/0/weight`.
    pub path: String,
    /// Dimensions; empty for a scalar.
    pub shape: Vec<usize>,
    /// The values.
    pub data: H5Data,
    /// The attributes that could be read (numbers and strings), by name.
    pub attrs: BTreeMap<String, H5Data>,
}

impl H5Dataset {
    /// Element count.
    pub fn len(&self) -> usize {
        match &self.data {
            H5Data::Int(v) => v.len(),
            H5Data::F32(v) => v.len(),
            H5Data::F64(v) => v.len(),
            H5Data::Str(v) => v.len(),
            H5Data::Other(_) => 0,
        }
    }

    /// Whether the dataset holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn wrong(&self, want: &str) -> H5Error {
        err(
            &self.path,
            format!("expected {want}, found {} data", self.data.kind()),
        )
    }

    /// The values as `f64` (integers converted exactly up to 2^53).
    pub fn f64s(&self) -> Result<Vec<f64>, H5Error> {
        match &self.data {
            H5Data::Int(v) => Ok(v.iter().map(|&x| x as f64).collect()),
            H5Data::F32(v) => Ok(v.iter().map(|&x| f64::from(x)).collect()),
            H5Data::F64(v) => Ok(v.clone()),
            _ => Err(self.wrong("numbers")),
        }
    }

    /// The values as `f32`, the IR's element type.
    pub fn f32s(&self) -> Result<Vec<f32>, H5Error> {
        match &self.data {
            H5Data::F32(v) => Ok(v.clone()),
            _ => Ok(self.f64s()?.into_iter().map(|x| x as f32).collect()),
        }
    }

    /// The values as integers; floats must be whole numbers.
    pub fn i64s(&self) -> Result<Vec<i64>, H5Error> {
        match &self.data {
            H5Data::Int(v) => Ok(v.clone()),
            H5Data::F32(_) | H5Data::F64(_) => self
                .f64s()?
                .into_iter()
                .map(|x| {
                    if x.fract() == 0.0 && x.abs() < 9.0e15 {
                        Ok(x as i64)
                    } else {
                        Err(err(&self.path, format!("expected integers, found {x}")))
                    }
                })
                .collect(),
            _ => Err(self.wrong("integers")),
        }
    }

    /// The single value of a scalar or one-element dataset.
    pub fn scalar_f64(&self) -> Result<f64, H5Error> {
        let v = self.f64s()?;
        match v.as_slice() {
            [x] => Ok(*x),
            _ => Err(err(
                &self.path,
                format!("expected one number, found {} elements", v.len()),
            )),
        }
    }

    /// The single integer of a scalar or one-element dataset.
    pub fn scalar_i64(&self) -> Result<i64, H5Error> {
        let v = self.i64s()?;
        match v.as_slice() {
            [x] => Ok(*x),
            _ => Err(err(
                &self.path,
                format!("expected one integer, found {} elements", v.len()),
            )),
        }
    }

    /// The strings of a string dataset.
    pub fn strings(&self) -> Result<&[String], H5Error> {
        match &self.data {
            H5Data::Str(v) => Ok(v),
            _ => Err(self.wrong("strings")),
        }
    }

    /// The single string of a scalar or one-element string dataset (netx writes `type` as a
    /// one-element `S10` array, NIR as a scalar variable-length string).
    pub fn string(&self) -> Result<&str, H5Error> {
        match self.strings()? {
            [s] => Ok(s),
            v => Err(err(
                &self.path,
                format!("expected one string, found {} elements", v.len()),
            )),
        }
    }
}

/// A group: its path, member groups and datasets (sorted by name) and readable attributes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct H5Group {
    /// Path in the file (`/` for the root).
    pub path: String,
    /// Member groups by name.
    pub groups: BTreeMap<String, H5Group>,
    /// Member datasets by name.
    pub datasets: BTreeMap<String, H5Dataset>,
    /// The attributes that could be read (numbers and strings), by name.
    pub attrs: BTreeMap<String, H5Data>,
}

impl H5Group {
    /// The member group `name`, or an error naming this group.
    pub fn group(&self, name: &str) -> Result<&H5Group, H5Error> {
        self.groups
            .get(name)
            .ok_or_else(|| err(&self.path, format!("has no group `{name}`")))
    }

    /// The member dataset `name`, or an error naming this group.
    pub fn dataset(&self, name: &str) -> Result<&H5Dataset, H5Error> {
        self.datasets.get(name).ok_or_else(|| {
            if self.groups.contains_key(name) {
                err(&self.path, format!("`{name}` is a group, not a dataset"))
            } else {
                err(&self.path, format!("has no dataset `{name}`"))
            }
        })
    }

    /// The dataset at a relative path (`neuron/vThMant`), if it exists.
    pub fn find(&self, rel: &str) -> Option<&H5Dataset> {
        let mut g = self;
        let mut parts = rel.split('/').peekable();
        while let Some(p) = parts.next() {
            if parts.peek().is_none() {
                return g.datasets.get(p);
            }
            g = g.groups.get(p)?;
        }
        None
    }

    /// Whether a dataset or group of this name is a member.
    pub fn has(&self, name: &str) -> bool {
        self.datasets.contains_key(name) || self.groups.contains_key(name)
    }
}

/// Reads a whole HDF5 file from memory into an [`H5Group`] tree rooted at `/`.
pub fn read(bytes: &[u8]) -> Result<H5Group, H5Error> {
    if !is_hdf5(bytes) {
        return Err(err("/", "not an HDF5 file (no superblock signature)"));
    }
    let limit = nmc_ir::limits::max_elements();
    let options = OpenOptions {
        // One read may decode at most the per-value element limit of 8-byte elements.
        max_read_bytes: limit.saturating_mul(8),
        max_chunk_bytes: limit.saturating_mul(8).min(1 << 30),
        ..OpenOptions::default()
    };
    let file = Hdf5File::from_bytes_with_options(bytes, options)
        .map_err(|e| err("/", format!("cannot open: {e}")))?;
    let root = file
        .root_group()
        .map_err(|e| err("/", format!("cannot read the root group: {e}")))?;
    let mut budget = Budget {
        objects: 0,
        elements: 0,
        max_elements: nmc_ir::limits::max_total_elements(),
    };
    read_group(&root, "/".to_string(), 0, &mut budget)
}

/// What the whole file may still use.
struct Budget {
    objects: usize,
    elements: usize,
    max_elements: usize,
}

impl Budget {
    fn object(&mut self, place: &str) -> Result<(), H5Error> {
        self.objects += 1;
        if self.objects > MAX_OBJECTS {
            return Err(err(
                place,
                format!("the file holds more than {MAX_OBJECTS} groups and datasets"),
            ));
        }
        Ok(())
    }
}

fn child_path(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

fn read_group(
    g: &hdf5_reader::group::Group,
    path: String,
    depth: usize,
    budget: &mut Budget,
) -> Result<H5Group, H5Error> {
    if depth > MAX_DEPTH {
        return Err(err(
            &path,
            format!("groups nest deeper than {MAX_DEPTH} levels"),
        ));
    }
    budget.object(&path)?;
    let (groups, datasets) = g
        .members()
        .map_err(|e| err(&path, format!("cannot list the members: {e}")))?;
    let mut out = H5Group {
        path: path.clone(),
        attrs: read_attrs(g.attributes().unwrap_or_default()),
        ..H5Group::default()
    };
    for d in &datasets {
        let p = child_path(&path, d.name());
        let ds = read_dataset(d, p, budget)?;
        out.datasets.insert(d.name().to_string(), ds);
    }
    for sub in &groups {
        let p = child_path(&path, sub.name());
        let sg = read_group(sub, p, depth + 1, budget)?;
        out.groups.insert(sub.name().to_string(), sg);
    }
    Ok(out)
}

fn read_attrs(attrs: Vec<hdf5_reader::Attribute>) -> BTreeMap<String, H5Data> {
    let mut out = BTreeMap::new();
    for a in attrs {
        let data = match &a.datatype {
            Datatype::String { .. } | Datatype::VarLen { .. } => match a.read_strings() {
                Ok(v) => H5Data::Str(v),
                Err(_) => continue,
            },
            t => {
                let n = a
                    .shape
                    .iter()
                    .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?));
                match n {
                    Some(n) if n <= 1 << 16 => match decode_numbers(t, &a.raw_data, n) {
                        Ok(d) => d,
                        Err(_) => continue,
                    },
                    _ => continue,
                }
            }
        };
        out.insert(a.name.clone(), data);
    }
    out
}

fn read_dataset(
    d: &hdf5_reader::Dataset,
    path: String,
    budget: &mut Budget,
) -> Result<H5Dataset, H5Error> {
    budget.object(&path)?;
    let mut shape = Vec::with_capacity(d.shape().len().min(nmc_ir::limits::MAX_RANK));
    if d.shape().len() > nmc_ir::limits::MAX_RANK {
        return Err(err(
            &path,
            format!(
                "rank {} is more than the limit of {}",
                d.shape().len(),
                nmc_ir::limits::MAX_RANK
            ),
        ));
    }
    for &dim in d.shape() {
        shape.push(usize::try_from(dim).map_err(|_| err(&path, "a dimension overflows"))?);
    }
    let n = nmc_ir::limits::check_elements(&shape)
        .map_err(|m| err(&path, m.replace("its result", "the dataset of shape")))?;
    budget.elements = budget.elements.saturating_add(n);
    if budget.elements > budget.max_elements {
        return Err(err(
            &path,
            format!(
                "the file's datasets hold more than {} elements, the limit per model (raise it with NMC_MAX_ELEMENTS)",
                budget.max_elements
            ),
        ));
    }
    let data = match d.dtype() {
        Datatype::String { .. }
        | Datatype::VarLen {
            kind: VarLenKind::String,
            ..
        } => H5Data::Str(
            d.read_strings()
                .map_err(|e| err(&path, format!("cannot read the strings: {e}")))?
                .into_iter()
                .map(|s| s.trim_end_matches('\0').to_string())
                .collect(),
        ),
        t @ (Datatype::FixedPoint { .. }
        | Datatype::FloatingPoint { .. }
        | Datatype::Enum { .. }) => {
            let raw = d
                .read_raw_bytes()
                .map_err(|e| err(&path, format!("cannot read the data: {e}")))?;
            decode_numbers(t, &raw, n).map_err(|m| err(&path, m))?
        }
        other => H5Data::Other(type_name(other)),
    };
    Ok(H5Dataset {
        path,
        shape,
        data,
        attrs: read_attrs(d.attributes()),
    })
}

fn type_name(t: &Datatype) -> String {
    match t {
        Datatype::Compound { .. } => "compound".into(),
        Datatype::Array { .. } => "array".into(),
        Datatype::Opaque { .. } => "opaque".into(),
        Datatype::Reference { .. } => "reference".into(),
        Datatype::Bitfield { .. } => "bitfield".into(),
        Datatype::VarLen { .. } => "variable-length sequence".into(),
        Datatype::String {
            size: StringSize::Fixed(_),
            ..
        } => "fixed-length string".into(),
        _ => "unsupported type".into(),
    }
}

/// Decodes `n` numbers of type `t` from the file's bytes (in the file's byte order).
fn decode_numbers(t: &Datatype, raw: &[u8], n: usize) -> Result<H5Data, String> {
    match t {
        Datatype::FixedPoint {
            size,
            signed,
            byte_order,
        } => {
            let size = usize::from(*size);
            if !matches!(size, 1 | 2 | 4 | 8) {
                return Err(format!("unsupported integer size of {size} bytes"));
            }
            let bytes = elements(raw, n, size)?;
            let mut out = Vec::with_capacity(n);
            for c in bytes.chunks_exact(size) {
                let mut b = [0u8; 8];
                match byte_order {
                    ByteOrder::LittleEndian => b[..size].copy_from_slice(c),
                    ByteOrder::BigEndian => {
                        for (k, &x) in c.iter().rev().enumerate() {
                            b[k] = x;
                        }
                    }
                }
                let u = u64::from_le_bytes(b);
                let v = if *signed {
                    let shift = 64 - 8 * size as u32;
                    ((u << shift) as i64) >> shift
                } else {
                    i64::try_from(u).map_err(|_| format!("unsigned value {u} is too large"))?
                };
                out.push(v);
            }
            Ok(H5Data::Int(out))
        }
        Datatype::FloatingPoint { size, byte_order } => {
            let big = matches!(byte_order, ByteOrder::BigEndian);
            match size {
                4 => {
                    let bytes = elements(raw, n, 4)?;
                    Ok(H5Data::F32(
                        bytes
                            .chunks_exact(4)
                            .map(|c| {
                                let a = [c[0], c[1], c[2], c[3]];
                                if big {
                                    f32::from_be_bytes(a)
                                } else {
                                    f32::from_le_bytes(a)
                                }
                            })
                            .collect(),
                    ))
                }
                8 => {
                    let bytes = elements(raw, n, 8)?;
                    Ok(H5Data::F64(
                        bytes
                            .chunks_exact(8)
                            .map(|c| {
                                let mut a = [0u8; 8];
                                a.copy_from_slice(c);
                                if big {
                                    f64::from_be_bytes(a)
                                } else {
                                    f64::from_le_bytes(a)
                                }
                            })
                            .collect(),
                    ))
                }
                s => Err(format!("unsupported float size of {s} bytes")),
            }
        }
        Datatype::Enum { base, .. } => match base.as_ref() {
            b @ Datatype::FixedPoint { .. } => decode_numbers(b, raw, n),
            _ => Err("an enum whose base is not an integer".into()),
        },
        other => Err(format!("{} data are not numbers", type_name(other))),
    }
}

/// The first `n · size` bytes of `raw`, or an error when the file gave fewer.
fn elements(raw: &[u8], n: usize, size: usize) -> Result<&[u8], String> {
    let need = n
        .checked_mul(size)
        .ok_or_else(|| "the data size overflows".to_string())?;
    raw.get(..need).ok_or_else(|| {
        format!(
            "the data hold {} bytes, {need} are needed for {n} elements",
            raw.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_offsets() {
        let mut b = vec![0u8; 2048 + 8];
        assert!(!is_hdf5(&b));
        b[1024..1032].copy_from_slice(SIGNATURE);
        assert_eq!(signature_offset(&b), Some(1024));
        b[0..8].copy_from_slice(SIGNATURE);
        assert_eq!(signature_offset(&b), Some(0));
        assert!(!is_hdf5(&SIGNATURE[..7]));
        assert!(!is_hdf5(&[]));
    }

    #[test]
    fn decodes_big_endian_and_signed() {
        let t = Datatype::FixedPoint {
            size: 2,
            signed: true,
            byte_order: ByteOrder::BigEndian,
        };
        assert_eq!(
            decode_numbers(&t, &[0xff, 0xfe, 0x01, 0x00], 2),
            Ok(H5Data::Int(vec![-2, 256]))
        );
        assert!(decode_numbers(&t, &[0xff], 1).is_err());
    }

    #[test]
    fn not_hdf5_is_an_error() {
        assert_eq!(read(b"hello").unwrap_err().place, "/");
    }
}

/// An HDF5 file to write (`--emit netx`, `--emit nir`): groups and datasets by name, written by
/// the `hdf5-pure` crate (the reading crate above cannot write; docs/formats.md). Members are
/// kept sorted, so the same tree always gives the same bytes.
#[derive(Clone, Debug, Default)]
pub struct H5Out {
    groups: BTreeMap<String, H5Out>,
    datasets: BTreeMap<String, OutData>,
}

/// One dataset to write.
#[derive(Clone, Debug)]
enum OutData {
    /// `float32` of a shape (`[]`: a scalar).
    F32(Vec<u64>, Vec<f32>),
    /// `int64` of a shape (`[]`: a scalar).
    I64(Vec<u64>, Vec<i64>),
    /// Fixed-length, null-padded ASCII strings, `[n]` (netx's layer `type`).
    Ascii(Vec<String>),
    /// Variable-length UTF-8 strings of a shape (`[]`: a scalar), as h5py writes a `str`.
    Text(Vec<u64>, Vec<String>),
}

impl H5Out {
    /// The subgroup `name`, created empty if new.
    pub fn group(&mut self, name: &str) -> &mut H5Out {
        self.groups.entry(name.to_string()).or_default()
    }

    /// A `float32` dataset of `shape` (`&[]` for a scalar).
    pub fn f32(&mut self, name: &str, shape: &[usize], values: Vec<f32>) -> &mut Self {
        self.datasets
            .insert(name.into(), OutData::F32(u64s(shape), values));
        self
    }

    /// An `int64` dataset of `shape` (`&[]` for a scalar).
    pub fn i64(&mut self, name: &str, shape: &[usize], values: Vec<i64>) -> &mut Self {
        self.datasets
            .insert(name.into(), OutData::I64(u64s(shape), values));
        self
    }

    /// A `[n]` fixed-length ASCII string dataset.
    pub fn ascii(&mut self, name: &str, values: &[&str]) -> &mut Self {
        self.datasets.insert(
            name.into(),
            OutData::Ascii(values.iter().map(|s| s.to_string()).collect()),
        );
        self
    }

    /// A variable-length UTF-8 string dataset of `shape` (`&[]` for a scalar).
    pub fn text(&mut self, name: &str, shape: &[usize], values: &[&str]) -> &mut Self {
        self.datasets.insert(
            name.into(),
            OutData::Text(u64s(shape), values.iter().map(|s| s.to_string()).collect()),
        );
        self
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let mut b = hdf5_pure::FileBuilder::new();
        for (name, d) in &self.datasets {
            fill(b.create_dataset(name), d)?;
        }
        for (name, g) in &self.groups {
            let mut gb = b.create_group(name);
            g.build(&mut gb)?;
            b.add_group(gb.finish());
        }
        b.finish().map_err(|e| format!("cannot write HDF5: {e}"))
    }

    fn build(&self, into: &mut hdf5_pure::GroupBuilder) -> Result<(), String> {
        for (name, d) in &self.datasets {
            fill(into.create_dataset(name), d)?;
        }
        for (name, g) in &self.groups {
            let mut gb = into.create_group(name);
            g.build(&mut gb)?;
            into.add_group(gb.finish());
        }
        Ok(())
    }
}

fn u64s(shape: &[usize]) -> Vec<u64> {
    shape.iter().map(|&d| d as u64).collect()
}

fn fill(d: &mut hdf5_pure::DatasetBuilder, data: &OutData) -> Result<(), String> {
    match data {
        OutData::F32(shape, v) => {
            d.with_f32_data(v).with_shape(shape);
        }
        OutData::I64(shape, v) => {
            d.with_i64_data(v).with_shape(shape);
        }
        OutData::Ascii(v) => {
            let refs: Vec<&str> = v.iter().map(String::as_str).collect();
            d.with_ascii_strings(&refs)
                .map_err(|e| format!("cannot write a string: {e}"))?;
        }
        OutData::Text(shape, v) => {
            let refs: Vec<&str> = v.iter().map(String::as_str).collect();
            d.with_vlen_strings(&refs).with_shape(shape);
        }
    }
    Ok(())
}
