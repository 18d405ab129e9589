#!/usr/bin/env bash
# Brings up (and takes down) a real single-node SLURM cluster on this machine, for tests that
# submit jobs with sbatch. Debian/Ubuntu only; needs root. No systemd: the daemons are started
# directly and tracked by pid files.
#
#   .ci/slurm.sh up      install slurm-wlm + munge if missing, start munged, slurmctld, slurmd,
#                        wait until the node is idle. Idempotent: a running cluster is left as is
#                        (unless slurm.conf had to change, then slurmctld and slurmd restart).
#   .ci/slurm.sh down    stop the daemons this script started (pid files); packages stay.
#   .ci/slurm.sh status  print the daemons' state and sinfo.
#
# Exit codes: 0 ok; 3 SLURM cannot be installed or started here (not root, no apt-get, no
# network): callers treat 3 as "skip"; anything else is a real failure (daemon logs are shown).
#
# The cluster: one node named after `hostname -s` (address 127.0.0.1), CPUs = nproc, RealMemory =
# 80% of the memory, partition `debug` (default, no time limit), cons_tres/CR_Core so jobs and
# array tasks share the node one CPU each, no cgroups, no accounting. Its state, spool, logs and pid
# files live under $HEADSTART_SLURM_DIR (default /var/lib/headstart-slurm); its config is written
# to /etc/slurm/slurm.conf (where Debian's slurm-wlm looks for it).
#
# Progress goes to stderr; stdout stays quiet (except for `status`).
set -euo pipefail

export PATH=$PATH:/usr/sbin:/sbin
base=${HEADSTART_SLURM_DIR:-/var/lib/headstart-slurm}
wait_s=${HEADSTART_SLURM_WAIT:-60}
slurmd_started=0 # epoch seconds, set when this run starts slurmd
final_state=
conf_dir=/etc/slurm
conf=$conf_dir/slurm.conf
run_dir=$base/run
log_dir=$base/log
munge_pid=$run_dir/munge/munged.pid  # in a folder munged (user munge) can write
ctld_pid=$run_dir/slurmctld.pid
slurmd_pid=$run_dir/slurmd.pid

