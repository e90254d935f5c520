//! The wire format MASS writes and MASA reads.
//!
//! # Envelope (format version 1)
//! A fixed 64-byte little-endian header, then the payload:
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 4 | magic `b"PSMA"` |
//! | 4 | 2 | format version (1) |
//! | 6 | 1 | payload kind ([`PayloadKind`]) |
//! | 7 | 1 | dtype ([`Dtype`]) |
//! | 8 | 4 | producer id |
//! | 12 | 8 | sequence number (per producer, from 0) |
//! | 20 | 8 | intended send time, ns since the Unix epoch (the open-loop schedule's slot) |
//! | 28 | 8 | actual send time, ns since the Unix epoch (patched in place just before sending) |
//! | 36 | 1 | number of dimensions (0-4) |
//! | 37 | 3 | reserved, zero |
//! | 40 | 16 | shape: 4 x u32 (unused dimensions 0) |
//! | 56 | 8 | payload length in bytes |
//! | 64 | ... | payload, little-endian elements of `dtype`, row-major |
//!
//! The payload's length must equal the product of the shape times the element size (for `hdf5-file` and
//! `bytes`, dtype `u8` and shape `[len]`; a `frame` adds its 32-byte frame header, see [`super::frame`]). [`decode`] checks all of this and returns a typed [`DecodeError`];
//! it never panics, whatever the bytes.
//!
//! # The paper's encodings
//! For reproduction, messages can carry the same bytes the original mini-apps sent: KMeans points as UTF-8 text
//! `[[x, y, z], ...]` ([`encode_points_text`] / [`parse_points_text`]) and the light source as the whole HDF5 file,
//! raw or hex ([`encode_hex`] / [`decode_hex`]). Those bodies have no header, so the accounting fields travel in
//! the Kafka key instead ([`AccountingKey`], 32 bytes starting `PSMK`, so that any other producer's key is never
//! taken for one). [`Encoding::detect`] tells the forms apart by their first bytes (leading whitespace allowed
//! before text).

use std::fmt;

/// First four bytes of every envelope.
pub const MAGIC: [u8; 4] = *b"PSMA";
/// Current format version.
pub const FORMAT_VERSION: u16 = 1;
/// Header size in bytes; the payload starts here.
pub const HEADER_BYTES: usize = 64;
/// Largest payload accepted by [`decode`] (1 GiB): a guard against corrupt lengths.
pub const MAX_PAYLOAD_BYTES: u64 = 1 << 30;
/// Offset of the actual-send-time field, patched just before a message is handed to the client.
pub const ACTUAL_SEND_OFFSET: usize = 28;
/// The HDF5 file signature.
pub const HDF5_SIGNATURE: [u8; 8] = [0x89, b'H', b'D', b'F', b'\r', b'\n', 0x1a, b'\n'];

/// What a payload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[repr(u8)]
pub enum PayloadKind {
    /// Points, shape `[n, dims]` (KMeans input).
    Points = 1,
    /// A block of a tomography scan, dtype f32; see [`ProjectionsHeader`] for the payload layout.
    Projections = 2,
    /// A whole HDF5 file (APS Data Exchange), dtype u8.
    Hdf5File = 3,
    /// Opaque bytes, dtype u8.
    Bytes = 4,
    /// One detector frame (projection, flat or dark), shape `[rows, cols]`; see [`super::frame`] for the payload.
    Frame = 5,
}

impl PayloadKind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Points,
            2 => Self::Projections,
            3 => Self::Hdf5File,
            4 => Self::Bytes,
            5 => Self::Frame,
            _ => return None,
        })
    }
}

/// Element type of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Dtype {
    U8 = 1,
    F32 = 2,
    F64 = 3,
    /// Detector pixels.
    U16 = 4,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::U8 => 1,
            Dtype::F32 => 4,
            Dtype::F64 => 8,
            Dtype::U16 => 2,
        }
    }

    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::U8,
            2 => Self::F32,
            3 => Self::F64,
            4 => Self::U16,
            _ => return None,
        })
    }
}

/// The header fields of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: PayloadKind,
    pub dtype: Dtype,
    pub producer_id: u32,
    pub sequence: u64,
    pub intended_send_ns: u64,
    pub actual_send_ns: u64,
    /// Number of used entries in `shape`.
    pub ndim: u8,
    pub shape: [u32; 4],
}

impl Header {
    /// The used dimensions.
    pub fn dims(&self) -> &[u32] {
        &self.shape[..self.ndim as usize]
    }

