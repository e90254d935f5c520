//! Processors: what MASA does with each window of messages. Every processor implements [`Processor`]:
//! [`Processor::add`] takes one decoded message into the open window (or refuses it with a reason, e.g. the
//! wrong payload kind), [`Processor::process`] works on the window and clears it, [`Processor::finish`] writes
//! whatever the processor keeps (KMeans centres). `none` decodes and counts (the transport baseline); `kmeans`
//! runs Spark's streaming KMeans; the light-source reconstructions implement the same trait.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::decode::Payload;
use crate::kmeans::{decay_for_half_life, random_centers, StreamingKMeans, TimeUnit};

/// What processing a window did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WindowOutput {
    pub messages: usize,
    /// Points (or slices) processed.
    pub items: u64,
    /// Processor-specific figure of merit (KMeans: cost per point under the pre-update model).
    pub score: f64,
}

/// Why a processor refused a message, could not be built, or could not do its work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProcessError {
    /// The message is not what this processor takes (its payload kind, shape or values): it is rejected with
    /// this reason, counted, and the run goes on.
    #[error("{0}")]
    Rejected(String),
    /// The processor's settings cannot be used.
    #[error("{0}")]
    Config(String),
    /// A window could not be processed.
    #[error("{0}")]
    Failed(String),
    /// What the processor keeps could not be written.
    #[error("{}: {message}", path.display())]
    Output { path: PathBuf, message: String },
}

