"""Python peers for `cargo bench -p masa --bench kernels` (never a project dependency).

    pip install numpy scikit-learn astra-toolbox algotom midas-tomo

Runs each peer on the bench's inputs, one thread (OMP/MKL/OpenBLAS/numba threads pinned to 1 by the bench),
and prints one JSON line per kernel: {"kernel", "peer", "ms" (median), "runs"} or {"kernel", "peer",
"missing": "pip install ..."} when the package is not importable, or {"kernel", "peer", "error": "..."}.

Usage: kernels.py DIR RUNS, where DIR holds what the bench wrote:
  kmeans.f64      64 messages x 5,000 x 3 points (float64, C order), k = 10
  shepp.f32       a 181 x 640 Shepp-Logan sinogram of line integrals (float32), centre 320, angles theta.f64
  tooth.f32       tooth.h5's first row as a minus-log sinogram, 181 x 640 (float32)
  theta.f64       the 181 angles (radians)
"""
import json
import os
import sys
import tempfile
import time

import numpy as np


def median_ms(f, runs):
    f()
    t = []
    for _ in range(runs):
        s = time.perf_counter()
        f()
        t.append((time.perf_counter() - s) * 1e3)
    t.sort()
    return t[len(t) // 2]


def emit(**kw):
    print(json.dumps(kw), flush=True)


def peer(kernel, name, package, body):
    try:
        ms, runs = body()
        emit(kernel=kernel, peer=name, ms=ms, runs=runs)
    except ImportError:
        emit(kernel=kernel, peer=name, missing=f"pip install {package}")
    except Exception as e:  # a peer that fails is reported, not fatal
        emit(kernel=kernel, peer=name, error=f"{type(e).__name__}: {e}")


def main():
    d, runs = sys.argv[1], int(sys.argv[2])
    theta = np.fromfile(os.path.join(d, "theta.f64"), dtype=np.float64)
    angles = len(theta)
    shepp = np.fromfile(os.path.join(d, "shepp.f32"), dtype=np.float32).reshape(angles, -1)
    tooth = np.fromfile(os.path.join(d, "tooth.f32"), dtype=np.float32).reshape(angles, -1)
    cols = shepp.shape[1]

    def kmeans():
        from sklearn.cluster import MiniBatchKMeans

        x = np.fromfile(os.path.join(d, "kmeans.f64"), dtype=np.float64).reshape(64, 5000, 3)
        m = MiniBatchKMeans(n_clusters=10, batch_size=5000, n_init=1, random_state=0)
        m.partial_fit(x[0])
        i = [0]

        def step():
            i[0] = (i[0] + 1) % 64
            m.partial_fit(x[i[0]])

        return median_ms(step, max(runs, 50)), max(runs, 50)

    peer("kmeans_update", "scikit-learn MiniBatchKMeans.partial_fit", "scikit-learn", kmeans)

    def gridrec():
        from midas_tomo import run_tomo

        # Two slices as counts (white 1000, dark 0) of the sinogram scaled by 1 / cols (so no count underflows):
        # the input is for timing midas-tomo, not for comparing its image with ours.
        counts = (1000.0 * np.exp(-shepp / cols)).astype(np.float32)
        data = np.stack([counts, counts], axis=1)  # (angles, rows, cols)
        dark = np.zeros((1, 2, cols), np.float32)
        white = np.full((1, 2, cols), 1000.0, np.float32)
        work = tempfile.mkdtemp(prefix="midas-")
        deg = np.degrees(theta)
        return median_ms(lambda: run_tomo(data, dark, white, work, deg, shifts=0.0), runs) / 2.0, runs

    peer("gridrec_pair", "midas-tomo run_tomo (2 slices, per slice)", "midas-tomo", gridrec)

    def mlem():
        import astra

        vol = astra.create_vol_geom(cols, cols)
        proj = astra.create_proj_geom("parallel", 1.0, cols, theta)
        pid = astra.create_projector("linear", proj, vol)
        w = astra.OpTomo(pid)
        y = shepp.astype(np.float32).ravel()
        sens = w.T * np.ones_like(y)
        sens[sens <= 0] = np.inf
        x = np.full(cols * cols, max(y.sum(), 1e-6) / max((w * np.ones(cols * cols, np.float32)).sum(), 1e-6), np.float32)

        def it():
            ax = w * x
            ratio = np.divide(y, ax, out=np.zeros_like(y), where=ax > 0)
            x[:] = x * (w.T * ratio) / sens

        return median_ms(it, runs), runs

    peer("mlem_iteration", "astra-toolbox CPU projector + numpy", "astra-toolbox", mlem)

    def centre():
        from algotom.prep.calculation import find_center_vo

        return median_ms(lambda: find_center_vo(tooth), runs), runs

    peer("centre_search", "algotom find_center_vo", "algotom", centre)


if __name__ == "__main__":
    main()
