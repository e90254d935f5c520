//! The group, as every consumer process follows it on the metrics topic (pure: fed reports, notices and times
//! by the interval stage, tested without a broker):
//!
//! - **Stranded partitions.** A member that stops reporting without saying it leaves (SIGKILL, an OOM, a lost
//!   node) keeps its partitions on a broker that never expires it (tansu 0.6.0): nobody reads them again. A
//!   partition the gone member held in its last report that no live member holds `grace_s` later (the broker's
//!   session timeout and a margin: a broker that expires members has handed it on by then) is stranded, and the
//!   survivors leave the group and join again, which makes the broker drop the dead member. Again every `grace_s`
//!   while anything stays stranded.
//! - **The stream's end.** Once a [`StreamEnd`] newer than this consumer has been announced, the group is done
//!   when every partition any member reported is consumed to its end (by reports made after the announcement and
//!   the statistics interval that refreshes the end offsets), and the announced count of messages is in the end
//!   offsets: then every member stops, together.

use std::collections::{BTreeMap, BTreeSet};

use pilot_core::contract::telemetry::{ConsumerReport, GroupView, StreamEnd};

/// What the watch saw of one member.
#[derive(Debug, Clone)]
struct Seen {
    at_s: f64,
    report_s: f64,
    leaving: bool,
    partitions: Vec<i32>,
}

/// A process's view of its group on the metrics topic.
#[derive(Debug, Clone)]
pub struct GroupWatch {
    view: GroupView,
    /// Per member (consumer id): its latest report.
    seen: BTreeMap<String, Seen>,
    /// A member silent this long is gone.
    silent_s: f64,
    /// How long a gone member's partitions may stay unheld before the survivors rejoin.
    grace_s: f64,
    /// Since when something has been stranded (reset by a rejoin).
    stranded_since: Option<f64>,
    /// This process's start, wall clock seconds: older stream ends are another run's.
    started_unix_s: f64,
    /// The stream end announced (the newest), and when the watch learned of it.
    end: Option<(StreamEnd, f64)>,
    /// Seconds after the announcement that a report must be made to count for the end (end offsets refreshed).
    settle_s: f64,
}

impl GroupWatch {
    pub fn new(
        group: &str,
        silent_s: f64,
        grace_s: f64,
        started_unix_s: f64,
        settle_s: f64,
    ) -> Self {
        GroupWatch {
            view: GroupView::new(group, silent_s),
            seen: BTreeMap::new(),
            silent_s,
            grace_s,
            stranded_since: None,
            started_unix_s,
            end: None,
            settle_s,
        }
    }

    /// A report read at `now_s` (the watch's clock). Reports made before this process started are an earlier
    /// run's (a metrics topic may outlive runs) and are left out.
    pub fn add(&mut self, r: ConsumerReport, now_s: f64) {
        if (r.time_unix_ms as f64 / 1e3) < self.started_unix_s {
            return;
        }
        if r.group == self.group() && r.version == pilot_core::contract::telemetry::REPORT_VERSION {
            let newer = self
                .seen
                .get(&r.consumer_id)
                .is_none_or(|s| s.report_s <= r.time_unix_ms as f64 / 1e3);
            if newer {
                self.seen.insert(
                    r.consumer_id.clone(),
                    Seen {
                        at_s: now_s,
                        report_s: r.time_unix_ms as f64 / 1e3,
                        leaving: r.leaving,
                        partitions: r.partitions.iter().map(|p| p.partition).collect(),
                    },
                );
            }
        }
        self.view.add(r, now_s);
    }

    /// A stream end read at `now_s`: kept when it is this group's and newer than this process.
    pub fn stream_end(&mut self, e: StreamEnd, now_s: f64) {
        if e.group != self.group() || (e.time_unix_ms as f64 / 1e3) < self.started_unix_s {
            return;
        }
        let newer = self
            .end
            .as_ref()
            .is_none_or(|(old, _)| old.time_unix_ms <= e.time_unix_ms);
        if newer {
            self.end = Some((e, now_s));
        }
    }

    fn group(&self) -> String {
        self.view.group().to_string()
    }

