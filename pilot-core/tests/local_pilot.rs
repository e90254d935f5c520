//! Local pilots against a real tansu broker: lifecycle, messages through a consumer group, extension, cleanup.

mod common;

use std::time::Duration;

use common::{pids_with, tansu_plan, wait_gone};
use pilot_core::ops::smoke;
use pilot_core::pilots::framework::details::NodeRole;
use pilot_core::pilots::pilot::Pilot;
use pilot_core::pilots::record::PilotState;

fn never() -> bool {
    false
}

#[test]
fn tansu_pilot_carries_1000_messages_exactly_once_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut pilot = Pilot::create(tansu_plan(dir.path(), 1), &never).unwrap();
    assert_eq!(pilot.state(), PilotState::Running);
    let details = pilot.details().unwrap().clone();
    let k = details.framework.kafka().unwrap();
    assert_eq!(k.bootstrap_servers.len(), 1);
    let addr = details.nodes[0].address;
    assert!(
        addr.is_loopback() && addr.to_string() != "127.0.0.1",
        "{addr}"
    );
    assert_eq!(k.bootstrap_servers[0], format!("{addr}:9092"));
    assert!(details.startup_s.unwrap() > 0.0);

    let topic = format!("t-{}", pilot.id());
    let admin = k.admin(Duration::from_secs(10));
    admin
        .create_topic(&topic, k.default_partitions(), 1)
        .unwrap();
    assert_eq!(admin.describe_topic(&topic).unwrap().partitions.len(), 12);
    smoke::produce_sequence(k, &topic, 1000, 100).unwrap();
    let (once, dups, missing, foreign, _) = smoke::consume_sequence(
        k,
        &topic,
        &format!("{topic}-g"),
        1000,
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!((once, dups, missing, foreign), (1000, 0, 0, 0));
    admin.delete_topic(&topic).unwrap();

    let broker_pids = pids_with(&format!("tcp://{addr}:9092"));
    assert_eq!(broker_pids.len(), 1, "one tansu on {addr}");
    pilot.cancel();
    assert_eq!(pilot.state(), PilotState::Canceled);
    assert!(
        wait_gone(broker_pids[0]),
        "tansu {} outlived its pilot",
        broker_pids[0]
    );
}

#[test]
fn creators_racing_for_one_topic_all_go_on_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let pilot = Pilot::create(tansu_plan(dir.path(), 1), &never).unwrap();
    let k = pilot.details().unwrap().framework.kafka().unwrap().clone();
    let topic = format!("race-{}", pilot.id());
    // Eight clients create the same missing topic at once (producers started together with create-if-missing).
    let counts: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (k, topic) = (&k, &topic);
                s.spawn(move || k.admin(Duration::from_secs(10)).ensure_topic(topic, 4, 1))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for c in &counts {
        assert_eq!(c.as_ref().ok(), Some(&4), "{counts:?}");
    }
    let admin = k.admin(Duration::from_secs(10));
    // An existing topic keeps its partitions; creating it outright is still an error naming it.
    assert_eq!(admin.ensure_topic(&topic, 12, 1).unwrap(), 4);
    let e = admin.create_topic(&topic, 4, 1).unwrap_err().to_string();
    assert!(e.contains(&topic) && e.contains("exists"), "{e}");
}

#[test]
fn extending_pilot_lists_both_nodes_and_shrinks_back() {
    let dir = tempfile::tempdir().unwrap();
    let parent = Pilot::create(tansu_plan(dir.path(), 1), &never).unwrap();
    let mut plan = tansu_plan(dir.path(), 1);
    plan.parent = Some(parent.id().to_string());
    let mut child = Pilot::create(plan, &never).unwrap();
    let pd = parent.details().unwrap();
    let cd = child.details().unwrap();
    assert_eq!(cd.parent.as_deref(), Some(parent.id()));
    assert_eq!(cd.nodes.len(), 2);
    assert_eq!(cd.nodes[0].address, pd.nodes[0].address);
    assert_eq!(cd.nodes[0].role, NodeRole::Broker);
    assert_eq!(cd.nodes[1].pilot_id, child.id());
    assert_eq!(cd.nodes[1].role, NodeRole::Compute);
    assert_ne!(cd.nodes[0].address, cd.nodes[1].address);
    // tansu is a one-broker cluster: the child's clients use the parent's broker.
    assert_eq!(
        cd.framework.kafka().unwrap().bootstrap_servers,
        pd.framework.kafka().unwrap().bootstrap_servers
    );
    child.cancel();
    assert_eq!(child.state(), PilotState::Canceled);
    assert_eq!(parent.state(), PilotState::Running);
}

#[test]
fn extending_a_pilot_that_is_not_running_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let mut parent = Pilot::create(tansu_plan(dir.path(), 1), &never).unwrap();
    parent.cancel();
    let mut plan = tansu_plan(dir.path(), 1);
    plan.parent = Some(parent.id().to_string());
    let err = Pilot::create(plan, &never).err().unwrap().to_string();
    assert!(
        err.contains("only a Running pilot can be extended"),
        "{err}"
    );
    let mut plan = tansu_plan(dir.path(), 1);
    plan.parent = Some("pilot-nope".into());
    let err = Pilot::create(plan, &never).err().unwrap().to_string();
    assert!(err.contains("no pilot pilot-nope"), "{err}");
}

#[test]
fn a_dying_broker_fails_the_pilot_with_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut pilot = Pilot::create(tansu_plan(dir.path(), 1), &never).unwrap();
    let addr = pilot.details().unwrap().nodes[0].address;
    let pid = pids_with(&format!("tcp://{addr}:9092"))[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let t0 = std::time::Instant::now();
    while pilot.poll() == PilotState::Running && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(pilot.state(), PilotState::Failed);
    let reason = pilot.record().reason.clone().unwrap();
    assert!(
        reason.contains("exited") && reason.contains("tansu.log"),
        "{reason}"
    );
}

#[test]
fn dropping_a_pilot_cancels_it() {
    let dir = tempfile::tempdir().unwrap();
    let pilot = Pilot::create(tansu_plan(dir.path(), 1), &never).unwrap();
    let addr = pilot.details().unwrap().nodes[0].address;
    let pid = pids_with(&format!("tcp://{addr}:9092"))[0];
    let id = pilot.id().to_string();
    drop(pilot);
    assert!(wait_gone(pid));
    let r = pilot_core::pilots::store::Store::new(dir.path())
        .load(&id)
        .unwrap();
    assert_eq!(r.state, PilotState::Canceled);
}
