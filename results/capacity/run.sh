#!/bin/sh
# Regenerates results/capacity/: the capacity of Mixtral-8x7B on 4 x H100 and on 4 x Duplex under
# MLPerf's Server limits (TTFT p99 <= 2 s, TPOT p99 <= 200 ms), with Poisson arrivals and with
# the Azure trace's own arrival pattern. Run from the repository root:
#   cargo build --release && sh results/capacity/run.sh
set -eu
D=${DYAD:-target/release/dyad}
R=results/capacity
LIMITS="--ttft-p99 2 --tpot-p99 0.2 --seeds 3"
for arrivals in poisson trace; do
    case $arrivals in poisson) S=$R/scenario.toml ;; trace) S=$R/scenario-trace.toml ;; esac
    mkdir -p "$R/h100-$arrivals" "$R/duplex-$arrivals"
    "$D" capacity "$S" $LIMITS --out "$R/h100-$arrivals" > "$R/h100-$arrivals/summary.txt"
    "$D" capacity "$S" $LIMITS --arch duplex --policy duplex --out "$R/duplex-$arrivals" \
        > "$R/duplex-$arrivals/summary.txt"
done
