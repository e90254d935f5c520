//! The `gridrec` and `mlem` processors on real files: tooth.h5 (the paper's dataset) and MASS's phantom file,
//! whole-file and projection-block messages alike, and MASS -> tansu -> MASA end to end.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use masa::decode::{Decoder, Payload};
use masa::processor::Processor;
use masa::reconstruct::{Algorithm, CenterPolicy, TomoConfig, TomoProcessor};
use masa::tomo::filter::FilterKind;
use masa::tomo::mlem::MlemInit;
use masa::tomo::quality::rmse_in_circle;
use mass::phantom::{image, scan, shepp_logan, ScanParams};
use pilot_core::contract::aps::AngleSource;
use pilot_core::contract::aps::ReconFile;
use pilot_core::contract::message::{encode_projections, ProjectionsHeader};

fn tooth() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/tooth.h5")
}

fn config(algorithm: Algorithm, dir: &Path) -> TomoConfig {
    TomoConfig {
        algorithm,
        center: CenterPolicy::Auto {
            every_messages: None,
            range_px: None,
        },
        angles: AngleSource::File,
        theta_units: pilot_core::contract::aps::ThetaUnits::Auto,
        open_beam_counts: None,
        hdf5_timeout_s: 30.0,
        mask_ratio: 0.95,
        write_hdf5: true,
        preview_png: true,
        threads: 2,
        output_dir: Some(dir.to_path_buf()),
    }
}

const GRIDREC: Algorithm = Algorithm::GridRec {
    filter: FilterKind::SheppLogan,
};

