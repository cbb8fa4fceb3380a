//! Convolution and pooling layers (locally connected, shared weights) as CubeCL kernels on
//! their geometry ([`Window`]: every index computed from the layer's shape, no tables; one
//! slot per connected (output, input) pair, in fanin order), in the order and `f32`
//! operations of the host kernels of [`crate::rule::local`]:
//!
//! - Forward: [`window_currents_kernel`] (per sample, step and output neuron, the weights of
//!   the inputs that spiked, in ascending input order, found from the layer's geometry), then
//!   the LIF scan (writing words) of the dense layers ([`super::lif`]). The trains equal the
//!   host's bit for bit.
//! - Backward: the post kernels `K` ([`super::post`]), then [`local_spsp_kernel`] (S-PSP per
//!   sample and slot), [`local_coef_kernel`] (side effect and weight coefficient per output
//!   neuron), [`local_weight_grad_kernel`] and [`batch_sum_kernel`] (each shared weight's
//!   gradient over its slots, then over the batch) and [`local_pre_error_kernel`] (per input,
//!   over its fanout). As for dense layers, the gradients agree with the host's to `f32`
//!   rounding (device `exp` in `K`; the convolution's host backward sums `∂E/∂o_pre` position by
//!   position).
//!
//! No loop runs over spikes within a step; the longest loops are over a weight's slots
//! (output positions), the steps, or a neuron's fanin / fanout.

// Kernel bodies are written in the forms the #[cube] expansion was tested with.
#![allow(clippy::manual_div_ceil, clippy::assign_op_pattern)]

use burn::backend::{Cube, TensorMetadata};
use burn::tensor::DType;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::reduce::sum_slices;
use super::spsp::{side_effect, spsp_entry};
use super::{
    Chunk, ChunkForward, PostTerms, PreError, batch_cat, batch_chunks, batch_slice, dims3,
    elementwise, empty_like, forward_by_chunks, input_times, known_times, largest_allocation,
    lif_scan, post_terms,
};
use crate::ops::tape::{DeviceForward, Kept, Tape, WordsTape};

use crate::rule::local::{ErrorScale, LocalSpec, Topology};
use crate::rule::terms::{SILENT_POST_SIDE_RATIO, SILENT_POST_SPSP};
use crate::rule::{LayerGrads, Needs};
use crate::spikes::words_per_step;

/// A layer's geometry as [`window_currents_kernel`] reads it: output `(o, x, y)` reads the
/// `side × side` window at `(x · stride, y · stride)` of input maps `0..maps_read` (a
/// convolution, kernel `o`: weight `((o · maps_read + c) · side + p) · side + q`) or of its own
/// map `o` (pooling: `maps_read` 1, every pair weight 0).
#[derive(CubeType, CubeLaunch, Clone, Copy)]
pub struct Window {
    /// Input maps an output reads.
    pub maps_read: u32,
    /// 1: pooling (map `o` reads map `o`, weight 0); 0: convolution.
    pub pooling: u32,
    /// Input map height and width.
    pub height: u32,
    pub width: u32,
    /// Output map height and width.
    pub out_h: u32,
    pub out_w: u32,
    /// Window side (at most 32: one spike word) and step between windows.
    pub side: u32,
    pub stride: u32,
    /// Output maps.
    pub out_maps: u32,
}

/// Pairs of each output neuron (`maps_read · side²`), numbered `r = (c · side + p) · side + q`
/// for input map `c`, window row `p` and column `q`: ascending input order.
#[cube]
fn window_pairs(g: &Window) -> usize {
    (g.maps_read * g.side * g.side) as usize
}

/// The input neuron of output `i`'s pair `r`.
#[cube]
fn window_input(g: &Window, i: usize, r: usize) -> usize {
    let side = g.side as usize;
    let (out_h, out_w) = (g.out_h as usize, g.out_w as usize);
    let x = (i / out_w) % out_h;
    let y = i % out_w;
    let mut map = r / (side * side);
    if g.pooling == 1u32 {
        map = i / (out_h * out_w);
    }
    let p = (r / side) % side;
    let q = r % side;
    (map * g.height as usize + x * g.stride as usize + p) * g.width as usize
        + y * g.stride as usize
        + q
}

