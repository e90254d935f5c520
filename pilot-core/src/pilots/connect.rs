//! From a mini-app's settings to its brokers: a [`Target`] (plain `host:port` brokers, or a pilot's id) resolved
//! into a [`Connection`]. A pilot's connection is its own brokers' (a Kafka pilot), or those of the Kafka pilot
//! it names with `broker_pilot` (a compute, Spark or Dask pilot).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::contract::client::Connection;
use crate::error::{PilotError, Result};
use crate::pilots::record::PilotState;
use crate::pilots::store::Store;

/// Where a client should connect: brokers by address, or a running pilot by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Target {
    Bootstrap(String),
    Pilot { id: String, workdir: PathBuf },
}

impl Target {
    /// From a config's `bootstrap_servers` / `pilot` / `pilot_workdir` (exactly one of the first two).
    pub fn from_options(
        bootstrap: Option<&str>,
        pilot: Option<&str>,
        pilot_workdir: Option<&Path>,
    ) -> std::result::Result<Self, String> {
        match (bootstrap, pilot) {
            (Some(_), Some(_)) => Err("give bootstrap_servers or pilot, not both".into()),
            (None, None) => Err(
                "where to connect: set bootstrap_servers (host:port) or pilot (a pilot id)".into(),
            ),
            (Some(b), None) => {
                let bad = b.split(',').any(|s| {
                    s.rsplit_once(':')
                        .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
                });
                if bad {
                    Err(format!(
                        "bootstrap_servers `{b}` is not host:port[,host:port]"
                    ))
                } else {
                    Ok(Target::Bootstrap(b.to_string()))
                }
            }
            (None, Some(id)) => Ok(Target::Pilot {
                id: id.to_string(),
                workdir: pilot_workdir
                    .map(Path::to_path_buf)
                    .or_else(|| std::env::var_os("PILOT_WORKDIR").map(PathBuf::from))
                    .unwrap_or_else(|| PathBuf::from("pilots")),
            }),
        }
    }
}

impl Target {
    /// [`Target::from_options`] as a setting of MASS's and MASA's configs: an error names `bootstrap_servers`
    /// when it was given, else `pilot`.
    pub fn setting(
        bootstrap: Option<&str>,
        pilot: Option<&str>,
        pilot_workdir: Option<&Path>,
    ) -> std::result::Result<Self, crate::contract::config::SettingError> {
        Self::from_options(bootstrap, pilot, pilot_workdir).map_err(|m| {
            let key = if bootstrap.is_some() {
                "bootstrap_servers"
            } else {
                "pilot"
            };
            crate::contract::config::SettingError::key(key, m)
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Bootstrap(b) => write!(f, "brokers {b}"),
            Target::Pilot { id, workdir } => write!(f, "pilot {id} (in {})", workdir.display()),
        }
    }
}

/// The brokers of the Running pilot `id` under `workdir`.
pub fn to_pilot(id: &str, workdir: &Path) -> Result<Connection> {
    let r = Store::new(workdir).load_reconciled(id)?;
    match (r.state, r.details) {
        (PilotState::Running, Some(d)) => d.kafka().map(|k| k.connection()).ok_or_else(|| {
            PilotError::WrongState {
                id: id.to_string(),
                state: "Running".into(),
                message: format!(
                    "it is a {} pilot with no brokers (start it with broker_pilot = \"<a Kafka pilot>\")",
                    d.framework.kind().name()
                ),
            }
        }),
        (state, _) => Err(PilotError::WrongState {
            id: id.to_string(),
            state: state.to_string(),
            message: "clients need a Running pilot".into(),
        }),
    }
}

/// Resolve a target.
pub fn resolve(target: &Target) -> Result<Connection> {
    match target {
        Target::Bootstrap(b) => Ok(Connection::to_brokers(b)),
        Target::Pilot { id, workdir } => to_pilot(id, workdir),
    }
}
