//! Spiking layers with local, shared weights: convolution and sum pooling (spec §4).
//!
//! Both are described by a [`Connectivity`]: for every (output neuron, input neuron) pair that
//! is connected, the index of the shared weight that connects them. The forward adds, per input
//! spike, its weights to the outputs it reaches; the backward computes the S-PSP only for
//! connected pairs and sums the gradient of every shared weight over positions.

use crate::neuron::{LifPopulation, LifSpec};
use crate::rule::conv::ConvShape;
use crate::rule::dense::SampleGrad;
use crate::rule::terms;
use crate::rule::{LayerGrads, Needs};
use crate::spikes::SpikeRaster;
use crate::spsp::KernelTables;
use multiversion::multiversion;

/// Maps a `(output, input, weight)` triple to its bucket and the pair stored there.
type BucketKey = fn(&(u32, u32, u32)) -> (usize, (u32, u32));

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
    /// From `(output, input, weight index)` triples listed by ascending output, and for each
    /// output by ascending input. Counting sort keeps that order within every bucket.
    fn from_triples(
        n_in: usize,
        n_out: usize,
        n_weights: usize,
        triples: &[(u32, u32, u32)],
    ) -> Self {
        let bucket = |n: usize, key: BucketKey| {
            let mut start = vec![0u32; n + 1];
            for t in triples {
                start[key(t).0 + 1] += 1;
            }
            for k in 0..n {
                start[k + 1] += start[k];
            }
            let mut next = start.clone();
            let mut pairs = vec![(0u32, 0u32); triples.len()];
            for t in triples {
                let (b, pair) = key(t);
                pairs[next[b] as usize] = pair;
                next[b] += 1;
            }
            (start, pairs)
        };
        // fanout: per input, (output, weight) by ascending output; fanin: per output, (input,
        // weight) by ascending input (the order of the authors' sums).
        let (fanout_start, fanout) = bucket(n_in, |&(o, i, w)| (i as usize, (o, w)));
        let (fanin_start, fanin) = bucket(n_out, |&(o, i, w)| (o as usize, (i, w)));
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

/// Simulates one sample through a locally connected layer with shared `weights`: per step,
/// each input spike adds its weights to the outputs it reaches, and only neurons that have
/// received input are simulated (see [`LifPopulation`]).
#[multiversion(targets = "simd")]
pub fn forward_sample(
    input: &SpikeRaster,
    conn: &Connectivity,
    weights: &[f32],
    lif: &LifSpec,
) -> SpikeRaster {
    let steps = input.steps();
    let mut pop = LifPopulation::new(*lif, conn.n_out);
    let mut out = SpikeRaster::building(steps, conn.n_out);
    let mut fired = Vec::new();
    out.push_step(&[]);
    for t in 1..steps {
        for &j in input.at(t - 1) {
            for &(i, k) in conn.fanout(j as usize) {
                pop.add(i as usize, weights[k as usize]);
            }
        }
        fired.clear();
        pop.step(|i| fired.push(i as u32));
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

/// Backward of one sample (`args`: its trains and `d_post`) of a locally connected layer: adds
/// `δ_i (1+s_i) e_{i|j}` summed over the pairs sharing each weight to `out.weight` (when
/// `Some`), and writes `d_j = Σ_i δ_i w ρ_ij` into `out.input` (when `Some`).
#[multiversion(targets = "simd")]
pub fn backward_sample<'a>(
    args: &SampleGrad<'a>,
    conn: &Connectivity,
    weights: &[f32],
    lif: &LifSpec,
    scale: ErrorScale,
    out: LayerGrads<&mut [f32]>,
) {
    let (input, output, d_post) = (args.input, args.output, args.d_post);
    let LayerGrads {
        weight: grad,
        input: d_pre,
    } = out;
    let steps = input.steps();
    let post_times = output.times();
    let o_post: Vec<f32> = post_times.iter().map(|t| t.len() as f32).collect();
    let pre = input.by_neuron();
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
                *slot = terms::silent_post_spsp(pre.count(j as usize) > 0);
            }
            continue;
        }
        kernel.fill(0.0);
        tables.add_post_kernel(&post_times[i], &mut kernel, 1);
        for (slot, &(j, _)) in e[range].iter_mut().zip(conn.fanin(i)) {
            *slot = pre.of(j as usize).iter().map(|&t| kernel[t as usize]).sum();
        }
    }
    if let Some(grad) = grad {
        for i in 0..conn.n_out {
            let range = conn.fanin_start[i] as usize..conn.fanin_start[i + 1] as usize;
            let pairs = conn.fanin(i);
            let es = &e[range];
            let we = if o_post[i] > 0.0 {
                pairs
                    .iter()
                    .zip(es)
                    .map(|(&(_, k), &ev)| weights[k as usize] * ev)
                    .sum::<f32>()
            } else {
                0.0
            };
            let w_sum = if o_post[i] > 0.0 {
                0.0
            } else {
                pairs.iter().map(|&(_, k)| weights[k as usize]).sum::<f32>()
            };
            let s = terms::side_effect(o_post[i], we, w_sum, lif.threshold);
            let c = terms::weight_coefficient(delta[i], s, 1.0);
            if c != 0.0 {
                for (&(_, k), &ev) in pairs.iter().zip(es) {
                    grad[k as usize] += c * ev;
                }
            }
        }
    }
    if let Some(d_pre) = d_pre {
        d_pre.fill(0.0);
        let inv_o: Vec<f32> = (0..conn.n_in)
            .map(|j| 1.0 / pre.count(j).max(1) as f32)
            .collect();
        for i in 0..conn.n_out {
            if delta[i] == 0.0 {
                continue;
            }
            let range = conn.fanin_start[i] as usize..conn.fanin_start[i + 1] as usize;
            for (&(j, k), &ev) in conn.fanin(i).iter().zip(&e[range]) {
                let j = j as usize;
                let rho = if pre.count(j) > 0 {
                    terms::effect_ratio(ev, inv_o[j], o_post[i] > 0.0)
                } else {
                    1.0
                };
                d_pre[j] += delta[i] * weights[k as usize] * rho;
            }
        }
    }
}

