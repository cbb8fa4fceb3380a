//! The per-pair and per-neuron terms of the HM2-BP rule (spec §3.2–3.5), each written once and
//! shared by the dense and the locally connected (conv, pool) host kernels. The slow per-pair
//! reference in `f64` ([`super::reference`]) restates them independently, for tests.

/// S-PSP given to every (silent post, active pre) pair, so that silent neurons learn (§3.5.2).
pub const SILENT_POST_SPSP: f32 = 0.1;
/// Side ratio σ of a silent post neuron (S9).
pub const SILENT_POST_SIDE_RATIO: f32 = 0.5;

/// `e_{i|j}` of a pair whose post neuron is silent: 0.1 if the pre neuron fired, else 0.
pub fn silent_post_spsp(pre_fired: bool) -> f32 {
    if pre_fired { SILENT_POST_SPSP } else { 0.0 }
}

/// Side effect `s_i` (S9, S11) from `we = Σ_l w_il e_il` and `w_sum = Σ_l w_il`:
/// `we / (o_i ν)` for a firing post neuron, `0.5 · w_sum / ν` for a silent one.
pub fn side_effect(o_post: f32, we: f32, w_sum: f32, nu: f32) -> f32 {
    if o_post > 0.0 {
        we / (o_post * nu)
    } else {
        SILENT_POST_SIDE_RATIO * w_sum / nu
    }
}

/// The factor of `e_{i|j}` in `∂E/∂w_ij` (S12 main term): `δ_i (1 + s_i) γ_i`.
pub fn weight_coefficient(delta: f32, side: f32, gamma: f32) -> f32 {
    delta * (1.0 + side) * gamma
}

/// Effect ratio `ρ_ij` (S8) of a pair whose pre neuron fired (`inv_o_pre = 1/o_j`):
/// `e_{i|j}/o_j` when the post neuron fired too, else 1.
pub fn effect_ratio(e: f32, inv_o_pre: f32, post_fired: bool) -> f32 {
    if post_fired { e * inv_o_pre } else { 1.0 }
}