    /// Payload bytes implied by kind, shape and dtype (`u64::MAX` when the shape overflows or does not fit the
    /// kind). For `projections` the shape is `[n_angles, rows, cols, first_row]` and the payload holds
    /// `(n_angles + 2) * rows * cols + n_angles` elements (see [`ProjectionsHeader`]); otherwise the payload is the
    /// product of the dimensions.
    pub fn payload_bytes(&self) -> u64 {
        let elements = match self.kind {
            PayloadKind::Projections => {
                if self.ndim != 4 {
                    return u64::MAX;
                }
                let (a, r, c) = (
                    self.shape[0] as u64,
                    self.shape[1] as u64,
                    self.shape[2] as u64,
                );
                (a + 2)
                    .checked_mul(r)
                    .and_then(|x| x.checked_mul(c))
                    .and_then(|x| x.checked_add(a))
            }
            PayloadKind::Frame => {
                return self
                    .dims()
                    .iter()
                    .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
                    .and_then(|e| e.checked_mul(self.dtype.size() as u64))
                    .and_then(|b| b.checked_add(super::frame::FRAME_HEADER_BYTES as u64))
                    .unwrap_or(u64::MAX);
            }
            _ => self
                .dims()
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64)),
        };
        elements
            .and_then(|e| e.checked_mul(self.dtype.size() as u64))
            .unwrap_or(u64::MAX)
    }
}

/// A decoded envelope borrowing the message's bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Envelope<'a> {
    pub header: Header,
    /// The payload bytes (little-endian elements; not necessarily aligned).
    pub payload: &'a [u8],
}

impl Envelope<'_> {
    /// Decode an f64 payload into `out` (cleared first; capacity reused).
    pub fn f64_into(&self, out: &mut Vec<f64>) -> Result<(), DecodeError> {
        self.expect_dtype(Dtype::F64)?;
        out.clear();
        out.extend(
            self.payload
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))),
        );
        Ok(())
    }

    /// Decode an f32 payload widened to f64 into `out` (cleared first; capacity reused).
    pub fn f32_as_f64_into(&self, out: &mut Vec<f64>) -> Result<(), DecodeError> {
        self.expect_dtype(Dtype::F32)?;
        out.clear();
        out.extend(
            self.payload
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64),
        );
        Ok(())
    }

    /// Decode an f32 payload into `out` (cleared first; capacity reused).
    pub fn f32_into(&self, out: &mut Vec<f32>) -> Result<(), DecodeError> {
        self.expect_dtype(Dtype::F32)?;
        out.clear();
        out.extend(
            self.payload
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))),
        );
        Ok(())
    }

    fn expect_dtype(&self, want: Dtype) -> Result<(), DecodeError> {
        if self.header.dtype == want {
            Ok(())
        } else {
            Err(DecodeError::WrongDtype {
                expected: want,
                found: self.header.dtype,
            })
        }
    }
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated message: {got} bytes, need at least {need}")]
    Truncated { need: u64, got: u64 },
    #[error("bad magic {found:02x?} (expected {MAGIC:02x?}): not a mini-app envelope")]
    BadMagic { found: [u8; 4] },
    #[error("unsupported format version {found} (this build reads {FORMAT_VERSION})")]
    UnsupportedVersion { found: u16 },
    #[error("unknown payload kind {0}")]
    UnknownKind(u8),
    #[error("unknown dtype {0}")]
    UnknownDtype(u8),
    #[error("{0} dimensions declared; at most 4")]
    TooManyDims(u8),
    #[error("payload of {declared} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")]
    Oversized { declared: u64 },
    #[error(
        "shape {shape:?} of {dtype:?} needs {implied} payload bytes but {declared} are declared"
    )]
    ShapeMismatch {
        shape: Vec<u32>,
        dtype: Dtype,
        implied: u64,
        declared: u64,
    },
    #[error("message has {extra} bytes after the declared payload")]
    TrailingBytes { extra: u64 },
    #[error("expected {expected:?} elements, found {found:?}")]
    WrongDtype { expected: Dtype, found: Dtype },
    #[error("malformed points text at byte {at}: {what}")]
    BadText { at: usize, what: String },
    #[error("malformed hex at byte {at}")]
    BadHex { at: usize },
    #[error(
        "not an accounting key ({got} bytes; MASS's are {ACCOUNTING_KEY_BYTES} starting `PSMK`)"
    )]
    BadKey { got: usize },
    #[error("malformed projections payload: {0}")]
    BadProjections(String),
    #[error("malformed frame: {0}")]
    BadFrame(String),
}

