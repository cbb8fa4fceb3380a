//! Data-parallel steps: a global batch split into shards, one per worker (the ranks of an
//! `mpirun` job, or `--virtual-workers` in one process), whose gradients are summed in a fixed
//! order, so that N ranks and N virtual workers give the same bits.
//!
//! A shard's loss is `Σ_b loss_b / G` over its samples (`G` the global batch), the same factor
//! as the batch mean of a single process; HM2-BP's weight gradient is a sum of per-sample
//! terms, so the shards' gradients add up to the batch's (in another summation order). The
//! weight regulariser's penalty, added once per step, is differentiated once after the sum.
//!
//! Every worker learns every shard's outputs (counts, labels, sample indices, per-sample
//! losses, layer activity sums) before the backward, so the metrics, boosting's records and
//! the numerical-fault watch see the global batch, identically on every rank.

use std::sync::Arc;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::train::ClassificationOutput;

use super::classifier::{Forward, SpikingClassifier, StepOutput};
use super::collective::{Collective, Solo, fold_in_order};
use super::data::SpikeBatch;
use super::metrics::LayerActivity;
use super::shards::part_sizes;
use super::wire::ShardRecord;

/// Who trains a run: the ranks of the job and the virtual workers of this process.
#[derive(Clone, Debug)]
pub struct Workers {
    virtual_workers: usize,
    collective: Arc<dyn Collective>,
}

impl Default for Workers {
    fn default() -> Self {
        Self {
            virtual_workers: 1,
            collective: Arc::new(Solo),
        }
    }
}

impl Workers {
    /// `virtual_workers` shards per process, the processes exchanging through `collective`
    /// (one of the two must be 1: virtual workers fold in another order than ranks).
    pub fn new(virtual_workers: usize, collective: Arc<dyn Collective>) -> Result<Self, String> {
        if virtual_workers == 0 {
            return Err("--virtual-workers must be at least 1".into());
        }
        if virtual_workers > 1 && collective.ranks() > 1 {
            return Err(format!(
                "--virtual-workers {virtual_workers} under mpirun with {} ranks: use one or the \
                 other",
                collective.ranks()
            ));
        }
        Ok(Self {
            virtual_workers,
            collective,
        })
    }

    /// Whether steps are split into shards.
    pub fn is_sharded(&self) -> bool {
        self.parts() > 1
    }

    /// Shards of a global batch.
    pub fn parts(&self) -> usize {
        self.virtual_workers * self.collective.ranks()
    }

    /// This process among the ranks.
    pub fn rank(&self) -> usize {
        self.collective.rank()
    }

    /// Ranks of the job.
    pub fn ranks(&self) -> usize {
        self.collective.ranks()
    }

    /// Whether this process writes the run's files (rank 0).
    pub fn is_writer(&self) -> bool {
        self.rank() == 0
    }

    /// The exchange between ranks.
    pub fn collective(&self) -> &dyn Collective {
        self.collective.as_ref()
    }

    /// ", data-parallel over R ranks" / ", in V virtual workers" (empty for one worker).
    pub fn describe(&self) -> String {
        match (self.ranks(), self.virtual_workers) {
            (1, 1) => String::new(),
            (1, v) => format!(" split among {v} virtual workers"),
            (r, _) => format!(" split among {r} ranks"),
        }
    }

    /// This process's shards of its batch of `n` samples.
    fn local_sizes(&self, n: usize) -> Vec<usize> {
        part_sizes(n, self.virtual_workers)
    }
}

/// A sharded step's outputs for the global batch.
pub struct GlobalOutput {
    /// Metrics' view: loss (count loss, without the penalty), counts, labels, activity.
    pub step: StepOutput,
    /// The samples of the global batch, in order.
    pub indices: Vec<u64>,
    /// The count loss of the global batch (the value inside `step`, kept on the host).
    pub loss: f32,
}

/// One data-parallel training step of `model` on this process's `batch`: the summed
/// gradient (every rank the same bits), the global batch's outputs, the total loss `[1]`.
pub fn train_step(
    model: &SpikingClassifier,
    batch: SpikeBatch,
    workers: &Workers,
) -> (GradientsParams, GlobalOutput, Tensor<1>) {
    let device = batch.labels.device();
    let (forwards, records, global) = forward_shards(model, batch, workers);
    let mut flat = FlatGrads::default();
    for forward in forwards {
        let loss = forward.loss.sum().div_scalar(global as f32);
        flat.add(GradientsParams::from_grads(loss.backward(), model), model);
    }
    workers.collective().ordered_sum(&mut flat.values);
    let mut penalty_value = 0.0;
    if let Some(penalty) = model.penalty() {
        penalty_value = crate::device_reads::scalar(penalty.clone(), "the penalty");
        // λ = 0 makes the penalty a constant, with no graph to differentiate.
        if penalty.is_tracked() {
            flat.add(
                GradientsParams::from_grads(penalty.backward(), model),
                model,
            );
        }
    }
    let out = combine(&records, global, &device);
    let total = Tensor::from_data(
        TensorData::new(vec![out.loss + penalty_value], [1]),
        &device,
    );
    (flat.into_grads(model), out, total)
}

/// One data-parallel evaluation step: the global batch's outputs.
pub fn inference_step(
    model: &SpikingClassifier,
    batch: SpikeBatch,
    workers: &Workers,
) -> GlobalOutput {
    let device = batch.labels.device();
    let (_, records, global) = forward_shards(model, batch, workers);
    combine(&records, global, &device)
}

