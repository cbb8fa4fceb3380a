//! Spiking dense layer: event-driven forward simulation and the HM2-BP backward rule of one
//! sample (spec §1.1, §2.2, §3.2–3.5).
//!
//! Cost per sample: the forward adds one weight column per input spike; the backward adds one
//! post-kernel row per input spike to form `e` for the inputs that fired (`E = K · Sᵀ`
//! event by event), then works on the `active inputs × outputs` block only. Nothing is
//! quadratic in time.

use bytemuck::cast_slice;
use multiversion::multiversion;
use rayon::prelude::*;

use crate::neuron::{LifLanes, LifPopulation, LifSpec, LifStep};
use crate::rule::output::{OutputRule, insert_label_spikes, lateral_factor};
use crate::rule::terms;
use crate::simd::{F32x8, LANES};
use crate::spikes::{NeuronTimes, SpikeRaster};
use crate::spsp::{KernelTables, sum_kernel_rows};

/// Everything that defines a spiking dense layer's dynamics and learning rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DenseSpec {
    /// Neuron parameters (threshold ν included).
    pub lif: LifSpec,
    /// Output-layer extras (lateral inhibition, label-spike insertion); `None` for hidden layers.
    pub output: Option<OutputRule>,
    /// Use the effect ratio ρ = e/o_pre (S8) in the backpropagated error; `false`: ρ := 1.
    pub effect_ratio: bool,
}

/// Output neurons whose S-PSP rows are formed together in the backward pass: their post
/// kernels (`T × 64` floats, 100 KB at T = 400) stay in L2 while every input spike adds one.
const SPSP_BLOCK: usize = 64;

/// Groups of [`LANES`] output neurons simulated together in the forward pass (layers without
/// lateral inhibition): their weights from all inputs (`n_in × 64` floats, 200 KB for MNIST,
/// stored contiguously) stay in the core's L2 cache through the time loop, their currents in
/// registers and their state in L1. The last neurons of a layer that do not fill a block are
/// simulated group by group.
const BLOCK_GROUPS: usize = 8;

/// Simulates one sample through the layer, block of output neurons by block (see
/// `forward_block`). With lateral inhibition the block is the whole layer.
#[multiversion(targets = "simd")]
pub fn forward_sample(
    input: &SpikeRaster,
    weights: &LayerWeights,
    spec: &DenseSpec,
) -> SpikeRaster {
    let n_out = weights.n_out;
    let steps = input.steps();
    let lateral = spec.output.map_or(0.0, |o| o.lateral_strength);
    let mut inhibition = Vec::new();
    if lateral != 0.0 {
        let mut pop = LifPopulation::new(spec.lif, n_out);
        let mut out = SpikeRaster::building(steps, n_out);
        let mut prev_fired: Vec<u32> = Vec::new();
        let mut fired: Vec<u32> = Vec::new();
        out.push_step(&[]);
        for t in 1..steps {
            for &j in input.at(t - 1) {
                for (lo, w) in weights.column_blocks(j as usize) {
                    pop.add_slice(lo, w);
                }
            }
            if !prev_fired.is_empty() {
                // −strength · (spikes of the other neurons at t − 1).
                let total = prev_fired.len() as f32;
                inhibition.clear();
                inhibition.extend((0..n_out).map(|i| {
                    let own = f32::from(u8::from(prev_fired.binary_search(&(i as u32)).is_ok()));
                    -(lateral * (total - own))
                }));
                pop.add_all(&inhibition);
            }
            fired.clear();
            pop.step(|i| fired.push(i as u32));
            out.push_step(&fired);
            std::mem::swap(&mut prev_fired, &mut fired);
        }
        return out;
    }
    let step = LifStep::new(&spec.lif);
    let mut events: Vec<(u32, u32)> = Vec::new();
    for block in &weights.blocks {
        let w = &weights.blocked[block.at..block.at + weights.n_in * block.groups];
        match block.groups {
            BLOCK_GROUPS => {
                forward_block::<BLOCK_GROUPS>(input, w, block.lo, n_out, &step, &mut events)
            }
            _ => forward_block::<1>(input, w, block.lo, n_out, &step, &mut events),
        }
    }
    SpikeRaster::from_events(steps, n_out, &events)
}

