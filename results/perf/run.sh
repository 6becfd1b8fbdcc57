#!/bin/sh
# Scaling study of dyad's own speed (issue 16): wall time and peak RSS of `dyad run --serving`
# and `dyad sweep` against requests, layers, experts, devices and sweep size, each point one
# process measured by GNU time (/usr/bin/time -v). Writes results/perf/README.md. Run from the
# repository root after `cargo build --release`:
#   sh results/perf/run.sh
# It takes a few minutes on 2 cores (the 10^6-request point is most of it).
set -eu
ROOT=$(pwd)
DYAD="$ROOT/target/release/dyad"
OUT="$ROOT/results/perf"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ROWS="$WORK/rows.tsv"
: > "$ROWS"

# measure AXIS VALUE WHAT COMMAND...: one process, its wall time (s) and peak RSS (MB).
measure() {
    axis=$1 value=$2 what=$3
    shift 3
    /usr/bin/time -v "$@" > /dev/null 2> "$WORK/time.txt" || { cat "$WORK/time.txt" >&2; exit 1; }
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$WORK/time.txt" |
        awk -F: '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }')
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time.txt")
    printf '%s\t%s\t%s\t%s\t%s\n' "$axis" "$value" "$what" "$wall" "$rss" >> "$ROWS"
}

# scenario NAME MODEL TP EP COUNT PROMPT OUTPUT ARRIVALS BATCH ROUTING ARCH WEIGHTS
scenario() {
    cat > "$WORK/$1.toml" <<EOF
name = "$1"
arch = "${11}"
model = "$2"
tp = $3
ep = $4
seed = 1
[precision]
weights = "${12}"
activations = "${12}"
kv = "bf16"
[requests]
count = $5
prompt = { fixed = $6 }
output = { fixed = $7 }
[arrivals]
$8
[batching]
max_batch = $9
max_tokens = 8192
kv_block = 16
memory_utilization = 0.9
[routing]
${10}
EOF
}

# A copy of Mixtral-8x7B's config with KEY set to VALUE (and the experts' width scaled so that
# the parameters stay those of 8 experts when the experts change).
mixtral() {
    python3 - "$ROOT/workloads/models/mixtral-8x7b.json" "$WORK/mixtral-$1-$2.json" "$1" "$2" <<'EOF'
import json, sys
src, dst, key, value = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
m = json.load(open(src))
m[key] = value
if key == "num_local_experts":
    m["intermediate_size"] = m["intermediate_size"] * 8 // value
json.dump(m, open(dst, "w"))
EOF
    echo "$WORK/mixtral-$1-$2.json"
}

ZIPF='mode = "zipf"
s = 1.2'
MIXTRAL="$ROOT/workloads/models/mixtral-8x7b.json"

# Requests: an open loop (Poisson, 100 requests/s of (128, 32)), Mixtral-8x7B on 4 x H100.
for n in 1000 10000 100000 1000000; do
    scenario "req-$n" "$MIXTRAL" 4 1 "$n" 128 32 "poisson = 100.0" 128 'mode = "uniform"' "$ROOT/arch/h100.toml" bf16
    measure requests "$n" "open loop, balanced" "$DYAD" run --serving "$WORK/req-$n.toml" --format json
done
# Layers: Mixtral-8x7B's shape with 8 to 64 layers, 1,000 requests of (1024, 1024), Zipf.
for l in 8 16 32 64; do
    m=$(mixtral num_hidden_layers "$l")
    scenario "layers-$l" "$m" 4 1 1000 1024 1024 "closed = 128" 128 "$ZIPF" "$ROOT/arch/h100.toml" bf16
    measure layers "$l" "closed b128, Zipf" "$DYAD" run --serving "$WORK/layers-$l.toml" --format json
done
# Experts: 8 to 256 routed experts (top 2) at Mixtral-8x7B's parameters, Zipf.
for e in 8 32 64 128 256; do
    m=$(mixtral num_local_experts "$e")
    scenario "experts-$e" "$m" 4 1 1000 1024 1024 "closed = 128" 128 "$ZIPF" "$ROOT/arch/h100.toml" bf16
    measure experts "$e" "closed b128, Zipf" "$DYAD" run --serving "$WORK/experts-$e.toml" --format json
