//! The Burn custom op: forward equals the host kernel, and autodiff delivers exactly the HM2-BP
//! gradient of the host kernel when the loss is a function of output counts.
#![allow(
    clippy::disallowed_methods,
    reason = "tests read tensors directly; only the library's reads are counted"
)]

use burn::prelude::*;
use burn::tensor::Distribution;
use hm2bp::SpikeTrains;
use hm2bp::layers::SpikingDenseConfig;
use hm2bp::neuron::LifSpec;
use hm2bp::rule::output::OutputRule;
use hm2bp::rule::{dense_backward_rasters, dense_forward_batch};
use hm2bp::spikes::SpikeRaster;
use hm2bp::spikes::{BatchShape, rasters_from_dense};

fn device() -> Device {
    Device::flex()
}

fn random_spikes(b: usize, t: usize, n: usize, rate: f64, device: &Device) -> Tensor<3> {
    Tensor::<3>::random([b, t, n], Distribution::Uniform(0.0, 1.0), device)
        .lower_elem(rate)
        .float()
}

#[test]
fn autodiff_gradient_is_hm2bp() {
    let dev = device().autodiff();
    let (b, t, n_in, n_out) = (3, 150, 20, 6);
    dev.seed(5);
    let layer = SpikingDenseConfig::new(n_in, n_out, LifSpec::paper(3.0))
        .with_output(Some(OutputRule::default()))
        .init(&dev);
    let input = random_spikes(b, t, n_in, 0.08, &dev).require_grad();
    let labels = Tensor::<1, Int>::from_ints([1, 4, 0], &dev);
    // The input counts are `input.sum_dim(1)`: ∂E/∂o_pre reaches the dense input repeated
    // over time.
    let out = layer.forward(SpikeTrains::from_dense(input.clone()), Some(labels));
    let counts = out.counts();
    // loss = Σ c_bi · o_bi  ⇒ ∂E/∂o = c
    let coef = Tensor::<2>::random([b, n_out], Distribution::Uniform(-1.0, 1.0), &dev);
    let loss = (counts * coef.clone()).sum();
    let grads = loss.backward();
    let gw = layer
        .weight
        .grad(&grads)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let gx = input
        .grad(&grads)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();

    let x = input.inner().into_data().try_to_vec::<f32>().unwrap();
    let w = layer
        .weight
        .val()
        .inner()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let y = out
        .to_dense()
        .inner()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let shape = BatchShape {
        batch: b,
        steps: t,
        neurons: n_in,
    };
    assert_eq!(dense_forward_batch(&x, shape, &w, n_out, &layer.spec()), y);
    let d = coef.inner().into_data().try_to_vec::<f32>().unwrap();
    let out_shape = BatchShape {
        neurons: n_out,
        ..shape
    };
    let want = dense_backward_rasters(
        &rasters_from_dense(&x, shape),
        &rasters_from_dense(&y, out_shape),
        &w,
        &d,
        Some(&[1, 4, 0]),
        &layer.spec(),
        true,
    );
    for (a, e) in gw.iter().zip(&want.weight) {
        assert!((a - e).abs() <= 1e-4 * e.abs().max(1.0), "{a} vs {e}");
    }
    let d_pre = want.input.unwrap();
    for bb in 0..b {
        for tt in 0..t {
            for j in 0..n_in {
                let a = gx[(bb * t + tt) * n_in + j];
                let e = d_pre[bb * n_in + j];
                assert!((a - e).abs() <= 1e-4 * e.abs().max(1.0));
            }
        }
    }
}

#[test]
fn runs_without_autodiff() {
    let dev = device();
    let layer = SpikingDenseConfig::new(10, 4, LifSpec::paper(2.0)).init(&dev);
    let out = layer.forward(
        SpikeTrains::from_dense(random_spikes(2, 50, 10, 0.2, &dev)),
        None,
    );
    assert_eq!(out.dims(), [2, 50, 4]);
    assert_eq!(out.to_dense().dims(), [2, 50, 4]);
}

/// A conv → pool → dense network built from a model file trains: one HM2-BP step moves the
/// conv kernels and the dense weights.
#[test]
fn conv_pool_network_takes_a_step() {
    use burn::optim::{AdamConfig, GradientsParams};
    use hm2bp::loss::count_loss;
    use hm2bp::model::{NetworkDef, RuleOptions, SpikingLayer, SpikingNet};
    use hm2bp::rule::output::CountTargets;
    use hm2bp::rule::regularizer::WeightRegularizer;

    let dev = device().autodiff();
    dev.seed(3);
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let def = NetworkDef::load("tiny-cnn-4c5-p2-10", &models).unwrap();
    let rule = RuleOptions {
        effect_ratio: true,
        regularizer: WeightRegularizer::OFF,
        label_spike_level: 12,
    };
    let net = SpikingNet::new(&def, &rule, &dev).unwrap();
    let input = random_spikes(2, 60, 784, 0.15, &dev);
    let labels = Tensor::<1, Int>::from_ints([3, 7], &dev);
    let outs = net.forward(SpikeTrains::from_dense(input), Some(labels.clone()));
    assert_eq!(outs[0].dims(), [2, 60, 4 * 24 * 24]);
    assert_eq!(outs[1].dims(), [2, 60, 4 * 12 * 12]);
    let counts = outs[2].counts();
    let targets = CountTargets {
        desired: 12.0,
        undesired: 2.0,
        margin: 1.0,
    };
    let loss = count_loss(counts, labels, None, &targets);
    let grads = GradientsParams::from_grads(loss.backward(), &net);
    let kernels = |n: &SpikingNet| match &n.layers[0] {
        SpikingLayer::Conv(c) => c
            .weight
            .val()
            .inner()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap(),
        _ => unreachable!(),
    };
    let before = kernels(&net);
    let net = AdamConfig::new().init().step(1e-2, net, grads);
    let moved = before
        .iter()
        .zip(kernels(&net))
        .filter(|(a, b)| *a != b)
        .count();
    assert!(moved > 0, "conv kernels did not move");
}

