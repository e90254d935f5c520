//! The Flink plugin: an Apache Flink standalone session cluster from PyPI's `apache-flink-libraries` wheel, which
//! ships Flink's jars (`pyflink/lib/flink-dist-*.jar` and the rest) and `bin/bash-java-utils.jar`, but none of the
//! shell scripts (no jobmanager.sh, taskmanager.sh, start-cluster.sh). The plugin does what those scripts do:
//!
//! - per node a `config.yaml` in the pilot's directory (the JobManager's address, this node's own address as
//!   bind and advertised host for every listener, ports, slots, process memory);
//! - the JVM options and derived memory settings from Flink's own `BashJavaUtils GET_JM_RESOURCE_PARAMS` /
//!   `GET_TM_RESOURCE_PARAMS` (a TaskManager refuses to start without them), computed once at start;
//! - the JobManager on the first node: `java <jvm options> -cp 'lib/*'
//!   org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint --configDir DIR <settings>`; a
//!   TaskManager per node: `... org.apache.flink.runtime.taskexecutor.TaskManagerRunner --configDir DIR ...`.
//! - Ready when the JobManager's REST `/taskmanagers` lists a TaskManager on every node of this pilot.
//! - A pilot that extends a Flink pilot starts TaskManagers only, against the parent's JobManager.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::details::{FlinkDetails, FlinkTaskManager, FrameworkDetails};
use super::plugin::{first_exited, stop_all, wait_for_json, Framework, StartContext};
use crate::error::{log_tail, PilotError, Result};
use crate::pilots::backend::{Allocation, Node, ResourceBackend};
use crate::pilots::description::FlinkPlan;
use crate::pilots::framework::details::NodeRole;
use crate::pilots::process::{LaunchSpec, ManagedChild};

/// The Flink plugin.
pub struct FlinkFramework {
    plan: FlinkPlan,
    children: Vec<ManagedChild>,
    details: Option<FlinkDetails>,
    own: Vec<Node>,
}

/// `config.yaml` for a process on `node` of a cluster whose JobManager is at `jm`.
pub fn config_yaml(plan: &FlinkPlan, jm: &str, node: &IpAddr) -> String {
    format!(
        "# Written by pilot-core for this node's Flink process.\n\
         jobmanager:\n  rpc:\n    address: {jm}\n    port: {jp}\n  bind-host: {node}\n  memory:\n    process:\n      size: {jmem}\n\
         rest:\n  address: {jm}\n  bind-address: {node}\n  port: {rp}\n\
         blob:\n  server:\n    port: {bp}\n\
         taskmanager:\n  host: {node}\n  bind-host: {node}\n  numberOfTaskSlots: {slots}\n  memory:\n    process:\n      size: {tmem}\n",
        jp = plan.jobmanager_port,
        jmem = plan.jobmanager_memory,
        rp = plan.rest_port,
        bp = plan.blob_port,
        slots = plan.taskmanager_slots,
        tmem = plan.taskmanager_memory,
    )
}

/// Split `BashJavaUtils` output into (JVM options, settings), as Flink's scripts do.
pub fn parse_resource_params(out: &str) -> Option<(Vec<String>, Vec<String>)> {
    let mut lines = out
        .lines()
        .filter_map(|l| l.strip_prefix("BASH_JAVA_UTILS_EXEC_RESULT:"));
    let jvm = lines.next()?.split_whitespace().map(String::from).collect();
    let dynamic = lines.next()?.split_whitespace().map(String::from).collect();
    Some((jvm, dynamic))
}

impl FlinkFramework {
    pub fn new(plan: FlinkPlan) -> Self {
        FlinkFramework {
            plan,
            children: Vec::new(),
            details: None,
            own: Vec::new(),
        }
    }

    fn classpath(&self, extra: Option<&str>) -> String {
        let lib = self.plan.flink_home.join("lib/*").display().to_string();
        match extra {
            Some(e) => format!("{e}:{lib}"),
            None => lib,
        }
    }

