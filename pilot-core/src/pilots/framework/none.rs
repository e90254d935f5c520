//! The framework-free plugin: a compute pilot's nodes run no framework process, only the tasks started on them
//! (MASS producers, MASA consumers). With `broker_pilot` such a pilot reports the brokers of that Kafka pilot as
//! its own connection details, without joining its cluster.

use std::path::PathBuf;
use std::time::Duration;

use super::details::FrameworkDetails;
use super::plugin::{Framework, StartContext};
use crate::error::{PilotError, Result};
use crate::pilots::backend::{Allocation, ResourceBackend};
use crate::pilots::framework::details::NodeRole;

/// Starts nothing.
pub struct NoFramework;

impl Framework for NoFramework {
    fn ports(&self) -> Vec<u16> {
        Vec::new()
    }

    fn start(
        &mut self,
        _: &mut dyn ResourceBackend,
        _: &Allocation,
        ctx: &StartContext,
    ) -> Result<()> {
        match ctx.parent {
            None | Some(FrameworkDetails::None) => Ok(()),
            Some(other) => Err(PilotError::invalid(
                "parent",
                format!(
                    "a framework-free pilot cannot extend a {} pilot (give it broker_pilot to use a Kafka pilot's brokers)",
                    other.kind().name()
                ),
            )),
        }
    }

    fn wait_ready(&mut self, _: Duration, _: &dyn Fn() -> bool) -> Result<()> {
        Ok(())
    }

    fn check(&mut self) -> Result<()> {
        Ok(())
    }

    fn role(&self, _: &str) -> NodeRole {
        NodeRole::Compute
    }

    fn details(&self) -> FrameworkDetails {
        FrameworkDetails::None
    }

    fn logs(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    fn stop(&mut self, _: Duration) {}
}
