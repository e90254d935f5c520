//! Helpers shared by the experiments crate's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The workspace's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `experiments ARGS` from the workspace root, with `env` added (SLURM_CONF, say).
pub fn experiments_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_experiments"))
        .args(args)
        .current_dir(root())
        .env("RUST_BACKTRACE", "0")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// `experiments ARGS` from the workspace root.
pub fn experiments(args: &[&str]) -> Output {
    experiments_with(args, &[])
}

/// A command's stdout and stderr, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
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
