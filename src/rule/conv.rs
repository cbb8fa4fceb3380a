//! A spiking convolution's forward and backward passes written as convolutions: neurons are
//! held position-major (`[x][y][map]`) and the kernels offset-major (`[in_map][p][q][map]`),
//! so that every per-pair operation of [`super::local`] (which these are tested against)
//! becomes a vector operation over the output maps at one position.
//!
//! - Forward: one input spike adds, per kernel offset, the contiguous weights of all output
//!   maps at one position. Every neuron still sums its inputs in ascending input order, as the
//!   authors' loop does, so the spike trains are the same bit for bit.
//! - Backward: per output position, the post kernels of its maps (time-major) are summed at
//!   each input's spike times into `e` rows of all maps at once; side effect, weight gradient
//!   and backpropagated error follow per row. The weight gradient is summed in the same order
//!   as the per-pair version (bit for bit); `∂E/∂o_pre` sums its terms position by position
//!   instead of map by map (equal up to rounding).

use crate::neuron::{LifPopulation, LifSpec};
use crate::rule::dense::SampleGrad;
use crate::rule::{LayerGrads, terms};
use crate::simd::LANES;
use crate::spikes::{NeuronTimes, SpikeRaster};
use crate::spsp::{KernelTables, sum_kernel_rows};
use multiversion::multiversion;

/// A stride-1 unpadded convolution `[in_maps, height, width]` → `[out_maps, h−k+1, w−k+1]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvShape {
    /// Input maps.
    pub in_maps: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Output maps.
    pub out_maps: usize,
    /// Kernel side.
    pub kernel: usize,
}

impl ConvShape {
    fn out_hw(&self) -> (usize, usize) {
        (self.height + 1 - self.kernel, self.width + 1 - self.kernel)
    }

    /// Weights per output map (`in_maps · k²`).
    pub fn per_map(&self) -> usize {
        self.in_maps * self.kernel * self.kernel
    }

    /// The output maps rounded up to whole vectors of [`LANES`]: the stride of every
    /// offset-major and position-major array (the padding maps have zero weights, receive no
    /// input and are never reported).
    pub fn lanes(&self) -> usize {
        self.out_maps.next_multiple_of(LANES)
    }

    /// The gradient accumulated offset-major (`[in_maps · k²][lanes]`), back in the kernels'
    /// layout `[out_maps][in_maps · k²]`.
    pub fn map_major(&self, offset_major: &[f32]) -> Vec<f32> {
        let (per_map, lanes) = (self.per_map(), self.lanes());
        let mut out = vec![0.0f32; per_map * self.out_maps];
        for r in 0..per_map {
            for o in 0..self.out_maps {
                out[o * per_map + r] = offset_major[r * lanes + o];
            }
        }
        out
    }

    /// The kernels `[out_maps][in_maps][k][k]` rearranged as `[in_maps][k][k][lanes]`: the
    /// weights of one (input map, offset) to every output map are contiguous (and padded
    /// with zeros to [`ConvShape::lanes`]).
    pub fn offset_major(&self, weights: &[f32]) -> Vec<f32> {
        let (per_map, lanes) = (self.per_map(), self.lanes());
        let mut out = vec![0.0f32; per_map * lanes];
        for o in 0..self.out_maps {
            for r in 0..per_map {
                out[r * lanes + o] = weights[o * per_map + r];
            }
        }
        out
    }
}

