//! The Burn custom op: forward equals the host kernel, and autodiff delivers exactly the HM2-BP
//! gradient of the host kernel when the loss is a function of output counts.

use burn::prelude::*;
use burn::tensor::Distribution;
use hm2bp::hm2bp::{BatchShape, dense_backward_batch, dense_forward_batch};
use hm2bp::layers::SpikingDenseConfig;

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
    let layer = SpikingDenseConfig::new(n_in, n_out, 3.0)
        .with_is_output(true)
        .with_lateral_strength(1.0)
        .init(&dev);
    let input = random_spikes(b, t, n_in, 0.08, &dev).require_grad();
    let labels = Tensor::<1, Int>::from_ints([1, 4, 0], &dev);
    let out = layer.forward(input.clone(), Some(labels));
    let counts = out.clone().sum_dim(1).reshape([b, n_out]);
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
    let y = out.inner().into_data().try_to_vec::<f32>().unwrap();
    let shape = BatchShape {
        batch: b,
        steps: t,
        neurons: n_in,
    };
    assert_eq!(dense_forward_batch(&x, shape, &w, n_out, &layer.spec()), y);
    let d = coef.inner().into_data().try_to_vec::<f32>().unwrap();
    let want = dense_backward_batch(
        &x,
        &y,
        shape,
        &w,
        n_out,
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
    let layer = SpikingDenseConfig::new(10, 4, 2.0).init(&dev);
    let out = layer.forward(random_spikes(2, 50, 10, 0.2, &dev), None);
    assert_eq!(out.dims(), [2, 50, 4]);
}
