//! Hostile input through the consumer's per-message path ([`MessageHandler`]: decode, accounting, latency,
//! processor, windows) for every processor: arbitrary bytes, arbitrary keys, and valid messages of every encoding
//! mutated (bytes flipped, truncated, extended, header fields overwritten). Whatever arrives: no panic, the handler
//! keeps taking messages, and the accounting adds up (every message fed is rejected with a reason, a duplicate,
//! received, or unaccounted). Regressions: a degenerate first message must not change the KMeans model.

use std::sync::atomic::AtomicU64;

use masa::config::{ProcessorPlan, RawConfig, Settings};
use masa::consumer::{make_processor, Handled, MessageHandler, Shared};
use masa::processor::{KMeansConfig, KMeansProcessor, Processor};
use masa::window::WindowPolicy;
use pilot_core::contract::message::{
    encode_bytes, encode_f32, encode_f64, encode_hex, encode_points_text, encode_projections,
    header, AccountingKey, Dtype, PayloadKind, ProjectionsHeader,
};
use proptest::prelude::*;

/// One valid message of every kind MASA reads, small enough to process quickly.
fn seeds() -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    let key = |seq: u64| {
        Some(
            AccountingKey {
                producer_id: 5,
                sequence: seq,
                intended_send_ns: 1,
                actual_send_ns: 2,
            }
            .to_bytes()
            .to_vec(),
        )
    };
    let mut out = Vec::new();
    let pts: Vec<f64> = (0..150).map(|i| (i % 17) as f64 * 0.5 - 3.0).collect();
    let mut b = Vec::new();
    encode_f64(
        &header(PayloadKind::Points, Dtype::F64, 1, 0, &[50, 3]),
        &pts,
        &mut b,
    );
    out.push((None, b));
    let mut b = Vec::new();
    let p32: Vec<f32> = pts.iter().map(|&v| v as f32).collect();
    encode_f32(
        &header(PayloadKind::Points, Dtype::F32, 2, 0, &[50, 3]),
        &p32,
        &mut b,
    );
    out.push((None, b));
    let mut t = Vec::new();
    encode_points_text(&pts, 3, &mut t);
    out.push((key(0), t.clone()));
    out.push((None, t));
    // A small scan, whole file (raw, hex, envelope) and as a projections block.
    let s = mass::phantom::scan(&mass::phantom::ScanParams {
        angles: 12,
        rows: 2,
        cols: 24,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.h5");
    s.scan.write(&f).unwrap();
    let file = std::fs::read(&f).unwrap();
    out.push((key(1), file.clone()));
    let mut hex = Vec::new();
    encode_hex(&file, &mut hex);
    out.push((None, hex));
    let mut b = Vec::new();
    encode_bytes(
        &header(PayloadKind::Hdf5File, Dtype::U8, 3, 0, &[file.len() as u32]),
        &file,
        &mut b,
    );
    out.push((None, b));
    let fields = s.scan.fields(None);
    let theta: Vec<f32> = s
        .scan
        .theta_rad(pilot_core::contract::aps::ThetaUnits::Auto)
        .unwrap()
        .iter()
        .map(|&t| t as f32)
        .collect();
    let mut b = Vec::new();
    encode_projections(
        &ProjectionsHeader {
            n_angles: 12,
            rows: 2,
            cols: 24,
            first_row: 0,
        },
        4,
        0,
        &s.scan.data.values,
        &fields.flat,
        &fields.dark,
        &theta,
        &mut b,
    );
    out.push((None, b));
    let mut b = Vec::new();
    encode_bytes(
        &header(PayloadKind::Bytes, Dtype::U8, 6, 0, &[40]),
        &[7u8; 40],
        &mut b,
    );
    out.push((None, b));
    out.extend(frame_seeds());
    out
}

/// How many of the seeds are detector frames (a dark, a flat, three projections, one as ad00).
const FRAME_SEEDS: usize = 6;

/// Detector frames from MASS's frame source: a dark, a flat and three projections in the envelope, and a fourth
/// projection as ESS ad00.
fn frame_seeds() -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    use mass::source::Source;
    use pilot_core::contract::message::Encoding;
    let p = mass::frames::FrameParams {
        rows: 2,
        cols: 16,
        darks: 1,
        flats: 1,
        center_px: 8.0,
        ..Default::default()
    };
    let mut env = mass::frames::FrameSource::new(p.clone(), 7, Encoding::Envelope).unwrap();
    let mut out: Vec<_> = (0..5)
        .map(|seq| (None, env.next(seq, 1).to_vec()))
        .collect();
    let mut ad00 = mass::frames::FrameSource::new(p, 7, Encoding::Ad00).unwrap();
    let last = (0..6).map(|seq| ad00.next(seq, 1).to_vec()).last().unwrap();
    out.push((None, last));
    assert_eq!(out.len(), FRAME_SEEDS);
    out
}

