#!/usr/bin/env bash
# The prepared check of the wgpu path on a machine with an NVIDIA GPU and no internet (#29).
#
#   scripts/gpu-check.sh pack      here: builds the release binaries with --features wgpu (the
#                                  `experiment` binary and the test binary of tests/wgpu.rs),
#                                  then fills gpu-check/ (git-ignored through
#                                  .git/info/exclude) with them, MNIST and the Vulkan loader.
#   scripts/gpu-check.sh run OUT   there, from the repository root, with gpu-check/ beside it
#                                  (the device tool: carry ["gpu-check"]): prints nvidia-smi and
#                                  the Vulkan adapter, runs the wgpu parity tests, the bench at
#                                  batches 16/64/256 for the MLP and the CNN (flex on all cores
#                                  beside it), CubeCL's per-kernel profile and launches of a few
#                                  steps, and one 60k-sample epoch of `experiment train mnist-mlp
#                                  --backend wgpu`, writing every log into OUT; within 10 minutes (timeouts
#                                  140 + 170 + 2 × 40 + 150 s).
#
# Data: $HM2BP_DATA_DIR (default ../shared/data, else data/) must hold mnist/ when packing.
# GPU_CHECK_ALLOW_SOFTWARE=1 lets `run` use a software Vulkan device (a rehearsal on lavapipe).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
pack_dir=gpu-check

pack() {
  local target="${CARGO_TARGET_DIR:-target}"
  cargo build --release --features wgpu --bin experiment
  local test_bin
  test_bin=$(cargo test --release --features wgpu --test wgpu --no-run 2>&1 |
    sed -n 's/.*Executable tests\/wgpu.rs (\(.*\))/\1/p' | tail -1)
  [[ -x "$test_bin" ]] || { echo "the test binary of tests/wgpu.rs was not found"; exit 1; }
  rm -rf "$pack_dir" && mkdir -p "$pack_dir/bin" "$pack_dir/data" "$pack_dir/gl"
  grep -qx "/$pack_dir/" .git/info/exclude 2>/dev/null || echo "/$pack_dir/" >>.git/info/exclude
  strip -o "$pack_dir/bin/experiment" "$target/release/experiment"
  strip -o "$pack_dir/bin/wgpu-tests" "$test_bin"
  zstd -q -T0 -15 --rm "$pack_dir/bin/experiment" "$pack_dir/bin/wgpu-tests"
  local data="${HM2BP_DATA_DIR:-../shared/data}"
  [[ -d "$data/mnist" ]] || data=data
  cp -r "$data/mnist" "$pack_dir/data/"
  # The Vulkan loader (the NVIDIA driver brings the ICD, not always the loader).
  (cd "$pack_dir/gl" && apt-get download libvulkan1 >/dev/null)
  # Paths compiled into the binaries (CARGO_MANIFEST_DIR, CARGO_BIN_EXE_experiment).
  {
    echo "manifest_dir=$root"
    echo "experiment_exe=$(cd "$(dirname "$target/release/experiment")" && pwd)/experiment"
    echo "commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo -dirty)"
  } >"$pack_dir/paths.env"
  du -sh "$pack_dir"
}

# Makes the paths the binaries were built with point at this checkout and binaries.
link_build_paths() {
  # shellcheck disable=SC1091
  source "$pack_dir/paths.env"
  if [[ ! -e "$manifest_dir" ]]; then
    mkdir -p "$(dirname "$manifest_dir")" && ln -s "$root" "$manifest_dir"
  fi
  if [[ ! -e "$experiment_exe" ]]; then
    mkdir -p "$(dirname "$experiment_exe")" && ln -s "$bin/experiment" "$experiment_exe"
  fi
}

vulkan_setup() {
  for f in "$pack_dir"/gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  if ! ls /usr/share/vulkan/icd.d/nvidia* /etc/vulkan/icd.d/nvidia* >/dev/null 2>&1 &&
    [[ -f $icd ]]; then
    export VK_DRIVER_FILES=$icd
  fi
  export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
}

run() {
  local out=$1
  mkdir -p "$out"
  bin=/tmp/hm2bp-gpu-check
  mkdir -p "$bin"
  zstd -q -d -f "$pack_dir/bin/experiment.zst" -o "$bin/experiment"
  zstd -q -d -f "$pack_dir/bin/wgpu-tests.zst" -o "$bin/wgpu-tests"
  chmod +x "$bin"/*
  link_build_paths
  vulkan_setup
  local data=$root/$pack_dir/data
  local allow=()
  [[ "${GPU_CHECK_ALLOW_SOFTWARE:-0}" == 1 ]] && allow=(--allow-software-gpu)
  {
    date -u
    cat "$pack_dir/paths.env"
    nvidia-smi || echo "nvidia-smi: not found"
    ldconfig -p | grep libvulkan || echo "no Vulkan loader"
    echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"
    nproc
  } >"$out/machine.txt" 2>&1
  cat "$out/machine.txt"
  echo "=== wgpu parity tests"
  HM2BP_SHARED_DATA=$data timeout 140 "$bin/wgpu-tests" --include-ignored 2>&1 |
    tee "$out/tests.log" || true
  echo "=== bench (flex on all cores, then wgpu; batches 16/64/256)"
  timeout 170 "$bin/experiment" bench --backends flex,wgpu "${allow[@]}" --kernels event-driven \
    --batch-sizes 16,64,256 --samples 1024 --warmup-batches 2 --data-dir "$data" \
    2>&1 | tee "$out/bench.log" || true
  echo "=== per-kernel device times of a few steps (CubeCL's profile log)"
  for net in mlp:mnist-784-800-10 cnn:mnist-cnn-15c5-p2-40c5-p2-300-10; do
    local name=${net%%:*} model=${net#*:}
    CUBECL_DEBUG_OPTION=profile CUBECL_DEBUG_LOG="$out/profile-$name.log" \
      timeout 40 "$bin/experiment" bench --backends wgpu "${allow[@]}" --kernels event-driven \
      --models "$model" --samples 48 --warmup-batches 1 --data-dir "$data" --launches-by-kernel \
      >"$out/launches-$name.log" 2>&1 || true
  done
  echo "=== one epoch of mnist-mlp on wgpu"
  timeout 150 "$bin/experiment" train mnist-mlp --backend wgpu "${allow[@]}" --epochs 1 --plain --no-fetch \
    --data-dir "$data" --out /tmp/hm2bp-gpu-train --checkpoint-minutes 0 2>&1 |
    tee "$out/train.log" || true
  cp /tmp/hm2bp-gpu-train/summary.json "$out/" 2>/dev/null || true
}

case "${1:-}" in
  pack) pack ;;
  run) run "${2:?usage: scripts/gpu-check.sh run OUT}" ;;
  *) echo "usage: scripts/gpu-check.sh pack | run OUT"; exit 2 ;;
esac
