//! `pilot autoscale`: a consumer group kept sized to its input by [`crate::ops::autoscale`]'s controller.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::output::io_out;
use crate::contract::client::Connection;
use crate::contract::config::Settings;
use crate::error::{PilotError, Result};
use crate::ops::autoscale::{AutoscalePlan, Controller, KafkaReportSource, PilotActuator};
use crate::pilots::api::PilotService;
use crate::pilots::record::PilotRecord;

#[derive(Debug, clap::Args)]
pub struct AutoscaleArgs {
    /// Id of the running Kafka pilot
    #[arg(long)]
    pilot: String,
    /// Topic the group consumes
    #[arg(long)]
    topic: String,
    /// The consumer group
    #[arg(long)]
    group: String,
    /// Topic the consumers report to
    #[arg(long)]
    metrics_topic: String,
    /// Resource URL of the processing pilots [default: the Kafka pilot's]
    #[arg(long)]
    resource: Option<String>,
    #[command(flatten)]
    settings: crate::ops::autoscale::AutoscaleSettings,
    /// Write one CSV row per decision here
    #[arg(long)]
    decisions: Option<PathBuf>,
    /// Stop after this many seconds [default: until Ctrl-C or SIGTERM]
    #[arg(long)]
    duration_s: Option<f64>,
    /// Validate and print the plan; start nothing
    #[arg(long)]
    dry_run: bool,
    /// The consumer command, after `--`
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// What `pilot autoscale` runs, checked: the policy, the Kafka pilot's connection and record, the processing
/// pilots' resource and walltime, and the consumer command with the group's names filled in.
struct Job {
    plan: AutoscalePlan,
    conn: Connection,
    record: PilotRecord,
    resource: String,
    command: Vec<String>,
    walltime_min: u32,
}

/// Check the flags and the pilot; print the tansu caveat and, for a dry run, the plan (then None).
fn job(pilots: &PilotService, a: &AutoscaleArgs, out: &mut dyn Write) -> Result<Option<Job>> {
    let plan = a
        .settings
        .validate("command line")
        .map_err(|e| PilotError::invalid("command line", e.to_string()))?;
    for (flag, name) in [("--topic", &a.topic), ("--metrics-topic", &a.metrics_topic)] {
        crate::contract::config::check_topic(name)
            .map_err(|e| PilotError::invalid("command line", format!("{flag}: {}", e.message)))?;
    }
    if a.topic == a.metrics_topic {
        return Err(PilotError::invalid(
            "command line",
            "--metrics-topic must differ from --topic",
        ));
    }
    if let Some(d) = a.duration_s {
        if !(d.is_finite() && d > 0.0 && d <= 1e9) {
            return Err(PilotError::invalid(
                "command line",
                format!("--duration-s must be positive seconds (got {d})"),
            ));
        }
    }
    let pilot = pilots.get(&a.pilot)?;
    let details = pilot.details()?;
    let record = pilot.record()?;
    let conn = details.kafka().map(|k| k.connection()).ok_or_else(|| {
        PilotError::invalid(
            "command line",
            format!("pilot {} runs no Kafka brokers", a.pilot),
        )
    })?;
    let resource = a
        .resource
        .clone()
        .unwrap_or_else(|| record.plan.resource.to_string());
    let command: Vec<String> = a
        .command
        .iter()
        .map(|c| {
            c.replace("{topic}", &a.topic)
                .replace("{group}", &a.group)
                .replace("{metrics_topic}", &a.metrics_topic)
        })
        .collect();
    let walltime_min = a
        .duration_s
        .map(|d| (d / 60.0).ceil() as u32 + 5)
        .unwrap_or(record.plan.walltime_min);
    if details.kafka().is_some_and(|k| !k.serves_whole_batches()) {
        // See README "Elastic processing": the consumers that take over a partition start at its committed offset.
        writeln!(
            out,
            "note: this tansu build serves a fetch from inside a record batch from the next batch on, so a consumer that takes over a partition mid-batch skips the batch's rest; produce one message per batch (mass run --kafka batch.num.messages=1), or use the default build (scripts/setup.sh)"
        )
        .map_err(io_out)?;
    }
    if a.dry_run {
        writeln!(
            out,
            "dry run: would keep group {} on {} (pilot {}) sized from reports on {}\npolicy: {}\nprocessing pilots: 1 node each on {resource}, running: {}",
            a.group,
            a.topic,
            a.pilot,
            a.metrics_topic,
            plan.describe(),
            command.join(" ")
        )
        .map_err(io_out)?;
        return Ok(None);
    }
    Ok(Some(Job {
        plan,
        conn,
        record,
        resource,
        command,
        walltime_min,
    }))
}

/// `pilot autoscale`: run the controller until Ctrl-C, SIGTERM or `--duration-s`, a line (and a CSV row) per
/// decision; every consumer is stopped gracefully at the end.
pub fn autoscale(pilots: &PilotService, a: AutoscaleArgs, out: &mut dyn Write) -> Result<()> {
    let Some(Job {
        plan,
        conn,
        record,
        resource,
        command,
        walltime_min,
    }) = job(pilots, &a, out)?
    else {
        return Ok(());
    };
    let partitions = crate::contract::admin::KafkaAdmin::new(
        &conn.bootstrap,
        &conn.client,
        Duration::from_secs(10),
    )
    .describe_topic(&a.topic)?
    .partitions
    .len() as u32;
    let mut source = KafkaReportSource::new(&conn, &a.metrics_topic, &a.topic, partitions)?;
    let mut actuator = PilotActuator::new(
        &resource,
        record.plan.working_directory.clone(),
        &a.pilot,
        walltime_min,
        command,
    )?;
    let mut controller = Controller::new(&plan, &a.group, partitions);
    let mut csv = match &a.decisions {
        Some(p) => Some(
            crate::contract::metrics::CsvWriter::create(p)
                .map_err(|e| PilotError::invalid("command line", e.to_string()))?,
        ),
        None => None,
    };
    let flag = crate::contract::signals::shutdown_flag()?;
    let t0 = std::time::Instant::now();
    let stop = || {
        flag.load(Ordering::Relaxed)
            || a.duration_s
                .is_some_and(|d| t0.elapsed().as_secs_f64() >= d)
    };
    writeln!(
        out,
        "autoscaling group {} on {} ({partitions} partitions): {}",
        a.group,
        a.topic,
        plan.describe()
    )
    .map_err(io_out)?;
    let mut write_err = None;
    crate::ops::autoscale::run(
        &mut controller,
        &mut source,
        &mut actuator,
        &crate::contract::clock::SystemClock::new(),
        &stop,
        &mut |row| {
            let _ = writeln!(
                out,
                "[{:>7.1} s] in {:>8.1} msg/s lag {:>8.0} true rate {:>7.1} msg/s need {:>5.2}: {} -> {} ({:?}) {}{}",
                row.t_s,
                row.input_msgs_per_s,
                row.lag_msgs,
                row.true_rate_msgs_per_s,
                row.need_consumers,
                row.consumers_before,
                row.consumers_after,
                row.action,
                row.reason,
                if row.events.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", row.events)
                }
            );
            if let Some(w) = csv.as_mut() {
                if let Err(e) = w.write(row) {
                    write_err.get_or_insert(e.to_string());
                }
            }
        },
    )?;
    if let Some(e) = write_err {
        return Err(PilotError::invalid("decisions file", e));
    }
    if !source.reader.malformed.is_empty() {
        writeln!(
            out,
            "{} messages on {} were not reports (first: {})",
            source.reader.malformed_total, a.metrics_topic, source.reader.malformed[0]
        )
        .map_err(io_out)?;
    }
    writeln!(out, "every consumer stopped").map_err(io_out)?;
    Ok(())
}
