//! Spiking layers with local, shared weights: convolution and sum pooling (spec §4).
//!
//! Both are described by a [`Connectivity`]: for every (output neuron, input neuron) pair that
//! is connected, the index of the shared weight that connects them. The forward adds, per input
//! spike, its weights to the outputs it reaches; the backward computes the S-PSP only for
//! connected pairs and sums the gradient of every shared weight over positions.

use crate::hm2bp::dense::{SILENT_POST_SIDE_RATIO, SILENT_POST_SPSP};
use crate::neuron::{LifParams, LifPopulation};
use crate::spikes::SpikeRaster;
use crate::spsp::KernelTables;

/// Connected pairs of a layer, indexed both ways.
#[derive(Clone, Debug)]
pub struct Connectivity {
    /// Input neurons.
    pub n_in: usize,
    /// Output neurons.
    pub n_out: usize,
    /// Number of distinct (shared) weights.
    pub n_weights: usize,
    fanout_start: Vec<u32>,
    fanout: Vec<(u32, u32)>,
    fanin_start: Vec<u32>,
    fanin: Vec<(u32, u32)>,
}

impl Connectivity {
    /// From `(output, input, weight index)` triples.
    fn from_triples(
        n_in: usize,
        n_out: usize,
        n_weights: usize,
        triples: &[(u32, u32, u32)],
    ) -> Self {
        let csr = |n: usize, key: &dyn Fn(&(u32, u32, u32)) -> (u32, u32, u32)| {
            let mut sorted: Vec<(u32, u32, u32)> = triples.iter().map(key).collect();
            sorted.sort_unstable();
            let mut start = vec![0u32; n + 1];
            for &(a, _, _) in &sorted {
                start[a as usize + 1] += 1;
            }
            for k in 0..n {
                start[k + 1] += start[k];
            }
            let pairs = sorted.iter().map(|&(_, b, w)| (b, w)).collect();
            (start, pairs)
        };
        // fanout: per input, (output, weight) ascending by output; fanin: per output, (input,
        // weight) ascending by input (the order of the authors' sums).
        let (fanout_start, fanout) = csr(n_in, &|&(o, i, w)| (i, o, w));
        let (fanin_start, fanin) = csr(n_out, &|&(o, i, w)| (o, i, w));
        Self {
            n_in,
            n_out,
            n_weights,
            fanout_start,
            fanout,
            fanin_start,
            fanin,
        }
    }

    /// Stride-1, unpadded cross-correlation of `[in_maps, h, w]` with `out_maps` kernels of
    /// `k × k`: output `[out_maps, h−k+1, w−k+1]`, weight index `((o·in_maps + c)·k + p)·k + q`.
    pub fn conv(in_maps: usize, h: usize, w: usize, out_maps: usize, k: usize) -> Self {
        let (oh, ow) = (h + 1 - k, w + 1 - k);
        let mut t = Vec::with_capacity(out_maps * oh * ow * in_maps * k * k);
        for o in 0..out_maps {
            for x in 0..oh {
                for y in 0..ow {
                    let out = (o * oh + x) * ow + y;
                    for c in 0..in_maps {
                        for p in 0..k {
                            for q in 0..k {
                                let inp = (c * h + x + p) * w + y + q;
                                let wi = ((o * in_maps + c) * k + p) * k + q;
                                t.push((out as u32, inp as u32, wi as u32));
                            }
                        }
                    }
                }
            }
        }
        Self::from_triples(
            in_maps * h * w,
            out_maps * oh * ow,
            out_maps * in_maps * k * k,
            &t,
        )
    }

    /// Non-overlapping `size × size` sum pooling of `[maps, h, w]` (unit weights, index 0).
    pub fn pool(maps: usize, h: usize, w: usize, size: usize) -> Self {
        let (oh, ow) = (h / size, w / size);
        let mut t = Vec::with_capacity(maps * h * w);
        for c in 0..maps {
            for x in 0..oh {
                for y in 0..ow {
                    let out = (c * oh + x) * ow + y;
                    for p in 0..size {
                        for q in 0..size {
                            let inp = (c * h + x * size + p) * w + y * size + q;
                            t.push((out as u32, inp as u32, 0));
                        }
                    }
                }
            }
        }
        Self::from_triples(maps * h * w, maps * oh * ow, 1, &t)
    }

    fn fanout(&self, j: usize) -> &[(u32, u32)] {
        &self.fanout[self.fanout_start[j] as usize..self.fanout_start[j + 1] as usize]
    }

    fn fanin(&self, i: usize) -> &[(u32, u32)] {
        &self.fanin[self.fanin_start[i] as usize..self.fanin_start[i + 1] as usize]
    }
}

