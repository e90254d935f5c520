//! A rolling reconstruction of a frame stream, as APS tomostream keeps one: a circular buffer of the latest
//! projection frames (enough to cover 180 degrees), normalised with the latest flats and darks seen, and three
//! ortho-slices updated per frame by adding the new frame's filtered back projection and subtracting that of
//! the frame it replaces. A frame costs O(n^2) per slice, not a reconstruction. Numerics only; frames arrive
//! decoded ([`pilot_core::contract::frame::Frame`]).
//!
//! Geometry as in [`super`]: the slices are of the volume `rows x n x n` (n = detector columns; z down the
//! detector rows): the axial slice at detector row `axial_row` (`n x n`), the plane `y = plane_y` (`rows x n`,
//! columns along x) and the plane `x = plane_x` (`rows x n`, columns along y from +half down, as the axial
//! slice's rows), both offsets in pixels from the rotation axis. Every frame in the buffer weighs `pi / B`
//! (B = the buffer's size), so a frame's contribution does not depend on the others and can be taken out again.
//! The sums are f32; [`Rolling::recompute`] rebuilds them from the buffer (every `recompute_every` frames, so
//! rounding cannot drift).
//!
//! Frames that would corrupt the buffer are counted and left out ([`FrameCounts`]): another geometry, a frame
//! index seen before, a projection of an older flat/dark epoch or of one whose flats and darks have not arrived.

use std::collections::HashSet;
use std::sync::Arc;

use pilot_core::contract::frame::{Frame, FrameType};
use rayon::prelude::*;
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use super::filter::{response, FilterKind};
use super::pipeline::TINY;

/// Where the band of detector rows sits and where the slices are cut.
#[derive(Debug, Clone, PartialEq)]
pub struct Geometry {
    /// Detector rows in this band, and its first row on the detector.
    pub rows: usize,
    pub first_row: usize,
    pub detector_rows: usize,
    /// Detector columns (the slices are `cols` wide).
    pub cols: usize,
    /// Rotation axis, detector column.
    pub center: f64,
    /// Detector row of the axial slice (None: outside this band, no axial slice).
    pub axial_row: Option<usize>,
    /// Offsets of the vertical planes from the axis, pixels.
    pub plane_x: f64,
    pub plane_y: f64,
}

/// The rolling reconstruction's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RollingConfig {
    pub geometry: Geometry,
    /// Frames kept (those covering 180 degrees).
    pub buffer_frames: usize,
    pub filter: FilterKind,
    /// Rebuild the sums from the buffer after this many replaced frames (0: never).
    pub recompute_every: usize,
}

/// The three ortho-slices.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrthoSlices {
    /// `n x n` (empty when the axial row is outside the band).
    pub axial: Vec<f32>,
    /// `rows x n`: the plane y = plane_y.
    pub plane_xz: Vec<f32>,
    /// `rows x n`: the plane x = plane_x.
    pub plane_yz: Vec<f32>,
}

/// What happened to the frames pushed so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameCounts {
    pub projections: u64,
    pub flats: u64,
    pub darks: u64,
    /// Frames whose index arrived before (left out).
    pub duplicates: u64,
    /// Frames with an index below the highest seen (used: the buffer holds the latest received).
    pub out_of_order: u64,
    /// Frames of another geometry (rows, columns, band).
    pub wrong_geometry: u64,
    /// Projections of an older flat/dark epoch than the latest seen, and flats/darks of an older epoch.
    pub stale_epoch: u64,
    /// Projections that arrived before any flat and dark of their epoch.
    pub without_fields: u64,
    /// Projections replaced in the buffer.
    pub replaced: u64,
}

/// Why a frame was left out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameRejected {
    #[error("frame {index}: {got}, the reconstruction's geometry is {want}")]
    Geometry {
        index: u64,
        got: String,
        want: String,
    },
    #[error("frame {0} arrived before (a duplicate)")]
    Duplicate(u64),
    #[error("frame {index}: flat/dark epoch {epoch} is older than the latest seen ({latest})")]
    StaleEpoch { index: u64, epoch: u16, latest: u16 },
    #[error("frame {index}: no flats and darks of epoch {epoch} yet")]
    WithoutFields { index: u64, epoch: u16 },
}

impl FrameRejected {
    /// A short category for counting rejections by reason.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameRejected::Geometry { .. } => "frame of another geometry",
            FrameRejected::Duplicate(_) => "duplicate frame",
            FrameRejected::StaleEpoch { .. } => "frame of an older flat/dark epoch",
            FrameRejected::WithoutFields { .. } => "projection before its flats and darks",
        }
    }
}

/// The mean flat and dark of the latest epoch of each.
#[derive(Debug, Clone, Default)]
struct Fields {
    flat: Field,
    dark: Field,
}

#[derive(Debug, Clone, Default)]
struct Field {
    epoch: Option<u16>,
    sum: Vec<f64>,
    count: u32,
    mean: Vec<f32>,
}

impl Field {
    /// Add a frame of `epoch`: a newer epoch starts the mean again; an older one is refused.
    fn add(&mut self, epoch: u16, pixels: &[f32]) -> Result<(), u16> {
        match self.epoch {
            Some(e) if epoch < e => return Err(e),
            Some(e) if epoch == e => {}
            _ => {
                self.epoch = Some(epoch);
                self.sum = vec![0.0; pixels.len()];
                self.count = 0;
            }
        }
        for (s, &p) in self.sum.iter_mut().zip(pixels) {
            *s += p as f64;
        }
        self.count += 1;
        let n = self.count as f64;
        self.mean = self.sum.iter().map(|s| (s / n) as f32).collect();
        Ok(())
    }
}

