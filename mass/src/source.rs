//! Message sources: what MASS sends. Every source implements [`Source`] and hands out message bodies from
//! buffers it owns and reuses, so producing a message allocates nothing.
//!
//! - [`ClusterSource`] (`cluster`): fresh random points around k centres for every message (KMeans input);
//!   centres are drawn uniformly in a box from the run seed (the same for every producer), points from a stream
//!   seeded by (seed, producer id), so a run is reproducible per producer.
//! - [`StaticSource`] (`static`): one message generated once and resent (only its header changes).
//! - [`TemplateSource`] (`template`): an APS Data Exchange dataset, either the whole HDF5 file per message (as
//!   the paper did) or one message per block of sinogram rows with flats, darks and angles carried along.
//! - `synthetic`: a random blob of a fixed size, generated once ([`StaticSource::synthetic`]).

use std::path::PathBuf;

use pilot_core::contract::aps::{paper_theta_rad, AngleSource, ApsScan, Fields};

use crate::config::TemplatePlan;
use pilot_core::contract::message::{
    self, encode_hex, encode_points_text, set_sequence, write_header, Dtype, Encoding, PayloadKind,
    ProjectionsHeader, HEADER_BYTES,
};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::normal::NormalStream;

/// Errors building a source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("template {path}: {message}")]
    Template { path: PathBuf, message: String },
    #[error("source settings: {0}")]
    Invalid(String),
}

/// A stream of message bodies.
pub trait Source: Send {
    /// The body encoding (the envelope carries accounting fields itself; other encodings need the Kafka key).
    fn encoding(&self) -> Encoding;
    /// Points per message, for points/s figures (0 when not points).
    fn points_per_message(&self) -> u64 {
        0
    }
    /// The body of message `seq`. With the envelope encoding its header carries the producer id, `seq` and
    /// `intended_send_ns`; the producer patches the actual send time just before sending.
    fn next(&mut self, seq: u64, intended_send_ns: u64) -> &mut [u8];
    /// What the source had to assume about its input (a template without flat fields), for the run's summary.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
    /// Send `points` points per message from the next message on (a points profile); false when the source's
    /// messages have no points to vary. Buffers grow once to the largest size and are reused.
    fn set_points_per_message(&mut self, _points: usize) -> bool {
        false
    }
    /// Obey a control command that changes what is sent (a frame source's flat/dark re-take or row band); Err
    /// with the reason when this source cannot. Commands on the schedule (stop, pause, rate) are the
    /// producer's.
    fn command(&mut self, c: &pilot_core::contract::control::Command) -> Result<(), String> {
        Err(format!("this source takes no {} command", c.name()))
    }
}

/// Settings of the cluster source.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterParams {
    /// Number of clusters (k).
    pub clusters: usize,
    /// Coordinates per point.
    pub dims: usize,
    pub points_per_message: usize,
    /// Standard deviation of points around their centre.
    pub spread: f64,
    /// Centres are uniform in [-box_half_width, box_half_width]^dims.
    pub box_half_width: f64,
    /// Run seed: centres come from it, each producer's points from (seed, producer id).
    pub seed: u64,
}

impl Default for ClusterParams {
    fn default() -> Self {
        ClusterParams {
            clusters: 10,
            dims: 3,
            points_per_message: 5_000,
            spread: 1.0,
            box_half_width: 10.0,
            seed: 1,
        }
    }
}

/// Draw the k centres of a run (row-major k x dims).
pub fn cluster_centres(p: &ClusterParams) -> Vec<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(p.seed ^ 0x5eed_c3e7_7e5d_0001);
    (0..p.clusters * p.dims)
        .map(|_| (unit_f64(rng.next_u64()) * 2.0 - 1.0) * p.box_half_width)
        .collect()
}

