//! Accounting for every message: which (producer id, sequence) pairs arrived, how often, and what was
//! rejected and why. Received sequences are kept per producer as sorted, merged ranges, so a run of millions of
//! messages costs a few ranges. Accounts from several consumer processes (one consumer group) are merged
//! ([`Accounting::merge`]) before deciding what is missing, since each process sees only its partitions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What happened to one arriving message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    First,
    Duplicate,
}

/// Received sequences of one producer as half-open ranges `[start, end)`, sorted and disjoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranges(pub Vec<(u64, u64)>);

impl Ranges {
    /// Insert `s` (below `u64::MAX`, which a range end cannot follow; the decoder refuses it); false if it was
    /// already there.
    pub fn insert(&mut self, s: u64) -> bool {
        let s = s.min(u64::MAX - 1);
        let v = &mut self.0;
        // Fast path: in-order arrival extends the last range.
        if let Some(last) = v.last_mut() {
            if last.1 == s {
                last.1 += 1;
                return true;
            }
            if last.0 <= s && s < last.1 {
                return false;
            }
        }
        let i = v.partition_point(|r| r.1 < s);
        if i < v.len() && v[i].0 <= s && s < v[i].1 {
            return false;
        }
        // Extend or merge neighbours.
        let joins_left = i < v.len() && v[i].1 == s;
        let joins_right = if joins_left {
            i + 1 < v.len() && v[i + 1].0 == s + 1
        } else {
            i < v.len() && v[i].0 == s + 1
        };
        match (joins_left, joins_right) {
            (true, true) => {
                v[i].1 = v[i + 1].1;
                v.remove(i + 1);
            }
            (true, false) => v[i].1 += 1,
            (false, true) => v[i].0 = s,
            (false, false) => v.insert(i, (s, s + 1)),
        }
        true
    }

    /// Number of sequences held.
    pub fn count(&self) -> u64 {
        self.0.iter().map(|(a, b)| b - a).sum()
    }

    /// Largest sequence + 1 (0 when empty).
    pub fn end(&self) -> u64 {
        self.0.last().map_or(0, |r| r.1)
    }

    /// Add every sequence of `other`; returns how many were already here.
    pub fn merge(&mut self, other: &Ranges) -> u64 {
        let mut dups = 0;
        for &(a, b) in &other.0 {
            for s in a..b {
                if !self.insert(s) {
                    dups += 1;
                }
            }
        }
        dups
    }
}

/// One consumer's (or a merged) account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accounting {
    /// Received sequences per producer id.
    pub received: BTreeMap<u32, Ranges>,
    /// Arrivals of a (producer, sequence) already seen.
    pub duplicates: u64,
    /// Rejected messages by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Messages without MASS's accounting fields (another producer's), processed but not attributable to a
    /// producer and sequence. (`default`: accounts written before this field existed still load.)
    #[serde(default)]
    pub unaccounted: u64,
}

/// Totals of an account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Distinct (producer, sequence) pairs received.
    pub received: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Gaps below each producer's highest sequence, or `expected - received` when larger.
    pub missing: u64,
    /// Messages without MASS's accounting (see [`Accounting::unaccounted`]).
    pub unaccounted: u64,
}

impl Accounting {
    /// Record an arrival.
    pub fn record(&mut self, producer: u32, sequence: u64) -> Arrival {
        if self.received.entry(producer).or_default().insert(sequence) {
            Arrival::First
        } else {
            self.duplicates += 1;
            Arrival::Duplicate
        }
    }

    /// Record a message that carries no producer and sequence.
    pub fn record_unaccounted(&mut self) {
        self.unaccounted += 1;
    }

    /// Record a rejected message.
    pub fn reject(&mut self, reason: &str) {
        *self.rejected.entry(reason.to_string()).or_default() += 1;
    }

    /// Fold another account in (a second consumer process of the same group).
    pub fn merge(&mut self, other: &Accounting) {
        for (p, r) in &other.received {
            self.duplicates += self.received.entry(*p).or_default().merge(r);
        }
        self.duplicates += other.duplicates;
        for (k, v) in &other.rejected {
            *self.rejected.entry(k.clone()).or_default() += v;
        }
        self.unaccounted += other.unaccounted;
    }

