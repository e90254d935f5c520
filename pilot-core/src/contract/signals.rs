//! Shutdown signals: SIGINT and SIGTERM (what SLURM sends at walltime) set a flag that long-running loops poll,
//! so they can flush their results, mark them incomplete, and end their children by id.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::error::{PilotError, Result};

/// A flag set by SIGINT or SIGTERM.
pub fn shutdown_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&flag))
            .map_err(|e| PilotError::io("installing signal handler", "SIGINT/SIGTERM", e))?;
    }
    Ok(flag)
}
