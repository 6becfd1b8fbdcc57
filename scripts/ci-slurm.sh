#!/usr/bin/env bash
# CI step: `dyad sweep --emit-slurm` against a real Slurm (the one-node cluster of
# scripts/slurm-local.sh).
#
# 1. The shipped study (results/sweep-logic-pim/sweep.toml) as a 4-task array with the merge
#    job after it (submit.sh --wait): the merged points.jsonl and points.csv must equal an
#    unsharded run's, byte for byte.
# 2. A slower sweep (the same scenario with many more requests per point) as a 4-task array;
#    one task is cancelled (scancel) once it has finished a point and before it finishes its
#    shard, then resubmitted alone (sbatch --array=T): every point it had finished must still be
#    there unchanged, the resubmitted task must keep them and run only the rest, and the merge
#    must again equal an unsharded run.
#
# Fails, with the reason, where Slurm cannot be installed or started. Needs target/release/dyad
# (cargo build --release). Leaves the cluster down unless DYAD_SLURM_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DYAD=$ROOT/target/release/dyad
[[ -x $DYAD ]] || { echo "ci-slurm: no $DYAD; run cargo build --release first" >&2; exit 1; }
start=$(date +%s)
fail() {
    echo "ci-slurm: FAILED: $*" >&2
    exit 1
}
step() { echo "ci-slurm: [$(($(date +%s) - start)) s] $*"; }

scripts/slurm-local.sh up || fail "the local Slurm cluster did not come up (see above)"
[[ ${DYAD_SLURM_KEEP:-0} == 1 ]] || trap 'scripts/slurm-local.sh down' EXIT
eval "$(scripts/slurm-local.sh env)"
W=$(mktemp -d /tmp/dyad-ci-slurm.XXXXXX)
step "working in $W"

# Polls until job $1 has left the queue (at most $2 seconds).
wait_gone() {
    local t=0
    while [[ -n $(squeue -h -j "$1" 2>/dev/null) ]]; do
        ((t++ < $2 * 5)) || fail "job $1 still queued after $2 s: $(squeue -j "$1")"
        sleep 0.2
    done
}

# Same points, same results: the merged outputs against the unsharded run's.
same_outputs() {
    for f in points.jsonl points.csv; do
        cmp "$1/$f" "$2/$f" || fail "$2/$f differs from the unsharded $1/$f"
    done
    step "$2: $(wc -l <"$2/points.jsonl") points merged, equal to the unsharded run"
}

# --- 1. The shipped study as a 4-task array, merged by the dependent job.
STUDY=$ROOT/results/sweep-logic-pim/sweep.toml
"$DYAD" sweep "$STUDY" --out "$W/full" --quiet --jobs 2 >/dev/null
"$DYAD" sweep "$STUDY" --out "$W/array" --emit-slurm 4 --slurm-cpus 1 --sbatch=--time=10
step "submitting $W/array/submit.sh --wait"
timeout 300 "$W/array/submit.sh" --wait || fail "array or merge job failed; logs: $(tail -n 5 "$W"/array/logs/*)"
ls "$W"/array/logs/shard-*_{0,1,2,3}.log >/dev/null || fail "not one log per task in $W/array/logs"
same_outputs "$W/full" "$W/array"
"$DYAD" sweep --status "$W/array" "$STUDY"

# --- 2. Cancel one task midway, resubmit it, lose and recompute nothing.
cat >"$W/slow.toml" <<EOF
# The shipped study's scenario, each point with 300 times its requests (about a second a point).
scenario = "$ROOT/results/sweep-logic-pim/scenario.toml"
[[axis]]
key = "arch.pim.modules"
values = "8..=64 x2"
[[axis]]
key = "arch.pim.bandwidth_multiplier"
values = "{1, 2, 4, 8}"
[[axis]]
key = "requests.count"
values = [19200]
EOF
S=$W/slow
"$DYAD" sweep "$W/slow.toml" --out "$S" --emit-slurm 4 --slurm-cpus 1
array=$(sbatch --parsable "$S/sweep.slurm")
array=${array%%;*}
T=1 # the task to cancel: shard 2 of 4, four points
K=$((T + 1))
step "array $array submitted; waiting for task $T to finish a point"
t=0
until [[ -s $S/shard-$K-of-4.jsonl ]] && (($(wc -l <"$S/shard-$K-of-4.jsonl") >= 1)); do
    ((t++ < 600)) || fail "task $T finished no point in 120 s"
    sleep 0.2
done
scancel "${array}_$T"
done_before=$(wc -l <"$S/shard-$K-of-4.jsonl")
((done_before < 4)) || fail "task $T finished its shard before it could be cancelled"
head -n "$done_before" "$S/shard-$K-of-4.jsonl" >"$W/before.jsonl"
step "cancelled task $T after $done_before of 4 points"
wait_gone "$array" 300
"$DYAD" sweep --status "$S" "$W/slow.toml"
step "resubmitting task $T"
timeout 300 sbatch --wait --array="$T" "$S/sweep.slurm" >/dev/null || fail "the resubmitted task failed"
# Nothing lost: every line finished before the cancel is in the shard, as it was.
while IFS= read -r line; do
    grep -qxF -- "$line" "$S/shard-$K-of-4.jsonl" || fail "a point finished before the cancel is gone"
done <"$W/before.jsonl"
# Nothing recomputed: the resubmitted task kept those points and ran only the rest.
want="shard-$K-of-4.jsonl: 4 points: $done_before kept from an earlier run, $((4 - done_before)) run now, 0 failed"
grep -qF "$want" "$S"/logs/shard-*_"$T".log ||
    fail "the resubmitted task's log lacks \"$want\": $(cat "$S"/logs/shard-*_"$T".log)"
step "resubmitted task kept $done_before points and ran $((4 - done_before))"
"$DYAD" sweep --status "$S" "$W/slow.toml" | tee "$W/status.txt"
grep -qx "all: 16 of 16 points done" "$W/status.txt" || fail "--status does not count 16 of 16"
timeout 120 sbatch --wait "$S/merge.slurm" >/dev/null || fail "the merge job failed"
"$DYAD" sweep "$W/slow.toml" --out "$W/slow-full" --quiet --jobs 2 >/dev/null
same_outputs "$W/slow-full" "$S"
rm -rf "$W"
step "passed in $(($(date +%s) - start)) s"
