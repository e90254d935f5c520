//! The control topic: a thread reads commands ([`pilot_core::contract::control`]) from the topic's end, queues
//! them for the sender, answers malformed ones with their reason at once, and sends the sender's
//! acknowledgements. The sender applies the queued commands before each frame ([`Obey`]): stop, pause and
//! resume, a new rate are the schedule's; flat/dark re-takes and row bands the source's.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use pilot_core::contract::control::{self, Answer, Command, ControlMessage};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::{kafka_err, Connection, ProduceError};

/// What the control thread and the sender share.
#[derive(Default)]
pub struct ControlState {
    commands: Mutex<VecDeque<Command>>,
    answers: Mutex<Vec<Answer>>,
    /// Commands read, malformed messages answered.
    pub received: std::sync::atomic::AtomicU64,
    pub malformed: std::sync::atomic::AtomicU64,
}

impl ControlState {
    /// A command for the sender (also what tests inject).
    pub fn push(&self, c: Command) {
        self.commands.lock().expect("control queue").push_back(c);
    }

    /// The next queued command.
    pub fn pop(&self) -> Option<Command> {
        self.commands.lock().expect("control queue").pop_front()
    }

    /// An answer to send.
    pub fn answer(&self, a: Answer) {
        self.answers.lock().expect("answers").push(a);
    }

    /// The answers not sent yet.
    pub fn take_answers(&self) -> Vec<Answer> {
        std::mem::take(&mut *self.answers.lock().expect("answers"))
    }

    /// Sort one control message: a command queued, a malformed one answered, an answer (ours) ignored.
    pub fn take(&self, bytes: &[u8]) {
        match control::parse(bytes) {
            ControlMessage::Command(c) => {
                self.received.fetch_add(1, Ordering::Relaxed);
                self.push(c);
            }
            ControlMessage::Malformed { text, reason } => {
                self.malformed.fetch_add(1, Ordering::Relaxed);
                self.answer(Answer::Rejected {
                    rejected: text,
                    reason,
                });
            }
            ControlMessage::Answer(_) => {}
        }
    }
}

/// The control thread's connection: a consumer assigned to every partition of the topic from its end (no group,
/// so no rebalance delay) and a producer for the answers.
pub struct ControlLink {
    consumer: BaseConsumer,
    producer: BaseProducer,
    topic: String,
}

impl ControlLink {
    /// Open the link; `create`: make the topic (one partition) when it is missing.
    pub fn open(
        conn: &Connection,
        topic: &str,
        run_id: &str,
        create: bool,
    ) -> Result<Self, ProduceError> {
        let admin = pilot_core::contract::admin::KafkaAdmin::new(
            &conn.bootstrap,
            &conn.client,
            Duration::from_secs(10),
        );
        if create {
            admin.ensure_topic(topic, 1, 1)?;
        }
        let mut cfg = conn
            .client
            .consumer_config(&conn.bootstrap, &format!("{run_id}-control"));
        cfg.set("enable.auto.commit", "false");
        let consumer: BaseConsumer = cfg
            .create()
            .map_err(|e| kafka_err(conn, "creating the control consumer", e))?;
        let meta = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(|e| kafka_err(conn, "control topic lookup", e))?;
        let partitions = meta
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().len())
            .unwrap_or(0);
        if partitions == 0 {
            return Err(kafka_err(
                conn,
                "control topic lookup",
                format!("control topic `{topic}` has no partitions (create it first, or pass --create-topic)"),
            ));
        }
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            tpl.add_partition_offset(topic, p, Offset::End)
                .map_err(|e| kafka_err(conn, "control topic assignment", e))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| kafka_err(conn, "control topic assignment", e))?;
        let producer: BaseProducer = conn
            .client
            .producer_config(&conn.bootstrap)
            .create()
            .map_err(|e| kafka_err(conn, "creating the control producer", e))?;
        Ok(ControlLink {
            consumer,
            producer,
            topic: topic.to_string(),
        })
    }

    /// Read and answer until `done`; then send the last answers.
    pub fn run(&self, state: &ControlState, done: &AtomicBool) {
        while !done.load(Ordering::Relaxed) {
            if let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(50)) {
                state.take(m.payload().unwrap_or_default());
            }
            self.send_answers(state);
        }
        self.send_answers(state);
        let _ = self.producer.flush(Duration::from_secs(5));
    }

    fn send_answers(&self, state: &ControlState) {
        for a in state.take_answers() {
            let text = control::answer_json(&a);
            let _ = self
                .producer
                .send(BaseRecord::<(), str>::to(&self.topic).payload(&text));
        }
        self.producer.poll(Duration::ZERO);
    }
}

