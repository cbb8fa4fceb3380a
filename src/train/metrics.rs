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

/// What a step tells about one layer.
#[derive(Clone, Debug)]
pub struct LayerActivity {
    /// Mean spike count per neuron and sample, `[1]`.
    pub rate: Tensor<1>,
    /// Fraction of (sample, neuron) pairs without a spike, `[1]`.
    pub silent: Tensor<1>,
    /// Spikes of every neuron summed over the batch, `[N]`.
    pub per_neuron: Tensor<1>,
}

impl LayerActivity {
    /// The activity of a layer's spike counts `[B, N]`.
    pub fn of_counts(counts: Tensor<2>) -> Self {
        let n = counts.dims()[1];
        if !crate::backend::on_host(&counts.device()) {
            return Self::on_device(counts);
        }
        Self {
            rate: counts.clone().mean().reshape([1]),
            silent: counts.clone().equal_elem(0.0).float().mean().reshape([1]),
            per_neuron: counts.sum_dim(0).reshape([n]),
        }
    }

    /// [`of_counts`](Self::of_counts) as one op ([`crate::ops::activity`]): one kernel per
    /// layer on devices. The tensors are not on the autodiff graph.
    pub fn on_device(counts: Tensor<2>) -> Self {
        let n = counts.dims()[1];
        let all: Tensor<1> =
            Tensor::from_dispatch(Dispatch::layer_activity(counts.inner().into_dispatch()));
        Self {
            rate: all.clone().slice(0..1),
            silent: all.clone().slice(1..2),
            per_neuron: all.slice(2..2 + n),
        }
    }

    /// The activity of `samples` samples from summed shard figures
    /// `[Σ counts, Σ silent, per-neuron counts…]` (see [`super::wire::ShardRecord`]).
    pub fn of_sums(sums: &[f32], samples: usize, device: &Device) -> Self {
        let n = sums.len() - 2;
        let cells = (samples * n) as f32;
        let scalar = |v: f32| Tensor::from_data(TensorData::new(vec![v], [1]), device);
        Self {
            rate: scalar(sums[0] / cells),
            silent: scalar(sums[1] / cells),
            per_neuron: Tensor::from_data(TensorData::new(sums[2..].to_vec(), [n]), device),
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
        let layer = &item.0[self.layer];
        let value = match self.kind {
            Activity::SpikesPerNeuron => layer.rate.clone().try_into_scalar::<f64>()?,
            Activity::SilentPercent => 100.0 * layer.silent.clone().try_into_scalar::<f64>()?,
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
        let sums = item.0[self.layer].per_neuron.clone().into_data();
        let sums = sums.iter::<f64>();
        if self.totals.is_empty() {
            self.totals = sums.collect();
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
        let v = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(v(a.rate), v(b.rate));
        assert_eq!(v(a.silent), v(b.silent));
        assert_eq!(v(a.per_neuron), v(b.per_neuron));
    }
}
