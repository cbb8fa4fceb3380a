//! The generic (tensor-op) path of the spiking dense layer computes what the event-driven host
//! kernels compute: the same spike trains (bit for bit, with weights whose sums are exact in
//! `f32`) and the same HM2-BP gradients (up to summation order).
#![allow(
    clippy::disallowed_methods,
    reason = "tests read tensors directly; only the library's reads are counted"
)]

use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use hm2bp::SpikeTrains;
use hm2bp::layers::{SpikingDense, SpikingDenseConfig};
use hm2bp::neuron::LifSpec;
use hm2bp::ops::KernelPath;
use hm2bp::rule::output::OutputRule;

/// Weights `k/16` (exact partial sums in `f32`), seeded.
fn dyadic_weights(n_out: usize, n_in: usize, seed: u64) -> Vec<f32> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n_out * n_in)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 33) % 33) as f32 / 16.0 - 1.0
        })
        .collect()
}

struct Run {
    spikes: Vec<f32>,
    grad_w: Vec<f32>,
    grad_x: Vec<f32>,
}

fn run(layer: &SpikingDense, input: &Tensor<3>, labels: &Tensor<1, Int>, coef: &Tensor<2>) -> Run {
    let input = input.clone().require_grad();
    let out = layer.forward(SpikeTrains::from_dense(input.clone()), Some(labels.clone()));
    let loss = (out.counts() * coef.clone()).sum();
    let grads = loss.backward();
    let vec = |t: Tensor<3>| t.into_data().try_to_vec::<f32>().unwrap();
    Run {
        spikes: vec(out.to_dense().inner()),
        grad_w: layer
            .weight
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap(),
        grad_x: vec(input.grad(&grads).unwrap()),
    }
}

fn assert_close(what: &str, a: &[f32], e: &[f32]) {
    assert_eq!(a.len(), e.len(), "{what}: lengths");
    let scale = e.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(e).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * scale,
            "{what}[{i}]: generic {x} vs event-driven {y}"
        );
    }
}

#[test]
fn generic_path_agrees_with_event_driven() {
    let dev = Device::flex().autodiff();
    dev.seed(11);
    let (b, t, n_in) = (3, 120, 30);
    let input = Tensor::<3>::random([b, t, n_in], Distribution::Uniform(0.0, 1.0), &dev)
        .lower_elem(0.15)
        .float();
    let labels = Tensor::<1, Int>::from_ints([2, 0, 5], &dev);
    for (n_out, is_output, threshold) in [(12, false, 1.5), (6, true, 1.0)] {
        let config = SpikingDenseConfig::new(n_in, n_out, LifSpec::paper(threshold))
            .with_output(is_output.then(OutputRule::default));
        let w = TensorData::new(dyadic_weights(n_out, n_in, n_out as u64), [n_out, n_in]);
        let layer = config.init_with(Tensor::from_data(w, &dev));
        let generic_layer = layer.clone().with_kernels(KernelPath::Generic);
        let coef = Tensor::<2>::random([b, n_out], Distribution::Uniform(-1.0, 1.0), &dev);

        let fast = run(&layer, &input, &labels, &coef);
        let generic = run(&generic_layer, &input, &labels, &coef);

        // The case covers firing and silent neurons (the silent-post rules of §3.5).
        let mut counts = vec![0.0f32; b * n_out];
        for (k, s) in fast.spikes.iter().enumerate() {
            counts[(k / (t * n_out)) * n_out + k % n_out] += s;
        }
        assert!(counts.contains(&0.0), "{counts:?}");
        assert!(
            counts.iter().filter(|&&c| c > 0.0).count() > n_out,
            "{counts:?}"
        );
        assert_eq!(generic.spikes, fast.spikes, "spike trains (n_out {n_out})");
        assert_close("weight gradient", &generic.grad_w, &fast.grad_w);
        assert_close("input gradient", &generic.grad_x, &fast.grad_x);
    }
}
