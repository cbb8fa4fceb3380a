//! HM2-BP as a Burn backend extension: a spiking layer's forward simulation is one custom op
//! whose gradient, registered with Burn's autodiff, is the HM2-BP rule instead of the
//! (useless) derivative of a step function. Laid out as Burn's custom-kernel example
//! (`examples/custom-cubecl-kernel`): the op, its autodiff wrapper, its kernels.
//!
//! ## What the op takes and returns
//!
//! Layers exchange [`SpikeTrains`](crate::SpikeTrains): spike counts `[B, N]` (the tensor
//! autodiff tracks) and the trains bit-packed as int words `[B, T, ⌈N/32⌉]`, plus the spike
//! steps a layer's device kernels kept (read by the next layer's backward; an empty tensor
//! elsewhere). The op maps the input's (counts, words, steps) to the output's; its backward
//! receives `∂E/∂o` of its output counts directly (a loss on counts needs nothing else), applies HM2-BP (S-PSP `e`, effect ratio `ρ`,
//! side effect `s`, lateral factor `γ`, label-spike insertion) and hands `∂E/∂o_pre` to the
//! input counts.
//!
//! ## Where each piece lives
//!
//! | piece | where |
//! |---|---|
//! | the functions layers call (`spiking_dense`, `spiking_local`, `weight_penalty`) | [`crate::spike_trains`] |
//! | the op through Burn's `Dispatch` | [`Hm2bpBackend`] (this module) |
//! | the op's inner side: forward → [`Tape`], backward from the tape | [`SpikingOps`] (this module), [`LayerInput`] and [`Tape`] (`tape.rs`) |
//! | the autodiff wrapper (both branches call [`SpikingOps::spiking_forward`]) | [`autodiff`] |
//! | tensor ↔ host bridge (one error rule) and the host kernels' forward / backward | `host.rs` |
//! | the generic tensor-operation path | [`generic`] |
//! | the CubeCL device kernels (`wgpu`, `cuda` features) | `cube/` |
//! | the weight penalty's op | `penalty.rs` |
//! | the rule itself, on host memory | [`crate::rule`] |
//! | the spike-format codecs (rasters ↔ words, dense) | [`crate::spikes`] |
//!
//! ## Kernels: who chooses
//!
//! A backend's [`SpikingOps::spiking_forward`] is the one place its kernels are chosen; the
//! [`Tape`] it returns records the choice, and [`SpikingOps::spiking_backward`] follows it.
//!
//! - **Event-driven** ([`KernelPath::EventDriven`], the default): on the CPU backends `flex`
//!   and `ndarray` the host kernels of [`crate::rule`], per sample on all cores; the tape keeps
//!   the per-sample spike rasters (event lists) and prepared weights. On the CubeCL backends
//!   (`wgpu`, `cuda`) device kernels instead (`cube`): every step's input currents and the LIF
//!   scan over all steps, and the whole backward (post kernels, label spikes, lateral factors,
//!   S-PSP entries, weight gradient, backpropagated error), each a fixed number of launches at
//!   any `T`; the tape keeps the words on the device.
//! - **Generic** ([`generic`], or [`KernelPath::Generic`] on a layer): dense layers built from
//!   the backend's own tensor operations (GEMMs, element-wise steps), so they run on the
//!   device of any backend; the reference the device kernels are tested against.
//!
//! Convolution and pooling layers run the host kernels on the CPU backends and device kernels
//! over the pairs of their connectivity on the CubeCL backends (the host kernels where a
//! sample does not fit the device).

// burn-ndarray is deprecated in Burn 0.22 but remains a supported backend of this crate.
#![cfg_attr(feature = "ndarray", allow(deprecated))]

pub mod activity;
pub mod adam;
pub mod autodiff;
pub mod count_loss;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod cube;
pub mod generic;
pub(crate) mod host;
mod penalty;
mod tape;

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, TensorMetadata, backend_extension};

use crate::rule::output::CountTargets;
use crate::rule::regularizer::WeightRegularizer;
use crate::rule::{LayerGrads, LayerSpec, Needs};
pub use adam::AdamUpdate;
pub use count_loss::LossReduce;
pub use penalty::PenaltyState;
use tape::Saved;
pub use tape::{LayerInput, Tape};

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

