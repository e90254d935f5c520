#!/usr/bin/env bash
# The main job on this machine: set-up (skipped where done), then an end-to-end run on the local default.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
cargo build --release -p pilot-core --bin pilot
exec target/release/pilot --workdir "${PILOT_WORKDIR:-pilots}" smoke "$@"
