//! Sources: output shapes and encodings, determinism by seed, static resends, the APS template (tooth.h5 and
//! the generated phantom) in both modes.

use std::path::PathBuf;

use mass::config::TemplatePlan;
use mass::source::{
    ClusterParams, ClusterSource, Source, StaticSource, TemplateMode, TemplateSource,
};
use pilot_core::contract::aps::{AngleSource, ApsScan, ThetaUnits};
use pilot_core::contract::message::{
    self, decode, parse_points_text, Encoding, PayloadKind, Projections,
};

fn tooth() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/tooth.h5")
}

fn tplan(file: &std::path::Path, mode: TemplateMode, angles: AngleSource) -> TemplatePlan {
    TemplatePlan {
        file: file.to_path_buf(),
        mode,
        angles,
        theta_units: ThetaUnits::Auto,
        open_beam_counts: None,
    }
}

fn small() -> ClusterParams {
    ClusterParams {
        clusters: 4,
        dims: 3,
        points_per_message: 1000,
        spread: 0.5,
        ..Default::default()
    }
}

#[test]
fn cluster_messages_have_the_declared_shape_and_points_lie_near_centres() {
    let mut s = ClusterSource::new(small(), 3, Encoding::Envelope).unwrap();
    let centres = s.centres().to_vec();
    // Centres are spread in space, not on a diagonal (the original's bug).
    let on_diagonal = centres
        .chunks(3)
        .all(|c| (c[0] - c[1]).abs() < 1e-9 && (c[1] - c[2]).abs() < 1e-9);
    assert!(!on_diagonal);
    let body = s.next(5, 123).to_vec();
    let env = decode(&body).unwrap();
    assert_eq!(env.header.kind, PayloadKind::Points);
    assert_eq!(env.header.dims(), &[1000, 3]);
    assert_eq!(
        (
            env.header.producer_id,
            env.header.sequence,
            env.header.intended_send_ns
        ),
        (3, 5, 123)
    );
    let mut pts = Vec::new();
    env.f64_into(&mut pts).unwrap();
    // Every point within 6 sigma of some centre; every centre used.
    let mut used = [0usize; 4];
    for p in pts.chunks(3) {
        let (best, d2) = centres
            .chunks(3)
            .enumerate()
            .map(|(i, c)| (i, (0..3).map(|j| (p[j] - c[j]).powi(2)).sum::<f64>()))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        assert!(
            d2.sqrt() < 6.0 * 0.5 * 3f64.sqrt(),
            "point {p:?} far from every centre"
        );
        used[best] += 1;
    }
    assert!(used.iter().all(|&u| u > 150), "{used:?}");
}

#[test]
fn same_seed_same_stream_other_producer_other_stream() {
    let mut a = ClusterSource::new(small(), 0, Encoding::Envelope).unwrap();
    let mut b = ClusterSource::new(small(), 0, Encoding::Envelope).unwrap();
    let mut c = ClusterSource::new(small(), 1, Encoding::Envelope).unwrap();
    for seq in 0..3 {
        let (x, y, z) = (
            a.next(seq, 0).to_vec(),
            b.next(seq, 0).to_vec(),
            c.next(seq, 0).to_vec(),
        );
        assert_eq!(x, y);
        assert_ne!(x[64..], z[64..]);
    }
    // Fresh points every message.
    let m9 = a.next(9, 0).to_vec();
    assert_ne!(m9[64..], a.next(10, 0)[64..]);
    let other_seed = ClusterParams { seed: 2, ..small() };
    assert_ne!(
        ClusterSource::new(other_seed, 0, Encoding::Envelope)
            .unwrap()
            .centres(),
        a.centres()
    );
}

#[test]
fn points_text_is_the_papers_form() {
    let mut s = ClusterSource::new(
        ClusterParams {
            points_per_message: 10,
            ..small()
        },
        0,
        Encoding::PointsText,
    )
    .unwrap();
    let body = s.next(0, 0).to_vec();
    assert!(body.starts_with(b"[[") && body.ends_with(b"]]"));
    let mut pts = Vec::new();
    assert_eq!(parse_points_text(&body, &mut pts).unwrap(), 3);
    assert_eq!(pts.len(), 30);
}

#[test]
fn static_and_synthetic_resend_one_body_with_fresh_headers() {
    let mut s = StaticSource::from_source(Box::new(
        ClusterSource::new(small(), 2, Encoding::Envelope).unwrap(),
    ));
    let first = s.next(0, 10).to_vec();
    let again = s.next(7, 20).to_vec();
    assert_eq!(first[64..], again[64..]);
    let h = decode(&again).unwrap().header;
    assert_eq!((h.sequence, h.intended_send_ns, h.producer_id), (7, 20, 2));
    let mut syn = StaticSource::synthetic(2_000_000, 4, 1).unwrap();
    let env_bytes = syn.next(3, 0).to_vec();
    let env = decode(&env_bytes).unwrap();
    assert_eq!(
        (env.header.kind, env.payload.len(), env.header.sequence),
        (PayloadKind::Bytes, 2_000_000, 3)
    );
    assert!(StaticSource::synthetic(0, 0, 1).is_err());
}

