#!/bin/bash
# A/B of two `experiment` binaries on training throughput: one short training epoch of MODEL
# (N_SAMPLES training samples) by each binary, alternately, ROUNDS times, on the project's
# data (DATA, default ../shared/data); prints every run's samples/s (from summary.json) and the
# medians, and checks that both binaries trained the same network (same loss and accuracies).
# usage: scripts/ab_train.sh OLD_BIN NEW_BIN MODEL N_SAMPLES ROUNDS [more train args]
set -euo pipefail
old=$1 new=$2 model=$3 samples=$4 rounds=$5
shift 5
data=${DATA:-../shared/data}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for r in $(seq "$rounds"); do
  for b in "$old" "$new"; do
    out="$dir/$(basename "$b")-$r"
    "$b" train "$model" --plain --no-fetch --data-dir "$data" --epochs 1 \
      --train-samples "$samples" --test-samples 500 --out "$out" "$@" > "$out.log" 2>&1
    echo "$b $out/summary.json"
  done
done | tee "$dir/runs" | python3 -c '
import collections, json, statistics, sys
speed, results = collections.defaultdict(list), collections.defaultdict(set)
for line in sys.stdin:
    b, path = line.split()
    e = json.load(open(path))["epochs"][0]
    s = e["samples_per_second"]
    speed[b].append(s)
    results[b].add((e["loss"], e["test_accuracy"], e["train_accuracy"]))
    print(f"{b}: {s:.0f} samples/s")
for b, v in speed.items():
    print(f"median {b}: {statistics.median(v):.0f} samples/s over {len(v)} runs {sorted(round(x) for x in v)}")
same = len(set.union(*results.values())) == 1
print("same training results:", same, "" if same else results)
'
