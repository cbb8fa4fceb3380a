//! The training metrics: accuracy and loss (as burn-train's), layer activity (firing rate,
//! fraction of silent neurons, dead neurons over an epoch) and the authors' logged cost, each
//! computed on the step's device and read back every few steps ([`PendingReads`]; every step
//! on the CPU backends).

use std::sync::Arc;

use burn::backend::Dispatch;
use burn::prelude::*;
use burn::tensor::TensorReadError;

use super::pending::{PendingReads, ReadSteps};
use crate::loss::logged_cost;
use crate::ops::Hm2bpBackend;
use crate::rule::output::{CountTargets, label_spike_steps};
use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes, NumericEntry,
    SerializedEntry, format_float,
};

/// What a step tells about one layer: `[mean spike count per neuron and sample, fraction of
/// (sample, neuron) pairs without a spike, spikes of every neuron summed over the batch…]`,
/// `[2 + N]`, one tensor (read back when a metric asks for it, not sliced on a device).
#[derive(Clone, Debug)]
pub struct LayerActivity {
    /// `[rate, silent, per-neuron sums…]`.
    pub figures: Tensor<1>,
}

/// [`LayerActivity`]'s figures on the host.
pub struct ActivityFigures {
    /// Mean spike count per neuron and sample.
    pub rate: f64,
    /// Fraction of (sample, neuron) pairs without a spike.
    pub silent: f64,
    /// Spikes of every neuron summed over the batch.
    pub per_neuron: Vec<f64>,
}

impl ActivityFigures {
    /// The figures from a [`LayerActivity`]'s values read back, `[rate, silent, per-neuron…]`.
    pub fn of_values(values: &[f64]) -> Self {
        Self {
            rate: values[0],
            silent: values[1],
            per_neuron: values[2..].to_vec(),
        }
    }
}

impl LayerActivity {
    /// The activity of a layer's spike counts `[B, N]`.
    pub fn of_counts(counts: Tensor<2>) -> Self {
        let n = counts.dims()[1];
        if !crate::backend::on_host(&counts.device()) {
            return Self::on_device(counts);
        }
        let figures = Tensor::cat(
            vec![
                counts.clone().mean().reshape([1]),
                counts.clone().equal_elem(0.0).float().mean().reshape([1]),
                counts.sum_dim(0).reshape([n]),
            ],
            0,
        );
        Self { figures }
    }

    /// [`of_counts`](Self::of_counts) as one op ([`crate::ops::activity`]): one kernel per
    /// layer on devices. The tensors are not on the autodiff graph.
    pub fn on_device(counts: Tensor<2>) -> Self {
        let figures =
            Tensor::from_dispatch(Dispatch::layer_activity(counts.inner().into_dispatch()));
        Self { figures }
    }

    /// The activity of `samples` samples from summed shard figures
    /// `[Σ counts, Σ silent, per-neuron counts…]` (see [`super::wire::ShardRecord`]).
    pub fn of_sums(sums: &[f32], samples: usize, device: &Device) -> Self {
        let n = sums.len() - 2;
        let cells = (samples * n) as f32;
        let mut figures = vec![sums[0] / cells, sums[1] / cells];
        figures.extend_from_slice(&sums[2..]);
        Self {
            figures: Tensor::from_data(TensorData::new(figures, [2 + n]), device),
        }
    }

    /// The figures, read back.
    pub fn read(&self) -> Result<ActivityFigures, TensorReadError> {
        let values: Vec<f64> = crate::device_reads::try_data_as::<f32, 1, _>(self.figures.clone())?
            .iter::<f64>()
            .collect();
        Ok(ActivityFigures::of_values(&values))
    }

    /// The same figures off the autodiff graph.
    pub fn without_autodiff(self) -> Self {
        Self {
            figures: self.figures.without_autodiff(),
        }
    }
}

/// Every layer's activity in a step, bottom-up.
pub struct ActivityInput(pub Vec<LayerActivity>);

