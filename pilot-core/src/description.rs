//! Pilot descriptions: the raw form users write ([`RawDescription`], a TOML file and/or CLI flags, unknown keys
//! rejected) and the validated [`PilotPlan`] that everything else consumes. Validation resolves defaults,
//! environment (KAFKA_HOME, the broker binary) and cross-field rules before anything is allocated or started,
//! so `pilot start --dry-run` can print exactly what would run.
//!
//! ```toml
//! resource = "local://"          # local:// (alias fork://localhost)
//! framework = "kafka"
//! nodes = 1
//! walltime_min = 60
//! working_directory = "pilots"
//!
//! [kafka]
//! distribution = "tansu"         # tansu | apache-kafka | external
//! partitions_per_node = 12
//! ```

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{PilotError, Result};

/// Default broker port (Kafka's).
pub const DEFAULT_KAFKA_PORT: u16 = 9092;
/// Default KRaft controller port.
pub const DEFAULT_CONTROLLER_PORT: u16 = 9093;
/// Partitions per broker node, as in the paper's experiments.
pub const DEFAULT_PARTITIONS_PER_NODE: u32 = 12;
/// How long a framework gets to become ready.
pub const DEFAULT_READY_TIMEOUT_S: u64 = 60;
/// Default walltime (minutes).
pub const DEFAULT_WALLTIME_MIN: u32 = 60;
/// First loopback address handed to local "nodes" (127.0.0.1 is left to everything else).
pub const DEFAULT_FIRST_LOCAL_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The tansu version the project is tested against, and how to install it.
pub const TANSU_INSTALL: &str =
    "cargo install tansu --version 0.6.0 --locked --no-default-features --features dynostore";

/// A pilot description as written by a user. Every field is optional so that a file and command-line flags can
/// be merged ([`RawDescription::overlay`]); [`RawDescription::validate`] turns it into a [`PilotPlan`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDescription {
    /// Resource URL: `local://` (this machine). Default `local://`.
    pub resource: Option<String>,
    /// Framework to boot on the nodes: `kafka`. Default `kafka`.
    pub framework: Option<String>,
    /// Number of nodes. Default 1.
    pub nodes: Option<u32>,
    /// Cores per node the pilot may use (SLURM: `--ntasks-per-node`).
    pub cores_per_node: Option<u32>,
    /// Cores in all (SLURM: `-n`).
    pub number_cores: Option<u32>,
    /// Walltime in minutes. Default 60.
    pub walltime_min: Option<u32>,
    /// Batch queue / partition.
    pub queue: Option<String>,
    /// Project / account to charge.
    pub project: Option<String>,
    /// Reservation name.
    pub reservation: Option<String>,
    /// Where pilot state and logs go (one sub-directory per pilot). Default `pilots` (relative to the cwd).
    pub working_directory: Option<PathBuf>,
    /// Id of a running pilot this one extends: its nodes join the parent's cluster.
    pub parent: Option<String>,
    /// Kafka framework settings.
    pub kafka: Option<RawKafka>,
    /// Local-backend settings.
    pub local: Option<RawLocal>,
    /// SLURM settings.
    pub slurm: Option<RawSlurm>,
}

/// `[slurm]` settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlurm {
    /// Extra `sbatch` options, each as one argument (e.g. `"--constraint=haswell"`).
    pub directives: Option<Vec<String>>,
    /// The cluster's `slurm.conf` (default: SLURM's own lookup, `$SLURM_CONF` or `/etc/slurm/slurm.conf`).
    pub conf: Option<PathBuf>,
    /// Options for `ssh` to the login node of `slurm+ssh://` (e.g. `["-i", "/path/key"]`).
    pub ssh_options: Option<Vec<String>>,
}

