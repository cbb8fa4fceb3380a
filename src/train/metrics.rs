//! Metrics beyond accuracy and loss: layer activity (firing rate, fraction of silent neurons,
//! dead neurons over an epoch) and the authors' logged cost.

use std::sync::Arc;

use burn::backend::Dispatch;
use burn::prelude::*;
use burn::tensor::TensorReadError;

use crate::loss::logged_cost;
use crate::ops::Hm2bpBackend;
use crate::rule::output::{CountTargets, label_spike_steps};
use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes, NumericEntry,
    SerializedEntry,
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
        let values: Vec<f64> = self
            .figures
            .clone()
            .try_into_data_as::<f32>()?
            .iter::<f64>()
            .collect();
        Ok(ActivityFigures {
            rate: values[0],
            silent: values[1],
            per_neuron: values[2..].to_vec(),
        })
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
    /// The figure of one step and its weight in the mean.
    fn of_step(&self, input: &Self::Input) -> Result<(f64, usize), TensorReadError>;
}

/// The epoch mean of a [`StepFigure`] as a burn-train numeric metric.
#[derive(Clone)]
pub struct MeanMetric<F> {
    figure: F,
    name: MetricName,
    state: NumericMetricState,
}

impl<F: StepFigure> MeanMetric<F> {
    /// The metric of `figure`.
    pub fn new(figure: F) -> Self {
        Self {
            name: Arc::new(figure.name()),
            figure,
            state: NumericMetricState::default(),
        }
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
        let (value, weight) = self.figure.of_step(item)?;
        self.state.update(value, weight);
        Ok(self
            .state
            .compute_update(FormatOptions::new(self.name()).precision(3)))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(self
            .state
            .compute_final(FormatOptions::new(self.name()).precision(3)))
    }

    fn clear(&mut self) {
        self.state.reset()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: None,
            higher_is_better: false,
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
    /// The figure of `layer` (0-based) named after `label` (e.g. "hidden 1").
    pub fn metric(layer: usize, label: &str, kind: Activity) -> MeanMetric<Self> {
        MeanMetric::new(Self {
            layer,
            label: label.to_string(),
            kind,
        })
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

    fn of_step(&self, item: &ActivityInput) -> Result<(f64, usize), TensorReadError> {
        let figures = item.0[self.layer].read()?;
        let value = match self.kind {
            Activity::SpikesPerNeuron => figures.rate,
            Activity::SilentPercent => 100.0 * figures.silent,
        };
        Ok((value, 1))
    }
}

/// Neurons of one layer that did not fire on any sample of the epoch so far ("dead").
#[derive(Clone)]
pub struct DeadNeuronMetric {
    layer: usize,
    name: MetricName,
    totals: Vec<f64>,
}

impl DeadNeuronMetric {
    /// The metric of `layer` (0-based) named after `label`.
    pub fn new(layer: usize, label: &str) -> Self {
        Self {
            layer,
            name: Arc::new(format!("Dead neurons {label}")),
            totals: Vec::new(),
        }
    }

    fn entry(&self) -> SerializedEntry {
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
        let sums = item.0[self.layer].read()?.per_neuron;
        if self.totals.is_empty() {
            self.totals = sums;
        } else {
            for (t, s) in self.totals.iter_mut().zip(sums) {
                *t += s;
            }
        }
        Ok(self.entry())
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(self.entry())
    }

    fn clear(&mut self) {
        self.totals.clear();
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
    /// [`label_spike_steps`]`(steps, level)`.
    pub fn metric(targets: CountTargets, steps: usize, level: u32) -> MeanMetric<Self> {
        MeanMetric::new(Self {
            targets,
            inserted: label_spike_steps(steps, level).count() as f32,
        })
    }
}

impl StepFigure for AuthorsCost {
    type Input = CountsInput;

    fn name(&self) -> String {
        super::summary::COST_METRIC.to_string()
    }

    fn of_step(&self, item: &CountsInput) -> Result<(f64, usize), TensorReadError> {
        let batch = item.counts.dims()[0];
        let cost = logged_cost(
            item.counts.clone(),
            item.labels.clone(),
            &self.targets,
            self.inserted,
        );
        Ok((cost.mean().try_into_scalar::<f64>()?, batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
