#!/usr/bin/env bash
# The man pages (label unit):
#
#   man_test.sh GENERATOR RUNWAYD PAGE...
#
# 1. Every built page formats without a warning, as lintian checks it
#    (man --warnings; skipped when man is not installed).
# 2. runwayd.conf(5), written by hand, documents a [daemon] key for every
#    option of `runwayd --help` that the configuration file takes (all but
#    --config and --backend): a new option cannot be missed there.
# 3. The generator (man/man_from_help.awk) follows a --help text it has never
#    seen: a command added to the table shows up with its arguments, sections
#    of commands become subsections, continued descriptions are joined, roff
#    characters are escaped; and it refuses a help text it cannot read.
set -uo pipefail

generator=$1
runwayd=$2
shift 2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
fail() {
  echo "FAIL: $*"
  failed=1
}

if command -v man >/dev/null; then
  for page in "$@"; do
    if [ ! -s "$page" ]; then
      fail "$page is missing or empty"
      continue
    fi
    warnings=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$page" 2>&1 >/dev/null)
    if [ -n "$warnings" ]; then
      fail "$(basename "$page"): $warnings"
    else
      echo "ok: $(basename "$page") formats without warnings"
    fi
  done
else
  echo "man is not installed: the pages are not formatted"
fi

conf=""
for page in "$@"; do
  [[ $page == */runwayd.conf.5 ]] && conf=$page
done
if [ -z "$conf" ]; then
  fail "runwayd.conf.5 is not among the pages"
else
  keys=0
  for option in $("$runwayd" --help | awk '/^  --[a-z]/ { print substr($1, 3) }'); do
    case $option in
    config | backend | help,) continue ;;
    esac
    key=${option//-/_}
    keys=$((keys + 1))
    if ! grep -q "^\.BI \"$key = \"" "$conf"; then
      fail "runwayd --$option has no [daemon] key $key in runwayd.conf(5)"
    fi
  done
  if [ $keys -lt 10 ]; then
    fail "only $keys options read from runwayd --help"
  else
    echo "ok: runwayd.conf(5) documents the $keys [daemon] keys of runwayd's options"
  fi
fi

# A program with a help text of the usual shape and one command more.
cat >"$work/tool" <<'TOOL'
#!/bin/sh
case "$*" in
"--help")
  cat <<'HELP'
Usage: tool [--socket PATH] COMMAND

Does things.

Slots:
  slot add NAME [--fast]      add a slot
  slot frobnicate NAME LEVEL  frobnicate a slot at a level that is described
                              on a second line
Other:
  status                      how it goes

Options:
  --socket PATH               the socket
  .hidden                     a row that starts with a dot
HELP
  ;;
"slot add --help") printf 'Usage: tool slot add NAME [--fast]\n\nadd a slot\n\nArguments:\n  NAME        the name\n  --fast      go fast\n' ;;
"slot frobnicate --help") printf 'Usage: tool slot frobnicate NAME LEVEL\n\nfrobnicate\n\nArguments:\n  NAME        slot name\n  LEVEL       how much, \\ in dB\n' ;;
"status --help") printf 'Usage: tool status\n\nhow it goes\n' ;;
*) exit 2 ;;
esac
TOOL
chmod +x "$work/tool"
printf '.TH TOOL 1\n.SH SYNOPSIS\n@SYNOPSIS@\n.SH COMMANDS\n@COMMANDS@\n.SH OPTIONS\n@OPTIONS@\n.SH VERSION\n@VERSION@ in @BINDIR@\n' >"$work/tool.1.in"
if ! awk -v prog="$work/tool" -v name=tool -v version=9.8 -v bindir=/opt/x-y/bin -f "$generator" \
    "$work/tool.1.in" >"$work/tool.1"; then
  fail "the generator failed on a readable help text"
fi
expect() {
  if grep -qxF -- "$1" "$work/tool.1"; then
    echo "ok: generated: $1"
  else
    fail "generated page lacks the line: $1"
  fi
}
expect '\fBtool\fR [\fB\-\-socket\fR \fIPATH\fR] \fICOMMAND\fR'
expect '.SS Slots'
expect '.SS Other'
expect '\fBslot\fR \fBfrobnicate\fR \fINAME\fR \fILEVEL\fR'
expect 'frobnicate a slot at a level that is described on a second line'
expect '\fILEVEL\fR'
expect 'how much, \e in dB'
expect '\fB\-\-fast\fR'
expect '\fB\-\-socket\fR \fIPATH\fR'
expect '\fB\&.hidden\fR'
expect '9.8 in /opt/x\-y/bin'
if grep -q '@' "$work/tool.1"; then
  fail "a placeholder was left: $(grep '@' "$work/tool.1")"
fi
if [ "$(grep -c '^\.RS$' "$work/tool.1")" != 2 ]; then
  fail "expected the arguments of the two commands that have some"
fi

# A help text without a usage line is refused, not turned into an empty page.
printf '#!/bin/sh\necho "no usage here"\n' >"$work/bad"
chmod +x "$work/bad"
if awk -v prog="$work/bad" -v name=bad -v version=1 -f "$generator" "$work/tool.1.in" \
    >/dev/null 2>"$work/err"; then
  fail "the generator accepted a help text without a usage line"
else
  echo "ok: refused: $(cat "$work/err")"
fi

exit $failed