/// `[kafka]` settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafka {
    /// `tansu` (default), `apache-kafka` or `external`.
    pub distribution: Option<String>,
    /// Broker port on every node. Default 9092.
    pub port: Option<u16>,
    /// KRaft controller port (apache-kafka). Default 9093.
    pub controller_port: Option<u16>,
    /// Partitions per broker node for topics created through the pilot. Default 12.
    pub partitions_per_node: Option<u32>,
    /// Extra broker properties (apache-kafka server.properties); override generated ones.
    pub broker_properties: Option<BTreeMap<String, String>>,
    /// Seconds to wait for the brokers to become ready. Default 60.
    pub ready_timeout_s: Option<u64>,
    /// Path to the tansu binary (default: PATH, then $CARGO_HOME/bin, then ~/.cargo/bin).
    pub binary: Option<PathBuf>,
    /// Kafka distribution directory (apache-kafka). Default: $KAFKA_HOME.
    pub kafka_home: Option<PathBuf>,
    /// Node-local directory for broker data (apache-kafka `log.dirs`). Default `/tmp`.
    pub local_dir: Option<PathBuf>,
    /// Existing brokers (external), `host:port`.
    pub bootstrap_servers: Option<Vec<String>>,
}

/// `[local]` settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocal {
    /// Use exactly these loopback addresses for the nodes (one per node), instead of the first free ones.
    pub addresses: Option<Vec<Ipv4Addr>>,
    /// First loopback address to try when picking free ones. Default 127.0.0.2.
    pub first_address: Option<Ipv4Addr>,
}

/// Where a pilot's nodes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "kebab-case")]
pub enum ResourceUrl {
    /// Slots on this host, one loopback address each.
    Local,
    /// A SLURM cluster: commands run here (`slurm://localhost`) or on a login node through ssh
    /// (`slurm+ssh://user@host`).
    Slurm { ssh: Option<String> },
}

impl ResourceUrl {
    /// Parse `local://` (or the original system's `fork://localhost`), `slurm://localhost` or
    /// `slurm+ssh://[user@]host`.
    pub fn parse(url: &str) -> std::result::Result<Self, String> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!(
                "resource `{url}` is not a URL: expected `local://` (supported schemes: local, slurm, slurm+ssh)"
            ));
        };
        match scheme {
            "local" | "fork" => {
                if rest.is_empty() || rest == "localhost" {
                    Ok(ResourceUrl::Local)
                } else {
                    Err(format!(
                        "resource `{url}`: a local resource has no host (write `local://`)"
                    ))
                }
            }
            "slurm" => {
                if rest.is_empty() || rest == "localhost" {
                    Ok(ResourceUrl::Slurm { ssh: None })
                } else {
                    Err(format!(
                        "resource `{url}`: `slurm://` runs SLURM's commands here (write `slurm://localhost`); use `slurm+ssh://user@{rest}` for a login node"
                    ))
                }
            }
            "slurm+ssh" => {
                let host = rest.trim_end_matches('/');
                if host.is_empty() || host.contains('/') || host.contains(' ') {
                    Err(format!(
                        "resource `{url}`: expected `slurm+ssh://user@host[:port]` (a login node)"
                    ))
                } else {
                    Ok(ResourceUrl::Slurm {
                        ssh: Some(host.to_string()),
                    })
                }
            }
            other => Err(format!(
                "resource `{url}`: unknown scheme `{other}` (supported schemes: local, slurm, slurm+ssh)"
            )),
        }
    }
}

impl std::fmt::Display for ResourceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResourceUrl::Local => write!(f, "local://"),
            ResourceUrl::Slurm { ssh: None } => write!(f, "slurm://localhost"),
            ResourceUrl::Slurm { ssh: Some(h) } => write!(f, "slurm+ssh://{h}"),
        }
    }
}

/// Which Kafka-protocol broker a pilot runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Distribution {
    /// tansu with in-memory storage: one broker (on the pilot's first node).
    Tansu { binary: PathBuf },
    /// Apache Kafka in KRaft mode from a Kafka installation directory.
    ApacheKafka { kafka_home: PathBuf },
    /// Brokers that already run; the pilot only checks they answer.
    External { bootstrap_servers: Vec<String> },
}

impl Distribution {
    /// The name used in descriptions.
    pub fn name(&self) -> &'static str {
        match self {
            Distribution::Tansu { .. } => "tansu",
            Distribution::ApacheKafka { .. } => "apache-kafka",
            Distribution::External { .. } => "external",
        }
    }
}

