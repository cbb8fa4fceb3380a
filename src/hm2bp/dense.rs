//! Spiking dense layer: event-driven forward simulation and the HM2-BP backward rule of one
//! sample (spec §1.1, §2.2, §3.2–3.5).
//!
//! Cost per sample: the forward adds one weight column per input spike; the backward adds one
//! post-kernel row per input spike to form `e` for the inputs that fired (`E = K · Sᵀ`
//! event by event), then works on the `active inputs × outputs` block only. Nothing is
//! quadratic in time.

use crate::hm2bp::output::{OutputRule, insert_label_spikes, lateral_factor};
use crate::neuron::{LifParams, LifPopulation};
use crate::spikes::SpikeRaster;
use crate::spsp::KernelTables;
use rayon::prelude::*;

/// S-PSP given to every (silent post, active pre) pair, so that silent neurons learn (§3.5.2).
pub const SILENT_POST_SPSP: f32 = 0.1;
/// Side ratio σ of a silent post neuron (S9).
pub const SILENT_POST_SIDE_RATIO: f32 = 0.5;

/// Everything that defines a spiking dense layer's dynamics and learning rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DenseSpec {
    /// Neuron parameters (threshold ν included).
    pub lif: LifParams,
    /// Output-layer extras (lateral inhibition, label-spike insertion); `None` for hidden layers.
    pub output: Option<OutputRule>,
    /// Use the effect ratio ρ = e/o_pre (S8) in the backpropagated error; `false`: ρ := 1.
    pub effect_ratio: bool,
}

/// Output neurons processed together: the weights from all inputs to one block
/// (`n_in × 256` floats, ~800 KB for MNIST) stay in the core's L2 cache through the time loop.
const OUTPUT_BLOCK: usize = 256;

/// Simulates one sample through the layer: one weight column added per input spike, then one
/// LIF step for all neurons. Without lateral inhibition the neurons are independent and are
/// simulated block by block.
pub fn forward_sample(
    input: &SpikeRaster,
    weights: &LayerWeights,
    spec: &DenseSpec,
) -> SpikeRaster {
    let n_out = weights.n_out;
    let steps = input.steps();
    let lateral = spec.output.map_or(0.0, |o| o.lateral_strength);
    let block = if lateral != 0.0 { n_out } else { OUTPUT_BLOCK };
    let mut fired_at: Vec<Vec<u32>> = vec![Vec::new(); steps];
    for lo in (0..n_out).step_by(block.max(1)) {
        let hi = (lo + block).min(n_out);
        let mut pop = LifPopulation::new(spec.lif, hi - lo);
        let mut current = vec![0.0f32; hi - lo];
        let mut fired = Vec::new();
        let mut prev_fired: Vec<u32> = Vec::new();
        for (t, fired_now) in fired_at.iter_mut().enumerate() {
            if t > 0 {
                current.fill(0.0);
                for &j in input.at(t - 1) {
                    for (c, &w) in current.iter_mut().zip(&weights.column(j as usize)[lo..hi]) {
                        *c += w;
                    }
                }
                if lateral != 0.0 && !prev_fired.is_empty() {
                    let total = prev_fired.len() as f32;
                    for (i, c) in current.iter_mut().enumerate() {
                        let own = if prev_fired.binary_search(&(i as u32)).is_ok() {
                            1.0
                        } else {
                            0.0
                        };
                        *c -= lateral * (total - own);
                    }
                }
            }
            fired.clear();
            pop.step(t, &current, &mut fired);
            fired_now.extend(fired.iter().map(|&n| n + lo as u32));
            std::mem::swap(&mut prev_fired, &mut fired);
        }
    }
    let mut out = SpikeRaster::building(steps, n_out);
    for fired in &fired_at {
        out.push_step(fired);
    }
    out
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

/// A layer's weights in the layouts the kernels read: transposed `[n_in][n_out]` (a column of
/// `W` per input neuron is contiguous) and the row sums `Σ_l w_il` (side effect of silent
/// neurons). Built once per batch.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    /// Input neurons.
    pub n_in: usize,
    /// Output neurons.
    pub n_out: usize,
    /// `W` transposed, `[n_in][n_out]`.
    pub transposed: Vec<f32>,
    /// `Σ_l w_il` per output neuron.
    pub row_sums: Vec<f32>,
}

