//! Reconstruction quality on the analytic Shepp-Logan phantom (closed-form projections, never the projector
//! under test): 640 x 640, 181 angles over [0, pi], no noise, RMSE inside a circle of radius 0.98.

use masa::tomo::center::{CenterSearch, CenterSearchSettings};
use masa::tomo::fbp::FbpPlan;
use masa::tomo::filter::FilterKind;
use masa::tomo::mlem::{Mlem, MlemInit};
use masa::tomo::pipeline::row_sinogram;
use masa::tomo::quality::rmse_in_circle;
use mass::phantom::{image, shepp_logan, sinogram};
use mass::phantom::{scan, ScanParams};
use pilot_core::contract::aps::ThetaUnits;

fn setup(n: usize, angles: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let theta: Vec<f64> = (0..angles)
        .map(|i| std::f64::consts::PI * i as f64 / (angles - 1) as f64)
        .collect();
    let sino = sinogram(&shepp_logan(), &theta, n, n as f64 / 2.0, 4);
    let truth = image(&shepp_logan(), n, 4);
    (theta, sino, truth)
}

#[test]
fn fbp_with_a_shepp_logan_filter_reconstructs_the_phantom() {
    let n = 640;
    let (theta, sino, truth) = setup(n, 181);
    let mut out = vec![0.0; n * n];
    let mut rmse = Vec::new();
    for f in [FilterKind::SheppLogan, FilterKind::Ramp, FilterKind::Hann] {
        FbpPlan::new(n, n, n as f64 / 2.0, &theta, f).reconstruct(&sino, &mut out);
        rmse.push(rmse_in_circle(&out, &truth, n, 0.98));
    }
    eprintln!(
        "FBP RMSE: shepp-logan {:.4}, ramp {:.4}, hann {:.4}",
        rmse[0], rmse[1], rmse[2]
    );
    assert!(rmse[0] < 0.03, "shepp-logan RMSE {}", rmse[0]);
    assert!(rmse.iter().all(|r| *r < 0.06), "{rmse:?}");
}

#[test]
fn a_wrong_centre_makes_fbp_worse() {
    let n = 256;
    let (theta, sino, truth) = setup(n, 181);
    let mut out = vec![0.0; n * n];
    let mut plan = FbpPlan::new(n, n, n as f64 / 2.0, &theta, FilterKind::SheppLogan);
    plan.reconstruct(&sino, &mut out);
    let right = rmse_in_circle(&out, &truth, n, 0.98);
    let mut off = FbpPlan::new(n, n, n as f64 / 2.0 + 3.0, &theta, FilterKind::SheppLogan);
    off.reconstruct(&sino, &mut out);
    let wrong = rmse_in_circle(&out, &truth, n, 0.98);
    assert!(
        wrong > 2.0 * right,
        "right centre {right}, 3 px off {wrong}"
    );
}

