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
use crate::spsp::post_kernel;

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

/// Simulates one sample through the layer. `weight` is row-major `[n_out][n_in]`; `weight_t` is
/// its transpose `[n_in][n_out]` (the layout the event-driven sum reads).
pub fn forward_sample(
    input: &SpikeRaster,
    weight_t: &[f32],
    n_out: usize,
    spec: &DenseSpec,
) -> SpikeRaster {
    let steps = input.steps();
    let lateral = spec.output.map_or(0.0, |o| o.lateral_strength);
    let mut pop = LifPopulation::new(spec.lif, n_out);
    let mut out = SpikeRaster::building(steps, n_out);
    let mut current = vec![0.0f32; n_out];
    let mut fired = Vec::new();
    let mut prev_fired: Vec<u32> = Vec::new();
    for t in 0..steps {
        if t > 0 {
            current.fill(0.0);
            for &j in input.at(t - 1) {
                let col = &weight_t[j as usize * n_out..(j as usize + 1) * n_out];
                for (c, &w) in current.iter_mut().zip(col) {
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
        out.push_step(&fired);
        std::mem::swap(&mut prev_fired, &mut fired);
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

/// HM2-BP backward of one sample: adds `δ_i (1+s_i) γ_i e_{i|j}` (S12 without the regulariser)
/// to `grad` (row-major `[n_out][n_in]`) and, if `d_pre` is given, writes
/// `d_j = Σ_i δ_i w_ij ρ_ij` (S10, pre-update weights) into it.
pub fn backward_sample(
    args: &SampleGrad<'_>,
    weight: &[f32],
    spec: &DenseSpec,
    grad: &mut [f32],
    d_pre: Option<&mut [f32]>,
) -> SampleBackward {
    let steps = args.input.steps();
    let n_in = args.input.neurons();
    let n_out = args.output.neurons();
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

    // Post kernels, time-major [T][n_out].
    let mut kernel = vec![0.0f32; steps * n_out];
    for (i, times) in post_times.iter().enumerate() {
        if !times.is_empty() {
            post_kernel(times, steps, &spec.lif, &mut kernel[i..], n_out);
        }
    }
    // e for the inputs that fired: rows [active][n_out].
    let mut row_of = vec![u32::MAX; n_in];
    let mut active = Vec::new();
    for (j, &c) in o_pre.iter().enumerate() {
        if c > 0 {
            row_of[j] = active.len() as u32;
            active.push(j);
        }
    }
    let mut e = vec![0.0f32; active.len() * n_out];
    for t in 1..steps {
        let k = &kernel[t * n_out..(t + 1) * n_out];
        for &j in args.input.at(t) {
            let r = row_of[j as usize] as usize;
            for (x, &kv) in e[r * n_out..(r + 1) * n_out].iter_mut().zip(k) {
                *x += kv;
            }
        }
    }
    for (i, _) in o_post.iter().enumerate().filter(|(_, o)| **o == 0.0) {
        for r in 0..active.len() {
            e[r * n_out + i] = SILENT_POST_SPSP;
        }
    }

    // Side effect s_i (S9, S11).
    let side_effect: Vec<f32> = (0..n_out)
        .map(|i| {
            let w_row = &weight[i * n_in..(i + 1) * n_in];
            if o_post[i] > 0.0 {
                let we: f32 = active
                    .iter()
                    .enumerate()
                    .map(|(r, &j)| w_row[j] * e[r * n_out + i])
                    .sum();
                we / (o_post[i] * nu)
            } else {
                SILENT_POST_SIDE_RATIO * w_row.iter().sum::<f32>() / nu
            }
        })
        .collect();

    // Weight gradient (S12 main term).
    for i in 0..n_out {
        let delta = args.d_post[i] / nu;
        let c = delta * (1.0 + side_effect[i]) * gamma[i];
        if c == 0.0 {
            continue;
        }
        let g_row = &mut grad[i * n_in..(i + 1) * n_in];
        for (r, &j) in active.iter().enumerate() {
            g_row[j] += c * e[r * n_out + i];
        }
    }

    // Backpropagated error (S10) with ρ (S8).
    if let Some(d_pre) = d_pre {
        d_pre.fill(0.0);
        for i in 0..n_out {
            let delta = args.d_post[i] / nu;
            if delta == 0.0 {
                continue;
            }
            let w_row = &weight[i * n_in..(i + 1) * n_in];
            for (j, d) in d_pre.iter_mut().enumerate() {
                let rho = if spec.effect_ratio && o_post[i] > 0.0 && o_pre[j] > 0 {
                    e[row_of[j] as usize * n_out + i] / o_pre[j] as f32
                } else {
                    1.0
                };
                *d += delta * w_row[j] * rho;
            }
        }
    }

    SampleBackward {
        side_effect,
        gamma,
        label_spikes_inserted: inserted,
    }
}

/// Transposes a row-major `[rows][cols]` matrix.
pub fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}
