//! The `pilot` binary: detached lifecycle, crashed managers, and a clear error for each bad input.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{pids_with, wait_gone};

fn pilot(workdir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pilot"))
        .arg("--workdir")
        .arg(workdir)
        .args(args)
        .output()
        .expect("run pilot")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn started_id(o: &Output) -> String {
    let t = text(o);
    assert!(o.status.success(), "{t}");
    t.lines()
        .next()
        .and_then(|l| l.strip_prefix("pilot "))
        .and_then(|l| l.split(':').next())
        .unwrap_or_else(|| panic!("no id in {t}"))
        .to_string()
}

/// The pid of the running pilot `id`'s (first) broker, found by its bootstrap address.
fn broker_pid(w: &Path, id: &str) -> u32 {
    let json: serde_json::Value =
        serde_json::from_slice(&pilot(w, &["status", id, "--json"]).stdout).unwrap();
    let bootstrap = json["details"]["framework"]["bootstrap_servers"][0]
        .as_str()
        .unwrap()
        .to_string();
    pids_with(&format!("tcp://{bootstrap}"))[0]
}

/// Stops the pilot even if an assertion fails first.
struct StopOnDrop<'a>(&'a Path, String);
impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        let _ = pilot(self.0, &["stop", &self.1]);
    }
}

#[test]
fn detached_start_extend_status_stop_leaves_no_process() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path();
    let id = started_id(&pilot(w, &["start", "--nodes", "1"]));
    let _guard = StopOnDrop(w, id.clone());
    let agent = pids_with(&format!("agent {id}"));
    assert_eq!(agent.len(), 1);
    let ext = pilot(w, &["extend", &id, "--nodes", "1"]);
    let child = started_id(&ext);
    let t = text(&ext);
    assert!(t.contains(&format!("extends:           {id}")), "{t}");
    let node_rows: Vec<&str> = t.lines().filter(|l| l.starts_with("    local-")).collect();
    assert_eq!(node_rows.len(), 2, "{t}");
    assert!(
        node_rows[0].contains(" broker ") && node_rows[1].contains(" compute "),
        "{t}"
    );

    let st = text(&pilot(w, &["status"]));
    assert!(
        st.contains(&id) && st.contains(&child) && st.matches("Running").count() == 2,
        "{st}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&pilot(w, &["status", &id, "--json"]).stdout).unwrap();
    let bootstrap = json["details"]["framework"]["bootstrap_servers"][0]
        .as_str()
        .unwrap()
        .to_string();
    let brokers = pids_with(&format!("tcp://{bootstrap}"));
    assert_eq!(brokers.len(), 1);

    let created = pilot(
        w,
        &["topic", "create", &id, "cli-topic", "--partitions", "3"],
    );
    assert!(
        text(&created).contains("3 partitions"),
        "{}",
        text(&created)
    );
    let described = text(&pilot(w, &["topic", "describe", &id, "cli-topic"]));
    assert_eq!(described.matches("partition ").count(), 3, "{described}");

    let stopped = text(&pilot(w, &["stop", &id]));
    assert!(
        stopped.contains(&format!("pilot {child} Canceled"))
            && stopped.contains(&format!("pilot {id} Canceled")),
        "{stopped}"
    );
    assert!(wait_gone(brokers[0]) && wait_gone(agent[0]));
    assert!(pids_with(&id).is_empty());
}

#[test]
fn a_killed_manager_takes_its_broker_along_and_status_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path();
    let id = started_id(&pilot(w, &["start"]));
    let _guard = StopOnDrop(w, id.clone());
    let agent = pids_with(&format!("agent {id}"))[0];
    let broker = broker_pid(w, &id);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        wait_gone(broker),
        "broker {broker} outlived its killed manager"
    );
    let st = text(&pilot(w, &["status", &id]));
    assert!(
        st.contains("Failed") && st.contains("ended without cleaning up"),
        "{st}"
    );
}

