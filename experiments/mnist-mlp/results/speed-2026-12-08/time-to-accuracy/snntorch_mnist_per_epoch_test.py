#!/usr/bin/env python3
"""Peer benchmark: snnTorch 784-800-10 LIF MLP on rate-coded MNIST, BPTT + Adam, CPU.

Network : Linear(784,800) -> snn.Leaky -> Linear(800,10) -> snn.Leaky
          beta = exp(-1/64) (tau_m = 64 steps), threshold 1.0, reset by subtraction
          (snnTorch default), surrogate ATan (default) or fast sigmoid.
Encoding: snntorch.spikegen.rate, Bernoulli per step with p = pixel/255 * rate_scale;
          rate_scale defaults to 1/5.5 (HM2-BP's CONST_SPIKING_SCALE, max ~0.18/step).
          Fresh spikes for every batch (train and test).
Loss    : snntorch.functional.mse_count_loss(correct_rate, incorrect_rate) (default) or
          ce_rate_loss; prediction = argmax of output spike counts.
Prints one JSON line at the end (last line of stdout). All figures are whole-process on
the machine it runs on: wall-clock seconds (time.perf_counter), own CPU seconds and peak
RSS (getrusage), plus how busy the rest of the machine was (/proc/stat).
"""
import argparse
import json
import math
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common as bc  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import snntorch as snn  # noqa: E402
from snntorch import spikegen, surrogate  # noqa: E402
import snntorch.functional as SF  # noqa: E402