#[test]
fn gridrec_matches_the_phantom_and_beats_fbp() {
    use masa::tomo::gridrec::GridRecPlan;
    let n = 640;
    let (theta, sino, truth) = setup(n, 181);
    let mut fbp = vec![0.0; n * n];
    FbpPlan::new(n, n, n as f64 / 2.0, &theta, FilterKind::SheppLogan).reconstruct(&sino, &mut fbp);
    let fbp_rmse = rmse_in_circle(&fbp, &truth, n, 0.98);
    let plan = GridRecPlan::new(n, n, &theta, FilterKind::SheppLogan);
    let mut work = plan.work();
    let s32: Vec<f32> = sino.iter().map(|&v| v as f32).collect();
    let mut out = vec![0f32; n * n];
    plan.reconstruct(&mut work, n as f64 / 2.0, &s32, &mut out);
    let out64: Vec<f64> = out.iter().map(|&v| v as f64).collect();
    let rmse = rmse_in_circle(&out64, &truth, n, 0.98);
    let diff = rmse_in_circle(&out64, &fbp, n, 0.98);
    eprintln!("gridrec RMSE {rmse:.4}, FBP {fbp_rmse:.4}, gridrec vs FBP {diff:.4}");
    assert!(
        rmse <= 0.03 && rmse <= fbp_rmse,
        "gridrec {rmse}, fbp {fbp_rmse}"
    );
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[test]
fn mlem_likelihood_rises_every_iteration_and_30_iterations_reach_the_phantom() {
    let n = 640;
    let (theta, sino, truth) = setup(n, 181);
    let y: Vec<f32> = sino.iter().map(|&v| v as f32).collect();
    let m = Mlem::new(n, n, n as f64 / 2.0, &theta);
    let mut w = m.projector().work();
    let mut x = vec![0f32; n * n];
    m.init(MlemInit::Mean, &y, &mut x);
    let mut last = f64::NEG_INFINITY;
    for it in 0..30 {
        let ll = m.iterate(&mut w, &y, &mut x);
        assert!(
            ll > last,
            "iteration {it}: log-likelihood {ll} after {last}"
        );
        last = ll;
    }
    assert!(m.log_likelihood(&mut w, &y, &x) > last);
    let rmse = rmse_in_circle(&to_f64(&x), &truth, n, 0.98);
    eprintln!("ML-EM 30 iterations RMSE {rmse:.4}");
    assert!(rmse <= 0.06, "RMSE {rmse}");
}

#[test]
fn with_poisson_noise_mlem_beats_filtered_back_projection() {
    // Counts with Poisson noise (a dim beam, so noise matters), normalised and minus-logged as the pipeline does.
    let n = 256;
    let p = ScanParams {
        cols: n,
        rows: 1,
        i0: 300.0,
        poisson: true,
        seed: 11,
        ..Default::default()
    };
    let s = scan(&p);
    let theta: Vec<f64> = s
        .scan
        .theta
        .as_ref()
        .unwrap()
        .iter()
        .map(|d| d.to_radians())
        .collect();
    let (flat, dark) = (
        s.scan.white.as_ref().unwrap().mean_plane(),
        s.scan.dark.as_ref().unwrap().mean_plane(),
    );
    let mut y = vec![0f32; 181 * n];
    row_sinogram(&s.scan.data.values, &flat, &dark, (181, 1, n), 0, &mut y);
    let truth: Vec<f64> = image(&shepp_logan(), n, 4)
        .iter()
        .map(|v| v * s.mu)
        .collect();
    let mut fbp = vec![0.0; n * n];
    FbpPlan::new(n, n, s.center_px, &theta, FilterKind::SheppLogan)
        .reconstruct(&to_f64(&y), &mut fbp);
    let m = Mlem::new(n, n, s.center_px, &theta);
    let mut x = vec![0f32; n * n];
    m.reconstruct(&mut m.projector().work(), &y, MlemInit::Mean, 30, &mut x);
    let (e_fbp, e_mlem) = (
        rmse_in_circle(&fbp, &truth, n, 0.98),
        rmse_in_circle(&to_f64(&x), &truth, n, 0.98),
    );
    eprintln!(
        "noisy: FBP RMSE {e_fbp:.5}, ML-EM 30 RMSE {e_mlem:.5} (mu {:.5})",
        s.mu
    );
    assert!(e_mlem < e_fbp, "ML-EM {e_mlem} vs FBP {e_fbp}");
}

/// The sinogram of row 0 of a phantom scan, normalised as the processors do.
fn phantom_sinogram(p: &ScanParams) -> (Vec<f32>, Vec<f64>, f64) {
    let s = scan(p);
    let [a, r, c] = s.scan.data.dims;
    let f = s.scan.fields(None);
    let mut y = vec![0f32; a * c];
    row_sinogram(&s.scan.data.values, &f.flat, &f.dark, (a, r, c), 0, &mut y);
    let theta = s.scan.theta_rad(ThetaUnits::Auto).unwrap();
    (y, theta, s.center_px)
}

/// Regression (issue: 256-column scans reconstructed around an axis 70 px off): the centre search is right for
/// any detector width and axis offsets up to 20 % of the width, the object inside the field of view or cut off.
#[test]
fn centre_search_is_right_for_every_width_and_offset() {
    for cols in [128usize, 256, 511, 640, 1024, 2048] {
        let w = cols as f64;
        // (offset as a fraction of the width, phantom size, Poisson noise)
        // A full-size phantom (object_scale 1) is cut off by the detector's edge once the axis is off-centre.
        let cases: &[(f64, f64, bool)] = if cols >= 1024 {
            &[(0.0, 1.0, false), (-0.2, 0.55, true), (0.2, 1.0, false)]
        } else {
            &[
                (0.0, 1.0, false),
                (0.0, 1.0, true),
                (0.2, 0.55, false),
                (-0.2, 0.55, true),
                (0.2, 1.0, false),
                (-0.2, 1.0, true),
                (0.1, 1.0, false),
                (-0.15, 0.7, false),
            ]
        };
        for &(frac, object_scale, poisson) in cases {
            let offset = (frac * w * 10.0).round() / 10.0 + 0.3;
            let p = ScanParams {
                cols,
                rows: 1,
                center_offset_px: offset,
                object_scale,
                poisson,
                ..Default::default()
            };
            let (y, theta, truth) = phantom_sinogram(&p);
            let found = CenterSearch::new(cols, &theta, CenterSearchSettings::default(), 2)
                .unwrap()
                .find(&y);
            // Within half a pixel, or 0.15 % of the width for the widest detectors.
            let tol = 0.5f64.max(0.0015 * w);
            assert!(
                (found.center - truth).abs() <= tol,
                "{cols} columns, axis {frac:+} of the width off (object {object_scale}, noise {poisson}): found {} (start {}), true {truth}",
                found.center,
                found.start
            );
        }
    }
}

#[test]
fn a_search_range_that_does_not_fit_the_detector_is_an_error() {
    let theta = pilot_core::contract::aps::paper_theta_rad(181);
    let e = CenterSearch::new(
        256,
        &theta,
        CenterSearchSettings {
            range_px: Some(200.0),
        },
        1,
    )
    .err()
    .expect("refused");
    let text = e.to_string();
    assert!(
        text.contains("+-200 px does not fit a 256-column detector")
            && text.contains("at most +-115"),
        "{text}"
    );
    assert!(CenterSearch::new(
        256,
        &theta,
        CenterSearchSettings {
            range_px: Some(100.0)
        },
        1
    )
    .is_ok());
    assert!(CenterSearch::new(4, &theta, CenterSearchSettings::default(), 1).is_err());
}

#[test]
fn centroid_estimate_is_exact_for_an_object_in_the_field_of_view() {
    for (cols, offset) in [(256usize, 0.3), (511, -40.7), (640, 61.3)] {
        let p = ScanParams {
            cols,
            rows: 1,
            center_offset_px: offset,
            object_scale: 0.6,
            ..Default::default()
        };
        let (y, theta, truth) = phantom_sinogram(&p);
        let c = masa::tomo::center::centroid_estimate(&y, cols, &theta).unwrap();
        assert!(
            (c - truth).abs() < 0.2,
            "{cols}: centroid {c}, true {truth}"
        );
    }
    assert_eq!(
        masa::tomo::center::centroid_estimate(
            &[0.0; 64 * 5],
            64,
            &pilot_core::contract::aps::paper_theta_rad(5)
        ),
        None,
        "an empty sinogram has no centroid"
    );
}