say() { printf 'slurm.sh: %s\n' "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}
# One line, exit 3: SLURM is not available here, callers skip.
cannot() {
  printf 'slurm.sh: SLURM cannot be installed: %s\n' "$*" >&2
  exit 3
}

node=$(hostname -s 2>/dev/null || uname -n)
node=${node%%.*}

# alive NAME PIDFILE: the pid file names a live process called NAME.
alive() {
  local pid
  [ -s "$2" ] || return 1
  pid=$(cat "$2" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]
}

# stop NAME PIDFILE: TERM, up to 15 s, then KILL.
stop() {
  local pid i
  if ! alive "$1" "$2"; then
    rm -f "$2"
    return 0
  fi
  pid=$(cat "$2")
  say "stopping $1 (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$1 (pid $pid) ignored TERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$2"
}

show_logs() {
  local f
  for f in "$log_dir/slurmctld.log" "$log_dir/slurmd.log" /var/log/munge/munged.log; do
    [ -f "$f" ] || continue
    printf '\n==> %s (last 25 lines) <==\n' "$f" >&2
    tail -n 25 "$f" >&2
  done
}

have_packages() {
  local c
  for c in sbatch squeue sinfo scontrol scancel slurmctld slurmd munged munge unmunge; do
    command -v "$c" >/dev/null 2>&1 || return 1
  done
}

install_packages() {
  local log=$base/apt.log t0=$SECONDS rc=0 added_policy=
  command -v apt-get >/dev/null 2>&1 ||
    cannot "sbatch/slurmctld/slurmd/munged are missing and there is no apt-get to install slurm-wlm and munge (not Debian/Ubuntu)"
  mkdir -p "$base"
  export DEBIAN_FRONTEND=noninteractive
  # Keep the packages' maintainer scripts from starting services themselves (as in Docker images):
  # this script starts the daemons it needs, with its own config and pid files.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    added_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  say "installing slurm-wlm and munge with apt-get (log: $log)"
  local pkgs=(slurm-wlm munge)
  if ! apt-get install -y --no-install-recommends "${pkgs[@]}" >"$log" 2>&1; then
    say "apt-get install failed; running apt-get update and trying again"
    { apt-get update && apt-get install -y --no-install-recommends "${pkgs[@]}"; } >>"$log" 2>&1 || rc=$?
  fi
  if [ -n "$added_policy" ]; then
    rm -f /usr/sbin/policy-rc.d
    trap - EXIT
  fi
  if [ "$rc" != 0 ]; then
    local why
    why=$(grep -E '^(E|W): ' "$log" | tail -n 1)
    cannot "apt-get install slurm-wlm munge failed (exit $rc; no network or no package source?): ${why:-see $log}"
  fi
  have_packages || cannot "apt-get installed slurm-wlm and munge but sbatch/slurmctld/slurmd/munged are still not on PATH"
  say "installed slurm-wlm $(dpkg-query -W -f='${Version}' slurm-wlm 2>/dev/null) and munge in $((SECONDS - t0)) s"
}

munge_works() {
  munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1
}

start_munge() {
  local user=root i
  id munge >/dev/null 2>&1 && user=munge
  # Key (Debian's munge postinst normally creates it): owned by the user munged runs as, readable
  # by it alone (munged refuses a key that others can read, or a key directory others can write).
  install -d -m 0700 -o "$user" -g "$user" /etc/munge
  if [ ! -s /etc/munge/munge.key ]; then
    say "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null 2>&1; then
      mungekey --create --keyfile=/etc/munge/munge.key --force >/dev/null
    else
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
  fi
  chown "$user:$user" /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  install -d -m 0700 -o "$user" -g "$user" /var/lib/munge /var/log/munge
  install -d -m 0755 -o "$user" -g "$user" /run/munge "$run_dir/munge"

  if alive munged "$munge_pid"; then
    say "munged already running (pid $(cat "$munge_pid"))"
  elif munge_works; then
    say "a munged not started by this script is already running; using it"
    return 0
  else
    say "starting munged (as $user)"
    rm -f "$munge_pid"
    if [ "$user" = munge ]; then
      runuser -u munge -- munged --pid-file="$munge_pid" ||
        { show_logs; die "munged did not start"; }
    else
      munged --force --pid-file="$munge_pid" || { show_logs; die "munged did not start"; }
    fi
  fi
  for ((i = 0; i < 100; i++)); do
    munge_works && return 0
    sleep 0.1
  done
  show_logs
  die "munged is running but munge -n | unmunge fails"
}

# RealMemory in MiB: 80% of MemTotal, or of the cgroup's memory limit if that is lower. slurmd
# drains a node whose configured memory exceeds what it finds, so stay below it.
real_memory() {
  local kb limit f
  kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
  for f in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do
    limit=$(cat "$f" 2>/dev/null) || continue
    [[ $limit =~ ^[0-9]+$ ]] || continue
    ((limit / 1024 < kb)) && kb=$((limit / 1024))
  done
  echo $((kb / 1024 * 8 / 10))
}

# Writes slurm.conf; returns 0 when it changed.
write_conf() {
  local cpus mem tmp
  cpus=$(nproc)
  mem=$(real_memory)
  mkdir -p "$conf_dir"
  tmp=$(mktemp "$conf_dir/.slurm.conf.XXXXXX")
  cat >"$tmp" <<EOF
# Written by headstart's .ci/slurm.sh: a single-node test cluster. Rewritten by every \`up\`.
ClusterName=headstart
SlurmctldHost=$node(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$base/state
SlurmdSpoolDir=$base/spool
SlurmctldPidFile=$ctld_pid
SlurmdPidFile=$slurmd_pid
SlurmctldLogFile=$log_dir/slurmctld.log
SlurmdLogFile=$log_dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups in a container; no accounting daemon.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
# One CPU per task by default; jobs and array tasks share the node. Memory is not a consumable.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# A node that was down comes back as soon as its slurmd registers; a node with fewer resources than
# configured here is not drained.
ReturnToService=2
SlurmdParameters=config_overrides
MailProg=/bin/true
NodeName=$node NodeHostname=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  chmod 644 "$tmp"
  if [ -f "$conf" ] && cmp -s "$tmp" "$conf"; then
    rm -f "$tmp"
    return 1
  fi
  mv -f "$tmp" "$conf"
  say "wrote $conf (node $node, $cpus CPUs, $mem MiB)"
  return 0
}

# The node's slurmd registered with slurmctld after slurmd_started (epoch seconds).
registered() {
  local t
  t=$(scontrol show node "$node" 2>/dev/null | sed -n 's/.*SlurmdStartTime=\([^ ]*\).*/\1/p')
  [ -n "$t" ] && [ "$t" != None ] || return 1
  t=$(date -d "$t" +%s 2>/dev/null) || return 1
  ((t >= slurmd_started))
}

wait_idle() {
  local t0=$SECONDS state last= resumed=-10
  while ((SECONDS - t0 < wait_s)); do
    state=$(sinfo -h -N -n "$node" -o %T 2>/dev/null | head -n 1) || state=
    [ "$state" = "$last" ] || { [ -z "$state" ] || say "node $node: $state"; last=$state; }
    case $state in
      idle | mixed | allocated | completing)
        # State recovered from an earlier run can read idle before this slurmd has registered.
        registered && { final_state=$state; return 0; }
        ;;
      down | drained | draining | drain | fail | failing)
        # Registered but marked unusable (e.g. state recovered from an earlier run): resume it.
        if ((SECONDS - resumed >= 3)); then
          scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
          resumed=$SECONDS
        fi
        ;;
    esac
    alive slurmctld "$ctld_pid" || { show_logs; die "slurmctld exited"; }
    alive slurmd "$slurmd_pid" || { show_logs; die "slurmd exited"; }
    sleep 0.5
  done
  show_logs
  die "node $node not idle after ${wait_s} s (state: ${state:-none}); logs above"
}

