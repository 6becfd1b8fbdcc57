#!/bin/sh
# Regenerates every part of results/serving-modes/ (about 100 s after `cargo build --release`;
# needs python3 and jq). Run from the repository root:
#   cargo build --release && sh results/serving-modes/run.sh
set -eu
sh results/serving-modes/speculative/run.sh
sh results/serving-modes/ulysses/run.sh
sh results/serving-modes/disagg/run.sh
sh results/serving-modes/ep/run.sh
sh results/serving-modes/replicas/run.sh
sh results/serving-modes/pipeline/run.sh
