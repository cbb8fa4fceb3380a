//! The fast event-driven kernels against slow, obviously-correct versions written straight from
//! the spec (per step over all inputs for the forward, per pair for the backward).

use hm2bp::neuron::LifSpec;
use hm2bp::rule::dense::{LayerWeights, SampleGrad, backward_sample, forward_sample, transpose};
use hm2bp::rule::output::{OutputRule, insert_label_spikes, lateral_factor};
use hm2bp::rule::reference::{LayerCase, layer_backward};
use hm2bp::rule::regularizer::WeightRegularizer;
use hm2bp::rule::{DenseSpec, LayerGrads, dense_backward_rasters, dense_forward_batch};
use hm2bp::spikes::SpikeRaster;
use hm2bp::spikes::{BatchShape, rasters_from_dense};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_raster(rng: &mut ChaCha8Rng, steps: usize, n: usize, rate: f64) -> SpikeRaster {
    let times: Vec<Vec<u32>> = (0..n)
        .map(|_| {
            (0..steps as u32)
                .filter(|_| rng.random::<f64>() < rate)
                .collect()
        })
        .collect();
    SpikeRaster::from_times(&times, steps)
}

fn random_weights(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale)
        .collect()
}

/// The LIF recursion of spec §1.1 looping over every input at every step.
fn naive_forward(input: &SpikeRaster, w: &[f32], n_out: usize, spec: &DenseSpec) -> Vec<Vec<u32>> {
    let (steps, n_in) = (input.steps(), input.neurons());
    let mut dense = vec![0.0f32; steps * n_in];
    input.write_dense(&mut dense);
    let p = spec.lif;
    let lat = spec.output.map_or(0.0, |o| o.lateral_strength);
    let (mut v, mut ep, mut r) = (vec![0f32; n_out], vec![0f32; n_out], vec![0u32; n_out]);
    let mut out = vec![Vec::new(); n_out];
    let mut prev = vec![0.0f32; n_out];
    for t in 0..steps {
        let mut now = vec![0.0f32; n_out];
        for i in 0..n_out {
            v[i] -= v[i] / p.tau_m;
            ep[i] -= ep[i] / p.tau_s;
            if t == 0 {
                continue;
            }
            let mut cur = 0.0f32;
            for j in 0..n_in {
                if dense[(t - 1) * n_in + j] > 0.5 {
                    cur += w[i * n_in + j];
                }
            }
            let others: f32 = (0..n_out).filter(|&l| l != i).map(|l| prev[l]).sum();
            cur -= lat * others;
            ep[i] += cur;
            v[i] += ep[i] / p.tau_s;
            if r[i] > 0 {
                v[i] = 0.0;
                r[i] -= 1;
            }
            if v[i] > p.threshold - p.threshold_eps {
                out[i].push(t as u32);
                now[i] = 1.0;
                r[i] = p.t_ref;
                v[i] = 0.0;
            }
        }
        prev = now;
    }
    out
}

fn spec(threshold: f32, output: bool) -> DenseSpec {
    DenseSpec {
        lif: LifSpec::paper(threshold),
        output: output.then(OutputRule::default),
        effect_ratio: true,
    }
}

#[test]
fn forward_matches_naive_simulation() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for case in 0..20 {
        let (n_in, n_out, steps) = (40, 12, 300);
        let input = random_raster(&mut rng, steps, n_in, 0.05);
        let w = random_weights(&mut rng, n_in * n_out, 1.0);
        let s = spec(3.0, case % 2 == 1);
        let fast = forward_sample(&input, &LayerWeights::new(&w, n_out, n_in), &s);
        assert_eq!(
            fast.times(),
            naive_forward(&input, &w, n_out, &s),
            "case {case}"
        );
        assert!(fast.num_spikes() > 0);
    }
}