    /// Totals; `expected` is how many messages were produced when the run declares it.
    pub fn totals(&self, expected: Option<u64>) -> Totals {
        // Saturating: a corrupt sequence number near u64::MAX must not overflow the sums.
        let received = self
            .received
            .values()
            .fold(0u64, |a, r| a.saturating_add(r.count()));
        let gaps = self
            .received
            .values()
            .fold(0u64, |a, r| a.saturating_add(r.end() - r.count()));
        let short = expected.map_or(0, |e| e.saturating_sub(received));
        Totals {
            received,
            duplicates: self.duplicates,
            rejected: self
                .rejected
                .values()
                .fold(0u64, |a, &r| a.saturating_add(r)),
            missing: gaps.max(short),
            unaccounted: self.unaccounted,
        }
    }

    /// Each producer's received sequences as half-open ranges, `p<id> a..b` (`+` between ranges of one producer),
    /// at most `max_ranges` ranges in all and then `...`: where a run's missing messages were.
    pub fn received_text(&self, max_ranges: usize) -> String {
        let mut out = Vec::new();
        let mut shown = 0;
        for (p, r) in &self.received {
            if shown >= max_ranges {
                out.push("...".to_string());
                break;
            }
            let take = (max_ranges - shown).min(r.0.len());
            let mut ranges: Vec<String> = r.0[..take]
                .iter()
                .map(|(a, b)| format!("{a}..{b}"))
                .collect();
            if take < r.0.len() {
                ranges.push("...".into());
            }
            shown += take;
            out.push(format!("p{p} {}", ranges.join("+")));
        }
        out.join(", ")
    }

    /// `reason=count;...` for CSV.
    pub fn rejected_text(&self) -> String {
        self.rejected
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_text_shows_where_the_gaps_are_within_a_bound() {
        let mut a = Accounting::default();
        for s in (0..10).chain(20..30) {
            a.record(3, s);
        }
        for s in [0, 2, 4, 6] {
            a.record(1, s);
        }
        assert_eq!(
            a.received_text(12),
            "p1 0..1+2..3+4..5+6..7, p3 0..10+20..30"
        );
        assert_eq!(a.received_text(3), "p1 0..1+2..3+4..5+..., ...");
        assert_eq!(Accounting::default().received_text(5), "");
    }

    #[test]
    fn ranges_merge_in_any_order() {
        let mut r = Ranges::default();
        for s in [5, 3, 4, 0, 1, 9, 2, 8] {
            assert!(r.insert(s));
        }
        assert_eq!(r.0, vec![(0, 6), (8, 10)]);
        assert!(!r.insert(4) && !r.insert(9));
        assert!(r.insert(7));
        assert_eq!(r.0, vec![(0, 6), (7, 10)]);
        assert!(r.insert(6));
        assert_eq!(r.0, vec![(0, 10)]);
        assert_eq!((r.count(), r.end()), (10, 10));
    }

    #[test]
    fn gaps_duplicates_and_rejections_are_counted() {
        let mut a = Accounting::default();
        for s in [0, 1, 2, 4, 5] {
            a.record(7, s);
        }
        assert_eq!(a.record(7, 2), Arrival::Duplicate);
        a.record(8, 0);
        a.reject("bad magic");
        a.reject("bad magic");
        let t = a.totals(None);
        assert_eq!(
            t,
            Totals {
                received: 6,
                duplicates: 1,
                rejected: 2,
                missing: 1,
                unaccounted: 0
            }
        );
        // The producer sent 10 in all: the tail is missing too.
        assert_eq!(a.totals(Some(10)).missing, 4);
        assert_eq!(a.rejected_text(), "bad magic=2");
    }

    /// Regression (found by the hostile-input test): corrupt sequence numbers near u64::MAX overflowed the sums.
    #[test]
    fn huge_sequence_numbers_saturate_instead_of_overflowing() {
        let mut a = Accounting::default();
        a.record(1, u64::MAX - 1);
        a.record(2, u64::MAX - 1);
        a.record(3, u64::MAX);
        let t = a.totals(Some(3));
        assert_eq!((t.received, t.missing), (3, u64::MAX));
    }

    #[test]
    fn two_consumers_of_one_group_merge_into_a_whole() {
        let (mut a, mut b) = (Accounting::default(), Accounting::default());
        for s in 0..100u64 {
            if s % 3 == 0 {
                a.record(1, s)
            } else {
                b.record(1, s)
            };
        }
        assert!(a.totals(None).missing > 0, "alone, each sees gaps");
        a.merge(&b);
        assert_eq!(
            a.totals(Some(100)),
            Totals {
                received: 100,
                duplicates: 0,
                rejected: 0,
                missing: 0,
                unaccounted: 0
            }
        );
        let mut c = Accounting::default();
        c.record(1, 5);
        a.merge(&c);
        assert_eq!(
            a.totals(Some(100)).duplicates,
            1,
            "delivered to both processes"
        );
    }
}