/// Simulates `G` groups of [`LANES`] output neurons from `lo` on (weights `[n_in][G]`
/// vectors), appending their `(step, neuron)` spikes to `events`. Per time step the currents
/// (one weight column added per input spike, in ascending input order from `0`, as the
/// authors' loop sums) stay in registers and go straight into the LIF update. The block is
/// at rest, and skipped exactly, until its first input spike.
#[inline(always)]
fn forward_block<const G: usize>(
    input: &SpikeRaster,
    weights: &[F32x8],
    lo: usize,
    n_out: usize,
    step: &LifStep,
    events: &mut Vec<(u32, u32)>,
) {
    let steps = input.steps();
    let Some(first) = (1..steps).find(|&t| !input.at(t - 1).is_empty()) else {
        return;
    };
    let mut state = [LifLanes::default(); G];
    for t in first..steps {
        let mut current = [F32x8::ZERO; G];
        for &j in input.at(t - 1) {
            let column: &[F32x8; G] = weights[j as usize * G..(j as usize + 1) * G]
                .try_into()
                .expect("G groups per column");
            for (c, &w) in current.iter_mut().zip(column) {
                *c += w;
            }
        }
        for (g, (s, &c)) in state.iter_mut().zip(&current).enumerate() {
            let mut fired = step.update(s, c);
            while fired != 0 {
                let i = lo + g * LANES + fired.trailing_zeros() as usize;
                fired &= fired - 1;
                // Padding lanes past the layer receive no input; never report them.
                if i < n_out {
                    events.push((t as u32, i as u32));
                }
            }
        }
    }
}

/// What the backward rule produces for one sample, beyond the weight gradient.
#[derive(Clone, Debug, Default)]
pub struct SampleBackward {
    /// Side-effect sums `s_i` (S11).
    pub side_effect: Vec<f32>,
    /// Lateral factors `γ_i` (1 for hidden layers).
    pub gamma: Vec<f32>,
    /// Whether label spikes were inserted.
    pub label_spikes_inserted: bool,
}

/// A layer's weights in the layout the kernels read — per block of output neurons, the
/// column of `W` of each input neuron is contiguous — and the row sums `Σ_l w_il` (side effect
/// of silent neurons). Built once per training step.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    /// Input neurons.
    pub n_in: usize,
    /// Output neurons.
    pub n_out: usize,
    /// `Σ_l w_il` per output neuron.
    pub row_sums: Vec<f32>,
    /// `W` transposed per forward block, `[block][n_in][groups]` vectors of [`LANES`] output
    /// neurons (the last group of the layer padded with zeros): one block's weights are
    /// contiguous, so they stay in L2 without cache-set conflicts.
    blocked: Vec<F32x8>,
    /// The forward blocks, in ascending neuron order.
    blocks: Vec<ForwardBlock>,
}

/// Output neurons `lo..lo + groups · LANES` of a layer, simulated together in the forward
/// pass, with their weights at `blocked[at..at + n_in · groups]`.
#[derive(Clone, Copy, Debug)]
struct ForwardBlock {
    lo: usize,
    groups: usize,
    at: usize,
}

