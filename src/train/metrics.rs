//! Layer-activity metrics for the dashboard: firing rate and fraction of silent neurons.

use std::sync::Arc;

use burn::prelude::*;
use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes, NumericEntry,
    SerializedEntry,
};

/// Per layer: (mean spike count per neuron and sample, fraction of silent neurons), each `[1]`.
pub struct ActivityInput(pub Vec<(Tensor<1>, Tensor<1>)>);

/// Which activity figure a metric shows.
#[derive(Clone, Copy, Debug)]
pub enum Activity {
    /// Mean spikes per neuron per sample.
    SpikesPerNeuron,
    /// Fraction of neurons that never fired on a sample, in %.
    SilentPercent,
}

/// One activity figure of one layer.
#[derive(Clone)]
pub struct ActivityMetric {
    layer: usize,
    kind: Activity,
    name: MetricName,
    state: NumericMetricState,
}

impl ActivityMetric {
    /// The metric of `layer` (0-based) named after `label` (e.g. "hidden 1").
    pub fn new(layer: usize, label: &str, kind: Activity) -> Self {
        let name = match kind {
            Activity::SpikesPerNeuron => format!("Spikes per neuron {label}"),
            Activity::SilentPercent => format!("Silent % {label}"),
        };
        Self {
            layer,
            kind,
            name: Arc::new(name),
            state: NumericMetricState::default(),
        }
    }
}

impl Metric for ActivityMetric {
    type Input = ActivityInput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(
        &mut self,
        item: &ActivityInput,
        _metadata: &MetricMetadata,
    ) -> Result<SerializedEntry, burn::tensor::TensorReadError> {
        let (rate, silent) = &item.0[self.layer];
        let value = match self.kind {
            Activity::SpikesPerNeuron => rate.clone().try_into_scalar::<f64>()?,
            Activity::SilentPercent => 100.0 * silent.clone().try_into_scalar::<f64>()?,
        };
        self.state.update(value, 1);
        Ok(self
            .state
            .compute_update(FormatOptions::new(self.name()).precision(2)))
    }

    fn compute(&mut self) -> Result<SerializedEntry, burn::tensor::TensorReadError> {
        Ok(self
            .state
            .compute_final(FormatOptions::new(self.name()).precision(2)))
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

impl Numeric for ActivityMetric {
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