    /// Partitions a gone member (silent for `silent_s`, never leaving) held in its last report, that no live
    /// member holds.
    pub fn stranded(&self, now_s: f64) -> BTreeSet<i32> {
        let live = |s: &Seen| !s.leaving && now_s - s.at_s <= self.silent_s;
        let held: BTreeSet<i32> = self
            .seen
            .values()
            .filter(|s| live(s))
            .flat_map(|s| s.partitions.iter().copied())
            .collect();
        self.seen
            .values()
            .filter(|s| !s.leaving && !live(s))
            .flat_map(|s| s.partitions.iter().copied())
            .filter(|p| !held.contains(p))
            .collect()
    }

    /// Whether this process should leave the group and join again now (the reason), at most once per `grace_s`
    /// while partitions stay stranded.
    pub fn rejoin(&mut self, now_s: f64) -> Option<String> {
        let stranded = self.stranded(now_s);
        if stranded.is_empty() {
            self.stranded_since = None;
            return None;
        }
        let since = *self.stranded_since.get_or_insert(now_s);
        if now_s - since < self.grace_s {
            return None;
        }
        self.stranded_since = Some(now_s);
        let gone: Vec<&str> = self
            .seen
            .iter()
            .filter(|(_, s)| !s.leaving && now_s - s.at_s > self.silent_s)
            .map(|(id, _)| id.as_str())
            .collect();
        let stranded: Vec<i32> = stranded.into_iter().collect();
        Some(format!(
            "partitions {stranded:?} of {} (silent for over {} s) unheld for {:.0} s: rejoined the group",
            gone.join(", "),
            self.silent_s,
            self.grace_s
        ))
    }

    /// Whether the stream has ended and the group has consumed all of it.
    pub fn stream_done(&self) -> bool {
        let Some((end, _)) = &self.end else {
            return false;
        };
        let after = end.time_unix_ms as f64 / 1e3 + self.settle_s;
        // Every member that is still in the group must have reported since the end settled.
        let members: Vec<&Seen> = self.seen.values().filter(|s| !s.leaving).collect();
        if members.is_empty() || members.iter().any(|s| s.report_s < after) {
            return false;
        }
        let state = self.view.state(f64::MAX / 2.0);
        state.lag_msgs == 0
            && end
                .produced_msgs
                .is_none_or(|n| state.end_offsets_total >= n as i64)
    }