/// Backends that can run spiking layers with HM2-BP gradients: the ops the
/// [`crate::spike_trains`] functions call through Burn's `Dispatch`.
#[backend_extension(
    NdArray: cfg(feature = "ndarray"),
    Flex: cfg(feature = "flex"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    Autodiff
)]
pub trait Hm2bpBackend: Backend {
    /// Simulates a batch through a layer of LIF neurons: input counts `[B, n_in]` (only their
    /// shape and autodiff node are used) and bit-packed trains `words [B, T, ⌈n_in/32⌉]`,
    /// `weight [n_out, n_in]` for a dense layer or `[n_weights]` shared weights for conv /
    /// pooling; returns the output counts `[B, n_out]` and words `[B, T, ⌈n_out/32⌉]`.
    /// `labels [B]` (class per sample) are kept for the output layer's backward rule. `times`:
    /// the input's spike steps `[B·n_in, T]` where the layer below returned them (else an
    /// empty tensor, see [`no_times`]); a layer whose device kernels kept its output's for its
    /// backward returns them too, for the next layer's backward (on autodiff backends; no
    /// other backend keeps a tape), else an empty tensor. Runs
    /// [`SpikingOps::spiking_forward`] (on autodiff backends, that of the inner backend, whose
    /// tape the HM2-BP backward reads).
    fn spiking_layer(
        counts: FloatTensor<Self>,
        words: IntTensor<Self>,
        times: IntTensor<Self>,
        weight: FloatTensor<Self>,
        labels: IntTensor<Self>,
        spec: LayerSpec,
        kernels: KernelPath,
    ) -> (FloatTensor<Self>, IntTensor<Self>, IntTensor<Self>);

    /// `total [1]` plus the weight regulariser's penalty (spec S12) of `weight [rows, row_len]`
    /// (one row per post neuron or output map), so that a loss collects its layers' penalties
    /// without an addition of its own per layer. On autodiff backends the gradient flows on to
    /// `total` unchanged and reaches the weight as `R` ([`WeightRegularizer::gradient`]).
    /// Computed on the host (CPU backends) or on the device.
    fn add_weight_penalty(
        total: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        regularizer: WeightRegularizer,
    ) -> FloatTensor<Self> {
        Self::float_add(total, penalty::host_penalty::<Self>(weight, regularizer).0)
    }

    /// One Adam update of a parameter: new `(weight, m, v)` from `weight`, its `grad` and
    /// moments `m`, `v` (all of one shape). By default with the backend's tensor operations;
    /// one fused kernel on the CubeCL backends.
    fn adam_update(
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        settings: AdamUpdate,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let [w, m, v] = adam::adam_update_generic::<Self>([weight, grad, m, v], settings);
        (w, m, v)
    }

    /// The count loss of every sample `[B]`, or their mean `[1]` (`reduce`; see
    /// [`count_loss`]) of `counts [B, C]`, sample `weight [B]` and `labels [B]`; on autodiff
    /// backends its gradient flows to the counts. By default on the host.
    fn count_loss(
        counts: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        labels: IntTensor<Self>,
        targets: CountTargets,
        reduce: LossReduce,
    ) -> FloatTensor<Self> {
        let loss = count_loss::host_count_loss::<Self>([counts, weight], labels, targets).0;
        reduce.apply::<Self>(loss)
    }

