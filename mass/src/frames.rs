//! A detector that streams frames: one message per frame, as beamline detectors send them, in the project's
//! envelope ([`pilot_core::contract::frame`]) or as ESS's `ad00` FlatBuffers ([`pilot_core::contract::ess`]:
//! the frame index as the array's id, the send time as its timestamp, angle, frame type and epoch as
//! attributes; MASS's accounting then travels in the Kafka key). Darks, then flats, then projections in an [`AngleOrder`]; with `retake_every` set, the
//! darks and flats are taken again after that many projections under a new flat/dark epoch. Message `seq` is
//! frame index `seq` (the detector's counter counts flats and darks too), so the sequence a consumer sees says
//! which frames it lost.
//!
//! The pixels come from the 3-D phantom ([`crate::phantom3d`]): counts `dark + i0 exp(-mu p)` as u16, flats
//! `dark + i0`, darks `dark`; `mu` makes the most attenuating ray of the first projection `max_attenuation`.
//! Rendering a frame is exact and costs rows x cols chords, so rendered projections are kept (up to
//! `cache_frames`) for angles that come round again.

use std::collections::HashMap;
use std::sync::Arc;

use pilot_core::contract::frame::{encode_frame, frame_header, FrameInfo, FrameType};
use pilot_core::contract::message::{set_sequence, Dtype, Encoding};

use crate::angles::AngleOrder;
use crate::phantom3d::{projection, shepp_logan_3d, Ellipsoid};
use crate::source::{Source, SourceError};

/// How the emulated detector scans.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameParams {
    pub rows: u32,
    pub cols: u32,
    /// Projections per 180 degrees.
    pub projections_per_180: u32,
    pub order: AngleOrder,
    pub darks: u32,
    pub flats: u32,
    /// Take darks and flats again after this many projections (0: only at the start).
    pub retake_every: u64,
    /// Rotation axis, detector column.
    pub center_px: f64,
    pub i0: f64,
    pub dark_counts: f64,
    pub max_attenuation: f64,
    /// Rendered projections kept for angles that come round again.
    pub cache_frames: usize,
}

impl Default for FrameParams {
    fn default() -> Self {
        FrameParams {
            rows: 64,
            cols: 64,
            projections_per_180: 100,
            order: AngleOrder::Golden,
            darks: 4,
            flats: 4,
            retake_every: 0,
            center_px: 32.0,
            i0: 20_000.0,
            dark_counts: 100.0,
            max_attenuation: 2.0,
            cache_frames: 512,
        }
    }
}

/// What frame `seq` of a scan is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Planned {
    pub frame_type: FrameType,
    pub epoch: u16,
    /// The projection's number (angles are taken in this order), for projections.
    pub projection: Option<u64>,
    pub angle_deg: f64,
}

/// A frame setting that cannot be used: the setting (as MASS's settings call it) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FrameParamError {
    pub key: &'static str,
    pub message: String,
}

impl From<FrameParamError> for SourceError {
    fn from(e: FrameParamError) -> Self {
        SourceError::Invalid(e.message)
    }
}

impl FrameParams {
    /// Check the settings, naming the one that is wrong.
    pub fn check(&self) -> Result<(), FrameParamError> {
        let bad = |key, message: String| Err(FrameParamError { key, message });
        if self.rows == 0 || self.cols < 2 {
            let key = if self.rows == 0 {
                "frame_rows"
            } else {
                "frame_cols"
            };
            return bad(
                key,
                format!(
                    "a frame of {} x {} pixels: rows must be at least 1 and columns at least 2",
                    self.rows, self.cols
                ),
            );
        }
        if pilot_core::contract::frame::frame_payload_bytes(self.rows, self.cols, Dtype::U16)
            .is_none()
        {
            return bad(
                "frame_rows",
                format!(
                    "a frame of {} x {} u16 pixels is over the message size limit",
                    self.rows, self.cols
                ),
            );
        }
        if self.projections_per_180 == 0 {
            return bad(
                "projections_per_180",
                "projections_per_180 must be at least 1".into(),
            );
        }
        if self.retake_every > 0 && (self.darks == 0 || self.flats == 0) {
            return bad(
                "retake_every",
                "retake_every needs darks and flats to retake (both at least 1)".into(),
            );
        }
        // The counts model is not a MASS setting (library callers set it); named as the source's.
        if !(self.i0 > 0.0 && self.i0 + self.dark_counts <= u16::MAX as f64) {
            return bad(
                "source",
                format!(
                    "i0 {} plus dark counts {} must be positive and fit u16 pixels (<= 65535)",
                    self.i0, self.dark_counts
                ),
            );
        }
        if !(self.dark_counts >= 0.0 && self.max_attenuation > 0.0) {
            return bad(
                "source",
                "dark counts must be >= 0 and max_attenuation > 0".into(),
            );
        }
        Ok(())
    }

