//! A layer's activity statistics (what the dashboard's activity metrics show) as one op for
//! device backends: from spike counts `[B, n]`, `[mean count, fraction of zero cells, Σ_b
//! counts of each neuron…]` `[2 + n]`, in one kernel there instead of five tensor operations
//! per layer and step. The CPU backends keep the tensor formula of
//! [`crate::train::metrics::LayerActivity::of_counts`]; the host form here is the reference
//! the kernel is tested against.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::TensorData;

use super::host::{f32s, host_f32};

/// The statistics of `counts [B, n]`, on the host.
pub fn host_activity<B: Backend>(counts: FloatTensor<B>) -> FloatTensor<B> {
    let device = counts.device();
    let [b, n] = [counts.shape()[0], counts.shape()[1]];
    let data = host_f32::<B>("spike counts", counts);
    let values = f32s(&data);
    let mut out = vec![0.0f32; 2 + n];
    for row in values.chunks(n.max(1)) {
        for (j, &c) in row.iter().enumerate() {
            out[2 + j] += c;
        }
    }
    let cells = (b * n).max(1) as f32;
    out[0] = out[2..].iter().sum::<f32>() / cells;
    out[1] = values.iter().filter(|&&c| c == 0.0).count() as f32 / cells;
    B::float_from_data(TensorData::new(out, [2 + n]), &device)
}