#[test]
fn foreground_pilot_cancels_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pilot"))
        .arg("--workdir")
        .arg(dir.path())
        .args(["start", "--foreground"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let store = pilot_core::pilots::store::Store::new(dir.path());
    let t0 = std::time::Instant::now();
    let rec = loop {
        if let Some(r) = store
            .list()
            .unwrap()
            .into_iter()
            .find(|r| r.state == pilot_core::PilotState::Running)
        {
            break r;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "never running");
        std::thread::sleep(Duration::from_millis(20));
    };
    let bootstrap = rec.details.unwrap().framework.kafka().unwrap().bootstrap();
    let broker = pids_with(&format!("tcp://{bootstrap}"))[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(wait_gone(broker));
    assert_eq!(
        store.load(&rec.id).unwrap().state,
        pilot_core::PilotState::Canceled
    );
}

#[test]
fn unknown_key_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("desc.toml");
    std::fs::write(
        &f,
        "resource = \"local://\"\nnodes = 1\n\n[kafka]\npartitons_per_node = 4\n",
    )
    .unwrap();
    let o = pilot(dir.path(), &["start", "--dry-run", f.to_str().unwrap()]);
    let t = text(&o);
    assert!(!o.status.success());
    assert!(
        t.contains("desc.toml") && t.contains("line 5") && t.contains("partitons_per_node"),
        "{t}"
    );
}

#[test]
fn zero_nodes_unknown_scheme_and_missing_binary_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path();
    let t = text(&pilot(w, &["start", "--nodes", "0"]));
    assert!(t.contains("nodes must be at least 1"), "{t}");
    let t = text(&pilot(w, &["start", "--resource", "pbs://head"]));
    assert!(
        t.contains("unknown scheme `pbs`") && t.contains("supported schemes: local"),
        "{t}"
    );
    let t = text(&pilot(
        w,
        &["start", "--tansu-binary", "/nonexistent/tansu"],
    ));
    assert!(
        t.contains("tansu binary was not found")
            && t.contains("cargo install tansu --version 0.6.0"),
        "{t}"
    );
    let t = text(&pilot(w, &["start", "--address", "192.168.1.5"]));
    assert!(t.contains("not a loopback address"), "{t}");
    // Nothing was registered by rejected descriptions.
    assert!(pilot_core::pilots::store::Store::new(w)
        .list()
        .unwrap()
        .is_empty());
}

#[test]
fn dry_run_prints_the_plan_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let o = pilot(
        dir.path(),
        &[
            "start",
            "--dry-run",
            "--nodes",
            "3",
            "--partitions-per-node",
            "4",
            "--queue",
            "normal",
        ],
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("nodes:             3")
            && t.contains("partitions/node:   4")
            && t.contains("queue:             normal"),
        "{t}"
    );
    assert!(pilot_core::pilots::store::Store::new(dir.path())
        .list()
        .unwrap()
        .is_empty());
}

#[test]
fn port_in_use_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // An address no automatic allocation reaches first, taken by a plain listener.
    let _busy = std::net::TcpListener::bind("127.0.7.10:9092").unwrap();
    let o = pilot(dir.path(), &["start", "--address", "127.0.7.10"]);
    let t = text(&o);
    assert!(!o.status.success());
    assert!(
        t.contains("port 9092 on 127.0.7.10 is already in use"),
        "{t}"
    );
}

#[test]
fn broker_that_never_becomes_ready_fails_with_its_log_tail() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // A stand-in broker binary that starts, logs, and never listens.
    let fake = dir.path().join("silent-broker");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'stand-in broker: refusing to listen'\nexec sleep 60\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let w = dir.path().join("work");
    let o = pilot(
        &w,
        &[
            "start",
            "--foreground",
            "--tansu-binary",
            fake.to_str().unwrap(),
            "--ready-timeout-s",
            "1",
        ],
    );
    let t = text(&o);
    assert!(!o.status.success());
    assert!(
        t.contains("never became ready") && t.contains("refusing to listen"),
        "{t}"
    );
    assert!(
        pids_with(fake.to_str().unwrap()).is_empty()
            && pids_with("sleep 60")
                .iter()
                .all(|p| !std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .unwrap_or_default()
                    .contains(dir.path().to_str().unwrap()))
    );
    let recs = pilot_core::pilots::store::Store::new(&w).list().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].state, pilot_core::PilotState::Failed);
}

