//! Pilot state on disk: `<working_directory>/<pilot-id>/pilot.json`, one [`PilotRecord`] per pilot, rewritten
//! atomically (write then rename) on every state change. This is how `pilot status`, `pilot stop` and
//! `pilot extend` find pilots started by another process.

use std::path::{Path, PathBuf};

use crate::contract::clock::now_utc;
use crate::contract::files::write_atomic;
use crate::error::{PilotError, Result};
use crate::pilots::record::PilotRecord;

/// The directory holding all pilots' state.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    /// The working directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A pilot's own directory.
    pub fn pilot_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.pilot_dir(id).join("pilot.json")
    }

    /// Reserve a fresh pilot id by creating its directory (exclusive: two processes never get the same id).
    pub fn reserve_id(&self) -> Result<String> {
        std::fs::create_dir_all(&self.root)
            .map_err(|e| PilotError::io("creating working directory", &self.root, e))?;
        loop {
            let id = new_pilot_id();
            let dir = self.pilot_dir(&id);
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(id),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(PilotError::io("creating pilot directory", &dir, e)),
            }
        }
    }

    /// Write `record` atomically.
    pub fn save(&self, record: &PilotRecord) -> Result<()> {
        let dir = self.pilot_dir(&record.id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| PilotError::io("creating pilot directory", &dir, e))?;
        let path = self.record_path(&record.id);
        let text = serde_json::to_string_pretty(record).expect("records serialise");
        write_atomic(&path, text.as_bytes()).map_err(|e| PilotError::io("writing", &path, e))
    }

    /// Load one pilot's record.
    pub fn load(&self, id: &str) -> Result<PilotRecord> {
        let path = self.record_path(id);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PilotError::UnknownPilot {
                    id: id.to_string(),
                    dir: self.root.clone(),
                })
            }
            Err(e) => return Err(PilotError::io("reading", &path, e)),
        };
        serde_json::from_str(&text).map_err(|e| PilotError::CorruptState {
            path,
            message: e.to_string(),
        })
    }

    /// Load a record and, if it claims to be live but its manager process is gone, mark it Failed (the
    /// manager's children died with it) and save that.
    pub fn load_reconciled(&self, id: &str) -> Result<PilotRecord> {
        let mut r = self.load(id)?;
        if !r.state.is_terminal() {
            if let Some(pid) = r.manager_pid {
                if !crate::pilots::process::same_process_alive(pid, r.manager_start_ticks) {
                    r.state = crate::pilots::record::PilotState::Failed;
                    r.reason = Some(format!(
                        "its manager process {pid} ended without cleaning up (see {})",
                        self.pilot_dir(id).join("agent.log").display()
                    ));
                    r.updated_utc = now_utc();
                    self.save(&r)?;
                }
            }
        }
        Ok(r)
    }

    /// Every pilot under the working directory, oldest first.
    pub fn list(&self) -> Result<Vec<PilotRecord>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(PilotError::io("listing", &self.root, e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            if entry.path().join("pilot.json").is_file() {
                let id = entry.file_name().to_string_lossy().to_string();
                out.push(self.load_reconciled(&id)?);
            }
        }
        out.sort_by(|a, b| a.created_utc.cmp(&b.created_utc).then(a.id.cmp(&b.id)));
        Ok(out)
    }
}

/// A new pilot id: `pilot-YYYYMMDD-HHMMSS-xxxx` (UTC; the suffix mixes time, process id and a counter).
pub fn new_pilot_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let now = std::time::SystemTime::now();
    let stamp = humantime::format_rfc3339_seconds(now).to_string();
    let digits: String = stamp.chars().filter(|c| c.is_ascii_digit()).collect();
    let nanos = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mix = nanos
        ^ std::process::id().rotate_left(16)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9);
    format!(
        "pilot-{}-{}-{:04x}",
        &digits[..8],
        &digits[8..14],
        (mix ^ (mix >> 16)) & 0xffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ids_are_unique_and_well_formed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let ids: std::collections::HashSet<String> =
            (0..1000).map(|_| store.reserve_id().unwrap()).collect();
        assert_eq!(ids.len(), 1000);
        let id = ids.iter().next().unwrap();
        assert!(
            id.starts_with("pilot-") && id.len() == "pilot-20261124-093812-a3f1".len(),
            "{id}"
        );
    }

    #[test]
    fn unknown_pilot_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = Store::new(dir.path())
            .load("pilot-x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no pilot pilot-x"), "{err}");
    }
}
