//! `pilot smoke`: a quick end-to-end check of a Kafka pilot, told step by step ([`crate::ops::smoke`] does the
//! producing and consuming).

use std::io::Write;
use std::sync::atomic::Ordering;

use super::output::io_out;
use crate::error::{PilotError, Result};
use crate::pilots::pilot::{backend_for, Pilot};

/// `pilot smoke`: start a Kafka pilot here, push messages through a topic and back in a consumer group, cancel
/// it, print a summary; an error unless every message arrived exactly once.
pub fn smoke(
    plan: crate::pilots::description::PilotPlan,
    messages: u64,
    message_bytes: usize,
    out: &mut dyn Write,
) -> Result<()> {
    let Some(kplan) = plan.kafka().cloned() else {
        return Err(PilotError::invalid(
            "command line",
            "pilot smoke checks a Kafka pilot (framework = kafka)",
        ));
    };
    let flag = crate::contract::signals::shutdown_flag()?;
    let stop = || flag.load(Ordering::Relaxed);
    let mut pilot = Pilot::submit(plan.clone(), backend_for(&plan.resource))?;
    writeln!(
        out,
        "[1/4] starting pilot {} ({} on {}) ...",
        pilot.id(),
        kplan.distribution.name(),
        plan.resource
    )
    .map_err(io_out)?;
    pilot.start(&stop)?;
    let details = pilot.details().expect("running pilot has details").clone();
    let k = details.kafka().expect("a Kafka pilot").clone();
    writeln!(
        out,
        "      broker ready at {} after {:.3} s",
        k.bootstrap(),
        details.startup_s.unwrap_or(0.0)
    )
    .map_err(io_out)?;
    let topic = format!("smoke-{}", pilot.id());
    writeln!(
        out,
        "[2/4] topic {topic}: {} partitions; producing {messages} x {message_bytes} B ...",
        k.default_partitions()
    )
    .map_err(io_out)?;
    out.flush().map_err(io_out)?;
    let report = crate::ops::smoke::run(&k, &topic, messages, message_bytes);
    writeln!(
        out,
        "[3/4] consumed in a consumer group; canceling the pilot ..."
    )
    .map_err(io_out)?;
    pilot.cancel();
    let dir = pilot.directory();
    let report = report?;
    writeln!(out, "[4/4] pilot {} {}", pilot.id(), pilot.state()).map_err(io_out)?;
    let mb = (report.messages as f64 * report.message_bytes as f64) / 1e6;
    writeln!(out, "\nsummary").map_err(io_out)?;
    writeln!(
        out,
        "  startup (submit -> ready):  {:.3} s",
        details.startup_s.unwrap_or(0.0)
    )
    .map_err(io_out)?;
    writeln!(
        out,
        "  produced:   {} msgs in {:.3} s = {:.0} msg/s, {:.1} MB/s (acks=all)",
        report.messages,
        report.produce_s,
        report.messages as f64 / report.produce_s,
        mb / report.produce_s
    )
    .map_err(io_out)?;
    writeln!(
        out,
        "  consumed:   {} msgs in {:.3} s incl. group join = {:.0} msg/s",
        report.received_once,
        report.consume_s,
        report.received_once as f64 / report.consume_s
    )
    .map_err(io_out)?;
    writeln!(
        out,
        "  accounting: {} exactly once, {} duplicates, {} missing, {} foreign",
        report.received_once, report.duplicates, report.missing, report.foreign
    )
    .map_err(io_out)?;
    writeln!(out, "  logs:       {}", dir.display()).map_err(io_out)?;
    if !report.exactly_once() {
        return Err(PilotError::Kafka {
            operation: "smoke".into(),
            bootstrap: k.bootstrap(),
            message: format!("not every message arrived exactly once: {report:?}"),
        });
    }
    Ok(())
}