/// Ramp filtering of whole frames, two rows per complex FFT (the filter is real and even, so the real and
/// imaginary parts stay apart).
pub struct FrameFilter {
    cols: usize,
    response: Vec<f32>,
    forward: Arc<dyn Fft<f32>>,
    inverse: Arc<dyn Fft<f32>>,
}

impl FrameFilter {
    pub fn new(cols: usize, kind: FilterKind) -> Self {
        let pad = (2 * cols).next_power_of_two();
        let mut planner = FftPlanner::new();
        let scale = 1.0 / pad as f64;
        FrameFilter {
            cols,
            response: response(kind, pad)
                .into_iter()
                .map(|h| (h * scale) as f32)
                .collect(),
            forward: planner.plan_fft_forward(pad),
            inverse: planner.plan_fft_inverse(pad),
        }
    }

    /// Filter `rows x cols` line integrals in place, rows in parallel.
    pub fn filter(&self, data: &mut [f32]) {
        let (cols, pad) = (self.cols, self.response.len());
        data.par_chunks_mut(2 * cols).for_each_init(
            || vec![Complex32::default(); pad],
            |buf, pair| {
                buf.iter_mut().for_each(|c| *c = Complex32::default());
                let (a, b) = pair.split_at_mut(cols.min(pair.len()));
                for (c, &v) in buf.iter_mut().zip(a.iter()) {
                    c.re = v;
                }
                for (c, &v) in buf.iter_mut().zip(b.iter()) {
                    c.im = v;
                }
                self.forward.process(buf);
                for (c, &h) in buf.iter_mut().zip(&self.response) {
                    *c *= h;
                }
                self.inverse.process(buf);
                for (v, c) in a.iter_mut().zip(buf.iter()) {
                    *v = c.re;
                }
                for (v, c) in b.iter_mut().zip(buf.iter()) {
                    *v = c.im;
                }
            },
        );
    }
}

/// Line integrals `-ln((raw - dark) / (flat - dark))` in place, guarded as [`super::pipeline::row_sinogram`]
/// (the logarithm is [`ln_f32`], vectorised).
pub fn normalise(raw: &mut [f32], flat: &[f32], dark: &[f32]) {
    raw.par_chunks_mut(4096)
        .zip(flat.par_chunks(4096))
        .zip(dark.par_chunks(4096))
        .for_each(|((v, f), d)| normalise_chunk::<0>(v, f, d));
}

#[inline(always)]
fn normalise_kernel<const D: usize>(v: &mut [f32], f: &[f32], d: &[f32]) {
    for ((x, &fv), &dv) in v.iter_mut().zip(f).zip(d) {
        let t = (*x - dv) / (fv - dv).max(TINY);
        *x = -ln_f32(t.max(TINY));
    }
}

crate::multiversion!(normalise_chunk, normalise_kernel, (v: &mut [f32], f: &[f32], d: &[f32]) -> ());

/// Natural logarithm of a positive, finite, normal f32 (Cephes' `logf`: the mantissa's polynomial, within about
/// one unit in the last place), written without branches so that it vectorises.
#[inline(always)]
pub fn ln_f32(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 126;
    // The mantissa in [0.5, 1).
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let small = m < std::f32::consts::FRAC_1_SQRT_2;
    e -= small as i32;
    m = if small { m + m - 1.0 } else { m - 1.0 };
    let z = m * m;
    let mut y = 7.037_683_6e-2;
    for c in [
        -1.151_461e-1,
        1.167_699_9e-1,
        -1.242_014_1e-1,
        1.424_932_3e-1,
        -1.666_805_8e-1,
        2.000_071_5e-1,
        -2.499_999_4e-1,
        3.333_333e-1,
    ] {
        y = y * m + c;
    }
    let ef = e as f32;
    y = y * m * z;
    y += -2.121_944_4e-4 * ef;
    y += -0.5 * z;
    m + y + 0.693_359_4 * ef
}

/// A frame's pixels as f32 into `out`; u16 frames (a detector's) converted in parallel.
pub fn pixels_f32_into(frame: &Frame<'_>, out: &mut Vec<f32>) {
    if frame.dtype != pilot_core::contract::message::Dtype::U16 {
        frame.pixels_f32_into(out);
        return;
    }
    out.resize(frame.pixels.len() / 2, 0.0);
    out.par_chunks_mut(4096)
        .zip(frame.pixels.par_chunks(8192))
        .for_each(|(o, b)| {
            for (v, c) in o.iter_mut().zip(b.chunks_exact(2)) {
                *v = u16::from_le_bytes([c[0], c[1]]) as f32;
            }
        });
}

/// One frame's share of a line of pixels: pixel j of the line projects to detector position `t0 + j dt` of
/// `row`, and only pixels `j0..j1` land inside the detector (between its first and last column).
struct LineTerm<'a> {
    row: &'a [f32],
    t0: f32,
    dt: f32,
    j0: usize,
    j1: usize,
    weight: f32,
}

