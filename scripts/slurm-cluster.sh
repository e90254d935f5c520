#!/usr/bin/env bash
# A real SLURM cluster on this machine, for tests and for trying the SLURM path on a laptop:
# 4 emulated nodes n1-n4, one slurmd each on its own loopback address, its own munged, slurmctld, all state
# under one directory, every daemon stopped by its PID.
#
#   scripts/slurm-cluster.sh start [DIR [ADDR1,ADDR2,ADDR3,ADDR4 [CTLD_PORT [SLURMD_FIRST_PORT]]]]
#   export SLURM_CONF=DIR/slurm.conf      # then sbatch, squeue, ... and `pilot start --resource slurm://localhost`
#   scripts/slurm-cluster.sh stop [DIR]   # cancels every job, then stops slurmds, slurmctld, munged by PID
#
# Defaults: DIR /tmp/pilot-slurm, addresses 127.0.5.2-127.0.5.5, ports 16817 and 16818-16821. Installs
# Debian's slurmctld, slurmd, slurm-client and munge first if they are missing (needs root). Nodes are idle
# about 1-2 s after start. The test suite starts one cluster per test with its own directory, addresses and ports.
set -euo pipefail

cmd="${1:-}"
dir="${2:-/tmp/pilot-slurm}"

die() { echo "slurm-cluster: $*" >&2; exit 1; }

stop_pid() { # file label
  local f="$1" label="$2" pid
  [[ -f "$f" ]] || return 0
  pid=$(cat "$f")
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "slurm-cluster: $label ($pid) ignored SIGTERM; SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$f"
}

case "$cmd" in
start)
  addrs="${3:-127.0.5.2,127.0.5.3,127.0.5.4,127.0.5.5}"
  ctld_port="${4:-16817}"
  first_port="${5:-16818}"
  IFS=, read -r -a a <<<"$addrs"
  [[ ${#a[@]} -eq 4 ]] || die "give 4 comma-separated node addresses (got '$addrs')"
  for x in "${a[@]}"; do [[ "$x" == 127.* ]] || die "node address $x is not loopback (127.0.0.0/8)"; done
  if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
     || ! command -v munged >/dev/null; then
    echo "slurm-cluster: installing slurmctld slurmd slurm-client munge" >&2
    sudo_=""; [[ $(id -u) -eq 0 ]] || sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends \
      slurmctld slurmd slurm-client munge >/dev/null
  fi
  [[ -f "$dir/slurmctld.pid" ]] && die "$dir already has a cluster (stop it first: $0 stop $dir)"
  mkdir -p "$dir"/{state,spool,log,munge}
  dir=$(cd "$dir" && pwd)
  chmod 0700 "$dir/munge"
  [[ -f "$dir/munge/munge.key" ]] || mungekey -c -k "$dir/munge/munge.key" 2>/dev/null \
    || dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 0400 "$dir/munge/munge.key"
  munged --force --socket="$dir/munge/munge.sock" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/seed" \
    || die "munged did not start (see $dir/munge/munged.log)"
  chmod 0755 "$dir/munge"
  last_port=$((first_port + 3))
  cat >"$dir/slurm.conf" <<EOF
# Written by scripts/slurm-cluster.sh for a 4-node test cluster under $dir.
ClusterName=pilot$(printf '%s' "$dir" | cksum | cut -d' ' -f1)
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
SchedulerParameters=bf_interval=1
ReturnToService=2
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=30
NodeName=n[1-4] NodeHostname=localhost NodeAddr=$addrs Port=$first_port-$last_port CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=n[1-4] Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF="$dir/slurm.conf"
  # Daemons in their own sessions, in the foreground (-D) so that their PIDs are the ones recorded.
  setsid slurmctld -D -i -f "$SLURM_CONF" >>"$dir/log/slurmctld.out" 2>&1 < /dev/null &
  echo $! >"$dir/slurmctld.pid.launch"
  for n in 1 2 3 4; do
    mkdir -p "$dir/spool/n$n"
    setsid slurmd -D -N "n$n" -f "$SLURM_CONF" >>"$dir/log/slurmd-n$n.out" 2>&1 < /dev/null &
    echo $! >"$dir/slurmd-n$n.pid.launch"
  done
  for _ in $(seq 1 300); do
    states=$(sinfo -h -o '%T' 2>/dev/null | sort -u | tr '\n' ' ')
    [[ "$states" == "idle " ]] && break
    sleep 0.1
  done
  if [[ "$states" != "idle " ]]; then
    echo "slurm-cluster: nodes not idle after 30 s (states: ${states:-none}); logs in $dir/log" >&2
    "$0" stop "$dir" || true
    exit 1
  fi
  echo "slurm-cluster: 4 nodes idle; export SLURM_CONF=$SLURM_CONF"
  ;;
stop)
  [[ -d "$dir" ]] || exit 0
  dir=$(cd "$dir" && pwd)
  export SLURM_CONF="$dir/slurm.conf"
  if [[ -f "$dir/slurmctld.pid.launch" ]] && kill -0 "$(cat "$dir/slurmctld.pid.launch")" 2>/dev/null; then
    jobs=$(squeue -h -o '%i' 2>/dev/null || true)
    if [[ -n "$jobs" ]]; then
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      for _ in $(seq 1 100); do
        [[ -z "$(squeue -h -o '%i' 2>/dev/null || true)" ]] && break
        sleep 0.1
      done
    fi
  fi
  for n in 1 2 3 4; do stop_pid "$dir/slurmd-n$n.pid.launch" "slurmd n$n"; rm -f "$dir/slurmd-n$n.pid"; done
  stop_pid "$dir/slurmctld.pid.launch" slurmctld
  rm -f "$dir/slurmctld.pid"
  stop_pid "$dir/munge/munged.pid" munged
  echo "slurm-cluster: stopped ($dir)"
  ;;
*)
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  [[ -z "$cmd" ]] && exit 0 || exit 2
  ;;
esac