    /// What frame `seq` is: the darks and flats of an epoch, then its projections.
    pub fn plan(&self, seq: u64) -> Planned {
        let fields = self.darks as u64 + self.flats as u64;
        let (epoch, pos) = if self.retake_every > 0 {
            let block = fields + self.retake_every;
            (seq / block, seq % block)
        } else {
            (0, seq)
        };
        let epoch16 = epoch.min(u16::MAX as u64) as u16;
        let field = |frame_type| Planned {
            frame_type,
            epoch: epoch16,
            projection: None,
            angle_deg: 0.0,
        };
        if pos < self.darks as u64 {
            return field(FrameType::Dark);
        }
        if pos < fields {
            return field(FrameType::Flat);
        }
        let k = epoch * self.retake_every + (pos - fields);
        Planned {
            frame_type: FrameType::Projection,
            epoch: epoch16,
            projection: Some(k),
            angle_deg: self.order.angle_deg(k, self.projections_per_180),
        }
    }
}

/// The frame source.
pub struct FrameSource {
    p: FrameParams,
    producer_id: u32,
    encoding: Encoding,
    /// Re-takes asked for by command: the field frames still to send, how many frames they have added to the
    /// schedule, and how many epochs.
    pending_fields: std::collections::VecDeque<FrameType>,
    inserted: u64,
    extra_epochs: u16,
    /// The detector rows to send (first, count), by command.
    band: Option<(u32, u32)>,
    phantom: Vec<Ellipsoid>,
    mu: f64,
    cache: HashMap<u64, Arc<[u8]>>,
    flat: Arc<[u8]>,
    dark: Arc<[u8]>,
    buf: Vec<u8>,
}

impl FrameSource {
    /// `encoding`: envelope or ad00.
    pub fn new(p: FrameParams, producer_id: u32, encoding: Encoding) -> Result<Self, SourceError> {
        p.check()?;
        if !matches!(encoding, Encoding::Envelope | Encoding::Ad00) {
            return Err(SourceError::Invalid(format!(
                "detector frames travel as envelope or ad00, not {encoding}"
            )));
        }
        let phantom = shepp_logan_3d();
        let (rows, cols) = (p.rows as usize, p.cols as usize);
        let mut line = vec![0.0; rows * cols];
        projection(&phantom, 0.0, rows, cols, p.center_px, &mut line);
        let max = line.iter().cloned().fold(0.0, f64::max);
        let mu = if max > 0.0 {
            p.max_attenuation / max
        } else {
            0.0
        };
        let n = (p.rows * p.cols) as usize;
        let filled = |v: f64| -> Arc<[u8]> {
            let px = v.round().clamp(0.0, u16::MAX as f64) as u16;
            std::iter::repeat_n(px.to_le_bytes(), n).flatten().collect()
        };
        let (flat, dark) = (filled(p.dark_counts + p.i0), filled(p.dark_counts));
        let mut s = FrameSource {
            p,
            producer_id,
            encoding,
            pending_fields: Default::default(),
            inserted: 0,
            extra_epochs: 0,
            band: None,
            phantom,
            mu,
            cache: HashMap::new(),
            flat,
            dark,
            buf: Vec::new(),
        };
        s.prerender();
        Ok(s)
    }

    /// Attenuation per phantom value per pixel (`-ln(normalised) = mu * projection`).
    pub fn mu(&self) -> f64 {
        self.mu
    }

