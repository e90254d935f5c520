//! The tomography processors `gridrec` and `mlem`: light-source reconstruction as messages stream in.
//!
//! Per message (a whole APS Data Exchange HDF5 file, or a `projections` block): one sinogram per detector row,
//! normalised with the mean flat and dark fields and minus-logged ([`crate::tomo::pipeline`]); the rotation
//! centre, fixed or found by [`crate::tomo::center`] and cached while the geometry stays the same (re-estimated
//! every N messages if asked); then per window every queued slice is reconstructed (GridRec two slices per pass,
//! ML-EM two per traversal, slices in parallel on this processor's rayon pool) and masked to the field of view.
//!
//! Whole files are read by the HDF5 library in a helper process ([`pilot_core::contract::aps::ImageReader`]): a corrupt file
//! that crashes the library is a rejected message, not a dead consumer.
//!
//! Files as detectors write them: integer counts are read as f32, angles in degrees or radians
//! ([`pilot_core::contract::aps::ThetaUnits`]), and a file without flat or dark fields is normalised with stated
//! assumptions ([`pilot_core::contract::aps::ApsScan::fields`]); [`Processor::notes`] reports them for the run's summary.
//!
//! A message changes the processor's state only once it has passed every check (shape, angles, finite counts,
//! a centre search that fits the detector): a bad message is rejected with its reason and leaves the queued slices,
//! the geometry and the cached centre as they were. A message of another geometry arriving while slices of the old
//! one wait reconstructs those first.
//!
//! Output: slices are appended to `recon-<label>.h5` (`/exchange/recon` `[slices, n, n]` f32, with
//! `/exchange/recon_row` and `/exchange/recon_center`) as they come, when asked (slices of another size go to
//! `recon-<label>-<n>px.h5`), and one PNG preview of the first slice is written at the end (`recon-<label>.png`).
//! Plans, per-thread buffers and slice buffers are kept and reused: after the first message of a geometry,
//! reconstruction allocates nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pilot_core::contract::aps::{paper_theta_rad, AngleSource, ImageReader, ThetaUnits};
use rayon::prelude::*;

use crate::decode::Payload;
use crate::processor::{ProcessError, Processor, WindowOutput};
use crate::tomo::center::{CenterSearch, CenterSearchSettings};
use crate::tomo::filter::FilterKind;
use crate::tomo::gridrec::{GridRecPlan, GridRecWork};
use crate::tomo::mlem::{Mlem, MlemInit, MlemWork};
use crate::tomo::pipeline::{circular_mask, row_sinogram};

/// Widest detector a message may have (the reconstruction is cols x cols per slice).
pub const MAX_COLS: usize = 4096;

/// Which reconstruction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Algorithm {
    GridRec { filter: FilterKind },
    Mlem { iterations: usize, init: MlemInit },
}

/// Where the rotation centre comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CenterPolicy {
    /// This detector index, always.
    Fixed(f64),
    /// Searched on the first message of each geometry (and again every `every_messages`, if set), within
    /// `range_px` of the detector's middle (default a quarter of the width).
    Auto {
        every_messages: Option<u64>,
        range_px: Option<f64>,
    },
}

/// Settings of a tomography processor.
#[derive(Debug, Clone, PartialEq)]
pub struct TomoConfig {
    pub algorithm: Algorithm,
    pub center: CenterPolicy,
    pub angles: AngleSource,
    /// How a whole file's `/exchange/theta` is read.
    pub theta_units: ThetaUnits,
    /// Open-beam counts for files without flat fields (default: from the data).
    pub open_beam_counts: Option<f64>,
    /// How long the HDF5 library may take to read one whole-file message before it is rejected as corrupt (a
    /// corrupt file can make it loop).
    pub hdf5_timeout_s: f64,
    /// Radius of the circular mask (1 = inscribed circle).
    pub mask_ratio: f64,
    /// Append slices to an HDF5 file in the results directory.
    pub write_hdf5: bool,
    /// Write a PNG of the first slice at the end.
    pub preview_png: bool,
    /// Threads of this processor's pool (0: one per core).
    pub threads: usize,
    /// Where output files go (none: no files).
    pub output_dir: Option<PathBuf>,
}

