//! Backend selection. Devices are always created explicitly (with wgpu and a CPU backend both
//! compiled in, Burn's `Device::default()` would pick wgpu).

use burn::prelude::Device;

/// Backends compiled into this build, default first.
pub fn available() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(feature = "flex") {
        v.push("flex");
    }
    if cfg!(feature = "ndarray") {
        v.push("ndarray");
    }
    if cfg!(feature = "wgpu") {
        v.push("wgpu");
    }
    v
}

/// The device of backend `name` (`None`: the first available CPU backend, else wgpu).
pub fn device(name: Option<&str>) -> Result<(Device, String), String> {
    let avail = available();
    let name = match name {
        Some(n) => n,
        None => avail
            .first()
            .copied()
            .ok_or("this build has no backend feature (flex, ndarray or wgpu)")?,
    };
    match name {
        #[cfg(feature = "flex")]
        "flex" => Ok((Device::flex(), "flex (CPU, pure Rust)".into())),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        "ndarray" => Ok((Device::ndarray(), "ndarray (CPU)".into())),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok((
            Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
            "wgpu (default GPU adapter)".into(),
        )),
        other => Err(format!(
            "backend '{other}' is not in this build (available: {}; enable it with --features)",
            avail.join(", ")
        )),
    }
}

/// Where networks are initialised for `device`: the first CPU backend in this build (a seed then
/// gives the same initial weights on every backend; device generators draw different streams),
/// else `device` itself. Build there after seeding it, then `fork` the module to `device`.
pub fn init_device(device: &Device) -> Device {
    match available().first() {
        #[cfg(feature = "flex")]
        Some(&"flex") => Device::flex(),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        Some(&"ndarray") => Device::ndarray(),
        _ => device.clone(),
    }
}