/// A figure that is averaged over an epoch's steps.
pub trait StepFigure: Clone + Send + Sync {
    /// What a step hands the figure.
    type Input;
    /// The metric's name.
    fn name(&self) -> String;
    /// The step's values, left on its device, and the step's weight in the mean.
    fn of_step(&self, input: &Self::Input) -> (Tensor<1>, usize);
    /// The step's figure from its values read back.
    fn figure(&self, values: &[f64], weight: usize) -> f64;
    /// The unit shown after the value, if any.
    fn unit(&self) -> Option<&'static str> {
        None
    }
    /// Decimals shown.
    fn precision(&self) -> usize {
        3
    }
    /// Whether a higher value is better.
    fn higher_is_better(&self) -> bool {
        false
    }
}

/// The epoch mean of a [`StepFigure`] as a burn-train numeric metric, its steps' values read
/// back every `read_every` steps and when the epoch's mean is computed ([`PendingReads`]).
#[derive(Clone)]
pub struct MeanMetric<F> {
    figure: F,
    name: MetricName,
    state: NumericMetricState,
    pending: PendingReads<usize>,
}

impl<F: StepFigure> MeanMetric<F> {
    /// The metric of `figure`, read back every `read_every` steps.
    pub fn new(figure: F, read_every: usize) -> Self {
        Self {
            name: Arc::new(figure.name()),
            figure,
            state: NumericMetricState::default(),
            pending: PendingReads::every(read_every),
        }
    }

    fn format(&self) -> FormatOptions {
        let format = FormatOptions::new(self.name()).precision(self.figure.precision());
        match self.figure.unit() {
            Some(unit) => format.unit(unit),
            None => format,
        }
    }

    /// Adds the steps read back to the mean; the entry: burn-train's own for one step, else
    /// the steps' weighted mean and total weight (none: weight 0, the last figure shown).
    fn add(&mut self, read: ReadSteps<usize>) -> SerializedEntry {
        if let [(values, weight)] = read.as_slice() {
            let value = self.figure.figure(values, *weight);
            self.state.update(value, *weight);
            return self.state.compute_update(self.format());
        }
        let (mut sum, mut weights) = (0.0, 0);
        for (values, weight) in read {
            let value = self.figure.figure(&values, weight);
            self.state.update(value, weight);
            sum += value * weight as f64;
            weights += weight;
        }
        let batch = match weights {
            0 => self.state.current_value().current(),
            _ => sum / weights as f64,
        };
        let (p, unit) = (self.figure.precision(), self.figure.unit());
        let unit = unit.map(|u| format!(" {u}")).unwrap_or_default();
        let epoch = self.state.running_value().current();
        let shown = format!(
            "epoch {}{unit} - batch {}{unit}",
            format_float(epoch, p),
            format_float(batch, p)
        );
        let serialized = NumericEntry::Aggregated {
            aggregated_value: if weights > 0 { batch } else { 0.0 },
            count: weights,
        };
        SerializedEntry::new(shown, serialized.serialize())
    }
}

impl<F: StepFigure> Metric for MeanMetric<F> {
    type Input = F::Input;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(
        &mut self,
        item: &F::Input,
        _metadata: &MetricMetadata,
    ) -> Result<SerializedEntry, TensorReadError> {
        let (values, weight) = self.figure.of_step(item);
        let read = self.pending.push(values, weight)?;
        Ok(self.add(read))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        let read = self.pending.read_all()?;
        self.add(read);
        Ok(self.state.compute_final(self.format()))
    }

    fn clear(&mut self) {
        self.state.reset();
        self.pending.clear();
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: self.figure.unit().map(str::to_string),
            higher_is_better: self.figure.higher_is_better(),
        }
        .into()
    }
}

impl<F: StepFigure> Numeric for MeanMetric<F> {
    fn value(&self) -> Option<NumericEntry> {
        Some(self.state.current_value())
    }

