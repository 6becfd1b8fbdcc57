#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests and for trying `dyad sweep --emit-slurm`.
#
#   scripts/slurm-local.sh up      # install slurm-wlm and munge (Debian/Ubuntu, as root), write
#                                  # slurm.conf for this machine, start munged, slurmctld and
#                                  # slurmd, wait until the node is idle
#   scripts/slurm-local.sh env     # the line to eval so that sbatch, squeue, … find this cluster
#   scripts/slurm-local.sh down    # stop the daemons this script started
#
# Idempotent: `up` on a running cluster only checks it; `down` on a stopped one does nothing.
# Everything lives in $DYAD_SLURM_DIR (default /tmp/dyad-slurm): slurm.conf, the munge key and
# socket, the daemons' logs, pid files and state. Nothing in /etc is touched; the client commands
# find the cluster through SLURM_CONF (printed by `env`). A real cluster needs none of this.
set -euo pipefail

DIR=${DYAD_SLURM_DIR:-/tmp/dyad-slurm}
NODE=$(hostname -s)
# Ports other than Slurm's defaults (6817, 6818), so a system Slurm is left alone.
CTLD_PORT=${DYAD_SLURM_CTLD_PORT:-16817}
SLURMD_PORT=${DYAD_SLURM_SLURMD_PORT:-16818}
CONF=$DIR/slurm.conf
SOCK=$DIR/munge/munge.socket
export SLURM_CONF=$CONF

die() {
    echo "slurm-local: $*" >&2
    exit 1
}
say() { echo "slurm-local: $*" >&2; }

# Whether the process whose pid is in file $1 is alive.
alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
        command -v sbatch >/dev/null && command -v munged >/dev/null; then
        return
    fi
    command -v apt-get >/dev/null ||
        die "slurm-wlm and munge are not installed and there is no apt-get to install them"
    [[ $(id -u) == 0 ]] ||
        die "slurm-wlm and munge are not installed; run as root to install them with apt-get"
    say "installing slurm-wlm and munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # A stale package list is the usual reason an install fails: refresh it first.
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >"$DIR/apt.log" 2>&1 ||
        die "apt-get install slurm-wlm munge failed; see $DIR/apt.log: $(tail -3 "$DIR/apt.log")"
    # The packages' own services (if an init system started them) would hold the default ports
    # and /run/munge; this cluster uses its own, so leave theirs as they are.
}

write_conf() {
    local cpus mem_mb
    cpus=$(nproc)
    # RealMemory in MiB: MemTotal less a tenth for the system.
    mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
    mkdir -p "$DIR"/{state,spool,log,munge}
    cat >"$CONF.new" <<EOF
# Written by scripts/slurm-local.sh: one node, this machine ($cpus CPUs, $mem_mb MiB).
ClusterName=dyad-local
SlurmctldHost=$NODE
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/slurmd-%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups (containers rarely let a job manager have them) and no accounting database.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
# The node's CPUs and memory as written here, not as slurmd counts them (a container's view).
SlurmdParameters=config_overrides
ReturnToService=2
SlurmdTimeout=60
MinJobAge=300
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=$((mem_mb / cpus))
EOF
    mv "$CONF.new" "$CONF"
}

start_munge() {
    alive "$DIR/munged.pid" && return
    local key=$DIR/munge/munge.key
    if [[ ! -s $key ]]; then
        # 1024 random bytes, readable by its owner only (munged refuses anything looser).
        (umask 077 && dd if=/dev/urandom of="$key" bs=1024 count=1 status=none)
    fi
    chmod 700 "$DIR/munge"
    chmod 600 "$key"
    munged --force --key-file="$key" --socket="$SOCK" --pid-file="$DIR/munged.pid" \
        --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed" ||
        die "munged did not start; see $DIR/log/munged.log"
    for _ in $(seq 50); do
        munge -n -S "$SOCK" 2>/dev/null | unmunge -S "$SOCK" >/dev/null 2>&1 && return
        sleep 0.1
    done
    die "munged started but does not answer on $SOCK; see $DIR/log/munged.log"
}

start_slurm() {
    if ! alive "$DIR/slurmctld.pid"; then
        slurmctld -f "$CONF" || die "slurmctld did not start; see $DIR/log/slurmctld.log"
    fi
    if ! alive "$DIR/slurmd.pid"; then
        slurmd -f "$CONF" || die "slurmd did not start; see $DIR/log/slurmd.log"
    fi
}

# Waits (up to 60 s) until sinfo shows the node idle; a node left down by an earlier run is
# resumed.
wait_idle() {
    local state=""
    for _ in $(seq 120); do
        state=$(sinfo -h -N -n "$NODE" -o %T 2>/dev/null || true)
        case $state in
        idle | mixed | allocated) return ;;
        down* | drain*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 0.5
    done
    die "node $NODE is not idle after 60 s (sinfo says \"${state:-nothing}\"); see $DIR/log/"
}

stop() {
    local name
    for name in slurmd slurmctld munged; do
        if alive "$DIR/$name.pid"; then
            local pid
            pid=$(cat "$DIR/$name.pid")
            kill "$pid"
            for _ in $(seq 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
            say "stopped $name ($pid)"
        fi
        rm -f "$DIR/$name.pid"
    done
}

case ${1:-} in
up)
    mkdir -p "$DIR"
    install
    write_conf
    start_munge
    start_slurm
    wait_idle
    say "node $NODE is $(sinfo -h -N -n "$NODE" -o %T); run: export SLURM_CONF=$CONF"
    ;;
env) echo "export SLURM_CONF=$CONF" ;;
down) stop ;;
*)
    echo "usage: $0 up|env|down   (state in \$DYAD_SLURM_DIR, default /tmp/dyad-slurm)" >&2
    exit 2
    ;;
esac
