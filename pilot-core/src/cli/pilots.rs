//! The commands on pilots themselves: start (detached or in the foreground), stop, exec and topics, each a call
//! into [`crate::pilots::api`] and a few lines of output.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Subcommand;

use super::output::io_out;
use super::show::print_details;
use crate::error::{PilotError, Result};
use crate::pilots::api::PilotService;
use crate::pilots::description::PilotPlan;
use crate::pilots::lifecycle::{self, Stopped};
use crate::pilots::tasks::NodeSelection;

/// `pilot start` and `pilot extend`: print the plan (dry run), hand it to a detached agent and wait until it
/// runs, or run it here until Ctrl-C (foreground).
pub fn start(
    pilots: &PilotService,
    plan: PilotPlan,
    foreground: bool,
    dry_run: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    if dry_run {
        write!(out, "dry run: this pilot would start\n{}", plan.describe()).map_err(io_out)?;
        return Ok(());
    }
    if !foreground {
        let p = pilots.create(plan, &|| false)?;
        return print_details(&p.record()?, json, out);
    }
    let flag = crate::contract::signals::shutdown_flag()?;
    let stop = || flag.load(Ordering::Relaxed);
    writeln!(out, "starting the pilot in the foreground ...").map_err(io_out)?;
    let end = lifecycle::run_in_foreground(plan, &stop, &mut |r| {
        print_details(r, json, out)?;
        writeln!(out, "running in the foreground; Ctrl-C cancels the pilot").map_err(io_out)?;
        out.flush().map_err(io_out)
    })?;
    writeln!(
        out,
        "pilot {} {}: {}",
        end.id,
        end.state,
        end.reason.clone().unwrap_or_default()
    )
    .map_err(io_out)
}

/// `pilot stop`: one line per pilot stopped (the pilots extending it first).
pub fn stop(pilots: &PilotService, id: &str, timeout: Duration, out: &mut dyn Write) -> Result<()> {
    for (id, how) in pilots.get(id)?.cancel(timeout)? {
        let line = match how {
            Stopped::AlreadyEnded(s) => format!("pilot {id} is already {s}"),
            Stopped::NeverStarted => format!("pilot {id} Canceled (it never started)"),
            Stopped::Ended { state, reason } if reason.is_empty() => {
                format!("pilot {id} {state}")
            }
            Stopped::Ended { state, reason } => format!("pilot {id} {state} ({reason})"),
            Stopped::Killed => format!("pilot {id} Canceled (manager killed)"),
        };
        writeln!(out, "{line}").map_err(io_out)?;
    }
    Ok(())
}

/// What `pilot exec` runs.
pub struct Exec<'a> {
    pub id: &'a str,
    pub processes_per_node: usize,
    pub nodes: NodeSelection,
    pub spark_submit: bool,
    pub timeout: Duration,
    pub command: &'a [String],
}

/// `pilot exec`: the tasks (or one `spark-submit`), a line per task, an error when any failed.
pub fn exec(pilots: &PilotService, e: Exec, out: &mut dyn Write) -> Result<()> {
    if e.processes_per_node == 0 {
        return Err(PilotError::invalid(
            "command line",
            "--processes-per-node must be at least 1",
        ));
    }
    let pilot = pilots.get(e.id)?;
    let flag = crate::contract::signals::shutdown_flag()?;
    let stop = || flag.load(Ordering::Relaxed);
    let results = if e.spark_submit {
        vec![pilot.spark_submit(e.command, e.timeout, &stop)?]
    } else {
        pilot.run_tasks(e.nodes, e.processes_per_node, e.command, e.timeout, &stop)?
    };
    for t in &results {
        let status = t
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "timed out or stopped".into());
        writeln!(
            out,
            "task {:>3} on {:<24} {:<22} {}",
            t.process_index,
            t.node,
            status,
            t.log.display()
        )
        .map_err(io_out)?;
    }
    let failed = results.iter().filter(|t| !t.success()).count();
    if failed > 0 {
        return Err(PilotError::WrongState {
            id: e.id.to_string(),
            state: "Running".into(),
            message: format!(
                "{failed} of {} tasks failed (see their logs)",
                results.len()
            ),
        });
    }
    Ok(())
}

/// `pilot topic`: create, delete or describe a topic on a pilot's brokers (or its broker pilot's).
pub fn topic(pilots: &PilotService, action: TopicAction, out: &mut dyn Write) -> Result<()> {
    let timeout = Duration::from_secs(10);
    match action {
        TopicAction::Create {
            id,
            name,
            partitions,
            replication,
        } => {
            let k = pilots.get(&id)?.kafka()?;
            let n = partitions.unwrap_or_else(|| k.default_partitions());
            k.admin(timeout).create_topic(&name, n, replication)?;
            writeln!(
                out,
                "created topic {name} with {n} partitions on {}",
                k.bootstrap()
            )
            .map_err(io_out)
        }
        TopicAction::Delete { id, name } => {
            pilots.get(&id)?.admin(timeout)?.delete_topic(&name)?;
            writeln!(out, "deleted topic {name}").map_err(io_out)
        }
        TopicAction::Describe { id, name } => {
            let t = pilots.get(&id)?.admin(timeout)?.describe_topic(&name)?;
            writeln!(out, "topic {} ({} partitions)", t.name, t.partitions.len())
                .map_err(io_out)?;
            for p in t.partitions {
                writeln!(
                    out,
                    "  partition {:>3}  leader {:>4}  replicas {:?}",
                    p.id, p.leader, p.replicas
                )
                .map_err(io_out)?;
            }
            Ok(())
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TopicAction {
    /// Create a topic (default partitions: partitions per node x broker nodes)
    Create {
        id: String,
        name: String,
        #[arg(long)]
        partitions: Option<u32>,
        #[arg(long, default_value_t = 1)]
        replication: u32,
    },
    /// Delete a topic
    Delete { id: String, name: String },
    /// Print a topic's partitions and leaders
    Describe { id: String, name: String },
}