    /// Flink's own computation of a process's JVM options and memory settings for `conf_dir`.
    fn resource_params(&self, which: &str, conf_dir: &Path) -> Result<(Vec<String>, Vec<String>)> {
        let utils = self.plan.flink_home.join("bin/bash-java-utils.jar");
        let out = std::process::Command::new(&self.plan.java)
            .args(["-cp", &self.classpath(Some(&utils.display().to_string()))])
            .arg("org.apache.flink.runtime.util.bash.BashJavaUtils")
            .arg(which)
            .arg("--configDir")
            .arg(conf_dir)
            .output()
            .map_err(|source| PilotError::Launch {
                label: "Flink's BashJavaUtils".into(),
                program: self.plan.java.clone(),
                source,
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        parse_resource_params(&text).ok_or_else(|| PilotError::FrameworkFailed {
            message: format!(
                "Flink's BashJavaUtils {which} gave no resource parameters ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            log: conf_dir.join("config.yaml"),
            log_tail: log_tail(&conf_dir.join("config.yaml"), 30),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn launch(
        &mut self,
        backend: &mut dyn ResourceBackend,
        node: &Node,
        dir: &Path,
        label: String,
        entry: &str,
        params: &str,
        jm: &str,
        log: &str,
    ) -> Result<()> {
        let conf = dir.join(format!("conf-{log}"));
        std::fs::create_dir_all(&conf).map_err(|e| PilotError::io("creating", &conf, e))?;
        let yaml = conf.join("config.yaml");
        std::fs::write(&yaml, config_yaml(&self.plan, jm, &node.address))
            .map_err(|e| PilotError::io("writing", &yaml, e))?;
        let (jvm, dynamic) = self.resource_params(params, &conf)?;
        let mut args = jvm;
        args.push(format!(
            "-Dlog.file={}",
            dir.join(format!("{log}.log")).display()
        ));
        args.extend(["-cp".to_string(), self.classpath(None), entry.to_string()]);
        args.extend(["--configDir".to_string(), conf.display().to_string()]);
        args.extend(dynamic);
        let spec = LaunchSpec {
            label,
            program: self.plan.java.clone(),
            args,
            env: vec![("FLINK_CONF_DIR".into(), conf.display().to_string())],
            cwd: dir.to_path_buf(),
            log: dir.join(format!("{log}.out")),
        };
        self.children.push(backend.launch(node, &spec)?);
        Ok(())
    }
}

impl Framework for FlinkFramework {
    fn ports(&self) -> Vec<u16> {
        vec![
            self.plan.jobmanager_port,
            self.plan.rest_port,
            self.plan.blob_port,
        ]
    }

    fn start(
        &mut self,
        backend: &mut dyn ResourceBackend,
        alloc: &Allocation,
        ctx: &StartContext,
    ) -> Result<()> {
        let mut details = match ctx.parent {
            Some(FrameworkDetails::Flink(d)) => d.clone(),
            Some(other) => {
                return Err(PilotError::invalid(
                    "parent",
                    format!(
                        "a Flink pilot extends Flink pilots only; the parent runs {}",
                        other.kind().name()
                    ),
                ))
            }
            None => {
                let node = &alloc.nodes[0];
                FlinkDetails {
                    jobmanager_address: format!("{}:{}", node.address, self.plan.jobmanager_port),
                    rest_url: format!("http://{}:{}", node.address, self.plan.rest_port),
                    jobmanager_node: node.name.clone(),
                    taskmanagers: Vec::new(),
                    flink_home: self.plan.flink_home.clone(),
                    java: self.plan.java.clone(),
                    jobmanager_port: self.plan.jobmanager_port,
                    rest_port: self.plan.rest_port,
                    blob_port: self.plan.blob_port,
                }
            }
        };
        // An extension's TaskManagers use the parent's ports for the JobManager.
        self.plan.jobmanager_port = details.jobmanager_port;
        self.plan.rest_port = details.rest_port;
        self.plan.blob_port = details.blob_port;
        let jm = details
            .jobmanager_address
            .rsplit_once(':')
            .map(|(h, _)| h.to_string())
            .unwrap_or_default();
        self.own = alloc.nodes.clone();
        if ctx.parent.is_none() {
            let node = alloc.nodes[0].clone();
            let dir = ctx.pilot_dir.join(&node.name);
            self.launch(
                backend,
                &node,
                &dir,
                format!("flink jobmanager on {}", node.name),
                "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint",
                "GET_JM_RESOURCE_PARAMS",
                &jm,
                "flink-jobmanager",
            )?;
        }
        for node in alloc.nodes.clone() {
            let dir = ctx.pilot_dir.join(&node.name);
            self.launch(
                backend,
                &node,
                &dir,
                format!("flink taskmanager on {}", node.name),
                "org.apache.flink.runtime.taskexecutor.TaskManagerRunner",
                "GET_TM_RESOURCE_PARAMS",
                &jm,
                "flink-taskmanager",
            )?;
            details.taskmanagers.push(FlinkTaskManager {
                node: node.name.clone(),
                address: node.address,
                pilot_id: ctx.pilot_id.to_string(),
                slots: self.plan.taskmanager_slots,
            });
        }
        self.details = Some(details);
        Ok(())
    }

    fn wait_ready(&mut self, timeout: Duration, interrupted: &dyn Fn() -> bool) -> Result<()> {
        let d = self.details.clone().expect("start before wait_ready");
        let url = format!("{}/taskmanagers", d.rest_url);
        let own = &self.own;
        wait_for_json(
            "Flink",
            &url,
            &mut self.children,
            timeout,
            Duration::from_millis(200),
            interrupted,
            &mut |v| {
                // A TaskManager's path is pekko.tcp://flink@HOST:PORT/user/rpc/taskmanager_N.
                let paths: Vec<&str> = v["taskmanagers"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|t| t["path"].as_str()).collect())
                    .unwrap_or_default();
                let missing: Vec<String> = own
                    .iter()
                    .map(|n| n.address.to_string())
                    .filter(|a| !paths.iter().any(|p| p.contains(&format!("@{a}:"))))
                    .collect();
                if missing.is_empty() {
                    return Ok(());
                }
                Err(format!(
                    "{} TaskManager(s) registered; none yet on {missing:?}",
                    paths.len()
                ))
            },
        )
    }

    fn check(&mut self) -> Result<()> {
        first_exited(&mut self.children)
    }

    fn role(&self, _node: &str) -> NodeRole {
        NodeRole::Framework
    }

    fn details(&self) -> FrameworkDetails {
        FrameworkDetails::Flink(self.details.clone().expect("start before details"))
    }

    fn logs(&self) -> Vec<PathBuf> {
        self.children
            .iter()
            .map(|c| c.log().to_path_buf())
            .collect()
    }

    fn stop(&mut self, grace: Duration) {
        stop_all(&mut self.children, grace);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_java_utils_output_splits_into_jvm_options_and_settings() {
        let out = "INFO  [] - Final TaskExecutor Memory configuration:\n\
                   BASH_JAVA_UTILS_EXEC_RESULT:-Xmx161061270 -Xms161061270\n\
                   BASH_JAVA_UTILS_EXEC_RESULT:-D taskmanager.cpu.cores=1.0 -D taskmanager.numberOfTaskSlots=1\n";
        let (jvm, dynamic) = parse_resource_params(out).unwrap();
        assert_eq!(jvm, vec!["-Xmx161061270", "-Xms161061270"]);
        assert_eq!(
            dynamic,
            vec![
                "-D",
                "taskmanager.cpu.cores=1.0",
                "-D",
                "taskmanager.numberOfTaskSlots=1"
            ]
        );
        assert!(parse_resource_params("no result").is_none());
    }
}
