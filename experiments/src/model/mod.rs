//! Models that predict unmeasured configurations from measured ones (`experiments model`, `experiments predict`):
//!
//! - [`nnls`]: non-negative least squares (Lawson and Hanson), what the forms are fitted with;
//! - [`forms`]: the Universal Scalability Law over a count, Ernest's cost form over machines and message size,
//!   and interpolation (the baseline to beat), each fitted and evaluated as pure arithmetic;
//! - [`select`]: leave-one-point-out cross-validation, the form chosen per metric by held-out error, and a
//!   bootstrap over repetitions for intervals;
//! - [`design`]: which runs to make: D- or A-optimal design for a model's parameters (as Ernest), and Bayesian
//!   optimisation by expected improvement toward the best configuration (as CherryPick);
//! - [`adaptive`]: the adaptive loop (design runs for a model, or expected improvement toward the best), and
//!   its replay on a full measured sweep, scored on the held-out points against interpolation and random runs;
//! - [`plan`]: `strategy = "adaptive"` and its `[adaptive]` table, checked against an experiment's points;
//! - [`data`]: a results table's settings read as counts, sizes and groups, its ok runs as observations;
//! - [`analysis`]: every metric of every group fitted, the predicted optimum, the pipeline's bottleneck (the
//!   smaller of the producer's and the consumer's modelled capacity), and predictions at given settings, as text.

pub mod adaptive;
pub mod analysis;
pub mod data;
pub mod design;
pub mod forms;
pub mod nnls;
pub mod plan;
pub mod select;

/// One measured run: its count N, message size and the metric's value, and the point it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Obs {
    pub n: f64,
    pub size: f64,
    pub value: f64,
    pub point: String,
}

/// Why a model could not be made or used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("{form} needs at least {needed} distinct points ({points} distinct points here)")]
    TooFewPoints {
        points: usize,
        needed: usize,
        form: &'static str,
    },
    #[error("{form} does not apply: {reason}")]
    NotApplicable { form: &'static str, reason: String },
    #[error("point {point}: {message}")]
    BadValue { point: String, message: String },
    #[error("no metric column `{metric}` in the results (metrics there: {available})")]
    UnknownMetric { metric: String, available: String },
    #[error("no settings column `{column}` in the results (settings there: {available})")]
    UnknownColumn { column: String, available: String },
    #[error("the setting `{column}` is needed (a count or size the model is over)")]
    MissingSetting { column: String },
    #[error("`{text}`: {message}")]
    BadArgument { text: String, message: String },
}
