//! Surrogate-gradient BPTT: each surrogate's backward against its analytic derivative, the
//! BPTT gradient of a tiny network against finite differences of its smooth relaxation, and
//! the BPTT forward pass against the HM2-BP forward pass (same spikes for the same weights).
#![allow(
    clippy::disallowed_methods,
    reason = "tests read tensors directly; only the library's reads are counted"
)]

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};

use hm2bp::SpikeTrains;
use hm2bp::bptt::{BpttNet, SpikeFunction, Surrogate, spike};
use hm2bp::model::{LayerDef, NetworkDef, NeuronDef, RuleOptions, SpikingLayer, SpikingNet};
use hm2bp::rule::regularizer::WeightRegularizer;

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// A derivative written out in f64.
type Derivative = Box<dyn Fn(f64) -> f64>;

/// Every surrogate with non-default parameters and its derivative.
fn surrogates() -> Vec<(Surrogate, Derivative)> {
    use std::f64::consts::PI;
    vec![
        (
            Surrogate::Arctan { alpha: 3.0 },
            Box::new(|x: f64| 1.5 / (1.0 + (PI * 3.0 * x / 2.0).powi(2))),
        ),
        (
            Surrogate::FastSigmoid { slope: 5.0 },
            Box::new(|x: f64| 1.0 / (1.0 + 5.0 * x.abs()).powi(2)),
        ),
        (
            Surrogate::Triangle { width: 0.5 },
            Box::new(|x: f64| (1.0 - x.abs() / 0.5).max(0.0) / 0.5),
        ),
        (
            Surrogate::SuperSpike { beta: 4.0 },
            Box::new(|x: f64| 4.0 / (1.0 + 4.0 * x.abs()).powi(2)),
        ),
        (
            Surrogate::Exponential {
                amplitude: 2.0,
                decay: 3.0,
            },
            Box::new(|x: f64| 2.0 * (-3.0 * x.abs()).exp()),
        ),
    ]
}

/// Points away from the kinks of the triangle (0, ±0.5).
const XS: [f32; 10] = [-1.3, -0.7, -0.45, -0.2, -0.03, 0.04, 0.25, 0.4, 0.6, 1.7];

#[test]
fn surrogate_backward_is_the_analytic_derivative() {
    let device = Device::flex().autodiff();
    let weights: Vec<f32> = (0..XS.len()).map(|k| 0.5 + k as f32 * 0.25).collect();
    for (surrogate, derivative) in surrogates() {
        let x = Tensor::<1>::from_floats(XS, &device).require_grad();
        let w = Tensor::<1>::from_floats(weights.as_slice(), &device);
        let s = spike(x.clone(), surrogate);
        assert_eq!(
            values(s.clone()),
            XS.map(|x| f32::from(x > 0.0)).to_vec(),
            "{surrogate:?}: forward is the step"
        );
        let grads = (s * w).sum().backward();
        let g = values(x.grad(&grads).unwrap());
        for ((&x, &w), g) in XS.iter().zip(&weights).zip(g) {
            let want = w as f64 * derivative(x as f64);
            assert!(
                (g as f64 - want).abs() <= 1e-5 * want.abs().max(1.0),
                "{surrogate:?} at {x}: {g} vs {want}"
            );
        }
    }
}

#[test]
fn surrogate_derivative_is_that_of_its_relaxation() {
    let device = Device::flex();
    let h = 1e-3f32;
    for (surrogate, derivative) in surrogates() {
        let at = |dx: f32| {
            let xs = XS.map(|x| x + dx);
            values(surrogate.relaxation(Tensor::<1>::from_floats(xs, &device)))
        };
        let (up, down) = (at(h), at(-h));
        for (k, &x) in XS.iter().enumerate() {
            let fd = (up[k] - down[k]) as f64 / (2.0 * h as f64);
            let want = derivative(x as f64);
            assert!(
                (fd - want).abs() <= 2e-3 * want.abs().max(1.0),
                "{surrogate:?} at {x}: finite difference {fd} vs {want}"
            );
        }
    }
}

fn tiny_def(t_ref: u32) -> NetworkDef {
    NetworkDef {
        name: "bptt-test".into(),
        input: [1, 1, 6],
        layers: vec![
            LayerDef::Dense {
                size: 5,
                threshold: 1.0,
            },
            LayerDef::Dense {
                size: 3,
                threshold: 1.0,
            },
        ],
        neuron: NeuronDef {
            tau_m: 4.0,
            tau_s: 2.0,
            t_ref,
        },
        init_scale: 1.0,
        conv_init_scale: 0.5,
        lateral_strength: 0.5,
    }
}

/// `Σ c · counts` of both layers, a smooth function of the weights for the relaxed network.
fn objective(net: &BpttNet, input: Tensor<3>, coefficients: &[Tensor<2>]) -> Tensor<1> {
    net.forward(input)
        .into_iter()
        .zip(coefficients)
        .map(|(run, c)| (run.counts * c.clone()).sum())
        .reduce(|a, b| a + b)
        .unwrap()
}

