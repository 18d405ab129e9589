//! The statistics against scipy's values in `../shared/stats/reference.json`.

use headstart::study::stats;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;

fn reference() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/stats/reference.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn close(got: f64, expected: f64, tol: f64, what: &str) {
    assert!((got - expected).abs() <= tol, "{what}: {got} vs scipy's {expected} (tolerance {tol})");
}

#[test]
fn summaries_and_tests_match_scipy() {
    for case in reference()["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (x, y) = (floats(&case["x"]), floats(&case["y"]));
        let f = |k: &str| case[k].as_f64().unwrap();
        close(stats::mean(&x), f("mean_x"), 1e-12, &format!("{name} mean_x"));
        close(stats::mean(&y), f("mean_y"), 1e-12, &format!("{name} mean_y"));
        close(stats::median(&x), f("median_x"), 1e-12, &format!("{name} median_x"));
        close(stats::iqm(&x), f("iqm_x"), 1e-12, &format!("{name} iqm_x"));
        close(stats::iqm(&y), f("iqm_y"), 1e-12, &format!("{name} iqm_y"));
        close(stats::mann_whitney_u(&x, &y), f("mann_whitney_u_x_greater"), 0.0, &format!("{name} U"));
        close(
            stats::probability_of_improvement(&x, &y),
            f("probability_of_improvement"),
            1e-12,
            &format!("{name} P(X > Y)"),
        );
        close(stats::mann_whitney_p(&x, &y), f("mann_whitney_p_two_sided"), 1e-9, &format!("{name} Mann-Whitney p"));
        close(stats::welch_p(&x, &y), f("welch_t_p_two_sided"), 1e-9, &format!("{name} Welch p"));
        // Bootstrap intervals: within a few percent of the interval's width.
        let mut rng = StdRng::seed_from_u64(0);
        let expected = floats(&case["iqm_x_ci95"]);
        let got = stats::bootstrap_ci(&x, stats::iqm, 20_000, &mut rng);
        let tol = 0.04 * (expected[1] - expected[0]);
        close(got.0, expected[0], tol, &format!("{name} IQM CI low"));
        close(got.1, expected[1], tol, &format!("{name} IQM CI high"));
        let expected = floats(&case["mean_diff_ci95_percentile_bootstrap"]);
        let got = stats::bootstrap_diff_ci(&x, &y, stats::mean, 50_000, &mut rng);
        let tol = 0.03 * (expected[1] - expected[0]);
        close(stats::mean(&x) - stats::mean(&y), f("mean_diff"), 1e-12, &format!("{name} mean_diff"));
        close(got.0, expected[0], tol, &format!("{name} mean diff CI low"));
        close(got.1, expected[1], tol, &format!("{name} mean diff CI high"));
    }
}

#[test]
fn curve_metrics_match_the_reference() {
    let curve = &reference()["curve"];
    let (steps, returns) = (floats(&curve["steps"]), floats(&curve["returns"]));
    let f = |k: &str| curve[k].as_f64().unwrap();
    close(stats::trapezoid(&steps, &returns), f("auc"), 1e-6, "auc");
    close(
        stats::normalized_auc_mean(&steps, &returns, f("norm_min"), f("norm_max")),
        f("normalized_auc_mean"),
        1e-12,
        "normalized auc",
    );
    assert_eq!(stats::first_step_at_or_above(&steps, &returns, 475.0), Some(f("first_step_at_or_above_475")));
    assert_eq!(stats::first_step_at_or_above(&steps, &returns, 1e9), None);
}

/// No test is computed on a value that is not finite: NaN or infinity gives no test, not a panic
/// (the study reports the comparison as not estimable).
#[test]
fn tests_refuse_values_that_are_not_finite() {
    let good = [1.0, 2.0, 3.0];
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let with_bad = [1.0, bad, 3.0];
        assert!(stats::welch(&good, &with_bad).is_none(), "{bad}");
        assert!(stats::welch(&with_bad, &good).is_none(), "{bad}");
        assert!(stats::one_sample_t(&with_bad).is_none(), "{bad}");
        assert!(stats::welch_p(&good, &with_bad).is_nan(), "{bad}");
    }
    assert!(stats::welch(&good, &[2.0, 4.0, 5.0]).is_some());
}