impl TomoConfig {
    pub fn describe(&self) -> String {
        let alg = match self.algorithm {
            Algorithm::GridRec { filter } => format!("gridrec (filter {filter:?})"),
            Algorithm::Mlem { iterations, init } => {
                format!("mlem ({iterations} iterations, init {init:?})")
            }
        };
        let center = match self.center {
            CenterPolicy::Fixed(c) => format!("fixed at {c}"),
            CenterPolicy::Auto {
                every_messages,
                range_px,
            } => format!(
                "searched within {} of the detector's middle{}",
                range_px
                    .map(|r| format!("+-{r} px"))
                    .unwrap_or_else(|| "a quarter of the width".into()),
                every_messages
                    .map(|n| format!(", again every {n} messages"))
                    .unwrap_or_else(|| ", cached per geometry".into())
            ),
        };
        format!(
            "{alg}; centre {center}; angles {:?} (theta units {:?}); HDF5 read timeout {} s; open beam {}; mask {}; hdf5 {}; png {}; threads {}",
            self.angles,
            self.theta_units,
            self.hdf5_timeout_s,
            self.open_beam_counts
                .map(|c| format!("{c} counts"))
                .unwrap_or_else(|| "flat fields, else from the data".into()),
            self.mask_ratio,
            self.write_hdf5,
            self.preview_png,
            if self.threads == 0 {
                "all".into()
            } else {
                self.threads.to_string()
            }
        )
    }
}

enum Engine {
    GridRec(GridRecPlan, Vec<Mutex<GridRecWork>>),
    /// ML-EM's projector depends on the centre: one per centre seen lately.
    Mlem {
        by_center: Vec<(u64, Mlem)>,
        works: Vec<Mutex<(MlemWork<1>, MlemWork<2>)>>,
        init: MlemInit,
        iterations: usize,
    },
}

struct Geometry {
    angles: usize,
    cols: usize,
    theta_bits: Vec<u64>,
    theta: Vec<f64>,
    engine: Engine,
    search: Option<CenterSearch>,
}

impl Geometry {
    fn same(&self, angles: usize, cols: usize, theta: &[f64]) -> bool {
        self.angles == angles
            && self.cols == cols
            && self
                .theta_bits
                .iter()
                .copied()
                .eq(theta.iter().map(|t| t.to_bits()))
    }
}

/// One queued slice.
struct Slice {
    sino: Vec<f32>,
    image: Vec<f32>,
    /// Side of `image`.
    n: usize,
    row: u32,
    center: f64,
}

/// A block of projections, borrowed from the message or the decoded file.
struct Block<'a> {
    data: &'a [f32],
    flat: &'a [f32],
    dark: &'a [f32],
    dims: (usize, usize, usize),
    first_row: usize,
}

/// The `gridrec` / `mlem` processor.
pub struct TomoProcessor {
    cfg: TomoConfig,
    label: String,
    pool: rayon::ThreadPool,
    geometry: Option<Geometry>,
    center: Option<f64>,
    since_center: u64,
    /// Slices of the current geometry waiting for the window to close.
    queue: Vec<Slice>,
    /// Slices reconstructed ahead of the window (their geometry was replaced), waiting to be written.
    done: Vec<Slice>,
    spare: Vec<Slice>,
    messages: usize,
    writers: Vec<pilot_core::contract::aps::ReconFile>,
    preview: Option<(usize, Vec<f32>)>,
    /// The current message's angles, radians.
    theta: Vec<f64>,
    notes: BTreeSet<String>,
    /// Reads whole-file messages in a helper process (a corrupt file can crash the HDF5 library).
    images: ImageReader,
}

