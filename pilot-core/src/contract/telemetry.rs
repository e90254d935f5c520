//! What consumers tell the pilot layer while they run, and how it travels: one JSON [`ConsumerReport`] per
//! reporting interval on a metrics topic of the run's own broker. That works across nodes without a shared file
//! system (every process already reaches the broker), and lets any number of readers follow a group: the
//! autoscaler ([`crate::ops::autoscale`]), and a runner waiting for a group to form ([`wait_for_group`]).
//!
//! A report carries what a controller cannot get from the broker alone: how long the consumer was busy (its true
//! processing rate is handled / busy time, as DS2 measures it) and, per assigned partition, its position and the
//! high watermark from the consumer's own fetch responses (librdkafka's statistics). tansu 0.6.0 answers
//! ListOffsets with 1 for every partition while its fetch responses carry the right high watermark, so end
//! offsets are the larger of the two, and [`GroupState::end_offset_source`] says which source gave them.
//!
//! [`GroupView`] is the pure part: it folds reports into the group's state (members, partitions held, lag, busy
//! time) and is tested without a broker; [`TelemetryWriter`] and [`TelemetryReader`] move reports over Kafka.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::contract::client::Connection;
use crate::error::{PilotError, Result};

/// Version of the report format (a reader refuses others, naming them).
pub const REPORT_VERSION: u32 = 1;

/// One partition as a consumer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffsets {
    pub partition: i32,
    /// High watermark from the consumer's last fetch response (-1 when it has fetched nothing yet).
    pub high_watermark: i64,
    /// Offset of the next message the application will be handed (-1 when none consumed yet).
    pub position: i64,
}

/// One consumer process's interval report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsumerReport {
    pub version: u32,
    pub run_id: String,
    pub consumer_id: String,
    pub group: String,
    pub topic: String,
    pub host: String,
    pub pid: u32,
    /// Report number of this process, from 0.
    pub seq: u64,
    /// Wall clock when the report was made, ms since the epoch.
    pub time_unix_ms: u64,
    /// Seconds this report covers.
    pub interval_s: f64,
    /// Messages handled in the interval (taken, duplicate or rejected: everything that cost processing time).
    pub handled_msgs: u64,
    /// Seconds spent handling them (decode, account, process), all the process's threads together.
    pub busy_s: f64,
    /// Distinct messages received since the process started.
    pub received_msgs_total: u64,
    /// The partitions this process holds now.
    pub partitions: Vec<PartitionOffsets>,
    /// The last report: the consumer has committed and is leaving the group.
    pub leaving: bool,
}

/// The end of a stream, announced on the metrics topic once every producer has finished (by the experiment
/// runner, or whoever knows): the consumers of `group` stop once the group has consumed everything the topic holds
/// (`produced_msgs` of it, when known). Travels as `{"stream_end": {...}}` beside the reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamEnd {
    pub version: u32,
    pub group: String,
    pub topic: String,
    /// Messages the producers delivered to the topic (the sum of its end offsets, on a fresh topic); None when a
    /// producer died without saying.
    pub produced_msgs: Option<u64>,
    /// Wall clock when the end was announced, ms since the epoch (an end older than a consumer is another
    /// run's, and ignored).
    pub time_unix_ms: u64,
}

/// A message on the metrics topic that is not a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Notice {
    StreamEnd(StreamEnd),
}

/// Where end offsets came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndOffsetSource {
    /// Nothing known yet.
    None,
    /// The consumers' fetch responses (librdkafka statistics' `hi_offset`) were the larger.
    FetchHighWatermark,
    /// The broker's ListOffsets answer was the larger (or equal).
    ListOffsets,
}

impl EndOffsetSource {
    pub fn as_str(self) -> &'static str {
        match self {
            EndOffsetSource::None => "none",
            EndOffsetSource::FetchHighWatermark => "fetch-high-watermark",
            EndOffsetSource::ListOffsets => "list-offsets",
        }
    }
}

/// What a group's reports add up to, at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupState {
    /// Consumers reporting (not stale, not leaving), by id, with the partitions each holds.
    pub members: BTreeMap<String, Vec<i32>>,
    /// Sum over partitions of the end offset (messages ever written to the topic, as far as known).
    pub end_offsets_total: i64,
    /// Sum over partitions of end offset minus the holder's position (never negative per partition).
    pub lag_msgs: i64,
    /// Where the end offsets came from (the larger source over the partitions).
    pub end_offset_source: EndOffsetSource,
}

