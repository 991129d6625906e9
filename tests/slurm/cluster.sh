#!/usr/bin/env bash
# A real single-node SLURM cluster for tests:  tests/slurm/cluster.sh start|stop|status
#
# start: installs Debian's slurm-wlm and munge when missing (needs root and apt), writes a minimal
#        slurm.conf for this host into $SLURM_TEST_DIR (default /tmp/unfolded-slurm), creates a
#        munge key, starts munged, slurmctld and slurmd, and waits until sinfo shows the node idle.
# stop:  stops exactly the daemons start launched (by the PIDs it recorded).
# Exit codes: 0 ok, 2 cannot install or start (the caller skips with this message), 1 other errors.
set -euo pipefail

DIR=${SLURM_TEST_DIR:-/tmp/unfolded-slurm}
HOST=$(hostname -s)
CONF="$DIR/etc/slurm.conf"

log() { echo "cluster.sh: $*" >&2; }

install_if_missing() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return 0
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        log "slurm-wlm/munge are missing and cannot be installed here (need root and apt-get)"
        exit 2
    fi
    log "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq slurm-wlm munge; } >"$DIR/apt.log" 2>&1; then
        log "apt-get install failed; see $DIR/apt.log"
        exit 2
    fi
}

write_config() {
    local cpus memory
    cpus=$(nproc)
    # a bit below the free memory, in MB
    memory=$(awk '/MemAvailable/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)
    mkdir -p "$DIR/etc" "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/munge"
    cat >"$CONF" <<EOF
ClusterName=unfolded-test
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CryptoType=crypto/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
MinJobAge=3600
MpiDefault=none
NodeName=$HOST CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    if [ ! -s "$DIR/munge/munge.key" ]; then
        dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
        chmod 400 "$DIR/munge/munge.key"
    fi
}

start() {
    mkdir -p "$DIR"
    install_if_missing
    if [ -f "$DIR/pids" ]; then
        alive=0
        while read -r pid; do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive=1; done <"$DIR/pids"
        if [ "$alive" = 1 ]; then
            log "already started (pids in $DIR/pids); run stop first"
            exit 1
        fi
        log "removing the record of a cluster that is no longer running"
        rm -f "$DIR/pids"
    fi
    write_config
    # Job steps (srun inside sbatch) read the default path, not $SLURM_CONF: link it there when
    # the machine has no SLURM configuration of its own, and remove the link on stop.
    if [ ! -e /etc/slurm/slurm.conf ]; then
        mkdir -p /etc/slurm && ln -s "$CONF" /etc/slurm/slurm.conf && echo /etc/slurm/slurm.conf >"$DIR/linked"
    fi
    : >"$DIR/pids"
    munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
        --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/seed" \
        || { log "munged failed to start; see $DIR/log/munged.log"; exit 2; }
    cat "$DIR/munge/munged.pid" >>"$DIR/pids"
    export SLURM_CONF="$CONF"
    slurmctld -f "$CONF" || { log "slurmctld failed; see $DIR/log/slurmctld.log"; stop; exit 2; }
    for _ in $(seq 50); do [ -s "$DIR/slurmctld.pid" ] && break; sleep 0.2; done
    cat "$DIR/slurmctld.pid" >>"$DIR/pids"
    slurmd -f "$CONF" || { log "slurmd failed; see $DIR/log/slurmd.log"; stop; exit 2; }
    for _ in $(seq 50); do [ -s "$DIR/slurmd.pid" ] && break; sleep 0.2; done
    cat "$DIR/slurmd.pid" >>"$DIR/pids"
    for _ in $(seq 60); do
        state=$(SLURM_CONF="$CONF" sinfo -h -N -o '%t' 2>/dev/null | head -n1 || true)
        if [ "$state" = "idle" ]; then
            log "node $HOST idle; export SLURM_CONF=$CONF"
            echo "$CONF"
            return 0
        fi
        sleep 1
    done
    log "node never became idle (state: ${state:-none}); see $DIR/log"
    stop
    exit 2
}

stop() {
    [ -f "$DIR/pids" ] || { log "nothing to stop"; return 0; }
    # reverse order: slurmd, slurmctld, munged
    tac "$DIR/pids" | while read -r pid; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    for _ in $(seq 50); do
        alive=0
        while read -r pid; do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive=1; done <"$DIR/pids"
        [ "$alive" = 0 ] && break
        sleep 0.2
    done
    rm -f "$DIR/pids"
    if [ -f "$DIR/linked" ]; then
        rm -f "$(cat "$DIR/linked")" "$DIR/linked"
    fi
    log "stopped"
}

status() {
    SLURM_CONF="$CONF" sinfo -N
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*) echo "usage: $0 start|stop|status" >&2; exit 1 ;;
esac
