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
//! ## Kernels: two paths
//!
//! - **Event-driven** (the CPU backends `flex` and `ndarray`, by default): the op bodies run
//!   the event-driven, multi-threaded kernels of [`crate::hm2bp`] on the host, per sample on
//!   all cores; on autodiff devices the forward keeps the per-sample spike rasters (compact
//!   event lists) for the backward, so dense spike tensors are read once per layer.
//! - **Generic** ([`generic`], every other backend, or any backend after
//!   [`set_kernel_path`]`(KernelPath::Generic)`): dense layers built from the backend's own
//!   tensor operations (GEMMs, element-wise steps), so they run on the device. Convolution and
//!   pooling layers always use the host kernels.

// burn-ndarray is deprecated in Burn 0.22 but remains a supported backend of this crate.
#![cfg_attr(feature = "ndarray", allow(deprecated))]

pub mod autodiff;
pub mod generic;

use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, Dispatch, TensorMetadata, backend_extension};
use burn::tensor::{Int, Shape, Tensor, TensorData, read_sync};

use crate::hm2bp::sparse::LocalSpec;
use crate::hm2bp::{self, BatchShape, DenseSpec, LayerSpec};
use crate::spikes::SpikeRaster;

/// Which implementation runs the spiking dense layers (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum KernelPath {
    /// Event-driven host kernels where the backend has them (CPU backends).
    #[default]
    EventDriven,
    /// Tensor operations of the backend, on its device.
    Generic,
}

static GENERIC_PATH: AtomicBool = AtomicBool::new(false);

/// Chooses the implementation of the spiking dense layers for the whole process (default:
/// [`KernelPath::EventDriven`]; backends without host kernels always take the generic path).
pub fn set_kernel_path(path: KernelPath) {
    GENERIC_PATH.store(path == KernelPath::Generic, Ordering::Relaxed);
}

/// The implementation chosen with [`set_kernel_path`].
pub fn kernel_path() -> KernelPath {
    if GENERIC_PATH.load(Ordering::Relaxed) {
        KernelPath::Generic
    } else {
        KernelPath::EventDriven
    }
}

/// Whether backend `B` runs the layer of `spec` with the event-driven host kernels.
fn event_driven<B: Hm2bpBackend>(spec: &LayerSpec) -> bool {
    matches!(spec, LayerSpec::Local(_))
        || (B::EVENT_DRIVEN && kernel_path() == KernelPath::EventDriven)
}

/// Backends that can run spiking layers with HM2-BP gradients.
#[backend_extension(
    NdArray: cfg(feature = "ndarray"),
    Flex: cfg(feature = "flex"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    Autodiff
)]
pub trait Hm2bpBackend: Backend {
    /// Whether the backend has the event-driven host kernels (its tensors live in host memory).
    const EVENT_DRIVEN: bool = false;

    /// Simulates a batch of spike trains `input [B, T, n_in]` through a layer of LIF neurons
    /// (`weight [n_out, n_in]` for a dense layer, `[n_weights]` shared weights for conv /
    /// pooling); returns the output spike trains `[B, T, n_out]`. `labels [B]` (class per
    /// sample) are kept for the output layer's backward rule (ignored without autodiff and by
    /// other layers).
    fn spiking_layer(
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        labels: IntTensor<Self>,
        spec: LayerSpec,
    ) -> FloatTensor<Self> {
        let _ = labels;
        match spec {
            LayerSpec::Dense(d) if !event_driven::<Self>(&spec) => {
                generic::dense_forward::<Self>(input, weight, &d)
            }
            _ => host_forward::<Self>(input, weight, spec).0,
        }
    }

    /// The HM2-BP backward rule of a batch: from the layer's input, output, weight and
    /// `d_post [B, n_out]` (`∂E/∂o`), returns the weight gradient (shaped as `weight`, summed
    /// over the batch) and, if `need_d_pre`, `∂E/∂o_pre [B, n_in]`.
    fn spiking_layer_backward(
        input: FloatTensor<Self>,
        output: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        d_post: FloatTensor<Self>,
        labels: IntTensor<Self>,
        spec: LayerSpec,
        need_d_pre: bool,
    ) -> (Option<FloatTensor<Self>>, Option<FloatTensor<Self>>) {
        match spec {
            LayerSpec::Dense(d) if !event_driven::<Self>(&spec) => {
                let labels = spec.needs_labels().then(|| host_labels::<Self>(labels));
                generic::dense_backward::<Self>(
                    input,
                    host_rasters::<Self>(output),
                    weight,
                    d_post,
                    labels.as_deref(),
                    &d,
                    true,
                    need_d_pre,
                )
            }
            _ => {
                let rasters = ForwardRasters {
                    input: host_rasters::<Self>(input),
                    output: host_rasters::<Self>(output),
                };
                host_backward::<Self>(&rasters, weight, d_post, labels, spec, true, need_d_pre)
            }
        }
    }
}

/// The spike rasters of a layer's forward pass, per sample, kept for its backward pass (so
/// that the dense spike tensors are read only once).
#[derive(Debug)]
pub(crate) struct ForwardRasters {
    input: Vec<SpikeRaster>,
    output: Vec<SpikeRaster>,
}

impl ForwardRasters {
    /// Samples in the batch.
    pub(crate) fn batch(&self) -> usize {
        self.input.len()
    }

