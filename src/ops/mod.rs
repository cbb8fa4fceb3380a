//! HM2-BP as a Burn backend extension: a spiking layer's forward simulation is one custom op
//! whose gradient, registered with Burn's autodiff (see [`autodiff`]), is the HM2-BP rule
//! instead of the (useless) derivative of a step function.
//!
//! ## What the op takes and returns
//!
//! Layers exchange [`SpikeTrains`]: spike counts `[B, N]` (the tensor autodiff tracks) and the
//! trains bit-packed as int words `[B, T, ⌈N/32⌉]`. The op maps the input's (counts, words) to
//! the output's; its backward receives `∂E/∂o` of its output counts directly (a loss on counts
//! needs nothing else), applies HM2-BP (S-PSP `e`, effect ratio `ρ`, side effect `s`, lateral
//! factor `γ`, label-spike insertion) and hands `∂E/∂o_pre` to the input counts.
//!
//! ## Kernels: two paths
//!
//! - **Event-driven** (by default): on the CPU backends `flex` and `ndarray` the op bodies run
//!   the event-driven, multi-threaded kernels of [`crate::rule`] on the host, per sample on
//!   all cores, and on autodiff devices the forward keeps the per-sample spike rasters (event
//!   lists) for the backward. On the CubeCL backends (`wgpu`, `cuda`) dense layers run device
//!   kernels instead (`cube`): every step's input currents and the LIF scan over all steps,
//!   and the whole backward (post kernels, label spikes, lateral factors, S-PSP entries,
//!   weight gradient, backpropagated error; [`Hm2bpBackend::dense_backward`]), each a fixed
//!   number of launches at any `T`.
//! - **Generic** ([`generic`], or [`KernelPath::Generic`] on a layer): dense layers built from
//!   the backend's own tensor operations (GEMMs, element-wise steps), so they run on the
//!   device of any backend; the reference the device kernels are tested against.
//!
//! Convolution and pooling layers run the host kernels on the CPU backends and device kernels
//! over the pairs of their connectivity on the CubeCL backends
//! ([`Hm2bpBackend::LOCAL_ON_DEVICE`], [`Hm2bpBackend::local_backward`]).

// burn-ndarray is deprecated in Burn 0.22 but remains a supported backend of this crate.
#![cfg_attr(feature = "ndarray", allow(deprecated))]

pub mod autodiff;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod cube;
pub mod generic;
mod penalty;

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, Dispatch, TensorMetadata, backend_extension};
use burn::tensor::{DType, Int, Tensor, TensorData, read_sync};

use crate::rule::regularizer::WeightRegularizer;
use crate::rule::sparse::LocalSpec;
use crate::rule::{self, BatchShape, DenseSpec, LayerSpec, PreparedWeights};
use crate::spikes::{SpikeRaster, words_per_step};
use crate::trains::SpikeTrains;

/// Which implementation runs a spiking dense layer (see the module documentation).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum KernelPath {
    /// Event-driven host kernels where the backend has them (CPU backends).
    #[default]
    EventDriven,
    /// Tensor operations of the backend, on its device.
    Generic,
}

impl KernelPath {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::EventDriven => "event-driven",
            KernelPath::Generic => "generic",
        }
    }
}

