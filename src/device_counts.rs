//! What training asks of a CubeCL device (wgpu): kernel launches, counted by CubeCL's launch
//! observer while a piece of work is issued, and the device memory its pools hold.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cubecl::logging::{LaunchObservation, LaunchObserver};

/// Counts the launches it is told of.
#[derive(Default)]
struct Counter(AtomicUsize);

impl LaunchObserver for Counter {
    fn launched(&self, _kernel: &'static str) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// `f`'s result and the kernels launched on any CubeCL device while it ran (on every thread;
/// run nothing else on a device meanwhile).
pub fn count_launches<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let counter = Arc::new(Counter::default());
    let observation = LaunchObservation::new(counter.clone());
    let result = f();
    drop(observation);
    (result, counter.0.load(Ordering::Relaxed))
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
