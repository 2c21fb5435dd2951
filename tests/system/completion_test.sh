#!/usr/bin/env bash
# The bash completion of runwayctl (completion/runwayctl.bash), unit level:
#
#   completion_test.sh COMPLETION RUNWAYCTL [BASH_COMPLETION]
#
# Commands, options and argument kinds come from the real runwayctl's --help;
# the daemon's answers (slot list, plugins, param list) come from a fake
# runwayctl that prints fixed JSON documents, pretty and compact, and logs how
# it was called. With BASH_COMPLETION (bash-completion's main script) the
# completion runs under _init_completion as in an interactive shell, else on
# its own. Without any daemon the real runwayctl must offer nothing, at once.
set -uo pipefail

completion=$1
real=$2
framework=${3:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0

cat >"$work/slots-pretty.json" <<'EOF'
{
  "slots": [
    {
      "name": "fx",
      "plugin": "delay",
      "ports": {"inputs": ["runway:fx.in_1"], "outputs": ["runway:fx.out_1"], "midi": null},
      "last_error": "name: \"odd\" \\ quoted"
    },
    {
      "name": "synth_2",
      "plugin": "synth",
      "ports": {"inputs": [], "outputs": ["runway:synth_2.out_1"], "midi": "runway:synth_2.midi_in"},
      "last_error": null
    }
  ]
}
EOF
printf '%s' '{"slots":[{"name":"fx","plugin":"delay","exec":null,"ports":{"inputs":["runway:fx.in_1"],"outputs":[],"midi":null}},{"name":"synth_2","plugin":"synth","last_error":"a, \"b\": [c]"}]}' \
  >"$work/slots-compact.json"
cat >"$work/plugins.json" <<'EOF'
{"plugins":[{"name":"passthrough","params":[]},{"name":"gain","params":[{"id":0,"name":"gain_db"}]},
{"name":"delay","description":"a \"name\": here","params":[{"id":0,"name":"time_ms"},{"id":1,"name":"mix"}]}]}
EOF
cat >"$work/params-fx.json" <<'EOF'
{
  "slot": "fx",
  "params": [
    {"id": 0, "name": "time_ms", "min": 0.0, "max": 2000.0},
    {"id": 1, "name": "feedback", "min": 0.0, "max": 0.95},
    {"id": 2, "name": "mix", "min": 0.0, "max": 1.0}
  ]
}
EOF

# The fake: the real runwayctl's help, the fixed documents for the daemon's part.
mkdir -p "$work/bin"
cat >"$work/bin/runwayctl" <<EOF
#!/bin/sh
printf '%s\n' "\$*" >>"$work/calls"
case " \$* " in
*" --help "*) exec "$real" "\$@" ;;
*" --json "*" slot list "*) cat "$work/slots-\${FAKE_LAYOUT:-pretty}.json" ;;
*" --json "*" plugins "*) cat "$work/plugins.json" ;;
*" --json "*" param list fx "*) cat "$work/params-fx.json" ;;
*) echo "runwayctl (fake): no daemon for \$*" >&2; exit 3 ;;
esac
EOF
chmod +x "$work/bin/runwayctl"

if [ -n "$framework" ]; then
  # shellcheck disable=SC1090
  . "$framework"
fi
# shellcheck disable=SC1090
. "$completion"
if [ -n "$framework" ] && ! declare -F _init_completion >/dev/null; then
  echo "FAIL: $framework does not define _init_completion"
  exit 1
fi

# complete_line PROGRAM LINE: COMPREPLY, sorted, for the cursor at the end of LINE.
complete_line() {
  local prog=$1 line=$2
  COMP_LINE="$prog $line"
  COMP_POINT=${#COMP_LINE}
  read -ra COMP_WORDS <<<"$COMP_LINE"
  if [[ $COMP_LINE == *" " ]]; then
    COMP_WORDS+=("")
  fi
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _runwayctl runwayctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
  printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}

check() {
  local line=$1 want=$2 got
  got=$(complete_line "$work/bin/runwayctl" "$line")
  if [ "$got" == "$want" ]; then
    echo "ok: runwayctl $line<TAB> -> $got"
  else
    echo "FAIL: runwayctl $line<TAB> -> \"$got\", want \"$want\""
    failed=1
  fi
}

# Commands and their words, from the table.
check '' 'param plugins slot state stats status subscribe top'
check 'st' 'state stats status'
check 'slot ' 'add advise list remove replace restart'
check 'slot re' 'remove replace restart'
check 'param ' 'get list set'
check '-' '--help --json --socket --timeout --version'
check '--json slot ' 'add advise list remove replace restart'
check 'slot add fx --' '--exec --external --help --inputs --json --latency-frames --latency-ms --lv2 --midi --on-fault --outputs --plugin'
# Slot names from the daemon, in either layout; escaped quotes inside values
# and nested "name"-free objects do not confuse the reader.
check 'slot remove ' 'fx synth_2'
FAKE_LAYOUT=compact check 'slot restart s' 'synth_2'
check 'stats ' 'fx synth_2'
check 'param list ' 'fx synth_2'
check 'slot list ' ''
# A new slot's name is not offered, nor anything after the last argument.
check 'slot add ' ''
check 'slot remove fx ' ''
# Plugin names (not their parameters' names), also after other options.
check 'slot add fx --plugin ' 'delay gain passthrough'
check 'slot add fx --inputs 2 --plugin g' 'gain'
check 'slot replace fx --plugin d' 'delay'
check 'slot add fx --on-fault ' 'bypass silence'
# Parameter names of the slot named before.
check 'param set fx ' 'feedback mix time_ms'
check 'param get fx t' 'time_ms'
check 'param set fx time_ms ' ''
check 'param set --json fx m' 'mix'
# Events, from the help text of subscribe.
check 'subscribe ' 'fault param replace restart slot underrun'
check 'subscribe slot u' 'underrun'

# The daemon asked is the one on the command line.
: >"$work/calls"
check '--socket /some/where.sock slot remove ' 'fx synth_2'
if grep -q -- '--socket /some/where.sock --json --timeout 1 slot list' "$work/calls"; then
  echo "ok: the command line's --socket is passed on"
else
  echo "FAIL: the command line's --socket was not passed on:"
  cat "$work/calls"
  failed=1
fi

# No daemon at all: the real runwayctl, nothing offered, quietly and at once.
export RUNWAY_SOCKET="$work/no-daemon.sock"
start=$(date +%s%N)
got=$(complete_line "$real" 'slot remove ' 2>"$work/stderr")
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
if [ -z "$got" ] && [ ! -s "$work/stderr" ] && [ "$elapsed_ms" -lt 2000 ]; then
  echo "ok: no daemon: nothing offered, nothing printed, ${elapsed_ms} ms"
else
  echo "FAIL: no daemon: got \"$got\" in ${elapsed_ms} ms, stderr: $(cat "$work/stderr")"
  failed=1
fi
got=$(complete_line "$real" 'slot ')
if [ "$got" == 'add advise list remove replace restart' ]; then
  echo "ok: no daemon: the commands still complete"
else
  echo "FAIL: no daemon: runwayctl slot <TAB> -> \"$got\""
  failed=1
fi

exit $failed