#[test]
fn bptt_gradient_matches_finite_differences_of_the_relaxed_network() {
    let device = Device::flex().autodiff();
    device.seed(3);
    let relaxed = SpikeFunction::Relaxed(Surrogate::Arctan { alpha: 1.0 });
    let net = BpttNet::new(&tiny_def(0), relaxed, 0, &device).unwrap();
    let input = Tensor::<3>::random([2, 10, 6], Distribution::Uniform(0.0, 1.0), &device)
        .lower_elem(0.4)
        .float();
    let coefficients = [
        Tensor::<2>::random([2, 5], Distribution::Uniform(-1.0, 1.0), &device),
        Tensor::<2>::random([2, 3], Distribution::Uniform(-1.0, 1.0), &device),
    ];
    let grads = objective(&net, input.clone(), &coefficients).backward();
    let analytic: Vec<Vec<f32>> = net
        .layers
        .iter()
        .map(|l| values(l.weight.grad(&grads).unwrap()))
        .collect();

    let plain = net.valid();
    let input = input.inner();
    let coefficients: Vec<Tensor<2>> = coefficients.iter().map(|c| c.clone().inner()).collect();
    let eval = |k: usize, idx: usize, delta: f32| -> f64 {
        let mut n = plain.clone();
        let w = n.layers[k].weight.val();
        let dims = w.dims();
        let mut data = values(w);
        data[idx] += delta;
        n.layers[k].weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(data, dims),
            &input.device(),
        ));
        objective(&n, input.clone(), &coefficients).into_scalar::<f64>()
    };
    let h = 1e-2f32;
    for (k, grad) in analytic.iter().enumerate() {
        for idx in (0..grad.len()).step_by(4) {
            let fd = (eval(k, idx, h) - eval(k, idx, -h)) / (2.0 * h as f64);
            let g = grad[idx] as f64;
            assert!(
                (fd - g).abs() <= 2e-2 * g.abs().max(0.05),
                "layer {k} weight {idx}: BPTT {g} vs finite difference {fd}"
            );
        }
    }
}

#[test]
fn bptt_forward_spikes_equal_the_hm2bp_forward() {
    let device = Device::flex();
    device.seed(5);
    let mut def = NetworkDef::load("tiny-784-40-10", std::path::Path::new("models")).unwrap();
    def.neuron.t_ref = 2;
    let rule = RuleOptions {
        effect_ratio: true,
        regularizer: WeightRegularizer {
            lambda: 0.0,
            beta: 0.04,
            limit: 8.0,
        },
        label_spike_level: 12,
    };
    let mut hm2bp = SpikingNet::new(&def, &rule, &device).unwrap();
    device.seed(5);
    let mut bptt = BpttNet::new(
        &def,
        SpikeFunction::Surrogate(Surrogate::Arctan { alpha: 2.0 }),
        0,
        &device,
    )
    .unwrap();
    // Both networks get the same weights, on a 1/64 grid: every sum of them is exact, whatever
    // the summation order.
    for (h, b) in hm2bp.layers.iter_mut().zip(&mut bptt.layers) {
        let SpikingLayer::Dense(h) = h else {
            unreachable!()
        };
        let w = (h.weight.val() * 64.0).round() / 64.0;
        h.weight = Param::from_tensor(w.clone());
        b.weight = Param::from_tensor(w);
    }
    let input = Tensor::<3>::random([3, 80, 784], Distribution::Uniform(0.0, 1.0), &device)
        .lower_elem(0.08)
        .float();
    let reference = hm2bp.forward(SpikeTrains::from_dense(input.clone()), None);
    let runs = bptt.forward(input);
    for (k, (want, run)) in reference.into_iter().zip(runs).enumerate() {
        let want = want.to_dense();
        let got = Tensor::stack::<3>(run.spikes, 1);
        let total = values(want.clone().sum()).first().copied().unwrap();
        assert!(
            total > 0.0,
            "layer {k} is silent: the test would prove nothing"
        );
        assert_eq!(values(got), values(want), "layer {k} spike trains differ");
    }
}

#[test]
fn truncated_bptt_cuts_gradients_only() {
    let device = Device::flex().autodiff();
    let surrogate = SpikeFunction::Surrogate(Surrogate::FastSigmoid { slope: 5.0 });
    let input = {
        device.seed(11);
        Tensor::<3>::random([2, 12, 6], Distribution::Uniform(0.0, 1.0), &device)
            .lower_elem(0.5)
            .float()
    };
    let run = |window: usize| {
        device.seed(3);
        let net = BpttNet::new(&tiny_def(2), surrogate, window, &device).unwrap();
        let runs = net.forward(input.clone());
        let counts: Vec<Vec<f32>> = runs.iter().map(|r| values(r.counts.clone())).collect();
        let loss = runs
            .into_iter()
            .map(|r| r.counts.sum())
            .reduce(|a, b| a + b)
            .unwrap();
        let grads = loss.backward();
        (counts, values(net.layers[0].weight.grad(&grads).unwrap()))
    };
    let (full_counts, full_grad) = run(0);
    let (whole_counts, whole_grad) = run(12);
    let (cut_counts, cut_grad) = run(3);
    assert_eq!(full_counts, whole_counts);
    assert_eq!(
        full_counts, cut_counts,
        "truncation does not change the forward pass"
    );
    assert_eq!(full_grad, whole_grad, "a window of T steps is full BPTT");
    assert_ne!(
        full_grad, cut_grad,
        "a window of 3 steps cuts gradient paths"
    );
}