/// A group's reports folded together (pure: fed reports and times by the caller).
#[derive(Debug, Clone)]
pub struct GroupView {
    group: String,
    /// A member that has not reported for this long is stale (gone without leaving: killed, node lost).
    stale_after_s: f64,
    latest: BTreeMap<String, (f64, ConsumerReport)>,
    /// Per partition: the highest high watermark any report gave, and the position of its latest holder.
    high: BTreeMap<i32, i64>,
    broker_end: BTreeMap<i32, i64>,
    position: BTreeMap<i32, (f64, i64)>,
    /// Handled messages and busy seconds summed since the last [`GroupView::take_work`].
    work: (u64, f64),
    /// Reports refused (another version, another group), with why.
    pub refused: Vec<String>,
}

impl GroupView {
    pub fn new(group: &str, stale_after_s: f64) -> Self {
        GroupView {
            group: group.to_string(),
            stale_after_s,
            latest: BTreeMap::new(),
            high: BTreeMap::new(),
            broker_end: BTreeMap::new(),
            position: BTreeMap::new(),
            work: (0, 0.0),
            refused: Vec::new(),
        }
    }

    /// The group followed.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Take one report, received at `now_s` (the caller's clock, seconds).
    pub fn add(&mut self, r: ConsumerReport, now_s: f64) {
        if r.version != REPORT_VERSION {
            self.refused.push(format!(
                "report from {} has format version {} (this reader knows {REPORT_VERSION})",
                r.consumer_id, r.version
            ));
            return;
        }
        if r.group != self.group {
            return; // another group's report on a shared metrics topic: not ours, not an error
        }
        if let Some((_, prev)) = self.latest.get(&r.consumer_id) {
            if prev.pid == r.pid && prev.seq >= r.seq {
                return; // an old or repeated report
            }
        }
        self.work.0 += r.handled_msgs;
        self.work.1 += r.busy_s.max(0.0);
        for p in &r.partitions {
            if p.high_watermark >= 0 {
                let h = self.high.entry(p.partition).or_insert(0);
                *h = (*h).max(p.high_watermark);
            }
            if p.position >= 0 {
                let e = self
                    .position
                    .entry(p.partition)
                    .or_insert((now_s, p.position));
                if now_s >= e.0 {
                    *e = (now_s, p.position);
                }
            }
        }
        self.latest.insert(r.consumer_id.clone(), (now_s, r));
    }

    /// End offsets the broker answered (ListOffsets), per partition; kept as a floor for the reported ones.
    pub fn set_broker_end_offsets(&mut self, ends: &BTreeMap<i32, i64>) {
        for (&p, &e) in ends {
            let v = self.broker_end.entry(p).or_insert(0);
            *v = (*v).max(e);
        }
    }

    /// Handled messages and busy seconds reported since the last call.
    pub fn take_work(&mut self) -> (u64, f64) {
        std::mem::take(&mut self.work)
    }

    /// The latest report of each consumer (stale and leaving ones included).
    pub fn reports(&self) -> impl Iterator<Item = &ConsumerReport> {
        self.latest.values().map(|(_, r)| r)
    }

    /// The latest report of each consumer with when it arrived (the caller's clock, seconds).
    pub fn latest(&self) -> impl Iterator<Item = (f64, &ConsumerReport)> {
        self.latest.values().map(|(at, r)| (*at, r))
    }

    /// The group's state at `now_s`.
    pub fn state(&self, now_s: f64) -> GroupState {
        let members = self
            .latest
            .iter()
            .filter(|(_, (at, r))| !r.leaving && now_s - at <= self.stale_after_s)
            .map(|(id, (_, r))| {
                (
                    id.clone(),
                    r.partitions.iter().map(|p| p.partition).collect(),
                )
            })
            .collect();
        let (mut total, mut lag) = (0i64, 0i64);
        let (mut from_fetch, mut from_list) = (false, false);
        let parts: std::collections::BTreeSet<i32> = self
            .high
            .keys()
            .chain(self.broker_end.keys())
            .copied()
            .collect();
        for p in parts {
            let (h, b) = (
                self.high.get(&p).copied().unwrap_or(-1),
                self.broker_end.get(&p).copied().unwrap_or(-1),
            );
            let end = h.max(b).max(0);
            if h > b {
                from_fetch = true;
            } else if b >= 0 {
                from_list = true;
            }
            total += end;
            let pos = self.position.get(&p).map(|x| x.1).unwrap_or(0);
            lag += (end - pos).max(0);
        }
        GroupState {
            members,
            end_offsets_total: total,
            lag_msgs: lag,
            end_offset_source: match (from_fetch, from_list) {
                (true, _) => EndOffsetSource::FetchHighWatermark,
                (false, true) => EndOffsetSource::ListOffsets,
                _ => EndOffsetSource::None,
            },
        }
    }

