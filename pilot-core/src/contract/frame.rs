//! Detector frames in the project's envelope: one message per frame, as a beamline detector streams them.
//!
//! An envelope of kind [`PayloadKind::Frame`] has `ndim = 2`, shape `[rows, cols]`, the pixels' dtype (`u16` is
//! what detectors send; `u8` and `f32` are accepted too) and a payload of a 32-byte frame header followed by
//! `rows x cols` little-endian pixels, row-major:
//!
//! | payload offset | bytes | field |
//! |---|---|---|
//! | 0 | 8 | frame index (u64): the detector's acquisition counter, flats and darks included |
//! | 8 | 8 | rotation angle in degrees (f64; the stage's angle, any finite value; 0 for flats and darks) |
//! | 16 | 1 | frame type ([`FrameType`]: 0 projection, 1 flat, 2 dark) |
//! | 17 | 1 | reserved, zero |
//! | 18 | 2 | flat/dark epoch (u16): which set of flats and darks the frame belongs with, raised on every re-take |
//! | 20 | 4 | first detector row of this frame's rows (a row band; 0 for a whole frame) |
//! | 24 | 4 | detector rows in all (`first_row + rows <= detector_rows`) |
//! | 28 | 4 | reserved, zero |
//!
//! The envelope's producer id and sequence number do the accounting as for every other message. [`decode_frame`]
//! checks everything and returns a [`DecodeError`], never panics.

use super::message::{
    self, DecodeError, Dtype, Envelope, Header, PayloadKind, HEADER_BYTES, MAX_PAYLOAD_BYTES,
};

/// Bytes of the frame header at the start of a frame payload.
pub const FRAME_HEADER_BYTES: usize = 32;

/// What a detector frame shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[repr(u8)]
pub enum FrameType {
    /// The sample at the frame's angle.
    Projection = 0,
    /// The beam without the sample (flat field, "white").
    Flat = 1,
    /// The detector without the beam (dark field).
    Dark = 2,
}

impl FrameType {
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Projection,
            1 => Self::Flat,
            2 => Self::Dark,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FrameType::Projection => "projection",
            FrameType::Flat => "flat",
            FrameType::Dark => "dark",
        }
    }
}

/// A frame's own fields (the envelope carries rows, cols and dtype).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameInfo {
    pub index: u64,
    pub angle_deg: f64,
    pub frame_type: FrameType,
    pub epoch: u16,
    pub first_row: u32,
    pub detector_rows: u32,
}

/// A decoded frame borrowing the message's pixel bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame<'a> {
    pub info: FrameInfo,
    pub rows: u32,
    pub cols: u32,
    pub dtype: Dtype,
    /// `rows x cols` little-endian pixels of `dtype`, row-major (not necessarily aligned).
    pub pixels: &'a [u8],
}

impl Frame<'_> {
    /// The pixels as f32 into `out` (cleared first; capacity reused).
    pub fn pixels_f32_into(&self, out: &mut Vec<f32>) {
        out.clear();
        match self.dtype {
            Dtype::U16 => out.extend(
                self.pixels
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]) as f32),
            ),
            Dtype::U8 => out.extend(self.pixels.iter().map(|&b| b as f32)),
            Dtype::F32 => out.extend(
                self.pixels
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            ),
            Dtype::F64 => out.extend(
                self.pixels
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32),
            ),
        }
    }
}

/// The envelope header of a frame message (rows x cols of `dtype`).
pub fn frame_header(
    producer_id: u32,
    sequence: u64,
    intended_send_ns: u64,
    dtype: Dtype,
    rows: u32,
    cols: u32,
) -> Header {
    Header {
        kind: PayloadKind::Frame,
        dtype,
        producer_id,
        sequence,
        intended_send_ns,
        actual_send_ns: 0,
        ndim: 2,
        shape: [rows, cols, 0, 0],
    }
}

