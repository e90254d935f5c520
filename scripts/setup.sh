#!/usr/bin/env bash
# Install what the project needs on Debian bookworm, skipping what is already there. Used by both README
# commands (scripts/main.sh, scripts/test.sh) and so by CI. Prints what it does.
#
#   scripts/setup.sh               Debian packages, tansu
#   scripts/setup.sh --frameworks  also Java 17, headless Chromium (the HTML report's test) and the
#                                  Python frameworks Spark, Dask and Flink pilots start
#                                  (pyspark, distributed, apache-flink-libraries:
#                                  scripts/frameworks-requirements.txt, pinned) in one virtual
#                                  environment outside the clone, $PILOT_FRAMEWORKS_VENV or
#                                  ~/.local/share/pilot-streaming/venv. scripts/test.sh asks for them.
set -euo pipefail
cd "$(dirname "$0")/.."

frameworks=false
for a in "$@"; do
  case "$a" in
    --frameworks) frameworks=true ;;
    *) echo "setup: unknown option $a (use --frameworks)" >&2; exit 2 ;;
  esac
done

TANSU_VERSION=0.6.0
APT_PACKAGES=(build-essential pkg-config cmake libcurl4-openssl-dev zlib1g-dev libssl-dev libhdf5-dev hdf5-tools
  slurmctld slurmd slurm-client munge openssh-server)  # the last five: the local SLURM test cluster and its ssh login node
if $frameworks; then
  APT_PACKAGES+=(openjdk-17-jre-headless python3-venv  # Spark's JVM; venv for the frameworks' environment
    chromium)  # headless, for the test that `plots --html` reports render in a browser
fi

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
if $frameworks; then
  venv="${PILOT_FRAMEWORKS_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/pilot-streaming/venv}"
  req=scripts/frameworks-requirements.txt
  stamp="$venv/.requirements"
  if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
    echo "setup: frameworks present ($venv: $(grep -E '^(pyspark|distributed)==' "$req" | tr '\n' ' '))"
  else
    echo "setup: installing the frameworks into $venv (pinned in $req; about 560 MB, a minute or two) ..."
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
    cp "$req" "$stamp"
  fi
fi
echo "setup: done"
