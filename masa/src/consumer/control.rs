//! MASA's control file: how an experiment's `slow` and `rejoin` faults reach a running consumer. Re-read with
//! every interval row (see [`super::intervals`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::processor::CostDial;

/// What MASA's control file may say (TOML, re-read every interval while it changes).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// The emulated cost per message from now on, ms (0: none).
    pub cost_ms_per_message: Option<f64>,
    /// Raised by one each time every consumer thread is to leave its group and join again (after a member
    /// died on a broker that keeps a dead leader: see `pilot_core::ops::fault::FaultAction::Rejoin`).
    pub rejoin: Option<u64>,
}

/// A control file that cannot be used (the consumer goes on as it was).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ControlError {
    pub path: PathBuf,
    pub message: String,
}

/// Read `path` and set `dial` (and raise `rejoin`) from it; `Ok(None)` when there is no file (yet) or it sets no
/// cost, `Ok(Some(note))` when a cost was applied, `Err` (naming the file) when it cannot be used, and the dial is
/// left alone.
pub fn apply_control(
    path: &Path,
    dial: &CostDial,
    rejoin: &AtomicU64,
) -> Result<Option<String>, ControlError> {
    let err = |message: String| ControlError {
        path: path.to_path_buf(),
        message,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e.to_string())),
    };
    let c: Control = toml::from_str(&text).map_err(|e| err(e.message().to_string()))?;
    if let Some(n) = c.rejoin {
        rejoin.fetch_max(n, Ordering::SeqCst);
    }
    match c.cost_ms_per_message {
        Some(ms) if ms.is_finite() && (0.0..=60_000.0).contains(&ms) => {
            dial.set(Duration::from_secs_f64(ms / 1e3));
            Ok(Some(format!(
                "cost set to {ms} ms per message by {}",
                path.display()
            )))
        }
        Some(ms) => Err(err(format!(
            "cost_ms_per_message must be in [0, 60000] (got {ms})"
        ))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(text: Option<&str>) -> (Result<Option<String>, ControlError>, Duration, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.toml");
        if let Some(t) = text {
            std::fs::write(&path, t).unwrap();
        }
        let dial = CostDial::new(None);
        let rejoin = AtomicU64::new(2);
        let r = apply_control(&path, &dial, &rejoin);
        (r, dial.get(), rejoin.load(Ordering::SeqCst))
    }

    #[test]
    fn no_file_changes_nothing() {
        let (r, cost, rejoin) = apply(None);
        assert_eq!(r, Ok(None));
        assert_eq!((cost, rejoin), (Duration::ZERO, 2));
    }

    #[test]
    fn a_cost_and_a_rejoin_are_applied() {
        let (r, cost, rejoin) = apply(Some("cost_ms_per_message = 15\nrejoin = 3\n"));
        assert!(r
            .unwrap()
            .unwrap()
            .contains("cost set to 15 ms per message"));
        assert_eq!((cost, rejoin), (Duration::from_millis(15), 3));
    }

    #[test]
    fn an_older_rejoin_count_is_ignored() {
        let (r, _, rejoin) = apply(Some("rejoin = 1\n"));
        assert_eq!(r, Ok(None));
        assert_eq!(rejoin, 2);
    }

    #[test]
    fn bad_files_are_refused_with_the_file_named_and_the_dial_left_alone() {
        for text in [
            "cost_ms_per_message = -1\n",
            "cost_ms_per_message = 1e9\n",
            "cost = 3\n",
            "not toml",
        ] {
            let (r, cost, _) = apply(Some(text));
            let e = r.unwrap_err();
            assert!(e.to_string().contains("control.toml"), "{e}");
            assert_eq!(cost, Duration::ZERO, "{text}");
        }
    }
}
