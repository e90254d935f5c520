//! Helpers shared by the experiments crate's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The workspace's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `mass` and `masa` beside `experiments` (the workspace's tests build them; built here if this crate's tests run
/// alone).
pub fn apps() -> (PathBuf, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_experiments"))
        .parent()
        .unwrap()
        .to_path_buf();
    if !dir.join("mass").exists() || !dir.join("masa").exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-p", "mass", "-p", "masa"])
            .current_dir(root())
            .status()
            .unwrap()
            .success();
        assert!(ok, "building mass and masa");
    }
    (dir.join("mass"), dir.join("masa"))
}
