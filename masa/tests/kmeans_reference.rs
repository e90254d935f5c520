//! Streaming KMeans against a stored PySpark reference (tests/data/kmeans_reference.json, made by
//! tests/data/make_kmeans_reference.py with pyspark 4.3.0): same initial centres from setRandomCenters, and
//! centres and weights equal to 1e-9 relative after every batch.

use masa::kmeans::{random_centers, StreamingKMeans, TimeUnit};
use serde_json::Value;

fn flat(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|row| match row.as_array() {
            Some(r) => r.iter().map(|x| x.as_f64().unwrap()).collect::<Vec<_>>(),
            None => vec![row.as_f64().unwrap()],
        })
        .collect()
}

fn close(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let tol = 1e-9 * x.abs().max(y.abs()).max(1e-300);
        assert!((x - y).abs() <= tol, "{what}[{i}]: {x} vs pyspark {y}");
    }
}

#[test]
fn matches_pyspark_streaming_kmeans_update_for_every_scenario() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/kmeans_reference.json"
    ))
    .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut splits = 0;
    for s in doc["scenarios"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        let (k, dim) = (
            s["k"].as_u64().unwrap() as usize,
            s["dim"].as_u64().unwrap() as usize,
        );
        let unit = match s["time_unit"].as_str().unwrap() {
            "batches" => TimeUnit::Batches,
            _ => TimeUnit::Points,
        };
        let centres = random_centers(k, dim, s["seed"].as_u64().unwrap() as u32);
        close(
            &centres,
            &flat(&s["initial"]["centres"]),
            &format!("{name} initial centres"),
        );
        let weights = flat(&s["initial"]["weights"]);
        let mut m = StreamingKMeans::new(centres, weights, dim, s["decay"].as_f64().unwrap(), unit)
            .unwrap();
        for (i, step) in s["steps"].as_array().unwrap().iter().enumerate() {
            let st = m.update(&flat(&step["points"])).unwrap();
            splits += st.split.is_some() as usize;
            close(
                m.centres(),
                &flat(&step["centres"]),
                &format!("{name} step {i} centres"),
            );
            close(
                m.weights(),
                &flat(&step["weights"]),
                &format!("{name} step {i} weights"),
            );
        }
    }
    assert!(
        splits > 0,
        "the reference exercises the dying-cluster split"
    );
}
