#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the SLURM test (.ci/slurm/run.sh). Debian, as root.
#
#   munged -> mariadb -> slurmdbd (accounting, so that `sacct` works for the test and for the
#   executor plugin, which polls job states with sacct) -> slurmctld -> slurmd, one node named
#   `localhost` with this machine's CPUs and memory, one partition `ci`, one account `p2o-ci`.
#
# No cgroups: proctrack/linuxproc, task/none. The node has no GPU, so it declares FAKE GPUS:
# `Gres=gpu:2` in slurm.conf, and in gres.conf `Name=gpu File=/run/slurm/fake-gpu[0-1]`, two
# character devices that are /dev/null (major 1, minor 3) standing in for /dev/nvidia0 and 1
# (slurmd ignores a GPU without a File; with task/none and no cgroups nothing opens them). The
# workflow's model rules keep their real request (`gpu: 1` -> sbatch/srun `--gpus=1`, what a user's
# cluster sees); Slurm grants a fake GPU, sets CUDA_VISIBLE_DEVICES (torch, a CPU build, ignores it),
# runs at most two model jobs at once, and sacct records gres/gpu=1 in their AllocTRES. Nothing is
# mapped in the user's profile.
#
# Idempotent: rerun it and it reuses running daemons whose configuration is unchanged, restarts the
# others (by the pid in their pid file), and waits until the node is idle. On failure it prints the
# tail of every daemon log and exits non-zero.
set -euo pipefail

CLUSTER=p2o-ci PARTITION=ci ACCOUNT=p2o-ci NODE=localhost
LOGDIR=/var/log/slurm
GPUS=2
DB_PASS=p2o-ci-slurmdbd   # local test database, reachable from localhost only

log() { echo "[slurm-setup] $*"; }
die() {
  echo "[slurm-setup] ERROR: $*" >&2
  for f in "$LOGDIR"/slurmctld.log "$LOGDIR"/slurmd.log "$LOGDIR"/slurmdbd.log /var/log/munge/munged.log \
           /var/log/mysql/error.log "$LOGDIR"/mariadb.log; do
    [[ -s $f ]] && { echo "----- tail $f" >&2; tail -n 40 "$f" >&2; }
  done
  exit 1
}
trap 'die "command failed (line $LINENO): $BASH_COMMAND"' ERR

[[ $(id -u) == 0 ]] || die "run as root"