class Net(nn.Module):
    def __init__(self, hidden, beta, threshold, spike_grad, bias):
        super().__init__()
        self.fc1 = nn.Linear(784, hidden, bias=bias)
        self.lif1 = snn.Leaky(beta=beta, threshold=threshold, spike_grad=spike_grad)
        self.fc2 = nn.Linear(hidden, 10, bias=bias)
        self.lif2 = snn.Leaky(beta=beta, threshold=threshold, spike_grad=spike_grad)

    def forward(self, spikes):  # spikes: [T, B, 784]
        mem1 = self.lif1.reset_mem()
        mem2 = self.lif2.reset_mem()
        out = []
        hid_count = 0.0
        for t in range(spikes.shape[0]):
            spk1, mem1 = self.lif1(self.fc1(spikes[t]), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            out.append(spk2)
            hid_count = hid_count + spk1.detach().sum()
        return torch.stack(out), hid_count


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--time-steps", "-T", type=int, default=25)
    ap.add_argument("--batch-size", "-B", type=int, default=128)
    ap.add_argument("--train-samples", "-N", type=int, default=60000)
    ap.add_argument("--test-samples", "-M", type=int, default=10000)
    ap.add_argument("--epochs", "-E", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--hidden", type=int, default=800)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--beta", type=float, default=math.exp(-1.0 / 64.0))
    ap.add_argument("--threshold", type=float, default=1.0)
    ap.add_argument("--surrogate", choices=["atan", "fast_sigmoid"], default="atan")
    ap.add_argument("--loss", choices=["mse_count", "ce_rate"], default="mse_count")
    ap.add_argument("--correct-rate", type=float, default=0.8)
    ap.add_argument("--incorrect-rate", type=float, default=0.2)
    ap.add_argument("--rate-scale", type=float, default=1.0 / 5.5,
                    help="per-step spike probability = pixel/255 * rate_scale (HM2-BP: 1/5.5)")
    ap.add_argument("--no-bias", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=bc.DEFAULT_DATA)
    ap.add_argument("--log-every", type=int, default=50, help="batches between progress lines (stderr); 0 = off")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rss_start = bc.rss_mb_now()

    xtr, ytr, xte, yte = bc.load_mnist(args.data, args.train_samples, args.test_samples)
    xtr, ytr, xte, yte = (torch.from_numpy(a) for a in (xtr, ytr, xte, yte))
    n_train, n_test = xtr.shape[0], xte.shape[0]

    spike_grad = surrogate.atan() if args.surrogate == "atan" else surrogate.fast_sigmoid()
    net = Net(args.hidden, args.beta, args.threshold, spike_grad, bias=not args.no_bias)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.999))
    if args.loss == "mse_count":
        loss_fn = SF.mse_count_loss(correct_rate=args.correct_rate, incorrect_rate=args.incorrect_rate)
    else:
        loss_fn = SF.ce_rate_loss()
    rss_after_setup = bc.rss_mb_now()

    T, B = args.time_steps, args.batch_size
    epoch_times, epoch_stats = [], []
    meter = bc.TrainMeter()
    meter.start()
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(n_train)
        t0 = time.perf_counter()
        seen = correct = nb = 0
        loss_sum = hid_spikes = 0.0
        for i in range(0, n_train, B):
            idx = perm[i: i + B]
            x, y = xtr[idx], ytr[idx]
            spikes = spikegen.rate(x * args.rate_scale, num_steps=T)  # [T, B, 784]
            spk_out, hc = net(spikes)
            loss = loss_fn(spk_out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            nb += 1
            seen += x.shape[0]
            loss_sum += loss.item() * x.shape[0]
            correct += (spk_out.detach().sum(0).argmax(1) == y).sum().item()
            hid_spikes += float(hc)
            if args.log_every and nb % args.log_every == 0:
                el = time.perf_counter() - t0
                print(f"epoch {epoch} batch {nb} seen {seen} loss {loss_sum/seen:.4f} "
                      f"train_acc {correct/seen:.4f} {seen/el:.1f} samples/s rss {bc.rss_mb_now():.0f} MB",
                      file=sys.stderr, flush=True)
        dt = time.perf_counter() - t0
        epoch_times.append(dt)
        epoch_stats.append({"epoch": epoch, "seconds": round(dt, 2), "train_loss": round(loss_sum / seen, 5),
                            "train_acc": round(correct / seen, 4),
                            "hidden_spikes_per_neuron_per_step": round(hid_spikes / (seen * T * args.hidden), 5)})
        print(f"epoch {epoch} done: {dt:.1f} s, {seen/dt:.2f} samples/s, loss {loss_sum/seen:.4f}, "
              f"train_acc {correct/seen:.4f}", file=sys.stderr, flush=True)
        # Local variant (session 20): test accuracy after every epoch, outside the timed training.
        net.eval()
        ec = 0
        with torch.no_grad():
            for i in range(0, n_test, B):
                xx, yy = xte[i: i + B], yte[i: i + B]
                so, _ = net(spikegen.rate(xx * args.rate_scale, num_steps=T))
                ec += (so.sum(0).argmax(1) == yy).sum().item()
        epoch_stats[-1]["test_acc"] = round(ec / n_test, 4)
        epoch_stats[-1]["train_seconds_so_far"] = round(sum(epoch_times), 2)
        print(f"epoch {epoch} test_acc {ec / n_test:.4f} train_seconds_so_far {sum(epoch_times):.1f}", file=sys.stderr, flush=True)
        net.train()
    train_total = sum(epoch_times)
    load_info = meter.stop(train_total)

    net.eval()
    t0 = time.perf_counter()
    tcorrect = 0
    with torch.no_grad():
        for i in range(0, n_test, B):
            x, y = xte[i: i + B], yte[i: i + B]
            spk_out, _ = net(spikegen.rate(x * args.rate_scale, num_steps=T))
            tcorrect += (spk_out.sum(0).argmax(1) == y).sum().item()
    test_dt = time.perf_counter() - t0

    sps = n_train * args.epochs / train_total
    result = {
        "library": "snntorch",
        "snntorch": snn.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "T": T, "B": B, "train_samples": n_train, "test_samples": n_test, "epochs": args.epochs,
        "hidden": args.hidden, "lr": args.lr, "beta": round(args.beta, 6), "threshold": args.threshold,
        "surrogate": args.surrogate, "loss": args.loss, "rate_scale": round(args.rate_scale, 6),
        "train_seconds": round(train_total, 2),
        "train_samples_per_s": round(sps, 2),
        "sec_per_epoch_60k": round(60000.0 / sps, 1),
        **load_info,
        "test_samples_per_s": round(n_test / test_dt, 2),
        "test_acc": round(tcorrect / n_test, 4),
        "epoch_stats": epoch_stats,
        "rss_start_mb": round(rss_start, 1),
        "rss_after_data_and_model_mb": round(rss_after_setup, 1),
        "peak_rss_mb": round(bc.peak_rss_mb(), 1),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