#[test]
fn backward_matches_per_pair_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for case in 0..12 {
        let (n_in, n_out, steps) = (30, 10, 400);
        let output_layer = case % 3 == 2;
        let s = spec(4.0, output_layer);
        let input = random_raster(&mut rng, steps, n_in, 0.06);
        let w = random_weights(&mut rng, n_in * n_out, 0.8);
        let lw = LayerWeights::new(&w, n_out, n_in);
        let out = forward_sample(&input, &lw, &s);
        let d_post: Vec<f32> = (0..n_out)
            .map(|_| rng.random::<f32>() * 20.0 - 10.0)
            .collect();
        let label = output_layer.then_some(case % n_out);

        let mut grad = vec![0.0f32; n_out * n_in];
        let mut d_pre = vec![0.0f32; n_in];
        let args = SampleGrad {
            input: &input,
            output: &out,
            d_post: &d_post,
            label,
        };
        let mut grad_t = vec![0.0f32; n_out * n_in];
        let info = backward_sample(&args, &lw, &s, &mut grad_t, Some(&mut d_pre));
        grad.copy_from_slice(&transpose(&grad_t, n_in, n_out));

        // Reference, from the spec.
        let mut post = out.times();
        let mut gamma = vec![1.0f64; n_out];
        if let Some(l) = label {
            gamma = lateral_factor(&post, l, 1.0, &s.lif)
                .iter()
                .map(|&g| g as f64)
                .collect();
            insert_label_spikes(&mut post[l], steps, 35);
        }
        let w64: Vec<Vec<f64>> = (0..n_out)
            .map(|i| (0..n_in).map(|j| w[i * n_in + j] as f64).collect())
            .collect();
        let d64: Vec<f64> = d_post.iter().map(|&d| d as f64).collect();
        let r = layer_backward(&LayerCase {
            pre: &input.times(),
            post: &post,
            weight: &w64,
            d_post: &d64,
            gamma: &gamma,
            lif: &s.lif,
            effect_ratio: true,
            need_d_pre: true,
            regularizer: &WeightRegularizer::OFF,
        });
        let close = |a: f32, b: f64| (a as f64 - b).abs() <= 1e-4 * b.abs().max(1.0);
        for i in 0..n_out {
            assert!(close(info.side_effect[i], r.s[i]), "case {case} s[{i}]");
            for j in 0..n_in {
                assert!(
                    close(grad[i * n_in + j], r.grad_main[i][j]),
                    "case {case} grad[{i}][{j}] {} vs {}",
                    grad[i * n_in + j],
                    r.grad_main[i][j]
                );
            }
        }
        for (j, (&got, &want)) in d_pre.iter().zip(r.d_pre.as_ref().unwrap()).enumerate() {
            assert!(close(got, want), "case {case} d_pre[{j}]");
        }
    }
}

/// A batch is the sum of its samples: the batched kernels equal per-sample calls.
#[test]
fn batch_equals_per_sample() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (b, steps, n_in, n_out) = (5, 200, 25, 8);
    let s = spec(3.0, true);
    let rasters: Vec<SpikeRaster> = (0..b)
        .map(|_| random_raster(&mut rng, steps, n_in, 0.05))
        .collect();
    let mut input = vec![0.0f32; b * steps * n_in];
    for (k, r) in rasters.iter().enumerate() {
        r.write_dense(&mut input[k * steps * n_in..(k + 1) * steps * n_in]);
    }
    let w = random_weights(&mut rng, n_in * n_out, 1.0);
    let shape = BatchShape {
        batch: b,
        steps,
        neurons: n_in,
    };
    let out = dense_forward_batch(&input, shape, &w, n_out, &s);
    let d_post: Vec<f32> = (0..b * n_out).map(|k| (k % 7) as f32 - 3.0).collect();
    let labels: Vec<usize> = (0..b).map(|k| k % n_out).collect();
    let out_shape = BatchShape {
        neurons: n_out,
        ..shape
    };
    let g = dense_backward_rasters(
        &rasters_from_dense(&input, shape),
        &rasters_from_dense(&out, out_shape),
        &w,
        &d_post,
        Some(&labels),
        &s,
        true,
    );

    let mut want_t = vec![0.0f32; n_out * n_in];
    let lw = LayerWeights::new(&w, n_out, n_in);
    for (k, r) in rasters.iter().enumerate() {
        let o = forward_sample(r, &lw, &s);
        let mut dense = vec![0.0; steps * n_out];
        o.write_dense(&mut dense);
        assert_eq!(dense, out[k * steps * n_out..(k + 1) * steps * n_out]);
        let mut d = vec![0.0f32; n_in];
        let args = SampleGrad {
            input: r,
            output: &o,
            d_post: &d_post[k * n_out..(k + 1) * n_out],
            label: Some(labels[k]),
        };
        backward_sample(&args, &lw, &s, &mut want_t, Some(&mut d));
        assert_eq!(d, g.input.as_ref().unwrap()[k * n_in..(k + 1) * n_in]);
    }
    let want = transpose(&want_t, n_in, n_out);
    for (a, b) in g.weight.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0));
    }
}

