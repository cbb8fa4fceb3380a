//! Rate-coded loss on output spike counts (spec §2.1, §3.1).

use burn::backend::Dispatch;
use burn::prelude::*;

use crate::ops::{Hm2bpBackend, LossReduce};

use crate::rule::output::CountTargets;

/// `1[|o − y| > margin] · (o − y)²` per sample and output, `[B, C]` (the mask is a constant
/// for autodiff).
fn masked_squared_error(counts: Tensor<2>, labels: Tensor<1, Int>, t: &CountTargets) -> Tensor<2> {
    let classes = counts.dims()[1];
    let target = labels.one_hot::<2>(classes).float() * (t.desired - t.undesired) + t.undesired;
    let diff = counts - target;
    let mask = diff.clone().abs().greater_elem(t.margin).float().detach();
    diff.powi_scalar(2) * mask
}

/// `E = mean_b β_b · ½ Σ_i 1[|o_i − y_i| > margin] (o_i − y_i)²`, whose gradient with respect
/// to the counts is the authors' output error `d_i = (o_i − y_i) · 1[|o_i − y_i| > margin] · β`
/// (S6), divided by the batch size (batch-mean gradient).
///
/// `counts [B, C]`, `labels [B]`, `sample_weight [B]` (boosting weights; `None` = all ones) →
/// scalar `[1]`.
pub fn count_loss(
    counts: Tensor<2>,
    labels: Tensor<1, Int>,
    sample_weight: Option<Tensor<1>>,
    targets: &CountTargets,
) -> Tensor<1> {
    if !crate::backend::on_host(&counts.device()) {
        return device_count_loss(counts, labels, sample_weight, targets, LossReduce::Mean);
    }
    count_loss_per_sample(counts, labels, sample_weight, targets).mean()
}

/// [`count_loss`] of every sample, `[B]` (a data-parallel step sums these over its shard).
pub fn count_loss_per_sample(
    counts: Tensor<2>,
    labels: Tensor<1, Int>,
    sample_weight: Option<Tensor<1>>,
    targets: &CountTargets,
) -> Tensor<1> {
    let batch = counts.dims()[0];
    if !crate::backend::on_host(&counts.device()) {
        return device_count_loss(
            counts,
            labels,
            sample_weight,
            targets,
            LossReduce::PerSample,
        );
    }
    let mut per_sample = masked_squared_error(counts, labels, targets)
        .sum_dim(1)
        .reshape([batch])
        * 0.5;
    if let Some(w) = sample_weight {
        per_sample = per_sample * w;
    }
    per_sample
}

/// [`count_loss_per_sample`] (or, `reduce`, [`count_loss`]) as one op
/// ([`crate::ops::count_loss`]): one kernel and one for its gradient on devices (the CPU
/// backends keep the tensor formula, whose results are recorded).
pub fn device_count_loss(
    counts: Tensor<2>,
    labels: Tensor<1, Int>,
    sample_weight: Option<Tensor<1>>,
    targets: &CountTargets,
    reduce: LossReduce,
) -> Tensor<1> {
    // Weights of 1 uploaded with the batch's size (no fill launch on a device).
    let b = counts.dims()[0];
    let weight = sample_weight.unwrap_or_else(|| {
        Tensor::from_data(TensorData::new(vec![1.0f32; b], [b]), &counts.device())
    });
    Tensor::from_dispatch(Dispatch::count_loss(
        counts.into_dispatch(),
        weight.into_dispatch(),
        labels.into_dispatch(),
        *targets,
        reduce,
    ))
}

/// Cross-entropy of `softmax(logit_scale · counts)` against the labels, averaged over the
/// batch (weighted per sample by `sample_weight [B]` when given): `counts [B, C]` → `[1]`.
pub fn count_cross_entropy(
    counts: Tensor<2>,
    labels: Tensor<1, Int>,
    sample_weight: Option<Tensor<1>>,
    logit_scale: f32,
) -> Tensor<1> {
    count_cross_entropy_per_sample(counts, labels, sample_weight, logit_scale).mean()
}

/// [`count_cross_entropy`] of every sample, `[B]`.
pub fn count_cross_entropy_per_sample(
    counts: Tensor<2>,
    labels: Tensor<1, Int>,
    sample_weight: Option<Tensor<1>>,
    logit_scale: f32,
) -> Tensor<1> {
    let [batch, classes] = counts.dims();
    let log_p = burn::tensor::activation::log_softmax(counts * logit_scale, 1);
    let mut per_sample = -(log_p * labels.one_hot::<2>(classes).float())
        .sum_dim(1)
        .reshape([batch]);
    if let Some(w) = sample_weight {
        per_sample = per_sample * w;
    }
    per_sample
}