/// Whether backend `B` runs the layer of `spec` with the event-driven host kernels (else on
/// its device: device kernels or the generic tensor operations).
fn host_kernels<B: Hm2bpBackend>(spec: &LayerSpec, kernels: KernelPath) -> bool {
    match spec {
        LayerSpec::Local(_) => !B::LOCAL_ON_DEVICE,
        LayerSpec::Dense(_) => B::EVENT_DRIVEN && kernels == KernelPath::EventDriven,
    }
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

    /// Whether convolution and pooling layers run on the backend's device (device kernels;
    /// [`Hm2bpBackend::local_backward`]) rather than on the host kernels.
    const LOCAL_ON_DEVICE: bool = false;

    /// Simulates a batch through a layer of LIF neurons: input counts `[B, n_in]` (only their
    /// shape and autodiff node are used) and bit-packed trains `words [B, T, ⌈n_in/32⌉]`,
    /// `weight [n_out, n_in]` for a dense layer or `[n_weights]` shared weights for conv /
    /// pooling; returns the output counts `[B, n_out]` and words `[B, T, ⌈n_out/32⌉]`.
    /// `labels [B]` (class per sample) are kept for the output layer's backward rule.
    fn spiking_layer(
        counts: FloatTensor<Self>,
        words: IntTensor<Self>,
        weight: FloatTensor<Self>,
        labels: IntTensor<Self>,
        spec: LayerSpec,
        kernels: KernelPath,
    ) -> (FloatTensor<Self>, IntTensor<Self>) {
        let _ = labels;
        let n_in = counts.shape()[1];
        match spec {
            LayerSpec::Dense(d) if !host_kernels::<Self>(&spec, kernels) => {
                generic::forward_words::<Self>(words, n_in, weight, &d)
            }
            _ => {
                let (counts, words, _) = host_forward::<Self>(words, n_in, weight, spec);
                (counts, words)
            }
        }
    }

    /// The HM2-BP backward of a dense layer whose forward ran on the device
    /// ([`KernelPath::Generic`], or a backend without host kernels): from the input and
    /// output words, `weight [n_out, n_in]`, `d_post [B, n_out]` and `labels [B]` (read only
    /// for an output layer), the weight gradient when `need_grad` and `∂E/∂o_pre [B, n_in]`
    /// when `need_d_pre`. By default the [`generic`] tensor-operation backward.
    #[allow(clippy::too_many_arguments)]
    fn dense_backward(
        input: IntTensor<Self>,
        output: IntTensor<Self>,
        weight: FloatTensor<Self>,
        d_post: FloatTensor<Self>,
        labels: IntTensor<Self>,
        spec: DenseSpec,
        kernels: KernelPath,
        n_in: usize,
        need_grad: bool,
        need_d_pre: bool,
    ) -> (Option<FloatTensor<Self>>, Option<FloatTensor<Self>>) {
        let _ = kernels;
        generic::backward_from_words::<Self>(
            input, output, weight, d_post, labels, &spec, n_in, need_grad, need_d_pre,
        )
    }

    /// The HM2-BP backward of a convolution or pooling layer whose forward ran on the device
    /// ([`Hm2bpBackend::LOCAL_ON_DEVICE`]): from the input and output words, the shared
    /// `weight [n_weights]` and `d_post [B, n_out]`, the weight gradient when `need_grad` and
    /// `∂E/∂o_pre [B, n_in]` when `need_d_pre`. By default the host kernels, on trains read
    /// back from the words.
    #[allow(clippy::too_many_arguments)]
    fn local_backward(
        input: IntTensor<Self>,
        output: IntTensor<Self>,
        weight: FloatTensor<Self>,
        d_post: FloatTensor<Self>,
        spec: LocalSpec,
        n_in: usize,
        need_grad: bool,
        need_d_pre: bool,
    ) -> (Option<FloatTensor<Self>>, Option<FloatTensor<Self>>) {
        host_local_backward::<Self>(
            input, output, weight, d_post, spec, n_in, need_grad, need_d_pre,
        )
    }

    /// The weight regulariser's penalty `[1]` (spec S12) of `weight [rows, row_len]` (one row
    /// per post neuron or output map). On autodiff backends its gradient is `R`
    /// ([`WeightRegularizer::gradient`]). Computed on the host.
    fn weight_penalty(
        weight: FloatTensor<Self>,
        regularizer: WeightRegularizer,
    ) -> FloatTensor<Self> {
        penalty::host_penalty::<Self>(weight, regularizer).0
    }

    /// Packs dense 0/1 trains `[B, T, N]` into words `[B, T, ⌈N/32⌉]`.
    fn pack_spikes(spikes: FloatTensor<Self>) -> IntTensor<Self> {
        generic::pack::<Self>(spikes)
    }

    /// Unpacks words `[B, T, ⌈N/32⌉]` into dense 0/1 trains `[B, T, neurons]`.
    fn unpack_spikes(words: IntTensor<Self>, neurons: usize) -> FloatTensor<Self> {
        generic::unpack::<Self>(words, neurons)
    }
}

