//! The `rolling` processor: detector frames into [`crate::tomo::rolling::Rolling`], the rolling reconstruction
//! of a frame stream (three ortho-slices updated per frame), with live quality.
//!
//! The reconstruction is built on the first frame: its rows, columns and band set the geometry, the buffer
//! holds `buffer_frames` projections (default about pi/2 x columns, a full scan's worth), the axis is at
//! `center_px` (default columns / 2, as MASS's phantom). A frame is absorbed as it is taken (the handling is
//! the consumer's busy time); processing the window publishes, so a frame's processed latency is its
//! frame-to-image latency. Every `update_every_frames` projections make an update; every
//! `quality_every_updates` updates its axial slice is compared with the previous compared one (no reference
//! needed) and, with a reference slice, with that: SSIM, PSNR and NRMSE of images rescaled to [0, 1], a row of
//! `rolling-<label>-quality.csv`. At the end the slices are written as PNG quick-looks.
//!
//! With steering ([`SteerSettings`]) every scored update is shown to the steering policy
//! ([`pilot_core::ops::steer`]: stop when converged, re-take flats when the background drifts), whose commands
//! go to the frame source's control topic and into `rolling-<label>-steering.csv` (the frame that triggered
//! each, and why).
//!
//! A frame the reconstruction leaves out (a duplicate, another geometry, an older flat/dark epoch, a projection
//! before its flats and darks) is rejected with its category as the reason, so MASA's accounting counts it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use pilot_core::contract::frame::Frame;

use crate::decode::Payload;
use crate::processor::{ProcessError, Processor, WindowOutput};
use crate::tomo::filter::FilterKind;
use crate::tomo::quality::{compare_unit, Comparison};
use crate::tomo::rolling::{Geometry, Rolling, RollingConfig};
use pilot_core::contract::control::Command;
use pilot_core::ops::steer::{Observation, SteerConfig, SteerPolicy};

/// Where steering commands go: a function that sends one to the source's control topic (MASA's consumer
/// builds it from its connection; tests inject their own).
#[derive(Clone)]
pub struct SteerSink(pub std::sync::Arc<SendCommand>);

/// Send one command to the source (Err: why it could not be sent).
pub type SendCommand = dyn Fn(&Command) -> Result<(), String> + Send + Sync;

impl std::fmt::Debug for SteerSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SteerSink")
    }
}

impl PartialEq for SteerSink {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Steering the source from the updates.
#[derive(Debug, Clone, PartialEq)]
pub struct SteerSettings {
    pub policy: SteerConfig,
    /// The source's control topic.
    pub control_topic: String,
    /// Filled in when the consumer starts (None: decisions are recorded, not sent).
    pub sink: Option<SteerSink>,
}

/// A steering decision, a row of the steering CSV.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SteeringRow {
    pub update: u64,
    pub trigger_frame: u64,
    pub command: String,
    pub id: String,
    pub reason: String,
    pub sent: bool,
    pub error: String,
    pub utc: String,
}

/// The processor's settings (validated by MASA's config).
#[derive(Debug, Clone, PartialEq)]
pub struct RollingSettings {
    /// Projections in the buffer (None: round(pi/2 x columns)).
    pub buffer_frames: Option<usize>,
    pub filter: FilterKind,
    /// Rotation axis, detector column (None: columns / 2).
    pub center_px: Option<f64>,
    /// Detector row of the axial slice (None: the middle row of the first frame's band).
    pub axial_row: Option<usize>,
    pub plane_x_px: f64,
    pub plane_y_px: f64,
    pub update_every_frames: u64,
    pub quality_every_updates: u64,
    /// Rebuild the slices from the buffer after this many replaced frames (0: never; None: the buffer's size).
    pub recompute_every: Option<usize>,
    /// The slice to score against (`n x n`, n = columns), e.g. the phantom's truth.
    pub reference: Option<Vec<f32>>,
    /// Or a file of reconstructed slices (`/exchange/recon` with `/exchange/recon_row`, as `mass phantom --truth`
    /// writes): the slice of the axial row is the reference.
    pub reference_file: Option<PathBuf>,
    /// Where the quality CSV and the PNG quick-looks go.
    pub output_dir: Option<PathBuf>,
    pub preview_png: bool,
    pub steer: Option<SteerSettings>,
    /// A full GridRec reconstruction of the axial slice from the buffer every N projections (None: never).
    pub gridrec_every_frames: Option<u64>,
}