/// Simulates one sample through the convolution with offset-major weights (see
/// [`ConvShape::offset_major`]); returns the output raster with channel-major neuron ids
/// (`(map · oh + x) · ow + y`).
#[multiversion(targets = "simd")]
pub fn forward_sample(
    input: &SpikeRaster,
    shape: &ConvShape,
    offset_major: &[f32],
    lif: &LifSpec,
) -> SpikeRaster {
    let (oh, ow) = shape.out_hw();
    let (k, maps, lanes) = (shape.kernel, shape.out_maps, shape.lanes());
    let steps = input.steps();
    let mut pop = LifPopulation::new(*lif, lanes * oh * ow);
    let mut out = SpikeRaster::building(steps, maps * oh * ow);
    let mut fired = Vec::new();
    out.push_step(&[]);
    for t in 1..steps {
        for &j in input.at(t - 1) {
            let j = j as usize;
            let (c, x, y) = (
                j / (shape.height * shape.width),
                j / shape.width % shape.height,
                j % shape.width,
            );
            // Outputs (x − p, y − q) for the offsets that keep them inside the map.
            for p in x.saturating_sub(oh - 1)..=x.min(k - 1) {
                for q in y.saturating_sub(ow - 1)..=y.min(k - 1) {
                    let at = ((x - p) * ow + (y - q)) * lanes;
                    let w = ((c * k + p) * k + q) * lanes;
                    pop.add_slice(at, &offset_major[w..w + lanes]);
                }
            }
        }
        fired.clear();
        pop.step(|i| {
            let (pos, map) = (i / lanes, i % lanes);
            if map < maps {
                fired.push((map * oh * ow + pos) as u32);
            }
        });
        fired.sort_unstable();
        out.push_step(&fired);
    }
    out
}

/// Buffers of [`backward_sample`], kept per thread.
#[derive(Default)]
struct Scratch {
    /// Post kernels of the maps at one position, `[T][lanes]`.
    kernel: Vec<f32>,
    /// `e` of the pairs of one position, `[in_maps · k²][lanes]`.
    e: Vec<f32>,
    tables: Option<KernelTables>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// HM2-BP backward of one sample (`args`: its trains and channel-major `d_post`, `δ = d/ν`)
/// through the convolution: adds `δ_i (1+s_i) e_{i|j}` to the offset-major gradient
/// `out.weight` (when `Some`) and writes `d_j = Σ_i δ_i w ρ_ij` into `out.input` (when `Some`).
#[multiversion(targets = "simd")]
pub fn backward_sample<'a>(
    args: &SampleGrad<'a>,
    shape: &ConvShape,
    offset_major: &[f32],
    lif: &LifSpec,
    out: LayerGrads<&mut [f32]>,
) {
    // Taken out of (and put back into) the thread's slot rather than borrowed in a closure,
    // so that the body is this function's, compiled per instruction set.
    let mut scratch = SCRATCH.take();
    let (input, output, d_post) = (args.input, args.output, args.d_post);
    let (mut grad, mut d_pre) = (out.weight, out.input);
    let steps = input.steps();
    let (oh, ow) = shape.out_hw();
    let (maps, per_map) = (shape.out_maps, shape.per_map());
    let lanes = shape.lanes();
    let positions = oh * ow;
    let nu = lif.threshold;
    let post = output.by_neuron();
    let pre = input.by_neuron();
    let tables = match scratch.tables.take() {
        Some(t) if t.fits(steps, lif) => t,
        _ => KernelTables::new(steps, lif),
    };
    let pass = PositionPass {
        shape,
        offset_major,
        pre: &pre,
        post: &post,
        // Σ_l w_il of every map, in the per-pair order (ascending input).
        w_sum: (0..maps)
            .map(|o| (0..per_map).map(|r| offset_major[r * lanes + o]).sum())
            .collect(),
        nu,
        positions,
        lanes,
    };
    if let Some(d) = d_pre.as_deref_mut() {
        d.fill(0.0);
    }
    let (kernel, e) = (&mut scratch.kernel, &mut scratch.e);
    e.clear();
    e.resize(per_map * lanes, 0.0);
    // Per map of the position; the padding maps stay 0 (and their e, gradient and error
    // terms with them).
    let mut o_post = vec![0.0f32; lanes];
    let mut delta = vec![0.0f32; lanes];
    let mut we = vec![0.0f32; lanes];
    let mut coef = vec![0.0f32; lanes];
    for pos in 0..positions {
        let (x, y) = (pos / ow, pos % ow);
        for o in 0..maps {
            o_post[o] = post.count(o * positions + pos) as f32;
            delta[o] = d_post[o * positions + pos] / nu;
        }
        // Post kernels of the maps that fired here (a position where none fired needs none).
        let any_fired = o_post.iter().any(|&o| o > 0.0);
        if any_fired {
            pass.post_kernels(&tables, kernel, pos, steps);
        }
        pass.spsp_rows(e, kernel, &o_post, any_fired, (x, y));
        if let Some(g) = grad.as_deref_mut() {
            pass.weight_coefficients(e, &o_post, &delta, &mut we, &mut coef);
            pass.add_weight_grad(g, e, &coef);
        }
        if let Some(d) = d_pre.as_deref_mut() {
            pass.add_backpropagated_error(d, e, &o_post, &delta, (x, y));
        }
    }
    scratch.tables = Some(tables);
    SCRATCH.set(scratch);
}