/// How a message is made hostile.
#[derive(Debug, Clone)]
enum Mutation {
    /// Arbitrary bytes.
    Random(Vec<u8>),
    /// A valid message with bytes overwritten at positions (taken modulo its length).
    Flip(usize, Vec<(usize, u8)>),
    /// A valid message cut short.
    Truncate(usize, usize),
    /// A valid message with bytes appended.
    Extend(usize, Vec<u8>),
    /// A valid envelope with a header word overwritten (shape, kind, dtype, sequence ...).
    Header(usize, usize, u32),
    /// A valid message, unchanged.
    Valid(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(Mutation::Random),
        (
            0usize..9,
            proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)
        )
            .prop_map(|(s, f)| Mutation::Flip(s, f)),
        (0usize..9, any::<usize>()).prop_map(|(s, n)| Mutation::Truncate(s, n)),
        (0usize..9, proptest::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(s, e)| Mutation::Extend(s, e)),
        (0usize..9, 0usize..16, any::<u32>()).prop_map(|(s, w, v)| Mutation::Header(s, w, v)),
        (0usize..9).prop_map(Mutation::Valid),
    ]
}

fn apply(m: &Mutation, seeds: &[(Option<Vec<u8>>, Vec<u8>)]) -> (Option<Vec<u8>>, Vec<u8>) {
    let pick = |i: usize| seeds[i % seeds.len()].clone();
    match m {
        Mutation::Random(b) => (None, b.clone()),
        Mutation::Flip(s, flips) => {
            let (k, mut b) = pick(*s);
            for &(at, v) in flips {
                let n = b.len();
                if n > 0 {
                    b[at % n] = v;
                }
            }
            (k, b)
        }
        Mutation::Truncate(s, n) => {
            let (k, mut b) = pick(*s);
            let len = b.len();
            b.truncate(n % (len + 1));
            (k, b)
        }
        Mutation::Extend(s, e) => {
            let (k, mut b) = pick(*s);
            b.extend_from_slice(e);
            (k, b)
        }
        Mutation::Header(s, w, v) => {
            let (k, mut b) = pick(*s);
            let at = 4 * w;
            if b.len() >= at + 4 {
                b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
            (k, b)
        }
        Mutation::Valid(s) => pick(*s),
    }
}

fn processors() -> Vec<(&'static str, ProcessorPlan)> {
    let plan = |text: &str| {
        RawConfig::from_toml(
            &format!("bootstrap_servers = \"127.0.0.1:1\"\ntopic = \"t\"\n{text}"),
            "test",
        )
        .unwrap()
        .validate("test")
        .unwrap()
        .processor
    };
    vec![
        ("none", plan("processor = \"none\"\n")),
        ("kmeans", plan("processor = \"kmeans\"\nk = 4\n")),
        (
            "gridrec",
            plan("processor = \"gridrec\"\ntomo_threads = 1\npreview_png = false\nhdf5_timeout_s = 2\n"),
        ),
        (
            "mlem",
            plan("processor = \"mlem\"\niterations = 2\ntomo_threads = 1\npreview_png = false\ncenter_every_messages = 1\nhdf5_timeout_s = 2\n"),
        ),
        (
            "rolling",
            plan("processor = \"rolling\"\nbuffer_frames = 3\npreview_png = false\n"),
        ),
    ]
}

/// Feed `messages` to a fresh handler running `processor`; check the accounting adds up.
fn feed(processor: &ProcessorPlan, messages: &[(Option<Vec<u8>>, Vec<u8>)]) {
    let shared = Shared::default();
    let activity = AtomicU64::new(0);
    let p = make_processor(processor, "fuzz").unwrap();
    let mut h = MessageHandler::new(p, WindowPolicy::Count(3), 0, &shared, &activity);
    let clock = AtomicU64::new(1_000);
    let now = || clock.fetch_add(1_000, std::sync::atomic::Ordering::Relaxed);
    let (mut taken, mut rejected, mut duplicates) = (0u64, 0u64, 0u64);
    for (k, body) in messages {
        match h.handle(k.as_deref(), body, Some(1_700_000_000_000), &now) {
            Handled::Taken => taken += 1,
            Handled::Rejected => rejected += 1,
            Handled::Duplicate => duplicates += 1,
        }
        h.tick(&now);
    }
    h.flush(&now);
    let (mut processor, out) = h.into_parts();
    let a = &out.accounting;
    let t = a.totals(None);
    let processor_rejected: u64 = a
        .rejected
        .iter()
        .filter(|(r, _)| r.starts_with("processor:"))
        .map(|(_, n)| n)
        .sum();
    let fed = messages.len() as u64;
    assert_eq!(taken + rejected + duplicates, fed);
    assert_eq!(t.rejected, rejected, "{:?}", a.rejected);
    assert_eq!(t.duplicates, duplicates);
    // Every message is exactly one of: refused at decoding, a duplicate, or taken in (with or without MASS's
    // accounting; the processor may still refuse it, with its reason).
    assert_eq!(
        (rejected - processor_rejected) + duplicates + t.received + t.unaccounted,
        fed,
        "{a:?}"
    );
    assert_eq!(taken + processor_rejected, t.received + t.unaccounted);
    // The processor still works after whatever it was fed.
    processor.finish(None).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_and_mutated_messages_never_stop_a_consumer(
        ms in proptest::collection::vec(mutation(), 1..14),
        which in 0usize..5,
    ) {
        let seeds = seeds();
        let messages: Vec<_> = ms.iter().map(|m| apply(m, &seeds)).collect();
        let (_, plan) = &processors()[which];
        feed(plan, &messages);
    }
}

#[test]
fn every_seed_is_taken_by_the_processors_that_read_it() {
    let seeds = seeds();
    for (name, plan) in processors() {
        let shared = Shared::default();
        let activity = AtomicU64::new(0);
        let mut h = MessageHandler::new(
            make_processor(&plan, name).unwrap(),
            WindowPolicy::PerMessage,
            0,
            &shared,
            &activity,
        );
        let now = || 5;
        let outcomes: Vec<Handled> = seeds
            .iter()
            .map(|(k, b)| h.handle(k.as_deref(), b, Some(1), &now))
            .collect();
        let taken = outcomes.iter().filter(|o| **o == Handled::Taken).count();
        let want = match name {
            "none" => seeds.len(),
            "kmeans" => 4,
            "rolling" => FRAME_SEEDS,
            _ => 4,
        };
        assert_eq!(taken, want, "{name}: {outcomes:?}");
    }
}

/// Regression: one envelope of points with shape [5, 0] at the head of a topic made KMeans latch 0 dimensions and
/// reject all 50 valid messages after it.
#[test]
fn a_degenerate_first_message_leaves_the_kmeans_model_alone() {
    let shared = Shared::default();
    let activity = AtomicU64::new(0);
    let p = Box::new(KMeansProcessor::new(KMeansConfig::paper(1)).unwrap()) as Box<dyn Processor>;
    let mut h = MessageHandler::new(p, WindowPolicy::PerMessage, 0, &shared, &activity);
    let now = || 5;
    let mut bad = Vec::new();
    encode_f64(
        &header(PayloadKind::Points, Dtype::F64, 9, 0, &[5, 0]),
        &[],
        &mut bad,
    );
    assert_eq!(h.handle(None, &bad, None, &now), Handled::Rejected);
    // NaN coordinates are refused too, and change nothing.
    let mut nan = Vec::new();
    encode_f64(
        &header(PayloadKind::Points, Dtype::F64, 9, 1, &[1, 3]),
        &[f64::NAN, 0.0, 1.0],
        &mut nan,
    );
    assert_eq!(h.handle(None, &nan, None, &now), Handled::Rejected);
    for seq in 0..50u64 {
        let pts: Vec<f64> = (0..300).map(|i| ((i * 7 + seq) % 11) as f64).collect();
        let mut b = Vec::new();
        encode_f64(
            &header(PayloadKind::Points, Dtype::F64, 1, seq, &[100, 3]),
            &pts,
            &mut b,
        );
        assert_eq!(
            h.handle(None, &b, None, &now),
            Handled::Taken,
            "message {seq}"
        );
    }
    let out = h.into_parts().1;
    let a = &out.accounting;
    assert_eq!(a.received[&1].count(), 50, "{a:?}");
    assert_eq!(a.totals(None).rejected, 2, "{a:?}");
    assert!(out
        .accounting
        .rejected
        .keys()
        .any(|r| r.contains("degenerate shape")));
}