#[test]
fn template_whole_file_carries_tooth_byte_for_byte() {
    let file = std::fs::read(tooth()).unwrap();
    let mut env = TemplateSource::new(
        &tplan(&tooth(), TemplateMode::WholeFile, AngleSource::File),
        Encoding::Envelope,
        1,
    )
    .unwrap();
    let body = env.next(4, 0).to_vec();
    let e = decode(&body).unwrap();
    assert_eq!(
        (e.header.kind, e.header.sequence),
        (PayloadKind::Hdf5File, 4)
    );
    assert_eq!(e.payload, &file[..]);
    assert_eq!(
        ApsScan::read_bytes(e.payload).unwrap().data.dims,
        [181, 2, 640]
    );
    let mut raw = TemplateSource::new(
        &tplan(&tooth(), TemplateMode::WholeFile, AngleSource::File),
        Encoding::Hdf5Raw,
        1,
    )
    .unwrap();
    assert_eq!(raw.next(0, 0), &file[..]);
    let mut hex = TemplateSource::new(
        &tplan(&tooth(), TemplateMode::WholeFile, AngleSource::File),
        Encoding::Hdf5Hex,
        1,
    )
    .unwrap();
    let h = hex.next(0, 0).to_vec();
    assert_eq!(
        h.len(),
        2 * file.len(),
        "the paper's 2,086,624-byte hex messages"
    );
    assert_eq!(h.len(), 2_086_624);
    let mut back = Vec::new();
    message::decode_hex(&h, &mut back).unwrap();
    assert_eq!(back, file);
}

#[test]
fn template_rows_carry_data_flats_darks_and_angles() {
    let scan = ApsScan::read(&tooth()).unwrap();
    let mut s = TemplateSource::new(
        &tplan(&tooth(), TemplateMode::Rows { rows: 1 }, AngleSource::File),
        Encoding::Envelope,
        0,
    )
    .unwrap();
    assert_eq!(s.distinct_messages(), 2);
    let mut p = Projections::default();
    for (seq, row) in [(0u64, 0usize), (1, 1), (2, 0)] {
        let body = s.next(seq, 0).to_vec();
        message::projections_of(&decode(&body).unwrap(), &mut p).unwrap();
        assert_eq!(
            (p.n_angles, p.rows, p.cols, p.first_row),
            (181, 1, 640, row)
        );
        assert_eq!(
            p.data[..640],
            scan.data.plane(0)[row * 640..(row + 1) * 640]
        );
        assert_eq!(
            p.data[640 * 180..],
            scan.data.plane(180)[row * 640..(row + 1) * 640]
        );
        assert_eq!(
            p.flat,
            scan.white.as_ref().unwrap().mean_plane()[row * 640..(row + 1) * 640]
        );
        assert!((p.theta_rad[180] as f64 - 179.0055f64.to_radians()).abs() < 1e-4);
    }
    let mut paper = TemplateSource::new(
        &tplan(&tooth(), TemplateMode::Rows { rows: 2 }, AngleSource::Paper),
        Encoding::Envelope,
        0,
    )
    .unwrap();
    let body = paper.next(0, 0).to_vec();
    message::projections_of(&decode(&body).unwrap(), &mut p).unwrap();
    assert_eq!(p.rows, 2);
    assert!((p.theta_rad[180] - std::f32::consts::PI).abs() < 1e-6);
    assert!(TemplateSource::new(
        &tplan(&tooth(), TemplateMode::Rows { rows: 3 }, AngleSource::File),
        Encoding::Envelope,
        0
    )
    .is_err());
    let err = TemplateSource::new(
        &tplan(
            std::path::Path::new("/nonexistent.h5"),
            TemplateMode::WholeFile,
            AngleSource::File,
        ),
        Encoding::Envelope,
        0,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("/nonexistent.h5"), "{err}");
}

#[test]
fn phantom_command_writes_a_file_in_tooths_layout() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("phantom.h5");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_mass"))
        .args([
            "phantom",
            "--out",
            out.to_str().unwrap(),
            "--center-offset-px",
            "3.5",
        ])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let p = ApsScan::read(&out).unwrap();
    let t = ApsScan::read(&tooth()).unwrap();
    assert_eq!(
        (
            p.data.dims,
            p.white.as_ref().unwrap().dims,
            p.dark.as_ref().unwrap().dims,
            p.theta.as_ref().unwrap().len()
        ),
        (
            t.data.dims,
            t.white.as_ref().unwrap().dims,
            t.dark.as_ref().unwrap().dims,
            t.theta.as_ref().unwrap().len()
        )
    );
    assert!(String::from_utf8_lossy(&st.stdout).contains("rotation axis at 323.50 px"));
    // The template source streams it like tooth.
    let mut s = TemplateSource::new(
        &tplan(&out, TemplateMode::Rows { rows: 2 }, AngleSource::File),
        Encoding::Envelope,
        0,
    )
    .unwrap();
    assert!(decode(s.next(0, 0)).is_ok());
}