impl DecodeError {
    /// A short category for counting rejections by reason.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::BadMagic { .. } => "bad magic",
            DecodeError::UnsupportedVersion { .. } => "unsupported version",
            DecodeError::UnknownKind(_) => "unknown payload kind",
            DecodeError::UnknownDtype(_) => "unknown dtype",
            DecodeError::TooManyDims(_) => "too many dimensions",
            DecodeError::Oversized { .. } => "oversized",
            DecodeError::ShapeMismatch { .. } => "shape mismatch",
            DecodeError::TrailingBytes { .. } => "trailing bytes",
            DecodeError::WrongDtype { .. } => "wrong dtype",
            DecodeError::BadText { .. } => "malformed points text",
            DecodeError::BadHex { .. } => "malformed hex",
            DecodeError::BadKey { .. } => "malformed accounting key",
            DecodeError::BadProjections(_) => "malformed projections",
            DecodeError::BadFrame(_) => "malformed frame",
        }
    }
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().expect("2 bytes"))
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// Decode an envelope, checking magic, version, kind, dtype, shape against length, and size limits.
pub fn decode(bytes: &[u8]) -> Result<Envelope<'_>, DecodeError> {
    if bytes.len() < HEADER_BYTES {
        return Err(DecodeError::Truncated {
            need: HEADER_BYTES as u64,
            got: bytes.len() as u64,
        });
    }
    let magic: [u8; 4] = bytes[0..4].try_into().expect("4 bytes");
    if magic != MAGIC {
        return Err(DecodeError::BadMagic { found: magic });
    }
    let version = u16_at(bytes, 4);
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion { found: version });
    }
    let kind = PayloadKind::from_u8(bytes[6]).ok_or(DecodeError::UnknownKind(bytes[6]))?;
    let dtype = Dtype::from_u8(bytes[7]).ok_or(DecodeError::UnknownDtype(bytes[7]))?;
    let ndim = bytes[36];
    if ndim > 4 {
        return Err(DecodeError::TooManyDims(ndim));
    }
    let mut shape = [0u32; 4];
    for (i, s) in shape.iter_mut().enumerate() {
        *s = u32_at(bytes, 40 + 4 * i);
    }
    let declared = u64_at(bytes, 56);
    if declared > MAX_PAYLOAD_BYTES {
        return Err(DecodeError::Oversized { declared });
    }
    let header = Header {
        kind,
        dtype,
        producer_id: u32_at(bytes, 8),
        sequence: u64_at(bytes, 12),
        intended_send_ns: u64_at(bytes, 20),
        actual_send_ns: u64_at(bytes, ACTUAL_SEND_OFFSET),
        ndim,
        shape,
    };
    let implied = header.payload_bytes();
    if implied != declared {
        return Err(DecodeError::ShapeMismatch {
            shape: header.dims().to_vec(),
            dtype,
            implied,
            declared,
        });
    }
    let have = (bytes.len() - HEADER_BYTES) as u64;
    if have < declared {
        return Err(DecodeError::Truncated {
            need: HEADER_BYTES as u64 + declared,
            got: bytes.len() as u64,
        });
    }
    if have > declared {
        return Err(DecodeError::TrailingBytes {
            extra: have - declared,
        });
    }
    Ok(Envelope {
        header,
        payload: &bytes[HEADER_BYTES..],
    })
}