/// A uniform f64 in [0, 1) from 53 random bits.
fn unit_f64(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Fresh random points around k centres, every message.
pub struct ClusterSource {
    p: ClusterParams,
    producer_id: u32,
    centres: Vec<f64>,
    rng: NormalStream,
    encoding: Encoding,
    points: Vec<f64>,
    buf: Vec<u8>,
}

impl ClusterSource {
    /// `encoding`: envelope or points-text.
    pub fn new(
        p: ClusterParams,
        producer_id: u32,
        encoding: Encoding,
    ) -> Result<Self, SourceError> {
        if p.clusters == 0 || p.dims == 0 || p.points_per_message == 0 {
            return Err(SourceError::Invalid(
                "clusters, dims and points_per_message must be at least 1".into(),
            ));
        }
        if p.dims > u32::MAX as usize || p.points_per_message > u32::MAX as usize {
            return Err(SourceError::Invalid("too many points or dimensions".into()));
        }
        if !matches!(encoding, Encoding::Envelope | Encoding::PointsText) {
            return Err(SourceError::Invalid(format!(
                "the cluster source sends points: encoding must be envelope or points-text, not {encoding}"
            )));
        }
        let centres = cluster_centres(&p);
        let stream_seed =
            p.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (producer_id as u64).rotate_left(32);
        let n = p.points_per_message * p.dims;
        let mut s = ClusterSource {
            rng: NormalStream::new(stream_seed),
            centres,
            encoding,
            points: Vec::with_capacity(n),
            buf: Vec::new(),
            producer_id,
            p,
        };
        s.shape_envelope();
        Ok(s)
    }

    /// Size the envelope buffer for the current points per message and write its header.
    fn shape_envelope(&mut self) {
        if self.encoding == Encoding::Envelope {
            let n = self.p.points_per_message * self.p.dims;
            self.buf.resize(HEADER_BYTES + 8 * n, 0);
            let h = message::header(
                PayloadKind::Points,
                Dtype::F64,
                self.producer_id,
                0,
                &[self.p.points_per_message as u32, self.p.dims as u32],
            );
            write_header(&h, &mut self.buf);
        }
    }

    /// The centres points are drawn around (k x dims).
    pub fn centres(&self) -> &[f64] {
        &self.centres
    }

    /// Fresh points into `out` (points_per_message x dims values, written by `put(slot, value)`).
    #[inline]
    fn generate<T>(&mut self, out: &mut [T], width: usize, put: impl Fn(&mut [T], f64)) {
        let d = self.p.dims;
        let k = self.p.clusters as u64;
        let spread = self.p.spread;
        // Lemire's multiply-shift maps 32 random bits onto 0..k: two cluster picks per draw.
        let mut picks = 0u64;
        for (i, point) in out.chunks_exact_mut(d * width).enumerate() {
            if i % 2 == 0 {
                picks = self.rng.next_u64();
            } else {
                picks >>= 32;
            }
            let c = (((picks & 0xffff_ffff) * k) >> 32) as usize;
            let centre = &self.centres[c * d..(c + 1) * d];
            for (slot, &cj) in point.chunks_exact_mut(width).zip(centre) {
                put(slot, cj + spread * self.rng.sample());
            }
        }
    }
}

impl ClusterSource {
    /// [`Self::generate`] for a fixed dimension, written as little-endian f64 (the hot loop). Two points at a
    /// time: D draws give their 2*D normals and one more draw picks both clusters.
    #[inline]
    fn generate_le<const D: usize>(&mut self, out: &mut [u8]) {
        let k = self.p.clusters as u64;
        let spread = self.p.spread;
        let mut pairs = out.chunks_exact_mut(16 * D);
        for two in &mut pairs {
            let mut z = [[0f64; D]; 2];
            let [z0, z1] = &mut z;
            for (a, b) in z0.iter_mut().zip(z1.iter_mut()) {
                (*a, *b) = self.rng.next_pair();
            }
            let picks = self.rng.next_u64();
            for (half, point) in two.chunks_exact_mut(8 * D).enumerate() {
                let bits = (picks >> (32 * half)) & 0xffff_ffff;
                let c = ((bits * k) >> 32) as usize;
                let centre = &self.centres[c * D..(c + 1) * D];
                for j in 0..D {
                    let v = centre[j] + spread * z[half][j];
                    point[8 * j..8 * j + 8].copy_from_slice(&v.to_le_bytes());
                }
            }
        }
        let rest = pairs.into_remainder();
        if !rest.is_empty() {
            self.generate(rest, 8, |slot, v| slot.copy_from_slice(&v.to_le_bytes()));
        }
    }
}

impl Source for ClusterSource {
    fn encoding(&self) -> Encoding {
        self.encoding
    }

    fn points_per_message(&self) -> u64 {
        self.p.points_per_message as u64
    }

    fn set_points_per_message(&mut self, points: usize) -> bool {
        let points = points.clamp(1, u32::MAX as usize);
        if points != self.p.points_per_message {
            self.p.points_per_message = points;
            self.shape_envelope();
        }
        true
    }

    fn next(&mut self, seq: u64, intended_send_ns: u64) -> &mut [u8] {
        match self.encoding {
            Encoding::Envelope => {
                let mut buf = std::mem::take(&mut self.buf);
                match self.p.dims {
                    2 => self.generate_le::<2>(&mut buf[HEADER_BYTES..]),
                    3 => self.generate_le::<3>(&mut buf[HEADER_BYTES..]),
                    _ => self.generate(&mut buf[HEADER_BYTES..], 8, |slot, v| {
                        slot.copy_from_slice(&v.to_le_bytes())
                    }),
                }
                set_sequence(&mut buf, seq, intended_send_ns);
                self.buf = buf;
            }
            _ => {
                let mut pts = std::mem::take(&mut self.points);
                pts.resize(self.p.points_per_message * self.p.dims, 0.0);
                self.generate(&mut pts, 1, |slot, v| slot[0] = v);
                encode_points_text(&pts, self.p.dims, &mut self.buf);
                self.points = pts;
            }
        }
        &mut self.buf
    }
}

/// One body generated once and resent; with the envelope encoding only sequence and times change.
pub struct StaticSource {
    body: Vec<u8>,
    encoding: Encoding,
    points: u64,
}

impl StaticSource {
    /// Take the first message of `inner` and resend it.
    pub fn from_source(mut inner: Box<dyn Source>) -> Self {
        let encoding = inner.encoding();
        let points = inner.points_per_message();
        let body = inner.next(0, 0).to_vec();
        StaticSource {
            body,
            encoding,
            points,
        }
    }

    /// `bytes` of random payload in an envelope of kind `bytes` (the synthetic source).
    pub fn synthetic(bytes: usize, producer_id: u32, seed: u64) -> Result<Self, SourceError> {
        if bytes == 0 || bytes > message::MAX_PAYLOAD_BYTES as usize {
            return Err(SourceError::Invalid(format!(
                "synthetic message size {bytes} B must be between 1 B and {} B",
                message::MAX_PAYLOAD_BYTES
            )));
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ producer_id as u64);
        let mut body = vec![0u8; HEADER_BYTES + bytes];
        rng.fill_bytes(&mut body[HEADER_BYTES..]);
        let h = message::header(
            PayloadKind::Bytes,
            Dtype::U8,
            producer_id,
            0,
            &[bytes as u32],
        );
        write_header(&h, &mut body);
        Ok(StaticSource {
            body,
            encoding: Encoding::Envelope,
            points: 0,
        })
    }
}

impl Source for StaticSource {
    fn encoding(&self) -> Encoding {
        self.encoding
    }

    fn points_per_message(&self) -> u64 {
        self.points
    }

    fn next(&mut self, seq: u64, intended_send_ns: u64) -> &mut [u8] {
        if self.encoding == Encoding::Envelope {
            set_sequence(&mut self.body, seq, intended_send_ns);
        }
        &mut self.body
    }
}

/// How the template source cuts its dataset into messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateMode {
    /// The whole HDF5 file per message (the paper's light-source stream).
    WholeFile,
    /// `rows` sinogram rows per message, as a `projections` envelope with flats, darks and angles.
    Rows { rows: usize },
}

