#!/usr/bin/env bash
# The main job on this machine: set-up (skipped where done), then the pipeline end to end on the local default:
# a pilot boots a tansu broker, MASA consumes and clusters (streaming KMeans), MASS produces fresh 5,000-point
# messages, every message is accounted for, the pilot is stopped. Results land in results/quickstart-<time>/.
# MESSAGES (default 20000) sets the run's size.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
cargo build --release -p pilot-core -p mass -p masa
bin=target/release
work="${PILOT_WORKDIR:-pilots}"
messages="${MESSAGES:-20000}"
results="results/quickstart-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$results"

echo "== starting a pilot (local://, tansu)"
"$bin/pilot" --workdir "$work" start | tee "$results/pilot.txt"
id=$(head -n 1 "$results/pilot.txt" | sed -E 's/^pilot ([^:]+):.*/\1/')
trap '"$bin/pilot" --workdir "$work" stop "$id" || true' EXIT
"$bin/pilot" --workdir "$work" topic create "$id" points

echo "== MASA (kmeans, k = 10) consuming; MASS producing $messages messages"
"$bin/masa" run --pilot "$id" --pilot-workdir "$work" --topic points --processor kmeans \
  --expect-messages "$messages" --idle-timeout-s 5 --results-dir "$results" --consumer-id c0 --quiet \
  > "$results/masa.txt" 2>&1 &
masa_pid=$!
"$bin/mass" run --pilot "$id" --pilot-workdir "$work" --topic points --messages "$messages" \
  --results-dir "$results" --quiet
status=0
wait "$masa_pid" || status=$?
cat "$results/masa.txt"
echo "== accounting"
"$bin/masa" merge "$results" --expect-messages "$messages"
echo "== results in $results"
exit "$status"