done
# Devices: Qwen3-30B-A3B (128 experts) expert-parallel over 1 to 64 H100s, 1,000 requests of
# (1024, 256), batch 256, Zipf.
# Past 8 devices, nodes of 8 joined by InfiniBand (arch/h100-2node.toml with more nodes).
for d in 1 2 4 8 16 32 64; do
    arch="$ROOT/arch/h100.toml"
    if [ "$d" -gt 8 ]; then
        arch="$WORK/h100-$d.toml"
        printf 'extends = "%s"\nname = "%s x H100"\n[cluster]\nnodes = %s\n' \
            "$ROOT/arch/h100-2node.toml" "$d" "$((d / 8))" > "$arch"
    fi
    scenario "devices-$d" "$ROOT/workloads/models/qwen3-30b-a3b.json" 1 "$d" 1000 1024 256 "closed = 256" 256 "$ZIPF" "$arch" bf16
    measure devices "$d" "EP, closed b256, Zipf" "$DYAD" run --serving "$WORK/devices-$d.toml" --format json
done
# Sweep size: single-iteration points (one request of one prompt and one output token) of the
# Logic-PIM study's scenario, 64 x M points.
sed -e "s#\.\./\.\./#$ROOT/#" -e 's/count = 64/count = 1/' -e 's/fixed = 512/fixed = 1/' \
    -e 's/fixed = 128/fixed = 1/' "$ROOT/results/sweep-logic-pim/scenario.toml" > "$WORK/base.toml"
for m in 1 4 16 64; do
    printf 'scenario = "base.toml"\n[[axis]]\nkey = "arch.pim.modules"\nvalues = "1..=64"\n[[axis]]\nkey = "arch.pim.bandwidth_multiplier"\nvalues = "1..=%s"\n' "$m" > "$WORK/sweep-$m.toml"
    measure sweep "$((64 * m))" "single-iteration points" "$DYAD" sweep -q "$WORK/sweep-$m.toml" --out "$WORK/sweep-$m"
done

python3 - "$ROWS" "$(nproc)" > "$WORK/README.md" <<'EOF'
import math, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
axes = {}
for axis, value, what, wall, rss in rows:
    axes.setdefault(axis, []).append((int(value), what, float(wall), int(rss) / 1024))
names = {
    "requests": "Requests (open loop, Mixtral-8x7B on 4 x H100, (128, 32) at 100/s, balanced)",
    "layers": "Layers (Mixtral-8x7B's shape, 1,000 requests of (1024, 1024), batch 128, Zipf 1.2)",
    "experts": "Routed experts, top 2, at Mixtral-8x7B's parameters (1,000 of (1024, 1024), Zipf 1.2)",
    "devices": "Devices (Qwen3-30B-A3B, expert parallel, 1,000 of (1024, 256), batch 256, Zipf 1.2)",
    "sweep": "Sweep size (single-iteration points of the Logic-PIM scenario, 2 workers)",
}
print("# dyad's speed at scale\n")
print("Regenerate with `sh results/perf/run.sh` after `cargo build --release` (each point one")
print(f"process under GNU time; this machine: {sys.argv[2]} cores, shared). The growth order is the")
print("least-squares slope of log(wall time) against log(size) over the points above 0.05 s")
print("(1 = linear); RSS is the peak resident set.\n")
for axis, pts in axes.items():
    print(f"## {names[axis]}\n")
    print("| size | wall time (s) | peak RSS (MB) |\n|---:|---:|---:|")
    for v, _, w, r in pts:
        print(f"| {v:,} | {w:.2f} | {r:.0f} |")
    fit = [(math.log(v), math.log(w)) for v, _, w, _ in pts if w >= 0.05]
    if len(fit) >= 2:
        mx = sum(x for x, _ in fit) / len(fit)
        my = sum(y for _, y in fit) / len(fit)
        sxx = sum((x - mx) ** 2 for x, _ in fit)
        slope = sum((x - mx) * (y - my) for x, y in fit) / sxx
        print(f"\nGrowth order of wall time: {slope:.2f}.\n")
    else:
        print("\nEvery point under 0.05 s: no growth order.\n")
EOF
# The hand-written profile (what the time is spent on) follows the tables.
cat "$WORK/README.md" "$OUT/profile.md" > "$OUT/README.md"
cat "$OUT/README.md"