/// The shared weight of output `i`'s pair `r` (pooling: 0).
#[cube]
fn window_weight(g: &Window, i: usize, r: usize) -> usize {
    let mut k = 0usize;
    if g.pooling == 0u32 {
        k = (i / (g.out_h * g.out_w) as usize) * window_pairs(g) + r;
    }
    k
}

/// [`Window`] of a layer's topology, as the kernels take it.
fn window(topology: Topology) -> WindowLaunch {
    let [_, height, width] = topology.input_shape();
    let [out_maps, out_h, out_w] = topology.output_shape();
    let (maps_read, pooling, side, stride) = match topology {
        Topology::Conv(c) => (c.in_maps, 0, c.kernel, 1),
        Topology::Pool { size, .. } => (1, 1, size, size),
    };
    let u = |v: usize| v as u32;
    WindowLaunch::new(
        u(maps_read),
        pooling,
        u(height),
        u(width),
        u(out_h),
        u(out_w),
        u(side),
        u(stride),
        u(out_maps),
    )
}

/// Pairs of each output neuron of `topology` (see [`window_pairs`]).
fn pairs_per_output(topology: Topology) -> usize {
    match topology {
        Topology::Conv(c) => c.in_maps * c.kernel * c.kernel,
        Topology::Pool { size, .. } => size * size,
    }
}

/// Window sides the forward kernel takes (a window row is read from one or two spike words).
const MAX_SIDE: usize = 32;

/// Thread per (sample, step, output neuron `i`): `currents [B·T, n_out]`, the weights of
/// `i`'s inputs that spiked at that step (`words [B·T, ⌈n_in/32⌉]`), summed in ascending
/// input order from `0` (the host's order). The inputs are found from the layer's geometry
/// ([`Window`]), not from tables: window row by window row (`side` consecutive inputs, one or
/// two words), a row skipped when none of its inputs spiked. (One thread per step rather than
/// a loop over steps: with the loop, a convolution's thread runs past the 65,535 loop
/// iterations after which lavapipe, the CI's Vulkan driver, ends it.)
#[cube(launch)]
pub fn window_currents_kernel(
    words: &Tensor<u32>,
    weights: &Tensor<f32>,
    currents: &mut Tensor<f32>,
    n_in: u32,
    n_out: u32,
    g: Window,
) {
    let n_out = n_out as usize;
    if ABSOLUTE_POS >= currents.len() {
        terminate!();
    }
    let row = ABSOLUTE_POS / n_out;
    let i = ABSOLUTE_POS % n_out;
    let (out_h, out_w) = (g.out_h as usize, g.out_w as usize);
    let o = i / (out_h * out_w);
    let x = (i / out_w) % out_h;
    let y = i % out_w;
    let side = g.side as usize;
    let maps_read = g.maps_read as usize;
    let mut first_map = 0usize;
    let mut kernel = o * maps_read * side * side;
    if g.pooling == 1u32 {
        first_map = o;
        kernel = 0usize;
    }
    let base = row * ((n_in as usize + 31) / 32);
    let mut current = 0.0f32;
    for c in 0..maps_read {
        for p in 0..side {
            let j0 = ((first_map + c) * g.height as usize + x * g.stride as usize + p)
                * g.width as usize
                + y * g.stride as usize;
            let shift = (j0 % 32) as u32;
            let w0 = base + j0 / 32;
            let mut bits = words[w0] >> shift;
            if shift + g.side > 32u32 {
                bits = bits | (words[w0 + 1] << (32u32 - shift));
            }
            if g.side < 32u32 {
                bits = bits & ((1u32 << g.side) - 1u32);
            }
            if bits != 0u32 {
                for q in 0..side {
                    if (bits >> q as u32) & 1u32 == 1u32 {
                        let mut k = 0usize;
                        if g.pooling == 0u32 {
                            k = kernel + (c * side + p) * side + q;
                        }
                        current += weights[k];
                    }
                }
            }
        }
    }
    currents[ABSOLUTE_POS] = current;
}

