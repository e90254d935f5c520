//! The library entry point for pilots (`pilot_core::pilots::api`), driven as a program (or the Python binding)
//! drives it: describe, submit, wait, details, connection, topics, tasks, cancel; and its errors.

mod common;

use std::time::Duration;

use pilot_core::pilots::api::PilotService;
use pilot_core::pilots::description::{RawDescription, RawKafka};
use pilot_core::pilots::lifecycle::Stopped;
use pilot_core::pilots::tasks::NodeSelection;
use pilot_core::PilotState;

fn service(dir: &std::path::Path) -> PilotService {
    PilotService::new(dir).with_agent(env!("CARGO_BIN_EXE_pilot"))
}

/// Cancels the pilot even when an assertion fails first.
struct CancelOnDrop<'a>(&'a PilotService, String);
impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Ok(p) = self.0.get(&self.1) {
            let _ = p.cancel(Duration::from_secs(30));
        }
    }
}

#[test]
fn a_pilot_submitted_through_the_library_runs_serves_tasks_and_cancels_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let pilots = service(dir.path());
    let plan = pilots
        .plan(
            RawDescription {
                kafka: Some(RawKafka {
                    ready_timeout_s: Some(30),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "test",
        )
        .unwrap();
    assert_eq!(
        plan.working_directory,
        dir.path(),
        "the service's directory"
    );
    let p = pilots.submit(plan).unwrap();
    let _cancel = CancelOnDrop(&pilots, p.id().to_string());
    let details = p.wait(None, &|| false).unwrap();
    assert_eq!(p.state().unwrap(), PilotState::Running);
    assert_eq!(details.id, p.id());

    // Another handle on the same pilot (a second program) sees the same brokers.
    let again = pilots.get(p.id()).unwrap();
    let conn = again.connection().unwrap();
    assert_eq!(conn.bootstrap, details.kafka().unwrap().bootstrap());
    let admin = again.admin(Duration::from_secs(10)).unwrap();
    admin.create_topic("api-topic", 3, 1).unwrap();
    assert_eq!(
        admin.describe_topic("api-topic").unwrap().partitions.len(),
        3
    );
    assert_eq!(pilots.list().unwrap().len(), 1);

    // Tasks on its nodes, told who they are.
    let cmd: Vec<String> = ["/bin/sh", "-c", "echo $PILOT_PROCESS_INDEX {bootstrap}"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let tasks = again
        .run_tasks(
            NodeSelection::Own,
            2,
            &cmd,
            Duration::from_secs(30),
            &|| false,
        )
        .unwrap();
    assert_eq!(tasks.len(), 2);
    for t in &tasks {
        assert!(t.success(), "{t:?}");
        let out = std::fs::read_to_string(&t.log).unwrap();
        assert_eq!(
            out.trim(),
            format!("{} {}", t.process_index, conn.bootstrap)
        );
    }

    let stopped = p.cancel(Duration::from_secs(30)).unwrap();
    assert!(
        matches!(stopped.as_slice(), [(id, Stopped::Ended { state: PilotState::Canceled, .. })] if id == p.id()),
        "{stopped:?}"
    );
    assert!(p.details().is_err(), "a canceled pilot has no live details");
    let pid = details.kafka().unwrap().brokers[0]
        .process
        .as_ref()
        .unwrap()
        .pid;
    assert!(common::wait_gone(pid), "broker {pid} outlived its pilot");
}

#[test]
fn bad_descriptions_and_unknown_pilots_are_errors_that_say_which() {
    let dir = tempfile::tempdir().unwrap();
    let pilots = service(dir.path());
    let e = pilots
        .plan(
            RawDescription {
                nodes: Some(0),
                ..Default::default()
            },
            "notebook",
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("notebook") && e.contains("nodes"), "{e}");
    let e = pilots.get("pilot-nope").unwrap_err().to_string();
    assert!(e.contains("pilot-nope"), "{e}");
    let e = pilots.extend("pilot-nope", 1).unwrap_err().to_string();
    assert!(e.contains("pilot-nope"), "{e}");
    assert!(pilots.list().unwrap().is_empty());
}

#[test]
fn a_pilot_that_cannot_start_fails_its_wait_with_the_reason_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pilots = service(dir.path());
    let plan = pilots
        .plan(
            RawDescription {
                kafka: Some(RawKafka {
                    binary: Some("/bin/false".into()),
                    ready_timeout_s: Some(10),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "test",
        )
        .unwrap();
    let e = pilots.create(plan, &|| false).unwrap_err().to_string();
    assert!(
        e.to_lowercase().contains("exited") || e.contains("Failed"),
        "{e}"
    );
    let all = pilots.list().unwrap();
    assert_eq!(all.len(), 1);
    assert!(all[0].state.is_terminal(), "{:?}", all[0].state);
}
