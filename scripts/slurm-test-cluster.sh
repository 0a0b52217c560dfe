#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for trying and testing profiles/slurm.
#
#   scripts/slurm-test-cluster.sh install              # Debian/Ubuntu: apt-get slurm-wlm munge (root)
#   scripts/slurm-test-cluster.sh start DIR [--gpu] [--cpus N]  # writes DIR/etc/slurm.conf, starts the daemons
#   export SLURM_CONF=DIR/etc/slurm.conf PATH=DIR/bin:$PATH   # then sbatch, squeue, Snakemake use it
#   scripts/slurm-test-cluster.sh stop DIR             # cancels its jobs, stops its daemons by PID
#
# Everything lives in DIR (configuration, munge socket and key, state, logs, PID files): nothing
# under /etc is changed and a second cluster in another folder does not collide (free ports are
# picked). Needs root (slurmd starts jobs as their user). The configuration is what one machine
# without cgroups needs: processes tracked by parent PID (proctrack/linuxproc), no task plugin, no
# accounting (status through squeue: profiles/slurm sets `slurm-status-command: squeue`), finished
# jobs kept an hour for squeue and scontrol (MinJobAge: the SLURM test reads a run's jobs back at
# its end), CPUs and memory consumable (select/cons_tres). --gpu declares one fake GPU (gres gpu:1
# backed by /dev/null) so that jobs asking for a GPU are accepted. --cpus N declares N CPUs
# whatever the machine has (SlurmdParameters=config_overrides), so that more one-CPU jobs run
# side by side than there are cores (tests that mostly wait).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"  # the daemons, also where a user's PATH lacks them

die() { echo "slurm-test-cluster: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root (slurmd and munged need it)"; }

have_packages() { command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
    && command -v munged >/dev/null && command -v sbatch >/dev/null; }

install() {
    need_root
    have_packages && { echo "slurm-wlm and munge are installed"; return 0; }
    command -v apt-get >/dev/null || die "no apt-get: install SLURM (slurmctld, slurmd) and munge yourself"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -q
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends slurm-wlm munge
    have_packages || die "slurm-wlm and munge were installed but their daemons are not on PATH"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

stop() {
    local dir=$1 name pid i
    [ -d "$dir/pids" ] || return 0
    if [ -f "$dir/etc/slurm.conf" ] && alive "$(cat "$dir/pids/slurmctld.pid" 2>/dev/null)"; then
        export SLURM_CONF="$dir/etc/slurm.conf"
        # jobs first: their processes belong to slurmstepd, which outlives slurmd
        local jobs
        jobs=$(squeue -h -o %i 2>/dev/null || true)
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            for i in $(seq 1 40); do
                [ -z "$(squeue -h -t RUNNING,COMPLETING,PENDING -o %i 2>/dev/null)" ] && break
                sleep 0.5
            done
        fi
    fi
    for name in slurmd slurmctld munged; do
        pid=$(cat "$dir/pids/$name.pid" 2>/dev/null || true)
        alive "$pid" || { rm -f "$dir/pids/$name.pid"; continue; }
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do alive "$pid" || break; sleep 0.2; done
        if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
        rm -f "$dir/pids/$name.pid"
    done
    stray_jobs "$dir"
    echo "slurm-test-cluster: stopped ($dir)"
}

# A job's processes that outlived it: without cgroups (proctrack/linuxproc) SLURM finds a job's
# processes by their parents, and a process whose parent died first (a cancelled job's
# Snakemake, stuck in its shutdown) is no longer its. Found by the job's environment: this
# cluster's SLURM_CONF and a SLURM_JOB_ID.
stray_jobs() {
    local conf="SLURM_CONF=$1/etc/slurm.conf" env pid
    for env in /proc/[0-9]*/environ; do
        pid=${env#/proc/}; pid=${pid%/environ}
        [ "$pid" = $$ ] && continue
        { tr '\0' '\n' < "$env"; } 2>/dev/null | grep -qxF "$conf" || continue
        { tr '\0' '\n' < "$env"; } 2>/dev/null | grep -q '^SLURM_JOB_ID=' || continue
        echo "slurm-test-cluster: killing process $pid, left by a job of this cluster" >&2
        kill -KILL "$pid" 2>/dev/null || true
    done
}

start() {
    local dir=$1 gpu="" cpus="" arg
    shift
    while [ $# -gt 0 ]; do
        arg=$1
        shift
        case "$arg" in
            --gpu) gpu=--gpu ;;
            --cpus) cpus=${1:-}; shift || true
                    [[ "$cpus" =~ ^[1-9][0-9]*$ ]] || die "--cpus needs a positive number" ;;
            *) die "unknown option '$arg' (start DIR [--gpu] [--cpus N])" ;;
        esac
    done
    need_root
    have_packages || die "slurm-wlm and munge are not installed (run: $0 install)"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ -e "$dir/pids/slurmctld.pid" ] && die "a cluster may already run from $dir (stop it first)"
    chmod 0755 "$dir"
    mkdir -p "$dir/etc" "$dir/log" "$dir/state" "$dir/spool" "$dir/pids" "$dir/munge"
    # munged refuses a socket folder it cannot check: every folder above DIR must be searchable
    setpriv --reuid=munge --regid=munge --init-groups test -x "$dir" \
        || die "user munge cannot enter $dir: choose a folder whose parents are world-searchable (e.g. under /tmp)"
    chown munge:munge "$dir/munge"
    chmod 0700 "$dir/munge"
    # a key of this cluster's own (the system's /etc/munge is left alone)
    if [ ! -s "$dir/munge/munge.key" ]; then
        head -c 1024 /dev/urandom > "$dir/munge/munge.key"
        chown munge:munge "$dir/munge/munge.key"
        chmod 0600 "$dir/munge/munge.key"
    fi

    # the node as slurmd sees it (CPUs, sockets, cores, threads, memory)
    local hw node=aunce-node ctld_port slurmd_port cluster
    hw=$(slurmd -C | head -n1 | sed -e 's/^NodeName=[^ ]* //')
    local overrides=""
    if [ -n "$cpus" ]; then  # N CPUs on one socket, the machine's memory
        hw="CPUs=$cpus Boards=1 SocketsPerBoard=1 CoresPerSocket=$cpus ThreadsPerCore=1 $(echo "$hw" | grep -o 'RealMemory=[0-9]*')"
        overrides="SlurmdParameters=config_overrides"
    fi
    ctld_port=$(free_port)
    slurmd_port=$(free_port)
    [ "$ctld_port" != "$slurmd_port" ] || slurmd_port=$(free_port)
    cluster="aunce$(basename "$dir" | tr -cd 'a-z0-9' | tail -c 20)"
    local gres_line=""
    if [ "$gpu" = --gpu ]; then
        gres_line="Gres=gpu:1"
        echo "NodeName=$node Name=gpu File=/dev/null" > "$dir/etc/gres.conf"
    else
        : > "$dir/etc/gres.conf"
    fi
    : > "$dir/etc/plugstack.conf"
    cat > "$dir/etc/slurm.conf" <<EOF
