//! Spike-train level post-synaptic potential (S-PSP), spec §2.2.
//!
//! `e_{i|j}` is the sum, over the spikes of post neuron `i`, of the unit-weight potential that
//! pre neuron `j` contributes just before each of them, with resets taken into account (S2, S3).
//! It is linear in the pre spike train, so for every post neuron we build a kernel over time,
//! `K_i(t) = Σ_f ε(s_f, t_f − t − t_ref)` over the post spikes `f` whose window holds `t`, and
//! then `e_{i|j} = Σ_{t ∈ spikes(j)} K_i(t)`, i.e. `E = K · Sᵀ`: one GEMM (dense) or one
//! row-gather per pre spike (event-driven).

use crate::neuron::LifSpec;

/// Pre spikes further back than `WINDOW_TAU_M · τm` steps before a post spike are ignored.
pub const WINDOW_TAU_M: f32 = 4.0;

/// The PSP of one unit input spike, `t` steps after its arrival (S1):
/// `ε0(t) = (e^{−t/τm} − e^{−t/τs}) / (1 − τs/τm)`.
pub fn psp_kernel(t: f64, p: &LifSpec) -> f64 {
    let (tm, ts) = (p.tau_m as f64, p.tau_s as f64);
    ((-t / tm).exp() - (-t / ts).exp()) / (1.0 - ts / tm)
}

/// `ε(s, τ)` (S3): potential of a pre spike `τ` steps before a post spike, `s` steps after the
/// post neuron's last reset. A pre spike that arrived before the reset (`τ > s`) only keeps its
/// synaptic current, decayed by `e^{−(τ−s)/τs}`.
pub fn spsp_epsilon(s: f64, tau: f64, p: &LifSpec) -> f64 {
    let decay = (-(tau - s).max(0.0) / p.tau_s as f64).exp();
    decay * psp_kernel(s.min(tau), p)
}

/// Window length `4·τm` in steps.
pub fn window_steps(p: &LifSpec) -> u32 {
    (WINDOW_TAU_M * p.tau_m) as u32
}

/// `e_{i|j}` for one pair, straight from S2 (per post spike, per pre spike). Does not apply the
/// 0.1 rule for silent post neurons: that is [`crate::rule`]'s business.
pub fn spsp_pair(post: &[u32], pre: &[u32], p: &LifSpec) -> f64 {
    let window = window_steps(p) as i64;
    let t_ref = p.t_ref as i64;
    let mut e = 0.0;
    for (f, &tf) in post.iter().enumerate() {
        let tf = tf as i64;
        let t_hat = if f == 0 {
            1
        } else {
            post[f - 1] as i64 + t_ref
        };
        let s = (tf - t_hat) as f64;
        for &tk in pre {
            let tk = tk as i64;
            if tk >= (tf - window).max(1) && tk < tf && tk + t_ref <= tf {
                e += spsp_epsilon(s, (tf - tk - t_ref) as f64, p);
            }
        }
    }
    e
}

/// Writes the post kernel `K(t)` of one neuron with ascending spike steps `post` into
/// `out[t * stride]` for `t` in `0..steps` (overwriting), so that
/// `e_{i|j} = Σ_{t ∈ spikes(j)} K(t)` equals [`spsp_pair`].
///
/// For a pre spike at `t`, the post spikes in whose window it lies form a contiguous range
/// `fa..=fb`. Only `fa` can have received it after its last reset (direct term `ε0(τ)`); every
/// later one sees it decayed from the previous reset, `ε0(s_f) e^{−(t_{f−1} − t)/τs}`, whose
/// sum over the range is `e^{t/τs}` times a difference of suffix sums. O(steps + o) per
/// neuron, no `exp` calls with [`KernelTables`].
pub fn post_kernel(post: &[u32], steps: usize, p: &LifSpec, out: &mut [f32], stride: usize) {
    KernelTables::new(steps, p).post_kernel(post, out, stride);
}

/// `out[k] = Σ_{t ∈ times} kernel[t · width + k]` for `k < width`, summed in the order of
/// `times` from `0`: the S-PSP `e_{i|j}` of one pre neuron `j` (spike steps `times`) for a
/// block of post neurons whose kernels are stored time-major (`E = K · Sᵀ`, one row).
/// Columns are taken 32 (then 8) at a time with the sums held in registers across the spikes.
#[inline(always)]
pub fn sum_kernel_rows(kernel: &[f32], width: usize, times: &[u32], out: &mut [f32]) {
    #[inline(always)]
    fn columns<const W: usize>(
        kernel: &[f32],
        width: usize,
        lo: usize,
        times: &[u32],
        out: &mut [f32],
    ) {
        let mut acc = [0.0f32; W];
        for &t in times {
            let at = t as usize * width + lo;
            let row: &[f32; W] = kernel[at..at + W].try_into().expect("W columns");
            for (a, &k) in acc.iter_mut().zip(row) {
                *a += k;
            }
        }
        out[lo..lo + W].copy_from_slice(&acc);
    }
    let mut lo = 0;
    while lo + 32 <= width {
        columns::<32>(kernel, width, lo, times, out);
        lo += 32;
    }
    while lo + 8 <= width {
        columns::<8>(kernel, width, lo, times, out);
        lo += 8;
    }
    while lo < width {
        columns::<1>(kernel, width, lo, times, out);
        lo += 1;
    }
}