    /// Whether the consumers `ids` hold all `partitions` among them, each at least one when there are enough
    /// (the group has formed); else what each holds, for the error.
    pub fn formed(
        &self,
        ids: &[String],
        partitions: u64,
        now_s: f64,
    ) -> std::result::Result<(), Vec<u64>> {
        let state = self.state(now_s);
        let held: Vec<u64> = ids
            .iter()
            .map(|id| state.members.get(id).map(|p| p.len() as u64).unwrap_or(0))
            .collect();
        let members = held.iter().filter(|&&h| h > 0).count() as u64;
        if held.iter().sum::<u64>() == partitions && members == (ids.len() as u64).min(partitions) {
            Ok(())
        } else {
            Err(held)
        }
    }
}

/// The group's lag at the end of each of `seconds` seconds from `t0_unix_s`, replaying `reports` (in any order)
/// at the times they were written: what a timeline's lag column is, free of the duplicates a rebalance adds to
/// the consumers' received counts.
pub fn lag_per_second(
    reports: &[ConsumerReport],
    group: &str,
    stale_after_s: f64,
    t0_unix_s: f64,
    seconds: usize,
) -> Vec<i64> {
    let mut sorted: Vec<&ConsumerReport> = reports.iter().collect();
    sorted.sort_by_key(|r| r.time_unix_ms);
    let at = |r: &ConsumerReport| r.time_unix_ms as f64 / 1e3 - t0_unix_s;
    let mut view = GroupView::new(group, stale_after_s);
    let mut next = sorted.into_iter().peekable();
    (1..=seconds)
        .map(|k| {
            let end = k as f64;
            while let Some(r) = next.next_if(|r| at(r) <= end) {
                view.add(r.clone(), at(r));
            }
            view.state(end).lag_msgs
        })
        .collect()
}

fn kafka_err(conn: &Connection, what: &str, e: impl ToString) -> PilotError {
    PilotError::Kafka {
        operation: what.into(),
        bootstrap: conn.bootstrap.clone(),
        message: e.to_string(),
    }
}

/// Make sure the metrics topic exists (one partition: reports of a run stay in order).
pub fn ensure_topic(conn: &Connection, topic: &str) -> Result<()> {
    let admin = crate::contract::admin::KafkaAdmin::new(
        &conn.bootstrap,
        &conn.client,
        Duration::from_secs(10),
    );
    admin.ensure_topic(topic, 1, 1).map(|_| ())
}

/// Publishes reports (a consumer process has one).
pub struct TelemetryWriter {
    producer: BaseProducer,
    topic: String,
    conn: Connection,
}

impl TelemetryWriter {
    /// A writer to `topic` on `conn`'s brokers (the topic is created when missing).
    pub fn new(conn: &Connection, topic: &str) -> Result<Self> {
        ensure_topic(conn, topic)?;
        let mut cfg = conn.client.producer_config(&conn.bootstrap);
        cfg.set("linger.ms", "0").set("message.timeout.ms", "10000");
        let producer: BaseProducer = cfg
            .create()
            .map_err(|e| kafka_err(conn, "creating the metrics producer", e))?;
        Ok(TelemetryWriter {
            producer,
            topic: topic.to_string(),
            conn: conn.clone(),
        })
    }

