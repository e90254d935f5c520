#!/usr/bin/env bash
# The main job on this machine: set-up (skipped where done), then the quickstart experiment on the local default
# (experiments/quickstart.toml: pilots boot a tansu broker, MASS produces KMeans points, MASA clusters them,
# message size x consumer processes, two measured repetitions after a warm-up each, every message accounted
# for), then its figures. Results: results/quickstart/ (results.csv, manifest.json, figures/). Running it again
# resumes: finished runs are kept (delete results/quickstart to start over). EXPERIMENT=<file> runs another.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
# What the runs need first; the figures' program after them (the first result comes sooner on a fresh machine).
cargo build --release -p experiments -p mass -p masa
bin=target/release
experiment="${EXPERIMENT:-experiments/quickstart.toml}"

echo "== experiment $experiment"
"$bin/experiments" run "$experiment" --results results
name=$(sed -nE 's/^name *= *"([^"]+)".*/\1/p' "$experiment" | head -n 1)
echo "== figures"
cargo build --release -p plots
"$bin/plots" "results/$name" --html
echo "== results in results/$name (results.csv, manifest.json, figures/, figures/report.html)"
