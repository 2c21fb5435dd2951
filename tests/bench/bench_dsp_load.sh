#!/usr/bin/env bash
# bench_dsp_load.sh: the JACK DSP load of runwayd hosting 8 stereo passthrough
# slots, next to a chain of 8 plain in-graph passthrough clients, measured on
# one private JACK server in one run (STYLE.md guideline 12: the baseline
# comes from the same run). The spec's target: runwayd's DSP load with 8
# slots is at most one fifth of the 8-client chain's.
#
# One run:
#   1. starts its own `jackd -n <private name> -d dummy -r 48000 -p 128`
#      (JACK_NO_AUDIO_RESERVATION=1; every client finds it through
#      JACK_DEFAULT_SERVER, and JACK_NO_START_SERVER=1 keeps them from ever
#      starting another);
#   2. "idle": samples the DSP load with no client in the graph;
#   3. "chain8": 8 runway-bench-jack-passthrough clients chained
#      system:capture -> c1 -> ... -> c8 -> system:playback (both channels);
#   4. "runwayd8": runwayd (private socket and state directory) with 8
#      passthrough slots chained the same way, once all 8 workers run.
# runway-bench-jack-load samples jack_cpu_load() (percent of the period from
# cycle start to the end of the last client, averaged by the server over 32
# cycles) every 100 ms and prints one JSON line per configuration; the last
# line holds the ratios, raw and with the idle load subtracted from both.
# Everything this script starts is stopped by PID on exit, failure included.
#
# usage: bench_dsp_load.sh [--quick] [--check] [--bin-dir DIR] [--seconds S]
#                          [--warmup S] [--latency-ms X]
#   --quick      1 s per configuration (a smoke run; figures not meaningful)
#   --check      exit 1 when the raw ratio misses the target
#   --bin-dir    where runwayd, runwayctl, runway-worker and the bench
#                programs are (default: build/bin beside the sources)
#   --seconds    sampling time per configuration (default 10)
#   --warmup     settling time before sampling (default 1)
#   --latency-ms runwayd's --latency-ms (default: runwayd's own, 50 ms, the
#                spec's case); another value is for investigation only
# Exit status: 0, 1 when the benchmark could not run (or --check failed), 2
# for a usage error, 77 when jackd or its tools are missing (ctest: skipped).
set -u

prog=bench_dsp_load
quick=0
check=0
seconds=10
warmup=1
latency_ms=
bin_dir=

usage() {
  sed -n '/^# usage:/,/^set -u/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# Logs of the processes started so far; their tails go with any failure,
# since the temporary directory goes away on exit.
logs=()

die() {
  local f
  echo "$prog: $*" >&2
  for f in "${logs[@]}"; do
    [ -s "$f" ] && { echo "--- last lines of ${f##*/}:"; tail -n 20 "$f"; } >&2
  done
  exit 1
}

while [ $# -gt 0 ]; do
  case $1 in
  --quick) quick=1 ;;
  --check) check=1 ;;
  --bin-dir) [ $# -ge 2 ] || { usage >&2; exit 2; }; bin_dir=$2; shift ;;
  --seconds) [ $# -ge 2 ] || { usage >&2; exit 2; }; seconds=$2; shift ;;
  --warmup) [ $# -ge 2 ] || { usage >&2; exit 2; }; warmup=$2; shift ;;
  --latency-ms) [ $# -ge 2 ] || { usage >&2; exit 2; }; latency_ms=$2; shift ;;
  -h | --help) usage; exit 0 ;;
  *) echo "$prog: unknown option \"$1\"" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [ $quick -eq 1 ]; then
  seconds=1
  warmup=0.3
fi
if [ -z "$bin_dir" ]; then
  bin_dir=$(cd "$(dirname "$0")/../../build/bin" 2>/dev/null && pwd) ||
    die "no build/bin beside the sources; pass --bin-dir"
fi

for tool in jackd jack_lsp jack_connect; do
  if ! command -v $tool >/dev/null 2>&1; then
    echo "runway-bench-skip: $tool is not installed (JACK2 and its example tools are needed)" >&2
    exit 77
  fi
done
for exe in runwayd runwayctl runway-worker runway-bench-jack-passthrough runway-bench-jack-load; do
  [ -x "$bin_dir/$exe" ] || die "$bin_dir/$exe is missing; build it first (cmake --build build)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/runway-bench-dsp.XXXXXX") || die "mktemp failed"
export JACK_DEFAULT_SERVER="runway-bench-dsp-$$"
export JACK_NO_START_SERVER=1
export JACK_NO_AUDIO_RESERVATION=1
unset RUNWAY_SOCKET

