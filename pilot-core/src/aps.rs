//! APS Data Exchange HDF5 files, the layout light-source data travels in (TomoPy's `tooth.h5` among them):
//!
//! - `/exchange/data`       f32 `[angles, rows, cols]`, axes `theta:y:x`, counts
//! - `/exchange/data_white` f32 `[n_white, rows, cols]`, flat fields
//! - `/exchange/data_dark`  f32 `[n_dark, rows, cols]`, dark fields
//! - `/exchange/theta`      f64 `[angles]`, degrees
//!
//! [`ApsScan`] reads such a file from a path or from bytes in memory (a message carrying the whole file), and
//! writes one (MASS's phantom generator). [`ReconFile`] holds MASA's reconstructed slices in the same style. Both
//! mini-apps use this module, so the layouts have one definition.

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

/// One tomography scan in Data Exchange layout.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApsScan {
    /// Projections `[angles, rows, cols]`.
    pub data: Volume,
    /// Flat (white) fields `[n, rows, cols]`.
    pub white: Volume,
    /// Dark fields `[n, rows, cols]`.
    pub dark: Volume,
    /// Projection angles in degrees.
    pub theta_deg: Vec<f64>,
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
}

const DATA: &str = "exchange/data";
const WHITE: &str = "exchange/data_white";
const DARK: &str = "exchange/data_dark";
const THETA: &str = "exchange/theta";

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

fn read_volume(file: &hdf5::File, name: &str, path: &Path) -> Result<Volume, ApsError> {
    let ds = file
        .dataset(name)
        .map_err(h5err("opening dataset in", path))?;
    let shape = ds.shape();
    if shape.len() != 3 {
        return Err(ApsError::Layout {
            path: path.to_path_buf(),
            message: format!("/{name} has {} dimensions, expected 3", shape.len()),
        });
    }
    let values: Vec<f32> = ds.read_raw().map_err(h5err("reading", path))?;
    Ok(Volume::new([shape[0], shape[1], shape[2]], values))
}

impl ApsScan {
    fn from_file(file: &hdf5::File, path: &Path) -> Result<Self, ApsError> {
        let data = read_volume(file, DATA, path)?;
        let white = read_volume(file, WHITE, path)?;
        let dark = read_volume(file, DARK, path)?;
        let theta_deg: Vec<f64> = file
            .dataset(THETA)
            .and_then(|d| d.read_raw())
            .map_err(h5err("reading /exchange/theta in", path))?;
        let scan = ApsScan {
            data,
            white,
            dark,
            theta_deg,
        };
        scan.check().map_err(|message| ApsError::Layout {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(scan)
    }

    /// Consistency of shapes: flats/darks match the detector, one angle per projection.
    pub fn check(&self) -> Result<(), String> {
        let [a, r, c] = self.data.dims;
        for (name, v) in [("data_white", &self.white), ("data_dark", &self.dark)] {
            if v.dims[1] != r || v.dims[2] != c || v.dims[0] == 0 {
                return Err(format!(
                    "/exchange/{name} is {:?}, detector is {r}x{c}",
                    v.dims
                ));
            }
        }
        if self.theta_deg.len() != a {
            return Err(format!(
                "{} angles in /exchange/theta for {a} projections",
                self.theta_deg.len()
            ));
        }
        Ok(())
    }

    /// Read a Data Exchange file.
    pub fn read(path: &Path) -> Result<Self, ApsError> {
        let file = hdf5::File::open(path).map_err(h5err("opening", path))?;
        Self::from_file(&file, path)
    }

    /// Read a Data Exchange file held in memory (the bytes of a whole file, as the paper's messages carried).
    pub fn read_bytes(bytes: &[u8]) -> Result<Self, ApsError> {
        let label = Path::new("<in-memory HDF5 image>");
        if !bytes.starts_with(&crate::message::HDF5_SIGNATURE) {
            return Err(ApsError::Layout {
                path: label.to_path_buf(),
                message: "not an HDF5 file (no signature)".into(),
            });
        }
        let file = open_image(bytes).map_err(h5err("opening", label))?;
        Self::from_file(&file, label)
    }

    /// Write a Data Exchange file (with the axes and units attributes tooth.h5 has).
    pub fn write(&self, path: &Path) -> Result<(), ApsError> {
        self.check().map_err(|message| ApsError::Layout {
            path: path.to_path_buf(),
            message,
        })?;
        let e = h5err("writing", path);
        let file = hdf5::File::create(path).map_err(&e)?;
        let g = file.create_group("exchange").map_err(&e)?;
        let put = |name: &str, v: &Volume, axes: &str| -> hdf5::Result<()> {
            let ds = g.new_dataset::<f32>().shape(v.dims).create(name)?;
            ds.write_raw(&v.values)?;
            attr(&ds, "axes", axes)?;
            attr(&ds, "units", "counts")
        };
        put("data", &self.data, "theta:y:x").map_err(&e)?;
        put("data_white", &self.white, "theta_white:y:x").map_err(&e)?;
        put("data_dark", &self.dark, "theta_dark:y:x").map_err(&e)?;
        let t = g
            .new_dataset::<f64>()
            .shape([self.theta_deg.len()])
            .create("theta")
            .map_err(&e)?;
        t.write_raw(&self.theta_deg).map_err(&e)?;
        attr(&t, "units", "degrees").map_err(&e)?;
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
        let file = hdf5::File::create(path).map_err(&e)?;
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
        let file = hdf5::File::open(path).map_err(h5err("opening", path))?;
        let recon = read_volume(&file, RECON, path)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tooth() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/tooth.h5")
    }

    #[test]
    fn reads_tooth_from_file_and_from_bytes_identically() {
        let scan = ApsScan::read(&tooth()).expect("../shared/data/tooth.h5");
        assert_eq!(scan.data.dims, [181, 2, 640]);
        assert_eq!(scan.white.dims, [10, 2, 640]);
        assert_eq!(scan.dark.dims, [10, 2, 640]);
        assert_eq!(scan.theta_deg.len(), 181);
        assert!(
            (scan.theta_deg[180] - 179.0055).abs() < 1e-3,
            "{}",
            scan.theta_deg[180]
        );
        let (lo, hi) = scan
            .data
            .values
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        assert_eq!((lo, hi), (3921.25, 33891.5)); // the notes round these to 3,921-33,892
        let bytes = std::fs::read(tooth()).unwrap();
        assert_eq!(ApsScan::read_bytes(&bytes).unwrap(), scan);
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.h5");
        let scan = ApsScan {
            data: Volume::new([3, 1, 2], vec![1., 2., 3., 4., 5., 6.]),
            white: Volume::new([1, 1, 2], vec![9., 9.]),
            dark: Volume::new([2, 1, 2], vec![0., 1., 0., 1.]),
            theta_deg: vec![0., 90., 180.],
        };
        scan.write(&p).unwrap();
        assert_eq!(ApsScan::read(&p).unwrap(), scan);
        assert_eq!(
            ApsScan::read_bytes(&std::fs::read(&p).unwrap()).unwrap(),
            scan
        );
        assert_eq!(scan.dark.mean_plane(), vec![0., 1.]);
    }

    #[test]
    fn concurrent_in_memory_reads_see_their_own_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let images: Vec<(ApsScan, Vec<u8>)> = (0..2)
            .map(|k| {
                let scan = ApsScan {
                    data: Volume::new([2, 1, 2], vec![k as f32; 4]),
                    white: Volume::new([1, 1, 2], vec![9., 9.]),
                    dark: Volume::new([1, 1, 2], vec![0., 0.]),
                    theta_deg: vec![0., 180.],
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
    }
}