    /// Queue one report (does not wait for the broker).
    pub fn send(&self, r: &ConsumerReport) -> Result<()> {
        let body = serde_json::to_vec(r).expect("a report serialises");
        self.producer
            .send(
                BaseRecord::to(&self.topic)
                    .payload(&body)
                    .key(r.consumer_id.as_bytes()),
            )
            .map_err(|(e, _)| kafka_err(&self.conn, "sending a metrics report", e))?;
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    /// Announce the end of the stream to the group's consumers (does not wait for the broker).
    pub fn announce_end(&self, end: &StreamEnd) -> Result<()> {
        let body =
            serde_json::to_vec(&Notice::StreamEnd(end.clone())).expect("a notice serialises");
        self.producer
            .send(BaseRecord::to(&self.topic).payload(&body).key("stream-end"))
            .map_err(|(e, _)| kafka_err(&self.conn, "announcing the stream's end", e))?;
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    /// Wait for queued reports (the last one matters: it says the consumer left).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer
            .flush(timeout)
            .map_err(|e| kafka_err(&self.conn, "delivering metrics reports", e))
    }
}

/// Messages one [`TelemetryReader::poll`] takes at most.
const MAX_POLLED: usize = 10_000;
/// Malformed messages and errors a reader keeps the text of.
const MAX_NOTES: usize = 100;

/// Reads every report on a metrics topic from its beginning (no consumer group: readers do not disturb each
/// other, and a late reader still sees the whole run).
pub struct TelemetryReader {
    consumer: BaseConsumer,
    /// Messages that were neither reports nor notices, with why (counted, never fatal).
    pub malformed: Vec<String>,
    /// How many went wrong in all (`malformed` keeps the text of the first [`MAX_NOTES`]).
    pub malformed_total: usize,
    /// Stream ends announced, in the order they came.
    pub stream_ends: Vec<StreamEnd>,
}

impl TelemetryReader {
    pub fn new(conn: &Connection, topic: &str) -> Result<Self> {
        ensure_topic(conn, topic)?;
        let admin = crate::contract::admin::KafkaAdmin::new(
            &conn.bootstrap,
            &conn.client,
            Duration::from_secs(10),
        );
        let meta = admin.describe_topic(topic)?;
        // A group id is required by librdkafka even for assign(); nothing is committed.
        let mut cfg = conn.client.consumer_config(
            &conn.bootstrap,
            &format!("telemetry-reader-{}", std::process::id()),
        );
        cfg.set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        let consumer: BaseConsumer = cfg
            .create()
            .map_err(|e| kafka_err(conn, "creating the metrics reader", e))?;
        let mut tpl = TopicPartitionList::new();
        for p in &meta.partitions {
            tpl.add_partition_offset(topic, p.id, Offset::Beginning)
                .map_err(|e| kafka_err(conn, "assigning the metrics topic", e))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| kafka_err(conn, "assigning the metrics topic", e))?;
        Ok(TelemetryReader {
            consumer,
            malformed: Vec::new(),
            malformed_total: 0,
            stream_ends: Vec::new(),
        })
    }

    /// Every report that arrives within `wait` (returns early once the topic has nothing more right now; a zero
    /// `wait` takes what is there). Stream ends go to [`TelemetryReader::stream_ends`].
    pub fn poll(&mut self, wait: Duration) -> Vec<ConsumerReport> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        // Bounded whatever arrives: a caller on an interval thread must get its turn back (errors that repeat at
        // once, or a topic that fills faster than it is read, never keep it here).
        for _ in 0..MAX_POLLED {
            let left = deadline.saturating_duration_since(Instant::now());
            let step = if out.is_empty() { left } else { Duration::ZERO };
            let got = self.consumer.poll(step.min(Duration::from_millis(100)));
            let more = matches!(got, Some(Ok(_)));
            match got {
                Some(Ok(m)) => {
                    let body = m.payload().unwrap_or_default();
                    match serde_json::from_slice::<ConsumerReport>(body) {
                        Ok(r) => out.push(r),
                        Err(e) => match serde_json::from_slice::<Notice>(body) {
                            Ok(Notice::StreamEnd(end)) => self.stream_ends.push(end),
                            Err(_) => self.note(format!(
                                "metrics message at partition {} offset {}: {e}",
                                m.partition(),
                                m.offset()
                            )),
                        },
                    }
                }
                Some(Err(e)) => self.note(format!("metrics topic: {e}")),
                None => {}
            }
            if !more && (!out.is_empty() || Instant::now() >= deadline) {
                break;
            }
        }
        out
    }

    /// Keep what went wrong (the first [`MAX_NOTES`], then a count).
    fn note(&mut self, what: String) {
        self.malformed_total += 1;
        if self.malformed.len() < MAX_NOTES {
            self.malformed.push(what);
        }
    }
}