#[test]
fn exec_runs_copies_per_node_with_their_identity() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path();
    let id = started_id(&pilot(w, &["start"]));
    let _guard = StopOnDrop(w, id.clone());
    let o = pilot(
        w,
        &[
            "exec",
            &id,
            "--processes-per-node",
            "3",
            "--",
            "sh",
            "-c",
            "echo task {process_index} of $PILOT_ID on $PILOT_NODE_ADDRESS via {bootstrap}",
        ],
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let logs: Vec<String> = std::fs::read_dir(w.join(&id).join("tasks"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(logs.len(), 3);
    for i in 0..3 {
        assert!(logs.iter().any(|l| l.starts_with(&format!("task {i} of {id} on 127.")) && l.contains(":9092")), "{logs:?}");
    }
    let o = pilot(w, &["exec", &id, "--", "sh", "-c", "exit 3"]);
    assert!(
        !o.status.success() && text(&o).contains("1 of 1 tasks failed"),
        "{}",
        text(&o)
    );
    let o = pilot(w, &["exec", &id, "--nodes", "compute", "--", "true"]);
    assert!(text(&o).contains("no Compute nodes"), "{}", text(&o));
}

/// The process state letter of `pid` (`T` while stopped), from /proc.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

#[test]
fn fault_stops_and_continues_then_kills_a_broker_and_refuses_what_it_cannot_hit() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path();
    let id = started_id(&pilot(w, &["start"]));
    let _guard = StopOnDrop(w, id.clone());
    let broker = broker_pid(w, &id);

    // What it cannot hit is refused before anything is touched, naming the flag.
    for (args, says) in [
        (vec!["--action", "slow"], "not `slow"),
        (
            vec!["--action", "kill", "--target", "consumer:0"],
            "brokers",
        ),
        (vec!["--action", "node-down"], "needs a SLURM pilot"),
        (vec!["--action", "scancel"], "needs a SLURM pilot"),
        (
            vec!["--action", "kill", "--target", "broker:3"],
            "runs 1 broker(s)",
        ),
        (vec!["--action", "stop"], "--for-s"),
        (vec!["--action", "kill", "--for-s", "3"], "--for-s"),
        (vec!["--action", "kill", "--after-s=-1"], "--after-s"),
        (vec!["--action", "kill", "--target", "brokr"], "--target"),
    ] {
        let mut all = vec!["fault", id.as_str()];
        all.extend(args.iter().copied());
        let o = pilot(w, &all);
        let t = text(&o);
        assert!(!o.status.success() && t.contains(says), "{args:?}: {t}");
        assert!(!t.contains("panicked"), "{t}");
    }
    let o = pilot(w, &["fault", "no-such-pilot", "--action", "kill"]);
    assert!(
        !o.status.success() && text(&o).contains("no-such-pilot"),
        "{}",
        text(&o)
    );
    let dry = pilot(w, &["fault", &id, "--action", "kill", "--dry-run"]);
    assert!(
        dry.status.success() && text(&dry).contains("dry run"),
        "{}",
        text(&dry)
    );
    assert_eq!(proc_state(broker).map(|s| s != 'T'), Some(true));

    // Stop for 2 s: stopped meanwhile, continued after, and still a broker.
    let stopper = Command::new(env!("CARGO_BIN_EXE_pilot"))
        .arg("--workdir")
        .arg(w)
        .args(["fault", &id, "--action", "stop", "--for-s", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while proc_state(broker) != Some('T') && t0.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        proc_state(broker),
        Some('T'),
        "the broker was never stopped"
    );
    let o = stopper.wait_with_output().unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains(&format!("stop broker:0 (pid {broker}"))
            && t.contains(&format!("cont broker:0 (pid {broker}")),
        "{t}"
    );
    assert_ne!(proc_state(broker), Some('T'));
    let created = pilot(
        w,
        &["topic", "create", &id, "after-stop", "--partitions", "2"],
    );
    assert!(created.status.success(), "{}", text(&created));

    // Kill after 0.5 s: the broker is gone and the pilot says so.
    let o = pilot(w, &["fault", &id, "--action", "kill", "--after-s", "0.5"]);
    let t = text(&o);
    assert!(
        o.status.success() && t.contains(&format!("kill broker:0 (pid {broker}")),
        "{t}"
    );
    assert!(wait_gone(broker), "broker {broker} survived SIGKILL");
    let t0 = std::time::Instant::now();
    let mut st = String::new();
    while t0.elapsed() < Duration::from_secs(10) {
        st = text(&pilot(w, &["status", &id]));
        if st.contains("Failed") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(st.contains("Failed"), "{st}");
}