    /// A layer's activity statistics `[2 + n]` from its spike counts `[B, n]` (see
    /// [`activity`]); not differentiable. By default on the host.
    fn layer_activity(counts: FloatTensor<Self>) -> FloatTensor<Self> {
        activity::host_activity::<Self>(counts)
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

/// The inner side of the spiking layer's op, on a backend that runs it (not on `Autodiff`,
/// which calls it): the forward pass, which chooses the kernels and returns the [`Tape`] its
/// backward needs, and the HM2-BP backward from that tape. The one place a backend's kernels
/// are chosen is its `spiking_forward`.
pub trait SpikingOps: Hm2bpBackend {
    /// The forward pass: output counts `[B, n_out]`, words `[B, T, ⌈n_out/32⌉]` and the
    /// tape. By default the event-driven host kernels, or the [`generic`] tensor operations
    /// for a dense layer asked to run them ([`KernelPath::Generic`]).
    fn spiking_forward(
        input: LayerInput<Self>,
    ) -> (FloatTensor<Self>, IntTensor<Self>, Tape<Self>) {
        match input.spec {
            LayerSpec::Dense(d) if input.kernels == KernelPath::Generic => {
                Tape::run_on_device(input, false, |i| {
                    let (counts, words) = generic::forward_words::<Self>(i, &d);
                    (counts, words, tape::Kept::none())
                })
            }
            _ => host::forward::<Self>(input),
        }
    }

    /// `total [1]` plus the weight regulariser's penalty of `weight [rows, row_len]`, and what
    /// its backward needs (see [`Hm2bpBackend::add_weight_penalty`]). By default on the host.
    fn penalty_forward(
        total: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        regularizer: WeightRegularizer,
    ) -> (FloatTensor<Self>, PenaltyState<Self>) {
        let (value, state) = penalty::host_penalty::<Self>(weight, regularizer);
        (Self::float_add(total, value), state)
    }

    /// The count loss reduced as `reduce` asks (every sample's `[B]` or their mean `[1]`) and
    /// its gradient with respect to the counts `[B, C]` for an upstream gradient of 1 (see
    /// [`count_loss`]). By default on the host.
    fn count_loss_forward(
        [counts, weight]: [FloatTensor<Self>; 2],
        labels: IntTensor<Self>,
        targets: CountTargets,
        reduce: LossReduce,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (loss, grad) = count_loss::host_count_loss::<Self>([counts, weight], labels, targets);
        reduce.finish::<Self>(loss, grad)
    }

    /// The weight's gradient `g · R` from the penalty's `state` and gradient `g [1]`.
    fn penalty_gradient(state: PenaltyState<Self>, g: FloatTensor<Self>) -> FloatTensor<Self> {
        state.gradient(g)
    }

    /// The HM2-BP backward from the forward's `tape` and `d_post = ∂E/∂o [B, n_out]` of its
    /// output counts: the gradients `needs` asks for. By default [`backward_off_device`].
    fn spiking_backward(
        tape: Tape<Self>,
        d_post: FloatTensor<Self>,
        needs: Needs,
    ) -> LayerGrads<FloatTensor<Self>> {
        backward_off_device::<Self>(&tape, d_post, needs)
    }
}

/// The HM2-BP backward without device kernels: the host kernels on the forward's rasters; for
/// trains kept on the device, the [`generic`] tensor operations (dense layers) or the host
/// kernels on the trains read back (convolution, pooling).
pub(crate) fn backward_off_device<B: Backend>(
    tape: &Tape<B>,
    d_post: FloatTensor<B>,
    needs: Needs,
) -> LayerGrads<FloatTensor<B>> {
    match (&tape.saved, tape.spec) {
        (Saved::Rasters(rasters), _) => host::backward::<B>(rasters, tape, d_post, needs),
        (Saved::Words(words), LayerSpec::Dense(d)) => {
            generic::backward::<B>(tape, words, &d, d_post, needs)
        }
        (Saved::Words(words), LayerSpec::Local(_)) => {
            host::backward_from_words::<B>(tape, words, d_post, needs)
        }
    }
}

/// [`Hm2bpBackend::spiking_layer`] of a backend that runs the op itself: its forward, without
/// keeping the tape (so no spike steps for a backward either).
fn forward_untaped<B: SpikingOps>(
    counts: FloatTensor<B>,
    words: IntTensor<B>,
    weight: FloatTensor<B>,
    labels: IntTensor<B>,
    spec: LayerSpec,
    kernels: KernelPath,
) -> (FloatTensor<B>, IntTensor<B>, IntTensor<B>) {
    let none = no_times::<B>(&words);
    let input = LayerInput {
        n_in: counts.shape()[1],
        words,
        times: None,
        weight,
        labels,
        spec,
        kernels,
    };
    let (counts, words, _) = B::spiking_forward(input);
    (counts, words, none)
}

/// The spike steps of trains whose steps are not known: an empty `[0, 0]` tensor (no launch)
/// of `words`' int type, on its device.
pub(crate) fn no_times<B: Backend>(words: &IntTensor<B>) -> IntTensor<B> {
    B::int_empty([0, 0].into(), &words.device(), words.dtype().into())
}

/// Spike steps passed through the op: `None` for [`no_times`]' empty tensor.
pub(crate) fn times_if_known<B: Backend>(times: IntTensor<B>) -> Option<IntTensor<B>> {
    (times.shape().num_elements() > 0).then_some(times)
}

/// [`Hm2bpBackend`] and [`SpikingOps`] for CPU backends, whose ops all have default bodies.
macro_rules! cpu_backend {
    ($backend:ty) => {
        impl Hm2bpBackend for $backend {
            fn spiking_layer(
                counts: FloatTensor<Self>,
                words: IntTensor<Self>,
                _times: IntTensor<Self>,
                weight: FloatTensor<Self>,
                labels: IntTensor<Self>,
                spec: LayerSpec,
                kernels: KernelPath,
            ) -> (FloatTensor<Self>, IntTensor<Self>, IntTensor<Self>) {
                forward_untaped::<Self>(counts, words, weight, labels, spec, kernels)
            }
        }
        impl SpikingOps for $backend {}
    };
}

#[cfg(feature = "ndarray")]
cpu_backend!(burn::backend::NdArray);
#[cfg(feature = "flex")]
cpu_backend!(burn::backend::Flex);