/// Conv and pooling kernels against spec §4 written per output site and per pair.
#[test]
fn conv_and_pool_match_per_pair_reference() {
    use hm2bp::rule::local::{
        Connectivity, ErrorScale, backward_sample as local_backward,
        forward_sample as local_forward,
    };
    use hm2bp::spsp::spsp_pair;
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (c_in, h, w, maps, k, steps) = (2, 7, 6, 3, 3, 300);
    let (oh, ow) = (h - k + 1, w - k + 1);
    let conn = Connectivity::conv(c_in, h, w, maps, k);
    let lif = LifSpec::paper(2.0).strict();
    for case in 0..6 {
        let input = random_raster(&mut rng, steps, c_in * h * w, 0.06);
        let kern = random_weights(&mut rng, maps * c_in * k * k, 0.8);
        let out = local_forward(&input, &conn, &kern, &lif);
        // Forward: a dense layer with the unrolled kernel gives the same raster.
        let mut unrolled = vec![0.0f32; maps * oh * ow * c_in * h * w];
        for o in 0..maps {
            for x in 0..oh {
                for y in 0..ow {
                    for c in 0..c_in {
                        for p in 0..k {
                            for q in 0..k {
                                let i = (o * oh + x) * ow + y;
                                let j = (c * h + x + p) * w + y + q;
                                unrolled[i * c_in * h * w + j] =
                                    kern[((o * c_in + c) * k + p) * k + q];
                            }
                        }
                    }
                }
            }
        }
        let s = DenseSpec {
            lif,
            output: None,
            effect_ratio: true,
        };
        let n_out = maps * oh * ow;
        let dense_out = forward_sample(
            &input,
            &LayerWeights::new(&unrolled, n_out, c_in * h * w),
            &s,
        );
        assert_eq!(out.times(), dense_out.times(), "case {case}: conv forward");
        assert!(out.num_spikes() > 0, "case {case}: silent conv");

        let d_post: Vec<f32> = (0..n_out)
            .map(|_| rng.random::<f32>() * 4.0 - 2.0)
            .collect();
        let mut grad = vec![0.0f32; kern.len()];
        let mut d_pre = vec![0.0f32; c_in * h * w];
        local_backward(
            &SampleGrad {
                input: &input,
                output: &out,
                d_post: &d_post,
                label: None,
            },
            &conn,
            &kern,
            &lif,
            ErrorScale::Threshold,
            LayerGrads {
                weight: Some(&mut grad),
                input: Some(&mut d_pre),
            },
        );

        // Reference: per output site and per pair, straight from spec §4 (S2, S8, S9, S11).
        let (pre, post) = (input.times(), out.times());
        let mut want_grad = vec![0.0f64; kern.len()];
        let mut want_d = vec![0.0f64; c_in * h * w];
        for o in 0..maps {
            for x in 0..oh {
                for y in 0..ow {
                    let i = (o * oh + x) * ow + y;
                    let o_i = post[i].len() as f64;
                    let delta = d_post[i] as f64 / lif.threshold as f64;
                    let mut pairs = Vec::new();
                    for c in 0..c_in {
                        for p in 0..k {
                            for q in 0..k {
                                let j = (c * h + x + p) * w + y + q;
                                let wi = ((o * c_in + c) * k + p) * k + q;
                                let o_j = pre[j].len() as f64;
                                let e = if o_j == 0.0 {
                                    0.0
                                } else if o_i == 0.0 {
                                    0.1
                                } else {
                                    spsp_pair(&post[i], &pre[j], &lif)
                                };
                                pairs.push((j, wi, e, o_j));
                            }
                        }
                    }
                    let s: f64 = pairs
                        .iter()
                        .map(|&(_, wi, e, _)| {
                            kern[wi] as f64 * if o_i > 0.0 { e / o_i } else { 0.5 }
                        })
                        .sum::<f64>()
                        / lif.threshold as f64;
                    for &(j, wi, e, o_j) in &pairs {
                        want_grad[wi] += delta * (1.0 + s) * e;
                        let rho = if o_i > 0.0 && o_j > 0.0 { e / o_j } else { 1.0 };
                        want_d[j] += delta * kern[wi] as f64 * rho;
                    }
                }
            }
        }
        let close = |a: f32, b: f64| (a as f64 - b).abs() <= 1e-3 * b.abs().max(1.0);
        for (i, (&a, &b)) in grad.iter().zip(&want_grad).enumerate() {
            assert!(close(a, b), "case {case}: grad[{i}] {a} vs {b}");
        }
        for (j, (&a, &b)) in d_pre.iter().zip(&want_d).enumerate() {
            assert!(close(a, b), "case {case}: d_pre[{j}] {a} vs {b}");
        }

        // Pooling: forward is the 2×2 window sum; backward divides by 4 and uses ρ.
        let pool = Connectivity::pool(maps, oh - oh % 2, ow - ow % 2, 2);
        let pool_in = SpikeRaster::from_times(
            &(0..maps * (oh - oh % 2) * (ow - ow % 2))
                .map(|n| {
                    let (m, rest) = (
                        n / ((oh - oh % 2) * (ow - ow % 2)),
                        n % ((oh - oh % 2) * (ow - ow % 2)),
                    );
                    let (x, y) = (rest / (ow - ow % 2), rest % (ow - ow % 2));
                    post[(m * oh + x) * ow + y].clone()
                })
                .collect::<Vec<_>>(),
            steps,
        );
        let pool_lif = LifSpec::paper(1.0);
        let pooled = local_forward(&pool_in, &pool, &[1.0], &pool_lif);
        let d_pool: Vec<f32> = (0..pool.n_out).map(|i| i as f32 - 2.0).collect();
        let mut d_in = vec![0.0f32; pool.n_in];
        local_backward(
            &SampleGrad {
                input: &pool_in,
                output: &pooled,
                d_post: &d_pool,
                label: None,
            },
            &pool,
            &[1.0],
            &pool_lif,
            ErrorScale::PoolArea(2),
            LayerGrads {
                weight: None,
                input: Some(&mut d_in),
            },
        );
        let (pin, pout) = (pool_in.times(), pooled.times());
        let (ph, pw) = ((oh - oh % 2) / 2, (ow - ow % 2) / 2);
        for (j, &got) in d_in.iter().enumerate() {
            let (m, rest) = (j / (2 * ph * 2 * pw), j % (2 * ph * 2 * pw));
            let (x, y) = (rest / (2 * pw), rest % (2 * pw));
            let i = (m * ph + x / 2) * pw + y / 2;
            let (o_i, o_j) = (pout[i].len() as f64, pin[j].len() as f64);
            let rho = if o_i > 0.0 && o_j > 0.0 {
                spsp_pair(&pout[i], &pin[j], &pool_lif) / o_j
            } else {
                1.0
            };
            let want = d_pool[i] as f64 / 4.0 * rho;
            assert!(
                close(got, want),
                "case {case}: pool d_pre[{j}] {got} vs {want}"
            );
        }
    }
}

