//! Commands to a frame source, and its answers, on a control topic: what steering sends and MASS obeys. One
//! JSON object per message, so an instrument's own software can send the same commands.
//!
//! Commands (`"command"` names one; `"id"` is optional and echoed back):
//!
//! | command | fields | effect |
//! |---|---|---|
//! | `stop` | | end the acquisition (the run ends as if its stop rule had) |
//! | `pause` / `resume` | | hold frames back / send them again (the schedule restarts from the resume) |
//! | `set_rate` | `frames_per_s` (> 0) | frames per second from now on |
//! | `retake_fields` | | darks and flats again, under a new flat/dark epoch, before the next projection |
//! | `set_rows` | `first_row`, `rows` | send only these detector rows (a band inside the frame) |
//!
//! Answers, on the same topic: `{"ack": ID, "command": NAME, "applied_at_frame": N}` (the first frame index
//! the command applied to; a stop's is the first frame not sent) or `{"rejected": TEXT, "reason": WHY}` for a
//! malformed or unknown command. A rejected command never stops the source.

use serde::{Deserialize, Serialize};

/// A command to a frame source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    Stop {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    Pause {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    Resume {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    SetRate {
        frames_per_s: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    RetakeFields {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    SetRows {
        first_row: u32,
        rows: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Stop { .. } => "stop",
            Command::Pause { .. } => "pause",
            Command::Resume { .. } => "resume",
            Command::SetRate { .. } => "set_rate",
            Command::RetakeFields { .. } => "retake_fields",
            Command::SetRows { .. } => "set_rows",
        }
    }

    pub fn id(&self) -> Option<&str> {
        match self {
            Command::Stop { id }
            | Command::Pause { id }
            | Command::Resume { id }
            | Command::SetRate { id, .. }
            | Command::RetakeFields { id }
            | Command::SetRows { id, .. } => id.as_deref(),
        }
    }
}

/// A source's answer to a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    Ack {
        ack: Option<String>,
        command: String,
        applied_at_frame: u64,
    },
    Rejected {
        rejected: String,
        reason: String,
    },
}

/// What a control message is: a command, a source's answer (on the same topic, ignored by the source), or
/// something malformed (answered with [`Answer::Rejected`]).
#[derive(Debug, Clone, PartialEq)]
pub enum ControlMessage {
    Command(Command),
    Answer(Answer),
    Malformed { text: String, reason: String },
}

/// Largest control message read; anything longer is malformed.
pub const MAX_CONTROL_BYTES: usize = 4096;

/// Read a control message; never fails, never panics: what is not a command or an answer is `Malformed` with its
/// reason, and a command whose values make no sense (a rate of 0, no rows) too.
pub fn parse(bytes: &[u8]) -> ControlMessage {
    let shown = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned();
    let malformed = |reason: String| ControlMessage::Malformed {
        text: shown(bytes),
        reason,
    };
    if bytes.len() > MAX_CONTROL_BYTES {
        return malformed(format!(
            "{} bytes (control messages are at most {MAX_CONTROL_BYTES})",
            bytes.len()
        ));
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return malformed("not UTF-8 text".into());
    };
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return malformed(format!("not JSON: {e}")),
    };
    if value.get("ack").is_some() || value.get("rejected").is_some() {
        return match serde_json::from_value::<Answer>(value) {
            Ok(a) => ControlMessage::Answer(a),
            Err(e) => malformed(format!("a malformed answer: {e}")),
        };
    }
    if value.get("command").is_none() {
        return malformed(
            "no \"command\" (stop, pause, resume, set_rate, retake_fields, set_rows)".into(),
        );
    }
    let c: Command = match serde_json::from_value(value) {
        Ok(c) => c,
        Err(e) => return malformed(e.to_string()),
    };
    match &c {
        Command::SetRate { frames_per_s, .. }
            if !(frames_per_s.is_finite() && *frames_per_s > 0.0 && *frames_per_s <= 1e6) =>
        {
            malformed(format!(
                "frames_per_s {frames_per_s} (must be > 0 and at most 1e6)"
            ))
        }
        Command::SetRows { rows: 0, .. } => malformed("rows 0 (at least one row)".into()),
        _ => ControlMessage::Command(c),
    }
}

/// The JSON of an answer.
pub fn answer_json(a: &Answer) -> String {
    serde_json::to_string(a).expect("answers serialise")
}

/// The JSON of a command.
pub fn command_json(c: &Command) -> String {
    serde_json::to_string(c).expect("commands serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_print_back() {
        for text in [
            r#"{"command":"stop"}"#,
            r#"{"command":"pause","id":"p1"}"#,
            r#"{"command":"resume"}"#,
            r#"{"command":"set_rate","frames_per_s":250.0}"#,
            r#"{"command":"retake_fields","id":"f"}"#,
            r#"{"command":"set_rows","first_row":16,"rows":32}"#,
        ] {
            let ControlMessage::Command(c) = parse(text.as_bytes()) else {
                panic!("{text}")
            };
            assert_eq!(command_json(&c), text);
        }
        let ControlMessage::Command(c) = parse(br#"{"command":"pause","id":"p1"}"#) else {
            panic!()
        };
        assert_eq!((c.name(), c.id()), ("pause", Some("p1")));
    }

    #[test]
    fn answers_are_told_from_commands_and_bad_text_is_malformed_with_its_reason() {
        let ack = Answer::Ack {
            ack: Some("p1".into()),
            command: "pause".into(),
            applied_at_frame: 42,
        };
        assert_eq!(
            parse(answer_json(&ack).as_bytes()),
            ControlMessage::Answer(ack)
        );
        let rej = Answer::Rejected {
            rejected: "x".into(),
            reason: "not JSON".into(),
        };
        assert_eq!(
            parse(answer_json(&rej).as_bytes()),
            ControlMessage::Answer(rej)
        );
        let reason = |b: &[u8]| match parse(b) {
            ControlMessage::Malformed { reason, .. } => reason,
            other => panic!("{other:?}"),
        };
        assert!(reason(b"stop").contains("not JSON"));
        assert!(reason(b"\xff\xfe").contains("UTF-8"));
        assert!(reason(br#"{"command":"explode"}"#).contains("unknown variant"));
        assert!(reason(br#"{"command":"set_rate"}"#).contains("frames_per_s"));
        assert!(reason(br#"{"command":"set_rate","frames_per_s":0}"#).contains("> 0"));
        assert!(reason(br#"{"command":"stop","now":true}"#).contains("unknown field"));
        assert!(reason(br#"{"command":"set_rows","first_row":0,"rows":0}"#).contains("rows 0"));
        assert!(reason(br#"{"hello":1}"#).contains("no \"command\""));
        assert!(reason(&vec![b' '; 5000]).contains("at most"));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_to_something(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse(&bytes);
        }
    }
}