    fn running_value(&self) -> Option<NumericEntry> {
        Some(self.state.running_value())
    }

    fn final_value(&self) -> NumericEntry {
        self.state.final_value()
    }
}

/// What a step hands [`LossFigure`]: the loss `[1]` (a batch mean) or `[B]`.
pub struct StepLoss(pub Tensor<1>);

/// The loss, as burn-train's `LossMetric` shows it ("Loss", the mean of the step's loss
/// tensor weighted by that tensor's length), read back every few steps.
#[derive(Clone, Debug)]
pub struct LossFigure;

impl LossFigure {
    /// The metric, read back every `read_every` steps.
    pub fn metric(read_every: usize) -> MeanMetric<Self> {
        MeanMetric::new(Self, read_every)
    }
}

impl StepFigure for LossFigure {
    type Input = StepLoss;

    fn name(&self) -> String {
        "Loss".to_string()
    }

    fn of_step(&self, item: &StepLoss) -> (Tensor<1>, usize) {
        let [len] = item.0.dims();
        // The mean of one value is that value: no operation for a batch mean.
        let mean = match len {
            1 => item.0.clone(),
            _ => item.0.clone().mean(),
        };
        (mean, len)
    }

    fn figure(&self, values: &[f64], _weight: usize) -> f64 {
        values[0]
    }

    fn precision(&self) -> usize {
        2
    }
}

/// The accuracy in %, as burn-train's `AccuracyMetric` shows it ("Accuracy": the samples whose
/// largest output count is their class), read back every few steps.
#[derive(Clone, Debug)]
pub struct AccuracyFigure;

impl AccuracyFigure {
    /// The metric, read back every `read_every` steps.
    pub fn metric(read_every: usize) -> MeanMetric<Self> {
        MeanMetric::new(Self, read_every)
    }
}

impl StepFigure for AccuracyFigure {
    type Input = CountsInput;

    fn name(&self) -> String {
        "Accuracy".to_string()
    }

    fn of_step(&self, item: &CountsInput) -> (Tensor<1>, usize) {
        let batch = item.counts.dims()[0];
        let predicted = item.counts.clone().argmax(1).reshape([batch]);
        let matches = predicted.equal(item.labels.clone()).float().sum();
        (matches, batch)
    }

    fn figure(&self, values: &[f64], weight: usize) -> f64 {
        100.0 * (values[0] / weight as f64)
    }

    fn unit(&self) -> Option<&'static str> {
        Some("%")
    }

    fn precision(&self) -> usize {
        2
    }

    fn higher_is_better(&self) -> bool {
        true
    }
}

/// Which activity figure a metric shows.
#[derive(Clone, Copy, Debug)]
pub enum Activity {
    /// Mean spikes per neuron per sample.
    SpikesPerNeuron,
    /// Fraction of neurons that never fired on a sample, in %.
    SilentPercent,
}

/// One activity figure of one layer.
#[derive(Clone, Debug)]
pub struct ActivityFigure {
    layer: usize,
    label: String,
    kind: Activity,
}

impl ActivityFigure {
    /// The figure of `layer` (0-based) named after `label` (e.g. "hidden 1"), read back every
    /// `read_every` steps.
    pub fn metric(
        layer: usize,
        label: &str,
        kind: Activity,
        read_every: usize,
    ) -> MeanMetric<Self> {
        let figure = Self {
            layer,
            label: label.to_string(),
            kind,
        };
        MeanMetric::new(figure, read_every)
    }
}

impl StepFigure for ActivityFigure {
    type Input = ActivityInput;

    fn name(&self) -> String {
        match self.kind {
            Activity::SpikesPerNeuron => format!("Spikes per neuron {}", self.label),
            Activity::SilentPercent => format!("Silent % {}", self.label),
        }
    }