# Every process this script starts, so that cleanup stops exactly those.
pids=()

# A PID that exited but was not reaped yet is a zombie: not alive.
alive() {
  [ -r "/proc/$1/stat" ] && ! sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | grep -q '^Z'
}

# Sends SIGTERM, waits up to 5 s, then SIGKILL; reaps it if it is our child.
stop_pid() {
  local pid=$1 i
  alive "$pid" || { wait "$pid" 2>/dev/null; return 0; }
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 100); do
    alive "$pid" || break
    sleep 0.05
  done
  if alive "$pid"; then
    echo "$prog: PID $pid ignored SIGTERM for 5 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  return 0
}

# Reaped PIDs leave the list at once: a PID the kernel reuses is someone else's.
untrack() {
  local keep=() p
  for p in "${pids[@]}"; do
    [ "$p" = "$1" ] || keep+=("$p")
  done
  pids=("${keep[@]}")
}

cleanup() {
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    stop_pid "${pids[i]}"
  done
  pids=()
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_until SECONDS WHAT CMD...: polls CMD every 50 ms until it succeeds.
wait_until() {
  local limit=$1 what=$2 i
  shift 2
  for i in $(seq $((limit * 20))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  die "timed out after ${limit} s waiting for $what"
}

has_ports() {
  local ports p
  ports=$(jack_lsp 2>/dev/null) || return 1
  for p in "$@"; do
    grep -qxF "$p" <<<"$ports" || return 1
  done
}

connect() {
  jack_connect "$1" "$2" || die "jack_connect $1 $2 failed"
}

# measure CONFIG: samples the DSP load; sets last_line (its JSON) and last_avg.
last_line=
last_avg=
measure() {
  # In the background: a signal then ends `wait` at once, not after the sampling.
  "$bin_dir/runway-bench-jack-load" --config "$1" --seconds "$seconds" --warmup "$warmup" \
    >"$tmp/load.json" &
  pids+=($!)
  local rc=0
  wait $! || rc=$?
  untrack $!
  [ $rc -eq 0 ] || die "measuring $1 failed"
  last_line=$(cat "$tmp/load.json")
  last_avg=$(sed -n 's/.*"load_avg":\([-0-9.e+]*\).*/\1/p' <<<"$last_line")
  [ -n "$last_avg" ] || die "unexpected output from runway-bench-jack-load: $last_line"
}

# Fields of `runwayctl --json stats` (one per line), without a JSON parser.
# stat_first NAME JSON: the first number named NAME (the daemon's block comes first).
stat_first() { awk -v k="\"$1\":" '$1 == k { gsub(/,/, "", $2); print $2; exit }' <<<"$2"; }
# stat_sum NAME JSON: the sum over all numbers named NAME (per-slot counters).
stat_sum() { awk -v k="\"$1\":" '$1 == k { gsub(/,/, "", $2); s += $2 } END { print s + 0 }' <<<"$2"; }

# ---- the server -------------------------------------------------------------
jackd -n "$JACK_DEFAULT_SERVER" -d dummy -r 48000 -p 128 >"$tmp/jackd.log" 2>&1 &
pids+=($!)
logs+=("$tmp/jackd.log")
jackd_pid=$!
wait_until 10 "jackd to start" has_ports system:capture_1 system:playback_2
alive $jackd_pid || die "jackd exited"

measure idle
echo "$last_line"
idle_avg=$last_avg

# ---- 8 plain clients in a chain ---------------------------------------------
chain=()
logs+=("$tmp/clients.log")
for i in 1 2 3 4 5 6 7 8; do
  "$bin_dir/runway-bench-jack-passthrough" "rwbench_c$i" 2>>"$tmp/clients.log" &
  pids+=($!)
  chain+=($!)
done
wait_until 10 "the 8 reference clients" has_ports rwbench_c{1..8}:out_2
for ch in 1 2; do
  prev=system:capture_$ch
  for i in 1 2 3 4 5 6 7 8; do
    connect "$prev" "rwbench_c$i:in_$ch"
    prev=rwbench_c$i:out_$ch
  done
  connect "$prev" system:playback_$ch
done
measure chain8
echo "$last_line"
chain_avg=$last_avg
for pid in "${chain[@]}"; do
  stop_pid "$pid"
  untrack "$pid"
done
no_chain() { ! jack_lsp 2>/dev/null | grep -q '^rwbench_c'; }
wait_until 10 "the reference clients to leave the graph" no_chain

# ---- runwayd with 8 passthrough slots ---------------------------------------
sock=$tmp/control.sock
ctl() { "$bin_dir/runwayctl" --socket "$sock" "$@"; }
mkdir -p "$tmp/state"
"$bin_dir/runwayd" --backend jack --name rwbench --socket "$sock" --state-dir "$tmp/state" \
  --worker "$bin_dir/runway-worker" --log-level warn ${latency_ms:+--latency-ms "$latency_ms"} >"$tmp/runwayd.log" 2>&1 &
pids+=($!)
logs+=("$tmp/runwayd.log")
runwayd_pid=$!
wait_until 10 "runwayd to listen" ctl status
for i in 1 2 3 4 5 6 7 8; do
  ctl slot add "s$i" --plugin passthrough >/dev/null || die "slot add s$i failed"
done
all_running() {
  [ "$(ctl --json slot list | grep -c '"state": *"running"')" -eq 8 ]
}
wait_until 20 "8 slots running" all_running
# The workers are runwayd's children; note them so none outlives the run.
workers=$(ctl --json slot list | sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p')
for ch in 1 2; do
  prev=system:capture_$ch
  for i in 1 2 3 4 5 6 7 8; do
    connect "$prev" "rwbench:s$i.in_$ch"
    prev=rwbench:s$i.out_$ch
  done
  connect "$prev" system:playback_$ch
done
s1=$(ctl --json stats) || die "runwayctl stats failed"
measure runwayd8
s2=$(ctl --json stats) || die "runwayctl stats failed"
alive $runwayd_pid || die "runwayd exited"
runwayd_avg=$last_avg
# runwayd's own view of the same window: its callback time (from its
# cumulative average), FUTEX_WAKEs per cycle, xruns and underruns.
extra=$(awk -v c1="$(stat_first cycles "$s1")" -v c2="$(stat_first cycles "$s2")" \
  -v a1="$(stat_first rt_cycle_ns_avg "$s1")" -v a2="$(stat_first rt_cycle_ns_avg "$s2")" \
  -v m2="$(stat_first rt_cycle_ns_max "$s2")" \
  -v x1="$(stat_first xruns "$s1")" -v x2="$(stat_first xruns "$s2")" \
  -v w1="$(stat_sum wakeups "$s1")" -v w2="$(stat_sum wakeups "$s2")" \
  -v u1="$(stat_sum underruns "$s1")" -v u2="$(stat_sum underruns "$s2")" \
  -v l="$(stat_first latency_ms "$(ctl --json status)")" 'BEGIN {
    n = c2 - c1
    printf "\"latency_ms\":%s,\"runwayd_cycles\":%d,", (l == "" ? "null" : l), n
    printf "\"runwayd_rt_cycle_ns_avg\":%.0f,", (n > 0 ? (a2 * c2 - a1 * c1) / n : 0)
    printf "\"runwayd_rt_cycle_ns_max_lifetime\":%d,", m2
    printf "\"runwayd_wakeups_per_cycle\":%.3f,", (n > 0 ? (w2 - w1) / n : 0)
    printf "\"runwayd_xruns\":%d,\"slot_underruns\":%d", x2 - x1, u2 - u1
  }')
echo "${last_line%\}},$extra}"

stop_pid $runwayd_pid
untrack $runwayd_pid
for pid in $workers; do
  if alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = runway-worker ]; then
    echo "$prog: worker $pid outlived runwayd; stopping it" >&2
    stop_pid "$pid"
  fi
done

# ---- the verdict ---------------------------------------------------------------
verdict=$(awk -v i="$idle_avg" -v c="$chain_avg" -v r="$runwayd_avg" -v s="$seconds" 'BEGIN {
  raw = (c > 0) ? r / c : -1
  sub_ok = (c - i > 0)
  sub_ratio = (sub_ok ? (r - i) / (c - i) : -1)
  printf "{\"bench\":\"dsp_load\",\"idle_avg\":%.3f,\"chain8_avg\":%.3f,\"runwayd8_avg\":%.3f,", i, c, r
  printf "\"ratio\":%s,", (raw >= 0 ? sprintf("%.3f", raw) : "null")
  printf "\"ratio_idle_subtracted\":%s,", (sub_ok ? sprintf("%.3f", sub_ratio) : "null")
  printf "\"target\":0.2,\"pass\":%s,", ((raw >= 0 && raw <= 0.2) ? "true" : "false")
  printf "\"pass_idle_subtracted\":%s,", ((sub_ok && sub_ratio <= 0.2) ? "true" : "false")
  printf "\"seconds\":%s}\n", s
}')
echo "$verdict"
if [ $check -eq 1 ] && ! grep -q '"pass":true' <<<"$verdict"; then
  exit 1
fi
exit 0
