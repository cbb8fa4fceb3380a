//! Step figures left on their device and read back together every few steps: a metric then
//! waits for the device once per `every` steps instead of once per step (each read waits
//! until the device has run everything queued before it).

use burn::prelude::*;
use burn::tensor::TensorReadError;

/// Steps' values `[k]` waiting on their device, each with a tag (its weight in a mean, …).
#[derive(Clone, Debug)]
pub struct PendingReads<W> {
    every: usize,
    steps: Vec<(Tensor<1>, W)>,
}

/// Steps read back: each step's values and its tag, in step order.
pub type ReadSteps<W> = Vec<(Vec<f64>, W)>;

impl<W> PendingReads<W> {
    /// Reads back every `every` steps (1: at every step, as the CPU backends do).
    pub fn every(every: usize) -> Self {
        Self {
            every: every.max(1),
            steps: Vec::new(),
        }
    }

    /// Keeps a step's `values`; when `every` steps wait, reads them all back.
    ///
    /// # Errors
    /// When the device fails to hand the values back (they are dropped).
    pub fn push(&mut self, values: Tensor<1>, tag: W) -> Result<ReadSteps<W>, TensorReadError> {
        self.steps.push((values, tag));
        if self.steps.len() < self.every {
            return Ok(Vec::new());
        }
        self.read_all()
    }

    /// Reads every waiting step back (one read of their concatenation), in step order.
    ///
    /// # Errors
    /// When the device fails to hand the values back (they are dropped).
    pub fn read_all(&mut self) -> Result<ReadSteps<W>, TensorReadError> {
        if self.steps.is_empty() {
            return Ok(Vec::new());
        }
        let (tensors, tags): (Vec<Tensor<1>>, Vec<W>) =
            std::mem::take(&mut self.steps).into_iter().unzip();
        let lens: Vec<usize> = tensors.iter().map(|t| t.dims()[0]).collect();
        let all = match tensors.len() {
            1 => tensors.into_iter().next().expect("one step"),
            _ => Tensor::cat(tensors, 0),
        };
        let values: Vec<f64> = crate::device_reads::try_data_as::<f32, 1, _>(all)?
            .iter::<f64>()
            .collect();
        let mut rest = values.as_slice();
        Ok(lens
            .into_iter()
            .zip(tags)
            .map(|(len, tag)| {
                let (step, after) = rest.split_at(len);
                rest = after;
                (step.to_vec(), tag)
            })
            .collect())
    }

    /// Drops the waiting steps.
    pub fn clear(&mut self) {
        self.steps.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps come back in order with their tags, only once `every` wait, and all of them on
    /// `read_all`.
    #[test]
    fn steps_come_back_together_in_order() {
        let device = Device::flex();
        let t = |v: &[f32]| Tensor::<1>::from_floats(v, &device);
        let mut pending = PendingReads::every(2);
        assert!(pending.push(t(&[1.0, 2.0]), 'a').unwrap().is_empty());
        let read = pending.push(t(&[3.0]), 'b').unwrap();
        assert_eq!(read, vec![(vec![1.0, 2.0], 'a'), (vec![3.0], 'b')]);
        assert!(pending.push(t(&[4.0]), 'c').unwrap().is_empty());
        assert_eq!(pending.read_all().unwrap(), vec![(vec![4.0], 'c')]);
        assert!(pending.read_all().unwrap().is_empty());
    }
}
