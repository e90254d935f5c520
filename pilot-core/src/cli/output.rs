//! Where the commands write: errors writing standard output as pilot errors.

use crate::error::PilotError;

pub(super) fn io_out(e: std::io::Error) -> PilotError {
    PilotError::io("writing", "standard output", e)
}
