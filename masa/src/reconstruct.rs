//! The tomography processors `gridrec` and `mlem`: light-source reconstruction as messages stream in.
//!
//! Per message (a whole APS Data Exchange HDF5 file, or a `projections` block): one sinogram per detector row,
//! normalised with the mean flat and dark fields and minus-logged ([`crate::tomo::pipeline`]); the rotation
//! centre, fixed or found by [`crate::tomo::center`] and cached while the geometry stays the same (re-estimated
//! every N messages if asked); then per window every queued slice is reconstructed (GridRec two slices per pass,
//! ML-EM one, slices in parallel on this processor's rayon pool) and masked to the field of view.
//!
//! Output: slices are appended to `recon-<label>.h5` (`/exchange/recon` `[slices, n, n]` f32, with
//! `/exchange/recon_row` and `/exchange/recon_center`) as they come, when asked, and one PNG preview of the first
//! slice is written at the end (`recon-<label>.png`). Plans, per-thread buffers and slice buffers are kept and
//! reused: after the first message of a geometry, reconstruction allocates nothing.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pilot_core::aps::{paper_theta_rad, ApsScan, ReconFile};
use rayon::prelude::*;

use crate::decode::Payload;
use crate::processor::{Processor, WindowOutput};
use crate::tomo::center::{CenterSearch, CenterSearchSettings};
use crate::tomo::filter::FilterKind;
use crate::tomo::gridrec::{GridRecPlan, GridRecWork};
use crate::tomo::mlem::{Mlem, MlemInit, MlemWork};
use crate::tomo::pipeline::{circular_mask, row_sinogram};

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
    /// Searched on the first message of each geometry (and again every `every_messages`, if set).
    Auto {
        every_messages: Option<u64>,
        range_px: f64,
    },
}

/// Which projection angles to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AngleSource {
    /// The angles the message carries (`/exchange/theta`, or the block's).
    File,
    /// The paper's: as many angles evenly over [0, pi], end point included.
    Paper,
}