/// Thread per (sample `b`, slot `s` = pair (`i`, `j`), numbered `i · P + r` with `P` pairs
/// per output, see [`window_pairs`]): `e [B, pairs]`, `e_{i|j} = Σ_{t ∈ spikes(j)} K_i(t)` in
/// ascending `t` (`times [B·n_in, T]`, `kernels [B, T, n_out]`) when `i` fired; `silent_spsp`
/// for a silent `i` where `j` fired; else 0.
#[cube(launch)]
pub fn local_spsp_kernel(
    times: &Tensor<u32>,
    o_pre: &Tensor<f32>,
    kernels: &Tensor<f32>,
    o_post: &Tensor<f32>,
    e: &mut Tensor<f32>,
    steps: u32,
    n_in: u32,
    n_out: u32,
    silent_spsp: f32,
    g: Window,
) {
    let steps = steps as usize;
    let n_out = n_out as usize;
    let per = window_pairs(&g);
    let pairs = n_out * per;
    if ABSOLUTE_POS >= e.len() {
        terminate!();
    }
    let b = ABSOLUTE_POS / pairs;
    let s = ABSOLUTE_POS % pairs;
    let i = s / per;
    let pre = b * n_in as usize + window_input(&g, i, s % per);
    let post_fired = o_post[b * n_out + i] > 0.0;
    e[ABSOLUTE_POS] = spsp_entry(
        times,
        kernels,
        o_pre[pre],
        pre * steps,
        b * steps,
        i,
        post_fired,
        n_out,
        silent_spsp,
    );
}

/// Thread per (sample `b`, output neuron `i`): the side effect `s_i` (S9, S11) from
/// `Σ w e` over `i`'s slots (firing `i`) or `Σ w` (silent `i`), then `delta [B, n_out]`
/// (`d / divisor`: `ν` for a convolution, `size²` for pooling) and the weight coefficient
/// `coef [B, n_out]` (`δ (1 + s)`).
#[cube(launch)]
pub fn local_coef_kernel(
    e: &Tensor<f32>,
    weights: &Tensor<f32>,
    o_post: &Tensor<f32>,
    d_post: &Tensor<f32>,
    delta: &mut Tensor<f32>,
    coef: &mut Tensor<f32>,
    n_out: u32,
    nu: f32,
    divisor: f32,
    silent_side_ratio: f32,
    g: Window,
) {
    let n_out = n_out as usize;
    if ABSOLUTE_POS >= o_post.len() {
        terminate!();
    }
    let per = window_pairs(&g);
    let pairs = n_out * per;
    let b = ABSOLUTE_POS / n_out;
    let i = ABSOLUTE_POS % n_out;
    let o = o_post[ABSOLUTE_POS];
    let mut we = 0.0f32;
    let mut w_sum = 0.0f32;
    for r in 0..per {
        let w = weights[window_weight(&g, i, r)];
        if o > 0.0 {
            we += w * e[b * pairs + i * per + r];
        } else {
            w_sum += w;
        }
    }
    let side = side_effect(o, we, w_sum, nu, silent_side_ratio);
    let d = d_post[ABSOLUTE_POS] / divisor;
    delta[ABSOLUTE_POS] = d;
    coef[ABSOLUTE_POS] = d * (1.0 + side) * 1.0;
}

/// Units of a [`local_weight_grad_kernel`] cube.
const GRAD_UNITS: u32 = 64;

/// Cube per (sample `b`, shared weight `k`), unit per every [`GRAD_UNITS`]-th slot of `k`
/// (a convolution's kernel entry `r` of map `o` at every position of the map; pooling's one
/// weight at every pair), ascending: `partial [B, n_weights]`, `Σ coef_{b,i(s)} e_{b,s}` over
/// `k`'s slots, each unit's share in ascending slot order and the shares added in unit order
/// by the first unit (a fixed order, not the host's: equal to it up to `f32` rounding;
/// conv1's weights have 576 slots each).
#[cube(launch)]
pub fn local_weight_grad_kernel(
    e: &Tensor<f32>,
    coef: &Tensor<f32>,
    partial: &mut Tensor<f32>,
    n_out: u32,
    n_weights: u32,
    g: Window,
) {
    let n_out = n_out as usize;
    let units = GRAD_UNITS as usize;
    let per = window_pairs(&g);
    let pairs = n_out * per;
    let plane = (g.out_h * g.out_w) as usize;
    let k = CUBE_POS_X as usize;
    let b = CUBE_POS_Y as usize;
    let u = UNIT_POS as usize;
    let mut slots = pairs;
    if g.pooling == 0u32 {
        slots = plane;
    }
    let mut shares = Shared::<[f32]>::new_slice(GRAD_UNITS as usize);
    let mut acc = 0.0f32;
    let mut x = u;
    while x < slots {
        let mut s = x;
        if g.pooling == 0u32 {
            s = ((k / per) * plane + x) * per + k % per;
        }
        acc += coef[b * n_out + s / per] * e[b * pairs + s];
        x += units;
    }
    shares[u] = acc;
    sync_cube();
    if u == 0 {
        partial[b * n_weights as usize + k] = sum_slices(&shares, 1, units, 0);
    }
}

