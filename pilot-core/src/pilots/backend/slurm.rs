//! The SLURM backend: a pilot is a placeholder job; framework processes run as job steps on its nodes.
//!
//! - `slurm://localhost` runs the SLURM commands here; `slurm+ssh://user@host` runs the same commands through
//!   `ssh` on a login node.
//! - Allocation: `sbatch --parsable --exclusive -N <nodes> -t <walltime> [-p queue] [-A project]
//!   [--reservation r] [-n number_cores] [--ntasks-per-node cores_per_node] [directives...] --wrap 'sleep
//!   infinity'` (nothing emitted for what is unset), then `scontrol show job -o` until RUNNING. A PENDING job
//!   whose reason can never clear (more nodes than the partition has, a bad account, ...) is cancelled and the
//!   reason returned at once; other reasons (Resources, Priority) are waited out and reported.
//! - Node names come from the job's node list ([`expand_hostlist`]) and addresses from SLURM (`NodeAddr` of
//!   `scontrol show node`), never the login host's.
//! - A framework process runs in the foreground of its own step: `srun --jobid J --overlap -N1 -n1 -w <node>
//!   <program> <args>`.
//! - Release: `scancel J`, then wait until neither the job nor any of its steps is listed.

use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use super::{Allocation, JobStatus, Node, ResourceBackend};
use crate::error::{PilotError, Result};
use crate::pilots::description::PilotPlan;
use crate::pilots::process::{self, LaunchSpec, ManagedChild};

/// PENDING reasons that never clear by waiting.
pub const HOPELESS_REASONS: &[&str] = &[
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "PartitionConfig",
    "AccountNotAllowed",
    "InvalidAccount",
    "InvalidQOS",
    "QOSMaxNodePerJobLimit",
    "QOSMaxWallDurationPerJobLimit",
    "BadConstraints",
    "ReqNodeNotAvail",
    "PartitionDown",
    "PartitionInactive",
];

/// How long a job may wait in the queue for an ordinary reason before the pilot gives up.
pub const QUEUE_WAIT: Duration = Duration::from_secs(600);

/// Runs SLURM commands here or on a login node.
#[derive(Debug, Clone)]
pub struct SlurmBackend {
    /// `user@host` for `slurm+ssh://`.
    ssh: Option<String>,
    /// `SLURM_CONF` for every command (from the plan's `[slurm] conf`).
    conf: Option<std::path::PathBuf>,
    job_id: Option<String>,
    /// Whether `release` cancels the job (false for [`SlurmBackend::attached`]).
    owned: bool,
    /// Extra ssh options (`[slurm] ssh_options`).
    ssh_options: Vec<String>,
}

impl SlurmBackend {
    pub fn new(ssh: Option<String>) -> Self {
        SlurmBackend {
            ssh,
            conf: None,
            job_id: None,
            owned: true,
            ssh_options: Vec::new(),
        }
    }