/// Validated Kafka settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaPlan {
    pub distribution: Distribution,
    pub port: u16,
    pub controller_port: u16,
    pub partitions_per_node: u32,
    pub broker_properties: BTreeMap<String, String>,
    pub ready_timeout_s: u64,
    pub local_dir: PathBuf,
}

/// Validated framework choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum FrameworkPlan {
    Kafka(KafkaPlan),
}

/// Validated local-backend settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalPlan {
    pub addresses: Option<Vec<Ipv4Addr>>,
    pub first_address: Ipv4Addr,
}

/// A validated pilot description: complete, consistent, with defaults filled in. Serialised into the pilot's
/// state file so `status` and `extend` see exactly what was started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PilotPlan {
    pub resource: ResourceUrl,
    pub framework: FrameworkPlan,
    pub nodes: u32,
    pub cores_per_node: Option<u32>,
    pub number_cores: Option<u32>,
    pub walltime_min: u32,
    pub queue: Option<String>,
    pub project: Option<String>,
    pub reservation: Option<String>,
    pub working_directory: PathBuf,
    pub parent: Option<String>,
    pub local: LocalPlan,
    /// Extra `sbatch` options. (`default`: records written before these fields existed still load.)
    #[serde(default)]
    pub slurm_directives: Vec<String>,
    /// `SLURM_CONF` for every SLURM command of this pilot.
    pub slurm_conf: Option<PathBuf>,
    /// Extra `ssh` options for `slurm+ssh://`.
    #[serde(default)]
    pub slurm_ssh_options: Vec<String>,
}

impl PilotPlan {
    /// The Kafka settings (every framework today is Kafka).
    pub fn kafka(&self) -> &KafkaPlan {
        match &self.framework {
            FrameworkPlan::Kafka(k) => k,
        }
    }

