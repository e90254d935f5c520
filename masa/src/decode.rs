//! Decoding every encoding MASS sends into one view: the accounting fields ([`Meta`]) and the payload
//! ([`Payload`]), using buffers the [`Decoder`] owns and reuses. Envelopes carry their own accounting fields;
//! the paper's encodings (points text, raw or hex HDF5) carry them in the Kafka key. Anything malformed is a
//! [`Rejected`] with a short reason, never a panic or a stopped consumer.

use pilot_core::message::{
    self, decode_hex, parse_points_text, AccountingKey, Dtype, Encoding, PayloadKind, Projections,
};

/// Accounting fields of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub producer_id: u32,
    pub sequence: u64,
    pub intended_send_ns: u64,
    pub actual_send_ns: u64,
    /// Bytes of the message body.
    pub bytes: usize,
}

/// A decoded payload, borrowing the decoder's buffers or the message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Payload<'a> {
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

    /// Decode one message (`key` is the Kafka key, needed for the paper's encodings).
    pub fn decode<'a>(
        &'a mut self,
        key: Option<&[u8]>,
        body: &'a [u8],
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
            let meta = Meta {
                producer_id: h.producer_id,
                sequence: h.sequence,
                intended_send_ns: h.intended_send_ns,
                actual_send_ns: h.actual_send_ns,
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
                    let dims = h.shape[1] as usize;
                    match h.dtype {
                        Dtype::F64 => env.f64_into(&mut self.points).map_err(rejected)?,
                        Dtype::F32 => env.f32_as_f64_into(&mut self.points).map_err(rejected)?,
                        Dtype::U8 => {
                            return Err(Rejected {
                                reason: "wrong dtype",
                                detail: "points of u8".into(),
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
                    Payload::Projections(&self.projections)
                }
                PayloadKind::Hdf5File => Payload::Hdf5File(env.payload),
                PayloadKind::Bytes => Payload::Bytes {
                    len: env.payload.len(),
                },
            };
            return Ok((meta, payload));
        }
        let key = AccountingKey::from_bytes(key.unwrap_or_default()).map_err(rejected)?;
        let meta = Meta {
            producer_id: key.producer_id,
            sequence: key.sequence,
            intended_send_ns: key.intended_send_ns,
            actual_send_ns: key.actual_send_ns,
            bytes: body.len(),
        };
        let payload = match enc {
            Encoding::PointsText => {
                let dims = parse_points_text(body, &mut self.points).map_err(rejected)?;
                if dims == 0 {
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
            Encoding::Envelope => unreachable!("handled above"),
        };
        Ok((meta, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilot_core::message::{encode_f64, encode_hex, encode_points_text, header, HDF5_SIGNATURE};

    #[test]
    fn every_encoding_decodes_to_the_same_view() {
        let mut d = Decoder::new();
        let pts = [1.0, 2.0, 3.0, 4.0];
        let mut h = header(PayloadKind::Points, Dtype::F64, 3, 9, &[2, 2]);
        h.intended_send_ns = 100;
        h.actual_send_ns = 105;
        let mut env = Vec::new();
        encode_f64(&h, &pts, &mut env);
        let (m, p) = d.decode(None, &env).unwrap();
        assert_eq!(
            (
                m.producer_id,
                m.sequence,
                m.intended_send_ns,
                m.actual_send_ns
            ),
            (3, 9, 100, 105)
        );
        assert_eq!(
            p,
            Payload::Points {
                values: &pts,
                dims: 2
            }
        );

        let key = AccountingKey {
            producer_id: 3,
            sequence: 9,
            intended_send_ns: 100,
            actual_send_ns: 105,
        }
        .to_bytes();
        let mut text = Vec::new();
        encode_points_text(&pts, 2, &mut text);
        let (m2, p2) = d.decode(Some(&key), &text).unwrap();
        assert_eq!(m2.sequence, 9);
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
            d.decode(Some(&key), &hex).unwrap().1,
            Payload::Hdf5File(&file)
        );
        assert_eq!(
            d.decode(Some(&key), &file).unwrap().1,
            Payload::Hdf5File(&file)
        );
    }

    #[test]
    fn f32_points_are_widened_into_the_same_view() {
        let mut d = Decoder::new();
        let h = header(PayloadKind::Points, Dtype::F32, 1, 2, &[2, 2]);
        let mut env = Vec::new();
        pilot_core::message::encode_f32(&h, &[0.5, 1.5, -2.0, 4.0], &mut env);
        let (_, p) = d.decode(None, &env).unwrap();
        assert_eq!(
            p,
            Payload::Points {
                values: &[0.5, 1.5, -2.0, 4.0],
                dims: 2
            }
        );
    }

    #[test]
    fn malformed_messages_are_rejected_with_reasons() {
        let mut d = Decoder::new();
        assert_eq!(
            d.decode(None, b"garbage").unwrap_err().reason,
            "unrecognised encoding"
        );
        assert_eq!(d.decode(None, b"PSMA\x01").unwrap_err().reason, "truncated");
        assert_eq!(
            d.decode(None, b"[[1.0, 2.0]]").unwrap_err().reason,
            "malformed accounting key"
        );
        let key = AccountingKey {
            producer_id: 0,
            sequence: 0,
            intended_send_ns: 0,
            actual_send_ns: 0,
        }
        .to_bytes();
        assert_eq!(
            d.decode(Some(&key), b"[[1.0, x]]").unwrap_err().reason,
            "malformed points text"
        );
        assert_eq!(
            d.decode(Some(&key), b"[]").unwrap_err().reason,
            "malformed points text"
        );
    }
}