    /// A backend for a job that is already running (a running pilot's, planned by `plan`), to start more
    /// steps in it: what `pilot exec` and the experiment runner use. Its `release` cancels nothing.
    pub fn attached(plan: &PilotPlan, job_id: &str) -> Self {
        let ssh = match &plan.resource {
            crate::pilots::description::ResourceUrl::Slurm { ssh } => ssh.clone(),
            _ => None,
        };
        SlurmBackend {
            ssh,
            conf: plan.slurm_conf.clone(),
            job_id: Some(job_id.to_string()),
            owned: false,
            ssh_options: plan.slurm_ssh_options.clone(),
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        self.conf
            .iter()
            .map(|c| ("SLURM_CONF".to_string(), c.display().to_string()))
            .collect()
    }

    /// The program and arguments to run `program args` where SLURM is (through ssh when remote).
    pub fn command_line(&self, program: &str, args: &[String]) -> (String, Vec<String>) {
        match &self.ssh {
            None => (program.to_string(), args.to_vec()),
            Some(host) => {
                let mut remote: Vec<String> = self
                    .env()
                    .iter()
                    .map(|(k, v)| format!("{k}={}", shell_quote(v)))
                    .collect();
                if !remote.is_empty() {
                    remote.insert(0, "env".into());
                }
                remote.push(shell_quote(program));
                remote.extend(args.iter().map(|a| shell_quote(a)));
                // user@host[:port]
                let (target, port) = match host.rsplit_once(':') {
                    Some((t, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => {
                        (t.to_string(), Some(p.to_string()))
                    }
                    _ => (host.clone(), None),
                };
                let mut a = vec!["-o".to_string(), "BatchMode=yes".into()];
                if let Some(p) = port {
                    a.extend(["-p".into(), p]);
                }
                a.extend(self.ssh_options.iter().cloned());
                a.extend([target, "--".into(), remote.join(" ")]);
                ("ssh".into(), a)
            }
        }
    }

    fn output(&self, program: &str, args: &[String]) -> Result<String> {
        let (p, a) = self.command_line(program, args);
        let out = Command::new(&p)
            .args(&a)
            .envs(self.env())
            .output()
            .map_err(|e| PilotError::Allocation {
                resource: self.resource(),
                message: format!("running {p}: {e} (is SLURM installed and SLURM_CONF set?)"),
            })?;
        if !out.status.success() {
            return Err(PilotError::Allocation {
                resource: self.resource(),
                message: format!(
                    "`{program} {}` failed ({}): {}",
                    args.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Send `signal` to the step of this backend's job named `step` (SLURM delivers it on the step's node):
    /// how a fault reaches a process that runs under SLURM. The detail names the step.
    fn signal_step(&self, step: &str, signal: crate::pilots::process::Signal) -> Result<String> {
        let job = self.job().to_string();
        let listed = self.output(
            "squeue",
            &[
                "--steps".into(),
                format!("--jobs={job}"),
                "--noheader".into(),
                "--format=%i %j".into(),
            ],
        )?;
        let id = listed
            .lines()
            .filter_map(|l| l.trim().split_once(' '))
            .find(|(_, name)| name.trim() == step)
            .map(|(id, _)| id.to_string())
            .ok_or_else(|| PilotError::Allocation {
                resource: self.resource(),
                message: format!("job {job} has no running step named {step}"),
            })?;
        self.output(
            "scancel",
            &[format!("--signal={}", signal.name()), id.clone()],
        )?;
        Ok(format!("SLURM step {id}"))
    }

    /// Set `node`'s state (`scontrol update nodename=N state=down|drain reason=R`): SLURM's own word for a node
    /// that failed. Needs SLURM operator rights (root on the test cluster).
    fn scontrol_node_state(
        &self,
        node: &str,
        state: crate::pilots::backend::NodeState,
        reason: &str,
    ) -> Result<String> {
        self.output(
            "scontrol",
            &[
                "update".into(),
                format!("nodename={node}"),
                format!("state={}", state.as_str()),
                format!("reason={reason}"),
            ],
        )?;
        Ok(format!("node {node} {}", state.as_str()))
    }

    /// `scancel` this backend's job from outside its pilot (a fault; the pilot sees its job end).
    fn scancel_job(&self) -> Result<String> {
        let job = self.job().to_string();
        self.output("scancel", std::slice::from_ref(&job))?;
        Ok(format!("SLURM job {job}"))
    }

    fn job(&self) -> &str {
        self.job_id.as_deref().unwrap_or_default()
    }

    fn resource(&self) -> String {
        match &self.ssh {
            None => "slurm://localhost".into(),
            Some(h) => format!("slurm+ssh://{h}"),
        }
    }

    /// `scontrol show job -o J` as key/value pairs.
    fn job_fields(&self, job: &str) -> Result<Vec<(String, String)>> {
        let line = self.output(
            "scontrol",
            &["show".into(), "job".into(), "-o".into(), job.into()],
        )?;
        Ok(parse_fields(&line))
    }

    fn node_addresses(&self, names: &[String]) -> Result<Vec<Node>> {
        let out = self.output(
            "scontrol",
            &["show".into(), "node".into(), "-o".into(), names.join(",")],
        )?;
        let mut nodes = Vec::new();
        for name in names {
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("NodeName={name} ")))
                .ok_or_else(|| PilotError::Allocation {
                    resource: self.resource(),
                    message: format!("scontrol does not describe node {name}"),
                })?;
            let fields = parse_fields(line);
            let addr = field(&fields, "NodeAddr").unwrap_or(name);
            let address: IpAddr =
                addr.parse()
                    .or_else(|_| resolve(addr))
                    .map_err(|e| PilotError::Allocation {
                        resource: self.resource(),
                        message: format!("node {name} has address `{addr}`: {e}"),
                    })?;
            nodes.push(Node {
                name: name.clone(),
                address,
            });
        }
        Ok(nodes)
    }

    fn step_spec(&self, node: &Node, spec: &LaunchSpec) -> Result<LaunchSpec> {
        let job = self.job_id.as_ref().ok_or_else(|| PilotError::Allocation {
            resource: self.resource(),
            message: "no job to launch into (allocate first)".into(),
        })?;
        let mut args = vec![
            format!("--jobid={job}"),
            "--overlap".into(),
            "-N1".into(),
            "-n1".into(),
            "-w".into(),
            node.name.clone(),
            format!("--job-name={}", step_name(&spec.label)),
            spec.program.display().to_string(),
        ];
        args.extend(spec.args.iter().cloned());
        let (program, args) = self.command_line("srun", &args);
        let mut env = spec.env.clone();
        env.extend(self.env());
        Ok(LaunchSpec {
            label: format!("{} (SLURM job {job} on {})", spec.label, node.name),
            program: program.into(),
            args,
            env,
            cwd: spec.cwd.clone(),
            log: spec.log.clone(),
        })
    }
}

/// The name of the step that runs a process launched with `label` (spaces are awkward in SLURM's output).
pub fn step_name(label: &str) -> String {
    label.replace(' ', "_")
}

/// `sbatch` arguments for a placeholder job of `plan` (without the program name).
pub fn sbatch_args(plan: &PilotPlan, job_name: &str, output: &Path) -> Vec<String> {
    let mut a = vec![
        "--parsable".to_string(),
        "--exclusive".into(),
        "-N".into(),
        plan.nodes.to_string(),
        "-t".into(),
        plan.walltime_min.to_string(),
        "-J".into(),
        job_name.into(),
        "-o".into(),
        output.display().to_string(),
    ];
    if let Some(q) = &plan.queue {
        a.extend(["-p".into(), q.clone()]);
    }
    if let Some(p) = &plan.project {
        a.extend(["-A".into(), p.clone()]);
    }
    if let Some(r) = &plan.reservation {
        a.push(format!("--reservation={r}"));
    }
    if let Some(n) = plan.number_cores {
        a.extend(["-n".into(), n.to_string()]);
    }
    if let Some(c) = plan.cores_per_node {
        a.push(format!("--ntasks-per-node={c}"));
    }
    a.extend(plan.slurm_directives.iter().cloned());
    a.extend(["--wrap".into(), "sleep infinity".into()]);
    a
}

fn resolve(host: &str) -> std::io::Result<IpAddr> {
    use std::net::ToSocketAddrs;
    (host, 0)
        .to_socket_addrs()?
        .next()
        .map(|s| s.ip())
        .ok_or_else(|| std::io::Error::other("no address"))
}

/// Quote for a POSIX shell (for ssh's remote command line).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// `Key=Value Key=Value ...` (one `scontrol -o` line) into pairs.
pub fn parse_fields(line: &str) -> Vec<(String, String)> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Expand a SLURM hostlist expression: `n[1-3,7],gpu[01-02],login` -> n1 n2 n3 n7 gpu01 gpu02 login (zero
/// padding kept; several bracket groups in one name multiply out).
pub fn expand_hostlist(expr: &str) -> std::result::Result<Vec<String>, String> {
    // Split on commas outside brackets.
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in expr.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("unbalanced `]` in hostlist `{expr}`"));
                }
            }
            ',' if depth == 0 => {
                parts.push(&expr[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced `[` in hostlist `{expr}`"));
    }
    parts.push(&expr[start..]);
    let mut out = Vec::new();
    for p in parts.into_iter().filter(|p| !p.is_empty()) {
        out.extend(expand_one(p, expr)?);
    }
    Ok(out)
}

fn expand_one(name: &str, expr: &str) -> std::result::Result<Vec<String>, String> {
    let Some(open) = name.find('[') else {
        return Ok(vec![name.to_string()]);
    };
    let close = open
        + name[open..]
            .find(']')
            .ok_or_else(|| format!("unbalanced `[` in `{expr}`"))?;
    let (prefix, inner, rest) = (&name[..open], &name[open + 1..close], &name[close + 1..]);
    let tails = expand_one(rest, expr)?;
    let mut out = Vec::new();
    for range in inner.split(',') {
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        let width = lo.len();
        let (a, b): (u64, u64) = (
            lo.parse()
                .map_err(|_| format!("`{range}` in `{expr}` is not a number range"))?,
            hi.parse()
                .map_err(|_| format!("`{range}` in `{expr}` is not a number range"))?,
        );
        if b < a || b - a > 100_000 {
            return Err(format!("range `{range}` in `{expr}` is empty or too large"));
        }
        for i in a..=b {
            for t in &tails {
                out.push(format!("{prefix}{i:0width$}{t}"));
            }
        }
    }
    Ok(out)
}

impl ResourceBackend for SlurmBackend {
    fn name(&self) -> &str {
        "slurm"
    }

    fn allocate(
        &mut self,
        plan: &PilotPlan,
        _ports: &[u16],
        pilot_dir: &Path,
    ) -> Result<Allocation> {
        self.conf = plan.slurm_conf.clone();
        self.ssh_options = plan.slurm_ssh_options.clone();
        let name = pilot_dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "pilot".into());
        let args = sbatch_args(plan, &name, &pilot_dir.join("slurm-%j.out"));
        let out = self.output("sbatch", &args)?;
        let job = out
            .trim()
            .split(';')
            .next()
            .filter(|j| !j.is_empty())
            .ok_or_else(|| PilotError::Allocation {
                resource: self.resource(),
                message: format!("sbatch printed no job id: `{}`", out.trim()),
            })?
            .to_string();
        self.job_id = Some(job.clone());
        let t0 = Instant::now();
        let mut last_reason = String::new();
        loop {
            let f = self.job_fields(&job)?;
            let state = field(&f, "JobState").unwrap_or("UNKNOWN").to_string();
            let reason = field(&f, "Reason").unwrap_or("None").to_string();
            match state.as_str() {
                "RUNNING" => {
                    let list = field(&f, "NodeList").unwrap_or("");
                    let names = expand_hostlist(list).map_err(|m| PilotError::Allocation {
                        resource: self.resource(),
                        message: m,
                    })?;
                    let nodes = self.node_addresses(&names)?;
                    return Ok(Allocation { job_id: job, nodes });
                }
                "PENDING" | "CONFIGURING" => {
                    if HOPELESS_REASONS.contains(&reason.as_str()) {
                        let _ = self.release();
                        return Err(PilotError::Allocation {
                            resource: self.resource(),
                            message: format!(
                                "SLURM job {job} cannot start: PENDING ({reason}) - {} nodes for {} min asked{}; cancelled",
                                plan.nodes,
                                plan.walltime_min,
                                if reason.starts_with("Partition") {
                                    ", more than the partition has or allows"
                                } else {
                                    ""
                                }
                            ),
                        });
                    }
                    if reason != last_reason && t0.elapsed() > Duration::from_secs(2) {
                        eprintln!("SLURM job {job} is PENDING ({reason})");
                        last_reason = reason.clone();
                    }
                    if t0.elapsed() > QUEUE_WAIT {
                        let _ = self.release();
                        return Err(PilotError::Allocation {
                            resource: self.resource(),
                            message: format!(
                                "SLURM job {job} still PENDING ({reason}) after {} s; cancelled",
                                QUEUE_WAIT.as_secs()
                            ),
                        });
                    }
                }
                other => {
                    self.job_id = None;
                    return Err(PilotError::Allocation {
                        resource: self.resource(),
                        message: format!("SLURM job {job} ended before it ran: {other} ({reason})"),
                    });
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn launch(&mut self, node: &Node, spec: &LaunchSpec) -> Result<ManagedChild> {
        process::spawn(&self.step_spec(node, spec)?)
    }

    fn run(&mut self, node: &Node, spec: &LaunchSpec, timeout: Duration) -> Result<ExitStatus> {
        process::run_to_completion(&self.step_spec(node, spec)?, timeout)
    }

    fn signal(
        &mut self,
        process: &crate::pilots::process::ProcessRef,
        signal: crate::pilots::process::Signal,
    ) -> Result<String> {
        self.signal_step(&step_name(&process.label), signal)
    }

    fn set_node_state(
        &mut self,
        node: &str,
        state: crate::pilots::backend::NodeState,
        reason: &str,
    ) -> Result<String> {
        self.scontrol_node_state(node, state, reason)
    }

    fn cancel_job(&mut self) -> Result<Option<String>> {
        self.scancel_job().map(Some)
    }

    fn terminate_tasks(&mut self) -> bool {
        // Without --full or --batch only the job's steps are signalled: the tasks, not the placeholder.
        match &self.job_id {
            Some(job) if !job.is_empty() => self
                .output("scancel", &["--signal=TERM".into(), job.clone()])
                .is_ok(),
            _ => false,
        }
    }

    fn release(&mut self) -> Result<()> {
        let Some(job) = self.job_id.take() else {
            return Ok(());
        };
        if !self.owned {
            return Ok(());
        }
        let _ = self.output("scancel", std::slice::from_ref(&job));
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            let jobs = self
                .output(
                    "squeue",
                    &[
                        "-h".into(),
                        "-j".into(),
                        job.clone(),
                        "-o".into(),
                        "%T".into(),
                    ],
                )
                .unwrap_or_default();
            let steps = self
                .output(
                    "squeue",
                    &["-h".into(), "-s".into(), "-j".into(), job.clone()],
                )
                .unwrap_or_default();
            let live = jobs.lines().any(|s| {
                !matches!(
                    s.trim(),
                    "" | "CANCELLED" | "COMPLETED" | "FAILED" | "TIMEOUT"
                )
            });
            if !live && steps.trim().is_empty() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(PilotError::Allocation {
            resource: self.resource(),
            message: format!("SLURM job {job} or its steps still listed 30 s after scancel"),
        })
    }

    fn job_status(&mut self) -> Option<JobStatus> {
        let job = self.job_id.clone()?;
        let f = self.job_fields(&job).ok()?;
        Some(JobStatus {
            job_id: job,
            state: field(&f, "JobState").unwrap_or("UNKNOWN").to_string(),
            reason: field(&f, "Reason").unwrap_or("None").to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostlists_expand() {
        let e = |s: &str| expand_hostlist(s).unwrap();
        assert_eq!(e("n1"), vec!["n1"]);
        assert_eq!(e("n[1-3]"), vec!["n1", "n2", "n3"]);
        assert_eq!(e("n[1-2,7],login"), vec!["n1", "n2", "n7", "login"]);
        assert_eq!(e("c[08-10]"), vec!["c08", "c09", "c10"]);
        assert_eq!(e("r[1-2]n[1-2]"), vec!["r1n1", "r1n2", "r2n1", "r2n2"]);
        assert_eq!(e("gpu[1],cpu[3-4]"), vec!["gpu1", "cpu3", "cpu4"]);
        assert!(expand_hostlist("n[1-").unwrap_err().contains("unbalanced"));
        assert!(expand_hostlist("n[a-b]")
            .unwrap_err()
            .contains("not a number range"));
        assert!(expand_hostlist("n[3-1]").unwrap_err().contains("empty"));
    }

    #[test]
    fn sbatch_commands_carry_what_is_set_and_nothing_else() {
        use crate::pilots::description::{
            ProcessEnvironment, RawDescription, RawSlurm, ResourceUrl,
        };
        let plan = |raw: RawDescription| {
            RawDescription {
                resource: Some("slurm://localhost".into()),
                working_directory: Some("/w".into()),
                ..raw
            }
            .validate("t", &ProcessEnvironment)
            .unwrap()
        };
        let out = Path::new("/w/p/slurm-%j.out");
        let minimal = plan(RawDescription::default());
        assert_eq!(
            sbatch_args(&minimal, "p", out),
            vec![
                "--parsable",
                "--exclusive",
                "-N",
                "1",
                "-t",
                "60",
                "-J",
                "p",
                "-o",
                "/w/p/slurm-%j.out",
                "--wrap",
                "sleep infinity"
            ]
        );
        let full = plan(RawDescription {
            nodes: Some(4),
            walltime_min: Some(30),
            queue: Some("normal".into()),
            project: Some("TG-123".into()),
            reservation: Some("hack".into()),
            number_cores: Some(96),
            cores_per_node: Some(24),
            slurm: Some(RawSlurm {
                directives: Some(vec!["--constraint=haswell".into()]),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(
            sbatch_args(&full, "p", out),
            vec![
                "--parsable",
                "--exclusive",
                "-N",
                "4",
                "-t",
                "30",
                "-J",
                "p",
                "-o",
                "/w/p/slurm-%j.out",
                "-p",
                "normal",
                "-A",
                "TG-123",
                "--reservation=hack",
                "-n",
                "96",
                "--ntasks-per-node=24",
                "--constraint=haswell",
                "--wrap",
                "sleep infinity"
            ]
        );
        assert_eq!(
            ResourceUrl::parse("slurm://").unwrap(),
            ResourceUrl::Slurm { ssh: None }
        );
        assert_eq!(
            ResourceUrl::parse("slurm+ssh://me@login:2222")
                .unwrap()
                .to_string(),
            "slurm+ssh://me@login:2222"
        );
        assert!(ResourceUrl::parse("slurm://login1")
            .unwrap_err()
            .contains("slurm+ssh://user@login1"));
        let err = RawDescription {
            resource: Some("slurm://localhost".into()),
            slurm: Some(RawSlurm {
                directives: Some(vec!["constraint=x".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }
        .validate("t", &ProcessEnvironment)
        .unwrap_err()
        .to_string();
        assert!(err.contains("not one"), "{err}");
    }

    #[test]
    fn fields_and_quoting() {
        let f = parse_fields(
            "JobId=12 JobName=p JobState=PENDING Reason=PartitionNodeLimit NodeList=(null)",
        );
        assert_eq!(field(&f, "JobState"), Some("PENDING"));
        assert_eq!(field(&f, "Reason"), Some("PartitionNodeLimit"));
        assert_eq!(shell_quote("a b'c"), "'a b'\\''c'");
        assert_eq!(shell_quote("--jobid=3"), "--jobid=3");
        let b = SlurmBackend::new(Some("me@login1".into()));
        let (p, a) = b.command_line("sbatch", &["--wrap".into(), "sleep infinity".into()]);
        assert_eq!(p, "ssh");
        assert_eq!(
            a,
            vec![
                "-o",
                "BatchMode=yes",
                "me@login1",
                "--",
                "sbatch --wrap 'sleep infinity'"
            ]
        );
    }
}
