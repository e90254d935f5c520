//! Decoding every encoding a message can have into one view: the accounting fields ([`Meta`]) and the payload
//! ([`Payload`]), using buffers the [`Decoder`] owns and reuses.
//!
//! - MASS's envelope carries its accounting fields (producer id, sequence, intended and actual send time).
//! - The paper's encodings (points text, raw or hex HDF5) carry them in MASS's Kafka key.
//! - The same bodies from any other producer (an instrument's own, the original Pilot-Streaming MASS) have no such
//!   key: they are decoded and processed all the same, as *unaccounted* messages ([`Meta::id`] is `None`), with
//!   their latency taken from the Kafka message timestamp.
//!
//! Anything malformed, including degenerate shapes (points of zero dimensions, empty blocks), is a [`Rejected`]
//! with a short reason, never a panic or a stopped consumer.

use pilot_core::contract::frame::{self, Frame};
use pilot_core::contract::message::{
    self, decode_hex, parse_points_text, AccountingKey, Dtype, Encoding, PayloadKind, Projections,
};

/// Where a message's send time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendTime {
    /// MASS's intended and actual send times (ns).
    Mass { intended_ns: u64, actual_ns: u64 },
    /// The Kafka message timestamp (ms resolution), for messages without MASS's accounting.
    KafkaTimestamp { ns: u64 },
    /// Neither (a foreign message without a timestamp): no latency is recorded.
    Unknown,
}

impl SendTime {
    /// The time latency is measured from (MASS: intended, coordinated omission avoided).
    pub fn intended_ns(self) -> Option<u64> {
        match self {
            SendTime::Mass { intended_ns, .. } => Some(intended_ns),
            SendTime::KafkaTimestamp { ns } => Some(ns),
            SendTime::Unknown => None,
        }
    }

    /// When the message was really handed to the client.
    pub fn actual_ns(self) -> Option<u64> {
        match self {
            SendTime::Mass { actual_ns, .. } => Some(actual_ns),
            SendTime::KafkaTimestamp { ns } => Some(ns),
            SendTime::Unknown => None,
        }
    }
}

/// Accounting fields of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Producer id and sequence, when the message carries MASS's accounting (None: unaccounted).
    pub id: Option<(u32, u64)>,
    pub sent: SendTime,
    /// Bytes of the message body.
    pub bytes: usize,
}