/// Streams an APS Data Exchange dataset.
pub struct TemplateSource {
    bodies: Vec<Vec<u8>>,
    encoding: Encoding,
    notes: Vec<String>,
}

impl TemplateSource {
    /// Open the template exactly as [`TemplateSource::new`] does and check it, without keeping anything: what
    /// validation (and so `mass run --dry-run`) runs, so a file the run would refuse is refused before it.
    pub fn check(plan: &TemplatePlan) -> Result<(), String> {
        let scan = ApsScan::read(&plan.file).map_err(|e| e.to_string())?;
        if let TemplateMode::Rows { rows } = plan.mode {
            Self::block_inputs(&scan, rows, plan)?;
        }
        Ok(())
    }

    /// Load the template once and pre-encode every distinct message.
    pub fn new(
        plan: &TemplatePlan,
        encoding: Encoding,
        producer_id: u32,
    ) -> Result<Self, SourceError> {
        let path = &plan.file;
        let terr = |message: String| SourceError::Template {
            path: path.to_path_buf(),
            message,
        };
        let mut notes = Vec::new();
        let bodies = match plan.mode {
            TemplateMode::WholeFile => {
                let file = std::fs::read(path).map_err(|e| terr(e.to_string()))?;
                if !file.starts_with(&message::HDF5_SIGNATURE) {
                    return Err(terr("not an HDF5 file".into()));
                }
                // Validate the layout now rather than at every consumer.
                ApsScan::read(path).map_err(|e| terr(e.to_string()))?;
                let mut body = Vec::new();
                match encoding {
                    Encoding::Envelope => {
                        let h = message::header(PayloadKind::Hdf5File, Dtype::U8, producer_id, 0, &[file.len() as u32]);
                        message::encode_bytes(&h, &file, &mut body);
                    }
                    Encoding::Hdf5Raw => body = file,
                    Encoding::Hdf5Hex => encode_hex(&file, &mut body),
                    Encoding::PointsText | Encoding::Ad00 => {
                        return Err(SourceError::Invalid(
                            "the template source sends HDF5 data: encoding must be envelope, hdf5-raw or hdf5-hex".into(),
                        ))
                    }
                }
                vec![body]
            }
            TemplateMode::Rows { rows } => {
                if encoding != Encoding::Envelope {
                    return Err(SourceError::Invalid(
                        "row blocks travel only in the envelope encoding (projections)".into(),
                    ));
                }
                let scan = ApsScan::read(path).map_err(|e| terr(e.to_string()))?;
                let (theta, fields) = Self::block_inputs(&scan, rows, plan).map_err(terr)?;
                notes = fields.notes.clone();
                Self::row_blocks(&scan, rows, &theta, &fields, producer_id)
            }
        };
        Ok(TemplateSource {
            bodies,
            encoding,
            notes,
        })
    }

