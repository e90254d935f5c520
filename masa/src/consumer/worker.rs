//! Stage 3, a consumer thread: poll -> handle ([`super::MessageHandler`]) -> ledger (which offsets may be
//! committed) -> close time windows -> checkpoint and store offsets every [`super::CHECKPOINT_NS`] -> rejoin the
//! group when the control file asks, until the [`StopRule`] says the run is over; then the open window is
//! processed, the last offsets stored and committed, and what the thread leaves behind in its partitions measured.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use pilot_core::contract::clock::Clock;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::Message;

use super::group::{commit_and_measure_lag, GroupConsumer};
use super::handler::{MessageHandler, ThreadOut};
use super::CHECKPOINT_NS;
use crate::config::ConsumerPlan;
use crate::processor::Processor;

/// How long one poll waits for a message.
const POLL: Duration = Duration::from_millis(50);

/// Why a run stopped (the summary's `stop_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The plan's message count was received.
    Messages,
    /// The plan's duration ran out.
    Duration,
    /// No message (nor rebalance) for the idle timeout: the safety net, not the way a run should end.
    IdleTimeout,
    /// No first message within the start timeout.
    StartTimeout,
    /// The stream's end was announced and the group consumed all of it.
    StreamEnd,
    /// SIGINT or SIGTERM.
    Interrupted,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Messages => "messages",
            StopReason::Duration => "duration",
            StopReason::IdleTimeout => "idle-timeout",
            StopReason::StartTimeout => "start-timeout",
            StopReason::StreamEnd => "stream-end",
            StopReason::Interrupted => "interrupted",
        }
    }
}

/// When a run ends: its message count, its duration, an idle spell (before the first message the start timeout
/// instead), or a stop flag (SIGINT/SIGTERM, the stream's end, or another thread that stopped).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StopRule {
    pub messages: Option<u64>,
    pub end_ns: Option<u64>,
    pub idle_ns: u64,
    pub start_timeout_ns: u64,
}

impl StopRule {
    /// The plan's rule for a run that started at `start_ns`, its consumers' session timeout `session_s`: the
    /// start timeout is at least that long, since a group's first join can take half a session timeout (the
    /// default tansu build holds it that long) and a rebalance up to a whole one.
    pub fn new(plan: &ConsumerPlan, start_ns: u64, session_s: f64) -> Self {
        use pilot_core::contract::config::seconds_to_ns;
        StopRule {
            messages: plan.messages,
            end_ns: plan.duration_s.map(|d| start_ns + seconds_to_ns(d)),
            idle_ns: seconds_to_ns(plan.idle_timeout_s),
            start_timeout_ns: seconds_to_ns(plan.start_timeout_s.max(session_s)),
        }
    }

    /// Why the run is over at `now_ns`, with `received` messages so far and the last activity (a message or a
    /// rebalance) at `last_activity_ns`; None while it goes on.
    pub fn reached(&self, now_ns: u64, received: u64, last_activity_ns: u64) -> Option<StopReason> {
        let quiet = now_ns.saturating_sub(last_activity_ns);
        if self.messages.is_some_and(|m| received >= m) {
            Some(StopReason::Messages)
        } else if self.end_ns.is_some_and(|e| now_ns >= e) {
            Some(StopReason::Duration)
        } else if received == 0 && quiet >= self.start_timeout_ns {
            Some(StopReason::StartTimeout)
        } else if received > 0 && quiet >= self.idle_ns {
            Some(StopReason::IdleTimeout)
        } else {
            None
        }
    }
}

/// The flags every thread of a process watches: the injected shutdown (SIGINT/SIGTERM), the stream's end (set
/// by the interval stage once the group has consumed it), and the reason, set by the first thread that stops so
/// the others stop with it.
pub struct StopFlags<'a> {
    pub shutdown: &'a AtomicBool,
    pub stream_done: AtomicBool,
    pub reason: OnceLock<StopReason>,
}

impl<'a> StopFlags<'a> {
    pub fn new(shutdown: &'a AtomicBool) -> Self {
        StopFlags {
            shutdown,
            stream_done: AtomicBool::new(false),
            reason: OnceLock::new(),
        }
    }

    /// Whether the run stops now: a flag, or `rule` (the first reason is kept).
    pub fn check(
        &self,
        rule: &StopRule,
        now_ns: u64,
        received: u64,
        last_activity_ns: u64,
    ) -> bool {
        if self.reason.get().is_some() {
            return true;
        }
        let why = if self.shutdown.load(Ordering::Relaxed) {
            Some(StopReason::Interrupted)
        } else if self.stream_done.load(Ordering::Relaxed) {
            Some(StopReason::StreamEnd)
        } else {
            rule.reached(now_ns, received, last_activity_ns)
        };
        match why {
            Some(r) => {
                let _ = self.reason.set(r);
                true
            }
            None => false,
        }
    }
}

/// One consumer thread.
pub(crate) struct Worker<'a> {
    pub consumer: &'a GroupConsumer,
    pub handler: MessageHandler<'a>,
    pub topic: &'a str,
    pub clock: &'a dyn Clock,
    /// The control file's rejoin count, and the last this thread acted on.
    pub rejoin: &'a AtomicU64,
    pub rejoined: u64,
    pub last_checkpoint_ns: u64,
}