/// The forward passes of this process's shards of `batch`, every shard's record (all ranks)
/// and the global batch size.
fn forward_shards(
    model: &SpikingClassifier,
    batch: SpikeBatch,
    workers: &Workers,
) -> (Vec<Forward>, Vec<ShardRecord>, usize) {
    let sizes = workers.local_sizes(batch.indices.len());
    let shards = batch.split(&sizes);
    let forwards: Vec<Forward> = shards.iter().map(|s| model.forward(s)).collect();
    let records = gather(&shards, &forwards, workers);
    let global = records.iter().map(ShardRecord::len).sum();
    (forwards, records, global)
}

/// Every shard's record, in global order (rank by rank, each rank's shards in order).
fn gather(shards: &[SpikeBatch], forwards: &[Forward], workers: &Workers) -> Vec<ShardRecord> {
    let local: Vec<ShardRecord> = shards
        .iter()
        .zip(forwards)
        .map(|(s, f)| ShardRecord::of(s, f))
        .collect();
    if workers.ranks() == 1 {
        return local;
    }
    let bytes = ShardRecord::encode_all(&local);
    workers
        .collective()
        .all_gather(&bytes)
        .iter()
        .enumerate()
        .flat_map(|(rank, b)| {
            ShardRecord::decode_all(b)
                .unwrap_or_else(|e| panic!("hm2bp: the step record of rank {rank}: {e}"))
        })
        .collect()
}

/// The global batch's outputs from its shards' records.
fn combine(records: &[ShardRecord], global: usize, device: &Device) -> GlobalOutput {
    let classes = records.first().map_or(0, |r| r.classes);
    let cat = |f: &dyn Fn(&ShardRecord) -> &[f32]| -> Vec<f32> {
        records.iter().flat_map(|r| f(r).iter().copied()).collect()
    };
    let mut loss = 0.0_f32;
    fold_in_order(
        std::slice::from_mut(&mut loss),
        records.iter().map(|r| std::slice::from_ref(&r.loss_sum)),
    );
    let loss = loss / global as f32;
    let counts = cat(&|r| &r.counts);
    let labels: Vec<i64> = records.iter().flat_map(|r| r.labels.clone()).collect();
    let indices: Vec<u64> = records.iter().flat_map(|r| r.indices.clone()).collect();
    let layers = records.first().map_or(0, |r| r.layers.len());
    let activity = (0..layers)
        .map(|k| {
            let partials: Vec<&[f32]> = records.iter().map(|r| &r.layers[k][..]).collect();
            let mut sums = vec![0.0_f32; partials[0].len()];
            fold_in_order(&mut sums, partials);
            LayerActivity::of_sums(&sums, global, device)
        })
        .collect();
    let classification = ClassificationOutput::new(
        Tensor::from_data(TensorData::new(vec![loss], [1]), device),
        Tensor::from_data(TensorData::new(counts, [global, classes]), device),
        Tensor::from_data(TensorData::new(labels, [global]), device),
    );
    GlobalOutput {
        step: StepOutput {
            classification,
            activity,
        },
        indices,
        loss,
    }
}

/// A gradient as one host vector, parameters in the model's visiting order.
#[derive(Default)]
struct FlatGrads {
    values: Vec<f32>,
    /// Per parameter: the device of its gradient, if any addend had one.
    devices: Vec<Option<Device>>,
}

impl FlatGrads {
    /// Adds `grads` (of `model`'s parameters) element by element: `values + grads`.
    fn add(&mut self, mut grads: GradientsParams, model: &SpikingClassifier) {
        let mut visitor = Flatten {
            grads: &mut grads,
            out: Vec::with_capacity(self.values.len()),
            devices: Vec::new(),
        };
        model.visit(&mut visitor);
        if self.devices.is_empty() {
            self.values = visitor.out;
            self.devices = visitor.devices;
            return;
        }
        for (acc, g) in self.values.iter_mut().zip(visitor.out) {
            *acc += g;
        }
        for (mine, theirs) in self.devices.iter_mut().zip(visitor.devices) {
            if mine.is_none() {
                *mine = theirs;
            }
        }
    }

    /// The gradient as burn's per-parameter tensors (parameters without one stay without).
    fn into_grads(self, model: &SpikingClassifier) -> GradientsParams {
        let mut visitor = Unflatten {
            values: &self.values,
            devices: self.devices.into_iter(),
            at: 0,
            grads: GradientsParams::new(),
        };
        model.visit(&mut visitor);
        visitor.grads
    }
}

/// Reads every parameter's gradient (zeros where a parameter has none) into one vector.
struct Flatten<'a> {
    grads: &'a mut GradientsParams,
    out: Vec<f32>,
    devices: Vec<Option<Device>>,
}

impl ModuleVisitor for Flatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // Taken, not cloned: the only handle, its data moves out without a copy.
        match self.grads.remove::<D>(param.id) {
            Some(g) => {
                self.devices.push(Some(g.device()));
                let data = crate::device_reads::data(g, "a gradient").convert::<f32>();
                let values = data
                    .as_slice::<f32>()
                    .unwrap_or_else(|e| panic!("hm2bp: reading a gradient: {e:?}"));
                self.out.extend_from_slice(values);
            }
            None => {
                self.devices.push(None);
                let n = param.val().shape().num_elements();
                self.out.extend(std::iter::repeat_n(0.0, n));
            }
        }
    }
}

/// Hands every parameter that has a gradient its slice of one gradient vector.
struct Unflatten<'a, I> {
    values: &'a [f32],
    devices: I,
    at: usize,
    grads: GradientsParams,
}

impl<I: Iterator<Item = Option<Device>>> ModuleVisitor for Unflatten<'_, I> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let shape = param.val().shape();
        let n = shape.num_elements();
        let slice = &self.values[self.at..self.at + n];
        self.at += n;
        if let Some(Some(device)) = self.devices.next() {
            let data = TensorData::new(slice.to_vec(), shape);
            self.grads
                .register::<D>(param.id, Tensor::<D>::from_data(data, &device));
        }
    }
}
