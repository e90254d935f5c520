//! What a person reads: a pilot's details and the table of pilots.

use std::io::Write;

use super::output::io_out;
use crate::error::Result;
use crate::pilots::api::PilotService;
use crate::pilots::framework::details::{FrameworkDetails, KafkaDetails};
use crate::pilots::record::{PilotDetails, PilotRecord};

/// Print a record's details for a person (or JSON).
pub fn print_details(r: &PilotRecord, json: bool, out: &mut dyn Write) -> Result<()> {
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(r).expect("records serialise")
        )
        .map_err(io_out)?;
        return Ok(());
    }
    let mut s = format!("pilot {}: {}", r.id, r.state);
    if let Some(reason) = &r.reason {
        s.push_str(&format!(" ({reason})"));
    }
    s.push('\n');
    if let Some(d) = &r.details {
        s.push_str(&details_text(d));
    }
    write!(out, "{s}").map_err(io_out)
}

fn details_text(d: &PilotDetails) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "  framework:         {}\n",
        d.framework.kind().name()
    ));
    s.push_str(&framework_text(&d.framework));
    if let Some(k) = d.kafka() {
        s.push_str(&format!("  bootstrap servers: {}\n", k.bootstrap()));
        s.push_str(&format!("  distribution:      {}\n", k.distribution));
        if let Some(b) = &d.broker_pilot {
            s.push_str(&format!("  broker pilot:      {b}\n"));
        }
    }
    s.push_str(&format!(
        "  resource:          {} (job {})\n",
        d.resource, d.job_id
    ));
    if let Some(p) = &d.parent {
        s.push_str(&format!("  extends:           {p}\n"));
    }
    if let Some(t) = d.startup_s {
        s.push_str(&format!("  startup:           {t:.3} s\n"));
    }
    s.push_str("  nodes:\n");
    for n in &d.nodes {
        s.push_str(&format!(
            "    {:<24} {:<15} {:<9} {}\n",
            n.name,
            n.address.to_string(),
            n.role.name(),
            n.pilot_id
        ));
    }
    if let Some(k) = d.kafka() {
        s.push_str(&client_text(k));
    }
    for l in &d.logs {
        s.push_str(&format!("  log:               {}\n", l.display()));
    }
    s.push_str(&format!("  directory:         {}\n", d.directory.display()));
    s
}

/// The lines only a framework has: Spark's master and workers, Dask's scheduler, Flink's JobManager.
fn framework_text(f: &FrameworkDetails) -> String {
    let mut s = String::new();
    match f {
        FrameworkDetails::Spark(sp) => {
            s.push_str(&format!("  master:            {}\n", sp.master_url));
            s.push_str(&format!("  web UI:            {}\n", sp.webui_url));
            s.push_str(&format!(
                "  workers:           {}\n",
                sp.workers
                    .iter()
                    .map(|w| format!("{} ({})", w.node, w.webui_url))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        FrameworkDetails::Dask(dk) => {
            s.push_str(&format!("  scheduler:         {}\n", dk.scheduler_address));
            s.push_str(&format!("  dashboard:         {}\n", dk.dashboard_url));
            s.push_str(&format!(
                "  scheduler file:    {}\n",
                dk.scheduler_file.display()
            ));
            s.push_str(&format!(
                "  workers:           {}\n",
                dk.nodes
                    .iter()
                    .map(|n| format!("{} x{} ({} threads)", n.node, n.workers, n.threads))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        FrameworkDetails::Flink(f) => {
            s.push_str(&format!("  jobmanager:        {}\n", f.jobmanager_address));
            s.push_str(&format!("  REST / web UI:     {}\n", f.rest_url));
            s.push_str(&format!(
                "  taskmanagers:      {}\n",
                f.taskmanagers
                    .iter()
                    .map(|t| format!("{} ({} slots)", t.node, t.slots))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        _ => {}
    }
    s
}

/// A Kafka cluster's partitions and recommended client properties.
fn client_text(k: &KafkaDetails) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "  topic partitions:  {} by default ({} per broker node)\n",
        k.default_partitions(),
        k.partitions_per_node
    ));
    let props = |m: &std::collections::BTreeMap<String, String>| {
        if m.is_empty() {
            return "(librdkafka defaults)".to_string();
        }
        m.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    s.push_str(&format!(
        "  client (all):      {}\n",
        props(&k.client.common)
    ));
    s.push_str(&format!(
        "  client (producer): {}\n",
        props(&k.client.producer)
    ));
    s.push_str(&format!(
        "  client (consumer): {}\n",
        props(&k.client.consumer)
    ));
    s
}

/// `pilot status`: one pilot's details, or every pilot of the working directory as a table.
pub fn status(
    pilots: &PilotService,
    id: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    if let Some(id) = id {
        return print_details(&pilots.get(id)?.record()?, json, out);
    }
    let all = pilots.list()?;
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&all).expect("records serialise")
        )
        .map_err(io_out)?;
        return Ok(());
    }
    if all.is_empty() {
        writeln!(out, "no pilots under {}", pilots.workdir().display()).map_err(io_out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<28} {:<9} {:<9} {:>5}  {:<28} PARENT",
        "ID", "STATE", "FRAMEWORK", "NODES", "CONNECT"
    )
    .map_err(io_out)?;
    for r in all {
        let connect = r
            .details
            .as_ref()
            .map(|d| match &d.framework {
                FrameworkDetails::Spark(s) => s.master_url.clone(),
                FrameworkDetails::Dask(k) => k.scheduler_address.clone(),
                FrameworkDetails::Flink(f) => f.rest_url.clone(),
                _ => d.kafka().map(|k| k.bootstrap()).unwrap_or_default(),
            })
            .unwrap_or_default();
        writeln!(
            out,
            "{:<28} {:<9} {:<9} {:>5}  {:<28} {}",
            r.id,
            r.state.to_string(),
            r.plan.framework.kind().name(),
            r.plan.nodes,
            connect,
            r.plan.parent.clone().unwrap_or_default()
        )
        .map_err(io_out)?;
    }
    Ok(())
}