    /// What had to be assumed about the file (missing flat or dark fields), for the run's summary.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The angles (radians, f32) and normalisation fields row blocks carry.
    fn block_inputs(
        scan: &ApsScan,
        rows: usize,
        plan: &TemplatePlan,
    ) -> Result<(Vec<f32>, Fields), String> {
        let [a, r, _] = scan.data.dims;
        if rows == 0 || rows > r {
            return Err(format!(
                "rows per message must be 1..={r} (the detector has {r} rows)"
            ));
        }
        let theta: Vec<f32> = match plan.angles {
            AngleSource::File => scan
                .theta_rad(plan.theta_units)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|t| t as f32)
                .collect(),
            AngleSource::Paper => paper_theta_rad(a).into_iter().map(|t| t as f32).collect(),
        };
        Ok((theta, scan.fields(plan.open_beam_counts)))
    }

    fn row_blocks(
        scan: &ApsScan,
        rows: usize,
        theta: &[f32],
        fields: &Fields,
        producer_id: u32,
    ) -> Vec<Vec<u8>> {
        let [a, r, c] = scan.data.dims;
        let (flat, dark) = (&fields.flat, &fields.dark);
        let mut bodies = Vec::new();
        let mut first = 0;
        while first < r {
            let n = rows.min(r - first);
            let mut data = Vec::with_capacity(a * n * c);
            for ang in 0..a {
                let plane = scan.data.plane(ang);
                data.extend_from_slice(&plane[first * c..(first + n) * c]);
            }
            let ph = ProjectionsHeader {
                n_angles: a as u32,
                rows: n as u32,
                cols: c as u32,
                first_row: first as u32,
            };
            let mut body = Vec::new();
            message::encode_projections(
                &ph,
                producer_id,
                0,
                &data,
                &flat[first * c..(first + n) * c],
                &dark[first * c..(first + n) * c],
                theta,
                &mut body,
            );
            bodies.push(body);
            first += n;
        }
        bodies
    }

    /// Number of distinct messages (1 for whole files; the number of row blocks otherwise).
    pub fn distinct_messages(&self) -> usize {
        self.bodies.len()
    }
}

impl Source for TemplateSource {
    fn encoding(&self) -> Encoding {
        self.encoding
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    fn next(&mut self, seq: u64, intended_send_ns: u64) -> &mut [u8] {
        let i = (seq % self.bodies.len() as u64) as usize;
        let body = &mut self.bodies[i];
        if self.encoding == Encoding::Envelope {
            set_sequence(body, seq, intended_send_ns);
        }
        body
    }
}