    fn of_step(&self, item: &ActivityInput) -> (Tensor<1>, usize) {
        (item.0[self.layer].figures.clone(), 1)
    }

    fn figure(&self, values: &[f64], _weight: usize) -> f64 {
        let figures = ActivityFigures::of_values(values);
        match self.kind {
            Activity::SpikesPerNeuron => figures.rate,
            Activity::SilentPercent => 100.0 * figures.silent,
        }
    }
}

/// Neurons of one layer that did not fire on any sample of the epoch so far ("dead"), the
/// steps' per-neuron sums read back every few steps.
#[derive(Clone)]
pub struct DeadNeuronMetric {
    layer: usize,
    name: MetricName,
    totals: Vec<f64>,
    pending: PendingReads<()>,
}

impl DeadNeuronMetric {
    /// The metric of `layer` (0-based) named after `label`, read back every `read_every`
    /// steps.
    pub fn new(layer: usize, label: &str, read_every: usize) -> Self {
        Self {
            layer,
            name: Arc::new(format!("Dead neurons {label}")),
            totals: Vec::new(),
            pending: PendingReads::every(read_every),
        }
    }

    /// Adds the steps read back to the totals; the entry.
    fn add(&mut self, read: ReadSteps<()>) -> SerializedEntry {
        for (values, ()) in read {
            let sums = ActivityFigures::of_values(&values).per_neuron;
            if self.totals.is_empty() {
                self.totals = sums;
            } else {
                for (t, s) in self.totals.iter_mut().zip(sums) {
                    *t += s;
                }
            }
        }
        let dead = self.totals.iter().filter(|&&t| t == 0.0).count();
        SerializedEntry::new(format!("{}: {dead}", self.name), dead.to_string())
    }
}

impl Metric for DeadNeuronMetric {
    type Input = ActivityInput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(
        &mut self,
        item: &ActivityInput,
        _metadata: &MetricMetadata,
    ) -> Result<SerializedEntry, TensorReadError> {
        let read = self.pending.push(item.0[self.layer].figures.clone(), ())?;
        Ok(self.add(read))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        let read = self.pending.read_all()?;
        Ok(self.add(read))
    }

    fn clear(&mut self) {
        self.totals.clear();
        self.pending.clear();
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: None,
            higher_is_better: false,
        }
        .into()
    }
}

impl Numeric for DeadNeuronMetric {
    fn value(&self) -> Option<NumericEntry> {
        Some(self.final_value())
    }

    fn running_value(&self) -> Option<NumericEntry> {
        Some(self.final_value())
    }

    fn final_value(&self) -> NumericEntry {
        let dead = self.totals.iter().filter(|&&t| t == 0.0).count();
        NumericEntry::Final(dead as f64)
    }
}

/// Output counts and labels of a step, for [`AuthorsCost`].
pub struct CountsInput {
    /// Output spike counts `[B, C]`.
    pub counts: Tensor<2>,
    /// Classes `[B]`.
    pub labels: Tensor<1, Int>,
}

/// The authors' logged cost per sample ([`crate::loss::logged_cost`]).
#[derive(Clone, Debug)]
pub struct AuthorsCost {
    targets: CountTargets,
    inserted: f32,
}

impl AuthorsCost {
    /// The cost for `targets`, a silent label neuron receiving the spikes of
    /// [`label_spike_steps`]`(steps, level)`, read back every `read_every` steps.
    pub fn metric(
        targets: CountTargets,
        (steps, level): (usize, u32),
        read_every: usize,
    ) -> MeanMetric<Self> {
        let figure = Self {
            targets,
            inserted: label_spike_steps(steps, level).count() as f32,
        };
        MeanMetric::new(figure, read_every)
    }
}

impl StepFigure for AuthorsCost {
    type Input = CountsInput;

    fn name(&self) -> String {
        super::summary::COST_METRIC.to_string()
    }

