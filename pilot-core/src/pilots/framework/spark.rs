//! The Spark plugin: an Apache Spark standalone cluster from the pyspark wheel (which ships `bin/spark-class`,
//! not `sbin/start-*.sh`), on Java 17.
//!
//! - The master runs on the pilot's first node: `spark-class org.apache.spark.deploy.master.Master --host ADDR
//!   --port P --webui-port W`; one worker per node: `...deploy.worker.Worker spark://ADDR:P --host NODE --port ...
//!   --webui-port ... --cores C --memory M --work-dir DIR`. Every process gets `SPARK_LOCAL_IP` = its node's
//!   address, so every port and web UI listens there and nothing on 0.0.0.0; the master's REST server is off
//!   (one port less; the pilot submits in client mode). Scratch and logs stay in the pilot's directory.
//! - Ready when the master's `/json/` says `ALIVE` and lists an alive worker on every node of this pilot.
//! - A pilot that extends a Spark pilot starts workers only, against the parent's master.
//! - Cancel: SIGTERM to every process group, SIGKILL after the grace period.
//!
//! [`submit_spec`] is how `pilot exec --spark-submit` hands an application to the cluster.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::details::{FrameworkDetails, SparkDetails, SparkWorker};
use super::plugin::{first_exited, stop_all, wait_for_json, Framework, StartContext};
use crate::error::{PilotError, Result};
use crate::pilots::backend::{Allocation, Node, ResourceBackend};
use crate::pilots::description::SparkPlan;
use crate::pilots::framework::details::NodeRole;
use crate::pilots::process::{LaunchSpec, ManagedChild};

/// The Spark plugin.
pub struct SparkFramework {
    plan: SparkPlan,
    children: Vec<ManagedChild>,
    details: Option<SparkDetails>,
    /// This pilot's nodes.
    own: Vec<Node>,
}

impl SparkFramework {
    pub fn new(plan: SparkPlan) -> Self {
        SparkFramework {
            plan,
            children: Vec::new(),
            details: None,
            own: Vec::new(),
        }
    }

    fn env(&self, node: &Node, node_dir: &Path) -> Vec<(String, String)> {
        let p = &self.plan;
        let mut env = vec![
            ("SPARK_HOME".to_string(), p.spark_home.display().to_string()),
            ("SPARK_LOCAL_IP".into(), node.address.to_string()),
            (
                "SPARK_LOG_DIR".into(),
                node_dir.join("logs").display().to_string(),
            ),
            (
                "SPARK_WORKER_DIR".into(),
                node_dir.join("work").display().to_string(),
            ),
            (
                "SPARK_MASTER_OPTS".into(),
                "-Dspark.master.rest.enabled=false".into(),
            ),
            ("PYSPARK_PYTHON".into(), p.env.python.display().to_string()),
            (
                "PYSPARK_DRIVER_PYTHON".into(),
                p.env.python.display().to_string(),
            ),
        ];
        if let Some(j) = &p.java_home {
            env.push(("JAVA_HOME".into(), j.display().to_string()));
        }
        env
    }

    fn launch(
        &mut self,
        backend: &mut dyn ResourceBackend,
        node: &Node,
        node_dir: &Path,
        label: String,
        args: Vec<String>,
        log: &str,
    ) -> Result<()> {
        std::fs::create_dir_all(node_dir.join("work"))
            .map_err(|e| PilotError::io("creating node directory", node_dir, e))?;
        let spec = LaunchSpec {
            label,
            program: self.plan.spark_home.join("bin/spark-class"),
            args,
            env: self.env(node, node_dir),
            cwd: node_dir.to_path_buf(),
            log: node_dir.join(log),
        };
        self.children.push(backend.launch(node, &spec)?);
        Ok(())
    }
}

impl Framework for SparkFramework {
    fn ports(&self) -> Vec<u16> {
        let p = &self.plan;
        vec![
            p.master_port,
            p.webui_port,
            p.worker_port,
            p.worker_webui_port,
        ]
    }

