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
    let theta: Vec<f64> = s.scan.theta_deg.iter().map(|d| d.to_radians()).collect();
    let (flat, dark) = (s.scan.white.mean_plane(), s.scan.dark.mean_plane());
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

#[test]
fn centre_search_recovers_known_offsets() {
    for offset in [0.0, 13.3, -21.6] {
        let p = ScanParams {
            center_offset_px: offset,
            rows: 1,
            ..Default::default()
        };
        let s = scan(&p);
        let theta: Vec<f64> = s.scan.theta_deg.iter().map(|d| d.to_radians()).collect();
        let (flat, dark) = (s.scan.white.mean_plane(), s.scan.dark.mean_plane());
        let mut y = vec![0f32; 181 * 640];
        row_sinogram(&s.scan.data.values, &flat, &dark, (181, 1, 640), 0, &mut y);
        let found = CenterSearch::new(640, &theta, CenterSearchSettings::default(), 1)
            .find(&y, None)
            .center;
        assert!(
            (found - s.center_px).abs() <= 0.5,
            "offset {offset}: found {found}, true {}",
            s.center_px
        );
    }
}
