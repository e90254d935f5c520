//! `slurm+ssh://user@host:port`: the same SLURM commands through ssh to a "login node", here a private sshd on a
//! reserved loopback address (its own host key, user key and authorized_keys in a temporary directory), against
//! a real local SLURM cluster. It fails, naming the fix, where sshd is not installed: scripts/setup.sh installs it, so
//! a missing sshd is a broken set-up, not a reason to pass.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pilot_core::pilots::backend::local::reserve;
use pilot_core::pilots::description::{ProcessEnvironment, RawDescription, RawSlurm};
use pilot_core::pilots::pilot::Pilot;
use pilot_core::pilots::record::PilotState;
use pilot_core::slurm_cluster::SlurmCluster;

const PORT: u16 = 2222;

/// A private sshd, stopped by PID when dropped.
struct Sshd {
    child: Child,
    key: PathBuf,
    log: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ssh-keygen");
}

fn start_sshd(dir: &Path, addr: &str) -> Sshd {
    std::fs::create_dir_all(dir).unwrap();
    // sshd's privilege-separation directory.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let (host, key) = (dir.join("host_key"), dir.join("id"));
    keygen(&host);
    keygen(&key);
    std::fs::copy(dir.join("id.pub"), dir.join("authorized_keys")).unwrap();
    let conf = dir.join("sshd_config");
    std::fs::write(
        &conf,
        format!(
            "ListenAddress {addr}:{PORT}\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n",
            host.display(),
            dir.join("sshd.pid").display(),
            dir.join("authorized_keys").display()
        ),
    )
    .unwrap();
    let log = dir.join("sshd.log");
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while TcpStream::connect((addr, PORT)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "sshd never listened: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Sshd { child, key, log }
}

#[test]
fn a_kafka_pilot_through_ssh_to_a_login_node() {
    assert!(
        Path::new("/usr/sbin/sshd").exists(),
        "no /usr/sbin/sshd: run scripts/setup.sh (it installs openssh-server), then test again"
    );
    let dir = tempfile::tempdir().unwrap();
    let cluster = SlurmCluster::start(&dir.path().join("cluster")).unwrap();
    let login = reserve("127.0.30.2".parse().unwrap(), 1, &[PORT]).unwrap();
    let addr = login.addresses[0].to_string();
    let sshd = start_sshd(&dir.path().join("sshd"), &addr);
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let plan = RawDescription {
        resource: Some(format!("slurm+ssh://{}@{addr}:{PORT}", user.trim())),
        working_directory: Some(dir.path().join("pilots")),
        slurm: Some(RawSlurm {
            conf: Some(cluster.conf()),
            ssh_options: Some(
                [
                    "-i",
                    &sshd.key.display().to_string(),
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                    "-o",
                    "LogLevel=ERROR",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
    .validate("test", &ProcessEnvironment)
    .unwrap();
    let mut pilot = Pilot::create(plan, &|| false).unwrap();
    assert_eq!(pilot.state(), PilotState::Running);
    let d = pilot.details().unwrap().clone();
    assert!(d.resource.starts_with("slurm+ssh://"));
    assert_eq!(d.nodes[0].name, "n1");
    assert_eq!(
        d.nodes[0].address.to_string(),
        cluster.addresses()[0].to_string()
    );
    let report =
        pilot_core::ops::smoke::run(d.framework.kafka().unwrap(), "ssh-smoke", 200, 100).unwrap();
    assert!(report.exactly_once(), "{report:?}");
    pilot.cancel();
    assert_eq!(pilot.state(), PilotState::Canceled);
    assert_eq!(
        cluster.command("squeue", &["-h"]).unwrap().trim(),
        "",
        "no job left"
    );
    let log = std::fs::read_to_string(&sshd.log).unwrap();
    assert!(
        log.contains("Accepted publickey"),
        "the commands went through ssh: {log}"
    );
}