/// The spike rasters of a layer's forward pass, per sample, and its prepared weights, kept for
/// its backward pass (so that trains and weights are read from their tensors only once).
#[derive(Debug)]
pub(crate) struct ForwardRasters {
    input: Vec<SpikeRaster>,
    output: Vec<SpikeRaster>,
    /// The weights the forward pass ran with, in the kernels' layouts (the backward's
    /// pre-update weights).
    weights: PreparedWeights,
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

/// Reads bit-packed trains `[B, T, ⌈neurons/32⌉]` into per-sample rasters.
pub(crate) fn host_rasters<B: Backend>(words: IntTensor<B>, neurons: usize) -> Vec<SpikeRaster> {
    let [b, t, w] = dims3(&words);
    assert_eq!(
        w,
        words_per_step(neurons),
        "hm2bp: spike words [{b}, {t}, {w}] do not hold {neurons} neurons"
    );
    let words = host_words::<B>(words);
    let shape = BatchShape {
        batch: b,
        steps: t,
        neurons,
    };
    rule::rasters_from_words(&words, shape)
}

/// Uploads per-sample rasters as (counts `[B, N]`, words `[B, T, ⌈N/32⌉]` of `int_dtype`).
pub(crate) fn upload_trains<B: Backend>(
    rasters: &[SpikeRaster],
    device: &B::Device,
    int_dtype: DType,
) -> (FloatTensor<B>, IntTensor<B>) {
    let b = rasters.len();
    let (t, n) = rasters.first().map_or((0, 0), |r| (r.steps(), r.neurons()));
    let counts = rule::rasters_counts(rasters);
    let words = TensorData::new(rule::rasters_to_words(rasters), [b, t, words_per_step(n)]);
    let words = if int_dtype == DType::I32 {
        words
    } else {
        words.convert_dtype(int_dtype)
    };
    (
        B::float_from_data(TensorData::new(counts, [b, n]), device),
        B::int_from_data(words, device),
    )
}

/// The forward pass on the host: output (counts, words) and the rasters for the backward.
pub(crate) fn host_forward<B: Backend>(
    words: IntTensor<B>,
    n_in: usize,
    weight: FloatTensor<B>,
    spec: LayerSpec,
) -> (FloatTensor<B>, IntTensor<B>, ForwardRasters) {
    let n_out = spec.n_out(&weight.shape());
    let device = words.device();
    let int_dtype = words.dtype();
    let inputs = host_rasters::<B>(words, n_in);
    let weights = spec.prepare(f32s(&host_f32(B::float_into_data(weight))), n_in, n_out);
    let outputs = spec.forward_rasters(&inputs, &weights);
    let (counts, words) = upload_trains::<B>(&outputs, &device, int_dtype);
    let rasters = ForwardRasters {
        input: inputs,
        output: outputs,
        weights,
    };
    (counts, words, rasters)
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
    let labels = spec
        .needs_labels()
        .then(|| host_labels::<B>(labels, w_shape[0]));
    let d = host_f32(B::float_into_data(d_post));
    let (gw, gx) = spec.backward_rasters(
        &rasters.input,
        &rasters.output,
        &rasters.weights,
        f32s(&d),
        labels.as_deref(),
        need_grad,
        need_d_pre,
    );
    let gw = gw.map(|v| B::float_from_data(TensorData::new(v, w_shape), &device));
    let gx = gx.map(|v| B::float_from_data(TensorData::new(v, [b, n_in]), &device));
    (gw, gx)
}

/// The HM2-BP backward of a convolution or pooling layer on the host kernels, from its input
/// and output words (read back from the device) — see [`Hm2bpBackend::local_backward`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn host_local_backward<B: Backend>(
    input: IntTensor<B>,
    output: IntTensor<B>,
    weight: FloatTensor<B>,
    d_post: FloatTensor<B>,
    spec: LocalSpec,
    n_in: usize,
    need_grad: bool,
    need_d_pre: bool,
) -> (Option<FloatTensor<B>>, Option<FloatTensor<B>>) {
    let device = weight.device();
    let w_shape = weight.shape();
    let n_out = spec.topology.n_out();
    let layer = LayerSpec::Local(spec);
    let inputs = host_rasters::<B>(input, n_in);
    let outputs = host_rasters::<B>(output, n_out);
    let weights = layer.prepare(f32s(&host_f32(B::float_into_data(weight))), n_in, n_out);
    let d = host_f32(B::float_into_data(d_post));
    let (gw, gx) = layer.backward_rasters(
        &inputs,
        &outputs,
        &weights,
        f32s(&d),
        None,
        need_grad,
        need_d_pre,
    );
    let b = inputs.len();
    let gw = gw.map(|v| B::float_from_data(TensorData::new(v, w_shape), &device));
    let gx = gx.map(|v| B::float_from_data(TensorData::new(v, [b, n_in]), &device));
    (gw, gx)
}

