"""Regenerate kmeans_reference.json: PySpark MLlib's StreamingKMeansModel.update on fixed batches.

Not a project dependency (pip install pyspark numpy; runs on Java 17). Each scenario starts from
StreamingKMeans(k, decayFactor, timeUnit).setRandomCenters(dim, weight, seed) and applies update() to each batch
in turn (one partition, so the per-cluster sums run in point order as MASA's do), recording centres and
weights after every batch.

    python3 masa/tests/data/make_kmeans_reference.py > masa/tests/data/kmeans_reference.json
"""
import json

import numpy as np
from pyspark import SparkContext
from pyspark.mllib.clustering import StreamingKMeans

SCENARIOS = [
    # name, k, dim, decay, time unit, weight, seed, batches, points per batch, data seed, spread
    ("batches-decay1-k10-3d", 10, 3, 1.0, "batches", 1.0, 42, 5, 200, 1, 1.0),
    ("batches-decay0.5-k4-2d", 4, 2, 0.5, "batches", 2.0, 7, 6, 150, 2, 0.5),
    ("points-halflife-k5-3d", 5, 3, float(np.exp(np.log(0.5) / 100.0)), "points", 1.0, 3, 4, 120, 3, 2.0),
    # Strong per-point decay and clusters far from the data: dying clusters get split.
    ("points-dying-k6-3d", 6, 3, 0.2, "points", 1.0, 11, 4, 80, 4, 0.3),
]


def batches_for(k, dim, n_batches, n_points, data_seed, spread):
    rng = np.random.RandomState(1000 + data_seed)
    centres = rng.uniform(-5, 5, size=(max(2, k // 2), dim))
    out = []
    for _ in range(n_batches):
        idx = rng.randint(0, len(centres), size=n_points)
        out.append((centres[idx] + spread * rng.randn(n_points, dim)).tolist())
    return out


def main():
    sc = SparkContext("local[1]", "kmeans-reference")
    sc.setLogLevel("ERROR")
    scenarios = []
    for name, k, dim, decay, unit, weight, seed, nb, npts, dseed, spread in SCENARIOS:
        skm = StreamingKMeans(k=k, decayFactor=decay, timeUnit=unit).setRandomCenters(dim, weight, seed)
        model = skm.latestModel()
        initial = {"centres": np.array(model.centers).tolist(), "weights": list(map(float, model.clusterWeights))}
        steps = []
        for batch in batches_for(k, dim, nb, npts, dseed, spread):
            rdd = sc.parallelize(batch, 1)
            model = model.update(rdd, decay, unit)
            steps.append({
                "points": batch,
                "centres": np.array(model.centers).tolist(),
                "weights": list(map(float, model.clusterWeights)),
            })
        scenarios.append({"name": name, "k": k, "dim": dim, "decay": decay, "time_unit": unit,
                          "weight": weight, "seed": seed, "initial": initial, "steps": steps})
    sc.stop()
    print(json.dumps({"pyspark": __import__("pyspark").__version__, "scenarios": scenarios}))


if __name__ == "__main__":
    main()
