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

/// The device of backend `name` (`None`: the first available CPU backend, else wgpu) and its
/// description. On wgpu the description names the adapter, and a software adapter on the CPU
/// (lavapipe, llvmpipe: slower than `flex`) is refused unless `allow_software_gpu`, so that a
/// machine without its GPU's Vulkan driver does not train on the CPU unnoticed.
#[cfg_attr(not(feature = "wgpu"), allow(unused_variables))]
pub fn device(name: Option<&str>, allow_software_gpu: bool) -> Result<(Device, String), String> {
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
        "wgpu" => wgpu_device(allow_software_gpu),
        other => Err(format!(
            "backend '{other}' is not in this build (available: {}; enable it with --features)",
            avail.join(", ")
        )),
    }
}

/// The wgpu device of the default adapter, described by the adapter's name; refused on a
/// software adapter unless `allow_software`.
#[cfg(feature = "wgpu")]
fn wgpu_device(allow_software: bool) -> Result<(Device, String), String> {
    use cubecl::device::WgpuDeviceKind;
    if !cubecl::Device::enumerate_all()
        .iter()
        .any(|d| matches!(d, cubecl::Device::Wgpu(_)))
    {
        return Err(
            "wgpu finds no adapter (no Vulkan, Metal or DX12 driver): install the \
                    GPU's driver, or use --backend flex"
                .into(),
        );
    }
    let client = cubecl::Device::wgpu(WgpuDeviceKind::DefaultDevice)
        .map_err(|e| format!("wgpu: {e}"))?
        .client();
    let identity = &client.properties().identity;
    // cubecl describes a CPU adapter (a software rasteriser) as no physical card.
    let software = identity.physical.is_none();
    if software && !allow_software {
        return Err(format!(
            "wgpu's default adapter is '{}', a software device on the CPU (slower than --backend \
             flex): install the GPU's Vulkan driver, or pass --allow-software-gpu to run on it",
            identity.name
        ));
    }
    let kind = if software {
        "software, on the CPU"
    } else {
        "GPU"
    };
    let device = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    Ok((device, format!("wgpu on {} ({kind})", identity.name)))
}

/// Whether `device` keeps tensors in host memory (the CPU backends).
pub fn on_host(device: &Device) -> bool {
    match device.clone().inner().as_dispatch() {
        #[cfg(feature = "flex")]
        burn::backend::DispatchDevice::Flex(_) => true,
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        burn::backend::DispatchDevice::NdArray(_) => true,
        _ => false,
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
