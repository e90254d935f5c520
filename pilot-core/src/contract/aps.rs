//! APS Data Exchange HDF5 files, the layout light-source data travels in (TomoPy's `tooth.h5` among them):
//!
//! - `/exchange/data`       `[angles, rows, cols]`, axes `theta:y:x`, counts (any integer or float dtype)
//! - `/exchange/data_white` `[n_white, rows, cols]`, flat fields (optional)
//! - `/exchange/data_dark`  `[n_dark, rows, cols]`, dark fields (optional)
//! - `/exchange/theta`      `[angles]`, degrees or radians (its `units` attribute says which; optional)
//!
//! [`ApsScan`] reads such a file from a path or from bytes in memory (a message carrying the whole file), and
//! writes one (MASS's phantom generator). Files as detectors write them are accepted: integer counts are converted
//! to f32, missing flat or dark fields are replaced by stated assumptions ([`ApsScan::fields`]), and angles are
//! read in the unit the file or the user says ([`ApsScan::theta_rad`], [`ThetaUnits`]). [`ReconFile`] holds
//! MASA's reconstructed slices in the same style. Both mini-apps use this module, so the layouts have one
//! definition.

use std::path::{Path, PathBuf};

/// A 3-D f32 volume, row-major `[d0, d1, d2]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Volume {
    pub dims: [usize; 3],
    pub values: Vec<f32>,
}

impl Volume {
    pub fn new(dims: [usize; 3], values: Vec<f32>) -> Self {
        assert_eq!(
            dims.iter().product::<usize>(),
            values.len(),
            "volume dims match values"
        );
        Volume { dims, values }
    }

    /// Slice `[i, .., ..]`.
    pub fn plane(&self, i: usize) -> &[f32] {
        let n = self.dims[1] * self.dims[2];
        &self.values[i * n..(i + 1) * n]
    }

    /// Mean over the first axis: `[d1, d2]`.
    pub fn mean_plane(&self) -> Vec<f32> {
        let n = self.dims[1] * self.dims[2];
        let mut acc = vec![0f64; n];
        for i in 0..self.dims[0] {
            for (a, v) in acc.iter_mut().zip(self.plane(i)) {
                *a += *v as f64;
            }
        }
        let k = self.dims[0].max(1) as f64;
        acc.into_iter().map(|a| (a / k) as f32).collect()
    }
}

/// One tomography scan in Data Exchange layout, as a detector wrote it: flat and dark fields may be missing and
/// the angles may be in degrees or radians (see [`ApsScan::theta_rad`] and [`ApsScan::fields`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApsScan {
    /// Projections `[angles, rows, cols]`, counts (any numeric dtype in the file, converted to f32).
    pub data: Volume,
    /// Flat (white) fields `[n, rows, cols]`, when the file has them.
    pub white: Option<Volume>,
    /// Dark fields `[n, rows, cols]`, when the file has them.
    pub dark: Option<Volume>,
    /// Projection angles as stored (`/exchange/theta`), when the file has them.
    pub theta: Option<Vec<f64>>,
    /// The `units` attribute of `/exchange/theta`, as written (tooth.h5: `degrees`).
    pub theta_units: Option<String>,
}

/// How the angles of a file are read: from the `units` attribute of `/exchange/theta` (or, without one, from their
/// range), or as the given unit.
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
pub enum ThetaUnits {
    /// The `units` attribute; without one, radians when the angles span at most 2 pi, else degrees.
    #[default]
    Auto,
    Degrees,
    Radians,
}

/// Which projection angles a reconstruction uses.
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
pub enum AngleSource {
    /// The file's `/exchange/theta` (read as [`ThetaUnits`] says), or the angles a projections block carries.
    #[default]
    File,
    /// The paper's convention: as many angles evenly over [0, pi], end point included ([`paper_theta_rad`]).
    Paper,
}

/// Normalisation fields for a scan and what had to be assumed to get them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fields {
    /// Mean flat field `[rows, cols]`.
    pub flat: Vec<f32>,
    /// Mean dark field `[rows, cols]`.
    pub dark: Vec<f32>,
    /// What was assumed, for the run's summary (empty when the file had both fields).
    pub notes: Vec<String>,
}

/// Errors reading or writing Data Exchange files.
#[derive(Debug, thiserror::Error)]
pub enum ApsError {
    #[error("HDF5 {action} {path}: {message}")]
    Hdf5 {
        action: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("{path}: {message}")]
    Layout { path: PathBuf, message: String },
    /// A scan in memory whose parts do not fit together (shapes, angles).
    #[error("{0}")]
    Scan(String),
}

const DATA: &str = "exchange/data";
const WHITE: &str = "exchange/data_white";
const DARK: &str = "exchange/data_dark";
const THETA: &str = "exchange/theta";

/// Largest volume read from an in-memory image (a message), elements: a small compressed file could otherwise
/// declare a dataset that does not fit in memory.
pub const MAX_IMAGE_ELEMENTS: usize = 1 << 28;

/// The paper's angle convention: `n` angles evenly over [0, pi], end point included.
pub fn paper_theta_rad(n: usize) -> Vec<f64> {
    match n {
        0 => vec![],
        1 => vec![0.0],
        _ => (0..n)
            .map(|i| std::f64::consts::PI * i as f64 / (n - 1) as f64)
            .collect(),
    }
}