impl LayerWeights {
    /// From a row-major `[n_out][n_in]` weight matrix.
    pub fn new(weight: &[f32], n_out: usize, n_in: usize) -> Self {
        Self {
            n_in,
            n_out,
            transposed: transpose(weight, n_out, n_in),
            row_sums: weight
                .chunks_exact(n_in.max(1))
                .map(|r| r.iter().sum())
                .collect(),
        }
    }

    /// Column `j` of `W` (the weights from input `j`).
    pub fn column(&self, j: usize) -> &[f32] {
        &self.transposed[j * self.n_out..(j + 1) * self.n_out]
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

/// Buffers of [`backward_sample`], kept per thread and reused from sample to sample (a
/// training step runs thousands of samples; fresh buffers cost page faults and zeroing).
#[derive(Default)]
struct BackwardScratch {
    /// Post kernels `K_i(t)`, time-major `[T][n_out]`.
    kernel: Vec<f32>,
    /// `e_{i|j}` for the inputs that fired, `[active][n_out]`.
    e: Vec<f32>,
    /// Row of `e` of each input neuron (`u32::MAX`: silent).
    row_of: Vec<u32>,
    /// Input neurons that fired, in row order.
    active: Vec<usize>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<BackwardScratch> = std::cell::RefCell::default();
}

/// HM2-BP backward of one sample: adds `δ_i (1+s_i) γ_i e_{i|j}` (S12 without the regulariser)
/// to `grad_t` (transposed, `[n_in][n_out]`) and, if `d_pre` is given, writes
/// `d_j = Σ_i δ_i w_ij ρ_ij` (S10, pre-update weights) into it. Every inner loop runs over the
/// output neurons, contiguously.
pub fn backward_sample(
    args: &SampleGrad<'_>,
    weights: &LayerWeights,
    spec: &DenseSpec,
    grad_t: &mut [f32],
    d_pre: Option<&mut [f32]>,
) -> SampleBackward {
    SCRATCH
        .with_borrow_mut(|scratch| backward_sample_in(args, weights, spec, grad_t, d_pre, scratch))
}

fn backward_sample_in(
    args: &SampleGrad<'_>,
    weights: &LayerWeights,
    spec: &DenseSpec,
    grad_t: &mut [f32],
    d_pre: Option<&mut [f32]>,
    scratch: &mut BackwardScratch,
) -> SampleBackward {
    let steps = args.input.steps();
    let n_out = weights.n_out;
    let nu = spec.lif.threshold;
    let mut post_times = args.output.times();

    let mut gamma = vec![1.0f32; n_out];
    let mut inserted = false;
    if let (Some(rule), Some(label)) = (spec.output, args.label) {
        gamma = lateral_factor(&post_times, label, rule.lateral_strength, &spec.lif);
        if label < n_out {
            inserted = insert_label_spikes(&mut post_times[label], steps, rule.label_spike_level);
        }
    }
    let o_post: Vec<f32> = post_times.iter().map(|t| t.len() as f32).collect();
    let o_pre = args.input.counts();

    // Post kernels, written time-major [T][n_out] (column i = neuron i).
    let tables = KernelTables::new(steps, &spec.lif);
    let kernel = &mut scratch.kernel;
    kernel.clear();
    kernel.resize(n_out * steps, 0.0);
    for (i, times) in post_times.iter().enumerate() {
        tables.add_post_kernel(times, &mut kernel[i..], n_out);
    }
    // e for the inputs that fired: rows [active][n_out], one kernel row added per input spike.
    let (row_of, active) = (&mut scratch.row_of, &mut scratch.active);
    row_of.clear();
    row_of.resize(o_pre.len(), u32::MAX);
    active.clear();
    for (j, &c) in o_pre.iter().enumerate() {
        if c > 0 {
            row_of[j] = active.len() as u32;
            active.push(j);
        }
    }
    let e = &mut scratch.e;
    e.clear();
    e.resize(active.len() * n_out, 0.0);
    for lo in (0..n_out).step_by(OUTPUT_BLOCK) {
        let hi = (lo + OUTPUT_BLOCK).min(n_out);
        for t in 1..steps {
            let k = &kernel[t * n_out + lo..t * n_out + hi];
            for &j in args.input.at(t) {
                let r = row_of[j as usize] as usize;
                for (x, &kv) in e[r * n_out + lo..r * n_out + hi].iter_mut().zip(k) {
                    *x += kv;
                }
            }
        }
    }
    let silent: Vec<usize> = (0..n_out).filter(|&i| o_post[i] == 0.0).collect();
    if !silent.is_empty() {
        for row in e.chunks_exact_mut(n_out.max(1)) {
            for &i in &silent {
                row[i] = SILENT_POST_SPSP;
            }
        }
    }

    // Side effect s_i (S9, S11): Σ_l w_il e_il / (o_i ν), or 0.5 Σ_l w_il / ν when silent.
    let mut we = vec![0.0f32; n_out];
    for (r, &j) in active.iter().enumerate() {
        let w = weights.column(j);
        let row = &e[r * n_out..(r + 1) * n_out];
        for ((acc, &wv), &ev) in we.iter_mut().zip(w).zip(row) {
            *acc += wv * ev;
        }
    }
    let side_effect: Vec<f32> = (0..n_out)
        .map(|i| {
            if o_post[i] > 0.0 {
                we[i] / (o_post[i] * nu)
            } else {
                SILENT_POST_SIDE_RATIO * weights.row_sums[i] / nu
            }
        })
        .collect();

    // Weight gradient (S12 main term), transposed.
    let delta: Vec<f32> = args.d_post.iter().map(|d| d / nu).collect();
    let coef: Vec<f32> = (0..n_out)
        .map(|i| delta[i] * (1.0 + side_effect[i]) * gamma[i])
        .collect();
    if coef.iter().any(|&c| c != 0.0) {
        for (r, &j) in active.iter().enumerate() {
            let row = &e[r * n_out..(r + 1) * n_out];
            let g = &mut grad_t[j * n_out..(j + 1) * n_out];
            for ((gv, &c), &ev) in g.iter_mut().zip(&coef).zip(row) {
                *gv += c * ev;
            }
        }
    }

    // Backpropagated error (S10) with ρ (S8): ρ_ij = e_ij / o_j when both fired, else 1.
    if let Some(d_pre) = d_pre {
        let fired: Vec<f32> = o_post
            .iter()
            .map(|&o| if o > 0.0 { 1.0 } else { 0.0 })
            .collect();
        for (j, d) in d_pre.iter_mut().enumerate() {
            let w = weights.column(j);
            *d = if spec.effect_ratio && o_pre[j] > 0 {
                let row = &e[row_of[j] as usize * n_out..(row_of[j] as usize + 1) * n_out];
                let inv_o = 1.0 / o_pre[j] as f32;
                (0..n_out)
                    .map(|i| {
                        let rho = fired[i] * row[i] * inv_o + (1.0 - fired[i]);
                        delta[i] * w[i] * rho
                    })
                    .sum()
            } else {
                delta.iter().zip(w).map(|(dl, wv)| dl * wv).sum()
            };
        }
    }

    SampleBackward {
        side_effect,
        gamma,
        label_spikes_inserted: inserted,
    }
}

/// Transposes a row-major `[rows][cols]` matrix: bands of `TILE` output rows in parallel,
/// each filled tile by tile so that reads and writes stay in cache.
pub fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const TILE: usize = 32;
    debug_assert_eq!(m.len(), rows * cols);
    let mut t: Vec<f32> = (0..m.len()).into_par_iter().map(|_| 0.0).collect();
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
