#!/usr/bin/env bash
# The system unit under a real systemd system manager: run inside a freshly
# booted Debian 12 container by scripts/test-system.sh, as root, with the
# packages in /root/debs. Prints what it checks; exits non-zero on the first
# failure, with the logs that tell why.
#
#  1. `apt install ./runway_*.deb`: the runway user (home /var/lib/runway, in
#     audio), /var/lib/runway 0750 runway:runway, the conffile, the unit
#     installed, neither enabled nor started; `man runwayctl` works.
#  2. A JACK server as runway (the environment the unit expects), then
#     `systemctl enable --now runwayd`: READY, the process runs as runway with
#     no capabilities, no new privileges, a seccomp filter, a read-only /usr,
#     no /home, a private /tmp, no network but loopback; its socket is
#     /run/runway/control.sock, 0660, group audio.
#  3. Root and a member of audio are served; a member may not --exec; a user
#     outside audio cannot connect. The workers run as runway too.
#  4. Audio: runway-probe plays into a synth slot through the service and
#     measures the latency on the recording: exactly what the port reports.
#  5. /etc/runway/runwayd.conf gains a slot; `systemctl reload runwayd`
#     brings it up in the same process.
#  6. SIGKILL: Restart= brings runwayd back with its slots.
#  7. `systemctl stop runwayd`: exit 0, no worker left, /run/runway gone.
#  8. `apt purge runway`: /var/lib/runway and /etc/runway gone.
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive
SOCK=/run/runway/control.sock

failed=0
step() { printf '\n== %s\n' "$*"; }
ok() { printf 'ok: %s\n' "$*"; }
# A check that fails without spoiling the next ones: reported, counted.
bad() {
  printf 'FAIL: %s\n' "$*"
  failed=$((failed + 1))
}
# A failure after which nothing else can be checked.
fail() {
  printf 'FAIL: %s\n' "$*"
  echo "--- systemctl status runwayd"
  systemctl --no-pager status runwayd 2>&1 | tail -n 20
  echo "--- journal of runwayd"
  journalctl --no-pager -u runwayd 2>&1 | tail -n 60
  echo "--- journal of jackd-runway"
  journalctl --no-pager -u jackd-runway 2>&1 | tail -n 20
  exit 1
}
# wait_for SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds.
wait_for() {
  local secs=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "$what: not within $secs s"
    sleep 0.2
  done
}
ctl() { runwayctl --socket "$SOCK" "$@"; }
prop() { systemctl show runwayd -p "$1" --value; }

step "1. apt install ./runway_*.deb"
cd /root/debs || fail "no /root/debs"
apt-get update -qq || fail "apt-get update"
apt install -y ./runway_*.deb || fail "apt install ./runway_*.deb"
cd /root
entry=$(getent passwd runway) || fail "no runway user"
[[ $entry == runway:x:*:*:*:/var/lib/runway:/usr/sbin/nologin ]] || fail "runway user: $entry"
id -nG runway | grep -qw audio || fail "runway is not in audio: $(id runway)"
ok "user: $entry; $(id runway)"
[ "$(stat -c '%a %U %G' /var/lib/runway)" == "750 runway runway" ] ||
  fail "/var/lib/runway is $(stat -c '%a %U %G' /var/lib/runway)"
ok "/var/lib/runway 0750 runway:runway"
dpkg-query -W -f='${Conffiles}\n' runway | grep -q /etc/runway/runwayd.conf || fail "no conffile"
ok "conffile /etc/runway/runwayd.conf"
[ "$(systemctl is-enabled runwayd)" == disabled ] || fail "runwayd is $(systemctl is-enabled runwayd)"
systemctl is-active -q runwayd && fail "runwayd was started by the installation"
ok "runwayd.service installed, disabled, not started"
man -P cat runwayctl 2>/dev/null | grep -q 'runwayctl - control the runway audio engine' ||
  fail "man runwayctl"
ok "man runwayctl, runwayd, runwayd.conf: $(man -w runwayctl runwayd runwayd.conf | tr '\n' ' ')"

step "2. JACK as runway, then systemctl enable --now runwayd"
systemd-run --unit=jackd-runway -p User=runway -p LimitRTPRIO=95 -p LimitMEMLOCK=infinity \
  -E JACK_NO_AUDIO_RESERVATION=1 /usr/bin/jackd -d dummy -r 48000 -p 256 ||
  fail "jackd as runway"