    /// The u16 pixels of a frame (shared: a cached projection is not copied).
    fn pixels(&mut self, planned: &Planned) -> Arc<[u8]> {
        let (dark, i0) = (self.p.dark_counts, self.p.i0);
        match planned.frame_type {
            FrameType::Dark => self.dark.clone(),
            FrameType::Flat => self.flat.clone(),
            FrameType::Projection => {
                let key = planned.angle_deg.to_bits();
                if let Some(px) = self.cache.get(&key) {
                    return px.clone();
                }
                let px: Arc<[u8]> = render(
                    &self.phantom,
                    planned.angle_deg,
                    &self.p,
                    self.mu,
                    (dark, i0),
                )
                .into();
                if self.cache.len() >= self.p.cache_frames {
                    self.cache.clear();
                }
                if self.p.cache_frames > 0 {
                    self.cache.insert(key, px.clone());
                }
                px
            }
        }
    }

    /// Render every angle of a scan that visits finitely many (all orders but golden) when they fit the cache,
    /// on every core, so a fast detector is not held up by its own phantom.
    fn prerender(&mut self) {
        let n = self.p.projections_per_180 as u64;
        let distinct = match self.p.order {
            AngleOrder::Sequential => 2 * n,
            AngleOrder::BackAndForth => 2 * n,
            AngleOrder::Interlaced(_) => n,
            AngleOrder::Golden => return,
        };
        if distinct > self.p.cache_frames as u64 {
            return;
        }
        let mut angles: Vec<f64> = (0..distinct)
            .map(|k| self.p.order.angle_deg(k, self.p.projections_per_180))
            .collect();
        angles.sort_by(f64::total_cmp);
        angles.dedup();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = angles.len().div_ceil(threads).max(1);
        let (p, phantom, mu) = (&self.p, &self.phantom, self.mu);
        let rendered: Vec<(f64, Vec<u8>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = angles
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|&a| (a, render(phantom, a, p, mu, (p.dark_counts, p.i0))))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("render thread panicked"))
                .collect()
        });
        for (a, px) in rendered {
            self.cache.insert(a.to_bits(), px.into());
        }
    }
}

/// One projection's u16 counts `dark + i0 exp(-mu p)`, little-endian bytes.
fn render(
    phantom: &[Ellipsoid],
    angle_deg: f64,
    p: &FrameParams,
    mu: f64,
    (dark, i0): (f64, f64),
) -> Vec<u8> {
    let (rows, cols) = (p.rows as usize, p.cols as usize);
    let mut line = vec![0.0; rows * cols];
    projection(
        phantom,
        angle_deg.to_radians(),
        rows,
        cols,
        p.center_px,
        &mut line,
    );
    line.iter()
        .flat_map(|&v| {
            let c = dark + i0 * (-mu * v).exp();
            (c.round().clamp(0.0, u16::MAX as f64) as u16).to_le_bytes()
        })
        .collect()
}

impl Source for FrameSource {
    fn encoding(&self) -> Encoding {
        self.encoding
    }

    fn command(&mut self, c: &pilot_core::contract::control::Command) -> Result<(), String> {
        use pilot_core::contract::control::Command;
        match c {
            Command::RetakeFields { .. } => {
                if self.p.darks == 0 && self.p.flats == 0 {
                    return Err("this detector takes no darks or flats (darks = flats = 0)".into());
                }
                self.extra_epochs = self.extra_epochs.saturating_add(1);
                self.pending_fields.clear();
                self.pending_fields
                    .extend(std::iter::repeat_n(FrameType::Dark, self.p.darks as usize));
                self.pending_fields
                    .extend(std::iter::repeat_n(FrameType::Flat, self.p.flats as usize));
                Ok(())
            }
            Command::SetRows {
                first_row, rows, ..
            } => {
                let end = *first_row as u64 + *rows as u64;
                if *rows == 0 || end > self.p.rows as u64 {
                    return Err(format!(
                        "rows {first_row}..{end} are outside the detector's {} rows",
                        self.p.rows
                    ));
                }
                self.band =
                    (end - *first_row as u64 != self.p.rows as u64).then_some((*first_row, *rows));
                Ok(())
            }
            other => Err(format!(
                "the frame source itself takes no {} command",
                other.name()
            )),
        }
    }

