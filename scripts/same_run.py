#!/usr/bin/env python3
"""Compares two run folders of `experiment train`: the per-epoch metrics of their summary.json
(timings excluded) and the parameter values of every model file (model*.bpk: the data after
the header, which holds random parameter ids). Optimizer records are not compared: they order
their tensors by those random ids. Exits 1 on the first difference.

usage: scripts/same_run.py RUN_A RUN_B
"""
import json
import pathlib
import struct
import sys

TIMINGS = {"seconds", "train_seconds", "test_seconds", "samples_per_second", "peak_memory_mib",
           "wall_seconds", "duration_s", "train_samples_per_second"}


def burnpack_data(path):
    data = path.read_bytes()
    if data[:4] != b"NRUB":
        sys.exit(f"{path}: not a burnpack file")
    (metadata,) = struct.unpack("<I", data[6:10])
    return data[10 + metadata:]


def strip(value):
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k not in TIMINGS and "second" not in k}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def main(a, b):
    a, b = pathlib.Path(a), pathlib.Path(b)
    sa = strip(json.loads((a / "summary.json").read_text()))
    sb = strip(json.loads((b / "summary.json").read_text()))
    for key in ("epochs", "best_test_accuracy", "best_epoch", "average"):
        if sa.get(key) != sb.get(key):
            sys.exit(f"summary.json differs in {key}:\n{sa.get(key)}\n{sb.get(key)}")
    models = sorted(p.relative_to(a) for p in a.rglob("model*.bpk"))
    if not models:
        sys.exit(f"{a}: no model files")
    for rel in models:
        if not (b / rel).is_file():
            sys.exit(f"{b / rel}: missing")
        if burnpack_data(a / rel) != burnpack_data(b / rel):
            sys.exit(f"{rel}: parameter values differ")
    print(f"same: {len(sa['epochs'])} epoch(s) of metrics, {len(models)} model file(s)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
