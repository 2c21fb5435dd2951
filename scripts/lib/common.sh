# Shared by scripts/test.sh and scripts/demo.sh: package installation and build.
# shellcheck shell=bash

RUNWAY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Debian packages runway needs to build and test. jackd2 asks whether to enable
# real-time priority; DEBIAN_FRONTEND=noninteractive answers with the default.
# PipeWire: the library for the backend, the daemon and its tools (pw-link,
# pw-cli, pw-metadata) for the tests' private headless servers, and its JACK
# library (pw-jack) for the probe; without recommendations, no session manager
# comes along.
# systemd brings systemd-analyze (the unit files' test) and systemd.pc (where the
# units are installed); container images of Debian 12 come without it.
# clang and libclang-rt-dev build the libFuzzer targets: Debian's clang only
# recommends the runtime (libFuzzer, the sanitizers), and recommendations are
# not installed here. clang-format checks the layout of the C (ctest format).
# bash-completion runs the completion test under its framework, as an
# interactive shell would; man-db formats the man pages as lintian does.
# python3 and golang-go (Go 1.19) build and test the worker SDK's bindings
# (clients/python, clients/go); python3-pip installs the Python package as a
# user would, python3-numpy tests its zero-copy numpy views (the binding
# itself needs neither).
# liblilv-dev (which brings lv2-dev and its spec bundles) hosts LV2 plugins;
# the LV2 tests run Debian's mda-lv2 and x42-plugins against lv2apply
# (lilv-utils), and the LV2 benchmark compares with jalv and an LSP plugin.
RUNWAY_PACKAGES=(
  build-essential cmake pkg-config
  jackd2 libjack-jackd2-dev
  libpipewire-0.3-dev pipewire pipewire-bin pipewire-jack
  libuv1-dev libcmocka-dev libjansson-dev libinih-dev libsystemd-dev systemd
  clang libclang-rt-dev clang-format
  bash-completion man-db tmux
  python3 python3-pip python3-numpy golang-go
  liblilv-dev lilv-utils mda-lv2 x42-plugins lsp-plugins-lv2 jalv
)

# scripts/test-system.sh, besides the above: the Debian packaging tools, a
# Debian 12 tree (debootstrap) and the container to boot it in.
RUNWAY_SYSTEM_TEST_PACKAGES=(
  debhelper dpkg-dev fakeroot lintian
  debootstrap systemd-container
)

log() { printf '==> %s\n' "$*" >&2; }

# Installs whichever of the given packages are missing, running apt-get update
# at most once. Needs root (or sudo) only when something is missing.
install_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { log "need root to install: ${missing[*]}"; return 1; }
    sudo=(sudo)
  fi
  log "installing ${missing[*]}"
  if [ -z "${RUNWAY_APT_UPDATED:-}" ]; then
    "${sudo[@]}" apt-get update -qq
    RUNWAY_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# start_busy_loops N: N shell loops that keep a CPU busy at normal priority
# (load for the integration tests); stop_busy_loops ends them by pid, and so
# does the script's exit.
RUNWAY_BUSY_PIDS=()
start_busy_loops() {
  local i
  for ((i = 0; i < $1; i++)); do
    sh -c 'while :; do :; done' &
    RUNWAY_BUSY_PIDS+=($!)
  done
  trap stop_busy_loops EXIT
  log "started $1 busy loop(s): ${RUNWAY_BUSY_PIDS[*]}"
}

stop_busy_loops() {
  local pid
  for pid in "${RUNWAY_BUSY_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  RUNWAY_BUSY_PIDS=()
}

# configure_and_build DIR [cmake options...]
configure_and_build() {
  local dir=$1
  shift
  cmake -S "$RUNWAY_ROOT" -B "$RUNWAY_ROOT/$dir" "$@" >/dev/null
  cmake --build "$RUNWAY_ROOT/$dir" -j"$(nproc)"
}