/// Write `header` into the first [`HEADER_BYTES`] of `out` (which must be at least that long). The payload
/// length field is derived from the shape.
pub fn write_header(header: &Header, out: &mut [u8]) {
    let h = &mut out[..HEADER_BYTES];
    h.fill(0);
    h[0..4].copy_from_slice(&MAGIC);
    h[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[6] = header.kind as u8;
    h[7] = header.dtype as u8;
    h[8..12].copy_from_slice(&header.producer_id.to_le_bytes());
    h[12..20].copy_from_slice(&header.sequence.to_le_bytes());
    h[20..28].copy_from_slice(&header.intended_send_ns.to_le_bytes());
    h[28..36].copy_from_slice(&header.actual_send_ns.to_le_bytes());
    h[36] = header.ndim;
    for (i, s) in header.shape.iter().enumerate() {
        h[40 + 4 * i..44 + 4 * i].copy_from_slice(&s.to_le_bytes());
    }
    h[56..64].copy_from_slice(&header.payload_bytes().to_le_bytes());
}

/// Patch the actual send time of an encoded envelope in place.
pub fn set_actual_send_ns(message: &mut [u8], ns: u64) {
    message[ACTUAL_SEND_OFFSET..ACTUAL_SEND_OFFSET + 8].copy_from_slice(&ns.to_le_bytes());
}

/// Patch sequence and intended send time of an encoded envelope in place (the static source resends one body).
pub fn set_sequence(message: &mut [u8], sequence: u64, intended_send_ns: u64) {
    message[12..20].copy_from_slice(&sequence.to_le_bytes());
    message[20..28].copy_from_slice(&intended_send_ns.to_le_bytes());
}

/// Header then `N`-byte little-endian elements into `out` (cleared; capacity reused).
fn encode_elements<T: Copy, const N: usize>(
    header: &Header,
    dtype: Dtype,
    data: &[T],
    to_le: impl Fn(T) -> [u8; N],
    out: &mut Vec<u8>,
) {
    debug_assert_eq!(header.dtype, dtype);
    debug_assert_eq!(header.payload_bytes(), (data.len() * N) as u64);
    out.clear();
    out.resize(HEADER_BYTES, 0);
    write_header(header, out);
    out.reserve(data.len() * N);
    for &v in data {
        out.extend_from_slice(&to_le(v));
    }
}

/// Encode header + f64 elements into `out` (cleared; capacity reused).
pub fn encode_f64(header: &Header, data: &[f64], out: &mut Vec<u8>) {
    encode_elements(header, Dtype::F64, data, f64::to_le_bytes, out);
}

/// Encode header + f32 elements into `out` (cleared; capacity reused).
pub fn encode_f32(header: &Header, data: &[f32], out: &mut Vec<u8>) {
    encode_elements(header, Dtype::F32, data, f32::to_le_bytes, out);
}

/// Encode header + raw bytes (kinds `hdf5-file`, `bytes`) into `out`.
pub fn encode_bytes(header: &Header, data: &[u8], out: &mut Vec<u8>) {
    debug_assert_eq!(header.payload_bytes(), data.len() as u64);
    out.clear();
    out.resize(HEADER_BYTES, 0);
    write_header(header, out);
    out.extend_from_slice(data);
}

/// A header for `kind` with the given shape (up to 4 dimensions).
pub fn header(
    kind: PayloadKind,
    dtype: Dtype,
    producer_id: u32,
    sequence: u64,
    dims: &[u32],
) -> Header {
    assert!(dims.len() <= 4, "at most 4 dimensions");
    let mut shape = [0u32; 4];
    shape[..dims.len()].copy_from_slice(dims);
    Header {
        kind,
        dtype,
        producer_id,
        sequence,
        intended_send_ns: 0,
        actual_send_ns: 0,
        ndim: dims.len() as u8,
        shape,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Projections payload

/// Geometry of a `projections` payload (dtype f32): a block of a tomography scan with what is needed to
/// reconstruct it. Envelope shape `[n_angles, rows, cols, first_row]`; the payload holds, in order,
/// `data[n_angles][rows][cols]`, `flat[rows][cols]` (mean white field), `dark[rows][cols]` (mean dark field) and
/// `theta[n_angles]` (radians).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectionsHeader {
    pub n_angles: u32,
    pub rows: u32,
    pub cols: u32,
    /// Index of the first detector row this block holds within the full scan.
    pub first_row: u32,
}

impl ProjectionsHeader {
    /// The envelope header for this block.
    pub fn envelope(&self, producer_id: u32, sequence: u64) -> Header {
        header(
            PayloadKind::Projections,
            Dtype::F32,
            producer_id,
            sequence,
            &[self.n_angles, self.rows, self.cols, self.first_row],
        )
    }
}

/// Encode a projections block: `data` (angles x rows x cols), `flat`, `dark` (rows x cols), `theta_rad`.
#[allow(clippy::too_many_arguments)]
pub fn encode_projections(
    ph: &ProjectionsHeader,
    producer_id: u32,
    sequence: u64,
    data: &[f32],
    flat: &[f32],
    dark: &[f32],
    theta_rad: &[f32],
    out: &mut Vec<u8>,
) {
    let (a, r, c) = (ph.n_angles as usize, ph.rows as usize, ph.cols as usize);
    assert_eq!(data.len(), a * r * c, "data is angles x rows x cols");
    assert_eq!(flat.len(), r * c, "flat is rows x cols");
    assert_eq!(dark.len(), r * c, "dark is rows x cols");
    assert_eq!(theta_rad.len(), a, "one angle per projection");
    out.clear();
    out.resize(HEADER_BYTES, 0);
    write_header(&ph.envelope(producer_id, sequence), out);
    for part in [data, flat, dark, theta_rad] {
        for v in part {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// A decoded projections block (owned vectors reused by the caller).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Projections {
    pub n_angles: usize,
    pub rows: usize,
    pub cols: usize,
    pub first_row: usize,
    /// angles x rows x cols
    pub data: Vec<f32>,
    pub flat: Vec<f32>,
    pub dark: Vec<f32>,
    pub theta_rad: Vec<f32>,
}

/// Decode a projections envelope into `out` (buffers reused). [`decode`] has already checked the length.
pub fn projections_of(env: &Envelope<'_>, out: &mut Projections) -> Result<(), DecodeError> {
    if env.header.kind != PayloadKind::Projections {
        return Err(DecodeError::BadProjections(format!(
            "kind is {:?}",
            env.header.kind
        )));
    }
    env.expect_dtype(Dtype::F32)?;
    if env.payload.len() as u64 != env.header.payload_bytes() {
        return Err(DecodeError::BadProjections(
            "payload length does not match the shape".into(),
        ));
    }
    let [a, r, c, f] = env.header.shape.map(|d| d as usize);
    let p = env.payload;
    let mut at = 0;
    let mut take = |n: usize, v: &mut Vec<f32>| {
        v.clear();
        v.extend(
            p[at..at + 4 * n]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))),
        );
        at += 4 * n;
    };
    take(a * r * c, &mut out.data);
    take(r * c, &mut out.flat);
    take(r * c, &mut out.dark);
    take(a, &mut out.theta_rad);
    out.n_angles = a;
    out.rows = r;
    out.cols = c;
    out.first_row = f;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// The paper's encodings

/// Bytes of an [`AccountingKey`].
pub const ACCOUNTING_KEY_BYTES: usize = 32;
/// First four bytes of every [`AccountingKey`].
pub const KEY_MAGIC: [u8; 4] = *b"PSMK";

/// Accounting fields carried in the Kafka key when the body has no envelope (the paper's encodings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountingKey {
    pub producer_id: u32,
    pub sequence: u64,
    pub intended_send_ns: u64,
    pub actual_send_ns: u64,
}

impl AccountingKey {
    /// `PSMK`, then little-endian producer id, sequence, intended and actual send time.
    pub fn to_bytes(&self) -> [u8; ACCOUNTING_KEY_BYTES] {
        let mut b = [0u8; ACCOUNTING_KEY_BYTES];
        b[0..4].copy_from_slice(&KEY_MAGIC);
        b[4..8].copy_from_slice(&self.producer_id.to_le_bytes());
        b[8..16].copy_from_slice(&self.sequence.to_le_bytes());
        b[16..24].copy_from_slice(&self.intended_send_ns.to_le_bytes());
        b[24..32].copy_from_slice(&self.actual_send_ns.to_le_bytes());
        b
    }

    /// Parse a key written by [`Self::to_bytes`]; any other key (another producer's) is an error.
    pub fn from_bytes(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != ACCOUNTING_KEY_BYTES || b[0..4] != KEY_MAGIC {
            return Err(DecodeError::BadKey { got: b.len() });
        }
        Ok(AccountingKey {
            producer_id: u32_at(b, 4),
            sequence: u64_at(b, 8),
            intended_send_ns: u64_at(b, 16),
            actual_send_ns: u64_at(b, 24),
        })
    }
}

/// The body encodings a message can have.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// The versioned binary envelope (default).
    Envelope,
    /// KMeans points as UTF-8 text `[[x, y, z], ...]` (the paper's form).
    PointsText,
    /// The whole HDF5 file's bytes.
    Hdf5Raw,
    /// The whole HDF5 file as lowercase hex (the paper's form).
    Hdf5Hex,
    /// A detector frame as ESS's FlatBuffers `ad00` array (what EPICS areaDetector's Kafka plugin sends); see
    /// [`super::ess`].
    Ad00,
}

