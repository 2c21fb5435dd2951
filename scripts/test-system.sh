#!/usr/bin/env bash
# The slow test mode: the system unit under a real systemd system manager.
#
#   scripts/test-system.sh
#
# Builds the Debian packages from this checkout (dpkg-buildpackage -b, lintian
# on the result), boots a fresh Debian 12 tree with systemd-nspawn, and runs
# tests/system/in_container.sh there: `apt install ./runway_*.deb`, the
# runway user and state directory, the service with its sandbox and socket
# group, audio through it, reload, restart, stop, purge.
#
# Needs root and a Debian mirror (RUNWAY_DEBIAN_MIRROR, default
# deb.debian.org). The minimal Debian 12 tree is made once with debootstrap
# and kept in RUNWAY_SYSTEM_CACHE (default /var/cache/runway-system); each run
# boots a copy of it. The container runs in a mount namespace and cgroups of
# its own, so neither its /run/systemd nor its systemd touches the host's.
# Logs are kept in the printed work directory when the test fails, or always
# with RUNWAY_SYSTEM_KEEP=1.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
cd "$RUNWAY_ROOT"

if [ "$(id -u)" -ne 0 ]; then
  log "needs root (debootstrap, systemd-nspawn)"
  exit 1
fi
install_packages "${RUNWAY_PACKAGES[@]}" "${RUNWAY_SYSTEM_TEST_PACKAGES[@]}"

mirror=${RUNWAY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${RUNWAY_SYSTEM_CACHE:-/var/cache/runway-system}
work=$(mktemp -d /var/tmp/runway-system.XXXXXX)
cgroups=()
status=1

cleanup() {
  local dir pid
  # Whatever the container left behind, by pid, then its cgroups.
  for dir in "${cgroups[@]}"; do
    for pid in $(find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null); do
      kill -9 "$pid" 2>/dev/null || true
    done
  done
  for dir in "${cgroups[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ -d "$dir" ] || break
      sleep 0.3
    done
  done
  if [ $status -eq 0 ] && [ -z "${RUNWAY_SYSTEM_KEEP:-}" ]; then
    rm -rf "$work"
  else
    log "logs in $work (build.log, lintian.txt, console.log, result.log)"
  fi
}
trap cleanup EXIT

log "build the packages (dpkg-buildpackage -b -uc -us)"
mkdir -p "$work/src/runway"
git ls-files -co --exclude-standard -z | tar --null -cf - -T - | tar -xf - -C "$work/src/runway"
if ! (cd "$work/src/runway" && dpkg-buildpackage -b -uc -us -j"$(nproc)") >"$work/build.log" 2>&1; then
  tail -n 40 "$work/build.log" >&2
  log "FAILED: the packages do not build"
  exit 1
fi
ls "$work/src/"*.deb >&2
log "lintian"
lintian --info --display-info --pedantic "$work/src/"*.changes >"$work/lintian.txt" 2>&1 || true
grep -v '^N:' "$work/lintian.txt" >&2 || echo "(no lintian tags)" >&2

# The Debian 12 tree, once: systemd as init, jackd2 for the JACK server the
# unit expects, man-db to read the pages. Made beside its final name, then
# renamed, so a broken debootstrap leaves nothing that looks usable.
base="$cache/debian12"
if [ ! -d "$base" ]; then
  log "debootstrap a minimal Debian 12 into $base (once)"
  mkdir -p "$cache"
  rm -rf "$base.tmp"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,jackd2,procps,man-db,bash-completion \
    bookworm "$base.tmp" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log" >&2; log "FAILED: debootstrap"; exit 1; }
  mv "$base.tmp" "$base"
fi

log "boot a copy with systemd-nspawn and test the system unit"
root="$work/root"
cp -a "$base" "$root"
mkdir -p "$root/root/debs"
cp "$work/src/"*.deb "$root/root/debs/"
install -m 0755 tests/system/in_container.sh "$root/root/in_container.sh"
# Runs once the container is up, records its output and status, powers it off.
cat >"$root/etc/systemd/system/runway-system-test.service" <<'EOF'
[Unit]
Description=runway system unit test
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c '/root/in_container.sh >/root/result.log 2>&1; echo $? >/root/result.rc'
ExecStartPost=/bin/systemctl --no-block poweroff
TimeoutStartSec=20min

[Install]
WantedBy=multi-user.target
EOF
ln -s /etc/systemd/system/runway-system-test.service \
  "$root/etc/systemd/system/multi-user.target.wants/runway-system-test.service"

# A cgroup of our own below ours in every hierarchy: the container's systemd
# takes its cgroup as its root, and must not take the host's.
while IFS=: read -r _ controllers path; do
  if [ -z "$controllers" ]; then
    mount=/sys/fs/cgroup/unified
    [ -e /sys/fs/cgroup/cgroup.controllers ] && mount=/sys/fs/cgroup
  else
    mount=/sys/fs/cgroup/${controllers#name=}
  fi
  [ -e "$mount/cgroup.procs" ] || continue
  dir="$mount${path%/}/runway-system-$$"
  mkdir "$dir"
  cgroups+=("$dir")
  if [ -e "$dir/cpuset.cpus" ]; then
    cat "$(dirname "$dir")/cpuset.cpus" >"$dir/cpuset.cpus"
    cat "$(dirname "$dir")/cpuset.mems" >"$dir/cpuset.mems"
  fi
  # Kernels with CONFIG_RT_GROUP_SCHED give a new cgroup no real-time time at
  # all; jackd and runwayd need some, as on a machine booted with systemd.
  if [ -e "$dir/cpu.rt_runtime_us" ]; then
    echo 200000 >"$dir/cpu.rt_runtime_us"
  fi
done </proc/self/cgroup

started=$(date +%s)
set +e
(
  for dir in "${cgroups[@]}"; do
    echo $BASHPID >"$dir/cgroup.procs"
  done
  # --keep-unit --register=no: no service manager on the host is asked for
  # anything; /run/systemd of the namespace takes nspawn's own files. The
  # limits are those a booted machine's init has, so that LimitMEMLOCK= and
  # LimitRTPRIO= of the units can be what they say.
  exec timeout 1500 unshare -m sh -c 'mount --make-rprivate / &&
    mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd &&
    exec systemd-nspawn -q -D "$1" --boot --register=no --keep-unit --resolv-conf=copy-host \
      --console=pipe --rlimit=RLIMIT_MEMLOCK=infinity --rlimit=RLIMIT_RTPRIO=99' sh "$root"
) >"$work/console.log" 2>&1
nspawn_rc=$?
set -e
log "the container ran $(($(date +%s) - started)) s (systemd-nspawn exit $nspawn_rc)"

if [ ! -f "$root/root/result.rc" ]; then
  tail -n 40 "$work/console.log" >&2
  log "FAILED: the test did not run to its end in the container"
  exit 1
fi
cp "$root/root/result.log" "$work/result.log"
cat "$work/result.log"
if [ "$(cat "$root/root/result.rc")" -ne 0 ]; then
  log "FAILED: the system unit test (see above)"
  exit 1
fi
status=0
log "the system unit test passed"