impl LayerWeights {
    /// From a row-major `[n_out][n_in]` weight matrix.
    pub fn new(weight: &[f32], n_out: usize, n_in: usize) -> Self {
        let full = n_out / (BLOCK_GROUPS * LANES);
        let tail = (n_out - full * BLOCK_GROUPS * LANES).div_ceil(LANES);
        let blocks: Vec<ForwardBlock> = (0..full)
            .map(|b| (b * BLOCK_GROUPS * LANES, BLOCK_GROUPS))
            .chain((0..tail).map(|g| ((full * BLOCK_GROUPS + g) * LANES, 1)))
            .scan(0, |at, (lo, groups)| {
                let block = ForwardBlock {
                    lo,
                    groups,
                    at: *at,
                };
                *at += n_in * groups;
                Some(block)
            })
            .collect();
        // Each block's region of `blocked` is filled on its own thread, and its row sums
        // taken from it (every row summed in ascending input order, 8 rows per vector).
        let mut blocked = vec![F32x8::ZERO; n_in * n_out.div_ceil(LANES)];
        let mut regions = Vec::with_capacity(blocks.len());
        let mut rest = blocked.as_mut_slice();
        for block in &blocks {
            let (region, tail) = rest.split_at_mut(n_in * block.groups);
            regions.push((block, region));
            rest = tail;
        }
        let sums: Vec<F32x8> = regions
            .into_par_iter()
            .flat_map_iter(|(block, region)| {
                (0..block.groups)
                    .map(move |g| {
                        let lo = block.lo + g * LANES;
                        let rows: [&[f32]; LANES] = std::array::from_fn(|k| {
                            let i = lo + k;
                            if i < n_out {
                                &weight[i * n_in..(i + 1) * n_in]
                            } else {
                                &[]
                            }
                        });
                        let mut sum = F32x8::splat(-0.0);
                        for j in 0..n_in {
                            let column = F32x8::from(std::array::from_fn::<f32, LANES, _>(|k| {
                                rows[k].get(j).copied().unwrap_or(0.0)
                            }));
                            region[j * block.groups + g] = column;
                            sum += column;
                        }
                        sum
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut row_sums: Vec<f32> = sums.iter().flat_map(|s| s.to_array()).collect();
        row_sums.truncate(n_out);
        Self {
            n_in,
            n_out,
            row_sums,
            blocked,
            blocks,
        }
    }

    /// The column of `W` of input `j` (the weights from input `j`), block by block: each
    /// block's first output neuron and its weights.
    pub fn column_blocks(&self, j: usize) -> impl Iterator<Item = (usize, &[f32])> {
        self.blocks.iter().map(move |b| {
            let lanes = b.groups * LANES;
            let width = lanes.min(self.n_out - b.lo);
            let at = b.at + j * b.groups;
            let column: &[f32] = cast_slice(&self.blocked[at..at + b.groups]);
            (b.lo, &column[..width])
        })
    }
}

/// Inputs of the backward rule of one sample.
pub struct SampleGrad<'a> {
    /// Input (pre) raster.
    pub input: &'a SpikeRaster,
    /// Output (post) raster as the forward produced it.
    pub output: &'a SpikeRaster,
    /// `∂E/∂o` of every output neuron (`d_post`).
    pub d_post: &'a [f32],
    /// Class label, needed by the output rule.
    pub label: Option<usize>,
}

/// Buffers of [`sample_rows`], kept per thread and reused from sample to sample (a training
/// step runs thousands of samples; fresh buffers cost page faults and zeroing).
#[derive(Default)]
struct BackwardScratch {
    /// Post kernels `K_i(t)` of one block of output neurons, time-major `[T][block]`.
    kernel: Vec<f32>,
    /// Input neurons that fired, in row order.
    active: Vec<usize>,
    /// Kernel tables of the last layer seen.
    tables: Option<KernelTables>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<BackwardScratch> = std::cell::RefCell::default();
}

/// What one sample's backward leaves for the weight gradient: the S-PSP rows `e_{·|j}` of
/// the inputs that fired and the coefficients `δ_i (1+s_i) γ_i` of the outputs.
pub struct SampleRows {
    /// `e_{i|j}` for the inputs that fired, `[active][n_out]`.
    e: Vec<f32>,
    /// Row of `e` of each input neuron (`u32::MAX`: silent).
    row_of: Vec<u32>,
    /// `δ_i (1+s_i) γ_i` per output neuron; `None` when all are 0.
    coef: Option<Vec<f32>>,
    /// Side effects, lateral factors, label spikes.
    pub result: SampleBackward,
}

impl SampleRows {
    /// The buffer of its rows, for the next sample's [`sample_rows`].
    pub fn into_buffer(self) -> Vec<f32> {
        self.e
    }

    /// Adds this sample's `δ_i (1+s_i) γ_i e_{i|j}` (S12 main term) to the rows
    /// `grad_t[j − inputs.start]` (transposed gradient, `[n_in][n_out]`) of the inputs `j` in
    /// `inputs`.
    pub fn add_weight_grad(&self, inputs: std::ops::Range<usize>, grad_t: &mut [f32]) {
        if let Some(coef) = &self.coef {
            add_scaled_rows(coef, &self.e, &self.row_of[inputs], grad_t);
        }
    }
}

/// `grad_t[n] += coef ⊙ e[row_of[n]]` (rows of `coef.len()`) for every `n` whose row is
/// not `u32::MAX`.
#[multiversion(targets = "simd")]
fn add_scaled_rows(coef: &[f32], e: &[f32], row_of: &[u32], grad_t: &mut [f32]) {
    let n_out = coef.len();
    for (&r, g) in row_of.iter().zip(grad_t.chunks_exact_mut(n_out.max(1))) {
        if r == u32::MAX {
            continue;
        }
        let row = &e[r as usize * n_out..(r as usize + 1) * n_out];
        for ((gv, &c), &ev) in g.iter_mut().zip(coef).zip(row) {
            *gv += c * ev;
        }
    }
}

/// HM2-BP backward of one sample: adds `δ_i (1+s_i) γ_i e_{i|j}` (S12 without the regulariser)
/// to `grad_t` (transposed, `[n_in][n_out]`) and, if `d_pre` is given, writes
/// `d_j = Σ_i δ_i w_ij ρ_ij` (S10, pre-update weights) into it.
pub fn backward_sample(
    args: &SampleGrad<'_>,
    weights: &LayerWeights,
    spec: &DenseSpec,
    grad_t: &mut [f32],
    d_pre: Option<&mut [f32]>,
) -> SampleBackward {
    let rows = sample_rows(args, weights, spec, d_pre, Vec::new());
    rows.add_weight_grad(0..weights.n_in, grad_t);
    rows.result
}

/// HM2-BP backward of one sample up to the weight gradient: its S-PSP rows and coefficients
/// (added to a gradient by [`SampleRows::add_weight_grad`]) and, if `d_pre` is given,
/// `d_j = Σ_i δ_i w_ij ρ_ij` (S10, pre-update weights) written into it. The rows go to
/// `buffer` (reused from an earlier sample: no fresh pages). Every inner loop runs over the
/// output neurons, contiguously.
// The lifetime is named because `multiversion` cannot copy a function with `'_`.
#[multiversion(targets = "simd")]
pub fn sample_rows<'a>(
    args: &SampleGrad<'a>,
    weights: &LayerWeights,
    spec: &DenseSpec,
    d_pre: Option<&mut [f32]>,
    buffer: Vec<f32>,
) -> SampleRows {
    // Taken out of (and put back into) the thread's slot rather than borrowed in a closure,
    // so that the body is this function's, compiled per instruction set.
    let mut scratch = SCRATCH.take();
    let mut e = buffer;
    let n_out = weights.n_out;
    let nu = spec.lif.threshold;
    let (post_times, gamma, inserted) = lateral_factors_and_label_spikes(args, spec, n_out);
    let o_post: Vec<f32> = post_times.iter().map(|t| t.len() as f32).collect();
    let pre = args.input.by_neuron();
    let row_of = active_inputs(&pre, weights.n_in, &mut scratch.active);
    let steps = args.input.steps();
    spsp_rows(&mut e, &mut scratch, &post_times, &pre, spec, steps, n_out);
    set_silent_post_spsp(&mut e, &o_post, n_out);
    let side_effect = side_effects(&e, &scratch.active, weights, &o_post, nu);

    // Coefficients of the weight gradient (S12 main term).
    let delta: Vec<f32> = args.d_post.iter().map(|d| d / nu).collect();
    let coef: Vec<f32> = (0..n_out)
        .map(|i| terms::weight_coefficient(delta[i], side_effect[i], gamma[i]))
        .collect();
    let coef = coef.iter().any(|&c| c != 0.0).then_some(coef);

    if let Some(d_pre) = d_pre {
        let error = Backpropagation {
            e: &e,
            row_of: &row_of,
            weights,
            delta: &delta,
            o_post: &o_post,
            effect_ratio: spec.effect_ratio,
        };
        error.d_pre(&pre, d_pre);
    }

    SCRATCH.set(scratch);
    SampleRows {
        e,
        row_of,
        coef,
        result: SampleBackward {
            side_effect,
            gamma,
            label_spikes_inserted: inserted,
        },
    }
}

/// The output times as the rule sees them, the lateral factors `γ_i` and whether label spikes
/// were inserted: an output layer with a label gets its `γ` and a silent label neuron's
/// inserted spikes (spec §3.5.1–3.5.2); a hidden layer keeps its times and `γ = 1`.
#[inline(always)]
fn lateral_factors_and_label_spikes(
    args: &SampleGrad<'_>,
    spec: &DenseSpec,
    n_out: usize,
) -> (Vec<Vec<u32>>, Vec<f32>, bool) {
    let steps = args.input.steps();
    let mut post_times = args.output.times();
    let mut gamma = vec![1.0f32; n_out];
    let mut inserted = false;
    if let (Some(rule), Some(label)) = (spec.output, args.label) {
        gamma = lateral_factor(&post_times, label, rule.lateral_strength, &spec.lif);
        if label < n_out {
            inserted = insert_label_spikes(&mut post_times[label], steps, rule.label_spike_level);
        }
    }
    (post_times, gamma, inserted)
}

/// The inputs that fired, in ascending order, into `active`; returns the row of `e` of each
/// input neuron (`u32::MAX`: silent).
#[inline(always)]
fn active_inputs(pre: &NeuronTimes, n_in: usize, active: &mut Vec<usize>) -> Vec<u32> {
    let mut row_of = vec![u32::MAX; n_in];
    active.clear();
    for (j, row) in row_of.iter_mut().enumerate() {
        if pre.count(j) > 0 {
            *row = active.len() as u32;
            active.push(j);
        }
    }
    row_of
}

/// The S-PSPs `e_{i|j}` for the inputs that fired (`scratch.active`): rows `[active][n_out]`
/// into `e`. Per block of output neurons: their post kernels K (time-major), then each active
/// input's row `e_j = Σ_{t ∈ spikes(j)} K(t)`, summed in ascending t.
#[inline(always)]
fn spsp_rows(
    e: &mut Vec<f32>,
    scratch: &mut BackwardScratch,
    post_times: &[Vec<u32>],
    pre: &NeuronTimes,
    spec: &DenseSpec,
    steps: usize,
    n_out: usize,
) {
    let active = &scratch.active;
    e.clear();
    e.resize(active.len() * n_out, 0.0);
    let tables = match scratch.tables.take() {
        Some(t) if t.fits(steps, &spec.lif) => t,
        _ => KernelTables::new(steps, &spec.lif),
    };
    let kernel = &mut scratch.kernel;
    for lo in (0..n_out).step_by(SPSP_BLOCK) {
        let hi = (lo + SPSP_BLOCK).min(n_out);
        let width = hi - lo;
        kernel.clear();
        kernel.resize(steps * width, 0.0);
        for (k, times) in post_times[lo..hi].iter().enumerate() {
            tables.add_post_kernel(times, &mut kernel[k..], width);
        }
        for (r, &j) in active.iter().enumerate() {
            sum_kernel_rows(
                kernel,
                width,
                pre.of(j),
                &mut e[r * n_out + lo..r * n_out + hi],
            );
        }
    }
    scratch.tables = Some(tables);
}

/// The S-PSP of a silent output neuron (`o_i = 0`) from every input that fired.
#[inline(always)]
fn set_silent_post_spsp(e: &mut [f32], o_post: &[f32], n_out: usize) {
    let silent: Vec<usize> = (0..n_out).filter(|&i| o_post[i] == 0.0).collect();
    if !silent.is_empty() {
        for row in e.chunks_exact_mut(n_out.max(1)) {
            for &i in &silent {
                row[i] = terms::silent_post_spsp(true);
            }
        }
    }
}

/// The side effects `s_i` (S9, S11) from `Σ_l w_il e_il` over the inputs that fired.
#[inline(always)]
fn side_effects(
    e: &[f32],
    active: &[usize],
    weights: &LayerWeights,
    o_post: &[f32],
    nu: f32,
) -> Vec<f32> {
    let n_out = weights.n_out;
    let mut we = vec![0.0f32; n_out];
    for (r, &j) in active.iter().enumerate() {
        let row = &e[r * n_out..(r + 1) * n_out];
        for (lo, w) in weights.column_blocks(j) {
            for ((acc, &wv), &ev) in we[lo..].iter_mut().zip(w).zip(&row[lo..]) {
                *acc += wv * ev;
            }
        }
    }
    (0..n_out)
        .map(|i| terms::side_effect(o_post[i], we[i], weights.row_sums[i], nu))
        .collect()
}

/// What the backpropagated error `d_j` of the inputs is computed from.
struct Backpropagation<'e> {
    /// S-PSP rows of the inputs that fired.
    e: &'e [f32],
    /// Row of `e` of each input (`u32::MAX`: silent).
    row_of: &'e [u32],
    weights: &'e LayerWeights,
    /// `δ_i = d_i / ν`.
    delta: &'e [f32],
    o_post: &'e [f32],
    effect_ratio: bool,
}

impl Backpropagation<'_> {
    /// `d_j = Σ_i δ_i w_ij ρ_ij` (S10) into `d_pre`, with the effect ratio ρ (S8) when on.
    #[inline(always)]
    fn d_pre(&self, pre: &NeuronTimes, d_pre: &mut [f32]) {
        let n_out = self.weights.n_out;
        let post_fired: Vec<bool> = self.o_post.iter().map(|&o| o > 0.0).collect();
        for (j, d) in d_pre.iter_mut().enumerate() {
            let o_pre = pre.count(j);
            let ratio = (self.effect_ratio && o_pre > 0).then(|| {
                let r = self.row_of[j] as usize;
                (&self.e[r * n_out..(r + 1) * n_out], 1.0 / o_pre as f32)
            });
            // Σ_i in ascending i, as one sum over the whole column.
            let mut sum = -0.0f32;
            for (lo, w) in self.weights.column_blocks(j) {
                for (k, &wv) in w.iter().enumerate() {
                    let i = lo + k;
                    sum += match ratio {
                        Some((row, inv_o)) => {
                            self.delta[i] * wv * terms::effect_ratio(row[i], inv_o, post_fired[i])
                        }
                        None => self.delta[i] * wv,
                    };
                }
            }
            *d = sum;
        }
    }
}

/// Transposes a row-major `[rows][cols]` matrix: bands of `TILE` output rows in parallel,
/// each filled tile by tile so that reads and writes stay in cache.
pub fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const TILE: usize = 32;
    debug_assert_eq!(m.len(), rows * cols);
    let mut t = vec![0.0f32; m.len()];
    t.par_chunks_mut((TILE * rows).max(1))
        .enumerate()
        .for_each(|(band, out)| {
            let c0 = band * TILE;
            for r0 in (0..rows).step_by(TILE) {
                let r1 = (r0 + TILE).min(rows);
                for (dc, out_row) in out.chunks_exact_mut(rows).enumerate() {
                    let c = c0 + dc;
                    for (r, o) in (r0..r1).zip(&mut out_row[r0..r1]) {
                        *o = m[r * cols + c];
                    }
                }
            }
        });
    t
}
