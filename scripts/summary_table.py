#!/usr/bin/env python3
"""Print a run's summary.json as a markdown table, beside the authors' logged accuracies.

Usage: scripts/summary_table.py RUN_DIR/summary.json [--authors mlp|cnn|none]
"""
import json
import sys

# Test accuracy (%) in the authors' logs, by epoch. MLP: every epoch of
# Result/log_clean_se=0.5_ts=8_beta=0.04_hvth=20_ovth=10_mnist_best.txt in jinyyy666/mm-bp-snn
# (their "epoch=k" is our epoch k+1); CNN: spec §6 and the issue texts.
AUTHORS = {
    "mlp": {1: 97.32, 2: 97.79, 3: 98.04, 4: 98.36, 5: 98.45, 6: 98.57, 7: 98.49, 8: 98.50,
            9: 98.59, 10: 98.57, 11: 98.61, 12: 98.55, 13: 98.57, 14: 98.67, 15: 98.66},
    "cnn": {1: 95.74, 6: 98.62, 20: 99.18},
}


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    path = sys.argv[1]
    which = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--authors" else "mlp"
    with open(path) as f:
        s = json.load(f)
    authors = AUTHORS.get(which, {})
    # A run with `--validation-samples` tests on held-out training samples, not the test split.
    held_out = s.get("config", {}).get("experiment", {}).get("validation_samples")
    split = "held-out" if held_out else "test"
    print(f"| epoch | {split} acc | train acc | loss | cost (authors) | dead neurons | s / epoch "
          "| samples/s | authors (batch 1) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for e in s["epochs"]:
        a = authors.get(e["epoch"])
        cost = e.get("authors_cost")
        dead = e.get("dead_neurons")
        print(
            f"| {e['epoch']} | {100 * e['test_accuracy']:.2f} % | {100 * e['train_accuracy']:.2f} % "
            f"| {e['loss']:.2f} | {'' if cost is None else f'{cost:.2f}'} "
            f"| {'' if dead is None else ' / '.join(map(str, dead))} "
            f"| {e['seconds']:.0f} | {e['samples_per_second']:.0f} "
            f"| {'' if a is None else f'{a:.2f} %'} |"
        )
    print(f"\nbest {split} accuracy {100 * s['best_test_accuracy']:.2f} % (epoch {s['best_epoch']}); backend {s['backend']}")


if __name__ == "__main__":
    main()