#[test]
fn tooth_reconstructs_with_the_paper_angles_and_writes_hdf5_and_png() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(tooth()).expect("data/tooth.h5");
    let mut cfg = config(GRIDREC, dir.path());
    cfg.angles = AngleSource::Paper;
    let mut p = TomoProcessor::new(cfg, "t-0").unwrap();
    for _ in 0..2 {
        p.add(&Payload::Hdf5File(&bytes)).unwrap();
        let w = p.process().unwrap();
        assert_eq!((w.messages, w.items), (1, 2));
    }
    p.finish(None).unwrap();
    let c = p.center().unwrap();
    assert!((294.0..=297.0).contains(&c), "tooth centre {c}");
    let (recon, rows, centers) = ReconFile::read(&dir.path().join("recon-t-0.h5")).unwrap();
    assert_eq!(recon.dims, [4, 640, 640]);
    assert_eq!(rows, vec![0, 1, 0, 1]);
    assert!(centers.iter().all(|&x| x == c));
    let slice = recon.plane(0);
    assert!(slice.iter().all(|v| v.is_finite()));
    assert_eq!(slice[0], 0.0, "masked corner");
    let centre_mean: f32 = (300..340).map(|i| slice[i * 640 + 320]).sum::<f32>() / 40.0;
    assert!(centre_mean.abs() > 1e-4, "something reconstructed");
    let png = std::fs::read(dir.path().join("recon-t-0.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000);
}

fn phantom_file(dir: &Path, cols: usize) -> (Vec<u8>, mass::phantom::PhantomScan) {
    let s = scan(&ScanParams {
        cols,
        center_offset_px: 6.5,
        ..Default::default()
    });
    let path = dir.join("phantom.h5");
    s.scan.write(&path).unwrap();
    (std::fs::read(&path).unwrap(), s)
}

#[test]
fn the_phantom_file_and_its_projection_blocks_reconstruct_alike_and_well() {
    let dir = tempfile::tempdir().unwrap();
    let n = 640;
    let (bytes, s) = phantom_file(dir.path(), n);
    let truth = image(&shepp_logan(), n, 4);
    let mut whole = TomoProcessor::new(config(GRIDREC, dir.path()), "whole").unwrap();
    whole.add(&Payload::Hdf5File(&bytes)).unwrap();
    whole.process().unwrap();
    whole.finish(None).unwrap();
    let c = whole.center().unwrap();
    assert!(
        (c - s.center_px).abs() <= 0.5,
        "centre {c}, true {}",
        s.center_px
    );
    let (recon, ..) = ReconFile::read(&dir.path().join("recon-whole.h5")).unwrap();
    for k in 0..2 {
        let img: Vec<f64> = recon.plane(k).iter().map(|&v| v as f64 / s.mu).collect();
        let rmse = rmse_in_circle(&img, &truth, n, 0.98);
        eprintln!("phantom file slice {k}: RMSE {rmse:.4} (centre {c:.2})");
        assert!(rmse <= 0.03, "slice {k}: RMSE {rmse}");
    }

    // The same scan as a projections block (what MASS's rows mode sends).
    let sc = &s.scan;
    let theta: Vec<f32> = sc
        .theta
        .as_ref()
        .unwrap()
        .iter()
        .map(|d| d.to_radians() as f32)
        .collect();
    let ph = ProjectionsHeader {
        n_angles: 181,
        rows: 2,
        cols: n as u32,
        first_row: 0,
    };
    let mut body = Vec::new();
    encode_projections(
        &ph,
        1,
        0,
        &sc.data.values,
        &sc.white.as_ref().unwrap().mean_plane(),
        &sc.dark.as_ref().unwrap().mean_plane(),
        &theta,
        &mut body,
    );
    let mut dec = Decoder::new();
    let (_, payload) = dec.decode(None, &body, None).unwrap();
    let mut cfg = config(GRIDREC, dir.path());
    cfg.center = CenterPolicy::Fixed(c);
    let mut block = TomoProcessor::new(cfg, "block").unwrap();
    block.add(&payload).unwrap();
    block.process().unwrap();
    block.finish(None).unwrap();
    let (other, ..) = ReconFile::read(&dir.path().join("recon-block.h5")).unwrap();
    let worst = recon
        .values
        .iter()
        .zip(&other.values)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "whole file and block differ by {worst}");

    // Points are refused with the reason.
    let err = block
        .add(&Payload::Points {
            values: &[1.0, 2.0],
            dims: 2,
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs projections or an HDF5 file"), "{err}");
}

#[test]
fn mlem_runs_through_the_processor() {
    let dir = tempfile::tempdir().unwrap();
    let n = 128;
    let (bytes, s) = phantom_file(dir.path(), n);
    let cfg = TomoConfig {
        center: CenterPolicy::Fixed(s.center_px),
        write_hdf5: true,
        ..config(
            Algorithm::Mlem {
                iterations: 20,
                init: MlemInit::Mean,
            },
            dir.path(),
        )
    };
    let mut p = TomoProcessor::new(cfg, "m").unwrap();
    p.add(&Payload::Hdf5File(&bytes)).unwrap();
    assert_eq!(p.process().unwrap().items, 2);
    p.finish(None).unwrap();
    let (recon, ..) = ReconFile::read(&dir.path().join("recon-m.h5")).unwrap();
    let truth = image(&shepp_logan(), n, 4);
    let img: Vec<f64> = recon.plane(1).iter().map(|&v| v as f64 / s.mu).collect();
    let rmse = rmse_in_circle(&img, &truth, n, 0.9);
    assert!(rmse < 0.08, "ML-EM through the processor: RMSE {rmse}");
}

#[test]
fn mlem_refuses_a_detector_wider_than_its_projector_takes() {
    // ML-EM's fixed-point ray positions bound the image side; a wider block is refused with the reason, and
    // the same block at the bound is taken.
    let dir = tempfile::tempdir().unwrap();
    let cfg = |c| TomoConfig {
        center: CenterPolicy::Fixed(c),
        write_hdf5: false,
        preview_png: false,
        ..config(
            Algorithm::Mlem {
                iterations: 1,
                init: MlemInit::Mean,
            },
            dir.path(),
        )
    };
    for (cols, taken) in [
        (masa::tomo::mlem::MAX_N + 1, false),
        (masa::tomo::mlem::MAX_N, true),
    ] {
        let ph = ProjectionsHeader {
            n_angles: 2,
            rows: 1,
            cols: cols as u32,
            first_row: 0,
        };
        let mut body = Vec::new();
        let ones = vec![1.0f32; cols];
        encode_projections(
            &ph,
            1,
            0,
            &vec![0.5f32; 2 * cols],
            &ones,
            &vec![0.0f32; cols],
            &[0.0, 1.5],
            &mut body,
        );
        let mut dec = Decoder::new();
        let (_, payload) = dec.decode(None, &body, None).unwrap();
        let mut p = TomoProcessor::new(cfg(cols as f64 / 2.0), "wide").unwrap();
        let got = p.add(&payload);
        if taken {
            got.unwrap();
        } else {
            let err = got.unwrap_err().to_string();
            assert!(err.contains("ML-EM reconstructs at most 4090"), "{err}");
        }
    }
}

/// MASS (`mass` settings, topic and broker filled in) into a fresh 1-node tansu pilot, then MASA (`masa`
/// likewise, results into `dir/results`, consumer id `c`) until it is idle: MASA's summary and the results dir.
fn through_tansu(
    dir: &Path,
    mass: mass::config::RawConfig,
    masa: masa::config::RawConfig,
) -> (masa::report::ConsumerSummary, PathBuf) {
    let pilot = pilot_core::pilots::pilot::Pilot::create_local(&dir.join("pilots"))
        .expect("tansu installed (scripts/setup.sh)");
    let conn = pilot.connection().unwrap();
    pilot_core::contract::admin::KafkaAdmin::new(
        &conn.bootstrap,
        &conn.client,
        Duration::from_secs(10),
    )
    .create_topic("light", 2, 1)
    .unwrap();
    let mplan = mass::config::RawConfig {
        bootstrap_servers: Some(conn.bootstrap.clone()),
        topic: Some("light".into()),
        ..mass
    };
    let expected = mplan.messages;
    let mplan = mass::config::Settings::validate(&mplan, "test").unwrap();
    let out = mass::producer::run(
        &mplan,
        &conn,
        Arc::new(pilot_core::contract::clock::SystemClock::new()),
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(Some(out.summary.delivered_msgs), expected);
    let results = dir.join("results");
    std::fs::create_dir_all(&results).unwrap();
    let plan = masa::config::RawConfig {
        bootstrap_servers: Some(conn.bootstrap.clone()),
        topic: Some("light".into()),
        idle_timeout_s: masa.idle_timeout_s.or(Some(3.0)),
        expect_messages: expected,
        results_dir: Some(results.clone()),
        consumer_id: Some("c".into()),
        ..masa
    };
    let plan = masa::config::Settings::validate(&plan, "test").unwrap();
    let got = masa::consumer::run(
        &plan,
        &conn,
        Arc::new(pilot_core::contract::clock::SystemClock::new()),
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
    (got.summary, results)
}

#[test]
fn tooth_files_stream_through_tansu_into_gridrec() {
    let dir = tempfile::tempdir().unwrap();
    let n = 6u64;
    let (s, results) = through_tansu(
        dir.path(),
        mass::config::RawConfig {
            source: Some(mass::config::SourceKind::Template),
            template_file: Some(tooth()),
            messages: Some(n),
            ..Default::default()
        },
        masa::config::RawConfig {
            processor: Some(masa::config::ProcessorKind::Gridrec),
            angles: Some(pilot_core::contract::aps::AngleSource::Paper),
            write_hdf5: Some(true),
            ..Default::default()
        },
    );
    let s = &s;
    assert_eq!(
        (
            s.received_msgs,
            s.rejected_msgs,
            s.missing_msgs,
            s.processed_items
        ),
        (n, 0, 0, 2 * n)
    );
    assert!(s.complete, "{}", s.incomplete_reason);
    let (recon, rows, _) = ReconFile::read(&results.join("recon-c-0.h5")).unwrap();
    assert_eq!(recon.dims, [2 * n as usize, 640, 640]);
    assert_eq!(rows.len(), 2 * n as usize);
    assert!(results.join("recon-c-0.png").exists());
}

#[test]
fn mass_phantom_file_through_tansu_reconstructs_as_well_as_offline() {
    let dir = tempfile::tempdir().unwrap();
    let (_, s) = phantom_file(dir.path(), 640);
    // The file as projection blocks, one detector row per message (MASS's rows mode).
    let (summary, results) = through_tansu(
        dir.path(),
        mass::config::RawConfig {
            source: Some(mass::config::SourceKind::Template),
            template_file: Some(dir.path().join("phantom.h5")),
            template_mode: Some(mass::config::TemplateLayout::Rows),
            messages: Some(4),
            ..Default::default()
        },
        masa::config::RawConfig {
            processor: Some(masa::config::ProcessorKind::Gridrec),
            write_hdf5: Some(true),
            ..Default::default()
        },
    );
    assert!(summary.complete, "{}", summary.incomplete_reason);
    let (recon, _, centers) = ReconFile::read(&results.join("recon-c-0.h5")).unwrap();
    assert_eq!(recon.dims[0], 4);
    assert!(
        (centers[0] - s.center_px).abs() <= 0.5,
        "centre {} vs {}",
        centers[0],
        s.center_px
    );
    let truth = image(&shepp_logan(), 640, 4);
    for k in 0..4 {
        let img: Vec<f64> = recon.plane(k).iter().map(|&v| v as f64 / s.mu).collect();
        let rmse = rmse_in_circle(&img, &truth, 640, 0.98);
        assert!(rmse <= 0.03, "slice {k} through tansu: RMSE {rmse}");
    }
}

#[test]
fn windows_that_take_longer_than_the_idle_timeout_lose_no_message() {
    // ML-EM with many iterations takes well over the 0.3 s idle timeout per message; the consumer must keep
    // going while messages wait (processing counts as activity).
    let dir = tempfile::tempdir().unwrap();
    phantom_file(dir.path(), 128);
    let (summary, _) = through_tansu(
        dir.path(),
        mass::config::RawConfig {
            source: Some(mass::config::SourceKind::Template),
            template_file: Some(dir.path().join("phantom.h5")),
            template_mode: Some(mass::config::TemplateLayout::Rows),
            messages: Some(3),
            ..Default::default()
        },
        masa::config::RawConfig {
            processor: Some(masa::config::ProcessorKind::Mlem),
            iterations: Some(150),
            center_px: Some(64.0 + 6.5),
            tomo_threads: Some(1),
            preview_png: Some(false),
            idle_timeout_s: Some(0.3),
            start_timeout_s: Some(20.0),
            ..Default::default()
        },
    );
    assert!(
        summary.processing_us_p50 > 300_000,
        "each window outlasts the idle timeout: {} us",
        summary.processing_us_p50
    );
    assert_eq!((summary.received_msgs, summary.missing_msgs), (3, 0));
    assert!(summary.complete, "{}", summary.incomplete_reason);
}

/// A scan as some detectors write it: uint16 counts, no flat or dark fields, angles in radians without a units
/// attribute. It reconstructs, and the processor says what it assumed.
#[test]
fn a_bare_detector_file_reconstructs_with_stated_assumptions() {
    let dir = tempfile::tempdir().unwrap();
    let n = 256;
    let s = scan(&ScanParams {
        cols: n,
        rows: 1,
        dark_counts: 0.0,
        i0: 30_000.0,
        center_offset_px: 11.0,
        object_scale: 0.8,
        ..Default::default()
    });
    // Write it by hand: uint16 data, radians, nothing else.
    let path = dir.path().join("bare.h5");
    {
        let f = pilot_core::contract::aps::create_unlocked(&path).unwrap();
        let g = f.create_group("exchange").unwrap();
        let counts: Vec<u16> = s
            .scan
            .data
            .values
            .iter()
            .map(|&v| v.round() as u16)
            .collect();
        g.new_dataset::<u16>()
            .shape(s.scan.data.dims)
            .create("data")
            .unwrap()
            .write_raw(&counts)
            .unwrap();
        let theta = pilot_core::contract::aps::paper_theta_rad(181);
        g.new_dataset::<f64>()
            .shape([181])
            .create("theta")
            .unwrap()
            .write_raw(&theta)
            .unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    let mut p = TomoProcessor::new(config(GRIDREC, dir.path()), "bare").unwrap();
    p.add(&Payload::Hdf5File(&bytes)).unwrap();
    assert_eq!(p.process().unwrap().items, 1);
    p.finish(None).unwrap();
    let notes = p.notes().join("; ");
    assert!(
        notes.contains("no flat field") && notes.contains("no dark field"),
        "{notes}"
    );
    let c = p.center().unwrap();
    assert!(
        (c - s.center_px).abs() <= 0.5,
        "centre {c}, true {}",
        s.center_px
    );
    let truth = image(&mass::phantom::scaled(&shepp_logan(), 0.8), n, 4);
    let (recon, ..) = ReconFile::read(&dir.path().join("recon-bare.h5")).unwrap();
    let img: Vec<f64> = recon.plane(0).iter().map(|&v| v as f64 / s.mu).collect();
    // The open beam is estimated from the data (its gain ripple is not corrected), so a looser bound than with
    // flat fields.
    let rmse = rmse_in_circle(&img, &truth, n, 0.98);
    assert!(rmse <= 0.06, "RMSE {rmse}");
}

/// A message of another geometry arriving while slices of the old one wait: both are reconstructed, each with its
/// own plans, and written to a file of its size.
#[test]
fn a_geometry_change_within_a_window_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (big, _) = phantom_file(dir.path(), 256);
    let small_scan = scan(&ScanParams {
        cols: 128,
        angles: 91,
        rows: 1,
        ..Default::default()
    });
    let small_path = dir.path().join("small.h5");
    small_scan.scan.write(&small_path).unwrap();
    let small = std::fs::read(&small_path).unwrap();
    let mut p = TomoProcessor::new(config(GRIDREC, dir.path()), "g").unwrap();
    p.add(&Payload::Hdf5File(&big)).unwrap();
    p.add(&Payload::Hdf5File(&small)).unwrap();
    // A bad message between windows changes nothing (its angles do not match its projections).
    let mut bad = small_scan.scan.clone();
    bad.theta = Some(vec![0.0; 91]);
    bad.theta.as_mut().unwrap()[5] = f64::NAN;
    let bad_path = dir.path().join("bad.h5");
    bad.write(&bad_path).unwrap();
    assert!(p
        .add(&Payload::Hdf5File(&std::fs::read(&bad_path).unwrap()))
        .is_err());
    let w = p.process().unwrap();
    assert_eq!((w.messages, w.items), (2, 3));
    p.finish(None).unwrap();
    let (a, ..) = ReconFile::read(&dir.path().join("recon-g.h5")).unwrap();
    let (b, ..) = ReconFile::read(&dir.path().join("recon-g-128px.h5")).unwrap();
    assert_eq!((a.dims, b.dims), ([2, 256, 256], [1, 128, 128]));
    assert!(a.values.iter().chain(&b.values).all(|v| v.is_finite()));
}

/// Issue 23 end to end: MASS's detector streams frames (darks, flats, golden-angle projections of the 3-D
/// phantom) through tansu into MASA's rolling reconstruction, in the envelope and as ESS ad00 FlatBuffers: every
/// frame accounted for, an update per projection scored against the one before, the slices written as
/// quick-looks, and the two formats give the same reconstruction.
#[test]
fn detector_frames_stream_through_tansu_into_a_rolling_reconstruction() {
    let (fields, projections) = (8u64, 150u64);
    let mut runs = Vec::new();
    for encoding in [
        pilot_core::contract::message::Encoding::Envelope,
        pilot_core::contract::message::Encoding::Ad00,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (s, results) = through_tansu(
            dir.path(),
            mass::config::RawConfig {
                source: Some(mass::config::SourceKind::Frames),
                encoding: Some(encoding),
                frame_rows: Some(16),
                frame_cols: Some(64),
                projections_per_180: Some(100),
                darks: Some(4),
                flats: Some(4),
                partitioning: Some(mass::config::Partitioning::KeyByProducer),
                messages: Some(fields + projections),
                ..Default::default()
            },
            masa::config::RawConfig {
                processor: Some(masa::config::ProcessorKind::Rolling),
                buffer_frames: Some(100),
                gridrec_every_frames: Some(50),
                ..Default::default()
            },
        );
        assert_eq!(
            (s.received_msgs, s.rejected_msgs, s.missing_msgs),
            (fields + projections, 0, 0),
            "{encoding}"
        );
        // A full GridRec slice of the buffer every 50 projections: 3 of them, the last as a quick-look.
        assert!(s.notes.contains("3 GridRec slices"), "{}", s.notes);
        assert!(results.join("rolling-c-0-gridrec.png").exists());
        assert!(s.complete, "{encoding}: {}", s.incomplete_reason);
        let rows: Vec<masa::rolling::QualityRow> =
            pilot_core::contract::metrics::read_csv(&results.join("rolling-c-0-quality.csv"))
                .unwrap();
        assert_eq!(rows.len() as u64, projections, "an update per projection");
        let last = rows.last().unwrap();
        assert_eq!(last.buffered, 100);
        assert_eq!(last.newest_frame, fields + projections - 1);
        // One frame in a hundred changes little: consecutive updates are alike, and golden angles leave no
        // large gap in the buffer.
        assert!(last.ssim_previous > 0.95, "{last:?}");
        assert!(last.largest_gap_deg < 4.0, "{last:?}");
        for name in ["axial", "xz", "yz"] {
            let png = std::fs::read(results.join(format!("rolling-c-0-{name}.png"))).unwrap();
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}");
        }
        runs.push(rows);
    }
    // Bit for bit (the first update has no previous one: NaN, which only compares equal as bits).
    let scores = |rows: &[masa::rolling::QualityRow]| -> Vec<(u64, u64, u64)> {
        rows.iter()
            .map(|r| {
                let (a, b) = (r.ssim_previous.to_bits(), r.largest_gap_deg.to_bits());
                (r.newest_frame, a, b)
            })
            .collect()
    };
    assert_eq!(
        scores(&runs[0]),
        scores(&runs[1]),
        "envelope and ad00 alike"
    );
}

/// Where `scripts/setup.sh --frameworks` put the Python peers.
fn peers_python() -> PathBuf {
    let venv = std::env::var_os("PILOT_FRAMEWORKS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME");
            std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(home).join(".local/share"))
                .join("pilot-streaming/venv")
        });
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh --frameworks (it installs ess-streaming-data-types and \
         confluent-kafka, the peers this test needs)",
        python.display()
    );
    python
}