impl Default for RollingSettings {
    fn default() -> Self {
        RollingSettings {
            buffer_frames: None,
            filter: FilterKind::SheppLogan,
            center_px: None,
            axial_row: None,
            plane_x_px: 0.0,
            plane_y_px: 0.0,
            update_every_frames: 1,
            quality_every_updates: 1,
            recompute_every: None,
            reference: None,
            reference_file: None,
            output_dir: None,
            preview_png: true,
            steer: None,
            gridrec_every_frames: None,
        }
    }
}

/// One scored update, a row of the quality CSV.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QualityRow {
    pub update: u64,
    /// Projections absorbed so far, and in the buffer now.
    pub projections: u64,
    pub buffered: usize,
    /// The newest frame index the update includes.
    pub newest_frame: u64,
    /// Largest gap between the buffer's angles (mod 180), degrees: how evenly the window covers a half turn.
    pub largest_gap_deg: f64,
    /// Against the previous scored update (NaN for the first).
    pub ssim_previous: f64,
    pub psnr_previous_db: f64,
    pub nrmse_previous: f64,
    /// Against the reference (NaN without one).
    pub ssim_reference: f64,
    pub psnr_reference_db: f64,
    pub nrmse_reference: f64,
    /// The newest projection's mean line integral over its two outermost columns on each side (0 with fresh
    /// flats where the beam passes no object): how far the flat field has drifted.
    pub background: f64,
    /// Seconds spent absorbing frames since the previous row.
    pub absorb_s: f64,
}

/// The processor.
pub struct RollingProcessor {
    settings: RollingSettings,
    label: String,
    rolling: Option<Rolling>,
    /// Frames taken into the open window.
    taken: usize,
    projections_since_update: u64,
    updates: u64,
    previous: Option<Vec<f32>>,
    rows: Vec<QualityRow>,
    absorb_s: f64,
    notes: Vec<String>,
    policy: Option<SteerPolicy>,
    steering: Vec<SteeringRow>,
    started: Instant,
    /// A reference file's slices, their detector rows, and their side.
    reference_slices: Option<(Vec<f32>, Vec<u32>, usize)>,
    /// The reference slice taken from the file for the axial row.
    reference_from_file: Option<Vec<f32>>,
    /// The latest triggered GridRec slice, how many were made and the seconds they took.
    gridrec: Option<Vec<f32>>,
    gridrecs: (u64, f64),
    projections: u64,
}

impl RollingProcessor {
    /// The processor; a reference file is read now (an unreadable one is a configuration error).
    pub fn new(settings: RollingSettings, label: &str) -> Result<Self, ProcessError> {
        let reference_slices = match &settings.reference_file {
            Some(path) => {
                let (volume, rows, _) = pilot_core::contract::aps::ReconFile::read(path)
                    .map_err(|e| ProcessError::Config(format!("reference_file: {e}")))?;
                let [count, n, m] = volume.dims;
                if n != m || rows.len() != count {
                    return Err(ProcessError::Config(format!(
                        "reference_file {}: {count} slices of {n} x {m} with {} rows (square slices, one row each)",
                        path.display(),
                        rows.len()
                    )));
                }
                Some((volume.values, rows, n))
            }
            None => None,
        };
        // Steering settings a library caller made by hand are checked here, as the config checks its own.
        let policy = match &settings.steer {
            Some(s) => Some(
                SteerPolicy::new(s.policy.clone())
                    .map_err(|e| ProcessError::Config(e.to_string()))?,
            ),
            None => None,
        };
        Ok(RollingProcessor {
            reference_slices,
            reference_from_file: None,
            gridrec: None,
            gridrecs: (0, 0.0),
            projections: 0,
            settings,
            label: label.to_string(),
            rolling: None,
            taken: 0,
            projections_since_update: 0,
            updates: 0,
            previous: None,
            rows: Vec::new(),
            absorb_s: 0.0,
            notes: Vec::new(),
            policy,
            steering: Vec::new(),
            started: Instant::now(),
        })
    }