/// Writes the values of `k` (converted to `f32`) at `out[(from + n) · stride]`, `n = 0, 1, …`:
/// contiguously (vectorised) when `stride` is 1.
#[inline(always)]
fn write_segment(
    out: &mut [f32],
    stride: usize,
    from: usize,
    k: impl ExactSizeIterator<Item = f64>,
) {
    if stride == 1 {
        let len = k.len();
        for (o, v) in out[from..from + len].iter_mut().zip(k) {
            *o = v as f32;
        }
    } else {
        for (n, v) in k.enumerate() {
            out[(from + n) * stride] = v as f32;
        }
    }
}

/// Precomputed `ε0(x)`, `e^{−x/τs}` and `e^{x/τs}` for integer `x` in `0..steps`, so that
/// building the kernels of many neurons needs no `exp`.
#[derive(Clone, Debug)]
pub struct KernelTables {
    steps: usize,
    tau_m: f32,
    tau_s: f32,
    t_ref: i64,
    window: i64,
    psp: Vec<f64>,
    decay: Vec<f64>,
    growth: Vec<f64>,
}

impl KernelTables {
    /// Tables for simulations of `steps` steps with neuron parameters `p`.
    pub fn new(steps: usize, p: &LifSpec) -> Self {
        let ts = p.tau_s as f64;
        let n = steps + 1;
        Self {
            steps,
            tau_m: p.tau_m,
            tau_s: p.tau_s,
            t_ref: p.t_ref as i64,
            window: window_steps(p) as i64,
            psp: (0..n).map(|x| psp_kernel(x as f64, p)).collect(),
            decay: (0..n).map(|x| (-(x as f64) / ts).exp()).collect(),
            growth: (0..n).map(|x| (x as f64 / ts).exp()).collect(),
        }
    }

    /// Whether these are the tables of `steps` steps with the time constants of `p`.
    pub fn fits(&self, steps: usize, p: &LifSpec) -> bool {
        self.steps == steps
            && self.tau_m == p.tau_m
            && self.tau_s == p.tau_s
            && self.t_ref == p.t_ref as i64
    }

    /// [`post_kernel`] with these tables.
    pub fn post_kernel(&self, post: &[u32], out: &mut [f32], stride: usize) {
        for t in 0..self.steps {
            out[t * stride] = 0.0;
        }
        self.add_post_kernel(post, out, stride);
    }

