//! Consumer groups under failure, as a user runs them by hand (a pilot, MASS, MASA processes) and as experiments
//! run them: a killed member strands no partition and loses no record, and a run ends when its stream ends.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{experiments, root, text};

/// The `pilot` binary beside `mass` and `masa` (built when this crate's tests run alone).
fn pilot_bin(mass: &Path) -> PathBuf {
    let bin = mass.parent().unwrap().join("pilot");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        assert!(Command::new(cargo)
            .args(["build", "-p", "pilot-core", "--bin", "pilot"])
            .current_dir(root())
            .status()
            .unwrap()
            .success());
    }
    bin
}

/// A running pilot (the default local broker), stopped when dropped.
struct Broker {
    bin: PathBuf,
    workdir: PathBuf,
    id: String,
    bootstrap: String,
}

impl Broker {
    fn start(bin: PathBuf, workdir: PathBuf) -> Self {
        let o = Command::new(&bin)
            .arg("--workdir")
            .arg(&workdir)
            .args(["start", "--json"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let b = Broker {
            bin,
            workdir,
            id: v["id"].as_str().unwrap().into(),
            bootstrap: v["details"]["framework"]["bootstrap_servers"][0]
                .as_str()
                .unwrap()
                .into(),
        };
        let o = b.pilot(&["topic", "create", &b.id, "t", "--partitions", "12"]);
        assert!(o.status.success(), "{}", text(&o));
        b
    }

    fn pilot(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("--workdir")
            .arg(&self.workdir)
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.pilot(&["stop", &self.id]);
    }
}

/// Kills the child if a test fails before it ends.
struct Reaped(Option<Child>);
impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Issue 26's scenario: `consumers` MASA processes in one group started by hand, 3,000 messages at 300 msg/s,
/// consumer `victim` SIGKILLed 5 s in, survivors idling out after 25 s; `masa merge` then. Its output.
fn kill_one_of(consumers: usize, victim: usize) -> String {
    let (mass, masa) = common::apps();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(pilot_bin(&mass), dir.path().join("pilots"));
    let results = dir.path().join("results");
    let rd = results.display().to_string();
    let mut procs: Vec<Reaped> = (0..consumers)
        .map(|i| {
            let c = Command::new(&masa)
                .args([
                    "run",
                    "--bootstrap-servers",
                    &broker.bootstrap,
                    "--topic",
                    "t",
                    "--group",
                    "g",
                    "--metrics-topic",
                    "t-metrics",
                    "--consumer-id",
                    &format!("c{i}"),
                    "--processor",
                    "none",
                    "--idle-timeout-s",
                    "25",
                    "--start-timeout-s",
                    "60",
                    "--quiet",
                    "--results-dir",
                    &rd,
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            // The first member joins first (it leads the group: the member a broker most easily strands).
            std::thread::sleep(Duration::from_millis(if i == 0 { 500 } else { 0 }));
            Reaped(Some(c))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(4));
    let producer = Reaped(Some(
        Command::new(&mass)
            .args([
                "run",
                "--bootstrap-servers",
                &broker.bootstrap,
                "--topic",
                "t",
                "--messages",
                "3000",
                "--rate-msgs-per-s",
                "300",
                "--points-per-message",
                "10",
                "--quiet",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    std::thread::sleep(Duration::from_secs(5));
    procs[victim].0.as_mut().unwrap().kill().unwrap();
    let mut producer = producer;
    assert!(producer.0.take().unwrap().wait().unwrap().success());
    for (i, p) in procs.iter_mut().enumerate() {
        let status = p.0.take().unwrap().wait().unwrap();
        if i != victim {
            assert!(status.success(), "survivor c{i}: {status}");
        }
    }
    let merged = Command::new(&masa)
        .args(["merge", &rd, "--expect-messages", "3000"])
        .output()
        .unwrap();
    let m = text(&merged);
    assert!(merged.status.success(), "{m}");
    m
}

#[test]
fn a_killed_consumer_strands_no_partition_and_its_records_survive() {
    let m = kill_one_of(2, 1);
    assert!(
        m.contains("received 3000 distinct") && m.contains("missing 0"),
        "{m}"
    );
    assert!(m.contains("consumer c1 died after"), "{m}");
}

#[test]
fn the_first_member_of_three_killed_loses_nothing() {
    let m = kill_one_of(3, 0);
    assert!(
        m.contains("received 3000 distinct") && m.contains("missing 0"),
        "{m}"
    );
    assert!(m.contains("consumer c0 died after"), "{m}");
}

/// A static run over a rate profile with a 10 s quiet spell: every consumer stays in the group until the stream
/// ends (the runner announces it), and the run is ok; with an idle timeout below the gap, the consumers that
/// leave the live group make the run incomplete, never ok.
#[test]
fn a_static_run_keeps_its_consumers_through_a_quiet_spell_until_the_stream_ends() {
    let _apps = common::apps();
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, idle: &str| {
        let file = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &file,
            format!(
                "name = \"{name}\"\n[fixed]\nconsumer_processes_per_node = 2\n{idle}\"mass.rate_profile\" = \"steps:40@4,0@10,40@4\"\n\"mass.points_per_message\" = 20\n\"masa.processor\" = \"none\"\n"
            ),
        )
        .unwrap();
        let o = experiments(&[
            "run",
            file.to_str().unwrap(),
            "--results",
            dir.path().to_str().unwrap(),
        ]);
        let table = std::fs::read_to_string(dir.path().join(name).join("results.csv"))
            .unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
        (o, table)
    };
    let (o, table) = run("quiet", "");
    assert!(o.status.success(), "{}\n{table}", text(&o));
    assert!(table.contains(",ok,"), "{table}");
    let run_dir = std::fs::read_dir(dir.path().join("quiet/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for id in ["c0", "c1"] {
        let rows: Vec<masa::report::ConsumerSummary> =
            pilot_core::contract::metrics::read_csv(&masa::consumer::summary_path(&run_dir, id))
                .unwrap();
        assert_eq!(rows[0].stop_reason, "stream-end", "{id}: {:?}", rows[0]);
    }
    let (o, table) = run("impatient", "consumer_idle_s = 3.0\n");
    assert!(!o.status.success(), "{}", text(&o));
    assert!(table.contains("left the live group"), "{table}");
    assert!(!table.contains(",ok,"), "{table}");
}