impl<'a> LineTerm<'a> {
    fn new(row: &'a [f32], t0: f64, dt: f64, n: usize, weight: f32) -> Self {
        let (t0, dt) = (t0 as f32, dt as f32);
        let (j0, j1) = inside(t0, dt, n, row.len());
        LineTerm {
            row,
            t0,
            dt,
            j0,
            j1,
            weight,
        }
    }
}

/// The pixels `j0..j1` of `0..n` whose position `t0 + j dt` lies in `[0, cols - 1)` (so that the pixel and the
/// next one can be interpolated between), computed with the same arithmetic the kernel uses. The positions are
/// monotone in j, so the pixels inside form one run; its ends are estimated, then checked one by one.
fn inside(t0: f32, dt: f32, n: usize, cols: usize) -> (usize, usize) {
    let ok = |j: usize| {
        let t = t0 + j as f32 * dt;
        t >= 0.0 && t < cols as f32 - 1.0
    };
    // Estimate the run from the line's ends, then step to its exact edges.
    let (lo, hi) = if dt.abs() < 1e-9 {
        if ok(0) {
            (0, n)
        } else {
            (0, 0)
        }
    } else {
        let a = -t0 / dt;
        let b = (cols as f32 - 1.0 - t0) / dt;
        let (a, b) = (a.min(b), a.max(b));
        let clamp = |x: f32| x.clamp(0.0, n as f32) as usize;
        (clamp(a.floor()), clamp(b.ceil()))
    };
    let mut j0 = lo.min(n);
    while j0 > 0 && ok(j0 - 1) {
        j0 -= 1;
    }
    while j0 < n && !ok(j0) {
        j0 += 1;
    }
    let mut j1 = hi.max(j0).min(n);
    while j1 < n && ok(j1) {
        j1 += 1;
    }
    while j1 > j0 && !ok(j1 - 1) {
        j1 -= 1;
    }
    (j0, j1)
}