    fn start(
        &mut self,
        backend: &mut dyn ResourceBackend,
        alloc: &Allocation,
        ctx: &StartContext,
    ) -> Result<()> {
        let mut details = match ctx.parent {
            Some(FrameworkDetails::Spark(d)) => d.clone(),
            Some(other) => {
                return Err(PilotError::invalid(
                    "parent",
                    format!(
                        "a Spark pilot extends Spark pilots only; the parent runs {}",
                        other.kind().name()
                    ),
                ))
            }
            None => {
                let node = &alloc.nodes[0];
                SparkDetails {
                    master_url: format!("spark://{}:{}", node.address, self.plan.master_port),
                    webui_url: format!("http://{}:{}", node.address, self.plan.webui_port),
                    master_node: node.name.clone(),
                    master_pilot: ctx.pilot_id.to_string(),
                    workers: Vec::new(),
                    spark_home: self.plan.spark_home.clone(),
                    python: self.plan.env.python.clone(),
                    java_home: self.plan.java_home.clone(),
                    executor_memory: self.plan.executor_memory.clone(),
                }
            }
        };
        self.own = alloc.nodes.clone();
        if ctx.parent.is_none() {
            let node = alloc.nodes[0].clone();
            let dir = ctx.pilot_dir.join(&node.name);
            let args = vec![
                "org.apache.spark.deploy.master.Master".to_string(),
                "--host".into(),
                node.address.to_string(),
                "--port".into(),
                self.plan.master_port.to_string(),
                "--webui-port".into(),
                self.plan.webui_port.to_string(),
            ];
            self.launch(
                backend,
                &node,
                &dir,
                format!("spark master on {}", node.name),
                args,
                "spark-master.log",
            )?;
        }
        for node in alloc.nodes.clone() {
            let dir = ctx.pilot_dir.join(&node.name);
            let args = vec![
                "org.apache.spark.deploy.worker.Worker".to_string(),
                details.master_url.clone(),
                "--host".into(),
                node.address.to_string(),
                "--port".into(),
                self.plan.worker_port.to_string(),
                "--webui-port".into(),
                self.plan.worker_webui_port.to_string(),
                "--cores".into(),
                self.plan.worker_cores.to_string(),
                "--memory".into(),
                self.plan.worker_memory.clone(),
                "--work-dir".into(),
                dir.join("work").display().to_string(),
            ];
            self.launch(
                backend,
                &node,
                &dir,
                format!("spark worker on {}", node.name),
                args,
                "spark-worker.log",
            )?;
            details.workers.push(SparkWorker {
                node: node.name.clone(),
                address: node.address,
                pilot_id: ctx.pilot_id.to_string(),
                webui_url: format!("http://{}:{}", node.address, self.plan.worker_webui_port),
            });
        }
        self.details = Some(details);
        Ok(())
    }

    fn wait_ready(&mut self, timeout: Duration, interrupted: &dyn Fn() -> bool) -> Result<()> {
        let d = self.details.clone().expect("start before wait_ready");
        let url = format!("{}/json/", d.webui_url);
        let want: Vec<String> = self.own.iter().map(|n| n.address.to_string()).collect();
        wait_for_json(
            "Spark",
            &url,
            &mut self.children,
            timeout,
            Duration::from_millis(200),
            interrupted,
            &mut |v| {
                let status = v["status"].as_str().unwrap_or("?");
                let alive: Vec<&str> = v["workers"]
                    .as_array()
                    .map(|ws| {
                        ws.iter()
                            .filter(|w| w["state"].as_str() == Some("ALIVE"))
                            .filter_map(|w| w["host"].as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                let missing: Vec<&String> = want
                    .iter()
                    .filter(|a| !alive.contains(&a.as_str()))
                    .collect();
                if status == "ALIVE" && missing.is_empty() {
                    return Ok(());
                }
                Err(format!(
                    "master {status}, {} alive worker(s); none yet on {missing:?}",
                    v["aliveworkers"]
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
        FrameworkDetails::Spark(self.details.clone().expect("start before details"))
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

/// `spark-submit` of `app` (a Python file or jar and its arguments) to the cluster, in client mode from `node`:
/// the driver binds to the node's address, executors get the pilot's executor memory and Python.
pub fn submit_spec(
    d: &SparkDetails,
    node: &Node,
    app: &[String],
    dir: &Path,
    log: PathBuf,
) -> LaunchSpec {
    let addr = node.address.to_string();
    let mut args = vec![
        "--master".to_string(),
        d.master_url.clone(),
        "--conf".into(),
        format!("spark.driver.host={addr}"),
        "--conf".into(),
        format!("spark.driver.bindAddress={addr}"),
        "--conf".into(),
        "spark.ui.enabled=false".into(),
        "--executor-memory".into(),
        d.executor_memory.clone(),
    ];
    args.extend(app.iter().cloned());
    let mut env = vec![
        ("SPARK_HOME".to_string(), d.spark_home.display().to_string()),
        ("SPARK_LOCAL_IP".into(), addr),
        ("PYSPARK_PYTHON".into(), d.python.display().to_string()),
        (
            "PYSPARK_DRIVER_PYTHON".into(),
            d.python.display().to_string(),
        ),
    ];
    if let Some(j) = &d.java_home {
        env.push(("JAVA_HOME".into(), j.display().to_string()));
    }
    LaunchSpec {
        label: format!("spark-submit on {}", node.name),
        program: d.spark_home.join("bin/spark-submit"),
        args,
        env,
        cwd: dir.to_path_buf(),
        log,
    }
}