#[test]
fn mass_cli_reports_bad_flags_clearly() {
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_mass"))
            .args(args)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout),
        )
    };
    let (ok, t) = run(&["run", "--topic", "t"]);
    assert!(!ok && t.contains("bootstrap_servers"), "{t}");
    let (ok, t) = run(&[
        "run",
        "--bootstrap-servers",
        "127.0.0.2:9092",
        "--topic",
        "t",
        "--source",
        "nope",
    ]);
    assert!(
        !ok && t.contains("invalid value 'nope' for '--source") && t.contains("cluster"),
        "{t}"
    );
    let (ok, t) = run(&[
        "run",
        "--bootstrap-servers",
        "127.0.0.2:9092",
        "--topic",
        "t",
        "--rate-msgs-per-s",
        "100",
        "--duration-s",
        "30",
        "--dry-run",
    ]);
    assert!(
        ok && t.contains("rate:          100 msg/s") && t.contains("stop after:    30 s"),
        "{t}"
    );
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("m.toml");
    std::fs::write(&f, "topic = \"t\"\nbootstrap_servers = \"a:1\"\nrate = 5\n").unwrap();
    let (ok, t) = run(&["run", f.to_str().unwrap(), "--dry-run"]);
    assert!(!ok && t.contains("rate") && t.contains("line 3"), "{t}");
}

/// Regression: `mass run --dry-run` passed on a template file that the real run then refused.
#[test]
fn a_dry_run_opens_the_template_as_the_run_would() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_mass"))
            .args(args)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout),
        )
    };
    let base = |file: &str| -> Vec<String> {
        [
            "run",
            "--bootstrap-servers",
            "127.0.0.2:9092",
            "--topic",
            "t",
            "--source",
            "template",
            "--template-file",
            file,
            "--dry-run",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // Not HDF5 at all.
    let junk = dir.path().join("junk.h5");
    std::fs::write(&junk, b"not an hdf5 file").unwrap();
    let args = base(junk.to_str().unwrap());
    let (ok, t) = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        !ok && t.contains("template_file") && t.contains("junk.h5"),
        "{t}"
    );
    // HDF5, but with angles that fit neither unit (rows mode reads them).
    let bad = dir.path().join("bad-theta.h5");
    let mut scan = mass::phantom::scan(&mass::phantom::ScanParams {
        cols: 64,
        angles: 5,
        rows: 1,
        ..Default::default()
    })
    .scan;
    scan.theta = Some(vec![0.0, 300.0, 600.0, 900.0, 1200.0]);
    scan.write(&bad).unwrap();
    let mut args = base(bad.to_str().unwrap());
    args.extend(["--template-mode".into(), "rows".into()]);
    let (ok, t) = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!ok && t.contains("neither degrees nor radians"), "{t}");
    // A good file passes, and the plan says what it found.
    let good = dir.path().join("good.h5");
    scan.theta = Some(vec![0.0, 45.0, 90.0, 135.0, 180.0]);
    scan.write(&good).unwrap();
    let args = base(good.to_str().unwrap());
    let (ok, t) = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        ok && t.contains("template ") && t.contains("good.h5"),
        "{t}"
    );
}

#[test]
fn row_blocks_of_a_file_without_flats_say_what_was_assumed() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bare.h5");
    let mut scan = mass::phantom::scan(&mass::phantom::ScanParams {
        cols: 64,
        angles: 31,
        rows: 2,
        n_white: 0,
        n_dark: 0,
        ..Default::default()
    })
    .scan;
    // Radians with no units attribute: told by their range.
    scan.theta = Some(pilot_core::contract::aps::paper_theta_rad(31));
    scan.theta_units = None;
    scan.write(&f).unwrap();
    let mut s = TemplateSource::new(
        &tplan(&f, TemplateMode::Rows { rows: 1 }, AngleSource::File),
        Encoding::Envelope,
        0,
    )
    .unwrap();
    let notes = s.notes().join("; ");
    assert!(
        notes.contains("no flat field") && notes.contains("no dark field"),
        "{notes}"
    );
    let mut p = Projections::default();
    message::projections_of(&decode(s.next(0, 0)).unwrap(), &mut p).unwrap();
    assert!(p.dark.iter().all(|&d| d == 0.0));
    assert!((p.theta_rad[30] - std::f32::consts::PI).abs() < 1e-6);
    let open = p.flat[0];
    assert!((19_000.0..21_500.0).contains(&open), "open beam {open}");
}
