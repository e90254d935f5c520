#!/usr/bin/env bash
# The whole test suite: set-up (skipped where done), formatting, lints, every crate's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --frameworks
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test (every test binary runs; every failure is listed at the end)"
cargo test --workspace --no-fail-fast