/// The geometry of a locally connected layer (all sizes in neurons).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topology {
    /// Stride-1 unpadded convolution `[in_maps, height, width]` → `[out_maps, h−k+1, w−k+1]`.
    Conv(ConvShape),
    /// Non-overlapping sum pooling `[maps, height, width]` → `[maps, h/size, w/size]`.
    Pool {
        /// Maps.
        maps: usize,
        /// Input height.
        height: usize,
        /// Input width.
        width: usize,
        /// Window side.
        size: usize,
    },
}

impl Topology {
    /// Output shape `[maps, height, width]`.
    pub fn output_shape(&self) -> [usize; 3] {
        match *self {
            Topology::Conv(c) => [c.out_maps, c.height + 1 - c.kernel, c.width + 1 - c.kernel],
            Topology::Pool {
                maps,
                height,
                width,
                size,
            } => [maps, height / size, width / size],
        }
    }

    /// Input shape `[maps, height, width]`.
    pub fn input_shape(&self) -> [usize; 3] {
        match *self {
            Topology::Conv(c) => [c.in_maps, c.height, c.width],
            Topology::Pool {
                maps,
                height,
                width,
                ..
            } => [maps, height, width],
        }
    }

    /// The shape of a convolution (`None` for pooling).
    pub fn conv_shape(&self) -> Option<ConvShape> {
        match *self {
            Topology::Conv(c) => Some(c),
            Topology::Pool { .. } => None,
        }
    }

    /// Number of input neurons.
    pub fn n_in(&self) -> usize {
        self.input_shape().iter().product()
    }

    /// Number of output neurons.
    pub fn n_out(&self) -> usize {
        self.output_shape().iter().product()
    }

    /// How the error is scaled before it is backpropagated.
    pub fn error_scale(&self) -> ErrorScale {
        match *self {
            Topology::Conv(_) => ErrorScale::Threshold,
            Topology::Pool { size, .. } => ErrorScale::PoolArea(size),
        }
    }

    /// The connectivity (built once per topology and process, then shared).
    pub fn connectivity(&self) -> std::sync::Arc<Connectivity> {
        use std::collections::HashMap;
        use std::sync::{Arc, Mutex, OnceLock};
        static CACHE: OnceLock<Mutex<HashMap<Topology, Arc<Connectivity>>>> = OnceLock::new();
        let mut cache = CACHE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        cache
            .entry(*self)
            .or_insert_with(|| {
                Arc::new(match *self {
                    Topology::Conv(c) => {
                        Connectivity::conv(c.in_maps, c.height, c.width, c.out_maps, c.kernel)
                    }
                    Topology::Pool {
                        maps,
                        height,
                        width,
                        size,
                    } => Connectivity::pool(maps, height, width, size),
                })
            })
            .clone()
    }
}

