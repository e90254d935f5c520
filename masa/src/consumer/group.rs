//! Stage 1, joining the group: the consumer settings MASA needs, one rdkafka consumer per thread subscribed to
//! the topic, and what each consumer's context follows while it runs ([`GroupContext`]: assignment, rebalance
//! activity, high watermarks from fetch responses, and the [`Ledger`] of offsets that may be committed).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pilot_core::contract::client::{Connection, FAILOVER_CONSUMER_PROPERTIES};
use pilot_core::contract::clock::Clock;
use pilot_core::contract::files::write_atomic;
use pilot_core::contract::telemetry::PartitionOffsets;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, TopicPartitionList};

use super::{checkpoint_path, kafka_err, ConsumeError};
use crate::accounting::Accounting;
use crate::config::ConsumerPlan;

/// Follows the group: when partitions were first assigned (group join time), how many this consumer holds,
/// rebalance activity (which resets the idle timer), and the high watermark of each partition from the
/// consumer's fetch responses (librdkafka's statistics: tansu 0.6.0 answers ListOffsets with 1, so
/// `fetch_watermarks` cannot be trusted there).
pub(crate) struct GroupContext {
    clock: Arc<dyn Clock>,
    topic: String,
    first_assignment_ns: Arc<AtomicU64>,
    pub(crate) assigned: AtomicU64,
    last_activity_ns: Arc<AtomicU64>,
    high: Mutex<BTreeMap<i32, i64>>,
    pub(crate) ledger: Mutex<Ledger>,
}

/// A consumer of the group, as every stage after joining holds it.
pub(crate) type GroupConsumer = BaseConsumer<GroupContext>;

/// What all of a process's consumers share: the first assignment (group join) and the last activity.
#[derive(Debug, Clone)]
pub(crate) struct GroupClock {
    pub first_assignment_ns: Arc<AtomicU64>,
    pub last_activity_ns: Arc<AtomicU64>,
}

/// The librdkafka settings of MASA's consumers: the connection's and the plan's, with offsets stored only once
/// a message is handled, and statistics (the high watermarks behind the lag) at least once a second.
pub(crate) fn consumer_config(plan: &ConsumerPlan, conn: &Connection) -> ClientConfig {
    let mut cfg = conn.client.consumer_config(&conn.bootstrap, &plan.group);
    // Offsets are stored (for the next commit) only once a message has been handled. librdkafka's default
    // stores them when poll returns a message, and rust-rdkafka's drop polls and discards what is left in the
    // queue before the final commit: a consumer stopped with messages prefetched committed them unread, and
    // the partition's next owner never saw them (found in an autoscaled run: 3 of 19,500 lost at a scale-down).
    cfg.set("auto.offset.reset", plan.auto_offset_reset.as_str())
        .set("enable.partition.eof", "false")
        .set("enable.auto.offset.store", "false");
    // Fast failover unless told otherwise (see FAILOVER_CONSUMER_PROPERTIES).
    for (key, value) in FAILOVER_CONSUMER_PROPERTIES {
        if cfg.get(key).is_none() {
            cfg.set(key, value);
        }
    }
    // Statistics carry each partition's high watermark from the fetch responses (for lag); at least once a
    // second, so a report's lag is at most a second stale.
    if !plan.kafka.contains_key("statistics.interval.ms") {
        let ms = (plan.interval_s * 1000.0).clamp(100.0, 1000.0) as u64;
        cfg.set("statistics.interval.ms", ms.to_string());
    }
    cfg
}

/// The session timeout the consumers run with (s): after it the broker drops a member that stopped heartbeating.
pub(crate) fn session_timeout_s(plan: &ConsumerPlan, conn: &Connection) -> f64 {
    consumer_config(plan, conn)
        .get("session.timeout.ms")
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(45_000.0)
        / 1e3
}

/// One consumer per thread of the plan, each in the plan's group and subscribed to its topic.
pub(crate) fn join(
    plan: &ConsumerPlan,
    conn: &Connection,
    clock: &Arc<dyn Clock>,
    shared: &GroupClock,
) -> Result<Vec<GroupConsumer>, ConsumeError> {
    let cfg = consumer_config(plan, conn);
    let mut consumers = Vec::new();
    for thread in 0..plan.threads as usize {
        let ctx = GroupContext {
            clock: clock.clone(),
            topic: plan.topic.clone(),
            first_assignment_ns: shared.first_assignment_ns.clone(),
            assigned: AtomicU64::new(0),
            last_activity_ns: shared.last_activity_ns.clone(),
            high: Mutex::new(BTreeMap::new()),
            ledger: Mutex::new(Ledger {
                checkpoint: plan
                    .results_dir
                    .as_ref()
                    .filter(|_| plan.checkpoint_accounting)
                    .map(|d| checkpoint_path(d, &plan.consumer_id, thread)),
                ..Default::default()
            }),
        };
        let c: GroupConsumer = cfg
            .create_with_context(ctx)
            .map_err(|e| kafka_err(conn, "creating consumer", e))?;
        c.subscribe(&[&plan.topic])
            .map_err(|e| kafka_err(conn, "subscribe", e))?;
        consumers.push(c);
    }
    Ok(consumers)
}

