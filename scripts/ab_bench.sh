#!/bin/bash
# A/B timing of two `experiment` binaries on one network: runs their `bench` alternately N times
# (so that drifts of a shared or virtual machine hit both alike) and prints every run and the
# medians. Single bench runs vary by ±8 % on the 2-core VM; compare medians.
# usage: scripts/ab_bench.sh OLD_BIN NEW_BIN MODEL SAMPLES N [more bench args]
set -euo pipefail
old=$1 new=$2 model=$3 samples=$4 n=$5
shift 5
runs=$(mktemp)
for _ in $(seq "$n"); do
  for b in "$old" "$new"; do
    # The samples/s column, found by its header (binaries differ in columns).
    v=$("$b" bench --models "$model" --kernels event-driven --samples "$samples" "$@" 2>&1 |
      awk -F'|' -v m="$model" '/samples\/s/ && !c { for (i = 1; i <= NF; i++) if ($i ~ /^ *samples\/s *$/) c = i }
        c && index($0, "| " m " ") == 1 { gsub(/ /, "", $c); print $c; exit }')
    echo "$b $v"
  done
done | tee "$runs"
python3 - "$runs" <<'P'
import collections, statistics, sys
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    b, v = line.split()
    d[b].append(float(v))
for b, v in d.items():
    print(f"median {b}: {statistics.median(v):.0f} samples/s over {len(v)} runs {sorted(v)}")
P
rm -f "$runs"