impl ProcessError {
    /// An output file that could not be written.
    pub fn output(path: &Path, e: impl std::fmt::Display) -> Self {
        ProcessError::Output {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

/// A window processor.
pub trait Processor: Send {
    fn name(&self) -> &'static str;
    /// Take a message into the open window; `Err` (a [`ProcessError::Rejected`]) rejects it.
    fn add(&mut self, payload: &Payload<'_>) -> Result<(), ProcessError>;
    /// Process and clear the open window.
    fn process(&mut self) -> Result<WindowOutput, ProcessError>;
    /// End of run: write what the processor keeps (to `dir` when given).
    fn finish(&mut self, _dir: Option<&Path>) -> Result<(), ProcessError> {
        Ok(())
    }
    /// What the processor had to assume about its input (a scan without flat fields), for the run's summary.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Points a processor can use: at least one point of at least one coordinate, whole points, finite values.
pub fn check_points(values: &[f64], dims: usize) -> Result<usize, ProcessError> {
    if dims == 0 || values.is_empty() || !values.len().is_multiple_of(dims) {
        return Err(ProcessError::Rejected(format!(
            "{} values are not whole points of {dims} dimensions",
            values.len()
        )));
    }
    if let Some(v) = values.iter().find(|v| !v.is_finite()) {
        return Err(ProcessError::Rejected(format!("a coordinate of {v}")));
    }
    Ok(values.len() / dims)
}

/// How an emulated processing cost is spent.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum CostModel {
    /// Sleep: an I/O-bound analysis (waiting on storage or a service); costs no CPU, so many consumers fit a
    /// small machine.
    #[default]
    Sleep,
    /// Spin on the CPU: a CPU-bound analysis (one core per consumer thread while it runs).
    Busy,
}

impl CostModel {
    pub fn as_str(self) -> &'static str {
        match self {
            CostModel::Sleep => "sleep",
            CostModel::Busy => "busy",
        }
    }
}

/// An emulated per-message processing cost, so that one consumer's true rate is known (about 1 / cost) and
/// scaling can be shown on a small machine. An emulation, not an analysis: it stands in for work whose cost
/// per message is what matters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    pub per_message: std::time::Duration,
    pub model: CostModel,
}

impl Cost {
    /// Spend the cost once.
    pub fn spend(&self) {
        match self.model {
            CostModel::Sleep => std::thread::sleep(self.per_message),
            CostModel::Busy => {
                let end = std::time::Instant::now() + self.per_message;
                while std::time::Instant::now() < end {
                    std::hint::spin_loop();
                }
            }
        }
    }
}

/// An emulated cost that can change while a consumer runs (a `slow` fault through MASA's control file): every
/// consumer thread's [`CostProcessor`] of a process reads the same dial.
#[derive(Debug)]
pub struct CostDial {
    per_message_ns: std::sync::atomic::AtomicU64,
    model: CostModel,
}

impl CostDial {
    /// A dial at `cost` (none: 0, nothing spent until it is turned up), spending the plan's model.
    pub fn new(cost: Option<Cost>) -> Self {
        CostDial {
            per_message_ns: std::sync::atomic::AtomicU64::new(
                cost.map(|c| c.per_message.as_nanos() as u64).unwrap_or(0),
            ),
            model: cost.map(|c| c.model).unwrap_or_default(),
        }
    }

    /// Set the cost per message (0: none).
    pub fn set(&self, per_message: std::time::Duration) {
        self.per_message_ns.store(
            per_message.as_nanos() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// The cost per message now.
    pub fn get(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(
            self.per_message_ns
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    fn spend(&self) {
        let per_message = self.get();
        if !per_message.is_zero() {
            Cost {
                per_message,
                model: self.model,
            }
            .spend();
        }
    }
}

/// Another processor with an emulated cost for each message it takes (after the inner processor took it).
pub struct CostProcessor {
    inner: Box<dyn Processor>,
    dial: std::sync::Arc<CostDial>,
}

impl CostProcessor {
    pub fn new(inner: Box<dyn Processor>, cost: Cost) -> Self {
        Self::dialled(inner, std::sync::Arc::new(CostDial::new(Some(cost))))
    }

    /// With a cost read from a shared dial at every message.
    pub fn dialled(inner: Box<dyn Processor>, dial: std::sync::Arc<CostDial>) -> Self {
        CostProcessor { inner, dial }
    }
}

impl Processor for CostProcessor {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn add(&mut self, payload: &Payload<'_>) -> Result<(), ProcessError> {
        self.inner.add(payload)?;
        self.dial.spend();
        Ok(())
    }
    fn process(&mut self) -> Result<WindowOutput, ProcessError> {
        self.inner.process()
    }
    fn finish(&mut self, dir: Option<&Path>) -> Result<(), ProcessError> {
        self.inner.finish(dir)
    }
    fn notes(&self) -> Vec<String> {
        self.inner.notes()
    }
}

/// Decode and count only.
#[derive(Debug, Default)]
pub struct NoneProcessor {
    messages: usize,
    items: u64,
}

impl Processor for NoneProcessor {
    fn name(&self) -> &'static str {
        "none"
    }
    fn add(&mut self, payload: &Payload<'_>) -> Result<(), ProcessError> {
        let items = match payload {
            Payload::Points { values, dims } => values.len().checked_div(*dims).unwrap_or(0) as u64,
            Payload::Projections(p) => p.rows as u64,
            _ => 1,
        };
        self.messages += 1;
        self.items += items;
        Ok(())
    }
    fn process(&mut self) -> Result<WindowOutput, ProcessError> {
        let out = WindowOutput {
            messages: self.messages,
            items: self.items,
            score: 0.0,
        };
        self.messages = 0;
        self.items = 0;
        Ok(out)
    }
}

/// How KMeans starts.
#[derive(Debug, Clone, PartialEq)]
pub enum KMeansInit {
    /// PySpark's setRandomCenters(dims, weight, seed).
    Random { seed: u32, weight: f64 },
    /// Given centres (`k x dims`) and weights.
    Given {
        centres: Vec<f64>,
        weights: Vec<f64>,
        dims: usize,
    },
}

/// Streaming KMeans settings.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansConfig {
    pub k: usize,
    pub decay: f64,
    pub time_unit: TimeUnit,
    pub init: KMeansInit,
    /// Write the centres every this many windows (and at the end) when an output directory is given.
    pub snapshot_every_windows: Option<u64>,
}

impl KMeansConfig {
    /// Spark's defaults as the paper ran them: k = 10, decay 1.0, time unit batches, random centres.
    pub fn paper(seed: u32) -> Self {
        KMeansConfig {
            k: 10,
            decay: 1.0,
            time_unit: TimeUnit::Batches,
            init: KMeansInit::Random { seed, weight: 1.0 },
            snapshot_every_windows: None,
        }
    }

    /// Decay from a half-life instead.
    pub fn with_half_life(mut self, h: f64) -> Result<Self, ProcessError> {
        self.decay = decay_for_half_life(h).map_err(|e| ProcessError::Config(e.to_string()))?;
        Ok(self)
    }
}

/// Streaming KMeans over windows: update the model with the window's points, then score them against it.
pub struct KMeansProcessor {
    cfg: KMeansConfig,
    model: Option<StreamingKMeans>,
    batch: Vec<f64>,
    dims: Option<usize>,
    messages: usize,
    labels: Vec<u32>,
    windows: u64,
    snapshots: Vec<String>,
}

impl KMeansProcessor {
    pub fn new(cfg: KMeansConfig) -> Result<Self, ProcessError> {
        if cfg.k == 0 {
            return Err(ProcessError::Config("k must be at least 1".into()));
        }
        let (model, dims) = match &cfg.init {
            KMeansInit::Given {
                centres,
                weights,
                dims,
            } => (
                Some(
                    StreamingKMeans::new(
                        centres.clone(),
                        weights.clone(),
                        *dims,
                        cfg.decay,
                        cfg.time_unit,
                    )
                    .map_err(|e| ProcessError::Config(e.to_string()))?,
                ),
                Some(*dims),
            ),
            KMeansInit::Random { .. } => (None, None),
        };
        Ok(KMeansProcessor {
            cfg,
            model,
            batch: Vec::new(),
            dims,
            messages: 0,
            labels: Vec::new(),
            windows: 0,
            snapshots: Vec::new(),
        })
    }

    /// The model (once the first points arrived).
    pub fn model(&self) -> Option<&StreamingKMeans> {
        self.model.as_ref()
    }

    fn snapshot(&mut self) {
        if let Some(m) = &self.model {
            self.snapshots.push(
                serde_json::json!({"window": self.windows, "centres": m.centres(), "weights": m.weights(), "dims": m.dims()})
                    .to_string(),
            );
        }
    }

    /// Where snapshots go in a results directory.
    pub fn snapshot_path(dir: &Path) -> PathBuf {
        dir.join("kmeans-centres.jsonl")
    }
}

impl Processor for KMeansProcessor {
    fn name(&self) -> &'static str {
        "kmeans"
    }

    fn add(&mut self, payload: &Payload<'_>) -> Result<(), ProcessError> {
        let Payload::Points { values, dims } = payload else {
            return Err(ProcessError::Rejected("kmeans needs points".into()));
        };
        // Nothing changes unless the whole message is usable: a bad first message must not fix the model's
        // dimensions, a NaN must not poison its centres.
        check_points(values, *dims)?;
        if let Some(d) = self.dims {
            if d != *dims {
                return Err(ProcessError::Rejected(format!(
                    "points of {dims} dims, model has {d}"
                )));
            }
        }
        self.dims = Some(*dims);
        self.batch.extend_from_slice(values);
        self.messages += 1;
        Ok(())
    }

    fn process(&mut self) -> Result<WindowOutput, ProcessError> {
        let dims = match self.dims {
            Some(d) => d,
            None => return Ok(WindowOutput::default()),
        };
        if self.model.is_none() {
            let KMeansInit::Random { seed, weight } = self.cfg.init else {
                unreachable!("given centres build the model")
            };
            let centres = random_centers(self.cfg.k, dims, seed);
            self.model = Some(
                StreamingKMeans::new(
                    centres,
                    vec![weight; self.cfg.k],
                    dims,
                    self.cfg.decay,
                    self.cfg.time_unit,
                )
                .map_err(|e| ProcessError::Failed(e.to_string()))?,
            );
        }
        let model = self.model.as_mut().expect("built above");
        let n = self.batch.len() / dims;
        let out = if n > 0 {
            let failed = |e: crate::kmeans::KMeansError| ProcessError::Failed(e.to_string());
            let st = model.update(&self.batch).map_err(failed)?;
            model
                .assign(&self.batch, &mut self.labels)
                .map_err(failed)?;
            WindowOutput {
                messages: self.messages,
                items: n as u64,
                score: st.cost / n as f64,
            }
        } else {
            WindowOutput::default()
        };
        self.batch.clear();
        self.messages = 0;
        self.windows += 1;
        if self
            .cfg
            .snapshot_every_windows
            .is_some_and(|e| self.windows.is_multiple_of(e))
        {
            self.snapshot();
        }
        Ok(out)
    }

    fn finish(&mut self, dir: Option<&Path>) -> Result<(), ProcessError> {
        self.snapshot();
        if let Some(d) = dir {
            let p = Self::snapshot_path(d);
            let mut f = std::fs::File::create(&p).map_err(|e| ProcessError::output(&p, e))?;
            for line in &self.snapshots {
                writeln!(f, "{line}").map_err(|e| ProcessError::output(&p, e))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emulated_cost_is_spent_per_message_taken_and_not_per_refusal() {
        for model in [CostModel::Sleep, CostModel::Busy] {
            let cost = Cost {
                per_message: std::time::Duration::from_millis(3),
                model,
            };
            let mut p = CostProcessor::new(Box::new(NoneProcessor::default()), cost);
            let values = [1.0, 2.0];
            let t = std::time::Instant::now();
            for _ in 0..5 {
                p.add(&Payload::Points {
                    values: &values,
                    dims: 2,
                })
                .unwrap();
            }
            assert!(
                t.elapsed() >= std::time::Duration::from_millis(15),
                "{model:?}"
            );
            assert_eq!(p.process().unwrap().messages, 5);
            assert_eq!(p.name(), "none");
        }
        // A message the inner processor refuses costs nothing.
        let mut k = CostProcessor::new(
            Box::new(KMeansProcessor::new(KMeansConfig::paper(1)).unwrap()),
            Cost {
                per_message: std::time::Duration::from_secs(5),
                model: CostModel::Sleep,
            },
        );
        let t = std::time::Instant::now();
        assert!(k.add(&Payload::Bytes { len: 3 }).is_err());
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn kmeans_processor_learns_and_rejects_what_it_cannot_use() {
        let mut p = KMeansProcessor::new(KMeansConfig::paper(1)).unwrap();
        assert!(p.add(&Payload::Bytes { len: 3 }).is_err());
        let pts: Vec<f64> = (0..300)
            .map(|i| if i % 6 < 3 { 5.0 } else { -5.0 })
            .collect();
        p.add(&Payload::Points {
            values: &pts,
            dims: 3,
        })
        .unwrap();
        assert!(p
            .add(&Payload::Points {
                values: &[1.0, 2.0],
                dims: 2
            })
            .is_err());
        let out = p.process().unwrap();
        assert_eq!((out.messages, out.items), (1, 100));
        let m = p.model().unwrap();
        assert_eq!((m.k(), m.dims()), (10, 3));
        let total: f64 = m.weights().iter().sum();
        assert_eq!(total, 10.0 + 100.0);
        let dir = tempfile::tempdir().unwrap();
        p.finish(Some(dir.path())).unwrap();
        let text = std::fs::read_to_string(KMeansProcessor::snapshot_path(dir.path())).unwrap();
        assert!(text.contains("\"window\":1"));
    }

    #[test]
    fn none_processor_counts() {
        let mut p = NoneProcessor::default();
        p.add(&Payload::Points {
            values: &[0.0; 30],
            dims: 3,
        })
        .unwrap();
        p.add(&Payload::Bytes { len: 10 }).unwrap();
        assert_eq!(
            p.process().unwrap(),
            WindowOutput {
                messages: 2,
                items: 11,
                score: 0.0
            }
        );
        assert_eq!(p.process().unwrap().messages, 0);
    }
}
