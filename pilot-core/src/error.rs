//! The library's error type. Every variant names what failed and where, and, where there is one, what to do
//! about it: binaries print these through anyhow unchanged.

use std::path::PathBuf;

/// Errors from pilot-core. I/O variants carry the path they concern.
#[derive(Debug, thiserror::Error)]
pub enum PilotError {
    /// A pilot description (file or flags) that cannot be used; `origin` names the file or "command line".
    #[error("invalid pilot description ({origin}): {message}")]
    InvalidDescription { origin: String, message: String },

    /// A file or directory could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A state file that does not parse.
    #[error("corrupt state file {path}: {message}")]
    CorruptState { path: PathBuf, message: String },

    /// The broker program is not installed where we looked.
    #[error(
        "the {program} binary was not found (looked in: {searched}).\n  Install it with: {install}\n  or set its path in the description ([kafka] binary = \"/path/to/{program}\")"
    )]
    BinaryMissing {
        program: String,
        searched: String,
        install: String,
    },

    /// A node's address and port are already taken.
    #[error("port {port} on {address} is already in use{detail}; choose other addresses ([local] addresses) or another port ([kafka] port)")]
    PortInUse {
        address: String,
        port: u16,
        detail: String,
    },

    /// The resource cannot provide the requested allocation.
    #[error("allocation failed on {resource}: {message}")]
    Allocation { resource: String, message: String },

    /// A process could not be started.
    #[error("could not start {label} ({program}): {source}")]
    Launch {
        label: String,
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A framework process exited or never became ready. `log_tail` is the end of its log.
    #[error("{message}\n--- last lines of {log} ---\n{log_tail}")]
    FrameworkFailed {
        message: String,
        log: PathBuf,
        log_tail: String,
    },

    /// A readiness deadline passed.
    #[error("{what} not ready after {waited_s:.1} s: {last_error}")]
    NotReady {
        what: String,
        waited_s: f64,
        last_error: String,
    },

    /// An error reported by the Kafka client library.
    #[error("kafka {operation} against {bootstrap}: {message}")]
    Kafka {
        operation: String,
        bootstrap: String,
        message: String,
    },

    /// A pilot id with no state under the working directory.
    #[error("no pilot {id} under {dir} (see `pilot status --workdir {dir}`)")]
    UnknownPilot { id: String, dir: PathBuf },

    /// An operation that needs a pilot in another state.
    #[error("pilot {id} is {state}: {message}")]
    WrongState {
        id: String,
        state: String,
        message: String,
    },

    /// An operation interrupted by SIGINT/SIGTERM.
    #[error("interrupted by a shutdown signal while {during}")]
    Interrupted { during: String },
}

/// Result alias for pilot-core.
pub type Result<T, E = PilotError> = std::result::Result<T, E>;

impl PilotError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        PilotError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(origin: impl Into<String>, message: impl Into<String>) -> Self {
        PilotError::InvalidDescription {
            origin: origin.into(),
            message: message.into(),
        }
    }
}

/// The last `max_lines` lines of a log file, or a note saying why there are none.
pub fn log_tail(path: &std::path::Path, max_lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(max_lines);
            if lines.is_empty() {
                "(log is empty)".to_string()
            } else {
                lines[start..].join("\n")
            }
        }
        Err(e) => format!("(log unreadable: {e})"),
    }
}
