//! The wire format: round trips for every payload kind and encoding, typed errors for malformed input, and
//! property tests that decoding arbitrary bytes never panics.

use pilot_core::contract::message::*;
use proptest::prelude::*;

fn points_header(n: u32, d: u32) -> Header {
    let mut h = header(PayloadKind::Points, Dtype::F64, 7, 42, &[n, d]);
    h.intended_send_ns = 1_700_000_000_000_000_000;
    h.actual_send_ns = 1_700_000_000_000_000_123;
    h
}

#[test]
fn points_round_trip_with_actual_time_patched_in_place() {
    let data: Vec<f64> = (0..30).map(|i| i as f64 * 0.5 - 3.0).collect();
    let mut buf = Vec::new();
    encode_f64(&points_header(10, 3), &data, &mut buf);
    assert_eq!(buf.len(), HEADER_BYTES + 240);
    set_actual_send_ns(&mut buf, 99);
    set_sequence(&mut buf, 43, 1234);
    let env = decode(&buf).unwrap();
    assert_eq!(env.header.kind, PayloadKind::Points);
    assert_eq!(env.header.producer_id, 7);
    assert_eq!(env.header.sequence, 43);
    assert_eq!(env.header.intended_send_ns, 1234);
    assert_eq!(env.header.actual_send_ns, 99);
    assert_eq!(env.header.dims(), &[10, 3]);
    let mut back = Vec::new();
    env.f64_into(&mut back).unwrap();
    assert_eq!(back, data);
    let mut wrong = Vec::new();
    assert!(matches!(
        env.f32_into(&mut wrong),
        Err(DecodeError::WrongDtype { .. })
    ));
}

#[test]
fn bytes_and_hdf5_kinds_round_trip() {
    for kind in [PayloadKind::Bytes, PayloadKind::Hdf5File] {
        let data: Vec<u8> = (0..=255).collect();
        let mut buf = Vec::new();
        encode_bytes(&header(kind, Dtype::U8, 1, 0, &[256]), &data, &mut buf);
        let env = decode(&buf).unwrap();
        assert_eq!(env.header.kind, kind);
        assert_eq!(env.payload, &data[..]);
    }
}

#[test]
fn projections_round_trip() {
    let ph = ProjectionsHeader {
        n_angles: 3,
        rows: 2,
        cols: 4,
        first_row: 5,
    };
    let data: Vec<f32> = (0..24).map(|i| i as f32).collect();
    let flat = vec![2.0f32; 8];
    let dark = vec![0.5f32; 8];
    let theta = vec![0.0f32, 1.0, 2.0];
    let mut buf = Vec::new();
    encode_projections(&ph, 3, 9, &data, &flat, &dark, &theta, &mut buf);
    let env = decode(&buf).unwrap();
    assert_eq!(env.header.kind, PayloadKind::Projections);
    let mut p = Projections::default();
    projections_of(&env, &mut p).unwrap();
    assert_eq!((p.n_angles, p.rows, p.cols, p.first_row), (3, 2, 4, 5));
    assert_eq!(p.data, data);
    assert_eq!(p.flat, flat);
    assert_eq!(p.dark, dark);
    assert_eq!(p.theta_rad, theta);
}

#[test]
fn malformed_envelopes_get_typed_errors() {
    let mut good = Vec::new();
    encode_f64(&points_header(2, 3), &[1.0; 6], &mut good);
    assert!(decode(&good).is_ok());

    assert!(matches!(
        decode(&good[..10]),
        Err(DecodeError::Truncated { need: 64, got: 10 })
    ));
    assert!(matches!(
        decode(&good[..good.len() - 1]),
        Err(DecodeError::Truncated { .. })
    ));
    let mut extra = good.clone();
    extra.push(0);
    assert_eq!(decode(&extra), Err(DecodeError::TrailingBytes { extra: 1 }));

    let mut m = good.clone();
    m[0] = b'X';
    assert!(matches!(decode(&m), Err(DecodeError::BadMagic { .. })));
    let mut m = good.clone();
    m[4] = 2;
    assert_eq!(
        decode(&m),
        Err(DecodeError::UnsupportedVersion { found: 2 })
    );
    let mut m = good.clone();
    m[6] = 99;
    assert_eq!(decode(&m), Err(DecodeError::UnknownKind(99)));
    let mut m = good.clone();
    m[7] = 0;
    assert_eq!(decode(&m), Err(DecodeError::UnknownDtype(0)));
    let mut m = good.clone();
    m[36] = 5;
    assert_eq!(decode(&m), Err(DecodeError::TooManyDims(5)));
    let mut m = good.clone();
    m[40..44].copy_from_slice(&3u32.to_le_bytes()); // shape 3x3 of f64 = 72 bytes, 48 declared
    assert!(matches!(
        decode(&m),
        Err(DecodeError::ShapeMismatch {
            implied: 72,
            declared: 48,
            ..
        })
    ));
    let mut m = good.clone();
    m[56..64].copy_from_slice(&(MAX_PAYLOAD_BYTES + 1).to_le_bytes());
    assert!(matches!(decode(&m), Err(DecodeError::Oversized { .. })));
    // A shape whose element count overflows is a mismatch, not a panic.
    let mut m = good.clone();
    for i in 0..4 {
        m[40 + 4 * i..44 + 4 * i].copy_from_slice(&u32::MAX.to_le_bytes());
    }
    m[36] = 4;
    assert!(matches!(decode(&m), Err(DecodeError::ShapeMismatch { .. })));
}