/// Encode a frame: envelope header, frame header, then `pixels` (`rows x cols` elements of the header's dtype,
/// already little-endian bytes) into `out` (cleared; capacity reused).
pub fn encode_frame(header: &Header, info: &FrameInfo, pixels: &[u8], out: &mut Vec<u8>) {
    debug_assert_eq!(header.kind, PayloadKind::Frame);
    debug_assert_eq!(
        header.payload_bytes(),
        (FRAME_HEADER_BYTES + pixels.len()) as u64
    );
    out.clear();
    out.resize(HEADER_BYTES + FRAME_HEADER_BYTES, 0);
    message::write_header(header, out);
    let f = &mut out[HEADER_BYTES..];
    f[0..8].copy_from_slice(&info.index.to_le_bytes());
    f[8..16].copy_from_slice(&info.angle_deg.to_le_bytes());
    f[16] = info.frame_type as u8;
    f[18..20].copy_from_slice(&info.epoch.to_le_bytes());
    f[20..24].copy_from_slice(&info.first_row.to_le_bytes());
    f[24..28].copy_from_slice(&info.detector_rows.to_le_bytes());
    out.extend_from_slice(pixels);
}

/// The frame in a decoded envelope of kind `frame`: its header checked (known type, finite angle, rows inside the
/// detector, at least one pixel, a pixel dtype).
pub fn frame_of<'a>(env: &Envelope<'a>) -> Result<Frame<'a>, DecodeError> {
    let h = &env.header;
    let bad = |what: String| DecodeError::BadFrame(what);
    if h.kind != PayloadKind::Frame {
        return Err(bad(format!("a {:?} message is not a frame", h.kind)));
    }
    if h.dtype == Dtype::F64 {
        return Err(bad("f64 pixels (frames are u16, u8 or f32)".into()));
    }
    let (rows, cols) = (h.shape[0], h.shape[1]);
    if h.ndim != 2 || rows == 0 || cols == 0 {
        return Err(bad(format!(
            "shape {:?} (a frame is rows x cols, both >= 1)",
            h.dims()
        )));
    }
    let p = env.payload;
    if p.len() < FRAME_HEADER_BYTES {
        return Err(bad(format!("{} payload bytes, no frame header", p.len())));
    }
    let u32_at = |o: usize| u32::from_le_bytes(p[o..o + 4].try_into().expect("4 bytes"));
    let frame_type =
        FrameType::from_u8(p[16]).ok_or_else(|| bad(format!("frame type {}", p[16])))?;
    let angle_deg = f64::from_le_bytes(p[8..16].try_into().expect("8 bytes"));
    if !angle_deg.is_finite() {
        return Err(bad(format!("angle {angle_deg}")));
    }
    let info = FrameInfo {
        index: u64::from_le_bytes(p[0..8].try_into().expect("8 bytes")),
        angle_deg,
        frame_type,
        epoch: u16::from_le_bytes([p[18], p[19]]),
        first_row: u32_at(20),
        detector_rows: u32_at(24),
    };
    if (info.first_row as u64) + rows as u64 > info.detector_rows as u64 {
        return Err(bad(format!(
            "rows {}..{} outside a detector of {} rows",
            info.first_row,
            info.first_row as u64 + rows as u64,
            info.detector_rows
        )));
    }
    Ok(Frame {
        info,
        rows,
        cols,
        dtype: h.dtype,
        pixels: &p[FRAME_HEADER_BYTES..],
    })
}

/// Decode a frame message: the envelope ([`message::decode`]), then the frame ([`frame_of`]).
pub fn decode_frame(bytes: &[u8]) -> Result<Frame<'_>, DecodeError> {
    frame_of(&message::decode(bytes)?)
}