/// Thread per column `k` of `partial [B, n]`: `sum [n]`, its entries summed in ascending `b`
/// from `0` (the host's batch order).
#[cube(launch)]
pub fn batch_sum_kernel(partial: &Tensor<f32>, sum: &mut Tensor<f32>, batch: u32) {
    let n = sum.len();
    if ABSOLUTE_POS >= n {
        terminate!();
    }
    let mut g = 0.0f32;
    for b in 0..batch as usize {
        g += partial[b * n + ABSOLUTE_POS];
    }
    sum[ABSOLUTE_POS] = g;
}

/// Input neurons per cube of [`local_pre_error_kernel`].
const PRE_NEURONS: u32 = 8;
/// Slices of a neuron's fanout per cube of [`local_pre_error_kernel`].
const PRE_SLICES: u32 = 32;

/// Cube per (sample `b`, [`PRE_NEURONS`] input neurons), unit per (neuron `j`, every
/// [`PRE_SLICES`]-th entry of its fanout: the outputs whose window covers `j`, ascending):
/// `d_pre [B, n_in]`, `Σ_i δ_i w ρ_ij` over `j`'s fanout (S10), `ρ_ij = e_{i|j}/o_j` when both
/// neurons fired, else 1 (S8); each slice in ascending `i`, the slices added in order by the
/// first (a fixed order, not the host's: equal to it up to `f32` rounding; a conv2 input has
/// up to 1,000 fanout entries).
#[cube(launch)]
pub fn local_pre_error_kernel(
    e: &Tensor<f32>,
    delta: &Tensor<f32>,
    o_post: &Tensor<f32>,
    o_pre: &Tensor<f32>,
    weights: &Tensor<f32>,
    d_pre: &mut Tensor<f32>,
    n_in: u32,
    n_out: u32,
    g: Window,
) {
    let n_in = n_in as usize;
    let n_out = n_out as usize;
    let lanes = PRE_NEURONS as usize;
    let slices = PRE_SLICES as usize;
    let b = CUBE_POS_Y as usize;
    let j = CUBE_POS_X as usize * lanes + UNIT_POS_X as usize;
    let slice = UNIT_POS_Y as usize;
    let mut shares = Shared::<[f32]>::new_slice(lanes * slices);
    let mut sum = 0.0f32;
    if j < n_in {
        let per = window_pairs(&g);
        let pairs = n_out * per;
        let (side, stride) = (g.side as usize, g.stride as usize);
        let (width, height) = (g.width as usize, g.height as usize);
        let (out_h, out_w) = (g.out_h as usize, g.out_w as usize);
        let c = j / (height * width);
        let xx = (j / width) % height;
        let yy = j % width;
        // The window rows `x` and columns `y` covering (xx, yy), and the maps reading it.
        let x_lo = first_window(xx, side, stride);
        let y_lo = first_window(yy, side, stride);
        let nx = windows_from(x_lo, xx / stride, out_h);
        let ny = windows_from(y_lo, yy / stride, out_w);
        let (mut first_map, mut maps, mut in_map) = (0usize, g.out_maps as usize, c);
        if g.pooling == 1u32 {
            first_map = c;
            maps = 1usize;
            in_map = 0usize;
        }
        let o_j = o_pre[b * n_in + j];
        let inv_o = 1.0 / f32::max(o_j, 1.0);
        let fanout = maps * nx * ny;
        let mut f = slice;
        while f < fanout {
            let (x, y) = (x_lo + (f / ny) % nx, y_lo + f % ny);
            let i = ((first_map + f / (nx * ny)) * out_h + x) * out_w + y;
            let r = (in_map * side + xx - x * stride) * side + yy - y * stride;
            let d = delta[b * n_out + i];
            if d != 0.0 {
                let dw = d * weights[window_weight(&g, i, r)];
                if o_j > 0.0 && o_post[b * n_out + i] > 0.0 {
                    sum += dw * (e[b * pairs + i * per + r] * inv_o);
                } else {
                    sum += dw;
                }
            }
            f += slices;
        }
    }
    shares[slice * lanes + UNIT_POS_X as usize] = sum;
    sync_cube();
    if slice == 0 && j < n_in {
        d_pre[b * n_in + j] = sum_slices(&shares, lanes, slices, UNIT_POS_X as usize);
    }
}

