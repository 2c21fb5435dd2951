#!/usr/bin/env bash
# The runway demo: installs what is missing, builds, picks the audio server,
# starts runwayd, adds a synth slot, plays a short phrase through it, records
# the output to out/demo.wav and prints the slot's reported latency, the
# latency measured on the recording, and the stats. Everything it started is
# stopped at the end.
#
#   scripts/demo.sh                     PipeWire when one runs, else JACK (the
#                                       running server, or a private dummy jackd)
#   scripts/demo.sh --backend pipewire  PipeWire: the running one, or a private
#                                       headless one (dummy driver)
#   scripts/demo.sh --backend jack      JACK, as above
#
# On PipeWire the probe (runway-probe, a JACK client) runs through pw-jack.
set -euo pipefail
backend=auto
while [ $# -gt 0 ]; do
  case $1 in
  --backend)
    backend=${2:-}
    shift 2 || true
    ;;
  *)
    echo "usage: scripts/demo.sh [--backend auto|pipewire|jack]" >&2
    exit 2
    ;;
  esac
done
case $backend in
auto | pipewire | jack) ;;
*)
  echo "scripts/demo.sh: --backend is auto, pipewire or jack" >&2
  exit 2
  ;;
esac
. "$(dirname "$0")/lib/common.sh"
cd "$RUNWAY_ROOT"

install_packages "${RUNWAY_PACKAGES[@]}"
log "build"
configure_and_build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
BIN="$RUNWAY_ROOT/build/bin"

work=$(mktemp -d /tmp/runway-demo.XXXXXX)
server_pid=""
daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ]; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# wait_for SECONDS COMMAND...: polls until the command succeeds.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      return 1
    fi
    sleep 0.1
  done
}

pipewire_answers() { timeout 5 pw-cli info 0 >/dev/null 2>&1; }

# A private headless PipeWire: a dummy driver, no session manager, its socket in $work.
start_pipewire() {
  export PIPEWIRE_RUNTIME_DIR="$work" PIPEWIRE_REMOTE="runway-demo-$$"
  log "no PipeWire server answers: starting a headless one ($PIPEWIRE_RUNTIME_DIR/$PIPEWIRE_REMOTE)"
  cat >"$work/pipewire.conf" <<CONF
context.properties = { core.daemon = true core.name = $PIPEWIRE_REMOTE support.dbus = false
  default.clock.rate = 48000 default.clock.allowed-rates = [ 48000 ] default.clock.quantum = 256
  default.clock.min-quantum = 256 default.clock.max-quantum = 256 }
context.spa-libs = { audio.convert.* = audioconvert/libspa-audioconvert support.* = support/libspa-support }
context.modules = [ { name = libpipewire-module-rt args = { } flags = [ ifexists nofail ] }
  { name = libpipewire-module-protocol-native } { name = libpipewire-module-profiler }
  { name = libpipewire-module-metadata } { name = libpipewire-module-spa-node-factory }
  { name = libpipewire-module-client-node } { name = libpipewire-module-access args = { } }
  { name = libpipewire-module-adapter } { name = libpipewire-module-link-factory } ]
context.objects = [ { factory = metadata args = { metadata.name = default } }
  { factory = spa-node-factory args = { factory.name = support.node.driver node.name = Dummy-Driver
      node.group = pipewire.dummy priority.driver = 20000 } } ]
CONF
  PIPEWIRE_REMOTE= pipewire -c "$work/pipewire.conf" >"$work/pipewire.log" 2>&1 &
  server_pid=$!
  wait_for 10 pipewire_answers || { cat "$work/pipewire.log"; log "pipewire did not start"; exit 1; }
}

# Never let a JACK client start a server behind our back.
export JACK_NO_START_SERVER=1
if [ "$backend" = auto ]; then
  backend=jack
  if command -v pw-cli >/dev/null && pipewire_answers; then
    backend=pipewire
  fi
fi
probe=("$BIN/runway-probe")
if [ "$backend" = pipewire ]; then
  if pipewire_answers; then
    log "using the running PipeWire server"
  else
    start_pipewire
  fi
  # runway-probe is a JACK client: through PipeWire's JACK layer.
  probe=(pw-jack "$BIN/runway-probe")
elif jack_lsp >/dev/null 2>&1; then
  log "using the running JACK server"
else
  export JACK_DEFAULT_SERVER="runway-demo-$$"
  log "no JACK server reachable: starting a dummy one named $JACK_DEFAULT_SERVER"
  JACK_NO_AUDIO_RESERVATION=1 jackd -n "$JACK_DEFAULT_SERVER" -d dummy -r 48000 -p 256 \
    >"$work/jackd.log" 2>&1 &
  server_pid=$!
  wait_for 10 jack_lsp || { cat "$work/jackd.log"; log "jackd did not start"; exit 1; }
fi

socket="$work/control.sock"
ctl() { "$BIN/runwayctl" --socket "$socket" "$@"; }
client="runway-demo"
log "starting runwayd on $backend (client \"$client\")"
"$BIN/runwayd" --backend "$backend" --socket "$socket" --name "$client" --state-dir "$work/state" \
  --log-level warn >"$work/runwayd.log" 2>&1 &
daemon_pid=$!
wait_for 10 ctl status || { cat "$work/runwayd.log"; log "runwayd did not start"; exit 1; }

log "adding a synth slot with a 50 ms write-ahead"
ctl slot add synth --plugin synth --latency-ms 50
slot_running() { ctl --json slot list | grep -Eq '"state": *"running"'; }
wait_for 10 slot_running || { ctl slot list; cat "$work/runwayd.log"; exit 1; }
ctl slot list

mkdir -p out
log "playing a phrase through the slot and recording it"
"${probe[@]}" --client "$client" --slot synth --phrase --seconds 3 --wav out/demo.wav

log "stats"
ctl stats synth
log "the recording is in out/demo.wav"
