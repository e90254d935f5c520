//! `pilot fault`: a fault injected into a running Kafka pilot's brokers ([`crate::ops::fault`] plays it).

use std::io::Write;
use std::sync::atomic::Ordering;

use super::output::io_out;
use crate::error::{PilotError, Result};
use crate::ops::fault::{Fault, FaultAction, RawFault, Registry, Role};
use crate::pilots::api::PilotService;

#[derive(Debug, clap::Args)]
pub struct FaultArgs {
    /// Id of the running Kafka pilot
    pub id: String,
    /// What to do
    #[arg(long, value_enum)]
    pub action: crate::ops::fault::FaultAction,
    /// The broker to hit: broker or broker:I (I counts this pilot's brokers from 0)
    #[arg(long, default_value = "broker:0")]
    pub target: String,
    /// Seconds to wait before the fault
    #[arg(long, default_value_t = 0.0)]
    pub after_s: f64,
    /// stop: seconds until the broker is continued
    #[arg(long)]
    pub for_s: Option<f64>,
    /// node-down / node-drain: the reason SLURM records [default: pilot-streaming fault injection]
    #[arg(long)]
    pub reason: Option<String>,
    /// Validate and print the plan; hit nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// The fault `a` asks for, checked against the pilot (its resource, its brokers), and where its targets run.
fn checked(pilots: &PilotService, a: &FaultArgs) -> Result<(Fault, Registry)> {
    if matches!(a.action, FaultAction::Slow | FaultAction::Rejoin) {
        return Err(PilotError::invalid(
            "command line",
            format!(
                "pilot fault hits a pilot's brokers (kill, stop, cancel, node-down, node-drain, scancel), not `{}`: consumers are slowed by an experiment's `[[faults]]`",
                a.action.as_str()
            ),
        ));
    }
    let f = RawFault {
        at_s: Some(a.after_s),
        action: Some(a.action),
        target: Some(a.target.clone()),
        for_s: a.for_s,
        cost_ms_per_message: None,
        reason: a.reason.clone(),
    }
    .validate()
    .map_err(|e| {
        let flag = match e.key.as_deref() {
            Some("at_s") => "--after-s".to_string(),
            Some(k) => format!("--{}", k.replace('_', "-")),
            None => "pilot fault".to_string(),
        };
        PilotError::invalid("command line", format!("{flag}: {}", e.message))
    })?;
    if f.target.role != Role::Broker || matches!(f.action, FaultAction::Slow | FaultAction::Rejoin)
    {
        return Err(PilotError::invalid(
            "command line",
            format!(
                "pilot fault hits a pilot's brokers (kill, stop, cancel, node-down, node-drain, scancel), not `{} {}`: producers and consumers are an experiment's `[[faults]]`",
                f.action.as_str(),
                f.target
            ),
        ));
    }
    let pilot = pilots.get(&a.id)?;
    pilot.details()?;
    let record = pilot.record()?;
    if f.action.needs_slurm()
        && matches!(
            record.plan.resource,
            crate::pilots::description::ResourceUrl::Local
        )
    {
        return Err(PilotError::invalid(
            "command line",
            format!(
                "{} needs a SLURM pilot; {} runs on {}",
                f.action.as_str(),
                a.id,
                record.plan.resource
            ),
        ));
    }
    let registry = Registry::default();
    registry.place_brokers(&record);
    let brokers = registry.all().len();
    if brokers == 0 {
        return Err(PilotError::invalid(
            "command line",
            format!("pilot {} runs no brokers of its own to hit", a.id),
        ));
    }
    if f.target.index as usize >= brokers {
        return Err(PilotError::invalid(
            "command line",
            format!(
                "--target {}: pilot {} runs {brokers} broker(s), broker:0 to broker:{}",
                f.target,
                a.id,
                brokers - 1
            ),
        ));
    }
    Ok((f, registry))
}

/// `pilot fault`: check the fault against the pilot, then play it, a line per step.
pub fn fault(pilots: &PilotService, a: FaultArgs, out: &mut dyn Write) -> Result<()> {
    let (f, registry) = checked(pilots, &a)?;
    let node = registry.get(&f.target).map(|p| p.node).unwrap_or_default();
    writeln!(out, "fault on pilot {}: {} ({node})", a.id, f.describe()).map_err(io_out)?;
    if a.dry_run {
        writeln!(out, "dry run: nothing hit").map_err(io_out)?;
        return Ok(());
    }
    let flag = crate::contract::signals::shutdown_flag()?;
    let clock = crate::contract::clock::SystemClock::new();
    let start = crate::contract::clock::Clock::now_ns(&clock);
    let mut targets = registry;
    let mut failed = Vec::new();
    let mut write_err = None;
    crate::ops::fault::run_schedule(
        std::slice::from_ref(&f),
        &clock,
        start,
        &mut targets,
        &|| flag.load(Ordering::Relaxed),
        &mut |e| {
            if e.outcome != "applied" {
                failed.push(e.summary());
            }
            if let Err(err) = writeln!(out, "{:>7.1} s  {}", e.t_s, e.summary()) {
                write_err.get_or_insert(err);
            }
        },
    );
    if let Some(e) = write_err {
        return Err(io_out(e));
    }
    if !failed.is_empty() {
        return Err(PilotError::WrongState {
            id: a.id,
            state: "Running".into(),
            message: failed.join("; "),
        });
    }
    Ok(())
}
