//! Output-layer rules: target counts and error (S6), the lateral-inhibition factor γ, and the
//! label-spike insertion for a silent label neuron (spec §3.1, §3.4, §3.5).

use serde::{Deserialize, Serialize};

use crate::neuron::LifSpec;
use crate::spsp::spsp_pair;

/// Rate-coded targets of the output layer (spec §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CountTargets {
    /// Desired count of the label neuron (35).
    pub desired: f32,
    /// Desired count of every other output neuron (5).
    pub undesired: f32,
    /// Dead zone: errors with `|o − y| <= margin` are ignored (5).
    pub margin: f32,
}

impl Default for CountTargets {
    fn default() -> Self {
        Self {
            desired: 35.0,
            undesired: 5.0,
            margin: 5.0,
        }
    }
}

impl CountTargets {
    /// Target count `y_i` of output `i` for a sample of class `label`.
    pub fn target(&self, i: usize, label: usize) -> f32 {
        if i == label {
            self.desired
        } else {
            self.undesired
        }
    }

    /// `d_i = (o_i − y_i) · 1[|o_i − y_i| > margin] · β` (S6) and the logged cost
    /// `Σ_i 1[|o_i − y_i| > margin] (o_i − y_i)²`.
    pub fn error(&self, counts: &[f32], label: usize, sample_weight: f32) -> (Vec<f32>, f32) {
        let mut cost = 0.0;
        let d = counts
            .iter()
            .enumerate()
            .map(|(i, &o)| {
                let diff = o - self.target(i, label);
                if diff.abs() > self.margin {
                    cost += diff * diff;
                    diff * sample_weight
                } else {
                    0.0
                }
            })
            .collect();
        (d, cost)
    }
}

/// How the output layer is trained beyond the plain dense rule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputRule {
    /// Fixed lateral inhibition: every output neuron receives `−strength` from each other output
    /// neuron's spike of the previous step (1.0 in the paper; 0.0 = none).
    pub lateral_strength: f32,
    /// A silent label neuron gets spikes inserted every `⌊T / level⌋` steps before its S-PSPs
    /// are computed (`DESIRED_LEVEL`, 35).
    pub label_spike_level: u32,
}

impl Default for OutputRule {
    fn default() -> Self {
        Self {
            lateral_strength: 1.0,
            label_spike_level: 35,
        }
    }
}

/// If the label neuron is silent, fills its train with spikes at `m·⌊T/level⌋`, `m = 1, 2, …`,
/// `< T` (spec §3.5.1). Returns whether spikes were inserted.
pub fn insert_label_spikes(label_train: &mut Vec<u32>, steps: usize, level: u32) -> bool {
    if !label_train.is_empty() {
        return false;
    }
    label_train.extend(label_spike_steps(steps, level));
    !label_train.is_empty()
}

/// The steps `m·⌊T/level⌋ < T`, `m = 1, 2, …`, of the spikes inserted into a silent label
/// neuron (none when `level` is 0 or above `T`).
pub fn label_spike_steps(steps: usize, level: u32) -> impl Iterator<Item = u32> {
    let gap = if level == 0 {
        0
    } else {
        steps / level as usize
    };
    (1..)
        .map(move |m| m * gap)
        .take_while(move |&t| gap > 0 && t < steps)
        .map(|t| t as u32)
}

/// Lateral factor `γ_j = 1 / (1 − w0² Σ_{l≠j} ρ_{l|j} d_l ρ_{j|l} d_j)` of every output neuron
/// (spec §3.4), from the output raster **before** label-spike insertion. `ρ_{l|j} = e_{l|j}/o_j`
/// (1 if either neuron is silent), `d_x = 1/ν` if `x` fired or is the label, else 0. All ones
/// when `strength == 0`.
pub fn lateral_factor(
    out_times: &[Vec<u32>],
    label: usize,
    strength: f32,
    lif: &LifSpec,
) -> Vec<f32> {
    let n = out_times.len();
    if strength == 0.0 {
        return vec![1.0; n];
    }
    let o: Vec<f64> = out_times.iter().map(|t| t.len() as f64).collect();
    let d: Vec<f64> = (0..n)
        .map(|x| {
            if o[x] > 0.0 || x == label {
                1.0 / lif.threshold as f64
            } else {
                0.0
            }
        })
        .collect();
    let rho = |post: usize, pre: usize| -> f64 {
        if o[pre] == 0.0 || o[post] == 0.0 {
            1.0
        } else {
            spsp_pair(&out_times[post], &out_times[pre], lif) / o[pre]
        }
    };
    let w0 = strength as f64;
    (0..n)
        .map(|j| {
            let loop_gain: f64 = (0..n)
                .filter(|&l| l != j)
                .map(|l| rho(l, j) * d[l] * rho(j, l) * d[j])
                .sum();
            (1.0 / (1.0 - w0 * w0 * loop_gain)) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_with_margin_and_weight() {
        let t = CountTargets::default();
        let (d, cost) = t.error(&[0.0, 12.0, 9.0], 0, 2.0);
        assert_eq!(d, vec![-70.0, 14.0, 0.0]);
        assert_eq!(cost, 35.0 * 35.0 + 49.0);
    }

    #[test]
    fn insertion_spacing() {
        let mut v = Vec::new();
        assert!(insert_label_spikes(&mut v, 400, 35));
        assert_eq!(v.len(), 36);
        assert_eq!((v[0], v[35]), (11, 396));
        let mut v = Vec::new();
        insert_label_spikes(&mut v, 540, 35);
        assert_eq!(v.len(), 35);
        let mut busy = vec![3];
        assert!(!insert_label_spikes(&mut busy, 400, 35));
    }

    #[test]
    fn lateral_factor_silent_layer() {
        // Only the label is "active" (d = 1/ν); nobody else: no loop, γ = 1.
        let lif = LifSpec::paper(5.0);
        let g = lateral_factor(&[vec![], vec![], vec![]], 1, 1.0, &lif);
        assert_eq!(g, vec![1.0; 3]);
        // Two silent-but-flagged neurons? Only one label; a firing neuron and the label: ρ = 1,
        // d = 1/5 each: γ = 1 / (1 − 1/25).
        let g = lateral_factor(&[vec![], vec![10, 20], vec![]], 0, 1.0, &lif);
        assert!((g[0] - 1.0 / (1.0 - 0.04)).abs() < 1e-6);
        assert!((g[1] - 1.0 / (1.0 - 0.04)).abs() < 1e-6);
        assert_eq!(g[2], 1.0);
    }
}
