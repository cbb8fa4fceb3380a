//! One Adam update of a parameter as an op, so that device backends run it as one fused kernel
//! instead of a dozen whole-tensor operations (the CPU backends run the host's fused loop in
//! [`crate::train::adam`] and never call it):
//!
//! ```text
//! m ← β1 m + (1 − β1) g;   v ← β2 v + (1 − β2) g²;   w ← w − lr · (m / (1 − β1ᵗ)) / (√(v / (1 − β2ᵗ)) + ε)
//! ```

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::Scalar;

/// One update's settings: `β1`, `β2`, `ε`, the bias corrections `1 − β1ᵗ`, `1 − β2ᵗ` of step
/// `t`, and the learning rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamUpdate {
    /// β1.
    pub beta_1: f32,
    /// β2.
    pub beta_2: f32,
    /// ε.
    pub epsilon: f32,
    /// `1 − β1ᵗ`.
    pub bias_1: f32,
    /// `1 − β2ᵗ`.
    pub bias_2: f32,
    /// The learning rate.
    pub lr: f32,
}

/// The update with the backend's tensor operations (the reference the fused kernels are tested
/// against): new (weight, m, v) from `weight`, `grad` and the moments `m`, `v` (same shape).
pub fn adam_update_generic<B: Backend>(
    [weight, grad, m, v]: [FloatTensor<B>; 4],
    s: AdamUpdate,
) -> [FloatTensor<B>; 3] {
    let f = |x: f32| Scalar::Float(f64::from(x));
    let m = B::float_add(
        B::float_mul_scalar(m, f(s.beta_1)),
        B::float_mul_scalar(grad.clone(), f(1.0 - s.beta_1)),
    );
    let g2 = B::float_mul(grad.clone(), grad);
    let v = B::float_add(
        B::float_mul_scalar(v, f(s.beta_2)),
        B::float_mul_scalar(g2, f(1.0 - s.beta_2)),
    );
    let m_hat = B::float_div_scalar(m.clone(), f(s.bias_1));
    let v_hat = B::float_sqrt(B::float_div_scalar(v.clone(), f(s.bias_2)));
    let step = B::float_div(m_hat, B::float_add_scalar(v_hat, f(s.epsilon)));
    let weight = B::float_sub(weight, B::float_mul_scalar(step, f(s.lr)));
    debug_assert_eq!(weight.shape(), m.shape());
    [weight, m, v]
}
