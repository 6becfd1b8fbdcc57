#!/bin/sh
# Regenerates this study (seconds): the shipped Azure-trace scenario of results/capacity (Mixtral-8x7B,
# TP 4 on H100, 1,000 requests at the trace's own times) on 4 replicas behind each router, as
# text and JSON reports, beside the plain one-replica run. Run from anywhere.
set -e
cd "$(dirname "$0")"
root=../../..
dyad=${DYAD:-$root/target/release/dyad}
s=../../capacity/scenario-trace.toml
# The reference: one replica, the plain run of the same file.
"$dyad" run --serving "$s" > r1.txt
"$dyad" run --serving "$s" --format json > r1.json
for router in round_robin least_work; do
    "$dyad" run --serving "$s" --replicas 4 --router "$router" > "r4-$router.txt"
    "$dyad" run --serving "$s" --replicas 4 --router "$router" --format json > "r4-$router.json"
done
