//! Files in and out, with the rules of docs/limits.md ("Files and flags").
//!
//! **Reading.** Every file nmc reads (models, external data, `.npy` inputs, labels and calibration
//! samples, artifacts, IR text, `--chip-params`) goes through [`read_file`], [`read_limited`] or
//! [`open_regular`]: only regular files are read. A FIFO, device, socket or folder is refused
//! from its metadata *before* it is opened (opening a FIFO would block until a writer comes), and
//! the opened handle is checked again (the name could have been swapped in between). Reading stops
//! at a size limit: [`DEFAULT_MAX_FILE_BYTES`] (2 GiB), changed with the environment variable
//! [`MAX_FILE_BYTES_VAR`] (`NMC_MAX_FILE_BYTES`, a byte count).
//!
//! **Writing.** A command stages its outputs in an [`Outputs`] and commits them only after every
//! step succeeded, so a failing command leaves no output behind. Until the commit the bytes stay
//! in memory; the commit then writes each regular output to a temporary file, and renames them all
//! once every one is complete (an error removes the temporary files; no destination is touched
//! before every temporary file is written). Destinations:
//!
//! - a missing file or an existing regular file: written to a temporary file in the same folder,
//!   created exclusively (`O_CREAT | O_EXCL`, which never follows a symbolic link planted at its
//!   name) under an unpredictable name (`.NAME.nmc-tmp-` and 16 hex digits from the pid, the time,
//!   a counter and std's randomly keyed hasher), then renamed over the destination; an existing
//!   file keeps its permissions;
//! - a symbolic link: followed to the file it finally points to, which is written as above; the
//!   link itself stays;
//! - an existing device or FIFO (`/dev/null`, `/dev/stdout`, a named pipe): written in place,
//!   opened without creating or truncating it, never replaced by a regular file (a FIFO waits for
//!   its reader, as with any program writing to a named pipe);
//! - a folder or a socket: refused (usage error, exit 2);
//! - the same file as one of the command's inputs (same device and inode, whatever the path
//!   spelling), or as another output of the command: refused (usage error, exit 2).
//!
//! A signal that kills nmc (Ctrl-C) while it works leaves no file: nothing is on disk before the
//! commit, which lasts as long as writing the bytes. nmc installs no signal handler (the standard
//! library has none and the workspace forbids unsafe code), so a kill *during* the commit can leave
//! a `.NAME.nmc-tmp-…` file, never a partial destination.

use crate::Error;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Default size limit of a file nmc reads: 2 GiB. ONNX models and artifacts are protobuf
/// messages, which protobuf caps at 2 GiB (larger models keep their weights in external data);
/// the same limit bounds an external-data file, a `.npy` file (500 M float32 values) and IR text.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 1 << 31;

/// The environment variable that changes [`DEFAULT_MAX_FILE_BYTES`] (a byte count).
pub const MAX_FILE_BYTES_VAR: &str = "NMC_MAX_FILE_BYTES";

/// Size limit of a `--chip-params` file: 1 MiB (a dozen constants take a few hundred bytes).
pub const MAX_PARAMS_BYTES: u64 = 1 << 20;

/// A positive limit from the environment variable `var`, or `default` when it is unset.
pub fn env_limit(var: &str, default: u64) -> Result<u64, String> {
    match std::env::var(var) {
        Err(std::env::VarError::NotPresent) => Ok(default),
        Ok(s) => s
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| format!("{var}={s:?} is not a positive whole number")),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{var} is not a number")),
    }
}

/// The size limit of files nmc reads: `NMC_MAX_FILE_BYTES`, else 2 GiB.
pub fn max_file_bytes() -> io::Result<u64> {
    env_limit(MAX_FILE_BYTES_VAR, DEFAULT_MAX_FILE_BYTES)
        .map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))
}

/// A byte count for messages: `2147483648 bytes (2 GiB)`.
pub fn human_bytes(n: u64) -> String {
    let units = [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    match units.iter().find(|(u, _)| n >= *u) {
        Some((u, name)) if n.is_multiple_of(*u) => format!("{n} bytes ({} {name})", n / u),
        Some((u, name)) => format!("{n} bytes ({:.1} {name})", n as f64 / *u as f64),
        None => format!("{n} bytes"),
    }
}

/// What a file system object is, for messages.
fn kind_name(ft: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_dir() {
        "a folder"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

fn require_regular(m: &Metadata) -> io::Result<()> {
    if m.is_file() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "it is {}; nmc reads regular files only",
                kind_name(&m.file_type())
            ),
        ))
    }
}