    fn next(&mut self, seq: u64, intended_send_ns: u64) -> &mut [u8] {
        let planned = self.plan_next(seq);
        let full = self.pixels(&planned);
        let (first_row, rows) = self.band.unwrap_or((0, self.p.rows));
        let row_bytes = self.p.cols as usize * 2;
        let pixels = &full[first_row as usize * row_bytes..(first_row + rows) as usize * row_bytes];
        let info = FrameInfo {
            index: seq,
            angle_deg: planned.angle_deg,
            frame_type: planned.frame_type,
            epoch: planned.epoch,
            first_row,
            detector_rows: self.p.rows,
        };
        match self.encoding {
            Encoding::Ad00 => {
                encode_as_ad00(&info, self.p.cols, intended_send_ns, pixels, &mut self.buf)
            }
            _ => {
                let h = frame_header(
                    self.producer_id,
                    seq,
                    intended_send_ns,
                    Dtype::U16,
                    rows,
                    self.p.cols,
                );
                encode_frame(&h, &info, pixels, &mut self.buf);
                set_sequence(&mut self.buf, seq, intended_send_ns);
            }
        }
        &mut self.buf
    }
}

impl FrameSource {
    /// What frame `seq` is: a re-take's field frame if one is pending, else the scan's plan shifted by the frames
    /// re-takes have added, under the epochs they have added. Frame 0 starts the scan again (a run, or the
    /// producer's look at its first message).
    fn plan_next(&mut self, seq: u64) -> Planned {
        if seq == 0 {
            self.pending_fields.clear();
            self.inserted = 0;
            self.extra_epochs = 0;
            self.band = None;
        }
        let planned = match self.pending_fields.pop_front() {
            Some(frame_type) => {
                self.inserted += 1;
                let at = self.p.plan(seq.saturating_sub(self.inserted));
                Planned {
                    frame_type,
                    epoch: at.epoch,
                    projection: None,
                    angle_deg: 0.0,
                }
            }
            None => self.p.plan(seq - self.inserted),
        };
        Planned {
            epoch: planned.epoch.saturating_add(self.extra_epochs),
            ..planned
        }
    }
}

