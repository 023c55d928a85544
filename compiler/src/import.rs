//! The model-file entry point of every command: ONNX, or an HDF5 spiking network (lava-dl netx or
//! NIR), recognised by content, never by extension. An HDF5 file starts with the superblock
//! signature at offset 0 or after a user block (512, 1024, 2048, … bytes); anything else is
//! parsed as ONNX, exactly as before, so ONNX errors are unchanged.

use crate::onnx::{ImportError, Imported};
use crate::snn::SnnOptions;
use std::path::Path;

/// Imports a model file (ONNX, netx or NIR by content) with the default spiking options.
pub fn import_file(path: &Path) -> Result<Imported, ImportError> {
    import_file_with(path, &SnnOptions::default())
}

/// Imports a model file; `snn` applies to NIR and netx files.
pub fn import_file_with(path: &Path, snn: &SnnOptions) -> Result<Imported, ImportError> {
    let bytes = crate::fsutil::read_file(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !crate::hdf5::is_hdf5(&bytes) {
        return crate::onnx::import_read(path, bytes);
    }
    let mut imported = crate::snn::import_hdf5(&bytes, snn)?;
    imported
        .hashes
        .insert(path.to_path_buf(), nmc_ir::hash_bytes(&bytes));
    imported.files = vec![path.to_path_buf()];
    Ok(imported)
}

/// Imports a model from memory (ONNX, netx or NIR by content); `base_dir` is where ONNX external
/// data is read from.
pub fn import_bytes(bytes: &[u8], base_dir: Option<&Path>) -> Result<Imported, ImportError> {
    if crate::hdf5::is_hdf5(bytes) {
        crate::snn::import_hdf5(bytes, &SnnOptions::default())
    } else {
        crate::onnx::import_bytes(bytes, base_dir)
    }
}