impl TomoProcessor {
    /// `label` names the output files (unique per consumer thread).
    pub fn new(cfg: TomoConfig, label: &str) -> Result<Self, ProcessError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(cfg.threads)
            .thread_name(|i| format!("masa-tomo-{i}"))
            .build()
            .map_err(|e| {
                ProcessError::Config(format!("starting the reconstruction threads: {e}"))
            })?;
        let images = ImageReader::new(std::time::Duration::from_secs_f64(cfg.hdf5_timeout_s));
        Ok(TomoProcessor {
            cfg,
            label: label.to_string(),
            pool,
            geometry: None,
            center: None,
            since_center: 0,
            queue: Vec::new(),
            done: Vec::new(),
            spare: Vec::new(),
            messages: 0,
            writers: Vec::new(),
            preview: None,
            theta: Vec::new(),
            notes: BTreeSet::new(),
            images,
        })
    }

    /// The rotation centre in use (after the first message).
    pub fn center(&self) -> Option<f64> {
        self.center
    }

    /// A geometry for `angles x cols` with the current angles: plans, per-thread buffers, the centre search.
    fn build_geometry(&self, angles: usize, cols: usize) -> Result<Geometry, ProcessError> {
        let threads = self.pool.current_num_threads();
        let search = match self.cfg.center {
            CenterPolicy::Auto { range_px, .. } => Some(
                CenterSearch::new(
                    cols,
                    &self.theta,
                    CenterSearchSettings { range_px },
                    threads,
                )
                .map_err(|e| ProcessError::Rejected(e.to_string()))?,
            ),
            CenterPolicy::Fixed(c) => {
                if c >= cols as f64 {
                    return Err(ProcessError::Rejected(format!(
                        "center_px {c} lies beyond the {cols}-column detector"
                    )));
                }
                None
            }
        };
        let engine = match self.cfg.algorithm {
            Algorithm::GridRec { filter } => {
                let plan = GridRecPlan::new(cols, cols, &self.theta, filter);
                let works = (0..threads).map(|_| Mutex::new(plan.work())).collect();
                Engine::GridRec(plan, works)
            }
            Algorithm::Mlem { iterations, init } => {
                let mlem = Mlem::new(cols, cols, cols as f64 / 2.0, &self.theta);
                let works = (0..threads)
                    .map(|_| {
                        let p = mlem.projector();
                        Mutex::new((p.work::<1>(), p.work::<2>()))
                    })
                    .collect();
                Engine::Mlem {
                    by_center: Vec::new(),
                    works,
                    init,
                    iterations,
                }
            }
        };
        Ok(Geometry {
            angles,
            cols,
            theta_bits: self.theta.iter().map(|t| t.to_bits()).collect(),
            theta: self.theta.clone(),
            engine,
            search,
        })
    }

    fn take_slice(&mut self, angles: usize, cols: usize) -> Slice {
        let mut s = self.spare.pop().unwrap_or(Slice {
            sino: Vec::new(),
            image: Vec::new(),
            n: 0,
            row: 0,
            center: 0.0,
        });
        s.sino.resize(angles * cols, 0.0);
        s.image.resize(cols * cols, 0.0);
        s.n = cols;
        s
    }

    /// Everything a block must satisfy before it may touch the processor's state.
    fn check_block(&self, b: &Block) -> Result<(), ProcessError> {
        let (angles, rows, cols) = b.dims;
        if angles < 2 || cols < 8 || rows == 0 {
            return Err(ProcessError::Rejected(format!(
                "{angles} angles x {rows} rows x {cols} columns is too small to reconstruct (at least 2 x 1 x 8)"
            )));
        }
        if cols > MAX_COLS {
            return Err(ProcessError::Rejected(format!(
                "{cols} detector columns: at most {MAX_COLS} are reconstructed"
            )));
        }
        if matches!(self.cfg.algorithm, Algorithm::Mlem { .. }) && cols > crate::tomo::mlem::MAX_N {
            return Err(ProcessError::Rejected(format!(
                "{cols} detector columns: ML-EM reconstructs at most {}",
                crate::tomo::mlem::MAX_N
            )));
        }
        let want = angles.checked_mul(rows).and_then(|x| x.checked_mul(cols));
        if want != Some(b.data.len()) || b.flat.len() != rows * cols || b.dark.len() != rows * cols
        {
            return Err(ProcessError::Rejected(format!(
                "a block of {angles} x {rows} x {cols} holds {} counts, {} flat and {} dark values",
                b.data.len(),
                b.flat.len(),
                b.dark.len()
            )));
        }
        if self.theta.len() != angles {
            return Err(ProcessError::Rejected(format!(
                "{} angles for {angles} projections",
                self.theta.len()
            )));
        }
        if let Some(t) = self.theta.iter().find(|t| !t.is_finite()) {
            return Err(ProcessError::Rejected(format!("an angle of {t}")));
        }
        for (what, v) in [
            ("counts", b.data),
            ("flat field", b.flat),
            ("dark field", b.dark),
        ] {
            if let Some(x) = v.iter().find(|x| !x.is_finite()) {
                return Err(ProcessError::Rejected(format!("{what} hold {x}")));
            }
        }
        Ok(())
    }

    fn add_block(&mut self, b: Block) -> Result<(), ProcessError> {
        let (angles, rows, cols) = b.dims;
        if self.cfg.angles == AngleSource::Paper {
            self.theta = paper_theta_rad(angles);
        }
        self.check_block(&b)?;
        // A new geometry is built (and can fail) before anything of the old one is touched.
        let same = self
            .geometry
            .as_ref()
            .is_some_and(|g| g.same(angles, cols, &self.theta));
        if !same {
            let g = self.build_geometry(angles, cols)?;
            if !self.queue.is_empty() {
                self.reconstruct_queue();
            }
            self.geometry = Some(g);
            self.center = None;
        }
        let first = self.queue.len();
        for row in 0..rows {
            let mut s = self.take_slice(angles, cols);
            row_sinogram(
                b.data,
                b.flat,
                b.dark,
                (angles, rows, cols),
                row,
                &mut s.sino,
            );
            s.row = (b.first_row + row) as u32;
            self.queue.push(s);
        }
        let center = match self.cfg.center {
            CenterPolicy::Fixed(c) => c,
            CenterPolicy::Auto { every_messages, .. } => {
                let stale = every_messages.is_some_and(|n| self.since_center >= n);
                match self.center {
                    Some(c) if !stale => c,
                    _ => {
                        let g = self.geometry.as_mut().expect("geometry set above");
                        let search = g.search.as_mut().expect("auto centre has a search");
                        let sino = &self.queue[first].sino;
                        let c = self.pool.install(|| search.find(sino)).center;
                        self.since_center = 0;
                        c
                    }
                }
            }
        };
        self.center = Some(center);
        self.since_center += 1;
        for s in &mut self.queue[first..] {
            s.center = center;
        }
        self.messages += 1;
        Ok(())
    }

    /// Reconstruct every queued slice (of the current geometry) and move it to `done`.
    fn reconstruct_queue(&mut self) {
        let Some(g) = self.geometry.as_mut() else {
            return;
        };
        let n = g.cols;
        let ratio = self.cfg.mask_ratio;
        let queue = &mut self.queue;
        match &mut g.engine {
            Engine::GridRec(plan, works) => {
                let (plan, works) = (&*plan, &*works);
                self.pool.install(|| {
                    queue.par_chunks_mut(2).for_each(|pair| {
                        let mut w = works[rayon::current_thread_index().unwrap_or(0) % works.len()]
                            .lock()
                            .expect("a reconstruction thread panicked");
                        let (a, b) = pair.split_at_mut(1);
                        let a = &mut a[0];
                        match b.first_mut() {
                            Some(b) if b.center == a.center => plan.reconstruct_pair(
                                &mut w,
                                a.center,
                                &a.sino,
                                Some(&b.sino),
                                &mut a.image,
                                Some(&mut b.image),
                            ),
                            Some(b) => {
                                plan.reconstruct(&mut w, a.center, &a.sino, &mut a.image);
                                plan.reconstruct(&mut w, b.center, &b.sino, &mut b.image);
                            }
                            None => plan.reconstruct(&mut w, a.center, &a.sino, &mut a.image),
                        }
                        for s in pair.iter_mut() {
                            circular_mask(&mut s.image, n, ratio);
                        }
                    })
                })
            }
            Engine::Mlem {
                by_center,
                works,
                init,
                iterations,
            } => {
                // One projector per centre the queue needs (and the latest two besides).
                let needed: BTreeSet<u64> = queue.iter().map(|s| s.center.to_bits()).collect();
                for &key in &needed {
                    if !by_center.iter().any(|(k, _)| *k == key) {
                        by_center.push((key, Mlem::new(n, n, f64::from_bits(key), &g.theta)));
                    }
                }
                while by_center.len() > needed.len().max(2) {
                    let Some(i) = by_center.iter().position(|(k, _)| !needed.contains(k)) else {
                        break;
                    };
                    by_center.remove(i);
                }
                let (by_center, works, init, iterations) =
                    (&*by_center, &*works, *init, *iterations);
                let mlem_of = |c: f64| {
                    &by_center
                        .iter()
                        .find(|(k, _)| *k == c.to_bits())
                        .expect("a projector for every queued centre")
                        .1
                };
                self.pool.install(|| {
                    queue.par_chunks_mut(2).for_each(|pair| {
                        let mut guard = works
                            [rayon::current_thread_index().unwrap_or(0) % works.len()]
                        .lock()
                        .expect("a reconstruction thread panicked");
                        let (one, two) = &mut *guard;
                        let (a, b) = pair.split_at_mut(1);
                        let a = &mut a[0];
                        match b.first_mut() {
                            Some(b) if b.center == a.center => mlem_of(a.center).reconstruct_pair(
                                two,
                                (&a.sino, &b.sino),
                                init,
                                iterations,
                                (&mut a.image, &mut b.image),
                            ),
                            other => {
                                for s in std::iter::once(a).chain(other) {
                                    mlem_of(s.center).reconstruct(
                                        one,
                                        &s.sino,
                                        init,
                                        iterations,
                                        &mut s.image,
                                    );
                                }
                            }
                        }
                        for s in pair.iter_mut() {
                            circular_mask(&mut s.image, n, ratio);
                        }
                    })
                });
            }
        }
        self.done.append(&mut self.queue);
    }

    /// Append the reconstructed slices to their files (one per slice size).
    fn write(&mut self, dir: &Path) -> Result<(), ProcessError> {
        let mut sizes: Vec<usize> = self.done.iter().map(|s| s.n).collect();
        sizes.dedup();
        for n in sizes {
            let w = match self.writers.iter().position(|w| w.n() == n) {
                Some(i) => i,
                None => {
                    let name = if self.writers.is_empty() {
                        format!("recon-{}.h5", self.label)
                    } else {
                        format!("recon-{}-{n}px.h5", self.label)
                    };
                    let path = dir.join(name);
                    self.writers.push(
                        pilot_core::contract::aps::ReconFile::create(&path, n)
                            .map_err(|e| ProcessError::output(&path, e))?,
                    );
                    self.writers.len() - 1
                }
            };
            self.writers[w]
                .append(
                    self.done
                        .iter()
                        .filter(|s| s.n == n)
                        .map(|s| (s.image.as_slice(), s.row, s.center)),
                )
                .map_err(|e| ProcessError::Failed(format!("writing slices: {e}")))?;
        }
        Ok(())
    }
}