/// Where stored offsets go: the consumer (for its next commit), or a test's record.
pub(crate) trait OffsetStore {
    /// Store `offset` of `partition` for the next commit; Err when the partition is no longer this member's.
    fn store_offset(&self, topic: &str, partition: i32, offset: i64) -> Result<(), String>;
}

impl OffsetStore for GroupConsumer {
    fn store_offset(&self, topic: &str, partition: i32, offset: i64) -> Result<(), String> {
        Consumer::store_offset(self, topic, partition, offset).map_err(|e| e.to_string())
    }
}

/// Which offsets a consumer thread may commit. Without a checkpoint file an offset is stored as soon as its
/// message is handled. With one (`checkpoint_accounting`) it is stored only once a checkpoint of what was
/// received up to it is written (atomically), so a consumer killed at any moment has recorded every message
/// whose offset it committed, and what it handled after its last checkpoint comes again to the partition's next
/// owner. Checkpointed every [`super::CHECKPOINT_NS`] and before partitions are revoked, by the thread and by the
/// rebalance callback. Measured on tansu 0.6.0, it still costs duplicates at rebalances (the delayed stores),
/// hence opt-in.
#[derive(Default)]
pub(crate) struct Ledger {
    /// The (producer, sequence) pairs received.
    pub received: Accounting,
    /// Per partition, the offset of the last message handled and not yet stored.
    pub pending: BTreeMap<i32, i64>,
    /// None: no results directory, offsets are stored at once.
    pub checkpoint: Option<PathBuf>,
    pub errors: Vec<String>,
}

impl Ledger {
    /// A message at `offset` of `partition` was handled (taken, rejected or a duplicate; `recorded` is the
    /// (producer, sequence) it added to the accounting): its offset may be committed once a checkpoint holds it,
    /// or at once without checkpoints.
    pub fn handled(
        &mut self,
        consumer: &dyn OffsetStore,
        topic: &str,
        partition: i32,
        offset: i64,
        recorded: Option<(u32, u64)>,
    ) {
        self.pending.insert(partition, offset);
        match (self.checkpoint.is_some(), recorded) {
            (true, Some((p, seq))) => {
                self.received.record(p, seq);
            }
            (true, None) => {}
            (false, _) => {
                self.store(consumer, topic);
            }
        }
    }

    /// Checkpoint what was received (when checkpointing), then store the pending offsets for the next commit;
    /// whether any offset was stored.
    pub fn store(&mut self, consumer: &dyn OffsetStore, topic: &str) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        if let Some(path) = &self.checkpoint {
            let bytes = serde_json::to_vec(&self.received).expect("serialisable");
            if let Err(e) = write_atomic(path, &bytes) {
                // Not stored: redelivered after a restart, never lost.
                self.errors
                    .push(format!("checkpoint {}: {e}", path.display()));
                return false;
            }
        }
        for (&partition, &offset) in &self.pending {
            // A partition revoked meanwhile refuses the store; its messages then come again to the next
            // owner, counted duplicates.
            let _ = consumer.store_offset(topic, partition, offset);
        }
        self.pending.clear();
        true
    }
}

impl ClientContext for GroupContext {
    fn stats(&self, stats: Statistics) {
        if let Some(t) = stats.topics.get(&self.topic) {
            let mut high = self.high.lock().expect("not poisoned");
            for (&p, part) in &t.partitions {
                if p >= 0 && part.hi_offset >= 0 {
                    let h = high.entry(p).or_insert(0);
                    *h = (*h).max(part.hi_offset);
                }
            }
        }
    }
}

impl GroupContext {
    /// The highest high watermark the fetch responses gave for `partition` (-1: none yet).
    fn high_watermark(&self, partition: i32) -> i64 {
        self.high
            .lock()
            .expect("not poisoned")
            .get(&partition)
            .copied()
            .unwrap_or(-1)
    }
}

/// The partitions a consumer holds, with its position and the high watermark in each.
pub(crate) fn partition_offsets(c: &GroupConsumer, topic: &str) -> Vec<PartitionOffsets> {
    let positions = c.position().unwrap_or_else(|_| TopicPartitionList::new());
    positions
        .elements()
        .iter()
        .filter(|e| e.topic() == topic)
        .map(|e| PartitionOffsets {
            partition: e.partition(),
            high_watermark: c.context().high_watermark(e.partition()),
            position: e.offset().to_raw().filter(|o| *o >= 0).unwrap_or(-1),
        })
        .collect()
}

