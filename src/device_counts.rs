//! What training asks of a CubeCL device (wgpu): kernel launches, counted by CubeCL's launch
//! observer while a piece of work is issued, and the device memory its pools hold.

use std::collections::BTreeMap;

/// Kernel launches, by the kernel's name as it names itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LaunchCounts(BTreeMap<&'static str, usize>);

impl LaunchCounts {
    /// All launches.
    pub fn total(&self) -> usize {
        self.0.values().sum()
    }

    /// Adds `other`'s launches to these.
    pub fn add(&mut self, other: &LaunchCounts) {
        for (kernel, n) in &other.0 {
            *self.0.entry(kernel).or_default() += n;
        }
    }

    /// (launches, short kernel name) with kernels of the same short name merged, most
    /// launched first.
    pub fn by_short_name(&self) -> Vec<(usize, String)> {
        let mut merged = BTreeMap::<String, usize>::new();
        for (kernel, n) in &self.0 {
            *merged.entry(short_name(kernel).to_string()).or_default() += n;
        }
        let mut rows: Vec<_> = merged.into_iter().map(|(k, n)| (n, k)).collect();
        rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        rows
    }
}

/// A kernel's type name without its path and generic arguments (as CubeCL's short format).
fn short_name(kernel: &str) -> &str {
    let before_generics = kernel.split('<').next().unwrap_or(kernel);
    before_generics
        .rsplit("::")
        .next()
        .unwrap_or(before_generics)
}

/// Counts the launches it is told of.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
#[derive(Default)]
struct Counter(std::sync::Mutex<LaunchCounts>);

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl cubecl::logging::LaunchObserver for Counter {
    fn launched(&self, kernel: &'static str) {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *counts.0.entry(kernel).or_default() += 1;
    }
}

/// `f`'s result and the kernels launched on any CubeCL device while it ran (on every thread;
/// run nothing else on a device meanwhile).
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub fn count_launches<R>(f: impl FnOnce() -> R) -> (R, LaunchCounts) {
    let counter = std::sync::Arc::new(Counter::default());
    let observation = cubecl::logging::LaunchObservation::new(counter.clone());
    let result = f();
    drop(observation);
    let counts = std::mem::take(&mut *counter.0.lock().unwrap_or_else(|e| e.into_inner()));
    (result, counts)
}

/// MiB the memory pools of the default wgpu device hold (reserved, in use or not).
#[cfg(feature = "wgpu")]
pub fn wgpu_reserved_mib() -> Option<f64> {
    let device = cubecl::Device::wgpu(cubecl::device::WgpuDeviceKind::DefaultDevice).ok()?;
    let usage = device
        .client()
        .memory_report(cubecl::MemoryScope::Device)
        .usage();
    Some(usage.bytes_reserved as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_merge_by_short_name_most_launched_first() {
        let mut counts = LaunchCounts::default();
        counts.0.insert("hm2bp::ops::cube::lif::lif_dense<f32>", 2);
        counts.0.insert("hm2bp::ops::cube::lif::lif_dense<f16>", 1);
        counts.0.insert("burn_cubecl::kernel::cast", 1);
        let mut twice = counts.clone();
        twice.add(&counts);
        assert_eq!(twice.total(), 8);
        assert_eq!(
            twice.by_short_name(),
            vec![(6, "lif_dense".to_string()), (2, "cast".to_string())]
        );
    }
}