/// An 8-bit grey PNG of an `n x n` image, scaled from its 0.5th to 99.5th percentile.
pub fn write_png(path: &Path, img: &[f32], n: usize) -> Result<(), ProcessError> {
    write_png_rect(path, img, n, n)
}

/// [`write_png`] for a `width x height` image (rows of `width`).
pub fn write_png_rect(
    path: &Path,
    img: &[f32],
    width: usize,
    height: usize,
) -> Result<(), ProcessError> {
    let mut sorted: Vec<f32> = img.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f32::total_cmp);
    let (lo, hi) = if sorted.is_empty() {
        (0.0, 1.0)
    } else {
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
        (at(0.005), at(0.995))
    };
    let span = if hi > lo { hi - lo } else { 1.0 };
    let bytes: Vec<u8> = img
        .iter()
        .map(|&v| (((v - lo) / span).clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    let file = std::fs::File::create(path).map_err(|e| ProcessError::output(path, e))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .and_then(|mut w| w.write_image_data(&bytes))
        .map_err(|e| ProcessError::output(path, e))
}

impl Processor for TomoProcessor {
    fn name(&self) -> &'static str {
        match self.cfg.algorithm {
            Algorithm::GridRec { .. } => "gridrec",
            Algorithm::Mlem { .. } => "mlem",
        }
    }

    fn add(&mut self, payload: &Payload<'_>) -> Result<(), ProcessError> {
        let rejected =
            |e: pilot_core::contract::aps::ApsError| ProcessError::Rejected(e.to_string());
        match payload {
            Payload::Hdf5File(bytes) => {
                let scan = self.images.read(bytes).map_err(rejected)?;
                let [a, r, c] = scan.data.dims;
                self.theta = match self.cfg.angles {
                    AngleSource::File => scan.theta_rad(self.cfg.theta_units).map_err(rejected)?,
                    AngleSource::Paper => paper_theta_rad(a),
                };
                let fields = scan.fields(self.cfg.open_beam_counts);
                self.add_block(Block {
                    data: &scan.data.values,
                    flat: &fields.flat,
                    dark: &fields.dark,
                    dims: (a, r, c),
                    first_row: 0,
                })?;
                self.notes.extend(fields.notes);
                Ok(())
            }
            Payload::Projections(p) => {
                self.theta.clear();
                self.theta.extend(p.theta_rad.iter().map(|&t| t as f64));
                self.add_block(Block {
                    data: &p.data,
                    flat: &p.flat,
                    dark: &p.dark,
                    dims: (p.n_angles, p.rows, p.cols),
                    first_row: p.first_row,
                })
            }
            Payload::Points { .. } => Err(ProcessError::Rejected(format!(
                "{} needs projections or an HDF5 file, got points",
                self.name()
            ))),
            Payload::Bytes { .. } => Err(ProcessError::Rejected(format!(
                "{} needs projections or an HDF5 file, got opaque bytes",
                self.name()
            ))),
            Payload::Frame(_) => Err(ProcessError::Rejected(format!(
                "{} reconstructs whole scans or row blocks, got a single detector frame",
                self.name()
            ))),
        }
    }

    fn process(&mut self) -> Result<WindowOutput, ProcessError> {
        self.reconstruct_queue();
        let out = WindowOutput {
            messages: self.messages,
            items: self.done.len() as u64,
            score: self.center.unwrap_or(0.0),
        };
        if self.preview.is_none() {
            if let Some(s) = self.done.first() {
                self.preview = Some((s.n, s.image.clone()));
            }
        }
        let written = match (self.cfg.write_hdf5, self.cfg.output_dir.clone()) {
            (true, Some(dir)) if !self.done.is_empty() => self.write(&dir),
            _ => Ok(()),
        };
        self.spare.append(&mut self.done);
        self.messages = 0;
        written.map(|()| out)
    }

    fn finish(&mut self, _dir: Option<&Path>) -> Result<(), ProcessError> {
        let dir = self.cfg.output_dir.as_deref();
        if !self.queue.is_empty() || !self.done.is_empty() {
            return Err(ProcessError::Failed(format!(
                "{} slices were queued but never reconstructed",
                self.queue.len() + self.done.len()
            )));
        }
        if let (Some(dir), true, Some((n, img))) = (dir, self.cfg.preview_png, &self.preview) {
            write_png(&dir.join(format!("recon-{}.png", self.label)), img, *n)?;
        }
        Ok(())
    }

    fn notes(&self) -> Vec<String> {
        self.notes.iter().cloned().collect()
    }
}