    /// Writes `K(t)` into `out[t * stride]` where it is non-zero (steps in the windows of the
    /// spikes of `post`), leaving the other entries untouched.
    #[inline(always)]
    pub fn add_post_kernel(&self, post: &[u32], out: &mut [f32], stride: usize) {
        let steps = self.steps;
        if post.is_empty() {
            return;
        }
        let t_ref = self.t_ref.max(1);
        // suffix[f] = Σ_{g ≥ f, g ≥ 1} ε0(s_g) e^{−t_{g−1}/τs}
        let n = post.len();
        let mut suffix = vec![0.0f64; n + 1];
        for f in (1..n).rev() {
            let prev = post[f - 1] as i64;
            let s = post[f] as i64 - (prev + self.t_ref);
            suffix[f] = suffix[f + 1] + self.psp[s.max(0) as usize] * self.decay[prev as usize];
        }
        // fa = first spike with t_f ≥ t + t_ref; fb_end = one past the last with t_f ≤ t + window.
        // Both only move down as t does, so t runs down in segments over which they (and
        // whether fa sees the pre spike directly) are constant; K(t) = 0 outside
        // [t_1 − window, t_last − 1].
        let (mut fa, mut fb_end) = (n, n);
        let mut t = (post[n - 1] as i64 - 1).min(steps as i64 - 1);
        let t_lo = (post[0] as i64 - self.window).max(1);
        while t >= t_lo {
            while fa > 0 && post[fa - 1] as i64 >= t + t_ref {
                fa -= 1;
            }
            while fb_end > 0 && post[fb_end - 1] as i64 > t + self.window {
                fb_end -= 1;
            }
            if fa >= fb_end {
                t -= 1;
                continue;
            }
            let mut lo = t_lo.max(post[fb_end - 1] as i64 - self.window);
            let direct = fa == 0 || post[fa - 1] as i64 <= t;
            if fa > 0 {
                lo = lo.max(post[fa - 1] as i64 - t_ref + 1);
                if direct {
                    lo = lo.max(post[fa - 1] as i64);
                }
            }
            let first_indirect = if direct { fa + 1 } else { fa };
            let tf = post[fa] as i64 - self.t_ref;
            // Steps lo..=t, and ε0(tf − u) for them (ascending u, so descending argument).
            let (a, b) = (lo as usize, t as usize);
            let growth = &self.growth[a..=b];
            let psp = self.psp[(tf - t) as usize..=(tf - lo) as usize]
                .iter()
                .rev();
            let diff = if first_indirect < fb_end {
                suffix[first_indirect] - suffix[fb_end]
            } else {
                0.0
            };
            match (direct || first_indirect >= fb_end, first_indirect < fb_end) {
                (true, true) => write_segment(
                    out,
                    stride,
                    a,
                    growth.iter().zip(psp).map(|(g, p)| p + g * diff),
                ),
                (false, _) => write_segment(out, stride, a, growth.iter().map(|g| g * diff)),
                (true, false) => write_segment(out, stride, a, psp.copied()),
            }
            t = lo - 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_rows_sum_in_spike_order() {
        for width in [1usize, 7, 8, 15, 40, 64, 75] {
            let kernel: Vec<f32> = (0..20 * width)
                .map(|x| (x % 13) as f32 * 0.37 + 0.01)
                .collect();
            let times = [0u32, 3, 4, 11, 19];
            let mut out = vec![0.0f32; width];
            sum_kernel_rows(&kernel, width, &times, &mut out);
            for (k, &o) in out.iter().enumerate() {
                let want = times
                    .iter()
                    .fold(0.0f32, |a, &t| a + kernel[t as usize * width + k]);
                assert_eq!(o.to_bits(), want.to_bits());
            }
        }
    }

    #[test]
    fn psp_kernel_area_and_peak() {
        let p = LifSpec::paper(1.0);
        let area: f64 = (0..20000).map(|t| psp_kernel(t as f64, &p)).sum();
        assert!((area - 64.0).abs() < 0.6, "area {area}");
        let (peak_t, peak) = (0..100)
            .map(|t| (t, psp_kernel(t as f64, &p)))
            .fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a });
        assert!((18..=20).contains(&peak_t) && (peak - 0.74).abs() < 0.01);
    }

    #[test]
    fn epsilon_cases() {
        let p = LifSpec::paper(1.0);
        assert_eq!(spsp_epsilon(10.0, 4.0, &p), psp_kernel(4.0, &p));
        let e = spsp_epsilon(4.0, 10.0, &p);
        assert!((e - (-6.0f64 / 8.0).exp() * psp_kernel(4.0, &p)).abs() < 1e-15);
    }

    #[test]
    fn hand_computed_pair() {
        let p = LifSpec::paper(1.0);
        // One post spike at 10, pre spikes at 0 (never counts), 3, 8, 9 (too close).
        let e = spsp_pair(&[10], &[0, 3, 8, 9], &p);
        let expect = spsp_epsilon(9.0, 5.0, &p) + spsp_epsilon(9.0, 0.0, &p);
        assert!((e - expect).abs() < 1e-15);
    }

    /// The kernel route equals the per-pair definition on random trains.
    #[test]
    fn post_kernel_matches_pairs() {
        use rand::{RngExt, SeedableRng};
        let p = LifSpec::paper(1.0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for case in 0..200 {
            let steps = [30usize, 400, 700][case % 3];
            let rate = [0.02, 0.1, 0.3][(case / 3) % 3];
            let mut train = |gap_min: u32| {
                let mut v = Vec::new();
                let mut last = -(gap_min as i64);
                for t in 0..steps as u32 {
                    if rng.random::<f64>() < rate && t as i64 - last >= gap_min as i64 {
                        v.push(t);
                        last = t as i64;
                    }
                }
                v
            };
            let post = train(3);
            let pre = train(1);
            let mut k = vec![0.0f32; steps];
            post_kernel(&post, steps, &p, &mut k, 1);
            let via_kernel: f64 = pre.iter().map(|&t| k[t as usize] as f64).sum();
            let direct = spsp_pair(&post, &pre, &p);
            assert!(
                (via_kernel - direct).abs() <= 1e-5 * direct.abs().max(1.0),
                "case {case}: {via_kernel} vs {direct}"
            );
        }
    }
}