    /// The steering decisions so far.
    pub fn steering(&self) -> &[SteeringRow] {
        &self.steering
    }

    /// Show a scored update to the steering policy; send and record what it decides.
    fn steer(&mut self, row: &QualityRow, background: f64) {
        let (Some(steer), Some(policy)) = (&self.settings.steer, &mut self.policy) else {
            return;
        };
        let o = Observation {
            frame: row.newest_frame,
            ssim_previous: row.ssim_previous,
            ssim_reference: row.ssim_reference,
            lag_frames: f64::NAN,
            rate: f64::NAN,
            background,
        };
        for d in policy.observe(&o, self.started.elapsed().as_secs_f64()) {
            let result = match &steer.sink {
                Some(sink) => (sink.0)(&d.command),
                None => Err("no control link (decision recorded only)".into()),
            };
            self.steering.push(SteeringRow {
                update: row.update,
                trigger_frame: d.trigger_frame,
                command: d.command.name().to_string(),
                id: d.command.id().unwrap_or_default().to_string(),
                reason: d.reason,
                sent: result.is_ok(),
                error: result.err().unwrap_or_default(),
                utc: pilot_core::contract::clock::now_utc(),
            });
        }
    }

    /// The reconstruction (None before the first frame).
    pub fn rolling(&self) -> Option<&Rolling> {
        self.rolling.as_ref()
    }

    /// The scored updates so far.
    pub fn quality(&self) -> &[QualityRow] {
        &self.rows
    }

    /// The reconstruction for a first frame's geometry.
    fn build(&mut self, f: &Frame<'_>) -> Result<Rolling, ProcessError> {
        let s = &self.settings;
        let (rows, cols) = (f.rows as usize, f.cols as usize);
        let first = f.info.first_row as usize;
        let axial = s.axial_row.unwrap_or(first + rows / 2);
        let axial_row = (first..first + rows).contains(&axial).then_some(axial);
        if s.axial_row.is_some() && axial_row.is_none() {
            return Err(ProcessError::Config(format!(
                "axial_row {axial} is outside the frames' rows {first}..{}",
                first + rows
            )));
        }
        let buffer_frames = s
            .buffer_frames
            .unwrap_or_else(|| (std::f64::consts::FRAC_PI_2 * cols as f64).round() as usize)
            .max(1);
        let bytes = buffer_frames as u128 * (rows * cols) as u128 * 4;
        if bytes > 64 << 30 {
            return Err(ProcessError::Config(format!(
                "a buffer of {buffer_frames} frames of {rows} x {cols} needs {} GiB; set buffer_frames lower",
                bytes >> 30
            )));
        }
        if let (Some((values, rows, n)), Some(axial)) = (&self.reference_slices, axial_row) {
            let Some(k) = rows.iter().position(|&r| r as usize == axial) else {
                return Err(ProcessError::Config(format!(
                    "reference_file has no slice of detector row {axial} (rows {:?})",
                    &rows[..rows.len().min(8)]
                )));
            };
            if *n != cols {
                return Err(ProcessError::Config(format!(
                    "reference_file slices are {n} x {n}, the frames' {cols} x {cols}"
                )));
            }
            self.reference_from_file = Some(values[k * n * n..(k + 1) * n * n].to_vec());
        }
        if s.reference.as_ref().is_some_and(|r| r.len() != cols * cols) {
            return Err(ProcessError::Config(format!(
                "the reference slice has {} pixels, the frames' slices {cols} x {cols}",
                s.reference.as_ref().map_or(0, |r| r.len())
            )));
        }
        Ok(Rolling::new(RollingConfig {
            geometry: Geometry {
                rows,
                first_row: first,
                detector_rows: f.info.detector_rows as usize,
                cols,
                center: s.center_px.unwrap_or(cols as f64 / 2.0),
                axial_row,
                plane_x: s.plane_x_px,
                plane_y: s.plane_y_px,
            },
            buffer_frames,
            filter: s.filter,
            recompute_every: s.recompute_every.unwrap_or(buffer_frames),
        }))
    }