/// The first window (row or column of outputs) that covers input coordinate `at`:
/// `⌈(at − side + 1) / stride⌉`, at least 0.
#[cube]
fn first_window(at: usize, side: usize, stride: usize) -> usize {
    let mut first = 0usize;
    if at + 1 >= side {
        first = (at + 1 - side + stride - 1) / stride;
    }
    first
}

/// Windows `first..=last` (capped below `outputs`) as a count (0 when none).
#[cube]
fn windows_from(first: usize, last: usize, outputs: usize) -> usize {
    let mut count = 0usize;
    let mut end = last + 1;
    if end > outputs {
        end = outputs;
    }
    if end > first {
        count = end - first;
    }
    count
}

/// Bytes per sample of the largest buffer of the layer's kernels at `T = steps` (post kernels
/// or currents `[T, max(n_in, n_out)]`, S-PSP per pair).
fn per_sample_bytes(spec: &LocalSpec, steps: usize) -> usize {
    let (n_in, n_out) = (spec.topology.n_in(), spec.topology.n_out());
    4 * (n_out * pairs_per_output(spec.topology)).max(steps * n_in.max(n_out))
}

/// Whether one sample of the layer fits the device of `words [B, T, ·]` and its window the
/// forward kernel (larger layers and windows run on the host kernels).
pub(super) fn fits(words: &CubeTensor, spec: &LocalSpec) -> bool {
    let side = match spec.topology {
        Topology::Conv(c) => c.kernel,
        Topology::Pool { size, .. } => size,
    };
    side <= MAX_SIDE && per_sample_bytes(spec, dims3(words)[1]) <= largest_allocation(words)
}

/// The layer's forward pass on the device: input `words [B, T, ⌈n_in/32⌉]`, shared
/// `weight [n_weights]` → (counts `[B, n_out]`, words `[B, T, ⌈n_out/32⌉]`, and for a batch
/// in one piece the output spike times, which the backward reads instead of finding them in
/// the words again).
pub(super) fn forward(
    words: CubeTensor,
    weight: CubeTensor,
    spec: &LocalSpec,
) -> DeviceForward<Cube> {
    let per_sample = per_sample_bytes(spec, dims3(&words)[1]);
    let (counts, trains, output_times) = forward_by_chunks(words, per_sample, |w, keep| {
        forward_chunk(w, weight.clone(), spec, keep)
    });
    let kept = Kept {
        weight_t: None,
        output_times,
    };
    (counts, trains, kept)
}

/// [`forward`] of a batch whose buffers fit the device (the output spike times too when
/// `keep_times`).
fn forward_chunk(
    words: CubeTensor,
    weight: CubeTensor,
    spec: &LocalSpec,
    keep_times: bool,
) -> ChunkForward {
    let [b, t, w_in] = dims3(&words);
    let conn = spec.topology.connectivity();
    let (n_in, n_out) = (conn.n_in, conn.n_out);
    assert_eq!(
        w_in,
        words_per_step(n_in),
        "hm2bp: spike words [{b}, {t}, {w_in}] do not hold {n_in} neurons"
    );
    let client = words.client.clone();
    let words = into_contiguous(words);
    let currents = empty_like(&words, vec![b * t, n_out], DType::F32);
    let (count, dim) = elementwise(&client, b * t * n_out);
    window_currents_kernel::launch(
        &client,
        count,
        dim,
        words.clone().into_tensor_arg(),
        into_contiguous(weight).into_tensor_arg(),
        currents.clone().into_tensor_arg(),
        n_in as u32,
        n_out as u32,
        window(spec.topology),
    );
    let lif = (&spec.lif, None);
    lif_scan(currents, &words, [b, t, n_out], lif, keep_times)
}

