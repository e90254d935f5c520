#!/usr/bin/env bash
# Install what the project needs on Debian bookworm, skipping what is already there. Used by both README
# commands (scripts/main.sh, scripts/test.sh) and so by CI. Prints what it does.
set -euo pipefail

TANSU_VERSION=0.6.0
APT_PACKAGES=(build-essential pkg-config cmake libcurl4-openssl-dev zlib1g-dev libssl-dev libhdf5-dev hdf5-tools
  slurmctld slurmd slurm-client munge openssh-server)  # the last five: the local SLURM test cluster and its ssh login node

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: Debian packages present (${APT_PACKAGES[*]})"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found: install a Rust toolchain (rustup) first" >&2
  exit 1
fi

# tansu, the local Kafka-protocol broker, lives outside the clone (cargo's bin dir) so fresh clones reuse it.
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
tansu_bin=$(command -v tansu 2>/dev/null || true)
[ -n "$tansu_bin" ] || { [ -x "$cargo_bin/tansu" ] && tansu_bin="$cargo_bin/tansu"; } || true
if [ -n "$tansu_bin" ] && "$tansu_bin" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
  echo "setup: tansu $TANSU_VERSION present ($tansu_bin)"
else
  echo "setup: installing tansu $TANSU_VERSION into $cargo_bin (12-18 minutes on 2 cores the first time) ..."
  (cd / && cargo install tansu --version "$TANSU_VERSION" --locked --no-default-features --features dynostore)
fi
echo "setup: done"