/// Class labels `[B]` on the host, for the backward of an output layer of `classes` neurons.
///
/// # Panics
/// When the forward pass had no labels ([`NO_LABEL`]) or a label is not below `classes`: the
/// output layer's rule needs every sample's class, and guessing one would train silently wrong.
pub(crate) fn host_labels<B: Backend>(labels: IntTensor<B>, classes: usize) -> Vec<usize> {
    let labels: Vec<i64> = read_sync(B::int_into_data(labels))
        .map(|d| d.iter::<i64>().collect())
        .unwrap_or_default();
    labels
        .into_iter()
        .map(|v| {
            assert!(
                v != NO_LABEL,
                "output layer trained without labels: pass the batch's classes to `forward` \
                 (`labels: Some(…)`) when its gradient is computed"
            );
            usize::try_from(v)
                .ok()
                .filter(|&c| c < classes)
                .unwrap_or_else(|| {
                    panic!("label {v} is not a class of this output layer (0..{classes})")
                })
        })
        .collect()
}

/// The label tensor of a forward pass without labels (read back only by an output layer's
/// backward, which refuses it).
const NO_LABEL: i64 = -1;

#[cfg(feature = "ndarray")]
impl Hm2bpBackend for burn::backend::NdArray {
    const EVENT_DRIVEN: bool = true;
}
#[cfg(feature = "flex")]
impl Hm2bpBackend for burn::backend::Flex {
    const EVENT_DRIVEN: bool = true;
}

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

/// The 32-bit words of an int tensor, on the host (any int dtype; only the low 32 bits count).
fn host_words<B: Backend>(words: IntTensor<B>) -> Vec<u32> {
    match read_sync(B::int_into_data(words)) {
        Ok(data) => match data.dtype() {
            DType::I32 => data
                .as_slice::<i32>()
                .map_or_else(|_| Vec::new(), |v| v.iter().map(|&w| w as u32).collect()),
            DType::U32 => data.try_into_vec::<u32>().unwrap_or_default(),
            _ => data.iter::<i64>().map(|w| w as u32).collect(),
        },
        Err(e) => panic!("hm2bp: reading a tensor from its device failed: {e:?}"),
    }
}

/// Runs a spiking dense layer: `input` trains of `n_in` neurons, `weight [n_out, n_in]`,
/// optional `labels [B]` (output layer) → trains of `n_out` neurons, differentiable with the
/// HM2-BP rule on autodiff devices.
pub fn spiking_dense(
    input: SpikeTrains,
    weight: Tensor<2>,
    labels: Option<Tensor<1, Int>>,
    spec: DenseSpec,
    kernels: KernelPath,
) -> SpikeTrains {
    spiking_layer(input, weight, labels, LayerSpec::Dense(spec), kernels)
}

/// The weight regulariser's penalty of `weight [rows, row_len]` (rows: post neurons or output
/// maps), `[1]`, differentiable on autodiff devices (gradient `R`, spec S12).
pub fn weight_penalty(weight: Tensor<2>, regularizer: &WeightRegularizer) -> Tensor<1> {
    if regularizer.lambda == 0.0 {
        return Tensor::zeros([1], &weight.device());
    }
    Tensor::from_dispatch(Dispatch::weight_penalty(
        weight.into_dispatch(),
        *regularizer,
    ))
}

/// Runs a convolution or pooling layer: `input` trains (maps flattened channel-major), shared
/// `weight [n_weights]` → output trains, differentiable with HM2-BP.
pub fn spiking_local(input: SpikeTrains, weight: Tensor<1>, spec: LocalSpec) -> SpikeTrains {
    spiking_layer(
        input,
        weight,
        None,
        LayerSpec::Local(spec),
        KernelPath::EventDriven,
    )
}

fn spiking_layer<const D: usize>(
    input: SpikeTrains,
    weight: Tensor<D>,
    labels: Option<Tensor<1, Int>>,
    spec: LayerSpec,
    kernels: KernelPath,
) -> SpikeTrains {
    let device = input.device();
    let labels = labels.unwrap_or_else(|| Tensor::full([input.dims()[0]], NO_LABEL, &device));
    let (counts, words) = input.into_parts();
    let (counts, words) = Dispatch::spiking_layer(
        counts.into_dispatch(),
        words.into_dispatch(),
        weight.into_dispatch(),
        labels.into_dispatch(),
        spec,
        kernels,
    );
    SpikeTrains::new(Tensor::from_dispatch(counts), Tensor::from_dispatch(words))
}
