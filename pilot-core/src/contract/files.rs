//! Files every part writes: results, state and checkpoints replaced whole, never half-written.

use std::path::{Path, PathBuf};

/// Write `bytes` to `path` through a temporary file beside it and a rename: a reader (or a process killed
/// mid-write) sees the old file or the new one, whole.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