/// A frame as ESS ad00: the frame index as the id (32 bits), the send time as the timestamp, the frame header's
/// fields as attributes.
fn encode_as_ad00(
    info: &FrameInfo,
    cols: u32,
    intended_send_ns: u64,
    pixels: &[u8],
    out: &mut Vec<u8>,
) {
    use pilot_core::contract::ess::{encode_ad00, Ad00, Ad00Type, AttributeValue};
    let rows = (pixels.len() / (2 * cols as usize)) as i64;
    let array = Ad00 {
        source_name: "mass-detector",
        id: (info.index & 0x7fff_ffff) as i32,
        timestamp_ns: intended_send_ns.min(i64::MAX as u64) as i64,
        dimensions: vec![rows, cols as i64],
        data_type: Some(Ad00Type::Uint16),
        data: pixels,
        attributes: Vec::new(),
    };
    encode_ad00(
        &array,
        &[
            ("angle", AttributeValue::F64(info.angle_deg)),
            (
                "frame_type",
                AttributeValue::Text(info.frame_type.as_str().into()),
            ),
            ("epoch", AttributeValue::I64(info.epoch as i64)),
            ("first_row", AttributeValue::I64(info.first_row as i64)),
            (
                "detector_rows",
                AttributeValue::I64(info.detector_rows as i64),
            ),
        ],
        out,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilot_core::contract::frame::decode_frame;

    #[test]
    fn darks_then_flats_then_projections_and_again_after_a_retake() {
        let p = FrameParams {
            darks: 2,
            flats: 1,
            retake_every: 3,
            order: AngleOrder::Sequential,
            projections_per_180: 4,
            ..FrameParams::default()
        };
        let kinds: Vec<(FrameType, u16, Option<u64>, f64)> = (0..12)
            .map(|s| {
                let x = p.plan(s);
                (x.frame_type, x.epoch, x.projection, x.angle_deg)
            })
            .collect();
        use FrameType::*;
        assert_eq!(
            kinds,
            vec![
                (Dark, 0, None, 0.0),
                (Dark, 0, None, 0.0),
                (Flat, 0, None, 0.0),
                (Projection, 0, Some(0), 0.0),
                (Projection, 0, Some(1), 45.0),
                (Projection, 0, Some(2), 90.0),
                (Dark, 1, None, 0.0),
                (Dark, 1, None, 0.0),
                (Flat, 1, None, 0.0),
                (Projection, 1, Some(3), 135.0),
                (Projection, 1, Some(4), 180.0),
                (Projection, 1, Some(5), 225.0),
            ]
        );
    }

    #[test]
    fn frames_decode_with_their_index_angle_and_counts() {
        let p = FrameParams {
            rows: 8,
            cols: 16,
            center_px: 8.0,
            ..FrameParams::default()
        };
        let mut s = FrameSource::new(p.clone(), 5, Encoding::Envelope).unwrap();
        for seq in [0u64, 4, 8, 9, 8] {
            let msg = s.next(seq, 1_000 + seq).to_vec();
            let f = decode_frame(&msg).unwrap();
            let planned = p.plan(seq);
            assert_eq!(f.info.index, seq);
            assert_eq!(
                (f.info.frame_type, f.info.angle_deg),
                (planned.frame_type, planned.angle_deg)
            );
            assert_eq!((f.rows, f.cols, f.info.detector_rows), (8, 16, 8));
            let mut px = Vec::new();
            f.pixels_f32_into(&mut px);
            match f.info.frame_type {
                FrameType::Dark => assert!(px.iter().all(|&v| v == 100.0)),
                FrameType::Flat => assert!(px.iter().all(|&v| v == 20_100.0)),
                FrameType::Projection => {
                    // The head absorbs in the middle, not at the edge.
                    assert!(px[4 * 16 + 8] < 20_000.0 && px[4 * 16] > 20_000.0, "{px:?}");
                }
            }
        }
        // A cached projection is the same frame.
        let again = s.next(8, 0).to_vec();
        let first = FrameSource::new(p, 5, Encoding::Envelope)
            .unwrap()
            .next(8, 0)
            .to_vec();
        assert_eq!(again, first);
    }

    #[test]
    fn commands_retake_fields_under_a_new_epoch_and_cut_a_row_band() {
        use pilot_core::contract::control::Command;
        let p = FrameParams {
            rows: 8,
            cols: 16,
            darks: 1,
            flats: 2,
            center_px: 8.0,
            ..FrameParams::default()
        };
        let mut s = FrameSource::new(p.clone(), 0, Encoding::Envelope).unwrap();
        let frame = |s: &mut FrameSource, seq: u64| {
            let m = s.next(seq, 0).to_vec();
            let f = decode_frame(&m).unwrap();
            (
                f.info.frame_type,
                f.info.epoch,
                f.info.angle_deg,
                f.info.first_row,
                f.rows,
            )
        };
        use FrameType::*;
        let before: Vec<_> = (0..5).map(|q| frame(&mut s, q)).collect();
        assert_eq!(before[3].0, Projection);
        s.command(&Command::RetakeFields { id: None }).unwrap();
        let retake: Vec<_> = (5..9).map(|q| frame(&mut s, q)).collect();
        assert_eq!(
            retake.iter().map(|f| (f.0, f.1)).collect::<Vec<_>>(),
            vec![(Dark, 1), (Flat, 1), (Flat, 1), (Projection, 1)]
        );
        // The projections go on where they left off: frame 8 is the third projection.
        assert_eq!(retake[3].2, p.order.angle_deg(2, p.projections_per_180));
        s.command(&Command::SetRows {
            first_row: 2,
            rows: 3,
            id: None,
        })
        .unwrap();
        assert_eq!((frame(&mut s, 9).3, frame(&mut s, 10).4), (2, 3));
        assert!(s
            .command(&Command::SetRows {
                first_row: 6,
                rows: 3,
                id: None
            })
            .unwrap_err()
            .contains("outside"));
        assert!(s.command(&Command::Stop { id: None }).is_err());
        // A new run starts the scan again.
        assert_eq!(frame(&mut s, 0), before[0]);
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let with = |f: &dyn Fn(&mut FrameParams)| {
            let mut p = FrameParams::default();
            f(&mut p);
            FrameSource::new(p, 0, Encoding::Envelope)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(with(&|p| p.rows = 0).contains("rows must be at least 1"));
        assert!(with(&|p| p.projections_per_180 = 0).contains("projections_per_180"));
        assert!(with(&|p| {
            p.retake_every = 5;
            p.flats = 0
        })
        .contains("retake_every"));
        assert!(with(&|p| p.i0 = 70_000.0).contains("fit u16"));
        assert!(with(&|p| p.max_attenuation = f64::NAN).contains("max_attenuation"));
        assert!(with(&|p| {
            p.rows = 40_000;
            p.cols = 40_000
        })
        .contains("size limit"));
    }
}