/// Settings of a tomography processor.
#[derive(Debug, Clone, PartialEq)]
pub struct TomoConfig {
    pub algorithm: Algorithm,
    pub center: CenterPolicy,
    pub angles: AngleSource,
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
                "searched (+-{range_px} px){}",
                every_messages
                    .map(|n| format!(", again every {n} messages"))
                    .unwrap_or_else(|| ", cached per geometry".into())
            ),
        };
        format!(
            "{alg}; centre {center}; angles {:?}; mask {}; hdf5 {}; png {}; threads {}",
            self.angles,
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

/// One queued slice.
struct Slice {
    sino: Vec<f32>,
    image: Vec<f32>,
    row: u32,
    center: f64,
}

/// The `gridrec` / `mlem` processor.
pub struct TomoProcessor {
    cfg: TomoConfig,
    label: String,
    pool: rayon::ThreadPool,
    geometry: Option<Geometry>,
    center: Option<f64>,
    since_center: u64,
    queue: Vec<Slice>,
    spare: Vec<Slice>,
    messages: usize,
    writer: Option<ReconFile>,
    preview: Option<(usize, Vec<f32>)>,
    /// The current message's angles, radians.
    theta: Vec<f64>,
}

impl TomoProcessor {
    /// `label` names the output files (unique per consumer thread).
    pub fn new(cfg: TomoConfig, label: &str) -> Result<Self, String> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(cfg.threads)
            .thread_name(|i| format!("masa-tomo-{i}"))
            .build()
            .map_err(|e| format!("starting the reconstruction threads: {e}"))?;
        Ok(TomoProcessor {
            cfg,
            label: label.to_string(),
            pool,
            geometry: None,
            center: None,
            since_center: 0,
            queue: Vec::new(),
            spare: Vec::new(),
            messages: 0,
            writer: None,
            preview: None,
            theta: Vec::new(),
        })
    }

    /// The rotation centre in use (after the first message).
    pub fn center(&self) -> Option<f64> {
        self.center
    }

    fn ensure_geometry(&mut self, angles: usize, cols: usize) {
        if let Some(g) = &self.geometry {
            if g.angles == angles
                && g.cols == cols
                && g.theta_bits
                    .iter()
                    .copied()
                    .eq(self.theta.iter().map(|t| t.to_bits()))
            {
                return;
            }
        }
        let bits: Vec<u64> = self.theta.iter().map(|t| t.to_bits()).collect();
        let threads = self.pool.current_num_threads();
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
        let search = match self.cfg.center {
            CenterPolicy::Auto { range_px, .. } => Some(CenterSearch::new(
                cols,
                &self.theta,
                CenterSearchSettings { range_px },
                threads,
            )),
            CenterPolicy::Fixed(_) => None,
        };
        self.geometry = Some(Geometry {
            angles,
            cols,
            theta_bits: bits,
            theta: self.theta.clone(),
            engine,
            search,
        });
        self.center = None;
        // Buffers of the old size are of no use.
        self.spare.clear();
    }

    fn take_slice(&mut self, angles: usize, cols: usize) -> Slice {
        let mut s = self.spare.pop().unwrap_or(Slice {
            sino: Vec::new(),
            image: Vec::new(),
            row: 0,
            center: 0.0,
        });
        s.sino.resize(angles * cols, 0.0);
        s.image.resize(cols * cols, 0.0);
        s
    }

    #[allow(clippy::too_many_arguments)]
    fn add_block(
        &mut self,
        data: &[f32],
        flat: &[f32],
        dark: &[f32],
        (angles, rows, cols): (usize, usize, usize),
        first_row: usize,
    ) -> Result<(), String> {
        if angles < 2 || cols < 8 {
            return Err(format!(
                "{angles} angles x {cols} columns is too small to reconstruct"
            ));
        }
        if self.cfg.angles == AngleSource::Paper {
            self.theta = paper_theta_rad(angles);
        }
        if self.theta.len() != angles {
            return Err(format!(
                "{} angles for {angles} projections",
                self.theta.len()
            ));
        }
        self.ensure_geometry(angles, cols);
        let first = self.queue.len();
        for row in 0..rows {
            let mut s = self.take_slice(angles, cols);
            row_sinogram(data, flat, dark, (angles, rows, cols), row, &mut s.sino);
            s.row = (first_row + row) as u32;
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
                        let (sino, prev) = (&self.queue[first].sino, self.center);
                        let c = self.pool.install(|| search.find(sino, prev)).center;
                        self.center = Some(c);
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

    fn write(&mut self, dir: &Path) -> Result<(), String> {
        if self.queue.is_empty() {
            return Ok(());
        }
        let n = self.geometry.as_ref().map(|g| g.cols).unwrap_or(0);
        if self.writer.as_ref().is_some_and(|w| w.n() != n) {
            return Err(format!(
                "the slice size changed within the run ({} to {n}); one HDF5 file holds one size",
                self.writer.as_ref().map(|w| w.n()).unwrap_or(0)
            ));
        }
        if self.writer.is_none() {
            let path = dir.join(format!("recon-{}.h5", self.label));
            self.writer = Some(ReconFile::create(&path, n).map_err(|e| e.to_string())?);
        }
        let w = self.writer.as_mut().expect("writer made above");
        w.append(
            self.queue
                .iter()
                .map(|s| (s.image.as_slice(), s.row, s.center)),
        )
        .map_err(|e| e.to_string())
    }
}

/// An 8-bit grey PNG of an `n x n` image, scaled from its 0.5th to 99.5th percentile.
pub fn write_png(path: &Path, img: &[f32], n: usize) -> Result<(), String> {
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
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), n as u32, n as u32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .and_then(|mut w| w.write_image_data(&bytes))
        .map_err(|e| format!("{}: {e}", path.display()))
}

impl Processor for TomoProcessor {
    fn name(&self) -> &'static str {
        match self.cfg.algorithm {
            Algorithm::GridRec { .. } => "gridrec",
            Algorithm::Mlem { .. } => "mlem",
        }
    }

    fn add(&mut self, payload: &Payload<'_>) -> Result<(), String> {
        match payload {
            Payload::Hdf5File(bytes) => {
                let scan = ApsScan::read_bytes(bytes).map_err(|e| e.to_string())?;
                let [a, r, c] = scan.data.dims;
                self.theta.clear();
                self.theta
                    .extend(scan.theta_deg.iter().map(|d| d.to_radians()));
                let flat = scan.white.mean_plane();
                let dark = scan.dark.mean_plane();
                self.add_block(&scan.data.values, &flat, &dark, (a, r, c), 0)
            }
            Payload::Projections(p) => {
                self.theta.clear();
                self.theta.extend(p.theta_rad.iter().map(|&t| t as f64));
                self.add_block(
                    &p.data,
                    &p.flat,
                    &p.dark,
                    (p.n_angles, p.rows, p.cols),
                    p.first_row,
                )
            }
            Payload::Points { .. } => Err(format!(
                "{} needs projections or an HDF5 file, got points",
                self.name()
            )),
            Payload::Bytes { .. } => Err(format!(
                "{} needs projections or an HDF5 file, got opaque bytes",
                self.name()
            )),
        }
    }

    fn process(&mut self) -> Result<WindowOutput, String> {
        let out = WindowOutput {
            messages: self.messages,
            items: self.queue.len() as u64,
            score: self.center.unwrap_or(0.0),
        };
        if let Some(n) = self.geometry.as_ref().map(|g| g.cols) {
            let ratio = self.cfg.mask_ratio;
            let queue = &mut self.queue;
            match &self.geometry.as_ref().expect("checked").engine {
                Engine::GridRec(plan, works) => self.pool.install(|| {
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
                }),
                Engine::Mlem { .. } => {}
            }
            if let Some(g) = self.geometry.as_mut() {
                if let Engine::Mlem {
                    by_center,
                    works,
                    init,
                    iterations,
                } = &mut g.engine
                {
                    for s in queue.iter() {
                        let key = s.center.to_bits();
                        if !by_center.iter().any(|(k, _)| *k == key) {
                            if by_center.len() >= 2 {
                                by_center.remove(0);
                            }
                            by_center.push((key, Mlem::new(n, n, s.center, &g.theta)));
                        }
                    }
                    let (by_center, works, init, iterations) =
                        (&*by_center, &*works, *init, *iterations);
                    let mlem_of = |c: f64| {
                        &by_center
                            .iter()
                            .find(|(k, _)| *k == c.to_bits())
                            .expect("built above")
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
                                Some(b) if b.center == a.center => mlem_of(a.center)
                                    .reconstruct_pair(
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
            if self.preview.is_none() {
                if let Some(s) = self.queue.first() {
                    self.preview = Some((n, s.image.clone()));
                }
            }
        }
        if self.cfg.write_hdf5 {
            if let Some(dir) = self.cfg.output_dir.clone() {
                self.write(&dir)?;
            }
        }
        self.spare.append(&mut self.queue);
        self.messages = 0;
        Ok(out)
    }

    fn finish(&mut self, _dir: Option<&Path>) -> Result<(), String> {
        let dir = self.cfg.output_dir.as_deref();
        if !self.queue.is_empty() {
            return Err(format!(
                "{} slices were queued but never reconstructed",
                self.queue.len()
            ));
        }
        if let (Some(dir), true, Some((n, img))) = (dir, self.cfg.preview_png, &self.preview) {
            write_png(&dir.join(format!("recon-{}.png", self.label)), img, *n)?;
        }
        Ok(())
    }
}
