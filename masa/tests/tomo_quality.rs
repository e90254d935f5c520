//! Reconstruction quality on the analytic Shepp-Logan phantom (closed-form projections, never the projector
//! under test): 640 x 640, 181 angles over [0, pi], no noise, RMSE inside a circle of radius 0.98.

use masa::tomo::fbp::FbpPlan;
use masa::tomo::filter::FilterKind;
use masa::tomo::quality::rmse_in_circle;
use mass::phantom::{image, shepp_logan, sinogram};

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
    let plan = GridRecPlan::new(n, n, n as f64 / 2.0, &theta, FilterKind::SheppLogan);
    let mut work = plan.work();
    let s32: Vec<f32> = sino.iter().map(|&v| v as f32).collect();
    let mut out = vec![0f32; n * n];
    let t = std::time::Instant::now();
    plan.reconstruct(&mut work, &s32, &mut out);
    eprintln!("gridrec {:?}", t.elapsed());
    let out64: Vec<f64> = out.iter().map(|&v| v as f64).collect();
    let rmse = rmse_in_circle(&out64, &truth, n, 0.98);
    let diff = rmse_in_circle(&out64, &fbp, n, 0.98);
    eprintln!("gridrec RMSE {rmse:.4}, FBP {fbp_rmse:.4}, gridrec vs FBP {diff:.4}");
    assert!(
        rmse <= 0.03 && rmse <= fbp_rmse,
        "gridrec {rmse}, fbp {fbp_rmse}"
    );
}