/// The tiled, parallel transpose against the definition, on shapes that are not multiples of
/// the tile.
#[test]
fn transpose_matches_definition() {
    for (rows, cols) in [(1, 1), (3, 70), (37, 53), (800, 10), (10, 784)] {
        let m: Vec<f32> = (0..rows * cols).map(|k| k as f32).collect();
        let t = transpose(&m, rows, cols);
        for r in 0..rows {
            for c in 0..cols {
                assert_eq!(
                    t[c * rows + r],
                    m[r * cols + c],
                    "{rows}×{cols} at ({r}, {c})"
                );
            }
        }
    }
}

/// Reading dense rasters: every value above 0.5 is a spike, at any position of a 16-value run.
#[test]
fn dense_rasters_read_every_position() {
    use hm2bp::spikes::SpikeRaster;
    let (steps, neurons) = (5, 37);
    let dense: Vec<f32> = (0..steps * neurons)
        .map(|k| if (k * 7919) % 5 == 0 { 1.0 } else { 0.0 })
        .collect();
    let r = SpikeRaster::from_dense(&dense, steps, neurons);
    for t in 0..steps {
        let want: Vec<u32> = (0..neurons as u32)
            .filter(|&n| dense[t * neurons + n as usize] > 0.5)
            .collect();
        assert_eq!(r.at(t), want.as_slice(), "step {t}");
    }
}