# written by scripts/slurm-test-cluster.sh: a single-node test cluster (no cgroups, no accounting)
ClusterName=$cluster
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/state/slurmctld.pid
SlurmdPidFile=$dir/spool/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
PlugStackConfig=$dir/etc/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=3600
KillWait=10
InactiveLimit=0
SlurmdTimeout=300
${gres_line:+GresTypes=gpu}
$overrides
NodeName=$node NodeAddr=127.0.0.1 NodeHostname=localhost $hw $gres_line State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF="$dir/etc/slurm.conf"
    # Client commands that find this configuration with PATH alone: the SLURM plugin's job step
    # (snakemake-executor-plugin-slurm-jobstep 0.6.1) removes every SLURM_* variable, SLURM_CONF
    # included, before it calls srun inside a job, and srun then finds no configuration.
    mkdir -p "$dir/bin"
    local cmd real
    for cmd in sbatch srun squeue scancel sinfo scontrol sacct salloc; do
        real=$(command -v "$cmd") || continue
        [ "$real" != "$dir/bin/$cmd" ] || real=/usr/bin/$cmd
        printf '#!/bin/sh\nSLURM_CONF=%s exec %s "$@"\n' "$SLURM_CONF" "$real" > "$dir/bin/$cmd"
        chmod 0755 "$dir/bin/$cmd"
    done
    # from here on a failure stops what was started
    trap 'echo "slurm-test-cluster: start failed; logs in $dir/log" >&2; stop "$dir" >&2' ERR

    setpriv --reuid=munge --regid=munge --init-groups \
        munged --foreground --force --socket="$dir/munge/munge.socket" \
        --key-file="$dir/munge/munge.key" --pid-file="$dir/munge/munged.pid" \
        --seed-file="$dir/munge/munged.seed" --log-file="$dir/munge/munged.log" \
        </dev/null >"$dir/log/munged.out" 2>&1 &
    echo $! > "$dir/pids/munged.pid"
    wait_for "munged" 20 test -S "$dir/munge/munge.socket"

    slurmctld -D -c -f "$SLURM_CONF" </dev/null >"$dir/log/slurmctld.out" 2>&1 &
    echo $! > "$dir/pids/slurmctld.pid"
    wait_for "slurmctld" 30 scontrol ping

    slurmd -D -N "$node" -f "$SLURM_CONF" </dev/null >"$dir/log/slurmd.out" 2>&1 &
    echo $! > "$dir/pids/slurmd.pid"
    wait_for "node $node idle" 60 node_idle "$node"
    trap - ERR
    echo "slurm-test-cluster: running ($cluster: $hw${gres_line:+ $gres_line}) from $dir"
    echo "export SLURM_CONF=$SLURM_CONF PATH=$dir/bin:\$PATH"
}

node_idle() { [ "$(sinfo -h -n "$1" -o %T 2>/dev/null)" = idle ]; }

wait_for() {
    local what=$1 seconds=$2 i
    shift 2
    for i in $(seq 1 $((seconds * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "slurm-test-cluster: $what not ready after ${seconds}s" >&2
    return 1
}

case "${1:-}" in
    install) install ;;
    start) [ $# -ge 2 ] || die "usage: $0 start DIR [--gpu] [--cpus N]"; shift; start "$@" ;;
    stop) [ $# -ge 2 ] || die "usage: $0 stop DIR"; stop "$(cd "$2" 2>/dev/null && pwd || echo "$2")" ;;
    *) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
