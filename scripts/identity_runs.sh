#!/bin/bash
# The three short runs that show a change leaves training bit-identical (a 12,000-sample MLP
# epoch, a 1,600-sample CNN epoch, a BPTT epoch), written to OUT/{mlp,cnn,bptt}; compare two
# such folders with scripts/same_run.py. Run it with the binary before and after the change.
# usage: scripts/identity_runs.sh BIN OUT [DATA_DIR]
set -euo pipefail
bin=$1 out=$2 data=${3:-../shared/data}
common=(--plain --no-fetch --data-dir "$data" --epochs 1 --checkpoint-minutes 0)
"$bin" train mnist-mlp "${common[@]}" --train-samples 12000 --test-samples 2000 --out "$out/mlp"
"$bin" train mnist-cnn "${common[@]}" --train-samples 1600 --test-samples 400 --out "$out/cnn"
"$bin" train mnist-mlp-compare --method bptt "${common[@]}" --train-samples 2000 \
  --test-samples 500 --steps 25 --out "$out/bptt"
