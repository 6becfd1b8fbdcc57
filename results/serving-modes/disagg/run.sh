#!/bin/sh
# Regenerates this study (seconds): the disaggregated design and both monolithic systems at equal
# device count (4), as text reports beside their scenarios. Run from anywhere.
set -e
cd "$(dirname "$0")"
root=../../..
dyad=${DYAD:-$root/target/release/dyad}
for s in mono-h100 mono-duplex disagg; do
    "$dyad" run --serving "$s.toml" > "$s.txt"
    "$dyad" run --serving "$s.toml" --format json > "$s.json"
done