/// Why the consumers' group did not form.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GroupWaitError {
    /// The consumers did not share the topic's partitions within the timeout; what each held.
    #[error("the consumers {ids:?} never shared the topic's {partitions} partitions in {waited_s} s (held {held}, by their metrics reports)")]
    NeverFormed {
        ids: Vec<String>,
        partitions: u64,
        waited_s: u64,
        held: String,
    },
    #[error("interrupted while the consumers joined")]
    Interrupted,
}

/// Wait until the consumers `ids` of `group` hold all `partitions` of their topic (each at least one when there
/// are enough), as their reports on the metrics topic tell: their group has formed, so producers may start.
/// Gives up after `timeout` or when `stop()` says so, naming what each one held.
pub fn wait_for_group(
    reader: &mut TelemetryReader,
    group: &str,
    ids: &[String],
    partitions: u64,
    timeout: Duration,
    stop: &dyn Fn() -> bool,
) -> std::result::Result<(), GroupWaitError> {
    let t0 = Instant::now();
    let mut view = GroupView::new(group, f64::INFINITY);
    loop {
        let now = t0.elapsed().as_secs_f64();
        for r in reader.poll(Duration::from_millis(100)) {
            view.add(r, now);
        }
        match view.formed(ids, partitions, now) {
            Ok(()) => return Ok(()),
            Err(held) if t0.elapsed() > timeout => {
                return Err(GroupWaitError::NeverFormed {
                    ids: ids.to_vec(),
                    partitions,
                    waited_s: timeout.as_secs(),
                    held: format!("{held:?}"),
                })
            }
            Err(_) => {}
        }
        if stop() {
            return Err(GroupWaitError::Interrupted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(
        id: &str,
        seq: u64,
        parts: &[(i32, i64, i64)],
        handled: u64,
        busy_s: f64,
    ) -> ConsumerReport {
        ConsumerReport {
            version: REPORT_VERSION,
            run_id: "r".into(),
            consumer_id: id.into(),
            group: "g".into(),
            topic: "t".into(),
            host: "h".into(),
            pid: 7,
            seq,
            time_unix_ms: 0,
            interval_s: 1.0,
            handled_msgs: handled,
            busy_s,
            received_msgs_total: 0,
            partitions: parts
                .iter()
                .map(|&(partition, high_watermark, position)| PartitionOffsets {
                    partition,
                    high_watermark,
                    position,
                })
                .collect(),
            leaving: false,
        }
    }

    #[test]
    fn lag_is_the_high_watermark_minus_the_holders_position() {
        let mut v = GroupView::new("g", 3.0);
        v.add(report("a", 0, &[(0, 100, 40), (1, 50, 50)], 10, 0.5), 1.0);
        v.add(report("b", 0, &[(2, 30, -1)], 0, 0.0), 1.0);
        let s = v.state(1.0);
        assert_eq!(s.end_offsets_total, 180);
        // Partitions 0, 1 and 2 lag 60, 0 and 30: a partition never consumed lags by all of it.
        assert_eq!(s.lag_msgs, 90);
        assert_eq!(s.end_offset_source, EndOffsetSource::FetchHighWatermark);
        assert_eq!(v.take_work(), (10, 0.5));
        assert_eq!(v.take_work(), (0, 0.0));
        // tansu's ListOffsets answers 1: the fetch high watermark stays the larger.
        v.set_broker_end_offsets(&BTreeMap::from([(0, 1), (1, 1), (2, 1)]));
        assert_eq!(v.state(1.0).end_offsets_total, 180);
        // Kafka's ListOffsets knows a partition nobody fetched.
        v.set_broker_end_offsets(&BTreeMap::from([(3, 25)]));
        let s = v.state(1.0);
        assert_eq!((s.end_offsets_total, s.lag_msgs), (205, 115));
        // Partition 0 moves to b, which has consumed further; a's old report no longer decides.
        v.add(report("b", 1, &[(0, 120, 90), (2, 30, 30)], 5, 0.2), 2.0);
        // Partitions 0..3 now lag 30, 0, 0 and 25.
        assert_eq!(v.state(2.0).lag_msgs, 55);
    }

    #[test]
    fn members_go_stale_or_leave_and_old_reports_are_ignored() {
        let mut v = GroupView::new("g", 3.0);
        v.add(report("a", 5, &[(0, 10, 10)], 1, 0.1), 0.0);
        v.add(report("b", 0, &[(1, 10, 10)], 1, 0.1), 0.0);
        v.add(report("a", 4, &[(0, 10, 10), (1, 10, 10)], 99, 9.0), 0.5);
        assert_eq!(
            v.take_work(),
            (2, 0.2),
            "the repeated old report counted no work"
        );
        let mut leave = report("b", 1, &[], 0, 0.0);
        leave.leaving = true;
        v.add(leave, 1.0);
        assert_eq!(v.state(1.0).members.keys().collect::<Vec<_>>(), vec!["a"]);
        assert!(
            v.state(3.5).members.is_empty(),
            "a has not reported for 3.5 s"
        );
        let mut other = report("c", 0, &[(0, 1, 1)], 1, 1.0);
        other.group = "other".into();
        v.add(other, 1.0);
        let mut future = report("d", 0, &[], 0, 0.0);
        future.version = 9;
        v.add(future, 1.0);
        assert_eq!(v.reports().count(), 2);
        assert_eq!(v.refused.len(), 1);
        assert!(v.refused[0].contains("format version 9"), "{:?}", v.refused);
    }

    #[test]
    fn a_group_has_formed_when_every_partition_is_held_by_a_member() {
        let mut v = GroupView::new("g", 10.0);
        let ids = vec!["a".to_string(), "b".to_string()];
        v.add(
            report("a", 0, &[(0, 0, -1), (1, 0, -1), (2, 0, -1)], 0, 0.0),
            0.0,
        );
        assert_eq!(v.formed(&ids, 3, 0.0), Err(vec![3, 0]));
        v.add(report("a", 1, &[(0, 0, -1), (1, 0, -1)], 0, 0.0), 0.1);
        v.add(report("b", 0, &[(2, 0, -1)], 0, 0.0), 0.1);
        assert_eq!(v.formed(&ids, 3, 0.1), Ok(()));
        // More consumers than partitions: each partition held, the extra member idle.
        let ids3 = vec!["a".into(), "b".into(), "c".into()];
        v.add(report("c", 0, &[], 0, 0.0), 0.2);
        assert_eq!(v.formed(&ids3, 2, 0.2), Err(vec![2, 1, 0]));
        v.add(report("a", 2, &[(0, 0, -1)], 0, 0.0), 0.3);
        v.add(report("b", 1, &[(1, 0, -1)], 0, 0.0), 0.3);
        assert_eq!(v.formed(&ids3, 2, 0.3), Ok(()));
    }

    #[test]
    fn reports_round_trip_as_json() {
        let r = report("a", 3, &[(0, 10, 5)], 4, 0.25);
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<ConsumerReport>(&text).unwrap(), r);
        assert!(text.contains("\"high_watermark\":10"), "{text}");
    }

    #[test]
    fn lag_per_second_replays_the_reports_in_their_own_time() {
        let mk = |id: &str, seq: u64, ms: u64, high: i64, pos: i64, leaving: bool| ConsumerReport {
            version: REPORT_VERSION,
            run_id: "r".into(),
            consumer_id: id.into(),
            group: "g".into(),
            topic: "t".into(),
            host: "h".into(),
            pid: 7,
            seq,
            time_unix_ms: ms,
            interval_s: 1.0,
            handled_msgs: 0,
            busy_s: 0.0,
            received_msgs_total: 0,
            partitions: if leaving {
                vec![]
            } else {
                vec![PartitionOffsets {
                    partition: 0,
                    high_watermark: high,
                    position: pos,
                }]
            },
            leaving,
        };
        // t0 = 1000 s. Out of order on purpose: a lags 50 at 1.5 s, 20 at 2.5 s; b takes over at 3.5 s at 0.
        let reports = [
            mk("a", 1, 1_002_500, 120, 100, false),
            mk("a", 0, 1_001_500, 100, 50, false),
            mk("b", 0, 1_003_500, 130, 130, false),
            mk("a", 2, 1_003_400, 0, 0, true),
        ];
        assert_eq!(
            lag_per_second(&reports, "g", 10.0, 1000.0, 4),
            vec![0, 50, 20, 0]
        );
    }
}