/// Opens `path` for reading if it is a regular file (after following symbolic links); returns the
/// file and its size. Anything else is refused before it is opened, so a FIFO cannot block.
pub fn open_regular(path: &Path) -> io::Result<(File, u64)> {
    require_regular(&std::fs::metadata(path)?)?;
    let file = File::open(path)?;
    // The name may have been replaced between the check and the open.
    let m = file.metadata()?;
    require_regular(&m)?;
    Ok((file, m.len()))
}

/// Reads a whole regular file of at most `limit` bytes; `raise` says how to raise the limit.
pub fn read_limited(path: &Path, limit: u64, raise: &str) -> io::Result<Vec<u8>> {
    let (file, len) = open_regular(path)?;
    let too_big = |size: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the file has {size}, more than nmc's limit of {}; {raise}",
                human_bytes(limit)
            ),
        )
    };
    if len > limit {
        return Err(too_big(human_bytes(len)));
    }
    let mut buf = Vec::with_capacity(len as usize);
    // The file may grow while it is read: never read more than the limit.
    file.take(limit.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(too_big(format!("more than {}", human_bytes(limit))));
    }
    Ok(buf)
}

/// Reads a model, external-data, artifact, `.npy` or IR file: a regular file within
/// [`max_file_bytes`].
pub fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    read_limited(
        path,
        max_file_bytes()?,
        &format!("set {MAX_FILE_BYTES_VAR} to a larger byte count to raise it"),
    )
}

/// Reads a file as [`read_file`] does; errors become [`Error::Io`] naming the file.
pub fn read(path: &Path) -> Result<Vec<u8>, Error> {
    read_file(path).map_err(|source| Error::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `bytes` to `path` as the only output of an [`Outputs`] (see the module documentation):
/// atomically for a regular file, in place for a device or FIFO.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut out = Outputs::new();
    out.stage(path, bytes.to_vec());
    out.commit().map_err(|e| match e {
        Error::Io { source, .. } => source,
        other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
    })
}

/// Where an output goes, once symbolic links are followed.
#[derive(Debug)]
enum Dest {
    /// A regular file (its metadata when it exists): written to a temporary file, then renamed.
    File {
        path: PathBuf,
        existing: Option<Metadata>,
    },
    /// An existing device or FIFO: written in place.
    Special { path: PathBuf, meta: Metadata },
}

impl Dest {
    fn path(&self) -> &Path {
        match self {
            Dest::File { path, .. } | Dest::Special { path, .. } => path,
        }
    }

    fn meta(&self) -> Option<&Metadata> {
        match self {
            Dest::File { existing, .. } => existing.as_ref(),
            Dest::Special { meta, .. } => Some(meta),
        }
    }
}

/// Symbolic links followed before giving up (Linux's own limit).
const MAX_LINKS: usize = 40;

fn write_error(path: &Path, source: io::Error) -> Error {
    Error::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    }
}

/// Classifies what `given` names once symbolic links are followed. A device, FIFO or socket is
/// classified by the kernel's own resolution (`stat`), so magic links such as `/dev/stdout` →
/// `/proc/self/fd/1` → a pipe are opened as they are; a regular file's real path (where its
/// temporary file goes) is found by following the links one by one, which also finds the target a
/// dangling link would create.
fn resolve(given: &Path) -> Result<Dest, Error> {
    match std::fs::metadata(given) {
        Ok(m) if m.is_dir() => Err(Error::Usage(format!(
            "cannot write {}: it is a folder; give a file name",
            given.display()
        ))),
        Ok(m) if is_socket(&m) => Err(Error::Usage(format!(
            "cannot write {}: it is a socket",
            given.display()
        ))),
        Ok(m) if !m.is_file() => Ok(Dest::Special {
            path: given.to_path_buf(),
            meta: m,
        }),
        Ok(m) => {
            let path = follow_links(given)?;
            // The links must lead to the file the kernel found (not so for magic links such as
            // /proc/self/fd/N to a deleted file).
            match std::fs::symlink_metadata(&path) {
                Ok(real) if real.is_file() && same_file(&path, &real, given, &m) => {
                    Ok(Dest::File {
                        path,
                        existing: Some(real),
                    })
                }
                _ => Err(write_error(
                    given,
                    io::Error::other("its symbolic links do not lead to a file nmc can replace"),
                )),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Dest::File {
            path: follow_links(given)?,
            existing: None,
        }),
        Err(e) => Err(write_error(given, e)),
    }
}

/// The path `given` leads to once every symbolic link on its last component is followed.
fn follow_links(given: &Path) -> Result<PathBuf, Error> {
    let mut p = given.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&p).map_err(|e| write_error(given, e))?;
                p = match p.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(write_error(
        given,
        io::Error::other(format!("more than {MAX_LINKS} symbolic links")),
    ))
}