/// The layer's HM2-BP backward on the device from the forward's tape (input and output
/// words, shared `weight [n_weights]`) and `d_post [B, n_out]` → (weight gradient
/// `[n_weights]`, `∂E/∂o_pre [B, n_in]`), each only when asked for.
pub(super) fn backward(
    tape: &Tape<Cube>,
    words: &WordsTape<Cube>,
    spec: &LocalSpec,
    d_post: CubeTensor,
    needs: Needs,
) -> LayerGrads<CubeTensor> {
    let input = &words.input;
    let [b, t, _] = dims3(input);
    let conn = spec.topology.connectivity();
    let per_sample = per_sample_bytes(spec, t);
    let layer = Layer {
        spec,
        weight: into_contiguous(tape.weight.clone()),
    };
    let (mut partials, mut d_pre) = (Vec::new(), Vec::new());
    let chunks = batch_chunks(input, b, per_sample);
    let [input_times, output_times] = known_times(words, &chunks);
    for r in chunks {
        let chunk = Chunk {
            input: batch_slice(input, &r),
            output: batch_slice(&words.output, &r),
            d_post: batch_slice(&d_post, &r),
            labels: None,
            input_times: input_times.clone(),
            output_times: output_times.clone(),
        };
        let g = backward_chunk(chunk, &layer, needs);
        partials.extend(g.weight);
        d_pre.extend(g.input);
    }
    LayerGrads {
        weight: (!partials.is_empty()).then(|| batch_sum(batch_cat(partials), conn.n_weights)),
        input: (!d_pre.is_empty()).then(|| batch_cat(d_pre)),
    }
}

/// Each weight's per-sample sums `partial [B, n_weights]` summed over the batch in sample
/// order.
fn batch_sum(partial: CubeTensor, n_weights: usize) -> CubeTensor {
    let b = partial.shape()[0];
    let client = partial.client.clone();
    let grad = empty_like(&partial, vec![n_weights], DType::F32);
    let (count, dim) = elementwise(&client, n_weights);
    batch_sum_kernel::launch(
        &client,
        count,
        dim,
        partial.into_tensor_arg(),
        grad.clone().into_tensor_arg(),
        b as u32,
    );
    grad
}

/// A layer's backward constants on the device: its spec and shared weights.
struct Layer<'a> {
    spec: &'a LocalSpec,
    weight: CubeTensor,
}

/// [`backward`] of a chunk whose buffers fit the device: post terms, S-PSP per pair, side
/// effect, then (per-sample weight gradients `[B, n_weights]`, `∂E/∂o_pre [B, n_in]`), each
/// only when asked for.
fn backward_chunk(chunk: Chunk, layer: &Layer, needs: Needs) -> LayerGrads<CubeTensor> {
    let [b, t, _] = dims3(&chunk.input);
    let conn = layer.spec.topology.connectivity();
    let (n_in, n_out) = (conn.n_in, conn.n_out);
    let d_post = into_contiguous(chunk.d_post);
    let post = post_terms(
        into_contiguous(chunk.output),
        n_out,
        None,
        &layer.spec.lif,
        chunk.output_times,
    );
    let (times, o_pre) = input_times(chunk.input, chunk.input_times, n_in);
    let e = local_spsp(times, &o_pre, &post, layer, [b, t, n_in, n_out]);
    let (delta, coef) = local_coef(&e, &post.counts, d_post, layer);
    let weight = needs
        .weight
        .then(|| local_weight_grad(&e, coef, layer, conn.n_weights));
    let input = needs.input.then(|| {
        let d = PreError {
            delta,
            o_post: post.counts,
            o_pre,
        };
        local_pre_error(e, d, layer, n_in)
    });
    LayerGrads { weight, input }
}

