#!/usr/bin/env bash
# Training throughput of one process (all cores) against `mpirun -n 2` (one thread per rank)
# and `--virtual-workers 2`, alternating, on a 6,000-sample MLP epoch and a 1,600-sample CNN
# epoch. Usage (project root, idle machine, built with --features mpi):
#   scripts/data_parallel_speed.sh target/release/experiment OUT [ROUNDS]
# Prints one line per run: round mode experiment samples/s (summary.json, training split).
set -euo pipefail
bin=$1; out=$2; rounds=${3:-2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
  OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none \
  OMPI_MCA_mpi_yield_when_idle=1
data=${HM2BP_SHARED_DATA:-../shared/data}
declare -A args=(
  [mlp]="mnist-mlp --train-samples 6000 --test-samples 500"
  [cnn]="mnist-cnn --train-samples 1600 --test-samples 160"
)
mkdir -p "$out"
for round in $(seq 1 "$rounds"); do
  for exp in mlp cnn; do
    for mode in single mpirun-2 virtual-2; do
      dir="$out/$exp-$mode-$round"
      rm -rf "$dir"
      common="train ${args[$exp]} --epochs 1 --checkpoint-minutes 0 --plain --no-fetch --data-dir $data --out $dir"
      case $mode in
        single) "$bin" $common > "$dir.log" 2>&1 ;;
        mpirun-2) mpirun -n 2 --bind-to none -x RAYON_NUM_THREADS=1 "$bin" $common > "$dir.log" 2>&1 ;;
        virtual-2) "$bin" $common --virtual-workers 2 > "$dir.log" 2>&1 ;;
      esac
      sps=$(python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['epochs'][0]['samples_per_second'],1))" "$dir/summary.json")
      echo "$round $mode $exp $sps"
    done
  done
done