    /// The stream end being waited for, if any.
    pub fn announced(&self) -> Option<&StreamEnd> {
        self.end.as_ref().map(|(e, _)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilot_core::contract::telemetry::{PartitionOffsets, REPORT_VERSION};

    const T0: f64 = 1_000.0;

    fn report(id: &str, t: f64, parts: &[(i32, i64, i64)]) -> ConsumerReport {
        ConsumerReport {
            version: REPORT_VERSION,
            consumer_id: id.into(),
            group: "g".into(),
            // Reports of one process are numbered in order.
            seq: ((t + 100.0) * 10.0) as u64,
            time_unix_ms: ((T0 + t) * 1e3) as u64,
            partitions: parts
                .iter()
                .map(|&(partition, high_watermark, position)| PartitionOffsets {
                    partition,
                    high_watermark,
                    position,
                })
                .collect(),
            ..Default::default()
        }
    }

    fn watch() -> GroupWatch {
        GroupWatch::new("g", 3.0, 8.0, T0, 1.5)
    }

    #[test]
    fn a_silent_members_partitions_are_stranded_until_someone_holds_them() {
        let mut w = watch();
        w.add(report("a", 0.0, &[(0, 5, 5), (1, 5, 5)]), 0.0);
        w.add(report("b", 0.0, &[(2, 5, 5), (3, 5, 5)]), 0.0);
        // b is killed; a keeps reporting.
        for t in 1..=10 {
            w.add(report("a", t as f64, &[(0, 9, 9), (1, 9, 9)]), t as f64);
        }
        assert!(w.stranded(2.0).is_empty(), "b is not silent for 3 s yet");
        assert_eq!(w.stranded(10.0), BTreeSet::from([2, 3]));
        // A broker that expires members hands them on: nothing stranded.
        w.add(
            report("a", 11.0, &[(0, 9, 9), (1, 9, 9), (2, 7, 5), (3, 7, 5)]),
            11.0,
        );
        assert!(w.stranded(11.0).is_empty());
    }

    #[test]
    fn survivors_rejoin_after_the_grace_and_again_while_it_lasts() {
        let mut w = watch();
        w.add(report("a", 0.0, &[(0, 5, 5)]), 0.0);
        w.add(report("b", 0.0, &[(1, 5, 5)]), 0.0);
        let mut rejoins = Vec::new();
        for t in 1..=40 {
            let t = t as f64;
            w.add(report("a", t, &[(0, 5, 5)]), t);
            if let Some(why) = w.rejoin(t) {
                rejoins.push((t, why));
            }
        }
        // Stranded from t = 4 (b silent > 3 s), rejoin at 12, 20, 28, 36.
        let at: Vec<f64> = rejoins.iter().map(|r| r.0).collect();
        assert_eq!(at, [12.0, 20.0, 28.0, 36.0]);
        assert!(
            rejoins[0].1.contains("[1]") && rejoins[0].1.contains('b'),
            "{}",
            rejoins[0].1
        );
    }

    #[test]
    fn a_member_that_leaves_strands_nothing() {
        let mut w = watch();
        w.add(report("a", 0.0, &[(0, 5, 5)]), 0.0);
        let mut left = report("b", 0.5, &[]);
        left.leaving = true;
        w.add(report("b", 0.0, &[(1, 5, 5)]), 0.0);
        w.add(left, 0.5);
        for t in 1..=20 {
            w.add(report("a", t as f64, &[(0, 5, 5)]), t as f64);
            assert_eq!(w.rejoin(t as f64), None);
        }
    }

    #[test]
    fn the_stream_is_done_when_every_partition_is_consumed_after_the_end_settled() {
        let mut w = watch();
        w.add(report("a", 1.0, &[(0, 10, 10)]), 1.0);
        w.add(report("b", 1.0, &[(1, 10, 8)]), 1.0);
        assert!(!w.stream_done(), "no end announced");
        let end = StreamEnd {
            version: REPORT_VERSION,
            group: "g".into(),
            topic: "t".into(),
            produced_msgs: Some(25),
            time_unix_ms: ((T0 + 2.0) * 1e3) as u64,
        };
        w.stream_end(end.clone(), 2.0);
        assert!(!w.stream_done(), "reports older than the end");
        w.add(report("a", 4.0, &[(0, 12, 12)]), 4.0);
        w.add(report("b", 4.0, &[(1, 13, 13)]), 4.0);
        assert!(w.stream_done(), "25 in the end offsets, no lag");
        // A member behind keeps everyone in.
        w.add(report("b", 5.0, &[(1, 14, 13)]), 5.0);
        assert!(!w.stream_done());
        // Fewer messages in the end offsets than were produced: not yet (end offsets not refreshed).
        let mut w2 = watch();
        w2.stream_end(end, 2.0);
        w2.add(report("a", 4.0, &[(0, 12, 12)]), 4.0);
        w2.add(report("b", 4.0, &[(1, 10, 10)]), 4.0);
        assert!(!w2.stream_done());
    }

    #[test]
    fn an_earlier_runs_reports_are_left_out() {
        let mut w = watch();
        w.add(report("old", -100.0, &[(0, 5, 5)]), 0.0);
        w.add(report("a", 0.0, &[(1, 5, 5)]), 0.0);
        assert!(w.stranded(50.0).is_empty() || !w.stranded(50.0).contains(&0));
    }

    #[test]
    fn another_groups_or_an_older_runs_end_is_ignored() {
        let mut w = watch();
        w.add(report("a", 4.0, &[(0, 0, 0)]), 4.0);
        let end = |group: &str, t: f64| StreamEnd {
            version: REPORT_VERSION,
            group: group.into(),
            topic: "t".into(),
            produced_msgs: None,
            time_unix_ms: ((T0 + t) * 1e3) as u64,
        };
        w.stream_end(end("other", 1.0), 1.0);
        w.stream_end(end("g", -10.0), 1.0);
        assert!(w.announced().is_none());
        w.stream_end(end("g", 1.0), 1.0);
        assert!(w.stream_done());
    }
}