# ---------------------------------------------------------------- packages
t0=$(date +%s)
need=()
for cmd in munged slurmctld slurmd slurmdbd sacct mariadbd; do command -v $cmd >/dev/null || need+=($cmd); done
[[ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/accounting_storage_mysql.so || -n $(find /usr/lib -name accounting_storage_mysql.so 2>/dev/null) ]] || need+=(mysql-plugin)
if (( ${#need[@]} )); then
  log "installing slurm-wlm slurmdbd munge mariadb-server (missing: ${need[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends slurm-wlm slurmdbd munge mariadb-server >/tmp/slurm-apt.log 2>&1 || {
    apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm slurmdbd munge mariadb-server \
      >/tmp/slurm-apt.log 2>&1; } || { tail -n 30 /tmp/slurm-apt.log; die "apt-get install failed"; }
fi
log "packages: $(( $(date +%s) - t0 )) s ($(slurmctld -V))"

# ---------------------------------------------------------------- configuration
HOST=$(hostname -s)
# this machine's CPUs, topology and memory, as slurmd sees them (the node's line without its name)
HW=$(slurmd -C | awk '/^NodeName=/ {$1 = ""; sub(/^ /, ""); print}')
MEM=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$HW")
HW=$(sed "s/RealMemory=$MEM/RealMemory=$(( MEM * 95 / 100 ))/" <<<"$HW")   # a little left for the daemons
install -d -m 755 /etc/slurm "$LOGDIR" /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /run/slurm
for (( i = 0; i < GPUS; i++ )); do  # slurmd wants a character device: /dev/null's (1, 3)
  [[ -c /run/slurm/fake-gpu$i ]] || { rm -f /run/slurm/fake-gpu$i; mknod -m 666 /run/slurm/fake-gpu$i c 1 3; }
done

new=$(mktemp -d)
cat > "$new/slurm.conf" <<EOF
# Single-node test cluster written by .ci/slurm/setup.sh; not for production.
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
# no cgroups
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# accounting through slurmdbd: sacct lists every job, with its comment (the executor plugin puts
# the rule and wildcards there) and its GPU in AllocTRES
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
# the fake GPUs (see gres.conf)
GresTypes=gpu
NodeName=$NODE NodeHostname=$HOST NodeAddr=127.0.0.1 $HW Gres=gpu:$GPUS State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
cat > "$new/gres.conf" <<EOF
# The fake GPUs: /dev/null devices in place of /dev/nvidia*. Slurm schedules and accounts them as GPUs
# (sbatch --gpus=1 is granted one) and binds nothing (task/none, no cgroups); torch runs on CPU.
NodeName=$NODE Name=gpu File=/run/slurm/fake-gpu[0-$(( GPUS - 1 ))]
EOF
cat > "$new/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=$HOST
DbdAddr=127.0.0.1
SlurmUser=root
LogFile=$LOGDIR/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
changed=()
for f in slurm.conf gres.conf slurmdbd.conf; do
  cmp -s "$new/$f" "/etc/slurm/$f" || { install -m 600 "$new/$f" "/etc/slurm/$f"; changed+=("$f"); }
done
chmod 644 /etc/slurm/slurm.conf /etc/slurm/gres.conf
rm -rf "$new"
(( ${#changed[@]} )) && log "configuration written: ${changed[*]}" || log "configuration unchanged"
conf_changed() { local f; for f in "$@"; do [[ " ${changed[*]} " == *" $f "* ]] && return 0; done; return 1; }

# ---------------------------------------------------------------- daemons
alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop() {  # the daemon whose pid is in $1 (only that pid), then wait for it to exit
  alive "$1" || return 0
  local pid; pid=$(cat "$1"); log "stopping pid $pid ($1)"; kill "$pid"
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  die "pid $pid ($1) did not stop"
}
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  for _ in $(seq $(( secs * 5 ))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "timed out after ${secs}s waiting for $what"
}

t1=$(date +%s)
# munge: the credential service every Slurm daemon and client talks through
install -d -o munge -g munge -m 755 /run/munge
if ! alive /run/munge/munged.pid; then
  runuser -u munge -- /usr/sbin/munged
fi
wait_for 10 munge bash -c 'munge -n | unmunge'

# mariadb + slurmdbd
install -d -o mysql -g mysql -m 755 /run/mysqld
if ! alive /run/mysqld/mysqld.pid; then
  nohup /usr/sbin/mariadbd --user=mysql --innodb-buffer-pool-size=256M --innodb-lock-wait-timeout=900 \
    </dev/null >"$LOGDIR/mariadb.log" 2>&1 &
fi
wait_for 60 mariadb mysqladmin ping
mysql -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
          GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
if conf_changed slurmdbd.conf; then stop /run/slurm/slurmdbd.pid; fi
alive /run/slurm/slurmdbd.pid || slurmdbd
wait_for 60 slurmdbd sacctmgr -n show cluster

# the cluster and the account the test submits under (each `add` is a no-op when it exists)
sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description="p2o CI" organization=p2o >/dev/null 2>&1 || true
sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null 2>&1 || true
[[ -n $(sacctmgr -n -P show assoc cluster="$CLUSTER" user=root account="$ACCOUNT" format=account) ]] \
  || die "association root/$ACCOUNT missing in slurmdbd"

# slurmctld + slurmd
if conf_changed slurm.conf gres.conf; then stop /run/slurm/slurmd.pid; stop /run/slurm/slurmctld.pid; fi
alive /run/slurm/slurmctld.pid || slurmctld
wait_for 30 slurmctld scontrol ping
alive /run/slurm/slurmd.pid || slurmd -N "$NODE"
node_idle() { [[ $(sinfo -h -n "$NODE" -o %t) == idle ]]; }
for _ in $(seq 150); do node_idle && break; sleep 0.2
  [[ $(sinfo -h -n "$NODE" -o %t) == down* || $(sinfo -h -n "$NODE" -o %t) == drain* ]] \
    && scontrol update nodename="$NODE" state=resume 2>/dev/null || true
done
node_idle || die "node $NODE not idle: $(sinfo -h -N -o '%N %t %E' 2>&1)"
log "daemons: $(( $(date +%s) - t1 )) s"
sinfo -N -o "%N %P %t %c %m %G"
