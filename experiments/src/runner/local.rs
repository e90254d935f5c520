//! The real executor: pilots through pilot-core on the point's resource, MASS and MASA as processes on their
//! nodes ([`super::pipeline`]), or a framework pilot timed ([`super::startup`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::{Executor, RunError, RunOutcome};
use crate::spec::{Point, RunKind};

/// The real executor: the `mass` and `masa` programs it runs.
pub struct LocalExecutor {
    pub mass_bin: PathBuf,
    pub masa_bin: PathBuf,
}

impl LocalExecutor {
    /// Find `mass` and `masa` beside this program (or one directory up, as cargo lays out tests), or on PATH.
    pub fn locate() -> Result<Self, RunError> {
        let beside = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        let path_var = std::env::var_os("PATH").unwrap_or_default();
        let find = |name: &str| -> Result<PathBuf, RunError> {
            beside
                .iter()
                .cloned()
                .chain(
                    beside
                        .iter()
                        .filter_map(|d| d.parent().map(Path::to_path_buf)),
                )
                .chain(std::env::split_paths(&path_var))
                .map(|d| d.join(name))
                .find(|p| p.is_file())
                .ok_or_else(|| RunError::MissingProgram {
                    name: name.into(),
                    beside: beside
                        .as_ref()
                        .map(|b| b.display().to_string())
                        .unwrap_or_default(),
                })
        };
        Ok(LocalExecutor {
            mass_bin: find("mass")?,
            masa_bin: find("masa")?,
        })
    }
}

impl Executor for LocalExecutor {
    fn calibrate(&mut self) -> Option<f64> {
        Some(crate::calibration::kmeans_updates_per_s(
            Duration::from_millis(300),
        ))
    }

    fn clean_up(&mut self, dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(runs) = std::fs::read_dir(dir.join("runs")) else {
            return out;
        };
        for run in runs.flatten() {
            let store = pilot_core::pilots::store::Store::new(run.path().join("pilots"));
            match pilot_core::pilots::lifecycle::clean_up_orphans(&store, Duration::from_secs(30)) {
                Ok(lines) => out.extend(lines),
                Err(e) => out.push(format!("{}: {e}", store.root().display())),
            }
        }
        out
    }

    fn run(
        &mut self,
        point: &Point,
        run_dir: &Path,
        shutdown: &AtomicBool,
    ) -> Result<RunOutcome, RunError> {
        match point.layout.kind {
            RunKind::Startup => {
                super::startup::startup_run(point, &run_dir.join("pilots"), shutdown)
            }
            RunKind::Pipeline => {
                super::pipeline::run((&self.mass_bin, &self.masa_bin), point, run_dir, shutdown)
            }
        }
    }
}