/// `e [B, pairs]`: the S-PSP of every connected pair (S2–S3, §3.5.2) from the input spike
/// `times` and counts `o_pre` and the post terms (`dims`: `[B, T, n_in, n_out]`).
#[inline]
fn local_spsp(
    times: CubeTensor,
    o_pre: &CubeTensor,
    post: &PostTerms,
    layer: &Layer,
    [b, t, n_in, n_out]: [usize; 4],
) -> CubeTensor {
    let pairs = n_out * pairs_per_output(layer.spec.topology);
    let client = times.client.clone();
    let e = empty_like(&times, vec![b, pairs], DType::F32);
    let (count, dim) = elementwise(&client, b * pairs);
    local_spsp_kernel::launch(
        &client,
        count,
        dim,
        times.into_tensor_arg(),
        o_pre.clone().into_tensor_arg(),
        post.kernels.clone().into_tensor_arg(),
        post.counts.clone().into_tensor_arg(),
        e.clone().into_tensor_arg(),
        t as u32,
        n_in as u32,
        n_out as u32,
        SILENT_POST_SPSP,
        window(layer.spec.topology),
    );
    e
}

/// The side effect `s_i` (S9, S11), `δ = d / divisor` (`ν` for a convolution, `size²` for
/// pooling) and the weight coefficient `δ (1 + s)`: (`delta [B, n_out]`, `coef [B, n_out]`).
#[inline]
fn local_coef(
    e: &CubeTensor,
    o_post: &CubeTensor,
    d_post: CubeTensor,
    layer: &Layer,
) -> (CubeTensor, CubeTensor) {
    let [b, n_out] = [o_post.shape()[0], o_post.shape()[1]];
    let spec = layer.spec;
    let divisor = match spec.topology.error_scale() {
        ErrorScale::Threshold => spec.lif.threshold,
        ErrorScale::PoolArea(size) => (size * size) as f32,
    };
    let client = e.client.clone();
    let delta = empty_like(e, vec![b, n_out], DType::F32);
    let coef = empty_like(e, vec![b, n_out], DType::F32);
    let (count, dim) = elementwise(&client, b * n_out);
    local_coef_kernel::launch(
        &client,
        count,
        dim,
        e.clone().into_tensor_arg(),
        layer.weight.clone().into_tensor_arg(),
        o_post.clone().into_tensor_arg(),
        d_post.into_tensor_arg(),
        delta.clone().into_tensor_arg(),
        coef.clone().into_tensor_arg(),
        n_out as u32,
        spec.lif.threshold,
        divisor,
        SILENT_POST_SIDE_RATIO,
        window(spec.topology),
    );
    (delta, coef)
}

/// Each shared weight's gradient per sample, `Σ coef_i e_s` over its slots (S12 main term),
/// `[B, n_weights]`.
#[inline]
fn local_weight_grad(
    e: &CubeTensor,
    coef: CubeTensor,
    layer: &Layer,
    n_weights: usize,
) -> CubeTensor {
    let [b, n_out] = [coef.shape()[0], coef.shape()[1]];
    let client = e.client.clone();
    let partial = empty_like(e, vec![b, n_weights], DType::F32);
    local_weight_grad_kernel::launch(
        &client,
        CubeCount::Static(n_weights as u32, b as u32, 1),
        CubeDim::new_1d(GRAD_UNITS),
        e.clone().into_tensor_arg(),
        coef.into_tensor_arg(),
        partial.clone().into_tensor_arg(),
        n_out as u32,
        n_weights as u32,
        window(layer.spec.topology),
    );
    partial
}

/// The backpropagated error `Σ_i δ_i w ρ_ij` over each input's fanout (S10, S8), `[B, n_in]`.
#[inline]
fn local_pre_error(e: CubeTensor, d: PreError, layer: &Layer, n_in: usize) -> CubeTensor {
    let [b, n_out] = [d.delta.shape()[0], d.delta.shape()[1]];
    let client = e.client.clone();
    let d_pre = empty_like(&e, vec![b, n_in], DType::F32);
    local_pre_error_kernel::launch(
        &client,
        CubeCount::Static(n_in.div_ceil(PRE_NEURONS as usize) as u32, b as u32, 1),
        CubeDim::new_2d(PRE_NEURONS, PRE_SLICES),
        e.into_tensor_arg(),
        d.delta.into_tensor_arg(),
        d.o_post.into_tensor_arg(),
        d.o_pre.into_tensor_arg(),
        layer.weight.clone().into_tensor_arg(),
        d_pre.clone().into_tensor_arg(),
        n_in as u32,
        n_out as u32,
        window(layer.spec.topology),
    );
    d_pre
}
