//! Helpers shared by pilot-core's integration tests: plans in a private working directory.
#![allow(dead_code)]

use std::path::Path;

use pilot_core::pilots::description::{PilotPlan, ProcessEnvironment, RawDescription, RawKafka};

/// A validated tansu plan in `dir` with `nodes` nodes (addresses picked automatically, so tests never collide).
pub fn tansu_plan(dir: &Path, nodes: u32) -> PilotPlan {
    RawDescription {
        nodes: Some(nodes),
        working_directory: Some(dir.to_path_buf()),
        kafka: Some(RawKafka {
            ready_timeout_s: Some(30),
            ..Default::default()
        }),
        ..Default::default()
    }
    .validate("test", &ProcessEnvironment)
    .expect("tansu must be installed for these tests: run scripts/setup.sh")
}

/// Wait until `pid` is gone (or a zombie), up to 10 s.
pub fn wait_gone(pid: u32) -> bool {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(10) {
        if !pilot_core::pilots::process::pid_alive(pid) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// Pids of processes whose command line contains `needle`.
pub fn pids_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) && pilot_core::pilots::process::pid_alive(pid) {
                out.push(pid);
            }
        }
    }
    out
}