/// Commit what `c` consumed, and the messages it leaves behind in its partitions: the high watermark is the
/// larger of the fetch responses' (statistics, at most one statistics interval old) and the broker's ListOffsets
/// answer (right on Kafka, 1 on tansu 0.6.0).
pub(crate) fn commit_and_measure_lag(c: &GroupConsumer, topic: &str) -> i64 {
    let _ = c.commit_consumer_state(CommitMode::Sync);
    let mut lag = 0;
    for p in partition_offsets(c, topic) {
        let listed = c
            .fetch_watermarks(topic, p.partition, Duration::from_secs(2))
            .map(|(_, h)| h)
            .unwrap_or(-1);
        let high = p.high_watermark.max(listed);
        if high >= 0 {
            lag += (high - p.position.max(0)).max(0);
        }
    }
    lag
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Before the partitions move: everything handled is checkpointed and stored, so librdkafka's commit on
        // revoke covers it.
        if let Rebalance::Revoke(_) = rebalance {
            if let Ok(mut l) = self.ledger.lock() {
                let _ = l.store(consumer, &self.topic);
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let now = self.clock.now_ns();
        self.last_activity_ns.fetch_max(now, Ordering::Relaxed);
        match rebalance {
            Rebalance::Assign(tpl) => {
                let _ = self.first_assignment_ns.compare_exchange(
                    0,
                    now,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                self.assigned.store(tpl.count() as u64, Ordering::Relaxed);
            }
            Rebalance::Revoke(_) => self.assigned.store(0, Ordering::Relaxed),
            Rebalance::Error(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Records the offsets stored, refusing `refused` partitions (revoked meanwhile).
    #[derive(Default)]
    struct Stored {
        offsets: RefCell<Vec<(i32, i64)>>,
        refused: Vec<i32>,
    }

    impl OffsetStore for Stored {
        fn store_offset(&self, _: &str, partition: i32, offset: i64) -> Result<(), String> {
            if self.refused.contains(&partition) {
                return Err("revoked".into());
            }
            self.offsets.borrow_mut().push((partition, offset));
            Ok(())
        }
    }

    #[test]
    fn without_checkpoints_an_offset_is_stored_as_soon_as_its_message_is_handled() {
        let (mut l, s) = (Ledger::default(), Stored::default());
        l.handled(&s, "t", 3, 10, Some((1, 0)));
        l.handled(&s, "t", 3, 11, None);
        assert_eq!(*s.offsets.borrow(), vec![(3, 10), (3, 11)]);
        assert!(l.pending.is_empty());
        assert_eq!(
            l.received.totals(None).received,
            0,
            "no checkpoint, no copy"
        );
    }

    #[test]
    fn with_checkpoints_offsets_wait_until_the_checkpoint_holds_their_messages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        let mut l = Ledger {
            checkpoint: Some(path.clone()),
            ..Default::default()
        };
        let s = Stored::default();
        l.handled(&s, "t", 0, 5, Some((7, 0)));
        l.handled(&s, "t", 1, 9, Some((7, 1)));
        l.handled(&s, "t", 0, 6, None);
        assert!(
            s.offsets.borrow().is_empty(),
            "nothing stored before a checkpoint"
        );
        assert!(!path.exists());
        l.store(&s, "t");
        assert_eq!(*s.offsets.borrow(), vec![(0, 6), (1, 9)]);
        let saved: Accounting =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(saved.totals(None).received, 2);
        // Nothing pending: a second store writes nothing new.
        assert!(!l.store(&s, "t"));
        assert_eq!(s.offsets.borrow().len(), 2);
    }

    #[test]
    fn a_checkpoint_that_cannot_be_written_stores_no_offset() {
        let mut l = Ledger {
            checkpoint: Some("/nonexistent-dir/c.json".into()),
            ..Default::default()
        };
        let s = Stored::default();
        l.handled(&s, "t", 0, 5, Some((7, 0)));
        l.store(&s, "t");
        assert!(s.offsets.borrow().is_empty());
        assert_eq!(l.pending.len(), 1, "kept for the next try");
        assert!(l.errors[0].contains("/nonexistent-dir/c.json"));
    }

    #[test]
    fn a_revoked_partition_refuses_its_store_and_the_rest_go_on() {
        let mut l = Ledger::default();
        let s = Stored {
            refused: vec![2],
            ..Default::default()
        };
        l.pending.insert(2, 4);
        l.handled(&s, "t", 1, 8, None);
        assert_eq!(*s.offsets.borrow(), vec![(1, 8)]);
        assert!(l.pending.is_empty());
    }
}
