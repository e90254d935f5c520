//! Soak: the KMeans pipeline at about 70 % of its measured capacity for 10 minutes (issue 14). Prints the RSS of
//! every process of the run (tansu, MASS, MASA) near the start and at the end, the end-to-end latency p99 per
//! minute (the worst and the median of MASA's 0.2-s interval p99s in that minute), and the run's accounting.
//!
//! `cargo bench -p experiments --bench soak [-- DURATION_S]` (default 600). Needs `mass`, `masa` and
//! `experiments` built in release (the bench builds them) and tansu installed (scripts/setup.sh).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The soak file with `mass.*` keys replaced, written into `dir`.
fn variant(dir: &Path, name: &str, rate: f64, stop: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join("experiments/soak.toml")).unwrap();
    let text = text
        .replace("name = \"soak\"", &format!("name = \"{name}\""))
        .replace("\"mass.duration_s\" = 600.0", stop)
        .replace(
            "\"mass.rate_msgs_per_s\" = 1000",
            &format!("\"mass.rate_msgs_per_s\" = {rate:.0}"),
        );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Every descendant of `pid` with its command name.
fn descendants(pid: u32) -> Vec<(u32, String)> {
    let mut parent: BTreeMap<u32, u32> = BTreeMap::new();
    let mut name: BTreeMap<u32, String> = BTreeMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head
            .split_once('(')
            .map(|x| x.1.to_string())
            .unwrap_or_default();
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|x| x.parse().ok())
            .unwrap_or(0);
        parent.insert(p, ppid);
        name.insert(p, comm);
    }
    let mut out = Vec::new();
    for &p in parent.keys() {
        let mut q = p;
        while let Some(&pp) = parent.get(&q) {
            if pp == pid {
                out.push((p, name[&p].clone()));
                break;
            }
            if pp <= 1 {
                break;
            }
            q = pp;
        }
    }
    out
}

fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn run(file: &Path, results: &Path, sample_at: &[f64]) -> (Vec<BTreeMap<String, u64>>, f64) {
    let exe = root().join("target/release/experiments");
    let mut child = Command::new(&exe)
        .args([
            "run",
            file.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let mut samples = Vec::new();
    let mut next = 0;
    loop {
        if let Some(_status) = child.try_wait().unwrap() {
            break;
        }
        if next < sample_at.len() && t0.elapsed().as_secs_f64() >= sample_at[next] {
            let mut s = BTreeMap::new();
            for (p, name) in descendants(child.id()) {
                if ["tansu", "mass", "masa"].contains(&name.as_str()) {
                    if let Some(kb) = rss_kb(p) {
                        s.insert(format!("{name} (pid {p})"), kb);
                    }
                }
            }
            samples.push(s);
            next += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    (samples, t0.elapsed().as_secs_f64())
}

fn main() {
    let duration_s: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(600.0);
    let ok = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "-p",
            "mass",
            "-p",
            "masa",
            "-p",
            "experiments",
        ])
        .current_dir(root())
        .status()
        .unwrap()
        .success();
    assert!(ok, "building the apps");
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    // Capacity: the same pipeline unpaced (MASS as fast as it can), 100,000 messages; the group's receive rate
    // is the pipeline's capacity.
    let cap_file = variant(
        dir.path(),
        "soak-capacity",
        1e6,
        "\"mass.messages\" = 100000",
    );
    run(&cap_file, &results, &[]);
    let t = experiments::results::Table::read(&results.join("soak-capacity/results.csv")).unwrap();
    let capacity: f64 = t.rows[0]["consumer_throughput_msgs_per_s"].parse().unwrap();
    let rate = (0.7 * capacity).floor();
    // tansu keeps everything in memory: the soak must fit.
    let bytes_per_msg = 1e6 * t.rows[0]["produced_mb"].parse::<f64>().unwrap()
        / t.rows[0]["produced_msgs"].parse::<f64>().unwrap();
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb * 1024.0)
        .unwrap_or(f64::INFINITY);
    let need = rate * bytes_per_msg * duration_s;
    assert!(
        need < available / 2.0,
        "{rate:.0} msg/s x {bytes_per_msg:.0} B x {duration_s:.0} s = {:.1} GB would not fit in half of the {:.1} GB available (tansu keeps messages in memory): use smaller messages or a shorter soak",
        need / 1e9,
        available / 1e9
    );
    println!("capacity (unpaced, 100,000 messages): {capacity:.0} msg/s of 10 points; soak at 70 % = {rate:.0} msg/s for {duration_s:.0} s");
    let file = variant(
        dir.path(),
        "soak",
        rate,
        &format!("\"mass.duration_s\" = {duration_s:.1}"),
    );
    let (samples, wall) = run(&file, &results, &[15.0, 10.0 + duration_s - 5.0]);
    let t = experiments::results::Table::read(&results.join("soak/results.csv")).unwrap();
    let r = &t.rows[0];
    println!(
        "run: {:.0} s wall, status {}{}",
        wall,
        r["status"],
        if r["error"].is_empty() {
            String::new()
        } else {
            format!(" ({})", r["error"])
        }
    );
    println!(
        "accounting: produced {} received {} missing {} duplicates {} rejected {}",
        r["produced_msgs"],
        r["received_msgs"],
        r["missing_msgs"],
        r["duplicate_msgs"],
        r["rejected_msgs"]
    );
    println!("RSS (MiB)         start      end   growth");
    if let [start, end] = &samples[..] {
        for (k, a) in start {
            let b = end.get(k).copied();
            match b {
                Some(b) => println!(
                    "  {k:<22} {:>7.1}  {:>7.1}  {:+6.1} %",
                    *a as f64 / 1024.0,
                    b as f64 / 1024.0,
                    (b as f64 / *a as f64 - 1.0) * 100.0
                ),
                None => println!("  {k:<22} {:>7.1}  (ended)", *a as f64 / 1024.0),
            }
        }
    } else {
        println!(
            "  (the run ended before both samples: {} taken)",
            samples.len()
        );
    }
    // Latency per minute from MASA's interval rows.
    let run_dir = results.join("soak/runs").join(format!("{}-r0", r["point"]));
    let rows: Vec<masa::report::ConsumerInterval> =
        pilot_core::metrics::read_csv(&masa::consumer::intervals_path(&run_dir, "c0")).unwrap();
    let mut minutes: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let first = rows
        .iter()
        .find(|r| r.received_msgs > 0)
        .map(|r| r.t_s)
        .unwrap_or(0.0);
    for row in rows.iter().filter(|r| r.received_msgs > 0) {
        minutes
            .entry(((row.t_s - first) / 60.0) as u64)
            .or_default()
            .push(row.e2e_latency_us_p99);
    }
    println!("e2e latency p99 per minute (ms): worst and median of the 0.2-s intervals");
    for (m, mut v) in minutes {
        v.sort_unstable();
        println!(
            "  minute {:>2}: worst {:>7.2}  median {:>6.2}  ({} intervals)",
            m + 1,
            *v.last().unwrap() as f64 / 1e3,
            v[v.len() / 2] as f64 / 1e3,
            v.len()
        );
    }
    println!(
        "whole run: p50 {} ms, p99 {} ms, max {} ms",
        r["e2e_latency_ms_p50"], r["e2e_latency_ms_p99"], r["e2e_latency_ms_max"]
    );
}