/// A locally connected spiking layer: geometry and neurons.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LocalSpec {
    /// Geometry.
    pub topology: Topology,
    /// Neuron parameters (conv: `v > ν`; pooling: `v > ν − 1e-6`).
    pub lif: LifSpec,
}

/// Forward of a batch of rasters through a locally connected layer (convolutions through
/// [`super::conv`]).
pub fn local_forward_rasters(
    inputs: &[SpikeRaster],
    weights: &[f32],
    spec: &LocalSpec,
) -> Vec<SpikeRaster> {
    use rayon::prelude::*;
    if let Some(shape) = spec.topology.conv_shape() {
        let offset_major = shape.offset_major(weights);
        return inputs
            .par_iter()
            .with_max_len(1)
            .map(|r| super::conv::forward_sample(r, &shape, &offset_major, &spec.lif))
            .collect();
    }
    let conn = spec.topology.connectivity();
    inputs
        .par_iter()
        .with_max_len(1)
        .map(|r| forward_sample(r, &conn, weights, &spec.lif))
        .collect()
}

/// Backward of a batch through a locally connected layer: the shared-weight gradient summed
/// over positions and samples (when `need_grad`) and `∂E/∂o_pre [B][n_in]` (when `need_d_pre`).
pub fn local_backward_rasters(
    inputs: &[SpikeRaster],
    outputs: &[SpikeRaster],
    weights: &[f32],
    d_post: &[f32],
    spec: &LocalSpec,
    needs: Needs,
) -> LayerGrads<Vec<f32>> {
    use rayon::prelude::*;
    let (need_grad, need_d_pre) = (needs.weight, needs.input);
    let conn = spec.topology.connectivity();
    let (n_in, n_out, n_w) = (conn.n_in, conn.n_out, conn.n_weights);
    let scale = spec.topology.error_scale();
    let conv = spec.topology.conv_shape();
    let offset_major = conv.map(|c| c.offset_major(weights));
    let per_sample = |b: usize, grad: Option<&mut [f32]>, d: Option<&mut [f32]>| {
        let args = SampleGrad {
            input: &inputs[b],
            output: &outputs[b],
            d_post: &d_post[b * n_out..(b + 1) * n_out],
            label: None,
        };
        let out = LayerGrads {
            weight: grad,
            input: d,
        };
        match (&conv, &offset_major) {
            (Some(shape), Some(om)) => {
                super::conv::backward_sample(&args, shape, om, &spec.lif, out)
            }
            _ => backward_sample(&args, &conn, weights, &spec.lif, scale, out),
        }
    };
    let mut d_pre = need_d_pre.then(|| vec![0.0f32; inputs.len() * n_in]);
    // The convolution accumulates its gradient offset-major, padded to whole vectors.
    let grad_len = if need_grad {
        conv.map_or(n_w, |c| c.per_map() * c.lanes())
    } else {
        0
    };
    fn grad_of(g: &mut [f32]) -> Option<&mut [f32]> {
        (!g.is_empty()).then_some(g)
    }
    // One gradient per sample, in parallel, then summed in batch order: the same sums
    // whatever the number of threads.
    let sample = |b: usize, d: Option<&mut [f32]>| {
        let mut g = vec![0.0f32; grad_len];
        per_sample(b, grad_of(&mut g), d);
        g
    };
    let grads: Vec<Vec<f32>> = match d_pre.as_mut() {
        Some(d) => d
            .par_chunks_mut(n_in.max(1))
            .enumerate()
            .with_max_len(1)
            .map(|(b, d)| sample(b, Some(d)))
            .collect(),
        None => (0..inputs.len())
            .into_par_iter()
            .with_max_len(1)
            .map(|b| sample(b, None))
            .collect(),
    };
    let mut grad = vec![0.0f32; grad_len];
    for g in &grads {
        grad.iter_mut().zip(g).for_each(|(x, y)| *x += y);
    }
    let grad = match conv {
        Some(shape) if need_grad => shape.map_major(&grad),
        _ => grad,
    };
    LayerGrads {
        weight: need_grad.then_some(grad),
        input: d_pre,
    }
}