#[test]
fn points_text_matches_the_papers_form_and_round_trips() {
    let pts = [1.5, -2.0, 3.25e-3, 0.1, 0.2, 0.30000000000000004];
    let mut text = Vec::new();
    encode_points_text(&pts, 3, &mut text);
    assert_eq!(
        std::str::from_utf8(&text).unwrap(),
        "[[1.5, -2.0, 0.00325], [0.1, 0.2, 0.30000000000000004]]"
    );
    let mut back = Vec::new();
    assert_eq!(parse_points_text(&text, &mut back).unwrap(), 3);
    assert_eq!(back, pts);
    // Python's str() of a numpy-derived list reads too (exponents, spacing).
    assert_eq!(
        parse_points_text(b" [[1e-05,2.0E+3] ,[ -0.5 , 4]] ", &mut back).unwrap(),
        2
    );
    assert_eq!(back, [1e-5, 2000.0, -0.5, 4.0]);
    assert_eq!(parse_points_text(b"[]", &mut back).unwrap(), 0);
    assert!(back.is_empty());
}

#[test]
fn malformed_points_text_is_rejected_with_a_position() {
    let mut out = Vec::new();
    for (bad, at) in [
        (&b"[[1, 2], [3]]"[..], 12),
        (b"[[1, 2]", 7),
        (b"[[1, x]]", 5),
        (b"[[1, 2]] trailing", 9),
        (b"{1, 2}", 0),
    ] {
        match parse_points_text(bad, &mut out) {
            Err(DecodeError::BadText { at: got, .. }) => {
                assert_eq!(got, at, "{}", String::from_utf8_lossy(bad))
            }
            other => panic!("{}: {other:?}", String::from_utf8_lossy(bad)),
        }
    }
}

#[test]
fn hex_round_trips_and_rejects_garbage() {
    let data = HDF5_SIGNATURE.to_vec();
    let mut hex = Vec::new();
    encode_hex(&data, &mut hex);
    assert_eq!(&hex, b"894844460d0a1a0a");
    assert_eq!(Encoding::detect(&hex), Some(Encoding::Hdf5Hex));
    let mut back = Vec::new();
    decode_hex(&hex, &mut back).unwrap();
    assert_eq!(back, data);
    decode_hex(b"89ABcd", &mut back).unwrap();
    assert_eq!(back, [0x89, 0xab, 0xcd]);
    assert_eq!(
        decode_hex(b"8g", &mut back),
        Err(DecodeError::BadHex { at: 0 })
    );
    assert_eq!(
        decode_hex(b"123", &mut back),
        Err(DecodeError::BadHex { at: 2 })
    );
}

#[test]
fn encodings_are_detected_and_keys_round_trip() {
    let mut env = Vec::new();
    encode_f64(&points_header(1, 1), &[0.0], &mut env);
    assert_eq!(Encoding::detect(&env), Some(Encoding::Envelope));
    assert_eq!(Encoding::detect(&HDF5_SIGNATURE), Some(Encoding::Hdf5Raw));
    assert_eq!(Encoding::detect(b"[[1.0]]"), Some(Encoding::PointsText));
    assert_eq!(Encoding::detect(b"garbage"), None);
    let k = AccountingKey {
        producer_id: 3,
        sequence: 1 << 40,
        intended_send_ns: 5,
        actual_send_ns: 6,
    };
    assert_eq!(AccountingKey::from_bytes(&k.to_bytes()), Ok(k));
    assert_eq!(
        AccountingKey::from_bytes(&[0; 5]),
        Err(DecodeError::BadKey { got: 5 })
    );
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(&bytes);
        let mut out = Vec::new();
        let _ = parse_points_text(&bytes, &mut out);
        let mut raw = Vec::new();
        let _ = decode_hex(&bytes, &mut raw);
    }

    #[test]
    fn corrupting_a_valid_header_never_panics(pos in 0usize..64, val in any::<u8>(), n in 0u32..20, d in 1u32..5) {
        let data = vec![0.25f64; (n * d) as usize];
        let mut buf = Vec::new();
        encode_f64(&points_header(n, d), &data, &mut buf);
        buf[pos] = val;
        if let Ok(env) = decode(&buf) {
            let mut p = Projections::default();
            let _ = projections_of(&env, &mut p);
            prop_assert_eq!(env.payload.len() as u64, env.header.payload_bytes());
        }
    }

    #[test]
    fn f64_and_text_round_trips(v in proptest::collection::vec(-1e12f64..1e12, 0..60), d in 1usize..4) {
        let n = v.len() / d;
        let v = &v[..n * d];
        let mut buf = Vec::new();
        encode_f64(&points_header(n as u32, d as u32), v, &mut buf);
        let mut back = Vec::new();
        decode(&buf).unwrap().f64_into(&mut back).unwrap();
        prop_assert_eq!(&back[..], v);
        let mut text = Vec::new();
        encode_points_text(v, d, &mut text);
        let dims = parse_points_text(&text, &mut back).unwrap();
        prop_assert_eq!(&back[..], v);
        prop_assert_eq!(dims, if n == 0 { 0 } else { d });
    }
}