wait_for 30 "jackd answers" runuser -u runway -- env JACK_NO_START_SERVER=1 jack_lsp
ok "jackd runs as runway: $(ps -o user=,args= -C jackd)"
systemctl enable --now runwayd || fail "systemctl enable --now runwayd"
[ "$(prop ActiveState)/$(prop SubState)" == active/running ] || fail "runwayd is not running"
pid=$(prop MainPID)
ok "runwayd active, pid $pid, status: $(prop StatusText)"
uid=$(id -u runway)
gid=$(id -g runway)
audio=$(getent group audio | cut -d: -f3)
status=/proc/$pid/status
grep -q "^Uid:[[:space:]]*$uid[[:space:]]" $status || fail "runwayd runs as $(grep ^Uid $status)"
grep -q "^Gid:[[:space:]]*$gid[[:space:]]" $status || fail "runwayd's group: $(grep ^Gid $status)"
grep "^Groups:" $status | grep -qw "$audio" || fail "runwayd is not in audio: $(grep ^Groups $status)"
grep -q "^CapEff:[[:space:]]*0000000000000000" $status || fail "capabilities: $(grep ^CapEff $status)"
grep -q "^CapBnd:[[:space:]]*0000000000000000" $status || fail "bounding set: $(grep ^CapBnd $status)"
grep -q "^NoNewPrivs:[[:space:]]*1" $status || fail "NoNewPrivs: $(grep ^NoNewPrivs $status)"
grep -q "^Seccomp:[[:space:]]*2" $status || fail "no seccomp filter: $(grep ^Seccomp $status)"
ok "runwayd runs as runway:runway, in audio, no capabilities, NoNewPrivs, seccomp filter"
nsenter -t "$pid" -m -- touch /usr/runway-write-test 2>/dev/null && fail "/usr is writable for runwayd"
nsenter -t "$pid" -m -- touch /etc/runway-write-test 2>/dev/null && fail "/etc is writable for runwayd"
touch /home/runway-host-marker /tmp/runway-host-marker
nsenter -t "$pid" -m -- test -e /home/runway-host-marker && fail "runwayd sees /home"
nsenter -t "$pid" -m -- test -e /tmp/runway-host-marker && fail "runwayd shares /tmp"
nsenter -t "$pid" -m -- test -w /var/lib/runway || fail "runwayd cannot write its state directory"
rm -f /home/runway-host-marker /tmp/runway-host-marker
ifaces=$(awk -F: 'NR > 2 { gsub(/ /, "", $1); print $1 }' /proc/$pid/net/dev | tr '\n' ' ')
[ "$ifaces" == "lo " ] || fail "runwayd's network interfaces: $ifaces"
ok "read-only /usr and /etc, no /home, private /tmp, writable /var/lib/runway, network: $ifaces"
[ "$(stat -c '%a %U %G' $SOCK)" == "660 runway audio" ] || fail "socket: $(stat -c '%a %U %G' $SOCK)"
ok "socket $SOCK 0660 runway:audio"
echo "sandbox: $(systemctl show runwayd -p User -p SupplementaryGroups -p NoNewPrivileges \
  -p ProtectSystem -p ProtectHome -p PrivateTmp -p PrivateDevices -p PrivateNetwork \
  -p RestrictAddressFamilies -p LimitRTPRIO -p LimitMEMLOCK | tr '\n' ' ')"
echo "systemd-analyze security runwayd: $(systemd-analyze security runwayd 2>/dev/null | tail -n 1)"

step "3. Who may use the socket"
ctl status | grep -q '^backend state: active' || fail "runwayctl status as root: $(ctl status 2>&1)"
ok "root: $(ctl status | head -n 3 | tr '\n' ' ')"
useradd -m -G audio alice && useradd -m bob || fail "useradd"
runuser -u alice -- runwayctl --socket $SOCK slot add syn --plugin synth --latency-frames 1024 ||
  fail "alice (audio) could not add a slot"
ok "alice (in audio) added slot syn"
runuser -u alice -- runwayctl --socket $SOCK slot add x --exec /bin/true >/tmp/out 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q permission_denied /tmp/out; then
  ok "alice may not --exec: exit 1, $(head -n 1 /tmp/out)"
else
  bad "alice (a member of audio, not root nor runway) may --exec: exit $rc, $(head -n 1 /tmp/out)"
  ctl slot remove x >/dev/null 2>&1
fi
runuser -u bob -- runwayctl --socket $SOCK status >/tmp/out 2>&1
rc=$?
[ $rc -eq 3 ] || fail "bob (not in audio): exit $rc, $(cat /tmp/out)"
ok "bob (not in audio) cannot connect: exit 3"
wait_for 20 "slot syn running" sh -c "runwayctl --socket $SOCK slot list | grep -q '^syn .*running'"
wpid=$(runwayctl --socket $SOCK --json slot list | grep '"pid"' | head -n 1 | tr -dc 0-9)
[ "$(ps -o user= -p "$wpid")" == runway ] || fail "worker $wpid runs as $(ps -o user= -p "$wpid")"
grep -q "^CapEff:[[:space:]]*0000000000000000" /proc/$wpid/status || fail "worker capabilities"
ok "worker $wpid runs as runway, no capabilities"

step "4. Audio through the service"
runuser -u runway -- env JACK_NO_START_SERVER=1 runway-probe --slot syn --phrase --json >/tmp/probe.json ||
  fail "runway-probe: $(cat /tmp/probe.json)"