    /// An update: scored every `quality_every_updates`.
    fn update(&mut self, newest_frame: u64) {
        self.updates += 1;
        if !self
            .updates
            .is_multiple_of(self.settings.quality_every_updates.max(1))
        {
            return;
        }
        let rolling = self.rolling.as_ref().expect("built");
        let slices = rolling.slices();
        if slices.axial.is_empty() {
            return;
        }
        let n = rolling.geometry().cols;
        let nan = Comparison {
            ssim: f64::NAN,
            psnr_db: f64::NAN,
            nrmse: f64::NAN,
        };
        let score = |other: Option<&Vec<f32>>| {
            other
                .and_then(|o| compare_unit(&slices.axial, o, n, 0.95))
                .unwrap_or(nan)
        };
        let prev = score(self.previous.as_ref());
        let reference = score(
            self.settings
                .reference
                .as_ref()
                .or(self.reference_from_file.as_ref()),
        );
        let counts = rolling.counts();
        let background = rolling.background();
        let row = QualityRow {
            update: self.updates,
            projections: counts.projections,
            buffered: rolling.buffered_len(),
            newest_frame,
            largest_gap_deg: largest_gap_deg(&rolling.buffered_angles_deg()),
            ssim_previous: prev.ssim,
            psnr_previous_db: prev.psnr_db,
            nrmse_previous: prev.nrmse,
            ssim_reference: reference.ssim,
            psnr_reference_db: reference.psnr_db,
            nrmse_reference: reference.nrmse,
            background,
            absorb_s: std::mem::take(&mut self.absorb_s),
        };
        self.previous = Some(slices.axial.clone());
        self.steer(&row, background);
        self.rows.push(row);
    }
}

/// The largest gap between angles taken modulo 180 degrees (180 for one angle or none).
pub fn largest_gap_deg(angles_deg: &[f64]) -> f64 {
    let mut a: Vec<f64> = angles_deg.iter().map(|x| x.rem_euclid(180.0)).collect();
    if a.len() < 2 {
        return 180.0;
    }
    a.sort_by(f64::total_cmp);
    let wrap = a[0] + 180.0 - a[a.len() - 1];
    a.windows(2).map(|w| w[1] - w[0]).fold(wrap, f64::max)
}