fn is_socket(m: &Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_socket()
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        false
    }
}

/// Whether two existing files are the same file (device and inode on Unix).
fn same_file(a: &Path, am: &Metadata, b: &Path, bm: &Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let _ = (a, b);
        am.dev() == bm.dev() && am.ino() == bm.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (am, bm);
        matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
    }
}

/// The folder a regular output's temporary file goes to.
fn folder(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A file's identity for duplicate checks: its canonical folder and its name.
fn file_key(path: &Path) -> Option<PathBuf> {
    Some(folder(path).canonicalize().ok()?.join(path.file_name()?))
}

/// Every output of one command, committed together (see the module documentation).
#[derive(Debug, Default)]
pub struct Outputs {
    inputs: Vec<PathBuf>,
    planned: Vec<PathBuf>,
    staged: Vec<(PathBuf, Vec<u8>)>,
}

impl Outputs {
    /// No outputs yet.
    pub fn new() -> Self {
        Outputs::default()
    }

    /// Records a file the command reads: no output may be the same file.
    pub fn reads(&mut self, path: impl AsRef<Path>) {
        self.inputs.push(path.as_ref().to_path_buf());
    }

    /// Checks an output's destination before the work starts, so a bad one fails in
    /// milliseconds: not a folder or socket, its folder exists, not an input, not named twice.
    pub fn plan(&mut self, path: &Path) -> Result<(), Error> {
        self.planned.push(path.to_path_buf());
        let planned = self.planned.clone();
        self.check(planned.iter().map(PathBuf::as_path))?;
        Ok(())
    }

    /// Stages `bytes` for `path`; nothing is written before [`Outputs::commit`].
    pub fn stage(&mut self, path: &Path, bytes: Vec<u8>) {
        self.staged.push((path.to_path_buf(), bytes));
    }

    /// Resolves every output and checks the rules.
    fn check<'a>(&self, outputs: impl Iterator<Item = &'a Path>) -> Result<Vec<Dest>, Error> {
        let inputs: Vec<(&Path, Metadata)> = self
            .inputs
            .iter()
            .filter_map(|p| Some((p.as_path(), std::fs::metadata(p).ok()?)))
            .collect();
        let mut dests: Vec<(&Path, Dest)> = Vec::new();
        for given in outputs {
            let dest = resolve(given)?;
            if let Dest::File { path, .. } = &dest {
                if path.file_name().is_none() {
                    return Err(Error::Usage(format!(
                        "cannot write {}: the path names no file",
                        given.display()
                    )));
                }
                let dir = folder(path);
                match std::fs::metadata(dir) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        return Err(write_error(
                            given,
                            io::Error::new(
                                io::ErrorKind::NotADirectory,
                                format!("{} is not a folder", dir.display()),
                            ),
                        ))
                    }
                    Err(e) => {
                        return Err(write_error(
                            given,
                            io::Error::new(e.kind(), format!("folder {}: {e}", dir.display())),
                        ))
                    }
                }
            }
            if let Some(m) = dest.meta() {
                if let Some((input, _)) = inputs
                    .iter()
                    .find(|(p, im)| same_file(dest.path(), m, p, im))
                {
                    return Err(Error::Usage(format!(
                        "the output {} is the input {}; nmc does not overwrite its inputs",
                        given.display(),
                        input.display()
                    )));
                }
            }
            // Two outputs may share a device (`/dev/null`), not a file.
            if let Dest::File { path, existing } = &dest {
                let key = file_key(path);
                let twice = dests.iter().find(|(_, d)| match d {
                    Dest::File {
                        path: p,
                        existing: e,
                    } => {
                        key.is_some() && key == file_key(p)
                            || matches!((existing, e), (Some(a), Some(b)) if same_file(path, a, p, b))
                    }
                    Dest::Special { .. } => false,
                });
                if let Some((other, _)) = twice {
                    return Err(Error::Usage(format!(
                        "two outputs name the same file: {} and {}",
                        other.display(),
                        given.display()
                    )));
                }
            }
            dests.push((given, dest));
        }
        Ok(dests.into_iter().map(|(_, d)| d).collect())
    }

    /// Writes every staged output, or none: regular files go to exclusive temporary files first
    /// (any error removes them and leaves every destination as it was), then devices and FIFOs
    /// are written in place, then the temporary files are renamed over their destinations.
    pub fn commit(self) -> Result<(), Error> {
        let dests = self.check(self.staged.iter().map(|(p, _)| p.as_path()))?;
        let mut temps: Vec<(PathBuf, &Path, &Path)> = Vec::new();
        let remove = |temps: &[(PathBuf, &Path, &Path)]| {
            for (t, _, _) in temps {
                let _ = std::fs::remove_file(t);
            }
        };
        for ((given, bytes), dest) in self.staged.iter().zip(&dests) {
            if let Dest::File { path, existing } = dest {
                match write_temp(path, bytes, existing.as_ref()) {
                    Ok(t) => temps.push((t, path, given)),
                    Err(e) => {
                        remove(&temps);
                        return Err(write_error(given, e));
                    }
                }
            }
        }
        for ((given, bytes), dest) in self.staged.iter().zip(&dests) {
            if let Dest::Special { path, .. } = dest {
                if let Err(e) = write_in_place(path, bytes) {
                    remove(&temps);
                    return Err(write_error(given, e));
                }
            }
        }
        for (i, (tmp, path, given)) in temps.iter().enumerate() {
            if let Err(e) = std::fs::rename(tmp, path) {
                remove(&temps[i..]);
                return Err(write_error(given, e));
            }
        }
        Ok(())
    }
}