    /// Input neurons of the layer.
    pub(crate) fn input_neurons(&self) -> usize {
        self.input.first().map_or(0, SpikeRaster::neurons)
    }
}

/// Reads a dense spike tensor `[B, T, N]` into per-sample rasters.
fn host_rasters<B: Backend>(spikes: FloatTensor<B>) -> Vec<SpikeRaster> {
    let [b, t, n] = dims3(&spikes);
    let data = host_f32(B::float_into_data(spikes));
    let shape = BatchShape {
        batch: b,
        steps: t,
        neurons: n,
    };
    hm2bp::rasters_from_dense(f32s(&data), shape)
}

/// The forward pass on the host: output spike tensor and the rasters for the backward.
pub(crate) fn host_forward<B: Backend>(
    input: FloatTensor<B>,
    weight: FloatTensor<B>,
    spec: LayerSpec,
) -> (FloatTensor<B>, ForwardRasters) {
    let [b, t, _] = dims3(&input);
    let n_out = spec.n_out(&weight.shape());
    let device = input.device();
    let inputs = host_rasters::<B>(input);
    let w = host_f32(B::float_into_data(weight));
    let outputs = spec.forward_rasters(&inputs, f32s(&w), n_out);
    let dense = hm2bp::rasters_to_dense(&outputs);
    let out = B::float_from_data(TensorData::new(dense, [b, t, n_out]), &device);
    (
        out,
        ForwardRasters {
            input: inputs,
            output: outputs,
        },
    )
}

/// The HM2-BP backward on the host from the forward's rasters: the weight gradient (shaped
/// as `weight`) when `need_grad`, `∂E/∂o_pre [B, n_in]` when `need_d_pre`.
pub(crate) fn host_backward<B: Backend>(
    rasters: &ForwardRasters,
    weight: FloatTensor<B>,
    d_post: FloatTensor<B>,
    labels: IntTensor<B>,
    spec: LayerSpec,
    need_grad: bool,
    need_d_pre: bool,
) -> (Option<FloatTensor<B>>, Option<FloatTensor<B>>) {
    let device = weight.device();
    let w_shape = weight.shape();
    let b = rasters.batch();
    let n_in = rasters.input_neurons();
    let labels = spec.needs_labels().then(|| host_labels::<B>(labels));
    let w = host_f32(B::float_into_data(weight));
    let d = host_f32(B::float_into_data(d_post));
    let (gw, gx) = spec.backward_rasters(
        &rasters.input,
        &rasters.output,
        f32s(&w),
        f32s(&d),
        labels.as_deref(),
        need_grad,
        need_d_pre,
    );
    let gw = gw.map(|v| B::float_from_data(TensorData::new(v, w_shape), &device));
    let gx = gx.map(|v| B::float_from_data(TensorData::new(v, [b, n_in]), &device));
    (gw, gx)
}

/// Class labels `[B]` on the host (negative values read as 0).
fn host_labels<B: Backend>(labels: IntTensor<B>) -> Vec<usize> {
    read_sync(B::int_into_data(labels))
        .map(|d| d.iter::<i64>().map(|v| v.max(0) as usize).collect())
        .unwrap_or_default()
}

#[cfg(feature = "ndarray")]
impl Hm2bpBackend for burn::backend::NdArray {
    const EVENT_DRIVEN: bool = true;
}
#[cfg(feature = "flex")]
impl Hm2bpBackend for burn::backend::Flex {
    const EVENT_DRIVEN: bool = true;
}
#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl Hm2bpBackend for burn::backend::Cube {}

fn dims3<T: TensorMetadata>(t: &T) -> [usize; 3] {
    let s = t.shape();
    [s[0], s[1], s[2]]
}

/// Reads a tensor's data to the host as `f32` (converted if the tensor has another float
/// dtype), without further copies.
fn host_f32(
    f: impl Future<Output = Result<TensorData, burn::tensor::ExecutionError>>,
) -> TensorData {
    match read_sync(f) {
        Ok(data) if data.dtype() == burn::tensor::DType::F32 => data,
        Ok(data) => data.convert::<f32>(),
        // A device failure here cannot be recovered inside a training step.
        Err(e) => panic!("hm2bp: reading a tensor from its device failed: {e:?}"),
    }
}

/// The `f32` values of data produced by [`host_f32`].
fn f32s(data: &TensorData) -> &[f32] {
    data.as_slice::<f32>()
        .expect("host_f32 always yields f32 data")
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
    spiking_layer(input, weight, labels, LayerSpec::Dense(spec))
}

/// Runs a convolution or pooling layer: `input [B, T, n_in]` spike trains (maps flattened
/// channel-major), shared `weight [n_weights]` → `[B, T, n_out]`, differentiable with HM2-BP.
pub fn spiking_local(input: Tensor<3>, weight: Tensor<1>, spec: LocalSpec) -> Tensor<3> {
    spiking_layer(input, weight, None, LayerSpec::Local(spec))
}

fn spiking_layer<const D: usize>(
    input: Tensor<3>,
    weight: Tensor<D>,
    labels: Option<Tensor<1, Int>>,
    spec: LayerSpec,
) -> Tensor<3> {
    let labels = labels.unwrap_or_else(|| Tensor::zeros([input.dims()[0]], &input.device()));
    Tensor::from_dispatch(Dispatch::spiking_layer(
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