/// Simulates one sample through a locally connected layer with shared `weights`.
pub fn forward_sample(
    input: &SpikeRaster,
    conn: &Connectivity,
    weights: &[f32],
    lif: &LifParams,
) -> SpikeRaster {
    let steps = input.steps();
    let mut pop = LifPopulation::new(*lif, conn.n_out);
    let mut out = SpikeRaster::building(steps, conn.n_out);
    let mut current = vec![0.0f32; conn.n_out];
    let mut fired = Vec::new();
    for t in 0..steps {
        if t > 0 {
            current.fill(0.0);
            for &j in input.at(t - 1) {
                for &(i, k) in conn.fanout(j as usize) {
                    current[i as usize] += weights[k as usize];
                }
            }
        }
        fired.clear();
        pop.step(t, &current, &mut fired);
        out.push_step(&fired);
    }
    out
}

/// How the error reaching a locally connected layer is scaled before backpropagation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ErrorScale {
    /// `δ = d / ν` (conv layers, S7).
    Threshold,
    /// `δ = d / size²` (the authors' pooling backward, spec §4).
    PoolArea(usize),
}

/// Backward of one sample of a locally connected layer: adds `δ_i (1+s_i) e_{i|j}` summed over
/// the pairs sharing each weight to `grad` (when `Some`), and writes
/// `d_j = Σ_i δ_i w ρ_ij` into `d_pre` (when `Some`).
#[allow(clippy::too_many_arguments)]
pub fn backward_sample(
    input: &SpikeRaster,
    output: &SpikeRaster,
    conn: &Connectivity,
    weights: &[f32],
    lif: &LifParams,
    scale: ErrorScale,
    d_post: &[f32],
    grad: Option<&mut [f32]>,
    d_pre: Option<&mut [f32]>,
) {
    let steps = input.steps();
    let post_times = output.times();
    let o_post: Vec<f32> = post_times.iter().map(|t| t.len() as f32).collect();
    let pre_times = input.times();
    let o_pre: Vec<f32> = pre_times.iter().map(|t| t.len() as f32).collect();
    let divisor = match scale {
        ErrorScale::Threshold => lif.threshold,
        ErrorScale::PoolArea(size) => (size * size) as f32,
    };
    let delta: Vec<f32> = d_post.iter().map(|d| d / divisor).collect();
    let tables = KernelTables::new(steps, lif);
    let mut kernel = vec![0.0f32; steps];
    // e_{i|j} for every connected pair, in fanin order.
    let mut e = vec![0.0f32; conn.fanin.len()];
    for i in 0..conn.n_out {
        let range = conn.fanin_start[i] as usize..conn.fanin_start[i + 1] as usize;
        if o_post[i] == 0.0 {
            for (slot, &(j, _)) in e[range.clone()].iter_mut().zip(conn.fanin(i)) {
                *slot = if o_pre[j as usize] > 0.0 {
                    SILENT_POST_SPSP
                } else {
                    0.0
                };
            }
            continue;
        }
        kernel.fill(0.0);
        tables.add_post_kernel(&post_times[i], &mut kernel, 1);
        for (slot, &(j, _)) in e[range].iter_mut().zip(conn.fanin(i)) {
            *slot = pre_times[j as usize]
                .iter()
                .map(|&t| kernel[t as usize])
                .sum();
        }
    }
    if let Some(grad) = grad {
        for i in 0..conn.n_out {
            let range = conn.fanin_start[i] as usize..conn.fanin_start[i + 1] as usize;
            let pairs = conn.fanin(i);
            let es = &e[range];
            let s = if o_post[i] > 0.0 {
                pairs
                    .iter()
                    .zip(es)
                    .map(|(&(_, k), &ev)| weights[k as usize] * ev)
                    .sum::<f32>()
                    / (o_post[i] * lif.threshold)
            } else {
                SILENT_POST_SIDE_RATIO
                    * pairs.iter().map(|&(_, k)| weights[k as usize]).sum::<f32>()
                    / lif.threshold
            };
            let c = delta[i] * (1.0 + s);
            if c != 0.0 {
                for (&(_, k), &ev) in pairs.iter().zip(es) {
                    grad[k as usize] += c * ev;
                }
            }
        }
    }
    if let Some(d_pre) = d_pre {
        d_pre.fill(0.0);
        for i in 0..conn.n_out {
            if delta[i] == 0.0 {
                continue;
            }
            let range = conn.fanin_start[i] as usize..conn.fanin_start[i + 1] as usize;
            for (&(j, k), &ev) in conn.fanin(i).iter().zip(&e[range]) {
                let j = j as usize;
                let rho = if o_post[i] > 0.0 && o_pre[j] > 0.0 {
                    ev / o_pre[j]
                } else {
                    1.0
                };
                d_pre[j] += delta[i] * weights[k as usize] * rho;
            }
        }
    }
}
