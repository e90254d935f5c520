//! A real 4-node SLURM cluster on this machine (`scripts/slurm-cluster.sh`), started and stopped by a guard:
//! what the test suite runs the SLURM backend against. Each cluster gets its own directory, four loopback
//! addresses reserved like local pilots' (so parallel tests never share one), ports derived from them, and its
//! own munged; dropping the guard cancels every job and stops every daemon by PID.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::pilots::backend::local::{reserve, Reservation};

/// First loopback address tried for test clusters' nodes (away from local pilots' 127.0.0.x).
pub const FIRST_CLUSTER_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 20, 2);

/// A running cluster.
#[derive(Debug)]
pub struct SlurmCluster {
    dir: PathBuf,
    script: PathBuf,
    reservation: Reservation,
}

/// The project's cluster script.
pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/slurm-cluster.sh")
}

impl SlurmCluster {
    /// Start a cluster with its state under `dir` (created). Installs SLURM first if missing (needs root).
    pub fn start(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let reservation = reserve(FIRST_CLUSTER_ADDRESS, 4, &[9092]).map_err(|e| e.to_string())?;
        // Ports from the first address (unique while reserved): slurmctld p, slurmds p+1..p+4. SLURM's daemons
        // listen on every address, so the ports must be free on all of them: they stay in 20000-32764, below
        // Linux's ephemeral range (32768-60999), where any client connection may hold a local port.
        let a = reservation.addresses[0].octets();
        let index = (a[1] as u32) << 16 | (a[2] as u32) << 8 | a[3] as u32;
        let base = 20_000 + (index * 5) % 12_765;
        for p in base..base + 5 {
            TcpListener::bind(("0.0.0.0", p as u16)).map_err(|e| {
                format!("port {p} for the test cluster is taken ({e}); stop what holds it")
            })?;
        }
        let addrs: Vec<String> = reservation
            .addresses
            .iter()
            .map(|a| a.to_string())
            .collect();
        let script = script();
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(dir)
            .arg(addrs.join(","))
            .arg(base.to_string())
            .arg((base + 1).to_string())
            .output()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let cluster = SlurmCluster {
            dir,
            script,
            reservation,
        };
        if !out.status.success() {
            return Err(format!(
                "starting the SLURM cluster failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(cluster)
    }

    /// The cluster's `slurm.conf` (give it to pilots as `[slurm] conf`, or export `SLURM_CONF`).
    pub fn conf(&self) -> PathBuf {
        self.dir.join("slurm.conf")
    }

    /// The nodes' addresses, n1 to n4.
    pub fn addresses(&self) -> &[Ipv4Addr] {
        &self.reservation.addresses
    }

    /// Run a SLURM client command against this cluster; stdout, or the error with stderr.
    pub fn command(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let out = Command::new(program)
            .args(args)
            .env("SLURM_CONF", self.conf())
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{program} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

impl Drop for SlurmCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}
