//! Blocking device→host reads. Every read hm2bp's code makes of a tensor's values goes through
//! this module (clippy's `disallowed-methods`, in `clippy.toml`, keeps it so), and each is
//! counted, so that `experiment bench` can print `reads/step` and `tests/wgpu.rs` can assert
//! that a training step on a device makes none.
//!
//! The count is one process-wide counter that only ever grows, read as a difference around
//! the work to attribute (as CubeCL's launch observer counts launches process-wide): it
//! sees the reads of every thread, including burn-train's metric thread, so a caller
//! measuring a step runs nothing else meanwhile. Reads inside Burn itself are not seen: in a
//! training step (forward, autodiff's backward, the fused Adam) Burn makes none.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::tensor::kind::Basic;
use burn::tensor::{Element, ExecutionError, Tensor, TensorData, TensorReadError};

static READS: AtomicU64 = AtomicU64::new(0);

/// Blocking reads made so far in this process, on any thread.
pub fn reads_so_far() -> u64 {
    READS.load(Ordering::Relaxed)
}

fn count() {
    READS.fetch_add(1, Ordering::Relaxed);
}

/// `tensor`'s values, read from its device.
///
/// # Errors
/// When the device fails to hand them back.
#[expect(clippy::disallowed_methods, reason = "the counted read")]
pub fn try_data<const D: usize, K: Basic>(
    tensor: Tensor<D, K>,
) -> Result<TensorData, ExecutionError> {
    count();
    tensor.try_into_data()
}

/// `tensor`'s values, read from its device, as `E`.
///
/// # Errors
/// When the device fails to hand them back or they cannot be converted.
#[expect(clippy::disallowed_methods, reason = "the counted read")]
pub fn try_data_as<E: Element, const D: usize, K: Basic>(
    tensor: Tensor<D, K>,
) -> Result<TensorData, TensorReadError> {
    count();
    tensor.try_into_data_as::<E>()
}

/// `tensor`'s values, read from its device.
///
/// # Panics
/// When the device fails to hand them back (`what` names the tensor in the message).
pub fn data<const D: usize, K: Basic>(tensor: Tensor<D, K>, what: &str) -> TensorData {
    try_data(tensor).unwrap_or_else(|e| panic!("hm2bp: reading {what} from its device: {e:?}"))
}

/// The one value of a one-element `tensor`, read from its device, as `E`.
///
/// # Panics
/// When the device fails to hand it back or the tensor does not hold one element.
#[expect(clippy::disallowed_methods, reason = "the counted read")]
pub fn scalar<E: Element, const D: usize, K: Basic>(tensor: Tensor<D, K>, what: &str) -> E {
    count();
    tensor
        .try_into_scalar::<E>()
        .unwrap_or_else(|e| panic!("hm2bp: reading {what} from its device: {e:?}"))
}

/// The data a backend-level read (`B::float_into_data` and kin) hands back, waited for.
///
/// # Panics
/// When the device fails to hand it back (`what` names the tensor in the message): a
/// training step cannot go on without it.
pub fn primitive(
    what: &str,
    data: impl Future<Output = Result<TensorData, ExecutionError>>,
) -> TensorData {
    count();
    #[expect(clippy::disallowed_methods, reason = "the counted read")]
    burn::tensor::read_sync(data)
        .unwrap_or_else(|e| panic!("hm2bp: reading {what} from its device failed: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::Device;

    #[test]
    fn every_read_is_counted() {
        let device = Device::flex();
        let t = Tensor::<1>::from_data([1.0f32, 2.0], &device);
        let before = reads_so_far();
        let values = data(t.clone(), "t").try_to_vec::<f32>().unwrap();
        let sum: f32 = scalar(t.clone().sum(), "the sum");
        let as_f64 = try_data_as::<f64, 1, _>(t)
            .unwrap()
            .try_to_vec::<f64>()
            .unwrap();
        // Other tests of this process may read meanwhile: at least these three.
        assert!(reads_so_far() - before >= 3);
        assert_eq!((values, sum, as_f64), (vec![1.0, 2.0], 3.0, vec![1.0, 2.0]));
    }
}
