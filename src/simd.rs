//! Eight-lane vectors for the kernels, and the kernels' choice of instruction set at run time.
//!
//! The build targets the architecture's baseline (x86-64: SSE2), so that a binary runs on any
//! machine of its architecture. The kernels that dominate training — the per-sample forward
//! and backward of every layer kind and Adam's update — carry
//! `#[multiversion(targets = "simd")]` (the `multiversion` crate): each is compiled once more
//! per vector extension (x86-64: AVX2 + FMA, SSE4.2; AArch64: NEON), with what it calls inlined
//! into each copy (`#[inline(always)]`), and the best copy the CPU supports is chosen when it
//! is first called. `RUSTFLAGS="-C target-cpu=native"` still compiles everything for the build
//! machine (the choice is then made at compile time). Reading bit-packed trains
//! ([`crate::spikes::SpikeRaster::from_words`]) names its own targets, the vector extensions
//! plus the bit instructions every such CPU has (`popcnt`, BMI): the baseline counts bits
//! without `popcnt`, a few times slower.
//!
//! [`F32x8`] is a plain lane array, and the kernels work on it in lane loops, always inlined,
//! that each copy turns into its instruction set's vectors (one 256-bit register with AVX2,
//! two 128-bit ones with SSE2); [`Vectors`] supplies what the compiler does not find on its
//! own (a lane mask as bits).
//!
//! The result is the same, bit for bit, whichever instruction set runs: the operations are
//! IEEE `f32` operations in the order written (Rust neither contracts `a * b + c` into a fused
//! multiply-add nor reorders sums), so rasters match the authors' golden data on every CPU.

use std::ops::{Add, AddAssign};

use bytemuck::{Pod, Zeroable};

/// The vector instructions this CPU has beyond the build's baseline, detected at run time, for
/// the few operations that the compiler does not find on its own in lane loops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vectors {
    /// AVX (x86-64).
    avx: bool,
}

impl Vectors {
    /// What this CPU has (detection is cached by the standard library).
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        let avx = std::arch::is_x86_feature_detected!("avx");
        #[cfg(not(target_arch = "x86_64"))]
        let avx = false;
        Self { avx }
    }

    /// Bit `k` set where lane `k` of `a` is greater than `b` (one compare and `vmovmskps`
    /// with AVX).
    #[inline(always)]
    pub fn above(self, a: F32x8, b: f32) -> u32 {
        #[cfg(target_arch = "x86_64")]
        if self.avx {
            use std::arch::x86_64::{
                _CMP_GT_OQ, _mm256_cmp_ps, _mm256_movemask_ps, _mm256_set1_ps,
            };
            // SAFETY: `avx` is set only where the CPU has AVX; `F32x8` is 32 floats, 32-byte
            // aligned, layout-compatible with `__m256`.
            return unsafe {
                let a = std::mem::transmute::<F32x8, std::arch::x86_64::__m256>(a);
                _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(a, _mm256_set1_ps(b))) as u32
            };
        }
        a.0.iter()
            .enumerate()
            .fold(0, |m, (k, &x)| m | (u32::from(x > b) << k))
    }
}

/// Lanes of one vector.
pub const LANES: usize = 8;

/// Eight `f32` lanes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
#[repr(C, align(32))]
pub struct F32x8(pub [f32; LANES]);

impl F32x8 {
    /// All lanes `0.0`.
    pub const ZERO: Self = Self([0.0; LANES]);

    /// All lanes `x`.
    #[inline(always)]
    pub const fn splat(x: f32) -> Self {
        Self([x; LANES])
    }

    /// The lanes as an array.
    #[inline(always)]
    pub const fn to_array(self) -> [f32; LANES] {
        self.0
    }
}

impl From<[f32; LANES]> for F32x8 {
    #[inline(always)]
    fn from(a: [f32; LANES]) -> Self {
        Self(a)
    }
}

impl Add for F32x8 {
    type Output = Self;
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Self(std::array::from_fn(|k| self.0[k] + o.0[k]))
    }
}

impl AddAssign for F32x8 {
    #[inline(always)]
    fn add_assign(&mut self, o: Self) {
        *self = *self + o;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_add_and_compare_as_bits_on_every_path() {
        let a = F32x8::from([1.0, -2.0, 3.0, 0.5, 0.0, -0.0, 7.0, f32::NAN]);
        assert_eq!(
            (a + F32x8::splat(2.0)).0[..7],
            [3.0, 0.0, 5.0, 2.5, 2.0, 2.0, 9.0]
        );
        let portable = Vectors { avx: false };
        assert_eq!(portable.above(a, 2.0), 0b0100_0100);
        assert_eq!(portable.above(a, -0.0), 0b0100_1101);
        let detected = Vectors::detect();
        for b in [2.0, -0.0, 0.0, -3.0, 8.0, f32::NAN] {
            assert_eq!(detected.above(a, b), portable.above(a, b), "{b}");
        }
    }
}