/// The cost the authors log (spec S12 note): `Σ_i 1[|o'_i − y_i| > margin] (o'_i − y_i)²` per
/// sample, `[B]`, on counts `o'` that include the `inserted` spikes a silent label neuron
/// receives (see [`crate::rule::output::label_spike_steps`]). It is not the loss: no ½, no
/// boosting weight, and the inserted spikes count.
pub fn logged_cost(
    counts: Tensor<2>,
    labels: Tensor<1, Int>,
    targets: &CountTargets,
    inserted: f32,
) -> Tensor<1> {
    let [batch, classes] = counts.dims();
    let label = labels.clone().one_hot::<2>(classes).float();
    let silent_label = counts.clone().equal_elem(0.0).float() * label;
    let counts = counts + silent_label * inserted;
    masked_squared_error(counts, labels, targets)
        .sum_dim(1)
        .reshape([batch])
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests read tensors directly")]
mod tests {
    use super::*;

    /// Losses and count gradients on a CPU autodiff device, of the op (`op`) or the tensor
    /// formula, per sample (upstream weights 1, 2, 3) or as the mean (`mean`; upstream
    /// `scale`).
    fn loss_and_gradients(op: bool, mean: bool, scale: f32) -> (Vec<f32>, Vec<f32>) {
        let device = Device::flex().autodiff();
        let t = CountTargets::default();
        let counts = [[12.0f32, 0.0, 33.0], [20.0, 8.0, 41.0], [0.0, 36.0, 2.0]];
        let l = Tensor::<1, Int>::from_ints([1, 0, 1], &device);
        let w = Some(Tensor::<1>::from_floats([1.0, 0.5, 2.0], &device));
        let c = Tensor::<2>::from_floats(counts, &device).require_grad();
        let reduce = if mean {
            LossReduce::Mean
        } else {
            LossReduce::PerSample
        };
        let loss = match (op, mean) {
            (true, _) => device_count_loss(c.clone(), l, w, &t, reduce),
            (false, false) => count_loss_per_sample(c.clone(), l, w, &t),
            (false, true) => count_loss_per_sample(c.clone(), l, w, &t).mean(),
        };
        let upstream = match mean {
            true => loss.clone() * scale,
            false => (loss.clone() * Tensor::from_floats([1.0, 2.0, 3.0], &device)).sum(),
        };
        let g = c.grad(&upstream.backward());
        let v = |d: TensorData| d.convert::<f32>().try_to_vec::<f32>().unwrap();
        (v(loss.into_data()), v(g.unwrap().into_data()))
    }

    /// The op's host form (the reference of its device kernel), through autodiff on a CPU
    /// device, gives the tensor formula's losses and count gradients.
    #[test]
    fn the_count_loss_op_is_the_tensor_formula() {
        assert_eq!(
            loss_and_gradients(true, false, 1.0),
            loss_and_gradients(false, false, 1.0)
        );
    }

    /// The op's mean (what a device's training step takes) gives the loss and count gradients
    /// of the per-sample formula's mean: bit for bit for the upstream gradient 1 of a training
    /// step (batch of 3: `1/3` is inexact); for another upstream gradient (0.7) the op's `1/B`,
    /// already in its gradient, makes the products differ by at most one `f32` rounding.
    #[test]
    fn the_count_loss_ops_mean_is_the_formulas_mean() {
        assert_eq!(
            loss_and_gradients(true, true, 1.0),
            loss_and_gradients(false, true, 1.0)
        );
        let (op, formula) = (
            loss_and_gradients(true, true, 0.7),
            loss_and_gradients(false, true, 0.7),
        );
        assert_eq!(op.0, formula.0);
        for (a, b) in op.1.iter().zip(&formula.1) {
            assert!((a - b).abs() <= f32::EPSILON * b.abs(), "{a} vs {b}");
        }
    }

    #[test]
    fn logged_cost_counts_inserted_label_spikes() {
        let device = Device::flex();
        let t = CountTargets::default();
        // Sample 0: label 1 silent (→ 36 inserted, within the margin of 35), class 0 at 12
        // (error 7 > 5). Sample 1: label 0 at 20 (error 15), class 1 at 8 (error 3 ≤ 5).
        let counts = Tensor::<2>::from_floats([[12.0, 0.0], [20.0, 8.0]], &device);
        let labels = Tensor::<1, Int>::from_ints([1, 0], &device);
        let cost = logged_cost(counts.clone(), labels.clone(), &t, 36.0);
        assert_eq!(
            cost.into_data().try_to_vec::<f32>().unwrap(),
            vec![49.0, 225.0]
        );
        let no_insertion = logged_cost(counts, labels, &t, 0.0);
        assert_eq!(
            no_insertion.into_data().try_to_vec::<f32>().unwrap(),
            vec![49.0 + 35.0 * 35.0, 225.0]
        );
    }
}