    fn of_step(&self, item: &CountsInput) -> (Tensor<1>, usize) {
        let batch = item.counts.dims()[0];
        let cost = logged_cost(
            item.counts.clone(),
            item.labels.clone(),
            &self.targets,
            self.inserted,
        );
        (cost.mean(), batch)
    }

    fn figure(&self, values: &[f64], _weight: usize) -> f64 {
        values[0]
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests read tensors directly")]
mod tests {
    use super::*;
    use burn::data::dataloader::Progress;
    use burn::train::metric::{AccuracyInput, AccuracyMetric, LossInput, LossMetric};

    fn metadata() -> MetricMetadata {
        MetricMetadata {
            progress: Progress::new(1, 1, None),
            iteration: None,
            lr: None,
        }
    }

    /// Five steps' counts `[4, 3]`, classes and losses `[1]`.
    fn steps() -> Vec<(Tensor<2>, Tensor<1, Int>, Tensor<1>)> {
        let device = Device::flex();
        (0..5)
            .map(|k| {
                let counts: Vec<f32> = (0..12).map(|i| ((i * 7 + k * 5) % 11) as f32).collect();
                let labels: Vec<i64> = (0..4).map(|i| ((i + k) % 3) as i64).collect();
                (
                    Tensor::<1>::from_floats(counts.as_slice(), &device).reshape([4, 3]),
                    Tensor::from_data(TensorData::new(labels, [4]), &device),
                    Tensor::from_floats([0.37 * k as f32 + 0.01], &device),
                )
            })
            .collect()
    }

    /// An entry as text: what is shown and what is saved.
    fn text(e: SerializedEntry) -> (String, String) {
        (e.formatted, e.serialized)
    }

    /// Read back every step, the accuracy and loss metrics give burn-train's own entries at
    /// every step; read back every 3 steps, the epoch's values are still theirs, bit for bit.
    #[test]
    fn accuracy_and_loss_are_burn_trains_read_every_step_or_every_few() {
        let m = metadata();
        let (mut acc, mut loss) = (AccuracyMetric::new(), LossMetric::new());
        let (mut acc1, mut loss1) = (AccuracyFigure::metric(1), LossFigure::metric(1));
        let (mut acc3, mut loss3) = (AccuracyFigure::metric(3), LossFigure::metric(3));
        for (counts, labels, l) in steps() {
            let input = CountsInput {
                counts: counts.clone(),
                labels: labels.clone(),
            };
            let a = acc.update(&AccuracyInput::new(counts, labels), &m).unwrap();
            let b = loss.update(&LossInput::new(l.clone()), &m).unwrap();
            assert_eq!(text(acc1.update(&input, &m).unwrap()), text(a));
            assert_eq!(
                text(loss1.update(&StepLoss(l.clone()), &m).unwrap()),
                text(b)
            );
            acc3.update(&input, &m).unwrap();
            loss3.update(&StepLoss(l), &m).unwrap();
        }
        let (a, b) = (text(acc.compute().unwrap()), text(loss.compute().unwrap()));
        assert_eq!(text(acc1.compute().unwrap()), a);
        assert_eq!(text(acc3.compute().unwrap()), a);
        assert_eq!(text(loss1.compute().unwrap()), b);
        assert_eq!(text(loss3.compute().unwrap()), b);
        assert_eq!(acc3.final_value().current(), acc.final_value().current());
        assert_eq!(loss3.final_value().current(), loss.final_value().current());
    }

    /// The op's host form (the reference of the device kernel) gives the tensor formula's
    /// statistics.
    #[test]
    fn the_activity_op_is_the_tensor_formula() {
        let device = Device::flex();
        let counts = Tensor::<2>::from_floats([[0.0, 3.0, 1.0], [0.0, 0.0, 5.0]], &device);
        let a = LayerActivity::of_counts(counts.clone());
        let b = LayerActivity::on_device(counts);
        let v = |a: LayerActivity| a.figures.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(v(a), v(b));
    }
}