/// 64 unpredictable bits: std's hasher is keyed from the OS's random source once per thread (and
/// the key changes with every `RandomState`); the pid, the time and a counter are mixed in too.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// Names tried before giving up on a temporary file.
const TEMP_TRIES: usize = 16;

/// Writes `bytes` to a new temporary file next to `dest` (created exclusively; a name that exists,
/// a planted symbolic link included, is skipped) and returns its path.
fn write_temp(dest: &Path, bytes: &[u8], existing: Option<&Metadata>) -> io::Result<PathBuf> {
    let dir = folder(dest);
    let name = dest
        .file_name()
        .ok_or_else(|| io::Error::other("the path names no file"))?
        .to_string_lossy();
    // Keep the temporary name within the usual 255-byte limit.
    let short: String = name.chars().take(64).collect();
    for _ in 0..TEMP_TRIES {
        let tmp = dir.join(format!(".{short}.nmc-tmp-{:016x}", random_u64()));
        let mut f = match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        let written = (|| {
            f.write_all(bytes)?;
            if let Some(m) = existing {
                f.set_permissions(m.permissions())?;
            }
            f.sync_all()
        })();
        return match written {
            Ok(()) => Ok(tmp),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        };
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "no free temporary name in {} after {TEMP_TRIES} tries",
            dir.display()
        ),
    ))
}

/// Writes a device or FIFO in place: opened for writing only (no create, no truncate).
fn write_in_place(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    if f.metadata()?.is_file() {
        // The device was replaced by a regular file in the meantime: do not write into it.
        return Err(io::Error::other(
            "it became a regular file while nmc was writing",
        ));
    }
    f.write_all(bytes)?;
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nmc-fsutil-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn temporary_names_differ() {
        let a = random_u64();
        let b = random_u64();
        assert_ne!(a, b);
    }

    #[test]
    fn env_limits_parse_or_say_why() {
        let var = "NMC_TEST_ONLY_LIMIT_FSUTIL";
        assert_eq!(env_limit(var, 5), Ok(5));
        std::env::set_var(var, " 12 ");
        assert_eq!(env_limit(var, 5), Ok(12));
        for bad in ["0", "-3", "1e9", "lots"] {
            std::env::set_var(var, bad);
            let e = env_limit(var, 5).unwrap_err();
            assert!(e.contains(var) && e.contains(bad), "{e}");
        }
        std::env::remove_var(var);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(1 << 31), "2147483648 bytes (2 GiB)");
        assert_eq!(human_bytes(1 << 20), "1048576 bytes (1 MiB)");
        assert_eq!(human_bytes(100), "100 bytes");
    }

    #[test]
    fn read_limited_stops_at_the_limit() {
        let d = dir("limit");
        let p = d.join("f");
        std::fs::write(&p, [7u8; 100]).unwrap();
        assert_eq!(read_limited(&p, 100, "raise").unwrap().len(), 100);
        let e = read_limited(&p, 99, "raise it so").unwrap_err();
        assert!(e.to_string().contains("99 bytes") && e.to_string().contains("raise it so"));
        let e = read_limited(&d, 99, "").unwrap_err();
        assert!(e.to_string().contains("a folder"), "{e}");
    }

    #[test]
    fn commit_replaces_a_file_and_keeps_the_link() {
        let d = dir("link");
        let real = d.join("real.txt");
        std::fs::write(&real, "old").unwrap();
        #[cfg(unix)]
        {
            let link = d.join("link.txt");
            std::os::unix::fs::symlink("real.txt", &link).unwrap();
            write_atomic(&link, b"new").unwrap();
            assert!(std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink());
            assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        }
        let names: Vec<_> = std::fs::read_dir(&d).unwrap().collect();
        assert!(names.len() <= 2, "no temporary file is left");
    }
}