/// A decoded payload, borrowing the decoder's buffers or the message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Payload<'a> {
    /// At least one point, `dims >= 1`, `values.len() == points * dims`.
    Points {
        values: &'a [f64],
        dims: usize,
    },
    Projections(&'a Projections),
    /// A whole APS HDF5 file.
    Hdf5File(&'a [u8]),
    Bytes {
        len: usize,
    },
    /// One detector frame (projection, flat or dark), its pixels borrowed from the message.
    Frame(Frame<'a>),
}

/// Why a message was rejected (a short category, and the detail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub reason: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

fn rejected(e: message::DecodeError) -> Rejected {
    Rejected {
        reason: e.kind(),
        detail: e.to_string(),
    }
}

fn degenerate(detail: String) -> Rejected {
    Rejected {
        reason: "degenerate shape",
        detail,
    }
}

/// Reusable decoding buffers.
#[derive(Debug, Default)]
pub struct Decoder {
    points: Vec<f64>,
    projections: Projections,
    bytes: Vec<u8>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decode one message: `key` is the Kafka key (MASS's accounting for the paper's encodings), `timestamp_ms`
    /// the Kafka message timestamp (the send time of messages without MASS's accounting).
    pub fn decode<'a>(
        &'a mut self,
        key: Option<&[u8]>,
        body: &'a [u8],
        timestamp_ms: Option<i64>,
    ) -> Result<(Meta, Payload<'a>), Rejected> {
        let enc = Encoding::detect(body).ok_or_else(|| Rejected {
            reason: "unrecognised encoding",
            detail: format!(
                "{} bytes starting {:02x?}",
                body.len(),
                &body[..body.len().min(8)]
            ),
        })?;
        if enc == Encoding::Envelope {
            let env = message::decode(body).map_err(rejected)?;
            let h = env.header;
            if h.sequence == u64::MAX {
                return Err(degenerate(
                    "sequence u64::MAX (reserved: no producer sends it)".into(),
                ));
            }
            let meta = Meta {
                id: Some((h.producer_id, h.sequence)),
                sent: SendTime::Mass {
                    intended_ns: h.intended_send_ns,
                    actual_ns: h.actual_send_ns,
                },
                bytes: body.len(),
            };
            let payload = match h.kind {
                PayloadKind::Points => {
                    if h.ndim != 2 {
                        return Err(Rejected {
                            reason: "shape mismatch",
                            detail: format!("points with shape {:?}", h.dims()),
                        });
                    }
                    if h.shape[0] == 0 || h.shape[1] == 0 {
                        return Err(degenerate(format!("points with shape {:?}", h.dims())));
                    }
                    let dims = h.shape[1] as usize;
                    match h.dtype {
                        Dtype::F64 => env.f64_into(&mut self.points).map_err(rejected)?,
                        Dtype::F32 => env.f32_as_f64_into(&mut self.points).map_err(rejected)?,
                        Dtype::U8 | Dtype::U16 => {
                            return Err(Rejected {
                                reason: "wrong dtype",
                                detail: format!("points of {:?}", h.dtype),
                            });
                        }
                    }
                    Payload::Points {
                        values: &self.points,
                        dims,
                    }
                }
                PayloadKind::Projections => {
                    message::projections_of(&env, &mut self.projections).map_err(rejected)?;
                    let p = &self.projections;
                    if p.n_angles == 0 || p.rows == 0 || p.cols == 0 {
                        return Err(degenerate(format!(
                            "projections of {} angles x {} rows x {} columns",
                            p.n_angles, p.rows, p.cols
                        )));
                    }
                    Payload::Projections(&self.projections)
                }
                PayloadKind::Hdf5File => Payload::Hdf5File(env.payload),
                PayloadKind::Bytes => Payload::Bytes {
                    len: env.payload.len(),
                },
                PayloadKind::Frame => Payload::Frame(frame::frame_of(&env).map_err(rejected)?),
            };
            return Ok((meta, payload));
        }
        // The paper's encodings: accounted when the key is MASS's, processed as unaccounted otherwise.
        let (id, sent) = match key.map(AccountingKey::from_bytes) {
            Some(Ok(k)) if k.sequence == u64::MAX => {
                return Err(degenerate(
                    "sequence u64::MAX in the accounting key (reserved: no producer sends it)"
                        .into(),
                ))
            }
            Some(Ok(k)) => (
                Some((k.producer_id, k.sequence)),
                SendTime::Mass {
                    intended_ns: k.intended_send_ns,
                    actual_ns: k.actual_send_ns,
                },
            ),
            _ => (
                None,
                match timestamp_ms {
                    Some(ms) if ms > 0 => SendTime::KafkaTimestamp {
                        ns: (ms as u64).saturating_mul(1_000_000),
                    },
                    _ => SendTime::Unknown,
                },
            ),
        };
        let meta = Meta {
            id,
            sent,
            bytes: body.len(),
        };
        let payload = match enc {
            Encoding::PointsText => {
                let dims = parse_points_text(body, &mut self.points).map_err(rejected)?;
                if dims == 0 || self.points.is_empty() {
                    return Err(Rejected {
                        reason: "malformed points text",
                        detail: "no points".into(),
                    });
                }
                Payload::Points {
                    values: &self.points,
                    dims,
                }
            }
            Encoding::Hdf5Raw => Payload::Hdf5File(body),
            Encoding::Hdf5Hex => {
                decode_hex(body, &mut self.bytes).map_err(rejected)?;
                Payload::Hdf5File(&self.bytes)
            }
            Encoding::Ad00 => {
                let bad = |e: pilot_core::contract::ess::EssError| Rejected {
                    reason: "malformed ad00 frame",
                    detail: e.to_string(),
                };
                let f = pilot_core::contract::ess::decode_ad00(body)
                    .map_err(bad)?
                    .frame(None)
                    .map_err(bad)?;
                Payload::Frame(Frame {
                    info: f.info,
                    rows: f.rows,
                    cols: f.cols,
                    dtype: f.dtype,
                    pixels: f.pixels,
                })
            }
            Encoding::Envelope => unreachable!("handled above"),
        };
        Ok((meta, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilot_core::contract::message::{
        encode_f64, encode_hex, encode_points_text, header, HDF5_SIGNATURE,
    };

    fn mass_key() -> [u8; 32] {
        AccountingKey {
            producer_id: 3,
            sequence: 9,
            intended_send_ns: 100,
            actual_send_ns: 105,
        }
        .to_bytes()
    }

    #[test]
    fn a_detector_frame_is_accounted_and_a_bad_one_rejected_with_its_reason() {
        use pilot_core::contract::frame::{encode_frame, frame_header, FrameInfo, FrameType};
        let mut d = Decoder::new();
        let info = FrameInfo {
            index: 4,
            angle_deg: 30.0,
            frame_type: FrameType::Projection,
            epoch: 1,
            first_row: 0,
            detector_rows: 1,
        };
        let mut msg = Vec::new();
        encode_frame(
            &frame_header(3, 9, 100, Dtype::U16, 1, 2),
            &info,
            &[1, 0, 2, 0],
            &mut msg,
        );
        let (m, p) = d.decode(None, &msg, Some(1)).unwrap();
        assert_eq!(m.id, Some((3, 9)));
        let Payload::Frame(f) = p else {
            panic!("{p:?}")
        };
        assert_eq!((f.info, f.rows, f.cols), (info, 1, 2));
        // A frame type no detector sends.
        let at = pilot_core::contract::message::HEADER_BYTES + 16;
        msg[at] = 7;
        let r = d.decode(None, &msg, Some(1)).unwrap_err();
        assert_eq!(r.reason, "malformed frame");
        assert!(r.detail.contains("frame type 7"), "{}", r.detail);
    }

    #[test]
    fn every_encoding_decodes_to_the_same_view() {
        let mut d = Decoder::new();
        let pts = [1.0, 2.0, 3.0, 4.0];
        let mut h = header(PayloadKind::Points, Dtype::F64, 3, 9, &[2, 2]);
        h.intended_send_ns = 100;
        h.actual_send_ns = 105;
        let mut env = Vec::new();
        encode_f64(&h, &pts, &mut env);
        let (m, p) = d.decode(None, &env, Some(1)).unwrap();
        assert_eq!(m.id, Some((3, 9)));
        assert_eq!(
            m.sent,
            SendTime::Mass {
                intended_ns: 100,
                actual_ns: 105
            }
        );
        assert_eq!(
            p,
            Payload::Points {
                values: &pts,
                dims: 2
            }
        );

        let key = mass_key();
        let mut text = Vec::new();
        encode_points_text(&pts, 2, &mut text);
        let (m2, p2) = d.decode(Some(&key), &text, None).unwrap();
        assert_eq!(m2.id, Some((3, 9)));
        assert_eq!(
            p2,
            Payload::Points {
                values: &pts,
                dims: 2
            }
        );

        let mut file = HDF5_SIGNATURE.to_vec();
        file.extend_from_slice(b"rest of file");
        let mut hex = Vec::new();
        encode_hex(&file, &mut hex);
        assert_eq!(
            d.decode(Some(&key), &hex, None).unwrap().1,
            Payload::Hdf5File(&file)
        );
        assert_eq!(
            d.decode(Some(&key), &file, None).unwrap().1,
            Payload::Hdf5File(&file)
        );
    }

    #[test]
    fn messages_from_other_producers_are_unaccounted_with_the_kafka_timestamp() {
        let mut d = Decoder::new();
        for key in [None, Some(&b"sensor-7"[..]), Some(&[0u8; 28][..])] {
            let (m, p) = d
                .decode(
                    key,
                    b"  [[1.0, 2.0, 3.0], [4, 5, 6]]",
                    Some(1_700_000_000_123),
                )
                .unwrap();
            assert_eq!(m.id, None);
            assert_eq!(
                m.sent,
                SendTime::KafkaTimestamp {
                    ns: 1_700_000_000_123_000_000
                }
            );
            assert_eq!(
                p,
                Payload::Points {
                    values: &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                    dims: 3
                }
            );
        }
        let (m, _) = d.decode(None, &HDF5_SIGNATURE, None).unwrap();
        assert_eq!((m.id, m.sent), (None, SendTime::Unknown));
    }

    #[test]
    fn f32_points_are_widened_into_the_same_view() {
        let mut d = Decoder::new();
        let h = header(PayloadKind::Points, Dtype::F32, 1, 2, &[2, 2]);
        let mut env = Vec::new();
        pilot_core::contract::message::encode_f32(&h, &[0.5, 1.5, -2.0, 4.0], &mut env);
        let (_, p) = d.decode(None, &env, None).unwrap();
        assert_eq!(
            p,
            Payload::Points {
                values: &[0.5, 1.5, -2.0, 4.0],
                dims: 2
            }
        );
    }

    #[test]
    fn malformed_and_degenerate_messages_are_rejected_with_reasons() {
        let mut d = Decoder::new();
        assert_eq!(
            d.decode(None, b"garbage", None).unwrap_err().reason,
            "unrecognised encoding"
        );
        assert_eq!(
            d.decode(None, b"PSMA\x01", None).unwrap_err().reason,
            "truncated"
        );
        let key = mass_key();
        assert_eq!(
            d.decode(Some(&key), b"[[1.0, x]]", None)
                .unwrap_err()
                .reason,
            "malformed points text"
        );
        assert_eq!(
            d.decode(Some(&key), b"[]", None).unwrap_err().reason,
            "malformed points text"
        );
        for shape in [[5u32, 0], [0, 3]] {
            let h = header(PayloadKind::Points, Dtype::F64, 1, 0, &shape);
            let mut env = Vec::new();
            encode_f64(&h, &[], &mut env);
            assert_eq!(
                d.decode(None, &env, None).unwrap_err().reason,
                "degenerate shape",
                "{shape:?}"
            );
        }
    }
}
