//! HM2-BP as a Burn backend extension: the spiking dense layer's forward simulation is one
//! custom op whose gradient, registered with Burn's autodiff (see [`autodiff`]), is the HM2-BP
//! rule instead of the (useless) derivative of a step function.
//!
//! ## How the count gradient travels through spike-train tensors
//!
//! Layers exchange dense spike trains `[batch, T, neurons]` of 0/1. A rate-coded loss reads
//! counts `o = spikes.sum_dim(1)`, so autodiff hands each layer a gradient that is `∂E/∂o`
//! repeated at every time step. The custom backward reads `d_post = mean_t(grad)` (exactly
//! `∂E/∂o` for such a gradient), applies HM2-BP, and returns `∂E/∂o_pre` (S10) repeated over the
//! `T` steps of its input, which is again the form the layer below expects.
//!
//! ## Kernels
//!
//! The op bodies run the event-driven, multi-threaded kernels of [`crate::hm2bp`] on the
//! host: the tensors are read back, processed per sample on all cores, and written to the
//! tensor's device. This is the fast path on the CPU backends (`flex`, `ndarray`) and a correct
//! (round-tripping) path on GPU backends.

pub mod autodiff;

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, Dispatch, TensorMetadata, backend_extension};
use burn::tensor::{Int, Shape, Tensor, TensorData, read_sync};

use crate::hm2bp::{self, BatchShape, DenseSpec};

/// Backends that can run spiking dense layers with HM2-BP gradients.
#[backend_extension(
    NdArray: cfg(feature = "ndarray"),
    Flex: cfg(feature = "flex"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    Autodiff
)]
pub trait Hm2bpBackend: Backend {
    /// Simulates a batch of spike trains `input [B, T, n_in]` through LIF neurons with weights
    /// `weight [n_out, n_in]`; returns the output spike trains `[B, T, n_out]`. `labels [B]` (class
    /// per sample) are kept for the output layer's backward rule (ignored without autodiff and by
    /// hidden layers).
    fn spiking_dense(
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        labels: IntTensor<Self>,
        spec: DenseSpec,
    ) -> FloatTensor<Self> {
        let _ = labels;
        let [b, t, n_in] = dims3(&input);
        let n_out = input_dims_out(&weight);
        let device = input.device();
        let x = host_f32(Self::float_into_data(input));
        let w = host_f32(Self::float_into_data(weight));
        let shape = BatchShape {
            batch: b,
            steps: t,
            neurons: n_in,
        };
        let out = hm2bp::dense_forward_batch(&x, shape, &w, n_out, &spec);
        Self::float_from_data(TensorData::new(out, [b, t, n_out]), &device)
    }

    /// The HM2-BP backward rule of a batch: from the layer's input, output, weight and
    /// `d_post [B, n_out]` (`∂E/∂o`), returns the weight gradient `[n_out, n_in]` (summed over
    /// the batch) and, if `need_d_pre`, `∂E/∂o_pre [B, n_in]`.
    fn spiking_dense_backward(
        input: FloatTensor<Self>,
        output: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        d_post: FloatTensor<Self>,
        labels: IntTensor<Self>,
        spec: DenseSpec,
        need_d_pre: bool,
    ) -> (FloatTensor<Self>, Option<FloatTensor<Self>>) {
        let [b, t, n_in] = dims3(&input);
        let n_out = input_dims_out(&weight);
        let device = input.device();
        let labels = spec.output.map(|_| {
            read_sync(Self::int_into_data(labels))
                .map(|d| {
                    d.iter::<i64>()
                        .map(|v| v.max(0) as usize)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        });
        let x = host_f32(Self::float_into_data(input));
        let y = host_f32(Self::float_into_data(output));
        let w = host_f32(Self::float_into_data(weight));
        let d = host_f32(Self::float_into_data(d_post));
        let shape = BatchShape {
            batch: b,
            steps: t,
            neurons: n_in,
        };
        let g = hm2bp::dense_backward_batch(
            &x,
            &y,
            shape,
            &w,
            n_out,
            &d,
            labels.as_deref(),
            &spec,
            need_d_pre,
        );
        let gw = Self::float_from_data(TensorData::new(g.weight, [n_out, n_in]), &device);
        let gx = g
            .input
            .map(|v| Self::float_from_data(TensorData::new(v, [b, n_in]), &device));
        (gw, gx)
    }
}

#[cfg(feature = "ndarray")]
impl Hm2bpBackend for burn::backend::NdArray {}
#[cfg(feature = "flex")]
impl Hm2bpBackend for burn::backend::Flex {}
#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl Hm2bpBackend for burn::backend::Cube {}

fn dims3<T: TensorMetadata>(t: &T) -> [usize; 3] {
    let s = t.shape();
    [s[0], s[1], s[2]]
}

fn input_dims_out<T: TensorMetadata>(w: &T) -> usize {
    w.shape()[0]
}

/// Reads a tensor's data to host `f32`, whatever its float dtype.
fn host_f32(f: impl Future<Output = Result<TensorData, burn::tensor::ExecutionError>>) -> Vec<f32> {
    match read_sync(f) {
        Ok(data) => match data.try_to_vec::<f32>() {
            Ok(v) => v,
            Err(_) => data.iter::<f32>().collect(),
        },
        // A device failure here cannot be recovered inside a backward pass.
        Err(e) => panic!("hm2bp: reading a tensor from its device failed: {e:?}"),
    }
}

/// Runs a spiking dense layer: `input [B, T, n_in]` spike trains, `weight [n_out, n_in]`,
/// optional `labels [B]` (output layer) → `[B, T, n_out]` spike trains, differentiable with
/// the HM2-BP rule on autodiff devices.
pub fn spiking_dense(
    input: Tensor<3>,
    weight: Tensor<2>,
    labels: Option<Tensor<1, Int>>,
    spec: DenseSpec,
) -> Tensor<3> {
    let labels = labels.unwrap_or_else(|| Tensor::zeros([input.dims()[0]], &input.device()));
    Tensor::from_dispatch(Dispatch::spiking_dense(
        input.into_dispatch(),
        weight.into_dispatch(),
        labels.into_dispatch(),
        spec,
    ))
}

/// Shape helper used by the autodiff backward.
pub(crate) fn shape3(b: usize, t: usize, n: usize) -> Shape {
    Shape::new([b, t, n])
}