/// Frames written by another producer: PyPI's ess-streaming-data-types serialises them as ad00 (angle, frame
/// type and epoch as attributes) and confluent-kafka sends them; MASA's rolling reconstruction takes them as
/// unaccounted messages and reconstructs exactly what the same frames give in-process.
#[test]
fn ad00_frames_from_the_python_peer_reconstruct_like_envelope_frames() {
    use mass::source::Source;
    let python = peers_python();
    let dir = tempfile::tempdir().unwrap();
    let (rows, cols, count) = (8u32, 48u32, 6 + 90u64);
    let params = mass::frames::FrameParams {
        rows,
        cols,
        projections_per_180: 60,
        darks: 3,
        flats: 3,
        center_px: cols as f64 / 2.0,
        ..Default::default()
    };
    let mut src = mass::frames::FrameSource::new(
        params,
        0,
        pilot_core::contract::message::Encoding::Envelope,
    )
    .unwrap();
    // The frames, for the peer (frames.json, frames.bin) and for the in-process reconstruction.
    let settings = masa::rolling::RollingSettings {
        buffer_frames: Some(60),
        ..Default::default()
    };
    let mut offline = masa::rolling::RollingProcessor::new(settings, "offline").unwrap();
    let (mut meta, mut pixels) = (Vec::new(), Vec::new());
    for seq in 0..count {
        let msg = src.next(seq, 0).to_vec();
        let f = pilot_core::contract::frame::decode_frame(&msg).unwrap();
        meta.push(format!(
            r#"{{"index": {}, "angle_deg": {:?}, "frame_type": "{}", "epoch": {}}}"#,
            f.info.index,
            f.info.angle_deg,
            f.info.frame_type.as_str(),
            f.info.epoch
        ));
        pixels.extend_from_slice(f.pixels);
        offline.add(&Payload::Frame(f)).unwrap();
        offline.process().unwrap();
    }
    let frames_dir = dir.path().join("frames");
    std::fs::create_dir_all(&frames_dir).unwrap();
    std::fs::write(
        frames_dir.join("frames.json"),
        format!(
            r#"{{"rows": {rows}, "cols": {cols}, "frames": [{}]}}"#,
            meta.join(", ")
        ),
    )
    .unwrap();
    std::fs::write(frames_dir.join("frames.bin"), &pixels).unwrap();
    // The peer produces into a fresh pilot; MASA consumes.
    let (_pilot, conn) = pilot_with_topics(dir.path(), &[("detector", 1)]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/ad00_producer.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .args([&conn.bootstrap, "detector"])
        .arg(&frames_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "peer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        count.to_string()
    );
    let results = dir.path().join("results");
    let plan = masa::config::RawConfig {
        bootstrap_servers: Some(conn.bootstrap.clone()),
        topic: Some("detector".into()),
        idle_timeout_s: Some(3.0),
        results_dir: Some(results.clone()),
        consumer_id: Some("c".into()),
        processor: Some(masa::config::ProcessorKind::Rolling),
        buffer_frames: Some(60),
        ..Default::default()
    };
    let plan = masa::config::Settings::validate(&plan, "test").unwrap();
    let got = masa::consumer::run(
        &plan,
        &conn,
        Arc::new(pilot_core::contract::clock::SystemClock::new()),
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
    let s = &got.summary;
    // Another producer's messages carry no MASS accounting: taken and counted as unaccounted.
    assert_eq!(
        (s.unaccounted_msgs, s.rejected_msgs, s.handled_msgs),
        (count, 0, count),
        "{s:?}"
    );
    assert!(s.complete, "{}", s.incomplete_reason);
    let rows: Vec<masa::rolling::QualityRow> =
        pilot_core::contract::metrics::read_csv(&results.join("rolling-c-0-quality.csv")).unwrap();
    let scores = |rows: &[masa::rolling::QualityRow]| -> Vec<(u64, u64, u64, u64)> {
        rows.iter()
            .map(|r| {
                let (a, b) = (r.ssim_previous.to_bits(), r.largest_gap_deg.to_bits());
                (r.newest_frame, r.projections, a, b)
            })
            .collect()
    };
    assert_eq!(rows.len(), 90);
    assert_eq!(scores(&rows), scores(offline.quality()));
    assert!(
        rows.last().unwrap().ssim_previous > 0.9,
        "{:?}",
        rows.last()
    );
}

/// Issue 23's control topic: while MASS's detector streams, commands on the control topic change its rate,
/// re-take the flats and darks, pause, resume and stop it; each is acknowledged there with the first frame it
/// applied to, a malformed one is rejected with its reason and the source goes on, and MASA accounts for every
/// frame MASS sent before the stop.
#[test]
fn control_commands_steer_the_detector_and_are_acknowledged() {
    use pilot_core::contract::control::{self, Answer, ControlMessage};
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::Message;
    let dir = tempfile::tempdir().unwrap();
    let (_pilot, conn) = pilot_with_topics(dir.path(), &[("detector", 1), ("detector-control", 1)]);
    let plan = mass::config::Settings::validate(
        &mass::config::RawConfig {
            bootstrap_servers: Some(conn.bootstrap.clone()),
            topic: Some("detector".into()),
            control_topic: Some("detector-control".into()),
            source: Some(mass::config::SourceKind::Frames),
            frame_rows: Some(8),
            frame_cols: Some(32),
            projections_per_180: Some(50),
            darks: Some(2),
            flats: Some(2),
            rate_msgs_per_s: Some(100.0),
            messages: Some(100_000),
            interval_s: Some(0.2),
            ..Default::default()
        },
        "test",
    )
    .unwrap();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let mass_conn = conn.clone();
    let producer = std::thread::spawn(move || {
        let mut first = Some(started_tx);
        mass::producer::run(
            &plan,
            &mass_conn,
            Arc::new(pilot_core::contract::clock::SystemClock::new()),
            &AtomicBool::new(false),
            &mut |_| {
                if let Some(tx) = first.take() {
                    let _ = tx.send(());
                }
            },
        )
        .unwrap()
    });
    // Frames flow once the control link is open.
    started_rx.recv_timeout(Duration::from_secs(60)).unwrap();
    let commands: BaseProducer = conn
        .client
        .producer_config(&conn.bootstrap)
        .create()
        .unwrap();
    let send = |text: &str| {
        commands
            .send(BaseRecord::<(), str>::to("detector-control").payload(text))
            .unwrap();
        commands.flush(Duration::from_secs(5)).unwrap();
        std::thread::sleep(Duration::from_millis(700));
    };
    send("hello");
    send(r#"{"command":"set_rate","frames_per_s":200,"id":"faster"}"#);
    send(r#"{"command":"retake_fields","id":"fields"}"#);
    send(r#"{"command":"set_rows","first_row":9,"rows":4}"#);
    send(r#"{"command":"pause","id":"hold"}"#);
    send(r#"{"command":"resume","id":"go"}"#);
    send(r#"{"command":"stop","id":"enough"}"#);
    let out = producer.join().unwrap();
    let sent = out.summary.delivered_msgs;
    assert!(out.summary.complete, "{}", out.summary.incomplete_reason);
    assert!(sent > 50 && sent < 100_000, "{sent}");
    assert!(
        out.summary.notes.contains("6 commands, 1 malformed"),
        "{}",
        out.summary.notes
    );
    assert!(out
        .summary
        .notes
        .contains(&format!("stopped by command before frame {sent}")));
    // The answers on the control topic.
    let mut cfg = conn.client.consumer_config(&conn.bootstrap, "answers");
    cfg.set("auto.offset.reset", "earliest");
    let answers: BaseConsumer = cfg.create().unwrap();
    answers.subscribe(&["detector-control"]).unwrap();
    let (mut acks, mut rejected) = (Vec::new(), Vec::new());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline && (acks.len() < 5 || rejected.len() < 2) {
        if let Some(Ok(m)) = answers.poll(Duration::from_millis(200)) {
            match control::parse(m.payload().unwrap_or_default()) {
                ControlMessage::Answer(Answer::Ack {
                    ack,
                    command,
                    applied_at_frame,
                }) => acks.push((ack, command, applied_at_frame)),
                ControlMessage::Answer(Answer::Rejected {
                    rejected: r,
                    reason,
                }) => rejected.push((r, reason)),
                _ => {}
            }
        }
    }
    let names: Vec<&str> = acks.iter().map(|a| a.1.as_str()).collect();
    assert_eq!(
        names,
        vec!["set_rate", "retake_fields", "pause", "resume", "stop"],
        "{acks:?}"
    );
    assert_eq!(acks[0].0.as_deref(), Some("faster"));
    let frames: Vec<u64> = acks.iter().map(|a| a.2).collect();
    assert!(frames.windows(2).all(|w| w[0] <= w[1]), "{frames:?}");
    assert_eq!(frames[2], frames[3], "nothing is sent while paused");
    assert_eq!(
        frames[4], sent,
        "the stop applies to the first frame not sent"
    );
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(rejected[0].1.contains("not JSON"));
    assert!(rejected[1].1.contains("outside the detector"));
    // MASA accounts for every frame sent, the re-taken flats under a new epoch included.
    let results = dir.path().join("results");
    let plan = masa::config::Settings::validate(
        &masa::config::RawConfig {
            bootstrap_servers: Some(conn.bootstrap.clone()),
            topic: Some("detector".into()),
            idle_timeout_s: Some(3.0),
            expect_messages: Some(sent),
            results_dir: Some(results),
            consumer_id: Some("c".into()),
            processor: Some(masa::config::ProcessorKind::Rolling),
            buffer_frames: Some(50),
            ..Default::default()
        },
        "test",
    )
    .unwrap();
    let got = masa::consumer::run(
        &plan,
        &conn,
        Arc::new(pilot_core::contract::clock::SystemClock::new()),
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
    let s = &got.summary;
    assert_eq!(
        (s.received_msgs, s.missing_msgs, s.rejected_msgs),
        (sent, 0, 0),
        "{s:?}"
    );
    assert!(s.complete, "{}", s.incomplete_reason);
    assert!(s.notes.contains("4 flats, 4 darks absorbed"), "{}", s.notes);
}

/// Issue 23's closed loop: MASA's rolling reconstruction steers MASS's detector. Once consecutive updates agree
/// (SSIM >= 0.98 for 5 updates), MASA sends a stop on the control topic; MASS stops long before its scan's end,
/// acknowledges the stop, and MASA's accounting matches what MASS sent.
#[test]
fn a_steered_run_stops_the_source_once_the_reconstruction_converges() {
    let dir = tempfile::tempdir().unwrap();
    let (_pilot, conn) = pilot_with_topics(dir.path(), &[("scan", 1), ("scan-control", 1)]);
    let results = dir.path().join("results");
    let masa_plan = masa::config::Settings::validate(
        &masa::config::RawConfig {
            bootstrap_servers: Some(conn.bootstrap.clone()),
            topic: Some("scan".into()),
            idle_timeout_s: Some(4.0),
            start_timeout_s: Some(60.0),
            results_dir: Some(results.clone()),
            consumer_id: Some("c".into()),
            processor: Some(masa::config::ProcessorKind::Rolling),
            buffer_frames: Some(100),
            steer_control_topic: Some("scan-control".into()),
            steer_converged_ssim: Some(0.98),
            steer_converged_updates: Some(5),
            ..Default::default()
        },
        "test",
    )
    .unwrap();
    let masa_conn = conn.clone();
    let consumer = std::thread::spawn(move || {
        masa::consumer::run(
            &masa_plan,
            &masa_conn,
            Arc::new(pilot_core::contract::clock::SystemClock::new()),
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap()
    });
    // The consumer's first group join waits half a session timeout (broker.md); let it settle first, so the
    // figure printed below is the steering's reaction, not the join's.
    std::thread::sleep(Duration::from_secs(4));
    let scan_frames = 8 + 2000u64;
    let mass_plan = mass::config::Settings::validate(
        &mass::config::RawConfig {
            bootstrap_servers: Some(conn.bootstrap.clone()),
            topic: Some("scan".into()),
            control_topic: Some("scan-control".into()),
            source: Some(mass::config::SourceKind::Frames),
            frame_rows: Some(8),
            frame_cols: Some(64),
            projections_per_180: Some(100),
            darks: Some(4),
            flats: Some(4),
            rate_msgs_per_s: Some(100.0),
            messages: Some(scan_frames),
            ..Default::default()
        },
        "test",
    )
    .unwrap();
    let out = mass::producer::run(
        &mass_plan,
        &conn,
        Arc::new(pilot_core::contract::clock::SystemClock::new()),
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
    let sent = out.summary.delivered_msgs;
    assert!(out.summary.complete, "{}", out.summary.incomplete_reason);
    assert!(
        sent < scan_frames / 2,
        "stopped early: {sent} of {scan_frames}"
    );
    assert!(
        out.summary
            .notes
            .contains(&format!("stopped by command before frame {sent}")),
        "{}",
        out.summary.notes
    );
    let got = consumer.join().unwrap();
    let s = &got.summary;
    assert_eq!(
        (s.received_msgs, s.missing_msgs, s.rejected_msgs),
        (sent, 0, 0),
        "{s:?}"
    );
    assert!(s.complete, "{}", s.incomplete_reason);
    let steering: Vec<masa::rolling::SteeringRow> =
        pilot_core::contract::metrics::read_csv(&results.join("rolling-c-0-steering.csv")).unwrap();
    assert_eq!(steering.len(), 1, "{steering:?}");
    let stop = &steering[0];
    assert_eq!(
        (stop.command.as_str(), stop.sent),
        ("stop", true),
        "{stop:?}"
    );
    assert!(stop.trigger_frame < sent, "{stop:?} before {sent}");
    eprintln!(
        "steered run: stop decided at frame {} ({}), source stopped before frame {sent} of {scan_frames}",
        stop.trigger_frame, stop.reason
    );
}

/// A fresh 1-node tansu pilot under `dir` with `topics` (name, partitions) made: the pilot (cancelled when
/// dropped) and its connection.
fn pilot_with_topics(
    dir: &Path,
    topics: &[(&str, u32)],
) -> (
    pilot_core::pilots::pilot::Pilot,
    pilot_core::contract::client::Connection,
) {
    let pilot = pilot_core::pilots::pilot::Pilot::create_local(&dir.join("pilots"))
        .expect("tansu installed (scripts/setup.sh)");
    let conn = pilot.connection().unwrap();
    let admin = pilot_core::contract::admin::KafkaAdmin::new(
        &conn.bootstrap,
        &conn.client,
        Duration::from_secs(10),
    );
    for (topic, partitions) in topics {
        admin.create_topic(topic, *partitions, 1).unwrap();
    }
    (pilot, conn)
}
