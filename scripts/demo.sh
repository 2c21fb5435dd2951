#!/usr/bin/env bash
# The runway demo: installs what is missing, builds, uses the running JACK
# server or starts a private dummy one, starts runwayd, adds a synth slot,
# plays a short phrase through it, records the output to out/demo.wav and
# prints the slot's reported latency, the latency measured on the recording,
# and the stats. Everything it started is stopped at the end.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
cd "$RUNWAY_ROOT"

install_packages "${RUNWAY_PACKAGES[@]}"
log "build"
configure_and_build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
BIN="$RUNWAY_ROOT/build/bin"

work=$(mktemp -d /tmp/runway-demo.XXXXXX)
jack_pid=""
daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ]; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  if [ -n "$jack_pid" ]; then
    kill -TERM "$jack_pid" 2>/dev/null || true
    wait "$jack_pid" 2>/dev/null || true
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

# Never let a JACK client start a server behind our back.
export JACK_NO_START_SERVER=1
if jack_lsp >/dev/null 2>&1; then
  log "using the running JACK server"
else
  export JACK_DEFAULT_SERVER="runway-demo-$$"
  log "no JACK server reachable: starting a dummy one named $JACK_DEFAULT_SERVER"
  JACK_NO_AUDIO_RESERVATION=1 jackd -n "$JACK_DEFAULT_SERVER" -d dummy -r 48000 -p 256 \
    >"$work/jackd.log" 2>&1 &
  jack_pid=$!
  wait_for 10 jack_lsp || { cat "$work/jackd.log"; log "jackd did not start"; exit 1; }
fi

socket="$work/control.sock"
ctl() { "$BIN/runwayctl" --socket "$socket" "$@"; }
client="runway-demo"
log "starting runwayd (JACK client \"$client\")"
"$BIN/runwayd" --socket "$socket" --name "$client" --state-dir "$work/state" --log-level warn \
  >"$work/runwayd.log" 2>&1 &
daemon_pid=$!
wait_for 10 ctl status || { cat "$work/runwayd.log"; log "runwayd did not start"; exit 1; }

log "adding a synth slot with a 50 ms write-ahead"
ctl slot add synth --plugin synth --latency-ms 50
slot_running() { ctl --json slot list | grep -Eq '"state": *"running"'; }
wait_for 10 slot_running || { ctl slot list; cat "$work/runwayd.log"; exit 1; }
ctl slot list

mkdir -p out
log "playing a phrase through the slot and recording it"
"$BIN/runway-probe" --client "$client" --slot synth --phrase --seconds 3 --wav out/demo.wav

log "stats"
ctl stats synth
log "the recording is in out/demo.wav"