reported=$(grep -o '"reported_latency_frames":[0-9]*' /tmp/probe.json | cut -d: -f2)
measured=$(grep -o '"measured_latency_frames":-\?[0-9]*' /tmp/probe.json | cut -d: -f2)
[ -n "$reported" ] && [ "$reported" == "$measured" ] && [ "$reported" -ge 1024 ] ||
  fail "latency: reported $reported, measured $measured ($(cat /tmp/probe.json))"
ok "synth slot: reported latency $reported frames, measured $measured frames on the recording"
# Real time through the sandbox: LimitRTPRIO= lets JACK's client thread take
# SCHED_FIFO (no RestrictRealtime=), LimitMEMLOCK= lets runwayd lock its
# memory. Checked where the unit's limits could be applied: a host that runs
# the container without CAP_SYS_RESOURCE caps them at its own.
rtprio=$(awk '/^Max realtime priority/ { print $5 }' /proc/$pid/limits)
memlock=$(awk '/^Max locked memory/ { print $5 }' /proc/$pid/limits)
if [ "$rtprio" == 95 ] && [ "$memlock" == unlimited ]; then
  threads=$(ps -L -o cls=,rtprio=,comm= -p "$pid" | awk '$1 == "FF"' | tr -s ' ' | tr '\n' ';')
  if [ -n "$threads" ]; then
    ok "runwayd's real-time threads (class, priority, name): $threads"
  else
    bad "no SCHED_FIFO thread in runwayd: $(ps -L -o cls=,comm= -p "$pid" | tr -s ' \n' ' ')"
  fi
  if journalctl --no-pager -u runwayd | grep -q 'cannot lock memory'; then
    bad "runwayd could not lock its memory: $(journalctl --no-pager -u runwayd | grep 'cannot lock memory' | tail -n 1)"
  else
    ok "runwayd locked its memory (no warning in the journal)"
  fi
else
  echo "not checked: SCHED_FIFO and mlockall; the host caps the container's limits" \
    "(runwayd got RLIMIT_RTPRIO $rtprio and RLIMIT_MEMLOCK $memlock, not 95 and unlimited)"
fi

step "5. The configuration file and a reload"
printf '\n[slot cfg]\nplugin = sine\nparam.level_db = -20\n' >>/etc/runway/runwayd.conf
systemctl reload runwayd || fail "systemctl reload runwayd"
[ "$(prop MainPID)" == "$pid" ] || fail "reload replaced runwayd"
wait_for 20 "slot cfg from the file" sh -c "runwayctl --socket $SOCK slot list | grep -q '^cfg .*running'"
ok "reload: slot cfg up, same runwayd $pid"

step "6. SIGKILL: Restart= with the slots"
wait_for 10 "state saved" sh -c "runwayctl --socket $SOCK --json status | grep -q '\"saved\": true'"
kill -9 "$pid"
wait_for 30 "runwayd again" sh -c "[ \"\$(systemctl show runwayd -p MainPID --value)\" != $pid ] &&
  [ \"\$(systemctl show runwayd -p SubState --value)\" = running ]"
newpid=$(prop MainPID)
[ "$(prop NRestarts)" == 1 ] || fail "NRestarts is $(prop NRestarts)"
wait_for 20 "slots back" sh -c "runwayctl --socket $SOCK slot list | grep -q '^syn .*running' &&
  runwayctl --socket $SOCK slot list | grep -q '^cfg .*running'"
ok "runwayd $pid -> $newpid, slots syn and cfg running again"
pid=$newpid

step "7. systemctl stop runwayd"
workers=$(runwayctl --socket $SOCK --json slot list | grep '"pid"' | tr -dc '0-9\n')
systemctl stop runwayd || fail "systemctl stop runwayd"
[ "$(prop Result)" == success ] && [ "$(prop ExecMainStatus)" == 0 ] ||
  fail "stop: Result $(prop Result), exit status $(prop ExecMainStatus)"
for w in $workers; do
  [ -d /proc/$w ] && fail "worker $w outlived runwayd"
done
[ -e /run/runway ] && fail "/run/runway is still there"
ok "runwayd exited 0, workers $(echo $workers | tr '\n' ' ')gone, /run/runway removed"
systemctl stop jackd-runway

step "8. apt purge runway"
apt-get purge -y runway >/dev/null || fail "apt-get purge runway"
[ -e /var/lib/runway ] && fail "/var/lib/runway is still there"
[ -e /etc/runway ] && fail "/etc/runway is still there"
[ -e /lib/systemd/system/runwayd.service ] && fail "the unit is still there"
ok "purged: /var/lib/runway and /etc/runway removed (the runway user stays, as Debian keeps users)"

if [ $failed -ne 0 ]; then
  printf '\n%d CHECK(S) FAILED (see FAIL above)\n' $failed
  exit 1
fi
printf '\nALL PASSED\n'