/// Payload bytes of a frame of `rows x cols` pixels of `dtype` (None past [`MAX_PAYLOAD_BYTES`]).
pub fn frame_payload_bytes(rows: u32, cols: u32, dtype: Dtype) -> Option<u64> {
    (rows as u64)
        .checked_mul(cols as u64)?
        .checked_mul(dtype.size() as u64)?
        .checked_add(FRAME_HEADER_BYTES as u64)
        .filter(|&b| b <= MAX_PAYLOAD_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(frame_type: FrameType) -> FrameInfo {
        FrameInfo {
            index: 7,
            angle_deg: 111.25,
            frame_type,
            epoch: 2,
            first_row: 4,
            detector_rows: 10,
        }
    }

    fn encoded(rows: u32, cols: u32, pixels: &[u16]) -> Vec<u8> {
        let h = frame_header(3, 9, 1_000, Dtype::U16, rows, cols);
        let bytes: Vec<u8> = pixels.iter().flat_map(|p| p.to_le_bytes()).collect();
        let mut out = Vec::new();
        encode_frame(&h, &info(FrameType::Projection), &bytes, &mut out);
        out
    }

    #[test]
    fn a_frame_round_trips_with_its_fields_and_pixels() {
        let msg = encoded(2, 3, &[0, 1, 2, 65535, 4, 5]);
        assert_eq!(msg.len(), HEADER_BYTES + FRAME_HEADER_BYTES + 12);
        let env = message::decode(&msg).unwrap();
        assert_eq!((env.header.producer_id, env.header.sequence), (3, 9));
        let f = frame_of(&env).unwrap();
        assert_eq!(f.info, info(FrameType::Projection));
        assert_eq!((f.rows, f.cols, f.dtype), (2, 3, Dtype::U16));
        let mut px = Vec::new();
        f.pixels_f32_into(&mut px);
        assert_eq!(px, vec![0.0, 1.0, 2.0, 65535.0, 4.0, 5.0]);
        assert_eq!(frame_payload_bytes(2, 3, Dtype::U16), Some(44));
        assert_eq!(frame_payload_bytes(u32::MAX, u32::MAX, Dtype::F32), None);
    }

    #[test]
    fn bad_frame_headers_are_named() {
        let good = encoded(2, 3, &[0; 6]);
        let at = HEADER_BYTES;
        let mutate = |o: usize, bytes: &[u8]| {
            let mut m = good.clone();
            m[at + o..at + o + bytes.len()].copy_from_slice(bytes);
            decode_frame(&m).unwrap_err().to_string()
        };
        assert!(mutate(16, &[9]).contains("frame type 9"));
        assert!(mutate(8, &f64::NAN.to_le_bytes()).contains("angle NaN"));
        assert!(mutate(24, &5u32.to_le_bytes()).contains("outside a detector of 5 rows"));
        assert!(mutate(20, &u32::MAX.to_le_bytes()).contains("outside"));
        // Truncated and padded messages fail in the envelope.
        assert!(decode_frame(&good[..good.len() - 1]).is_err());
        let mut long = good.clone();
        long.push(0);
        assert!(decode_frame(&long).is_err());
        // A frame of zero rows, or of f64 pixels.
        let h = frame_header(0, 0, 0, Dtype::U16, 0, 3);
        let mut m = Vec::new();
        encode_frame(&h, &info(FrameType::Dark), &[], &mut m);
        assert!(decode_frame(&m).unwrap_err().to_string().contains("shape"));
        let h = frame_header(0, 0, 0, Dtype::F64, 1, 1);
        encode_frame(&h, &info(FrameType::Dark), &[0; 8], &mut m);
        assert!(decode_frame(&m).unwrap_err().to_string().contains("f64"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_and_mutated_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            flips in proptest::collection::vec((0usize..200, proptest::num::u8::ANY), 0..6),
        ) {
            let _ = decode_frame(&bytes);
            let mut m = encoded(2, 3, &[1, 2, 3, 4, 5, 6]);
            for (at, v) in flips {
                let n = m.len();
                m[at % n] = v;
            }
            if let Ok(f) = decode_frame(&m) {
                let mut px = Vec::new();
                f.pixels_f32_into(&mut px);
                proptest::prop_assert_eq!(px.len(), (f.rows * f.cols) as usize);
                proptest::prop_assert!(f.info.first_row as u64 + f.rows as u64 <= f.info.detector_rows as u64);
            }
        }
    }
}
