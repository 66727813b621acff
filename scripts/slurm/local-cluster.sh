#!/usr/bin/env bash
# A one-node Slurm cluster on this machine (slurmctld + slurmd on localhost, munge
# authentication, no cgroups), to try `sbatch scripts/slurm/train.sbatch` and `srun` without a
# real cluster; the Slurm test of the suite uses it. Needs Debian's slurm-wlm and munge, and root.
#   bash scripts/slurm/local-cluster.sh start    # prints `export SLURM_CONF=...` for the shell
#   bash scripts/slurm/local-cluster.sh stop
# State and logs live in $REKINDLE_SLURM_DIR (default /tmp/rekindle-slurm).
set -euo pipefail
dir=${REKINDLE_SLURM_DIR:-/tmp/rekindle-slurm}
conf=$dir/slurm.conf
host=$(hostname -s)

# Stops the daemons and waits (up to 10 s) until they have exited.
stop() {
  local pids=()
  for file in "$dir"/slurmd.pid "$dir"/slurmctld.pid "$dir"/munged.pid; do
    [ -f "$file" ] && pids+=("$(cat "$file")")
  done
  [ ${#pids[@]} -eq 0 ] && return 0
  kill "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && return 0
    sleep 0.2
  done
}

case "${1:-start}" in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
for tool in slurmctld slurmd munged sinfo; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool not found: apt-get install slurm-wlm munge" >&2; exit 1; }
done
stop
mkdir -p "$dir"/{spool,state,log,munge}
chmod 700 "$dir/munge"
[ -f "$dir/munge/munge.key" ] || { dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none; chmod 400 "$dir/munge/munge.key"; }
munged --force --key-file "$dir/munge/munge.key" --socket "$dir/munge/munge.socket" --pid-file "$dir/munged.pid" \
  --log-file "$dir/log/munged.log" --seed-file "$dir/munge/munge.seed"
cpus=$(nproc)
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
cat > "$conf" <<CONF
ClusterName=rekindle-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=pmix
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ReturnToService=2
KillWait=5
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
export SLURM_CONF=$conf
slurmctld -f "$conf"
slurmd -f "$conf"
for _ in $(seq 1 30); do
  if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
    echo "export SLURM_CONF=$conf"
    exit 0
  fi
  sleep 1
done
echo "error: slurmd did not come up in 30 s; logs in $dir/log:" >&2
tail -n 20 "$dir"/log/*.log >&2
exit 1