impl Encoding {
    /// Tell the encodings apart by their first bytes; `None` when it is none of them.
    pub fn detect(body: &[u8]) -> Option<Encoding> {
        if body.starts_with(&MAGIC) {
            Some(Encoding::Envelope)
        } else if body.starts_with(&HDF5_SIGNATURE) {
            Some(Encoding::Hdf5Raw)
        } else if body.starts_with(b"894844460d0a1a0a") {
            Some(Encoding::Hdf5Hex)
        } else if super::ess::is_ad00(body) {
            Some(Encoding::Ad00)
        } else if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            Some(Encoding::PointsText)
        } else {
            None
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Envelope => "envelope",
            Encoding::PointsText => "points-text",
            Encoding::Hdf5Raw => "hdf5-raw",
            Encoding::Hdf5Hex => "hdf5-hex",
            Encoding::Ad00 => "ad00",
        })
    }
}

/// Write `points` (row-major, `dims` per point) as `[[x, y, z], [x, y, z]]` into `out` (cleared). Numbers use
/// the shortest form that reads back to the same f64 (Ryu, about 4x `format!`'s speed).
pub fn encode_points_text(points: &[f64], dims: usize, out: &mut Vec<u8>) {
    let mut num = ryu::Buffer::new();
    out.clear();
    out.push(b'[');
    for (i, p) in points.chunks_exact(dims).enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.push(b'[');
        for (j, v) in p.iter().enumerate() {
            if j > 0 {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(num.format(*v).as_bytes());
        }
        out.push(b']');
    }
    out.push(b']');
}