#[inline(always)]
fn line_kernel<const D: usize>(out: &mut [f32], terms: &[LineTerm<'_>]) {
    for term in terms {
        let (row, w) = (term.row, term.weight);
        let out = &mut out[term.j0..term.j1];
        for (jj, o) in out.iter_mut().enumerate() {
            let t = term.t0 + (term.j0 + jj) as f32 * term.dt;
            // `inside` keeps 0 <= t < cols - 1, so t truncates to an i32 and k + 1 < cols.
            debug_assert!(t >= 0.0 && t < row.len() as f32 - 1.0);
            // SAFETY: t is finite and within i32 (see above).
            let k: i32 = unsafe { t.to_int_unchecked() };
            let f = t - k as f32;
            let k = k as usize;
            // SAFETY: k + 1 < row.len() for every pixel of j0..j1 (see `inside`).
            let (a, b) = unsafe { (*row.get_unchecked(k), *row.get_unchecked(k + 1)) };
            *o += w * (a + f * (b - a));
        }
    }
}

crate::multiversion!(line_sum, line_kernel, (out: &mut [f32], terms: &[LineTerm<'_>]) -> ());

/// Add `weight` times the back projection of one filtered frame (`rows x cols`) at `angle_rad` to the slices.
pub fn backproject(
    g: &Geometry,
    filtered: &[f32],
    angle_rad: f64,
    weight: f32,
    s: &mut OrthoSlices,
) {
    backproject_all(g, &[(filtered, angle_rad, weight)], s);
}

/// Add the back projections of several filtered frames `(rows x cols, angle, weight)` to the slices in one pass
/// over them (a replaced frame is a term of negative weight).
pub fn backproject_all(g: &Geometry, frames: &[(&[f32], f64, f32)], s: &mut OrthoSlices) {
    let n = g.cols;
    let half = (n as f64 - 1.0) / 2.0;
    if let Some(r) = g.axial_row {
        let r = r - g.first_row;
        s.axial.par_chunks_mut(n).enumerate().for_each(|(i, out)| {
            let y = half - i as f64;
            let terms: Vec<LineTerm> = frames
                .iter()
                .map(|&(f, a, w)| {
                    let (c, sn) = (a.cos(), a.sin());
                    LineTerm::new(
                        &f[r * n..(r + 1) * n],
                        g.center - half * c + y * sn,
                        c,
                        n,
                        w,
                    )
                })
                .collect();
            line_sum::<0>(out, &terms);
        });
    }
    // y = plane_y, x = j - half: t = center + x c + plane_y s; x = plane_x, y = half - j: t = center +
    // plane_x c + (half - j) s. The same positions on every detector row.
    let lines: Vec<(f64, f64, f64, f64)> = frames
        .iter()
        .map(|&(_, a, _)| {
            let (c, sn) = (a.cos(), a.sin());
            (
                g.center - half * c + g.plane_y * sn,
                c,
                g.center + g.plane_x * c + half * sn,
                -sn,
            )
        })
        .collect();
    s.plane_xz
        .par_chunks_mut(n)
        .zip(s.plane_yz.par_chunks_mut(n))
        .enumerate()
        .for_each(|(z, (oxz, oyz))| {
            let rows = frames.iter().map(|&(f, _, w)| (&f[z * n..(z + 1) * n], w));
            let (xz, yz): (Vec<LineTerm>, Vec<LineTerm>) = rows
                .zip(&lines)
                .map(|((row, w), &(t_xz, d_xz, t_yz, d_yz))| {
                    (
                        LineTerm::new(row, t_xz, d_xz, n, w),
                        LineTerm::new(row, t_yz, d_yz, n, w),
                    )
                })
                .unzip();
            line_sum::<0>(oxz, &xz);
            line_sum::<0>(oyz, &yz);
        });
}

/// A projection in the buffer: its index, angle, filtered line integrals, and the axial row's line integrals
/// before filtering (what a full reconstruction of that slice starts from).
struct Slot {
    index: u64,
    angle_rad: f64,
    filtered: Vec<f32>,
    axial_line: Vec<f32>,
}

/// What a pushed frame did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Absorbed {
    /// A flat or a dark, added to its epoch's mean.
    Field,
    /// A projection added to the slices; `replaced` is the index of the frame it took the place of.
    Projection { replaced: Option<u64> },
}

/// The rolling reconstruction.
pub struct Rolling {
    cfg: RollingConfig,
    filter: FrameFilter,
    fields: Fields,
    slots: Vec<Slot>,
    next_slot: usize,
    slices: OrthoSlices,
    seen: HashSet<u64>,
    highest: Option<u64>,
    lowest: Option<u64>,
    counts: FrameCounts,
    since_recompute: usize,
    scratch: Vec<f32>,
    background: f64,
}

impl Rolling {
    pub fn new(cfg: RollingConfig) -> Self {
        let g = &cfg.geometry;
        let n = g.cols;
        let slices = OrthoSlices {
            axial: if g.axial_row.is_some() {
                vec![0.0; n * n]
            } else {
                Vec::new()
            },
            plane_xz: vec![0.0; g.rows * n],
            plane_yz: vec![0.0; g.rows * n],
        };
        Rolling {
            filter: FrameFilter::new(n, cfg.filter),
            cfg,
            fields: Fields::default(),
            slots: Vec::new(),
            next_slot: 0,
            slices,
            seen: HashSet::new(),
            highest: None,
            lowest: None,
            counts: FrameCounts::default(),
            since_recompute: 0,
            scratch: Vec::new(),
            background: f64::NAN,
        }
    }

    /// Take one frame: a flat or dark into its epoch's mean, a projection into the buffer and the slices.
    pub fn push(&mut self, frame: &Frame<'_>) -> Result<Absorbed, FrameRejected> {
        self.check_geometry(frame)?;
        let index = frame.info.index;
        if self.seen.contains(&index) {
            self.counts.duplicates += 1;
            return Err(FrameRejected::Duplicate(index));
        }
        pixels_f32_into(frame, &mut self.scratch);
        let epoch = frame.info.epoch;
        let absorbed = match frame.info.frame_type {
            FrameType::Flat | FrameType::Dark => {
                let (field, count) = match frame.info.frame_type {
                    FrameType::Flat => (&mut self.fields.flat, &mut self.counts.flats),
                    _ => (&mut self.fields.dark, &mut self.counts.darks),
                };
                if let Err(latest) = field.add(epoch, &self.scratch) {
                    self.counts.stale_epoch += 1;
                    return Err(FrameRejected::StaleEpoch {
                        index,
                        epoch,
                        latest,
                    });
                }
                *count += 1;
                Absorbed::Field
            }
            FrameType::Projection => self.add_projection(index, frame.info.angle_deg, epoch)?,
        };
        self.note_index(index);
        Ok(absorbed)
    }

    fn check_geometry(&mut self, frame: &Frame<'_>) -> Result<(), FrameRejected> {
        let g = &self.cfg.geometry;
        let got = (
            frame.rows as usize,
            frame.cols as usize,
            frame.info.first_row as usize,
            frame.info.detector_rows as usize,
        );
        let want = (g.rows, g.cols, g.first_row, g.detector_rows);
        if got == want {
            return Ok(());
        }
        self.counts.wrong_geometry += 1;
        let show = |(r, c, f, d): (usize, usize, usize, usize)| {
            format!("rows {f}..{} of {d} x {c} columns", f + r)
        };
        Err(FrameRejected::Geometry {
            index: frame.info.index,
            got: show(got),
            want: show(want),
        })
    }

    fn note_index(&mut self, index: u64) {
        if self.highest.is_some_and(|h| index < h) {
            self.counts.out_of_order += 1;
        }
        self.seen.insert(index);
        self.highest = Some(self.highest.map_or(index, |h| h.max(index)));
        self.lowest = Some(self.lowest.map_or(index, |l| l.min(index)));
    }

    fn add_projection(
        &mut self,
        index: u64,
        angle_deg: f64,
        epoch: u16,
    ) -> Result<Absorbed, FrameRejected> {
        let f = &self.fields;
        let latest = f.flat.epoch.max(f.dark.epoch);
        if let Some(latest) = latest.filter(|&l| epoch < l) {
            self.counts.stale_epoch += 1;
            return Err(FrameRejected::StaleEpoch {
                index,
                epoch,
                latest,
            });
        }
        if f.flat.epoch != Some(epoch) || f.dark.epoch != Some(epoch) {
            self.counts.without_fields += 1;
            return Err(FrameRejected::WithoutFields { index, epoch });
        }
        let mut filtered = std::mem::take(&mut self.scratch);
        normalise(&mut filtered, &f.flat.mean, &f.dark.mean);
        self.background = edge_mean(&filtered, self.cfg.geometry.cols, 2);
        let g = &self.cfg.geometry;
        let axial_line = match g.axial_row {
            Some(r) => {
                filtered[(r - g.first_row) * g.cols..(r - g.first_row + 1) * g.cols].to_vec()
            }
            None => Vec::new(),
        };
        self.filter.filter(&mut filtered);
        let angle_rad = angle_deg.to_radians();
        let w = self.weight();
        self.counts.projections += 1;
        let slot = Slot {
            index,
            angle_rad,
            filtered,
            axial_line,
        };
        if self.slots.len() < self.cfg.buffer_frames {
            backproject(
                &self.cfg.geometry,
                &slot.filtered,
                angle_rad,
                w,
                &mut self.slices,
            );
            self.slots.push(slot);
            return Ok(Absorbed::Projection { replaced: None });
        }
        // The new frame in and the one it replaces out, in one pass over the slices.
        let old = std::mem::replace(&mut self.slots[self.next_slot], slot);
        let new = &self.slots[self.next_slot];
        backproject_all(
            &self.cfg.geometry,
            &[
                (&new.filtered, new.angle_rad, w),
                (&old.filtered, old.angle_rad, -w),
            ],
            &mut self.slices,
        );
        self.next_slot = (self.next_slot + 1) % self.cfg.buffer_frames;
        self.counts.replaced += 1;
        self.since_recompute += 1;
        if self.cfg.recompute_every > 0 && self.since_recompute >= self.cfg.recompute_every {
            self.recompute();
        }
        self.scratch = old.filtered;
        let replaced = Some(old.index);
        Ok(Absorbed::Projection { replaced })
    }

    /// Each frame's weight: its share of 180 degrees in a full buffer.
    fn weight(&self) -> f32 {
        (std::f64::consts::PI / self.cfg.buffer_frames.max(1) as f64) as f32
    }

    /// Rebuild the slices from the frames in the buffer.
    pub fn recompute(&mut self) {
        self.slices = from_scratch(
            &self.cfg.geometry,
            self.slots
                .iter()
                .map(|s| (s.angle_rad, s.filtered.as_slice())),
            self.weight(),
        );
        self.since_recompute = 0;
    }

    pub fn slices(&self) -> &OrthoSlices {
        &self.slices
    }

    /// A full reconstruction of the axial slice from the buffer's frames by GridRec (`cols x cols`, the buffer's
    /// angles, each frame's line integrals before filtering); None without an axial slice or frames.
    pub fn gridrec_axial(&self, filter: super::filter::FilterKind) -> Option<Vec<f32>> {
        let g = &self.cfg.geometry;
        if g.axial_row.is_none() || self.slots.is_empty() {
            return None;
        }
        let theta: Vec<f64> = self.slots.iter().map(|s| s.angle_rad).collect();
        let sino: Vec<f32> = self
            .slots
            .iter()
            .flat_map(|s| s.axial_line.iter().copied())
            .collect();
        let plan = super::gridrec::GridRecPlan::new(g.cols, g.cols, &theta, filter);
        let mut work = plan.work();
        let mut out = vec![0.0; g.cols * g.cols];
        plan.reconstruct(&mut work, g.center, &sino, &mut out);
        Some(out)
    }

    /// The line integrals of the buffer's frames on the axial row (`frames x cols`, before filtering) and their
    /// angles, in buffer order.
    pub fn axial_sinogram(&self) -> (Vec<f32>, Vec<f64>) {
        (
            self.slots
                .iter()
                .flat_map(|s| s.axial_line.iter().copied())
                .collect(),
            self.slots.iter().map(|s| s.angle_rad).collect(),
        )
    }

    /// The newest projection's mean line integral over its outermost columns (NaN before the first).
    pub fn background(&self) -> f64 {
        self.background
    }

    pub fn counts(&self) -> FrameCounts {
        self.counts
    }

    /// The band and slices the reconstruction was built for.
    pub fn geometry(&self) -> &Geometry {
        &self.cfg.geometry
    }

    /// Projections in the buffer now.
    pub fn buffered_len(&self) -> usize {
        self.slots.len()
    }

    /// Frame indices missing between the lowest and the highest seen.
    pub fn missing(&self) -> u64 {
        match (self.lowest, self.highest) {
            (Some(l), Some(h)) => (h - l + 1).saturating_sub(self.seen.len() as u64),
            _ => 0,
        }
    }

    /// Frames in the buffer, and their indices (oldest first).
    pub fn buffered(&self) -> Vec<u64> {
        let n = self.slots.len();
        (0..n)
            .map(|k| self.slots[(self.next_slot + k) % n].index)
            .collect()
    }

    /// The buffer's angles in degrees (oldest first).
    pub fn buffered_angles_deg(&self) -> Vec<f64> {
        let n = self.slots.len();
        (0..n)
            .map(|k| self.slots[(self.next_slot + k) % n].angle_rad.to_degrees())
            .collect()
    }
}

/// Mean of the `k` outermost columns on each side of `rows x cols` line integrals (NaN when empty).
pub fn edge_mean(data: &[f32], cols: usize, k: usize) -> f64 {
    let k = k.min(cols / 2).max(1);
    let (mut sum, mut n) = (0.0f64, 0usize);
    for row in data.chunks_exact(cols.max(1)) {
        for &v in row[..k].iter().chain(&row[cols - k..]) {
            sum += v as f64;
            n += 1;
        }
    }
    if n == 0 {
        f64::NAN
    } else {
        sum / n as f64
    }
}

/// The slices of a set of filtered frames `(angle, rows x cols)` summed from nothing, each weighing `weight`.
pub fn from_scratch<'a>(
    g: &Geometry,
    frames: impl Iterator<Item = (f64, &'a [f32])>,
    weight: f32,
) -> OrthoSlices {
    let n = g.cols;
    let mut s = OrthoSlices {
        axial: if g.axial_row.is_some() {
            vec![0.0; n * n]
        } else {
            Vec::new()
        },
        plane_xz: vec![0.0; g.rows * n],
        plane_yz: vec![0.0; g.rows * n],
    };
    // Sixteen frames per pass over the slices.
    let frames: Vec<(&[f32], f64, f32)> = frames.map(|(a, f)| (f, a, weight)).collect();
    for batch in frames.chunks(16) {
        backproject_all(g, batch, &mut s);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilot_core::contract::frame::FrameInfo;
    use pilot_core::contract::message::Dtype;

    fn geometry(rows: usize, cols: usize) -> Geometry {
        Geometry {
            rows,
            first_row: 0,
            detector_rows: rows,
            cols,
            center: (cols as f64 - 1.0) / 2.0,
            axial_row: Some(rows / 2),
            plane_x: 0.0,
            plane_y: 0.0,
        }
    }

    fn frame(
        pixels: &[u8],
        rows: u32,
        cols: u32,
        index: u64,
        angle_deg: f64,
        frame_type: FrameType,
        epoch: u16,
    ) -> Frame<'_> {
        Frame {
            info: FrameInfo {
                index,
                angle_deg,
                frame_type,
                epoch,
                first_row: 0,
                detector_rows: rows,
            },
            rows,
            cols,
            dtype: Dtype::U16,
            pixels,
        }
    }

    fn u16s(v: &[u16]) -> Vec<u8> {
        v.iter().flat_map(|p| p.to_le_bytes()).collect()
    }

    /// Counts of a cylinder of radius `r` (attenuation `mu` per pixel) about the axis, at any angle: a
    /// projection that does not depend on the angle, with flat 1000 and dark 100.
    fn cylinder_frame(rows: usize, cols: usize, r: f64, mu: f64) -> Vec<u16> {
        let half = (cols as f64 - 1.0) / 2.0;
        (0..rows * cols)
            .map(|k| {
                let x = (k % cols) as f64 - half;
                let chord = if x.abs() < r {
                    2.0 * (r * r - x * x).sqrt()
                } else {
                    0.0
                };
                (100.0 + 900.0 * (-mu * chord).exp()).round() as u16
            })
            .collect()
    }

    #[test]
    fn the_vectorised_logarithm_is_within_two_units_in_the_last_place() {
        let mut x = TINY;
        while x < 1e7 {
            let (got, want) = (ln_f32(x) as f64, (x as f64).ln());
            let ulp = (want.abs() as f32).max(f32::MIN_POSITIVE);
            let ulp = (f32::from_bits(ulp.to_bits() + 1) - ulp) as f64;
            assert!(
                (got - want).abs() <= 2.0 * ulp.max(1e-7),
                "ln {x}: {got} vs {want}"
            );
            x *= 1.000_37;
        }
        assert_eq!(ln_f32(1.0), 0.0);
    }

    proptest::proptest! {
        #[test]
        fn the_pixels_inside_the_detector_are_one_exact_run(
            t0 in -3000.0f32..3000.0,
            dt in -1.5f32..1.5,
            n in 1usize..300,
            cols in 2usize..300,
        ) {
            let (j0, j1) = inside(t0, dt, n, cols);
            let ok = |j: usize| {
                let t = t0 + j as f32 * dt;
                t >= 0.0 && t < cols as f32 - 1.0
            };
            proptest::prop_assert!(j0 <= j1 && j1 <= n);
            for j in 0..n {
                proptest::prop_assert_eq!(ok(j), (j0..j1).contains(&j), "j {}", j);
            }
        }
    }

    #[test]
    fn filtering_two_rows_per_fft_equals_one_at_a_time() {
        let cols = 37;
        let f = FrameFilter::new(cols, FilterKind::SheppLogan);
        let mut data: Vec<f32> = (0..3 * cols).map(|k| ((k * 7) % 11) as f32).collect();
        let rows: Vec<Vec<f32>> = data.chunks(cols).map(|r| r.to_vec()).collect();
        f.filter(&mut data);
        for (i, mut row) in rows.into_iter().enumerate() {
            f.filter(&mut row);
            for (a, b) in row.iter().zip(&data[i * cols..(i + 1) * cols]) {
                assert!((a - b).abs() < 1e-4, "row {i}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn a_full_buffer_reconstructs_a_cylinder_in_all_three_slices() {
        let (rows, cols, mu, r) = (4usize, 64usize, 0.02, 20.0);
        // The planes through pixel centres: x = 0.5 is column 32, y = -0.5 is row 32 of the axial slice.
        let mut g = geometry(rows, cols);
        g.plane_x = 0.5;
        g.plane_y = -0.5;
        let cfg = RollingConfig {
            geometry: g,
            buffer_frames: 90,
            filter: FilterKind::Ramp,
            recompute_every: 0,
        };
        let mut roll = Rolling::new(cfg);
        let flat = u16s(&vec![1000; rows * cols]);
        let dark = u16s(&vec![100; rows * cols]);
        let proj = u16s(&cylinder_frame(rows, cols, r, mu));
        let (rw, cl) = (rows as u32, cols as u32);
        roll.push(&frame(&flat, rw, cl, 0, 0.0, FrameType::Flat, 0))
            .unwrap();
        roll.push(&frame(&dark, rw, cl, 1, 0.0, FrameType::Dark, 0))
            .unwrap();
        for k in 0..90u64 {
            let a = k as f64 * 2.0;
            roll.push(&frame(&proj, rw, cl, 2 + k, a, FrameType::Projection, 0))
                .unwrap();
        }
        let s = roll.slices();
        let n = cols;
        let at = |img: &[f32], i: usize, j: usize| img[i * n + j] as f64;
        // Inside the cylinder mu, outside 0 (within the ring artefacts of a 64-pixel FBP).
        assert!(
            (at(&s.axial, 32, 32) - mu).abs() < 0.15 * mu,
            "{}",
            at(&s.axial, 32, 32)
        );
        assert!((at(&s.axial, 32, 42) - mu).abs() < 0.15 * mu);
        assert!(at(&s.axial, 32, 58).abs() < 0.15 * mu);
        // The vertical planes through the axis show the same profile on every row.
        for z in 0..rows {
            for j in [22usize, 32, 42, 58] {
                let want = at(&s.axial, 32, j);
                assert!((at(&s.plane_xz, z, j) - want).abs() < 1e-5, "xz {z} {j}");
                let i = j; // the yz plane runs along y from +half down, as the axial slice's rows
                assert!((at(&s.plane_yz, z, i) - at(&s.axial, i, 32)).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn incremental_slices_equal_a_back_projection_of_the_buffer_from_scratch() {
        let (rows, cols) = (3usize, 24usize);
        let mut g = geometry(rows, cols);
        g.plane_x = 3.5;
        g.plane_y = -2.25;
        let cfg = RollingConfig {
            geometry: g.clone(),
            buffer_frames: 10,
            filter: FilterKind::Hann,
            recompute_every: 0,
        };
        let mut roll = Rolling::new(cfg);
        let (rw, cl) = (rows as u32, cols as u32);
        let flat = u16s(&vec![4000; rows * cols]);
        let dark = u16s(&vec![0; rows * cols]);
        roll.push(&frame(&flat, rw, cl, 0, 0.0, FrameType::Flat, 0))
            .unwrap();
        roll.push(&frame(&dark, rw, cl, 1, 0.0, FrameType::Dark, 0))
            .unwrap();
        let mut kept: Vec<(f64, Vec<u16>)> = Vec::new();
        for k in 0..37u64 {
            let px: Vec<u16> = (0..rows * cols)
                .map(|p| 1000 + ((p as u64 * 31 + k * 17) % 2000) as u16)
                .collect();
            let angle = (k as f64 * 111.246) % 180.0;
            let r = roll
                .push(&frame(
                    &u16s(&px),
                    rw,
                    cl,
                    2 + k,
                    angle,
                    FrameType::Projection,
                    0,
                ))
                .unwrap();
            assert_eq!(
                r,
                Absorbed::Projection {
                    replaced: (k >= 10).then(|| 2 + k - 10)
                }
            );
            kept.push((angle, px));
        }
        assert_eq!(roll.buffered(), (29..39).collect::<Vec<u64>>());
        // From scratch: normalise and filter the last 10 frames, back project.
        let f = FrameFilter::new(cols, FilterKind::Hann);
        let frames: Vec<(f64, Vec<f32>)> = kept[27..]
            .iter()
            .map(|(a, px)| {
                let mut v: Vec<f32> = px.iter().map(|&p| p as f32).collect();
                normalise(&mut v, &vec![4000.0; rows * cols], &vec![0.0; rows * cols]);
                f.filter(&mut v);
                (a.to_radians(), v)
            })
            .collect();
        let want = from_scratch(
            &g,
            frames.iter().map(|(a, v)| (*a, v.as_slice())),
            (std::f64::consts::PI / 10.0) as f32,
        );
        let same = |got: &OrthoSlices| {
            for (name, a, b) in [
                ("axial", &got.axial, &want.axial),
                ("xz", &got.plane_xz, &want.plane_xz),
                ("yz", &got.plane_yz, &want.plane_yz),
            ] {
                let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
                let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                assert!(worst <= 1e-5 * scale.max(1.0), "{name}: {worst} of {scale}");
            }
        };
        same(roll.slices());
        // Rebuilt from the buffer: the same sums in another order.
        roll.recompute();
        same(roll.slices());
    }

    #[test]
    fn the_rolling_gridrec_slice_equals_an_offline_gridrec_of_the_same_frames() {
        let (rows, cols) = (3usize, 40usize);
        let mut roll = Rolling::new(RollingConfig {
            geometry: geometry(rows, cols),
            buffer_frames: 12,
            filter: FilterKind::Ramp,
            recompute_every: 0,
        });
        let (rw, cl) = (rows as u32, cols as u32);
        let (flat, dark) = (vec![3000u16; rows * cols], vec![50u16; rows * cols]);
        roll.push(&frame(&u16s(&flat), rw, cl, 0, 0.0, FrameType::Flat, 0))
            .unwrap();
        roll.push(&frame(&u16s(&dark), rw, cl, 1, 0.0, FrameType::Dark, 0))
            .unwrap();
        assert!(
            roll.gridrec_axial(FilterKind::SheppLogan).is_none(),
            "no frames yet"
        );
        let mut kept: Vec<(f64, Vec<u16>)> = Vec::new();
        for k in 0..20u64 {
            let px: Vec<u16> = (0..rows * cols)
                .map(|p| 800 + ((p as u64 * 13 + k * 29) % 1500) as u16)
                .collect();
            let angle = (k as f64 * 111.246_117_974_981) % 180.0;
            roll.push(&frame(
                &u16s(&px),
                rw,
                cl,
                2 + k,
                angle,
                FrameType::Projection,
                0,
            ))
            .unwrap();
            kept.push((angle, px));
        }
        let got = roll.gridrec_axial(FilterKind::SheppLogan).unwrap();
        // Offline: the 12 frames the buffer holds (the last 12), in its slot order, normalised as TomoPy does
        // (the axial row), reconstructed by GridRec with their angles.
        let (_, order) = roll.axial_sinogram();
        let frames: Vec<&(f64, Vec<u16>)> = order
            .iter()
            .map(|a| {
                kept.iter()
                    .rev()
                    .find(|(b, _)| (b.to_radians() - a).abs() < 1e-12)
                    .unwrap()
            })
            .collect();
        let data: Vec<f32> = frames
            .iter()
            .flat_map(|(_, px)| px.iter().map(|&v| v as f32))
            .collect();
        let (f32flat, f32dark): (Vec<f32>, Vec<f32>) = (
            flat.iter().map(|&v| v as f32).collect(),
            dark.iter().map(|&v| v as f32).collect(),
        );
        let mut sino = vec![0.0; frames.len() * cols];
        super::super::pipeline::row_sinogram(
            &data,
            &f32flat,
            &f32dark,
            (frames.len(), rows, cols),
            rows / 2,
            &mut sino,
        );
        let plan =
            super::super::gridrec::GridRecPlan::new(cols, cols, &order, FilterKind::SheppLogan);
        let mut work = plan.work();
        let mut want = vec![0.0; cols * cols];
        plan.reconstruct(&mut work, (cols as f64 - 1.0) / 2.0, &sino, &mut want);
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = got
            .iter()
            .zip(&want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(scale > 0.0 && worst <= 1e-4 * scale, "{worst} of {scale}");
    }

    #[test]
    fn bad_frames_are_counted_and_leave_the_buffer_alone() {
        let (rows, cols) = (2usize, 8usize);
        let cfg = RollingConfig {
            geometry: geometry(rows, cols),
            buffer_frames: 4,
            filter: FilterKind::Ramp,
            recompute_every: 2,
        };
        let mut roll = Rolling::new(cfg);
        let (rw, cl) = (rows as u32, cols as u32);
        let px = u16s(&vec![500; rows * cols]);
        let bright = u16s(&vec![1000; rows * cols]);
        let p = |i, e| frame(&px, rw, cl, i, 10.0 * i as f64, FrameType::Projection, e);
        // A projection before any flat or dark.
        let e = roll.push(&p(0, 0)).unwrap_err();
        assert_eq!(e.reason(), "projection before its flats and darks");
        roll.push(&frame(&bright, rw, cl, 1, 0.0, FrameType::Flat, 1))
            .unwrap();
        roll.push(&frame(&px, rw, cl, 2, 0.0, FrameType::Dark, 1))
            .unwrap();
        for i in 3..6 {
            roll.push(&p(i, 1)).unwrap();
        }
        let before = roll.slices().clone();
        // Duplicate, wrong geometry, older epoch: rejected, the slices untouched.
        assert_eq!(
            roll.push(&p(4, 1)).unwrap_err(),
            FrameRejected::Duplicate(4)
        );
        let small = u16s(&vec![1; cols]);
        let e = roll
            .push(&frame(&small, 1, cl, 9, 0.0, FrameType::Projection, 1))
            .unwrap_err();
        assert!(e.to_string().contains("rows 0..1 of 1 x 8 columns"), "{e}");
        assert!(matches!(
            roll.push(&p(10, 0)),
            Err(FrameRejected::StaleEpoch { latest: 1, .. })
        ));
        assert_eq!(roll.slices(), &before);
        // Out of order (8 before 7), then a gap (6 never comes).
        roll.push(&p(8, 1)).unwrap();
        roll.push(&p(7, 1)).unwrap();
        let c = roll.counts();
        assert_eq!(
            (
                c.projections,
                c.flats,
                c.darks,
                c.duplicates,
                c.wrong_geometry,
                c.stale_epoch
            ),
            (5, 1, 1, 1, 1, 1)
        );
        assert_eq!((c.without_fields, c.out_of_order, c.replaced), (1, 1, 1));
        // 0 and 9 were rejected before being noted; 10 too: seen 1..=5, 7, 8, so 6 is missing.
        assert_eq!(roll.missing(), 1);
        assert_eq!(roll.buffered(), vec![4, 5, 8, 7]);
        // A newer epoch's flat: projections of epoch 1 are now stale.
        roll.push(&frame(&bright, rw, cl, 11, 0.0, FrameType::Flat, 2))
            .unwrap();
        assert!(matches!(
            roll.push(&p(12, 1)),
            Err(FrameRejected::StaleEpoch { .. })
        ));
        // Epoch 2 has a flat but no dark yet.
        assert!(matches!(
            roll.push(&p(13, 2)),
            Err(FrameRejected::WithoutFields { .. })
        ));
        assert!(roll.slices().axial.iter().all(|v| v.is_finite()));
    }
}