/// What the sender does next after the queued commands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Obey {
    /// Send frame `seq` on the schedule as it is.
    Go,
    /// Send it on a new schedule starting now, at this rate (None: the same rate).
    Restart(Option<f64>),
    /// Send nothing more.
    Stop,
}

/// Apply the queued commands before frame `seq`: answer each with the frame it applied to. `wait` is called
/// while paused (it sleeps a little and says whether the run was shut down); a shutdown ends the pause.
pub fn obey(
    state: &ControlState,
    seq: u64,
    source: &mut dyn crate::source::Source,
    wait: &mut dyn FnMut() -> bool,
) -> Obey {
    let ack = |c: &Command| Answer::Ack {
        ack: c.id().map(str::to_string),
        command: c.name().to_string(),
        applied_at_frame: seq,
    };
    let mut next = Obey::Go;
    let mut paused = false;
    loop {
        let Some(c) = state.pop() else {
            if !paused {
                return next;
            }
            if wait() {
                return Obey::Stop;
            }
            continue;
        };
        match &c {
            Command::Stop { .. } => {
                state.answer(ack(&c));
                return Obey::Stop;
            }
            Command::Pause { .. } => {
                paused = true;
                state.answer(ack(&c));
            }
            Command::Resume { .. } => {
                if paused {
                    paused = false;
                    if next == Obey::Go {
                        next = Obey::Restart(None);
                    }
                }
                state.answer(ack(&c));
            }
            Command::SetRate { frames_per_s, .. } => {
                next = Obey::Restart(Some(*frames_per_s));
                state.answer(ack(&c));
            }
            Command::RetakeFields { .. } | Command::SetRows { .. } => match source.command(&c) {
                Ok(()) => state.answer(ack(&c)),
                Err(reason) => state.answer(Answer::Rejected {
                    rejected: control::command_json(&c),
                    reason,
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::{FrameParams, FrameSource};
    use pilot_core::contract::message::Encoding;

    fn source() -> FrameSource {
        let p = FrameParams {
            rows: 4,
            cols: 8,
            ..FrameParams::default()
        };
        FrameSource::new(p, 0, Encoding::Envelope).unwrap()
    }

    #[test]
    fn commands_are_applied_before_a_frame_and_acknowledged_with_it() {
        let state = ControlState::default();
        let mut src = source();
        let mut never = || false;
        assert_eq!(obey(&state, 3, &mut src, &mut never), Obey::Go);
        state.take(br#"{"command":"set_rate","frames_per_s":50,"id":"r"}"#);
        state.take(br#"{"command":"retake_fields"}"#);
        state.take(b"garbage");
        state.take(br#"{"ack":"x","command":"stop","applied_at_frame":1}"#);
        assert_eq!(
            obey(&state, 7, &mut src, &mut never),
            Obey::Restart(Some(50.0))
        );
        let answers = state.take_answers();
        assert_eq!(answers.len(), 3, "{answers:?}");
        assert!(
            matches!(&answers[0], Answer::Rejected { reason, .. } if reason.contains("not JSON"))
        );
        assert_eq!(
            answers[1],
            Answer::Ack {
                ack: Some("r".into()),
                command: "set_rate".into(),
                applied_at_frame: 7
            }
        );
        assert!(
            matches!(&answers[2], Answer::Ack { command, applied_at_frame: 7, .. } if command == "retake_fields")
        );
        // A row band the detector does not have is refused with the reason; the source goes on.
        state.take(br#"{"command":"set_rows","first_row":3,"rows":5}"#);
        assert_eq!(obey(&state, 8, &mut src, &mut never), Obey::Go);
        assert!(
            matches!(&state.take_answers()[0], Answer::Rejected { reason, .. } if reason.contains("outside"))
        );
        assert_eq!(state.malformed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_pause_holds_the_frame_until_resume_or_stop() {
        let state = ControlState::default();
        let mut src = source();
        state.take(br#"{"command":"pause","id":"p"}"#);
        let mut waited = 0;
        let mut wait = || {
            waited += 1;
            if waited == 3 {
                state.take(br#"{"command":"resume"}"#);
            }
            false
        };
        assert_eq!(obey(&state, 12, &mut src, &mut wait), Obey::Restart(None));
        assert_eq!(waited, 3);
        let acks: Vec<u64> = state
            .take_answers()
            .iter()
            .map(|a| match a {
                Answer::Ack {
                    applied_at_frame, ..
                } => *applied_at_frame,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(acks, vec![12, 12]);
        // Paused, then stopped; or shut down while paused.
        state.take(br#"{"command":"pause"}"#);
        state.take(br#"{"command":"stop"}"#);
        assert_eq!(obey(&state, 20, &mut src, &mut || false), Obey::Stop);
        state.take(br#"{"command":"pause"}"#);
        assert_eq!(obey(&state, 21, &mut src, &mut || true), Obey::Stop);
    }
}
