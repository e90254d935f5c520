//! Child processes that cannot outlive their owner.
//!
//! [`spawn`] starts a program in its own process group with stdout and stderr appended to a log file, and asks
//! the kernel to SIGKILL it if the spawning thread's process dies (`PR_SET_PDEATHSIG`), so a crashed pilot
//! manager leaves nothing behind. [`ManagedChild::terminate`] sends SIGTERM to the whole group, waits a grace
//! period, then SIGKILLs the group; dropping a [`ManagedChild`] that still runs does the same.
//!
//! Linux delivers the parent-death signal when the *thread* that forked exits: spawn from a thread that lives as
//! long as the pilot (the main thread, or the test's own thread).

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::killpg;
use nix::unistd::Pid;

use crate::error::{PilotError, Result};

/// What to run and where its output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    /// A short name for messages ("tansu on 127.0.0.2").
    pub label: String,
    /// Program (absolute path or found via PATH).
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: PathBuf,
    /// File receiving stdout and stderr (appended).
    pub log: PathBuf,
}

/// Where a launched process can be reached later (by another process, from a pilot's record): the pid of what
/// was spawned here (the program itself locally; `srun` on SLURM), its start time, and the label it was launched
/// with (on SLURM the step's name, [`crate::pilots::backend::slurm::step_name`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessRef {
    pub pid: u32,
    pub start_ticks: Option<u64>,
    pub label: String,
}

impl ProcessRef {
    /// `child`, launched from a spec labelled `label`.
    pub fn of(child: &ManagedChild, label: &str) -> Self {
        ProcessRef {
            pid: child.pid(),
            start_ticks: start_ticks(child.pid()),
            label: label.to_string(),
        }
    }
}

/// A running child in its own process group.
#[derive(Debug)]
pub struct ManagedChild {
    child: Child,
    label: String,
    log: PathBuf,
    exit: Option<ExitStatus>,
}

/// Start `spec` in a new process group, killed if this process dies.
pub fn spawn(spec: &LaunchSpec) -> Result<ManagedChild> {
    if let Some(dir) = spec.log.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| PilotError::io("creating log directory", dir, e))?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .map_err(|e| PilotError::io("opening log", &spec.log, e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| PilotError::io("opening log", &spec.log, e))?;
    let parent = std::process::id() as libc::pid_t;
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0);
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            // Descriptors other libraries opened without close-on-exec (HDF5's files, with their locks) must
            // not live on in a broker: mark everything above stdio close-on-exec (Linux 5.11+; older kernels
            // answer ENOSYS and keep the old behaviour).
            const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
            libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                CLOSE_RANGE_CLOEXEC,
            );
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| PilotError::Launch {
        label: spec.label.clone(),
        program: spec.program.clone(),
        source,
    })?;
    Ok(ManagedChild {
        child,
        label: spec.label.clone(),
        log: spec.log.clone(),
        exit: None,
    })
}

/// Run `spec` to completion (bounded by `timeout`), with the same isolation as [`spawn`].
pub fn run_to_completion(spec: &LaunchSpec, timeout: Duration) -> Result<ExitStatus> {
    let mut child = spawn(spec)?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            child.terminate(Duration::from_secs(2));
            return Err(PilotError::FrameworkFailed {
                message: format!(
                    "{} did not finish within {:.0} s",
                    spec.label,
                    timeout.as_secs_f64()
                ),
                log: spec.log.clone(),
                log_tail: crate::error::log_tail(&spec.log, 20),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl ManagedChild {
    /// The child's process id (also its process-group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Label given at launch.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Log file path.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// `Some(status)` once the child has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.exit.is_some() {
            return Ok(self.exit);
        }
        let st = self
            .child
            .try_wait()
            .map_err(|e| PilotError::io("waiting for", &self.log, e))?;
        if st.is_some() {
            self.exit = st;
            // Anything the child left in its group goes with it.
            let _ = killpg(self.pgid(), nix::sys::signal::Signal::SIGKILL);
        }
        Ok(st)
    }

    fn pgid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// SIGTERM to the process group, then SIGKILL after `grace`; returns the exit status.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Ok(Some(st)) = self.try_wait() {
            return Some(st);
        }
        let _ = killpg(self.pgid(), nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = killpg(self.pgid(), nix::sys::signal::Signal::SIGKILL);
        let st = self.child.wait().ok();
        self.exit = st;
        st
    }
}

impl Drop for ManagedChild {
    fn drop(&mut self) {
        if self.exit.is_none() {
            self.terminate(Duration::from_secs(2));
        }
    }
}

/// True when a process with this id exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// A process's start time in clock ticks since boot (`/proc/PID/stat` field 22): with the pid it identifies a
/// process even after the pid is reused.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // Fields after the command name start at field 3 (state); starttime is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// True when `pid` is alive and is the same process that had `ticks` as its start time.
pub fn same_process_alive(pid: u32, ticks: Option<u64>) -> bool {
    pid_alive(pid) && (ticks.is_none() || start_ticks(pid) == ticks)
}

