//! The local backend: "nodes" are slots on this host, node i listening on its own loopback address
//! (127.0.0.2, 127.0.0.3, ...), so several brokers can each bind the same port.
//!
//! An address is reserved by holding an exclusive `flock` on a lock file in [`lock_dir`] for the pilot's whole
//! life; the kernel drops the lock when the holder exits, so a crashed manager frees its addresses and parallel
//! tests or pilots never pick the same one. A reserved address is also probed: every port the framework needs
//! must be free to bind.

use std::fs::{File, OpenOptions};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{Allocation, Node, ResourceBackend};
use crate::error::{PilotError, Result};
use crate::pilots::description::PilotPlan;
use crate::pilots::process::{self, LaunchSpec, ManagedChild};

/// How many loopback addresses automatic selection tries before giving up.
const MAX_PROBED_ADDRESSES: u32 = 4096;

/// Slots on this host.
#[derive(Debug, Default)]
pub struct LocalBackend {
    locks: Vec<File>,
}

/// Where address lock files live (`$PILOT_LOCK_DIR`, else `/tmp/pilot-core-addresses`).
pub fn lock_dir() -> PathBuf {
    std::env::var_os("PILOT_LOCK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("pilot-core-addresses"))
}

impl LocalBackend {
    pub fn new() -> Self {
        Self::default()
    }
}

enum Claim {
    Got(File),
    HeldByOther,
    PortBusy(u16, std::io::Error),
}

fn try_claim(dir: &Path, addr: Ipv4Addr, ports: &[u16]) -> Result<Claim> {
    let path = dir.join(format!("{addr}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| PilotError::io("opening address lock", &path, e))?;
    // SAFETY: flock on a valid, owned descriptor.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Ok(Claim::HeldByOther);
    }
    for &port in ports {
        if let Err(e) = TcpListener::bind(SocketAddr::new(IpAddr::V4(addr), port)) {
            return Ok(Claim::PortBusy(port, e));
        }
    }
    Ok(Claim::Got(file))
}

static ALLOCATIONS: AtomicU32 = AtomicU32::new(0);

/// Loopback addresses held for as long as this lives (flock'd lock files in [`lock_dir`], shared with local
/// pilots, so no two holders get the same address).
#[derive(Debug)]
pub struct Reservation {
    pub addresses: Vec<Ipv4Addr>,
    _locks: Vec<File>,
}

/// Reserve `n` free loopback addresses from `first` up, each with `ports` bindable.
pub fn reserve(first: Ipv4Addr, n: usize, ports: &[u16]) -> Result<Reservation> {
    let dir = lock_dir();
    std::fs::create_dir_all(&dir)
        .map_err(|e| PilotError::io("creating lock directory", &dir, e))?;
    let (mut addresses, mut locks) = (Vec::new(), Vec::new());
    let mut candidate = u32::from(first);
    let mut probed = 0;
    while addresses.len() < n {
        let a = Ipv4Addr::from(candidate);
        if !a.is_loopback() || probed >= MAX_PROBED_ADDRESSES {
            return Err(PilotError::Allocation {
                resource: "local://".into(),
                message: format!(
                    "found only {} free loopback address(es) from {first} (ports {ports:?}) after {probed} tries",
                    addresses.len()
                ),
            });
        }
        if let Claim::Got(f) = try_claim(&dir, a, ports)? {
            locks.push(f);
            addresses.push(a);
        }
        candidate += 1;
        probed += 1;
    }
    Ok(Reservation {
        addresses,
        _locks: locks,
    })
}

impl ResourceBackend for LocalBackend {
    fn name(&self) -> &str {
        "local"
    }

    fn allocate(
        &mut self,
        plan: &PilotPlan,
        ports: &[u16],
        _pilot_dir: &Path,
    ) -> Result<Allocation> {
        let dir = lock_dir();
        std::fs::create_dir_all(&dir)
            .map_err(|e| PilotError::io("creating lock directory", &dir, e))?;
        let mut addrs = Vec::new();
        let mut locks = Vec::new();
        if let Some(pinned) = &plan.local.addresses {
            for &a in pinned {
                match try_claim(&dir, a, ports)? {
                    Claim::Got(f) => {
                        locks.push(f);
                        addrs.push(a);
                    }
                    Claim::HeldByOther => {
                        return Err(PilotError::PortInUse {
                            address: a.to_string(),
                            port: ports.first().copied().unwrap_or(0),
                            detail: format!(
                                " (address held by another pilot: lock {})",
                                dir.join(format!("{a}.lock")).display()
                            ),
                        })
                    }
                    Claim::PortBusy(port, e) => {
                        return Err(PilotError::PortInUse {
                            address: a.to_string(),
                            port,
                            detail: format!(" ({e})"),
                        })
                    }
                }
            }
        } else {
            let r = reserve(plan.local.first_address, plan.nodes as usize, ports)?;
            addrs = r.addresses;
            locks = r._locks;
        }
        self.locks = locks;
        let n = ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        Ok(Allocation {
            job_id: format!("local-{}-{n}", std::process::id()),
            nodes: addrs
                .into_iter()
                .map(|a| Node {
                    name: format!("local-{a}"),
                    address: IpAddr::V4(a),
                })
                .collect(),
        })
    }

    fn launch(&mut self, _node: &Node, spec: &LaunchSpec) -> Result<ManagedChild> {
        process::spawn(spec)
    }

    fn run(&mut self, _node: &Node, spec: &LaunchSpec, timeout: Duration) -> Result<ExitStatus> {
        process::run_to_completion(spec, timeout)
    }

    fn release(&mut self) -> Result<()> {
        self.locks.clear();
        Ok(())
    }
}