    /// A human-readable summary for `--dry-run`.
    pub fn describe(&self) -> String {
        let k = self.kafka();
        let mut out = String::new();
        out.push_str(&format!("resource:          {}\n", self.resource));
        out.push_str(&format!(
            "framework:         kafka ({})\n",
            k.distribution.name()
        ));
        match &k.distribution {
            Distribution::Tansu { binary } => {
                out.push_str(&format!("broker binary:     {}\n", binary.display()))
            }
            Distribution::ApacheKafka { kafka_home } => {
                out.push_str(&format!("KAFKA_HOME:        {}\n", kafka_home.display()))
            }
            Distribution::External { bootstrap_servers } => out.push_str(&format!(
                "bootstrap servers: {}\n",
                bootstrap_servers.join(",")
            )),
        }
        out.push_str(&format!("nodes:             {}\n", self.nodes));
        if let Some(c) = self.cores_per_node {
            out.push_str(&format!("cores per node:    {c}\n"));
        }
        if let Some(c) = self.number_cores {
            out.push_str(&format!("cores:             {c}\n"));
        }
        if !self.slurm_directives.is_empty() {
            out.push_str(&format!(
                "sbatch options:    {}\n",
                self.slurm_directives.join(" ")
            ));
        }
        out.push_str(&format!("walltime:          {} min\n", self.walltime_min));
        for (name, v) in [
            ("queue", &self.queue),
            ("project", &self.project),
            ("reservation", &self.reservation),
            ("parent", &self.parent),
        ] {
            if let Some(v) = v {
                out.push_str(&format!("{:<19}{v}\n", format!("{name}:")));
            }
        }
        out.push_str(&format!("broker port:       {}\n", k.port));
        out.push_str(&format!("partitions/node:   {}\n", k.partitions_per_node));
        out.push_str(&format!("ready timeout:     {} s\n", k.ready_timeout_s));
        match &self.local.addresses {
            Some(a) => out.push_str(&format!(
                "node addresses:    {}\n",
                a.iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            None => out.push_str(&format!(
                "node addresses:    first free from {}\n",
                self.local.first_address
            )),
        }
        out.push_str(&format!(
            "working directory: {}\n",
            self.working_directory.display()
        ));
        out
    }
}

/// Read-only view of the process environment used by validation (injected so tests control it).
pub trait Environment {
    /// An environment variable.
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl RawDescription {
    /// Parse a TOML description; `origin` (usually the path) is named in errors, which carry the line.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| PilotError::invalid(origin, e.to_string()))
    }

    /// Read and parse a TOML description file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| PilotError::io("reading", path, e))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Fields set in `over` replace those in `self` (CLI flags over a file). Sections merge field by field.
    pub fn overlay(mut self, over: RawDescription) -> RawDescription {
        macro_rules! take {
            ($($f:ident),*) => { $( if over.$f.is_some() { self.$f = over.$f; } )* };
        }
        take!(
            resource,
            framework,
            nodes,
            cores_per_node,
            number_cores,
            walltime_min,
            queue,
            project,
            reservation,
            working_directory,
            parent
        );
        if let Some(k) = over.kafka {
            let mut base = self.kafka.take().unwrap_or_default();
            macro_rules! takek {
                ($($f:ident),*) => { $( if k.$f.is_some() { base.$f = k.$f; } )* };
            }
            takek!(
                distribution,
                port,
                controller_port,
                partitions_per_node,
                broker_properties,
                ready_timeout_s,
                binary,
                kafka_home,
                local_dir,
                bootstrap_servers
            );
            self.kafka = Some(base);
        }
        if let Some(l) = over.local {
            let mut base = self.local.take().unwrap_or_default();
            if l.addresses.is_some() {
                base.addresses = l.addresses;
            }
            if l.first_address.is_some() {
                base.first_address = l.first_address;
            }
            self.local = Some(base);
        }
        self
    }

    /// Check everything and fill defaults. `origin` names the description in errors.
    pub fn validate(&self, origin: &str, env: &dyn Environment) -> Result<PilotPlan> {
        let bad = |m: String| PilotError::invalid(origin, m);
        let resource =
            ResourceUrl::parse(self.resource.as_deref().unwrap_or("local://")).map_err(bad)?;
        let framework_name = self.framework.as_deref().unwrap_or("kafka");
        if framework_name != "kafka" {
            return Err(bad(format!(
                "framework `{framework_name}` is not supported (supported: kafka)"
            )));
        }
        let nodes = self.nodes.unwrap_or(1);
        if nodes == 0 {
            return Err(bad("nodes must be at least 1 (got 0)".into()));
        }
        if self.cores_per_node == Some(0) {
            return Err(bad("cores_per_node must be at least 1 (got 0)".into()));
        }
        if self.number_cores == Some(0) {
            return Err(bad("number_cores must be at least 1 (got 0)".into()));
        }
        let slurm_directives = self
            .slurm
            .as_ref()
            .and_then(|s| s.directives.clone())
            .unwrap_or_default();
        if let Some(d) = slurm_directives.iter().find(|d| !d.starts_with('-')) {
            return Err(bad(format!(
                "[slurm] directives are sbatch options such as \"--constraint=x\"; `{d}` is not one"
            )));
        }
        let walltime_min = self.walltime_min.unwrap_or(DEFAULT_WALLTIME_MIN);
        if walltime_min == 0 {
            return Err(bad("walltime_min must be at least 1 (got 0)".into()));
        }
        for (name, v) in [
            ("queue", &self.queue),
            ("project", &self.project),
            ("reservation", &self.reservation),
            ("parent", &self.parent),
        ] {
            if let Some(v) = v {
                if v.trim().is_empty() || v == "None" {
                    return Err(bad(format!(
                        "{name} is `{v}`: leave the key out instead of giving an empty value"
                    )));
                }
            }
        }
        let working_directory = self
            .working_directory
            .clone()
            .unwrap_or_else(|| PathBuf::from("pilots"));

        let raw_local = self.local.clone().unwrap_or_default();
        let first_address = raw_local
            .first_address
            .unwrap_or(DEFAULT_FIRST_LOCAL_ADDRESS);
        if !first_address.is_loopback() {
            return Err(bad(format!(
                "[local] first_address {first_address} is not a loopback address (127.0.0.0/8): local nodes listen on loopback only"
            )));
        }
        if let Some(addrs) = &raw_local.addresses {
            if addrs.len() != nodes as usize {
                return Err(bad(format!(
                    "[local] addresses lists {} address(es) but nodes = {nodes}",
                    addrs.len()
                )));
            }
            for a in addrs {
                if !a.is_loopback() {
                    return Err(bad(format!(
                        "[local] address {a} is not a loopback address (127.0.0.0/8): local nodes listen on loopback only"
                    )));
                }
            }
            let mut sorted = addrs.clone();
            sorted.sort();
            sorted.dedup();
            if sorted.len() != addrs.len() {
                return Err(bad("[local] addresses contains duplicates".into()));
            }
        }

        let kafka = self.validate_kafka(origin, env, nodes)?;
        Ok(PilotPlan {
            resource,
            framework: FrameworkPlan::Kafka(kafka),
            nodes,
            cores_per_node: self.cores_per_node,
            number_cores: self.number_cores,
            walltime_min,
            queue: self.queue.clone(),
            project: self.project.clone(),
            reservation: self.reservation.clone(),
            working_directory,
            parent: self.parent.clone(),
            local: LocalPlan {
                addresses: raw_local.addresses,
                first_address,
            },
            slurm_directives,
            slurm_conf: self.slurm.as_ref().and_then(|s| s.conf.clone()),
            slurm_ssh_options: self
                .slurm
                .as_ref()
                .and_then(|s| s.ssh_options.clone())
                .unwrap_or_default(),
        })
    }

    fn validate_kafka(&self, origin: &str, env: &dyn Environment, nodes: u32) -> Result<KafkaPlan> {
        let bad = |m: String| PilotError::invalid(origin, m);
        let k = self.kafka.clone().unwrap_or_default();
        let port = k.port.unwrap_or(DEFAULT_KAFKA_PORT);
        let controller_port = k.controller_port.unwrap_or(DEFAULT_CONTROLLER_PORT);
        if port == 0 || controller_port == 0 {
            return Err(bad(
                "[kafka] port and controller_port must be non-zero".into()
            ));
        }
        let partitions_per_node = k.partitions_per_node.unwrap_or(DEFAULT_PARTITIONS_PER_NODE);
        if partitions_per_node == 0 {
            return Err(bad("[kafka] partitions_per_node must be at least 1".into()));
        }
        let ready_timeout_s = k.ready_timeout_s.unwrap_or(DEFAULT_READY_TIMEOUT_S);
        if ready_timeout_s == 0 {
            return Err(bad("[kafka] ready_timeout_s must be at least 1".into()));
        }
        let dist_name = k.distribution.as_deref().unwrap_or("tansu");
        let only_for = |key: &str, present: bool, dist: &str| -> Result<()> {
            if present && dist_name != dist {
                Err(bad(format!(
                    "[kafka] {key} applies only to distribution = \"{dist}\" (this pilot uses \"{dist_name}\")"
                )))
            } else {
                Ok(())
            }
        };
        only_for("binary", k.binary.is_some(), "tansu")?;
        only_for("kafka_home", k.kafka_home.is_some(), "apache-kafka")?;
        only_for(
            "bootstrap_servers",
            k.bootstrap_servers.is_some(),
            "external",
        )?;
        let distribution = match dist_name {
            "tansu" => Distribution::Tansu {
                binary: find_tansu(k.binary.as_deref(), env)?,
            },
            "apache-kafka" => {
                let home = k
                    .kafka_home
                    .clone()
                    .or_else(|| env.var("KAFKA_HOME").map(PathBuf::from))
                    .ok_or_else(|| {
                        bad("distribution apache-kafka needs a Kafka installation: set KAFKA_HOME or [kafka] kafka_home".into())
                    })?;
                let start = home.join("bin/kafka-server-start.sh");
                if !start.is_file() {
                    return Err(bad(format!(
                        "KAFKA_HOME {} has no bin/kafka-server-start.sh: is it a Kafka distribution?",
                        home.display()
                    )));
                }
                Distribution::ApacheKafka { kafka_home: home }
            }
            "external" => {
                let servers = k.bootstrap_servers.clone().unwrap_or_default();
                if servers.is_empty() {
                    return Err(bad(
                        "distribution external needs [kafka] bootstrap_servers = [\"host:port\", ...]"
                            .into(),
                    ));
                }
                for s in &servers {
                    let ok = s
                        .rsplit_once(':')
                        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
                    if !ok {
                        return Err(bad(format!(
                            "[kafka] bootstrap server `{s}` is not host:port"
                        )));
                    }
                }
                Distribution::External {
                    bootstrap_servers: servers,
                }
            }
            other => {
                return Err(bad(format!(
                    "[kafka] distribution `{other}` is unknown (choose tansu, apache-kafka or external)"
                )))
            }
        };
        if matches!(distribution, Distribution::External { .. }) && nodes != 1 {
            return Err(bad(
                "an external Kafka pilot starts nothing: use nodes = 1".into()
            ));
        }
        if let Some(props) = &k.broker_properties {
            if !matches!(distribution, Distribution::ApacheKafka { .. }) {
                return Err(bad(
                    "[kafka] broker_properties applies only to distribution = \"apache-kafka\""
                        .into(),
                ));
            }
            for key in props.keys() {
                if key.trim().is_empty() || key.contains(['=', '\n']) {
                    return Err(bad(format!(
                        "[kafka] broker property key `{key}` is malformed"
                    )));
                }
            }
        }
        Ok(KafkaPlan {
            distribution,
            port,
            controller_port,
            partitions_per_node,
            broker_properties: k.broker_properties.unwrap_or_default(),
            ready_timeout_s,
            local_dir: k.local_dir.unwrap_or_else(|| PathBuf::from("/tmp")),
        })
    }
}

/// Locate the tansu binary: the configured path, else PATH, $CARGO_HOME/bin, ~/.cargo/bin.
pub fn find_tansu(configured: Option<&Path>, env: &dyn Environment) -> Result<PathBuf> {
    let mut searched = Vec::new();
    if let Some(p) = configured {
        if is_executable(p) {
            return Ok(p.to_path_buf());
        }
        searched.push(p.display().to_string());
    } else {
        let mut dirs: Vec<PathBuf> = env
            .var("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        if let Some(c) = env.var("CARGO_HOME") {
            dirs.push(PathBuf::from(c).join("bin"));
        }
        if let Some(h) = env.var("HOME") {
            dirs.push(PathBuf::from(h).join(".cargo/bin"));
        }
        for d in dirs {
            let p = d.join("tansu");
            if is_executable(&p) {
                return Ok(p);
            }
            searched.push(d.display().to_string());
        }
    }
    Err(PilotError::BinaryMissing {
        program: "tansu".into(),
        searched: if searched.is_empty() {
            "nowhere: PATH and HOME are unset".into()
        } else {
            searched.join(", ")
        },
        install: TANSU_INSTALL.into(),
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct FakeEnv(HashMap<String, String>);
    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    fn env_with_tansu() -> (tempfile::TempDir, FakeEnv) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("tansu");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let env = FakeEnv(HashMap::from([(
            "PATH".to_string(),
            dir.path().display().to_string(),
        )]));
        (dir, env)
    }

    #[test]
    fn defaults_fill_in() {
        let (dir, env) = env_with_tansu();
        let plan = RawDescription::default().validate("test", &env).unwrap();
        assert_eq!(plan.resource, ResourceUrl::Local);
        assert_eq!(plan.nodes, 1);
        assert_eq!(plan.walltime_min, 60);
        assert_eq!(plan.kafka().partitions_per_node, 12);
        assert_eq!(plan.kafka().port, 9092);
        assert_eq!(
            plan.kafka().distribution,
            Distribution::Tansu {
                binary: dir.path().join("tansu")
            }
        );
    }

    #[test]
    fn a_plan_saved_before_the_ssh_and_directive_fields_still_loads() {
        let (_dir, env) = env_with_tansu();
        let plan = RawDescription::default().validate("test", &env).unwrap();
        let mut v = serde_json::to_value(&plan).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("slurm_ssh_options");
        o.remove("slurm_directives");
        o.remove("slurm_conf");
        let back: PilotPlan = serde_json::from_value(v).unwrap();
        assert_eq!(back, plan);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = RawDescription::from_toml("nodes = 1\nnodez = 2\n", "desc.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("desc.toml"), "{msg}");
        assert!(msg.contains("nodez"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn unknown_key_in_section_is_rejected() {
        let err = RawDescription::from_toml("[kafka]\npartitions = 3\n", "d.toml").unwrap_err();
        assert!(err.to_string().contains("partitions"), "{err}");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn zero_nodes_rejected() {
        let (_d, env) = env_with_tansu();
        let raw = RawDescription {
            nodes: Some(0),
            ..Default::default()
        };
        let err = raw.validate("flags", &env).unwrap_err().to_string();
        assert!(err.contains("nodes must be at least 1"), "{err}");
    }

    #[test]
    fn unknown_scheme_rejected() {
        let (_d, env) = env_with_tansu();
        let raw = RawDescription {
            resource: Some("pbs://cluster".into()),
            ..Default::default()
        };
        let err = raw.validate("flags", &env).unwrap_err().to_string();
        assert!(err.contains("unknown scheme `pbs`"), "{err}");
        assert!(err.contains("supported schemes"), "{err}");
        assert_eq!(
            ResourceUrl::parse("fork://localhost"),
            Ok(ResourceUrl::Local)
        );
        assert!(ResourceUrl::parse("localhost").is_err());
    }

    #[test]
    fn missing_tansu_names_the_install_command() {
        let env = FakeEnv(HashMap::from([(
            "PATH".to_string(),
            "/nonexistent".to_string(),
        )]));
        let err = RawDescription::default()
            .validate("flags", &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("tansu binary was not found"), "{err}");
        assert!(err.contains(TANSU_INSTALL), "{err}");
        assert!(err.contains("/nonexistent"), "{err}");
    }

    #[test]
    fn non_loopback_address_rejected() {
        let (_d, env) = env_with_tansu();
        let raw = RawDescription::from_toml("[local]\naddresses = [\"10.0.0.1\"]\n", "x").unwrap();
        let err = raw.validate("x", &env).unwrap_err().to_string();
        assert!(err.contains("not a loopback address"), "{err}");
    }

    #[test]
    fn apache_kafka_needs_kafka_home() {
        let raw =
            RawDescription::from_toml("[kafka]\ndistribution = \"apache-kafka\"\n", "x").unwrap();
        let err = raw
            .validate("x", &FakeEnv(HashMap::new()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("KAFKA_HOME"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let env = FakeEnv(HashMap::from([(
            "KAFKA_HOME".to_string(),
            dir.path().display().to_string(),
        )]));
        let err = raw.validate("x", &env).unwrap_err().to_string();
        assert!(err.contains("bin/kafka-server-start.sh"), "{err}");
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/kafka-server-start.sh"), "").unwrap();
        let plan = raw.validate("x", &env).unwrap();
        assert_eq!(plan.kafka().distribution.name(), "apache-kafka");
    }

    #[test]
    fn settings_for_another_distribution_rejected() {
        let (_d, env) = env_with_tansu();
        let raw =
            RawDescription::from_toml("[kafka]\nbootstrap_servers = [\"a:1\"]\n", "x").unwrap();
        let err = raw.validate("x", &env).unwrap_err().to_string();
        assert!(
            err.contains("applies only to distribution = \"external\""),
            "{err}"
        );
    }

    #[test]
    fn empty_optional_strings_rejected() {
        let (_d, env) = env_with_tansu();
        let raw = RawDescription {
            project: Some("None".into()),
            ..Default::default()
        };
        let err = raw.validate("x", &env).unwrap_err().to_string();
        assert!(err.contains("project"), "{err}");
    }

    #[test]
    fn overlay_prefers_flags_and_merges_sections() {
        let file = RawDescription::from_toml(
            "nodes = 2\nqueue = \"normal\"\n[kafka]\nport = 9999\npartitions_per_node = 4\n",
            "f",
        )
        .unwrap();
        let flags = RawDescription {
            nodes: Some(3),
            kafka: Some(RawKafka {
                port: Some(9100),
                ..Default::default()
            }),
            ..Default::default()
        };
        let merged = file.overlay(flags);
        assert_eq!(merged.nodes, Some(3));
        assert_eq!(merged.queue.as_deref(), Some("normal"));
        let k = merged.kafka.unwrap();
        assert_eq!(k.port, Some(9100));
        assert_eq!(k.partitions_per_node, Some(4));
    }
}
