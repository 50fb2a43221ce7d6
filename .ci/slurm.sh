#!/usr/bin/env bash
# A one-node Slurm cluster on this machine for the Slurm test of `nst batch` (see .ci/slurm-test).
#
#   bash .ci/slurm.sh up     install slurm-wlm and munge where missing (Debian, root), start munged,
#                            slurmctld and slurmd with a configuration generated for this machine
#                            (written to $NST_SLURM_DIR/slurm.conf: export SLURM_CONF to use it), and
#                            wait until the node is idle
#   bash .ci/slurm.sh down   stop what `up` started
#
# Exit status 77 with a last line `SKIPPED: ...` when the packages cannot be installed (not root, no
# apt-get, no package registry); any other failure is an error. State: $NST_SLURM_DIR (default
# /tmp/nst-slurm-ci). Bring-up measured at about 1 s, the install at about 10 s (docs/scale-out.md).
set -euo pipefail

S="${NST_SLURM_DIR:-/tmp/nst-slurm-ci}"
CONF="$S/slurm.conf"

skip() {
    echo "SKIPPED: slurm: $*"
    exit 77
}

install() {
    if command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v munged >/dev/null; then
        return
    fi
    [ "$(id -u)" = 0 ] || skip "slurm-wlm and munge are not installed and this is not root (apt-get install -y slurm-wlm munge)"
    command -v apt-get >/dev/null || skip "slurm-wlm and munge are not installed and there is no apt-get"
    echo "installing slurm-wlm and munge"
    local log="$S/apt.log"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends slurm-wlm munge; } >"$log" 2>&1; then
        tail -n 5 "$log"
        skip "apt-get could not install slurm-wlm and munge (see above)"
    fi
}

start_munge() {
    mkdir -p /run/munge
    chown munge:munge /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        # The pid file goes where the munge user may write.
        runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/nst-ci-munged.pid
        touch "$S/munged.ours"
    fi
    for _ in $(seq 100); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "error: munged did not answer" >&2
    exit 1
}

write_conf() {
    local host node
    host=$(hostname -s)
    # slurmd -C describes this machine; more CPUs than cores (with config_overrides) lets three
    # one-thread array tasks run at once on a two-core machine.
    node=$(slurmd -C | head -n 1 | sed -E 's/ CPUs=[0-9]+/ CPUs=4/; s/ (Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=[0-9]+//g')
    cat >"$CONF" <<CONF
ClusterName=nstci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$S/log/jobcomp.txt
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
MinJobAge=600
KillWait=20
$node State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
}

up() {
    mkdir -p "$S"
    install
    if [ -s "$S/slurmctld.pid" ] && kill -0 "$(cat "$S/slurmctld.pid")" 2>/dev/null; then
        down
    fi
    rm -rf "$S/state" "$S/spool" "$S/log"
    mkdir -p "$S/state" "$S/spool" "$S/log"
    start_munge
    write_conf
    export SLURM_CONF="$CONF"
    slurmctld -i -f "$CONF"
    slurmd -f "$CONF"
    for _ in $(seq 150); do
        if sinfo -h -o %t 2>/dev/null | grep -qx idle; then
            echo "slurm: one node idle ($(sinfo -h -o '%N %c CPUs')), SLURM_CONF=$CONF"
            return
        fi
        sleep 0.2
    done
    echo "error: the Slurm node did not become idle; logs in $S/log" >&2
    tail -n 20 "$S/log/slurmctld.log" "$S/log/slurmd.log" >&2 || true
    exit 1
}

down() {
    for d in slurmd slurmctld; do
        if [ -s "$S/$d.pid" ]; then
            kill "$(cat "$S/$d.pid")" 2>/dev/null || true
            rm -f "$S/$d.pid"
        fi
    done
    if [ -e "$S/munged.ours" ]; then
        if [ -s /run/munge/nst-ci-munged.pid ]; then
            kill "$(cat /run/munge/nst-ci-munged.pid)" 2>/dev/null || true
        fi
        rm -f "$S/munged.ours"
    fi
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *)
        echo "usage: bash .ci/slurm.sh up|down" >&2
        exit 2
        ;;
esac