impl Worker<'_> {
    /// Consume until the stop rule or a flag, then finish: the processor and what the thread kept.
    pub fn run(
        mut self,
        rule: &StopRule,
        flags: &StopFlags,
        last_activity: &AtomicU64,
    ) -> (Box<dyn Processor>, ThreadOut) {
        loop {
            let received = self.handler.shared().received.load(Ordering::Relaxed);
            let now = self.clock.now_ns();
            if flags.check(rule, now, received, last_activity.load(Ordering::Relaxed)) {
                break;
            }
            self.step();
        }
        self.finish()
    }

    /// One poll and what follows it.
    fn step(&mut self) {
        let now = || self.clock.now_ns();
        match self.consumer.poll(POLL) {
            Some(Ok(m)) => {
                self.handler.handle(
                    m.key(),
                    m.payload().unwrap_or_default(),
                    m.timestamp().to_millis(),
                    &now,
                );
                let recorded = self.handler.recorded.take();
                if let Ok(mut l) = self.consumer.context().ledger.lock() {
                    l.handled(
                        self.consumer,
                        self.topic,
                        m.partition(),
                        m.offset(),
                        recorded,
                    );
                }
            }
            Some(Err(e)) => self.handler.out.errors.push(e.to_string()),
            None => {}
        }
        self.handler.tick(&now);
        let t = now();
        if t.saturating_sub(self.last_checkpoint_ns) >= CHECKPOINT_NS {
            if self.store() {
                // Committed at once, not at the next auto-commit: a consumer that dies now leaves at most a
                // checkpoint interval of handled messages for the next owner to read again.
                let _ = self.consumer.commit_consumer_state(CommitMode::Async);
            }
            self.handler.publish_interval_latency();
            self.last_checkpoint_ns = t;
        }
        self.rejoin_if_asked();
    }

    /// Checkpoint and store the offsets of what was handled; whether any was stored.
    fn store(&self) -> bool {
        match self.consumer.context().ledger.lock() {
            Ok(mut l) => l.store(self.consumer, self.topic),
            Err(_) => false,
        }
    }

    /// When the control file raised the rejoin count: commit what is handled, leave the group and join it again.
    fn rejoin_if_asked(&mut self) {
        let want = self.rejoin.load(Ordering::SeqCst);
        if want <= self.rejoined {
            return;
        }
        let _ = self.store();
        let _ = self.consumer.commit_consumer_state(CommitMode::Sync);
        self.consumer.unsubscribe();
        if let Err(e) = self.consumer.subscribe(&[self.topic]) {
            self.handler
                .out
                .errors
                .push(format!("rejoining the group: {e}"));
        }
        self.rejoined = want;
    }

    /// Process the open window, store and commit the last offsets, and measure the lag left behind.
    fn finish(mut self) -> (Box<dyn Processor>, ThreadOut) {
        let clock = self.clock;
        self.handler.flush(&|| clock.now_ns());
        let _ = self.store();
        self.handler.publish_interval_latency();
        if let Ok(mut l) = self.consumer.context().ledger.lock() {
            self.handler.out.errors.append(&mut l.errors);
        }
        let (processor, mut out) = self.handler.into_parts();
        out.lag = commit_and_measure_lag(self.consumer, self.topic);
        (processor, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn rule() -> StopRule {
        StopRule {
            messages: Some(100),
            end_ns: Some(60 * S),
            idle_ns: 5 * S,
            start_timeout_ns: 30 * S,
        }
    }

    #[test]
    fn the_run_goes_on_while_nothing_is_reached() {
        assert_eq!(rule().reached(10 * S, 50, 8 * S), None);
    }

    #[test]
    fn the_message_count_and_the_duration_end_a_run() {
        assert_eq!(
            rule().reached(10 * S, 100, 10 * S),
            Some(StopReason::Messages)
        );
        assert_eq!(
            rule().reached(60 * S, 3, 60 * S),
            Some(StopReason::Duration)
        );
    }

    #[test]
    fn before_the_first_message_the_start_timeout_applies_not_the_idle_timeout() {
        assert_eq!(
            rule().reached(20 * S, 0, 0),
            None,
            "20 s of waiting to start is fine"
        );
        assert_eq!(rule().reached(30 * S, 0, 0), Some(StopReason::StartTimeout));
        assert_eq!(
            rule().reached(20 * S, 1, 15 * S),
            Some(StopReason::IdleTimeout),
            "5 s idle after a message ends it"
        );
    }

    #[test]
    fn the_first_reason_stands_and_flags_come_before_the_rule() {
        let shutdown = AtomicBool::new(false);
        let flags = StopFlags::new(&shutdown);
        assert!(!flags.check(&rule(), 10 * S, 50, 8 * S));
        flags.stream_done.store(true, Ordering::Relaxed);
        assert!(
            flags.check(&rule(), 10 * S, 100, 10 * S),
            "the stream end, not the count"
        );
        shutdown.store(true, Ordering::Relaxed);
        assert!(flags.check(&rule(), 10 * S, 100, 10 * S));
        assert_eq!(flags.reason.get(), Some(&StopReason::StreamEnd));
    }

    #[test]
    fn a_plan_without_counts_runs_until_idle() {
        let r = StopRule {
            messages: None,
            end_ns: None,
            ..rule()
        };
        assert_eq!(r.reached(1000 * S, u64::MAX - 1, 999 * S), None);
        assert_eq!(
            r.reached(1000 * S, 5, 995 * S),
            Some(StopReason::IdleTimeout)
        );
    }
}