fn h5err<'a>(action: &'static str, path: &'a Path) -> impl Fn(hdf5::Error) -> ApsError + 'a {
    move |e| ApsError::Hdf5 {
        action,
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn read_volume(
    file: &hdf5::File,
    name: &str,
    path: &Path,
    max_elements: usize,
) -> Result<Volume, ApsError> {
    let ds = file
        .dataset(name)
        .map_err(h5err("opening dataset in", path))?;
    let layout = |message: String| ApsError::Layout {
        path: path.to_path_buf(),
        message,
    };
    let shape = ds.shape();
    if shape.len() != 3 {
        return Err(layout(format!(
            "/{name} has {} dimensions, expected 3 (angles, rows, columns)",
            shape.len()
        )));
    }
    let elements = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= max_elements)
        .ok_or_else(|| layout(format!("/{name} of shape {shape:?} is too large to read")))?;
    if elements == 0 {
        return Err(layout(format!("/{name} is empty (shape {shape:?})")));
    }
    let numeric = ds
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map(|d| {
            matches!(
                d,
                hdf5::types::TypeDescriptor::Integer(_)
                    | hdf5::types::TypeDescriptor::Unsigned(_)
                    | hdf5::types::TypeDescriptor::Float(_)
            )
        })
        .unwrap_or(false);
    if !numeric {
        return Err(layout(format!(
            "/{name} does not hold numbers (integer or float counts)"
        )));
    }
    let values: Vec<f32> = ds.read_raw().map_err(h5err("reading", path))?;
    Ok(Volume::new([shape[0], shape[1], shape[2]], values))
}

fn read_text_attr(ds: &hdf5::Dataset, name: &str) -> Option<String> {
    let a = ds.attr(name).ok()?;
    if let Ok(v) = a.read_scalar::<hdf5::types::VarLenUnicode>() {
        return Some(v.as_str().to_string());
    }
    if let Ok(v) = a.read_scalar::<hdf5::types::VarLenAscii>() {
        return Some(v.as_str().to_string());
    }
    // Fixed-length strings (h5py's `np.bytes_` attributes).
    let td = a.dtype().ok()?.to_descriptor().ok()?;
    match td {
        hdf5::types::TypeDescriptor::FixedAscii(n)
        | hdf5::types::TypeDescriptor::FixedUnicode(n) => {
            let raw: Vec<u8> = a.read_raw::<u8>().ok().filter(|r| r.len() == n)?;
            Some(
                String::from_utf8_lossy(&raw)
                    .trim_end_matches('\0')
                    .trim()
                    .to_string(),
            )
        }
        _ => None,
    }
}

/// The 99th percentile of `values` (an open-beam estimate: the brightest counts are the unobstructed beam).
fn high_percentile(values: &[f32]) -> f32 {
    let mut sample: Vec<f32> = values
        .iter()
        .step_by((values.len() / 1_000_000).max(1))
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    if sample.is_empty() {
        return 0.0;
    }
    let k = ((sample.len() - 1) as f64 * 0.99) as usize;
    *sample.select_nth_unstable_by(k, f32::total_cmp).1
}

impl ApsScan {
    fn from_file(file: &hdf5::File, path: &Path, max_elements: usize) -> Result<Self, ApsError> {
        let data = read_volume(file, DATA, path, max_elements)?;
        let optional = |name: &str| -> Result<Option<Volume>, ApsError> {
            if file.link_exists(name) {
                read_volume(file, name, path, max_elements).map(Some)
            } else {
                Ok(None)
            }
        };
        let white = optional(WHITE)?;
        let dark = optional(DARK)?;
        let (theta, theta_units) = if file.link_exists(THETA) {
            let ds = file
                .dataset(THETA)
                .map_err(h5err("opening /exchange/theta in", path))?;
            if ds.size() > max_elements {
                return Err(ApsError::Layout {
                    path: path.to_path_buf(),
                    message: "/exchange/theta is too large".into(),
                });
            }
            let t: Vec<f64> = ds
                .read_raw()
                .map_err(h5err("reading /exchange/theta in", path))?;
            (Some(t), read_text_attr(&ds, "units"))
        } else {
            (None, None)
        };
        let scan = ApsScan {
            data,
            white,
            dark,
            theta,
            theta_units,
        };
        scan.check().map_err(|e| ApsError::Layout {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(scan)
    }

    /// Consistency of shapes: flats/darks (where present) match the detector, one angle per projection.
    pub fn check(&self) -> Result<(), ApsError> {
        let [a, r, c] = self.data.dims;
        if a == 0 || r == 0 || c == 0 || self.data.values.len() != a * r * c {
            return Err(ApsError::Scan(format!(
                "/exchange/data is {:?}: empty",
                self.data.dims
            )));
        }
        for (name, v) in [("data_white", &self.white), ("data_dark", &self.dark)] {
            if let Some(v) = v {
                if v.dims[1] != r || v.dims[2] != c || v.dims[0] == 0 {
                    return Err(ApsError::Scan(format!(
                        "/exchange/{name} is {:?}, detector is {r}x{c}",
                        v.dims
                    )));
                }
            }
        }
        if let Some(t) = &self.theta {
            if t.len() != a {
                return Err(ApsError::Scan(format!(
                    "{} angles in /exchange/theta for {a} projections",
                    t.len()
                )));
            }
        }
        Ok(())
    }

    /// The angles in radians, read as `units` says (`Auto`: the file's `units` attribute, else the range). A
    /// range that fits neither unit, non-finite angles or an attribute naming another unit are errors; so is a
    /// file without `/exchange/theta` (use the paper's convention, [`paper_theta_rad`], for such files).
    pub fn theta_rad(&self, units: ThetaUnits) -> Result<Vec<f64>, ApsError> {
        self.theta_rad_text(units).map_err(ApsError::Scan)
    }

    fn theta_rad_text(&self, units: ThetaUnits) -> Result<Vec<f64>, String> {
        let theta = self.theta.as_ref().ok_or(
            "the file has no /exchange/theta: give the angles another way (MASA: angles = \"paper\")",
        )?;
        if let Some(bad) = theta.iter().find(|t| !t.is_finite()) {
            return Err(format!("/exchange/theta holds {bad}"));
        }
        let (lo, hi) = theta
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &t| (l.min(t), h.max(t)));
        let span = hi - lo;
        let tau = std::f64::consts::TAU;
        // Rounding in files: allow a little over a full turn.
        let fits_radians = span <= tau * 1.01 && lo >= -tau * 1.01 && hi <= 2.0 * tau * 1.01;
        let fits_degrees = span <= 360.0 * 1.01 && lo >= -361.0 && hi <= 721.0;
        let attribute = match self
            .theta_units
            .as_deref()
            .map(|u| u.trim().to_ascii_lowercase())
        {
            None => None,
            Some(u) if ["deg", "degree", "degrees"].contains(&u.as_str()) => {
                Some(ThetaUnits::Degrees)
            }
            Some(u) if ["rad", "radian", "radians"].contains(&u.as_str()) => {
                Some(ThetaUnits::Radians)
            }
            Some(u) if u.is_empty() => None,
            Some(u) => {
                if units == ThetaUnits::Auto {
                    return Err(format!(
                        "/exchange/theta has units `{u}`, neither degrees nor radians: set theta_units"
                    ));
                }
                None
            }
        };
        let chosen = match units {
            ThetaUnits::Auto => attribute.unwrap_or(if fits_radians {
                ThetaUnits::Radians
            } else {
                ThetaUnits::Degrees
            }),
            given => given,
        };
        let range = format!("{lo} .. {hi}");
        match chosen {
            ThetaUnits::Radians if !fits_radians => Err(format!(
                "/exchange/theta spans {range}: more than a full turn in radians{}",
                if fits_degrees { " (degrees? set theta_units = \"degrees\")" } else { "" }
            )),
            ThetaUnits::Degrees if !fits_degrees => Err(format!(
                "/exchange/theta spans {range}: neither degrees nor radians (more than a full turn either way)"
            )),
            ThetaUnits::Degrees => Ok(theta.iter().map(|d| d.to_radians()).collect()),
            _ => Ok(theta.clone()),
        }
    }

    /// Mean flat and dark fields for normalisation. Without dark fields the dark is 0; without flat fields the
    /// open beam is `open_beam_counts` when given, else the projections' 99th percentile (their brightest counts
    /// are the unobstructed beam). What was assumed is in [`Fields::notes`].
    pub fn fields(&self, open_beam_counts: Option<f64>) -> Fields {
        let [_, r, c] = self.data.dims;
        let mut notes = Vec::new();
        let dark = match &self.dark {
            Some(d) => d.mean_plane(),
            None => {
                notes.push(
                    "no dark field (/exchange/data_dark): dark taken as 0 counts".to_string(),
                );
                vec![0.0; r * c]
            }
        };
        let flat = match &self.white {
            Some(w) => w.mean_plane(),
            None => {
                let (value, how) = match open_beam_counts {
                    Some(v) => (v as f32, "as given (open_beam_counts)".to_string()),
                    None => (
                        high_percentile(&self.data.values),
                        "the 99th percentile of the projections".to_string(),
                    ),
                };
                notes.push(format!(
                    "no flat field (/exchange/data_white): open beam {value} counts, {how}"
                ));
                vec![value; r * c]
            }
        };
        Fields { flat, dark, notes }
    }

    /// Read a Data Exchange file.
    pub fn read(path: &Path) -> Result<Self, ApsError> {
        let file = open_unlocked(path).map_err(h5err("opening", path))?;
        Self::from_file(&file, path, usize::MAX)
    }

    /// Read a Data Exchange file held in memory (the bytes of a whole file, as the paper's messages carried);
    /// datasets above [`MAX_IMAGE_ELEMENTS`] are refused.
    pub fn read_bytes(bytes: &[u8]) -> Result<Self, ApsError> {
        let label = Path::new("<in-memory HDF5 image>");
        if !bytes.starts_with(&crate::contract::message::HDF5_SIGNATURE) {
            return Err(ApsError::Layout {
                path: label.to_path_buf(),
                message: "not an HDF5 file (no signature)".into(),
            });
        }
        let file = open_image(bytes).map_err(h5err("opening", label))?;
        Self::from_file(&file, label, MAX_IMAGE_ELEMENTS)
    }

    /// Write a Data Exchange file (with the axes and units attributes tooth.h5 has); absent fields are left out.
    pub fn write(&self, path: &Path) -> Result<(), ApsError> {
        self.check().map_err(|e| ApsError::Layout {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let e = h5err("writing", path);
        let file = create_unlocked(path).map_err(&e)?;
        let g = file.create_group("exchange").map_err(&e)?;
        let put = |name: &str, v: &Volume, axes: &str| -> hdf5::Result<()> {
            let ds = g.new_dataset::<f32>().shape(v.dims).create(name)?;
            ds.write_raw(&v.values)?;
            attr(&ds, "axes", axes)?;
            attr(&ds, "units", "counts")
        };
        put("data", &self.data, "theta:y:x").map_err(&e)?;
        if let Some(w) = &self.white {
            put("data_white", w, "theta_white:y:x").map_err(&e)?;
        }
        if let Some(d) = &self.dark {
            put("data_dark", d, "theta_dark:y:x").map_err(&e)?;
        }
        if let Some(theta) = &self.theta {
            let t = g
                .new_dataset::<f64>()
                .shape([theta.len()])
                .create("theta")
                .map_err(&e)?;
            t.write_raw(theta).map_err(&e)?;
            if let Some(u) = &self.theta_units {
                attr(&t, "units", u).map_err(&e)?;
            }
        }
        Ok(())
    }
}

/// Reconstructed slices, appended as they come: `/exchange/recon` f32 `[slices, n, n]`, with the detector row
/// (`/exchange/recon_row`, u32) and rotation centre (`/exchange/recon_center`, f64) of each.
pub struct ReconFile {
    path: PathBuf,
    file: hdf5::File,
    n: usize,
    written: usize,
}

impl ReconFile {
    /// Create (or truncate) a file for `n x n` slices.
    pub fn create(path: &Path, n: usize) -> Result<Self, ApsError> {
        let e = h5err("creating", path);
        let file = create_unlocked(path).map_err(&e)?;
        let g = file.create_group("exchange").map_err(&e)?;
        g.new_dataset::<f32>()
            .chunk((1, n, n))
            .shape((0.., n, n))
            .create("recon")
            .map_err(&e)?;
        g.new_dataset::<u32>()
            .chunk(1024)
            .shape(0..)
            .create("recon_row")
            .map_err(&e)?;
        g.new_dataset::<f64>()
            .chunk(1024)
            .shape(0..)
            .create("recon_center")
            .map_err(&e)?;
        Ok(ReconFile {
            path: path.to_path_buf(),
            file,
            n,
            written: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Side length of the slices this file holds.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Slices written so far.
    pub fn len(&self) -> usize {
        self.written
    }

    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// Append slices (each `n x n`), with their rows and centres.
    pub fn append<'a>(
        &mut self,
        slices: impl Iterator<Item = (&'a [f32], u32, f64)>,
    ) -> Result<(), ApsError> {
        let e = h5err("writing", &self.path);
        let n = self.n;
        let (recon, rows_ds, centers_ds) = (
            self.file.dataset(RECON).map_err(&e)?,
            self.file.dataset(RECON_ROW).map_err(&e)?,
            self.file.dataset(RECON_CENTER).map_err(&e)?,
        );
        for (img, row, center) in slices {
            if img.len() != n * n {
                return Err(ApsError::Layout {
                    path: self.path.clone(),
                    message: format!("a slice of {} values for {n} x {n}", img.len()),
                });
            }
            let k = self.written;
            recon.resize((k + 1, n, n)).map_err(&e)?;
            let view = ndarray::ArrayView2::from_shape((n, n), img).expect("checked length");
            recon
                .write_slice(view, ndarray::s![k, .., ..])
                .map_err(&e)?;
            rows_ds.resize(k + 1).map_err(&e)?;
            rows_ds.write_slice(&[row], k..k + 1).map_err(&e)?;
            centers_ds.resize(k + 1).map_err(&e)?;
            centers_ds.write_slice(&[center], k..k + 1).map_err(&e)?;
            self.written += 1;
        }
        self.file.flush().map_err(&e)?;
        Ok(())
    }

    /// Read a file written by [`ReconFile`]: the slices (`[slices, n, n]`), rows and centres.
    pub fn read(path: &Path) -> Result<(Volume, Vec<u32>, Vec<f64>), ApsError> {
        let file = open_unlocked(path).map_err(h5err("opening", path))?;
        let recon = read_volume(&file, RECON, path, usize::MAX)?;
        let rows = file
            .dataset(RECON_ROW)
            .and_then(|d| d.read_raw())
            .map_err(h5err("reading", path))?;
        let centers = file
            .dataset(RECON_CENTER)
            .and_then(|d| d.read_raw())
            .map_err(h5err("reading", path))?;
        Ok((recon, rows, centers))
    }
}

const RECON: &str = "exchange/recon";
const RECON_ROW: &str = "exchange/recon_row";
const RECON_CENTER: &str = "exchange/recon_center";

fn attr(ds: &hdf5::Dataset, name: &str, value: &str) -> hdf5::Result<()> {
    let v: hdf5::types::VarLenUnicode = value.parse().expect("attribute text has no NUL");
    ds.new_attr::<hdf5::types::VarLenUnicode>()
        .create(name)?
        .write_scalar(&v)
}

/// Open an in-memory file image read-only (HDF5's core driver; the library copies the bytes).
///
/// Each image gets its own name: HDF5 takes two core-driver files of the same name for one already-open file,
/// so concurrent opens under a fixed name would read each other's bytes.
/// Open a file read-only without HDF5's advisory `flock`. The project never uses SWMR, so the lock guards
/// nothing here, while it breaks real set-ups: Lustre and some NFS mounts refuse `flock` (errno 38), and a
/// lock taken by a writer survives in any child process that was forked while the file was open (HDF5 opens
/// without `O_CLOEXEC`), so a reader started later fails with errno 11 although the writer has closed it.
pub fn open_unlocked(path: &Path) -> hdf5::Result<hdf5::File> {
    hdf5::File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .open(path)
}

/// Create (or truncate) a file without HDF5's advisory `flock`; see [`open_unlocked`] for why.
pub fn create_unlocked(path: &Path) -> hdf5::Result<hdf5::File> {
    hdf5::File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .create(path)
}

fn open_image(bytes: &[u8]) -> hdf5::Result<hdf5::File> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT_IMAGE: AtomicU64 = AtomicU64::new(0);
    let name = std::ffi::CString::new(format!(
        "in-memory-{}-{}.h5",
        std::process::id(),
        NEXT_IMAGE.fetch_add(1, Ordering::Relaxed)
    ))
    .expect("image name has no NUL");
    use hdf5_sys::h5f::{H5Fopen, H5F_ACC_RDONLY};
    use hdf5_sys::h5p::{
        H5Pclose, H5Pcreate, H5Pset_fapl_core, H5Pset_file_image, H5P_CLS_FILE_ACCESS,
    };
    hdf5::sync::sync(|| unsafe {
        let fapl = H5Pcreate(*H5P_CLS_FILE_ACCESS);
        if fapl < 0 {
            return Err("H5Pcreate failed".into());
        }
        let ok = H5Pset_fapl_core(fapl, 1 << 20, 0) >= 0
            && H5Pset_file_image(fapl, bytes.as_ptr() as *mut _, bytes.len()) >= 0;
        let fid = if ok {
            H5Fopen(name.as_ptr(), H5F_ACC_RDONLY, fapl)
        } else {
            -1
        };
        H5Pclose(fapl);
        if fid < 0 {
            return Err("H5Fopen of the in-memory image failed (not a readable HDF5 file)".into());
        }
        hdf5::from_id::<hdf5::File>(fid)
    })
}

/// Reads in-memory images (messages from the network) in a helper child process.
///
/// The HDF5 C library (1.10) is not robust to corrupt files: random byte flips in a valid file make it crash
/// (SIGSEGV) within a few thousand tries, which would kill the consumer and lose its accounting. In the helper, a
/// crash, a hang past the timeout, or an allocation that gets the helper killed is an error about that image; the
/// next image gets a fresh helper. The helper is forked once (while holding the HDF5 library's lock, so no other
/// thread is inside it) and reused: a fresh child per image would pay for copying the parent's warm heap on write
/// (7 ms for tooth.h5 against 2.4 ms in place); the reused one costs the two pipe transfers (about 1 ms).
pub struct ImageReader {
    helper: Option<isolated::Helper>,
    timeout: std::time::Duration,
}

impl ImageReader {
    /// A reader whose helper gets `timeout` per image.
    pub fn new(timeout: std::time::Duration) -> Self {
        ImageReader {
            helper: None,
            timeout,
        }
    }

    /// [`ApsScan::read_bytes`], in the helper.
    pub fn read(&mut self, bytes: &[u8]) -> Result<ApsScan, ApsError> {
        let layout = |message: String| ApsError::Layout {
            path: PathBuf::from("<in-memory HDF5 image>"),
            message,
        };
        if !bytes.starts_with(&crate::contract::message::HDF5_SIGNATURE) {
            return Err(layout("not an HDF5 file (no signature)".into()));
        }
        let mut helper = match self.helper.take() {
            Some(h) => h,
            None => isolated::Helper::spawn().map_err(layout)?,
        };
        match helper.request(bytes, self.timeout) {
            Ok(answer) => {
                self.helper = Some(helper);
                answer.map_err(layout)
            }
            // The helper is gone (crashed, killed, timed out): it is reaped on drop, a new one serves the next image.
            Err(failure) => Err(layout(failure)),
        }
    }
}

mod isolated {
    use super::{ApsScan, Volume};
    use std::io::{Read, Write};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::{Duration, Instant};

    /// A forked child that reads images sent down one pipe and answers on another.
    pub(super) struct Helper {
        pid: libc::pid_t,
        to: std::fs::File,
        from: std::fs::File,
        reply: Vec<u8>,
    }

    fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 fills two descriptors we own from here on.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(format!(
                "creating a pipe: {}",
                std::io::Error::last_os_error()
            ));
        }
        // A larger pipe (1 MiB, the unprivileged maximum) moves a scan in a few round trips instead of dozens.
        // SAFETY: fcntl on our own descriptor; failure only leaves the default size.
        unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, 1 << 20) };
        // SAFETY: the descriptors are fresh and owned by exactly one OwnedFd each.
        Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
    }

    impl Helper {
        pub(super) fn spawn() -> Result<Helper, String> {
            let (req_rd, req_wr) = pipe()?;
            let (rep_rd, rep_wr) = pipe()?;
            // Fork while holding HDF5's (reentrant) lock, so no other thread is inside the library. The child keeps
            // holding it (forgets the guard): its own HDF5 calls then only count up and down and never unlock the
            // mutex, whose slow path could wait on parked threads that do not exist in the child.
            hdf5::sync::sync(|| ());
            let guard = hdf5_sys::LOCK.lock();
            let parent = std::process::id() as libc::pid_t;
            // SAFETY: the child closes descriptors, serves requests and leaves with _exit (no destructors, no atexit
            // handlers of the parent's).
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                std::mem::forget(guard);
                let (rd, wr) = (req_rd.as_raw_fd(), rep_wr.as_raw_fd());
                // Other threads' descriptors (their HDF5 files and locks, other children's pipes) must not live on
                // in this child; it dies with its parent.
                // SAFETY: closing descriptors and setting the parent-death signal in a single-threaded child.
                unsafe {
                    let keep = [rd.min(wr) as libc::c_uint, rd.max(wr) as libc::c_uint];
                    let mut from = 3 as libc::c_uint;
                    for k in keep {
                        if k > from {
                            libc::syscall(libc::SYS_close_range, from, k - 1, 0 as libc::c_uint);
                        }
                        from = k + 1;
                    }
                    libc::syscall(
                        libc::SYS_close_range,
                        from,
                        libc::c_uint::MAX,
                        0 as libc::c_uint,
                    );
                    libc::prctl(
                        libc::PR_SET_PDEATHSIG,
                        libc::SIGKILL as libc::c_ulong,
                        0,
                        0,
                        0,
                    );
                    // What a crashing library prints (glibc's abort messages) is reported by the parent instead.
                    let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
                    if null >= 0 {
                        libc::dup2(null, 2);
                        libc::close(null);
                    }
                    if libc::getppid() != parent {
                        libc::_exit(0);
                    }
                }
                std::mem::forget((req_wr, rep_rd));
                serve(std::fs::File::from(req_rd), std::fs::File::from(rep_wr));
                // SAFETY: leaving the child without running anything of the parent's.
                unsafe { libc::_exit(0) }
            }
            drop(guard);
            if pid < 0 {
                return Err(format!("fork: {}", std::io::Error::last_os_error()));
            }
            Ok(Helper {
                pid,
                to: std::fs::File::from(req_wr),
                from: std::fs::File::from(rep_rd),
                reply: Vec::new(),
            })
        }

        /// Send one image and wait (up to `timeout`) for the answer. `Err` when the helper failed: it is then
        /// finished (killed and reaped when dropped).
        pub(super) fn request(
            &mut self,
            image: &[u8],
            timeout: Duration,
        ) -> Result<Result<ApsScan, String>, String> {
            let deadline = Instant::now() + timeout;
            let sent = self
                .to
                .write_all(&(image.len() as u64).to_le_bytes())
                .and_then(|()| self.to.write_all(image));
            if sent.is_err() {
                return Err(self.failure());
            }
            let mut len = [0u8; 8];
            if !self.read_exact(&mut len, deadline)? {
                return Err(self.failure());
            }
            let n = u64::from_le_bytes(len) as usize;
            let mut reply = std::mem::take(&mut self.reply);
            reply.resize(n, 0);
            let ok = self.read_exact(&mut reply, deadline)?;
            let out = if ok { decode(&reply) } else { None };
            self.reply = reply;
            out.ok_or_else(|| self.failure())
        }

        /// Read exactly `buf.len()` bytes by `deadline`; false on EOF (the helper died).
        fn read_exact(&mut self, buf: &mut [u8], deadline: Instant) -> Result<bool, String> {
            let mut got = 0;
            while got < buf.len() {
                let left = deadline.saturating_duration_since(Instant::now());
                let mut pfd = libc::pollfd {
                    fd: self.from.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                let n = unsafe {
                    libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32)
                };
                if n == 0 {
                    // SAFETY: our own child.
                    unsafe { libc::kill(self.pid, libc::SIGKILL) };
                    return Err(format!(
                        "the HDF5 library did not finish reading this image within {:.0} s (a corrupt file?)",
                        (deadline - Instant::now() + left).as_secs_f64().max(0.0)
                    ));
                }
                if n < 0 {
                    if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Ok(false);
                }
                match self.from.read(&mut buf[got..]) {
                    Ok(0) => return Ok(false),
                    Ok(k) => got += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return Ok(false),
                }
            }
            Ok(true)
        }

        /// Why the helper is gone (it is reaped here).
        fn failure(&mut self) -> String {
            let mut status = 0;
            // SAFETY: our own child; it has closed its pipe, so it is exiting or gone.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            while unsafe { libc::waitpid(self.pid, &mut status, 0) } < 0
                && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {
            }
            self.pid = 0;
            if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) != libc::SIGKILL {
                format!(
                    "the HDF5 library crashed reading this image (signal {}): the file is corrupt",
                    libc::WTERMSIG(status)
                )
            } else {
                "the HDF5 reader died reading this image (killed, perhaps out of memory): the file is corrupt".into()
            }
        }
    }

    impl Drop for Helper {
        fn drop(&mut self) {
            if self.pid > 0 {
                // Closing the request pipe ends the helper's loop; kill it in case it is stuck.
                // SAFETY: our own child, reaped here.
                unsafe {
                    libc::kill(self.pid, libc::SIGKILL);
                    libc::waitpid(self.pid, std::ptr::null_mut(), 0);
                }
            }
        }
    }

    /// The helper's loop: length-prefixed images in, length-prefixed answers out, until the parent closes.
    fn serve(mut rd: std::fs::File, mut wr: std::fs::File) {
        let mut image = Vec::new();
        loop {
            let mut len = [0u8; 8];
            if rd.read_exact(&mut len).is_err() {
                return;
            }
            image.resize(u64::from_le_bytes(len) as usize, 0);
            if rd.read_exact(&mut image).is_err() {
                return;
            }
            let out = encode(&ApsScan::read_bytes(&image).map_err(|e| e.to_string()));
            if wr
                .write_all(&(out.len() as u64).to_le_bytes())
                .and_then(|()| wr.write_all(&out))
                .is_err()
            {
                return;
            }
        }
    }

    fn put_u64(out: &mut Vec<u8>, v: u64) {
        out.extend_from_slice(&v.to_le_bytes());
    }

    // Parent and helper are the same program on the same machine: the arrays travel as their native bytes.
    fn as_bytes(v: &[f32]) -> &[u8] {
        // SAFETY: any f32 is 4 initialised bytes; the slice covers exactly the array.
        unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
    }

    fn put_volume(out: &mut Vec<u8>, v: Option<&Volume>) {
        match v {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                for d in v.dims {
                    put_u64(out, d as u64);
                }
                out.extend_from_slice(as_bytes(&v.values));
            }
        }
    }

    fn encode(r: &Result<ApsScan, String>) -> Vec<u8> {
        let mut out = Vec::new();
        match r {
            Err(e) => {
                out.push(0);
                put_u64(&mut out, e.len() as u64);
                out.extend_from_slice(e.as_bytes());
            }
            Ok(s) => {
                out.push(1);
                put_volume(&mut out, Some(&s.data));
                put_volume(&mut out, s.white.as_ref());
                put_volume(&mut out, s.dark.as_ref());
                match &s.theta {
                    None => out.push(0),
                    Some(t) => {
                        out.push(1);
                        put_u64(&mut out, t.len() as u64);
                        for x in t {
                            out.extend_from_slice(&x.to_le_bytes());
                        }
                    }
                }
                match &s.theta_units {
                    None => out.push(0),
                    Some(u) => {
                        out.push(1);
                        put_u64(&mut out, u.len() as u64);
                        out.extend_from_slice(u.as_bytes());
                    }
                }
            }
        }
        out
    }

    struct Reader<'a>(&'a [u8]);

    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if self.0.len() < n {
                return None;
            }
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            Some(a)
        }
        fn u8(&mut self) -> Option<u8> {
            self.take(1).map(|b| b[0])
        }
        fn u64(&mut self) -> Option<u64> {
            self.take(8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        }
        fn len(&mut self, elem: usize) -> Option<usize> {
            let n = usize::try_from(self.u64()?).ok()?;
            (n.checked_mul(elem)? <= self.0.len()).then_some(n)
        }
        fn volume(&mut self) -> Option<Option<Volume>> {
            if self.u8()? == 0 {
                return Some(None);
            }
            let dims = [
                self.u64()? as usize,
                self.u64()? as usize,
                self.u64()? as usize,
            ];
            let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
            let raw = self.take(n.checked_mul(4)?)?;
            let mut values = vec![0f32; n];
            // SAFETY: f32 has no invalid bit patterns; the lengths match (n * 4 bytes).
            unsafe {
                std::ptr::copy_nonoverlapping(
                    raw.as_ptr(),
                    values.as_mut_ptr() as *mut u8,
                    raw.len(),
                )
            };
            Some(Some(Volume { dims, values }))
        }
    }

    /// `None` when the answer is malformed (cut short).
    fn decode(b: &[u8]) -> Option<Result<ApsScan, String>> {
        let mut r = Reader(b);
        if r.u8()? == 0 {
            let n = r.len(1)?;
            return Some(Err(String::from_utf8_lossy(r.take(n)?).into_owned()));
        }
        let data = r.volume()??;
        let white = r.volume()?;
        let dark = r.volume()?;
        let theta = if r.u8()? == 1 {
            let n = r.len(8)?;
            Some(
                r.take(n * 8)?
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
            )
        } else {
            None
        };
        let theta_units = if r.u8()? == 1 {
            let n = r.len(1)?;
            Some(String::from_utf8_lossy(r.take(n)?).into_owned())
        } else {
            None
        };
        Some(Ok(ApsScan {
            data,
            white,
            dark,
            theta,
            theta_units,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tooth() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/tooth.h5")
    }

    fn small(theta: Option<Vec<f64>>, units: Option<&str>) -> ApsScan {
        ApsScan {
            data: Volume::new([3, 1, 2], vec![1., 2., 3., 4., 5., 6.]),
            white: Some(Volume::new([1, 1, 2], vec![9., 9.])),
            dark: Some(Volume::new([2, 1, 2], vec![0., 1., 0., 1.])),
            theta,
            theta_units: units.map(String::from),
        }
    }

    /// Regression (CI): a writer's lock, inherited by a child forked while the file was open, made a later
    /// read fail with errno 11 although the writer had closed the file.
    #[test]
    fn files_open_although_a_forked_child_inherited_a_writers_lock() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("locked.h5");
        let f = hdf5::File::create(&p).unwrap(); // HDF5's default: an exclusive flock
        f.new_dataset::<f32>().shape([2]).create("x").unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        drop(f);
        let locked = hdf5::File::open(&p).is_err();
        let unlocked = open_unlocked(&p).map(|f| f.dataset("x").is_ok());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            locked,
            "the inherited lock should block a default open (else this test shows nothing)"
        );
        assert!(matches!(unlocked, Ok(true)), "{unlocked:?}");
    }

    #[test]
    fn reads_tooth_from_file_and_from_bytes_identically() {
        let scan = ApsScan::read(&tooth()).expect("data/tooth.h5");
        assert_eq!(scan.data.dims, [181, 2, 640]);
        assert_eq!(scan.white.as_ref().unwrap().dims, [10, 2, 640]);
        assert_eq!(scan.dark.as_ref().unwrap().dims, [10, 2, 640]);
        assert_eq!(scan.theta_units.as_deref(), Some("degrees"));
        let theta = scan.theta.as_ref().unwrap();
        assert_eq!(theta.len(), 181);
        assert!((theta[180] - 179.0055).abs() < 1e-3, "{}", theta[180]);
        let rad = scan.theta_rad(ThetaUnits::Auto).unwrap();
        assert!((rad[180] - 179.0055f64.to_radians()).abs() < 1e-6);
        let (lo, hi) = scan
            .data
            .values
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        assert_eq!((lo, hi), (3921.25, 33891.5)); // the notes round these to 3,921-33,892
        assert!(scan.fields(None).notes.is_empty());
        let bytes = std::fs::read(tooth()).unwrap();
        assert_eq!(ApsScan::read_bytes(&bytes).unwrap(), scan);
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.h5");
        let scan = small(Some(vec![0., 90., 180.]), Some("degrees"));
        scan.write(&p).unwrap();
        assert_eq!(ApsScan::read(&p).unwrap(), scan);
        assert_eq!(
            ApsScan::read_bytes(&std::fs::read(&p).unwrap()).unwrap(),
            scan
        );
        assert_eq!(scan.dark.as_ref().unwrap().mean_plane(), vec![0., 1.]);
    }

    /// A Data Exchange file written the way a detector's software does: counts of `T`, optional fields.
    fn write_raw<T: hdf5::H5Type + Copy>(
        path: &Path,
        data: &[T],
        dims: [usize; 3],
        white: Option<&[T]>,
        dark: Option<&[T]>,
        theta: Option<(&[f64], Option<&str>)>,
    ) {
        let f = create_unlocked(path).unwrap();
        let g = f.create_group("exchange").unwrap();
        let put = |name: &str, v: &[T], n: usize| {
            g.new_dataset::<T>()
                .shape([n, dims[1], dims[2]])
                .create(name)
                .unwrap()
                .write_raw(v)
                .unwrap();
        };
        put("data", data, dims[0]);
        if let Some(w) = white {
            put("data_white", w, 1);
        }
        if let Some(d) = dark {
            put("data_dark", d, 1);
        }
        if let Some((t, units)) = theta {
            let ds = g
                .new_dataset::<f64>()
                .shape([t.len()])
                .create("theta")
                .unwrap();
            ds.write_raw(t).unwrap();
            if let Some(u) = units {
                attr(&ds, "units", u).unwrap();
            }
        }
    }

    #[test]
    fn integer_and_float_counts_of_every_width_convert_on_read() {
        let dir = tempfile::tempdir().unwrap();
        fn check<T: hdf5::H5Type + Copy>(dir: &Path, name: &str, conv: impl Fn(u32) -> T) {
            let counts: Vec<u32> = vec![10, 200, 30, 250, 5, 255];
            let data: Vec<T> = counts.iter().map(|&c| conv(c)).collect();
            let white = [conv(250), conv(250)];
            let dark = [conv(1), conv(2)];
            let p = dir.join(format!("{name}.h5"));
            write_raw(
                &p,
                &data,
                [3, 1, 2],
                Some(&white),
                Some(&dark),
                Some((&[0.0, 60.0, 120.0], Some("degrees"))),
            );
            let scan = ApsScan::read(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
            let want: Vec<f32> = counts.iter().map(|&c| c as f32).collect();
            assert_eq!(scan.data.values, want, "{name}");
            assert_eq!(scan.white.unwrap().values, vec![250.0, 250.0], "{name}");
            assert_eq!(scan.dark.unwrap().values, vec![1.0, 2.0], "{name}");
            let from_bytes = ApsScan::read_bytes(&std::fs::read(&p).unwrap()).unwrap();
            assert_eq!(from_bytes.data.values, want, "{name} in memory");
        }
        check(dir.path(), "uint8", |c| c as u8);
        check(dir.path(), "uint16", |c| c as u16);
        check(dir.path(), "uint32", |c| c);
        check(dir.path(), "int16", |c| c as i16);
        check(dir.path(), "float32", |c| c as f32);
        check(dir.path(), "float64", |c| c as f64);
    }

    #[test]
    fn a_scan_without_flat_or_dark_fields_reads_with_stated_assumptions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bare.h5");
        // 100 angles x 1 row x 50 columns; the beam (1000 counts) is unobstructed at the edges.
        let data: Vec<u16> = (0..100 * 50)
            .map(|k| {
                if (10..40).contains(&(k % 50)) {
                    400
                } else {
                    1000
                }
            })
            .collect();
        write_raw(&p, &data, [100, 1, 50], None, None, None);
        let scan = ApsScan::read(&p).unwrap();
        assert!(scan.white.is_none() && scan.dark.is_none() && scan.theta.is_none());
        let f = scan.fields(None);
        assert_eq!(f.dark, vec![0.0; 50]);
        assert_eq!(f.flat, vec![1000.0; 50]);
        assert_eq!(f.notes.len(), 2, "{:?}", f.notes);
        assert!(f.notes[0].contains("dark taken as 0"), "{:?}", f.notes);
        assert!(
            f.notes[1].contains("open beam 1000 counts, the 99th percentile"),
            "{:?}",
            f.notes
        );
        let given = scan.fields(Some(1200.0));
        assert_eq!(given.flat, vec![1200.0; 50]);
        assert!(given.notes[1].contains("as given"), "{:?}", given.notes);
        let e = scan.theta_rad(ThetaUnits::Auto).unwrap_err().to_string();
        assert!(e.contains("no /exchange/theta"), "{e}");
    }

    #[test]
    fn theta_units_come_from_the_attribute_the_setting_or_the_range() {
        let deg: Vec<f64> = (0..=180).map(|d| d as f64).collect();
        let rad: Vec<f64> = deg.iter().map(|d| d.to_radians()).collect();
        let want = rad.clone();
        let close = |a: &[f64]| a.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-12);
        // The attribute decides, whatever the spelling.
        for u in ["degrees", "deg", "Degree"] {
            assert!(close(
                &small(Some(deg.clone()), Some(u))
                    .theta_rad(ThetaUnits::Auto)
                    .unwrap()
            ));
        }
        for u in ["radians", "rad"] {
            assert!(close(
                &small(Some(rad.clone()), Some(u))
                    .theta_rad(ThetaUnits::Auto)
                    .unwrap()
            ));
        }
        // Without one, the range: up to a full turn is radians, more is degrees.
        assert!(close(
            &small(Some(rad.clone()), None)
                .theta_rad(ThetaUnits::Auto)
                .unwrap()
        ));
        assert!(close(
            &small(Some(deg.clone()), None)
                .theta_rad(ThetaUnits::Auto)
                .unwrap()
        ));
        // The setting overrides a missing or wrong attribute.
        assert!(close(
            &small(Some(rad.clone()), Some("degrees"))
                .theta_rad(ThetaUnits::Radians)
                .unwrap()
        ));
        // Ranges that fit neither unit, or not the one named, are refused.
        let e = small(Some(deg.clone()), Some("radians"))
            .theta_rad(ThetaUnits::Auto)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("more than a full turn in radians") && e.contains("degrees?"),
            "{e}"
        );
        let e = small(Some(vec![0.0, 500.0, 1000.0]), None)
            .theta_rad(ThetaUnits::Auto)
            .unwrap_err()
            .to_string();
        assert!(e.contains("neither degrees nor radians"), "{e}");
        let e = small(Some(vec![0.0, f64::NAN, 1.0]), None)
            .theta_rad(ThetaUnits::Degrees)
            .unwrap_err()
            .to_string();
        assert!(e.contains("NaN"), "{e}");
        let e = small(Some(vec![0.0, 1.0, 2.0]), Some("grad"))
            .theta_rad(ThetaUnits::Auto)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("units `grad`") && e.contains("theta_units"),
            "{e}"
        );
    }

    #[test]
    fn an_image_that_crashes_the_hdf5_library_is_an_error_not_a_crash() {
        let bytes = std::fs::read(tooth()).unwrap();
        let mut reader = ImageReader::new(std::time::Duration::from_secs(30));
        // The same scan as a direct read, again and again from one helper.
        for _ in 0..3 {
            assert_eq!(
                reader.read(&bytes).unwrap(),
                ApsScan::read_bytes(&bytes).unwrap()
            );
        }
        // Random corruption: libhdf5 1.10 crashes on some of these (found by the hostile-input test); in the
        // child that is an error about the image, every time.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut errors, mut crashes) = (0, 0);
        for _ in 0..150 {
            let mut b = bytes.clone();
            for _ in 0..(1 + rnd() % 8) {
                let at = (rnd() as usize) % 4096;
                b[at] = rnd() as u8;
            }
            if let Err(e) = reader.read(&b) {
                errors += 1;
                crashes += e.to_string().contains("crashed") as u32;
            }
        }
        assert!(errors > 0, "corruption is noticed");
        eprintln!("150 corrupted images: {errors} errors, {crashes} of them library crashes");
        let e = reader.read(b"nope").unwrap_err().to_string();
        assert!(e.contains("not an HDF5 file"), "{e}");
        // The reader still works after all of that.
        assert_eq!(reader.read(&bytes).unwrap().data.dims, [181, 2, 640]);
    }

    #[test]
    fn concurrent_in_memory_reads_see_their_own_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let images: Vec<(ApsScan, Vec<u8>)> = (0..2)
            .map(|k| {
                let scan = ApsScan {
                    data: Volume::new([2, 1, 2], vec![k as f32; 4]),
                    white: Some(Volume::new([1, 1, 2], vec![9., 9.])),
                    dark: Some(Volume::new([1, 1, 2], vec![0., 0.])),
                    theta: Some(vec![0., 180.]),
                    theta_units: Some("degrees".into()),
                };
                let p = dir.path().join(format!("s{k}.h5"));
                scan.write(&p).unwrap();
                (scan, std::fs::read(&p).unwrap())
            })
            .collect();
        std::thread::scope(|s| {
            for t in 0..8 {
                let (scan, bytes) = &images[t % 2];
                s.spawn(move || {
                    for _ in 0..50 {
                        assert_eq!(&ApsScan::read_bytes(bytes).unwrap(), scan);
                    }
                });
            }
        });
    }

    #[test]
    fn bad_inputs_are_named() {
        let err = ApsScan::read_bytes(b"not hdf5").unwrap_err().to_string();
        assert!(err.contains("not an HDF5 file"), "{err}");
        let mut truncated = std::fs::read(tooth()).unwrap();
        truncated.truncate(4000);
        assert!(ApsScan::read_bytes(&truncated).is_err());
        let err = ApsScan::read(Path::new("/nonexistent.h5"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent.h5"), "{err}");
        assert_eq!(
            paper_theta_rad(3),
            vec![0.0, std::f64::consts::FRAC_PI_2, std::f64::consts::PI]
        );
        // Shapes that do not fit together, and empty data.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.h5");
        write_raw::<f32>(&p, &[1.0; 6], [3, 1, 2], None, None, None);
        hdf5::File::append(&p)
            .unwrap()
            .new_dataset::<f32>()
            .shape([1, 1, 3])
            .create("exchange/data_white")
            .unwrap();
        let e = ApsScan::read(&p).unwrap_err().to_string();
        assert!(e.contains("data_white"), "{e}");
        let p = dir.path().join("empty.h5");
        write_raw::<f32>(&p, &[], [0, 1, 2], None, None, None);
        let e = ApsScan::read(&p).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let p = dir.path().join("angles.h5");
        write_raw::<f32>(
            &p,
            &[1.0; 6],
            [3, 1, 2],
            None,
            None,
            Some((&[0.0, 1.0], None)),
        );
        let e = ApsScan::read(&p).unwrap_err().to_string();
        assert!(
            e.contains("2 angles in /exchange/theta for 3 projections"),
            "{e}"
        );
    }
}