/// Parse `[[x, y, ...], ...]` into `out` (cleared); returns the dimension (0 for `[]`). Every point must have
/// the same number of coordinates.
pub fn parse_points_text(text: &[u8], out: &mut Vec<f64>) -> Result<usize, DecodeError> {
    out.clear();
    let bad = |at: usize, what: &str| DecodeError::BadText {
        at,
        what: what.to_string(),
    };
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < text.len() && text[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    if text.get(i) != Some(&b'[') {
        return Err(bad(i, "expected `[`"));
    }
    i += 1;
    skip_ws(&mut i);
    let mut dims: Option<usize> = None;
    if text.get(i) == Some(&b']') {
        i += 1;
    } else {
        loop {
            skip_ws(&mut i);
            if text.get(i) != Some(&b'[') {
                return Err(bad(i, "expected `[` opening a point"));
            }
            i += 1;
            let mut n = 0;
            loop {
                skip_ws(&mut i);
                let start = i;
                while i < text.len()
                    && matches!(text[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E' | b'a'..=b'z' | b'A'..=b'Z')
                {
                    i += 1;
                }
                let tok =
                    std::str::from_utf8(&text[start..i]).map_err(|_| bad(start, "not UTF-8"))?;
                let v: f64 = tok
                    .parse()
                    .map_err(|_| bad(start, &format!("`{tok}` is not a number")))?;
                out.push(v);
                n += 1;
                skip_ws(&mut i);
                match text.get(i) {
                    Some(b',') => i += 1,
                    Some(b']') => {
                        i += 1;
                        break;
                    }
                    _ => return Err(bad(i, "expected `,` or `]` in a point")),
                }
            }
            match dims {
                None => dims = Some(n),
                Some(d) if d != n => {
                    return Err(bad(
                        i,
                        &format!("point with {n} coordinates after points with {d}"),
                    ))
                }
                _ => {}
            }
            skip_ws(&mut i);
            match text.get(i) {
                Some(b',') => i += 1,
                Some(b']') => {
                    i += 1;
                    break;
                }
                _ => return Err(bad(i, "expected `,` or `]` after a point")),
            }
        }
    }
    skip_ws(&mut i);
    if i != text.len() {
        return Err(bad(i, "text after the closing `]`"));
    }
    Ok(dims.unwrap_or(0))
}

/// Lowercase hex of `data` into `out` (cleared).
pub fn encode_hex(data: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.clear();
    out.reserve(data.len() * 2);
    for &b in data {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

/// Bytes from hex (either case) into `out` (cleared).
pub fn decode_hex(text: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    fn nib(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    out.clear();
    if !text.len().is_multiple_of(2) {
        return Err(DecodeError::BadHex { at: text.len() - 1 });
    }
    out.reserve(text.len() / 2);
    for (i, pair) in text.chunks_exact(2).enumerate() {
        match (nib(pair[0]), nib(pair[1])) {
            (Some(h), Some(l)) => out.push(h << 4 | l),
            _ => return Err(DecodeError::BadHex { at: 2 * i }),
        }
    }
    Ok(())
}