/// What the backward of one sample reads at every output position: `e` rows are indexed by
/// `r = (input map, p, q)`, each over all output maps (`lanes` wide, padding maps 0).
struct PositionPass<'a> {
    shape: &'a ConvShape,
    offset_major: &'a [f32],
    pre: &'a NeuronTimes,
    post: &'a NeuronTimes,
    /// `Σ_l w_il` of every map.
    w_sum: Vec<f32>,
    /// Threshold ν.
    nu: f32,
    /// Output positions per map (`oh · ow`).
    positions: usize,
    lanes: usize,
}

impl PositionPass<'_> {
    /// The input neuron of row `r` (input map `c`, offset `(p, q)`) at output position
    /// `(x, y)`.
    #[inline(always)]
    fn input_of(&self, r: usize, (x, y): (usize, usize)) -> usize {
        let (k, shape) = (self.shape.kernel, self.shape);
        let (c, p, q) = (r / (k * k), r / k % k, r % k);
        (c * shape.height + x + p) * shape.width + y + q
    }

    /// The post kernels `K_i(t)` of every map at position `pos`, time-major `[T][lanes]`.
    #[inline(always)]
    fn post_kernels(&self, tables: &KernelTables, kernel: &mut Vec<f32>, pos: usize, steps: usize) {
        let lanes = self.lanes;
        kernel.clear();
        kernel.resize(steps * lanes, 0.0);
        for o in 0..self.shape.out_maps {
            let post = self.post.of(o * self.positions + pos);
            tables.add_post_kernel(post, &mut kernel[o..], lanes);
        }
    }

    /// The S-PSP rows `e_{i|j}`, one per (input map, offset), each over all maps: the post
    /// kernels summed at the input's spike times, and the silent-post value where a map did not
    /// fire.
    #[inline(always)]
    fn spsp_rows(
        &self,
        e: &mut [f32],
        kernel: &[f32],
        o_post: &[f32],
        any_fired: bool,
        at: (usize, usize),
    ) {
        let maps = self.shape.out_maps;
        for (r, row) in e.chunks_exact_mut(self.lanes).enumerate() {
            let j = self.input_of(r, at);
            if any_fired {
                sum_kernel_rows(kernel, self.lanes, self.pre.of(j), row);
            } else {
                row.fill(0.0);
            }
            let pre_fired = self.pre.count(j) > 0;
            for (ev, &o) in row[..maps].iter_mut().zip(o_post) {
                if o == 0.0 {
                    *ev = terms::silent_post_spsp(pre_fired);
                }
            }
        }
    }

    /// The coefficients `δ_i (1+s_i)` of the weight gradient (S12 main term) into `coef`, with
    /// the side effects `s_i` (S9, S11) from `Σ_l w_il e_il` (summed into `we`).
    #[inline(always)]
    fn weight_coefficients(
        &self,
        e: &[f32],
        o_post: &[f32],
        delta: &[f32],
        we: &mut [f32],
        coef: &mut [f32],
    ) {
        let lanes = self.lanes;
        we.fill(0.0);
        for (r, row) in e.chunks_exact(lanes).enumerate() {
            let w = &self.offset_major[r * lanes..(r + 1) * lanes];
            for ((acc, &wv), &ev) in we.iter_mut().zip(w).zip(row) {
                *acc += wv * ev;
            }
        }
        for o in 0..self.shape.out_maps {
            let s = terms::side_effect(o_post[o], we[o], self.w_sum[o], self.nu);
            coef[o] = terms::weight_coefficient(delta[o], s, 1.0);
        }
    }

    /// Adds `coef ⊙ e_r` to the gradient of every row `r` (offset-major).
    #[inline(always)]
    fn add_weight_grad(&self, grad: &mut [f32], e: &[f32], coef: &[f32]) {
        let lanes = self.lanes;
        for (r, row) in e.chunks_exact(lanes).enumerate() {
            let g = &mut grad[r * lanes..(r + 1) * lanes];
            for ((gv, &cv), &ev) in g.iter_mut().zip(coef).zip(row) {
                *gv += cv * ev;
            }
        }
    }

    /// Adds this position's terms `δ_i w ρ_ij` (S10, with the effect ratio ρ of S8) to the
    /// backpropagated error `d_j` of every input it reads.
    #[inline(always)]
    fn add_backpropagated_error(
        &self,
        d: &mut [f32],
        e: &[f32],
        o_post: &[f32],
        delta: &[f32],
        at: (usize, usize),
    ) {
        let lanes = self.lanes;
        for (r, row) in e.chunks_exact(lanes).enumerate() {
            let j = self.input_of(r, at);
            let w = &self.offset_major[r * lanes..(r + 1) * lanes];
            let n = self.pre.count(j);
            let inv_o = 1.0 / n.max(1) as f32;
            let mut sum = d[j];
            for o in 0..self.shape.out_maps {
                let rho = if n > 0 {
                    terms::effect_ratio(row[o], inv_o, o_post[o] > 0.0)
                } else {
                    1.0
                };
                sum += delta[o] * w[o] * rho;
            }
            d[j] = sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::local::{self, Connectivity};

    #[test]
    fn equals_the_per_pair_forward() {
        let mut state = 5u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        for shape in [
            ConvShape {
                in_maps: 1,
                height: 12,
                width: 10,
                out_maps: 3,
                kernel: 5,
            },
            ConvShape {
                in_maps: 2,
                height: 8,
                width: 8,
                out_maps: 5,
                kernel: 3,
            },
        ] {
            let n_in = shape.in_maps * shape.height * shape.width;
            let n_w = shape.out_maps * shape.in_maps * shape.kernel * shape.kernel;
            let weights: Vec<f32> = (0..n_w)
                .map(|_| (next() % 1000) as f32 / 700.0 - 0.5)
                .collect();
            let events: Vec<(u32, u32)> = (0..n_in * 12)
                .map(|_| (next() % 150, next() % n_in as u32))
                .collect();
            let input = SpikeRaster::from_events(150, n_in, &{
                let mut e = events;
                e.sort_unstable();
                e.dedup();
                e
            });
            let lif = LifSpec::paper(0.8).strict();
            let conn = Connectivity::conv(
                shape.in_maps,
                shape.height,
                shape.width,
                shape.out_maps,
                shape.kernel,
            );
            let want = local::forward_sample(&input, &conn, &weights, &lif);
            let om = shape.offset_major(&weights);
            let got = forward_sample(&input, &shape, &om, &lif);
            assert!(want.num_spikes() > 20, "the case must fire");
            assert_eq!(got, want);

            // Backward: the same gradient bit for bit, the same d_pre up to rounding.
            let n_out = conn.n_out;
            let d_post: Vec<f32> = (0..n_out)
                .map(|_| (next() % 200) as f32 / 50.0 - 2.0)
                .collect();
            let (mut g_want, mut d_want) = (vec![0.0f32; n_w], vec![0.0f32; n_in]);
            local::backward_sample(
                &SampleGrad {
                    input: &input,
                    output: &want,
                    d_post: &d_post,
                    label: None,
                },
                &conn,
                &weights,
                &lif,
                local::ErrorScale::Threshold,
                LayerGrads {
                    weight: Some(&mut g_want),
                    input: Some(&mut d_want),
                },
            );
            let (mut g_om, mut d_got) = (
                vec![0.0f32; shape.per_map() * shape.lanes()],
                vec![0.0f32; n_in],
            );
            backward_sample(
                &SampleGrad {
                    input: &input,
                    output: &want,
                    d_post: &d_post,
                    label: None,
                },
                &shape,
                &om,
                &lif,
                LayerGrads {
                    weight: Some(&mut g_om),
                    input: Some(&mut d_got),
                },
            );
            assert_eq!(shape.map_major(&g_om), g_want);
            for (a, b) in d_got.iter().zip(&d_want) {
                assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
            }
            assert!(d_want.iter().any(|&d| d != 0.0));
        }
    }
}