up() {
  local t0=$SECONDS changed=0
  [ "$(id -u)" = 0 ] || cannot "not running as root (uid $(id -u)); installing slurm-wlm and munge and running its daemons needs root"
  have_packages || install_packages
  mkdir -p "$base/state" "$base/spool" "$log_dir"
  install -d -m 0755 "$run_dir"
  start_munge
  write_conf && changed=1
  if ((changed)) && { alive slurmctld "$ctld_pid" || alive slurmd "$slurmd_pid"; }; then
    say "slurm.conf changed; restarting slurmctld and slurmd"
    stop slurmd "$slurmd_pid"
    stop slurmctld "$ctld_pid"
  fi
  if alive slurmctld "$ctld_pid"; then
    say "slurmctld already running (pid $(cat "$ctld_pid"))"
  else
    say "starting slurmctld"
    slurmctld || { show_logs; die "slurmctld did not start"; }
  fi
  if alive slurmd "$slurmd_pid"; then
    say "slurmd already running (pid $(cat "$slurmd_pid"))"
  else
    say "starting slurmd"
    slurmd_started=$(($(date +%s) - 1))
    slurmd -N "$node" || { show_logs; die "slurmd did not start"; }
  fi
  # The daemons write their pid files shortly after forking.
  local i
  for ((i = 0; i < 50; i++)); do
    alive slurmctld "$ctld_pid" && alive slurmd "$slurmd_pid" && break
    sleep 0.1
  done
  wait_idle
  say "up: node $node $final_state, partition debug ($((SECONDS - t0)) s)"
}

down() {
  if [ "$(id -u)" != 0 ]; then
    say "not running as root (uid $(id -u)); cannot stop the SLURM daemons"
    exit 3
  fi
  # Jobs still queued or running are cancelled first: a running job's slurmstepd outlives slurmd
  # and would keep the job's processes running after `down`.
  if alive slurmctld "$ctld_pid" && alive slurmd "$slurmd_pid"; then
    local jobs i
    jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ') || jobs=
    if [ -n "${jobs// /}" ]; then
      say "cancelling jobs: $jobs"
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      for ((i = 0; i < 150; i++)); do
        [ -z "$(squeue -h -t running,completing -o %A 2>/dev/null)" ] && break
        sleep 0.1
      done
    fi
  fi
  stop slurmd "$slurmd_pid"
  stop slurmctld "$ctld_pid"
  stop munged "$munge_pid"
  say "down"
}

status() {
  local d p
  for d in munged:$munge_pid slurmctld:$ctld_pid slurmd:$slurmd_pid; do
    p=${d#*:}
    d=${d%%:*}
    if alive "$d" "$p"; then echo "$d: running (pid $(cat "$p"))"; else echo "$d: not running"; fi
  done
  command -v sinfo >/dev/null 2>&1 && sinfo 2>&1 || true
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