/// Packing dense trains into words with tensor operations and unpacking them agree with the
/// host rasters, for neuron counts around word boundaries (and on autodiff devices).
#[test]
fn words_pack_and_unpack_like_the_host() {
    for dev in [device(), device().autodiff()] {
        dev.seed(11);
        for n in [1, 31, 32, 33, 64, 100] {
            let dense = random_spikes(3, 17, n, 0.3, &dev);
            let trains = SpikeTrains::from_dense(dense.clone());
            assert_eq!(trains.dims(), [3, 17, n]);
            let values = dense.clone().into_data().try_to_vec::<f32>().unwrap();
            let want: Vec<SpikeRaster> = values
                .chunks(17 * n)
                .map(|s| SpikeRaster::from_dense(s, 17, n))
                .collect();
            assert_eq!(trains.to_rasters(), want, "n = {n}");
            let back = trains.to_dense().into_data().try_to_vec::<f32>().unwrap();
            assert_eq!(back, values, "n = {n}");
            let host = SpikeTrains::from_rasters(&want, &dev);
            let words =
                |t: &SpikeTrains| t.words().into_data().convert::<i64>().try_to_vec::<i64>();
            let to_u32 = |v: Vec<i64>| v.into_iter().map(|w| w as u32).collect::<Vec<_>>();
            assert_eq!(
                to_u32(words(&host).unwrap()),
                to_u32(words(&trains).unwrap())
            );
            let counts = dense
                .sum_dim(1)
                .reshape([3, n])
                .into_data()
                .try_to_vec::<f32>();
            assert_eq!(host.counts().into_data().try_to_vec::<f32>(), counts);
        }
    }
}

/// An output layer's rule without lateral inhibition.
const NO_LATERAL: OutputRule = OutputRule {
    lateral_strength: 0.0,
    label_spike_level: 35,
};

fn output_layer_backward(labels: Option<Tensor<1, Int>>) {
    let dev = device().autodiff();
    let layer = SpikingDenseConfig::new(8, 3, LifSpec::paper(2.0))
        .with_output(Some(NO_LATERAL))
        .init(&dev);
    let input = random_spikes(2, 40, 8, 0.2, &dev);
    let counts = layer
        .forward(SpikeTrains::from_dense(input), labels)
        .counts();
    let _ = counts.sum().backward();
}

/// Inference needs no labels; training an output layer without them is refused, never a
/// silent "class 0".
#[test]
#[should_panic(expected = "output layer trained without labels")]
fn an_output_layer_trained_without_labels_panics() {
    let dev = device();
    let layer = SpikingDenseConfig::new(8, 3, LifSpec::paper(2.0))
        .with_output(Some(NO_LATERAL))
        .init(&dev);
    let out = layer.forward(
        SpikeTrains::from_dense(random_spikes(2, 40, 8, 0.2, &dev)),
        None,
    );
    assert_eq!(out.dims(), [2, 40, 3]);
    output_layer_backward(None);
}

#[test]
#[should_panic(expected = "label 3 is not a class of this output layer (0..3)")]
fn a_label_outside_the_output_layer_panics() {
    output_layer_backward(Some(Tensor::<1, Int>::from_ints(
        [0, 3],
        &device().autodiff(),
    )));
}

/// The regulariser op: its value is the penalty of every row, and autodiff delivers `g · R`
/// (the reference formula `gradient_row`, in `f64`, rounded once), also through a scale on
/// the loss.
#[test]
fn weight_penalty_value_and_gradient() {
    use hm2bp::rule::regularizer::WeightRegularizer;
    use hm2bp::spike_trains::weight_penalty;
    let dev = device().autodiff();
    dev.seed(3);
    let (rows, cols) = (7, 13);
    let r = WeightRegularizer {
        lambda: 0.5,
        beta: 3.0,
        limit: 2.0,
    };
    let w =
        Tensor::<2>::random([rows, cols], Distribution::Uniform(-2.5, 2.5), &dev).require_grad();
    let host = w.clone().inner().into_data().try_to_vec::<f32>().unwrap();
    let penalty = weight_penalty(w.clone(), &r);
    let value = penalty.clone().inner().into_scalar::<f32>();
    let want: f64 = host.chunks(cols).map(|row| r.penalty_row(row)).sum();
    assert!(
        (f64::from(value) - want).abs() <= 1e-6 * want.abs(),
        "{value} vs {want}"
    );
    let g = 0.75;
    let grads = (penalty * g).sum().backward();
    let got = w
        .grad(&grads)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let want: Vec<f32> = host
        .chunks(cols)
        .flat_map(|row| {
            r.gradient_row(row)
                .into_iter()
                .map(|x| (f64::from(g as f32) * x) as f32)
        })
        .collect();
    assert_eq!(got, want);
    // λ = 0: no penalty (a constant, outside the graph).
    let off = weight_penalty(w.clone(), &WeightRegularizer::OFF);
    assert_eq!(off.inner().into_scalar::<f32>(), 0.0);
    // Without autodiff the value is the same.
    let plain = weight_penalty(w.inner(), &r).into_scalar::<f32>();
    assert_eq!(plain, value);
}