impl Processor for RollingProcessor {
    fn name(&self) -> &'static str {
        "rolling"
    }

    fn add(&mut self, payload: &Payload<'_>) -> Result<(), ProcessError> {
        let Payload::Frame(f) = payload else {
            return Err(ProcessError::Rejected(
                "rolling reconstructs detector frames, not this payload".into(),
            ));
        };
        if self.rolling.is_none() {
            self.rolling = Some(self.build(f)?);
        }
        let rolling = self.rolling.as_mut().expect("built");
        let t = Instant::now();
        let absorbed = rolling.push(f);
        self.absorb_s += t.elapsed().as_secs_f64();
        match absorbed {
            Ok(crate::tomo::rolling::Absorbed::Projection { .. }) => {
                self.projections += 1;
                if let Some(every) = self.settings.gridrec_every_frames {
                    if self.projections.is_multiple_of(every.max(1)) {
                        let t = Instant::now();
                        self.gridrec = rolling.gridrec_axial(self.settings.filter);
                        self.gridrecs.0 += 1;
                        self.gridrecs.1 += t.elapsed().as_secs_f64();
                    }
                }
                self.projections_since_update += 1;
                if self.projections_since_update >= self.settings.update_every_frames.max(1) {
                    self.projections_since_update = 0;
                    self.update(f.info.index);
                }
            }
            Ok(crate::tomo::rolling::Absorbed::Field) => {}
            Err(e) => return Err(ProcessError::Rejected(e.reason().to_string())),
        }
        self.taken += 1;
        Ok(())
    }

    fn process(&mut self) -> Result<WindowOutput, ProcessError> {
        let messages = std::mem::take(&mut self.taken);
        Ok(WindowOutput {
            messages,
            items: messages as u64,
            score: self.rows.last().map_or(f64::NAN, |r| r.ssim_previous),
        })
    }

    fn finish(&mut self, dir: Option<&Path>) -> Result<(), ProcessError> {
        let Some(dir) = self
            .settings
            .output_dir
            .clone()
            .or(dir.map(Path::to_path_buf))
        else {
            return Ok(());
        };
        if self.settings.steer.is_some() {
            let path = dir.join(format!("rolling-{}-steering.csv", self.label));
            let mut w = pilot_core::contract::metrics::CsvWriter::create(&path)
                .map_err(|e| ProcessError::output(&path, e))?;
            for r in &self.steering {
                w.write(r).map_err(|e| ProcessError::output(&path, e))?;
            }
        }
        let path = dir.join(format!("rolling-{}-quality.csv", self.label));
        let mut w = pilot_core::contract::metrics::CsvWriter::create(&path)
            .map_err(|e| ProcessError::output(&path, e))?;
        for r in &self.rows {
            w.write(r).map_err(|e| ProcessError::output(&path, e))?;
        }
        if let (true, Some(r)) = (self.settings.preview_png, &self.rolling) {
            let s = r.slices();
            let (n, rows) = (r.geometry().cols, r.geometry().rows);
            if let Some(img) = &self.gridrec {
                let p = dir.join(format!("rolling-{}-gridrec.png", self.label));
                crate::reconstruct::write_png_rect(&p, img, n, n)?;
            }
            for (name, img, h) in [
                ("axial", &s.axial, n),
                ("xz", &s.plane_xz, rows),
                ("yz", &s.plane_yz, rows),
            ] {
                if !img.is_empty() {
                    let p = dir.join(format!("rolling-{}-{name}.png", self.label));
                    crate::reconstruct::write_png_rect(&p, img, n, h)?;
                }
            }
        }
        Ok(())
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = self.notes.clone();
        if let Some(r) = &self.rolling {
            let c = r.counts();
            notes.push(format!(
                "rolling: {} projections, {} flats, {} darks absorbed; {} duplicates, {} out of order, {} of another geometry, {} of an older epoch, {} before their flats/darks; {} frame indices missing",
                c.projections, c.flats, c.darks, c.duplicates, c.out_of_order, c.wrong_geometry,
                c.stale_epoch, c.without_fields, r.missing()
            ));
        }
        if self.gridrecs.0 > 0 {
            notes.push(format!(
                "rolling: {} GridRec slices of the buffer, {:.1} ms each",
                self.gridrecs.0,
                self.gridrecs.1 * 1e3 / self.gridrecs.0 as f64
            ));
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_measured_around_the_half_turn() {
        assert_eq!(largest_gap_deg(&[]), 180.0);
        assert_eq!(largest_gap_deg(&[10.0]), 180.0);
        assert_eq!(largest_gap_deg(&[0.0, 90.0]), 90.0);
        // 190 is 10: the gap from 10 round to 0 is 170.
        assert_eq!(largest_gap_deg(&[0.0, 190.0]), 170.0);
        assert!((largest_gap_deg(&[0.0, 60.0, 120.0, 179.0]) - 60.0).abs() < 1e-12);
    }
}