/// Signals sent to a running process (a fault's kill, stop and continue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Kill,
    Stop,
    Cont,
}

impl Signal {
    /// SLURM's and kill(1)'s name.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Kill => "KILL",
            Signal::Stop => "STOP",
            Signal::Cont => "CONT",
        }
    }

    pub fn nix(self) -> nix::sys::signal::Signal {
        match self {
            Signal::Kill => nix::sys::signal::Signal::SIGKILL,
            Signal::Stop => nix::sys::signal::Signal::SIGSTOP,
            Signal::Cont => nix::sys::signal::Signal::SIGCONT,
        }
    }
}

/// Why a signal did not reach its process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// The process ended, or its pid now belongs to another process.
    #[error("process {pid} is no longer running")]
    Gone { pid: u32 },
    /// kill(2) refused.
    #[error("signalling pid {pid}: {message}")]
    Refused { pid: u32, message: String },
}

/// Send `signal` to local process `pid`, provided it is still the process that started at `start_ticks`; what
/// was hit (`pid N`).
pub fn signal_process(
    pid: u32,
    start_ticks: Option<u64>,
    signal: Signal,
) -> Result<String, SignalError> {
    if !same_process_alive(pid, start_ticks) {
        return Err(SignalError::Gone { pid });
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal.nix())
        .map(|()| format!("pid {pid}"))
        .map_err(|e| SignalError::Refused {
            pid,
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, script: &str) -> LaunchSpec {
        LaunchSpec {
            label: "test child".into(),
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("GREETING".into(), "hello".into())],
            cwd: dir.to_path_buf(),
            log: dir.join("logs/child.log"),
        }
    }

    #[test]
    fn output_goes_to_the_log_and_env_is_passed() {
        let dir = tempfile::tempdir().unwrap();
        let st = run_to_completion(
            &spec(dir.path(), "echo $GREETING; echo err >&2"),
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(st.success());
        let log = std::fs::read_to_string(dir.path().join("logs/child.log")).unwrap();
        assert!(log.contains("hello") && log.contains("err"), "{log}");
    }

    #[test]
    fn children_do_not_inherit_stray_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let held = dir.path().join("held-open.h5");
        std::fs::write(&held, b"x").unwrap();
        // Opened the way C libraries do, without O_CLOEXEC.
        let path = std::ffi::CString::new(held.to_str().unwrap()).unwrap();
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY) };
        assert!(fd >= 3);
        let st = run_to_completion(
            &spec(dir.path(), "ls -l /proc/self/fd/"),
            Duration::from_secs(5),
        )
        .unwrap();
        unsafe { libc::close(fd) };
        assert!(st.success());
        let log = std::fs::read_to_string(dir.path().join("logs/child.log")).unwrap();
        assert!(
            !log.contains("held-open.h5"),
            "the child inherited the descriptor:\n{log}"
        );
    }

    #[test]
    fn terminate_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        // A grandchild that ignores SIGTERM: only the group SIGKILL ends it.
        let mut c = spawn(&spec(
            dir.path(),
            "sh -c 'trap \"\" TERM; echo $$ > grandchild.pid; while true; do sleep 0.05; done' & wait",
        ))
        .unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let t0 = Instant::now();
        while !pidfile.exists() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(50));
        let gpid: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(pid_alive(gpid));
        c.terminate(Duration::from_millis(200));
        let t0 = Instant::now();
        // The grandchild is reparented to init (or a subreaper) which reaps it.
        while pid_alive(gpid) && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            !pid_alive(gpid) || is_zombie(gpid),
            "grandchild {gpid} survived"
        );
    }

    #[test]
    fn timeout_reports_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let err = run_to_completion(
            &spec(dir.path(), "echo started; sleep 10"),
            Duration::from_millis(200),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("did not finish"), "{err}");
        assert!(err.contains("started"), "{err}");
    }

    #[test]
    fn missing_program_is_a_launch_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(dir.path(), "");
        s.program = "/nonexistent/prog".into();
        let err = spawn(&s).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/prog"), "{err}");
    }

    #[test]
    fn own_start_ticks_are_stable() {
        let me = std::process::id();
        let t = start_ticks(me);
        assert!(t.is_some());
        assert!(same_process_alive(me, t));
        assert!(!same_process_alive(me, t.map(|t| t + 1)));
    }

    pub(crate) fn is_zombie(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
    }

    #[test]
    fn a_signal_reaches_only_the_process_that_was_meant() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let ticks = start_ticks(pid);
        // A pid whose start time differs is another process: left alone.
        assert!(signal_process(pid, ticks.map(|t| t + 1), Signal::Kill).is_err());
        assert!(pid_alive(pid));
        assert_eq!(
            signal_process(pid, ticks, Signal::Kill).unwrap(),
            format!("pid {pid}")
        );
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));
        assert!(signal_process(pid, ticks, Signal::Kill).is_err());
    }
}
