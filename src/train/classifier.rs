//! The training wrapper: a [`SpikingNet`] with its rate-coded loss, as a burn-train model.

use burn::module::Module;
use burn::prelude::*;
use burn::tensor::ExecutionError;
use burn::train::metric::{AccuracyInput, Adaptor, LossInput};
use burn::train::{ClassificationOutput, InferenceStep, ItemLazy, TrainOutput, TrainStep};

use std::sync::Arc;

use super::boosting::Boosting;
use super::data::SpikeBatch;
use super::metrics::ActivityInput;
use crate::hm2bp::output::CountTargets;
use crate::loss::count_loss;
use crate::model::SpikingNet;

/// A spiking network trained on output spike counts.
#[derive(Module, Debug)]
pub struct SpikingClassifier {
    /// The network.
    pub net: SpikingNet,
    #[module(skip)]
    targets: CountTargets,
    #[module(skip)]
    boosting: Option<Arc<Boosting>>,
}

/// Everything a step reports: classification (counts as scores) and layer activity.
pub struct StepOutput {
    /// Loss (the count loss, without the regulariser), counts `[B, C]`, labels.
    pub classification: ClassificationOutput,
    /// Per layer: mean spike count per neuron and sample, and fraction of silent neurons.
    pub activity: Vec<(Tensor<1>, Tensor<1>)>,
}

impl SpikingClassifier {
    /// Wraps a network with its output targets.
    pub fn new(net: SpikingNet, targets: CountTargets) -> Self {
        Self {
            net,
            targets,
            boosting: None,
        }
    }

    /// Records, at every training step, which samples were misclassified (for boosting).
    pub fn with_boosting(self, boosting: Arc<Boosting>) -> Self {
        Self {
            boosting: Some(boosting),
            ..self
        }
    }

    /// Runs a batch; returns the outputs and the loss to differentiate (count loss plus the
    /// weight regulariser's penalty).
    pub fn run(&self, batch: SpikeBatch) -> (StepOutput, Tensor<1>) {
        let mut activity = Vec::new();
        let out = self
            .net
            .forward_inspecting(batch.spikes, Some(batch.labels.clone()), |spikes| {
                let counts = spikes.clone().detach().sum_dim(1); // [B, 1, N]
                let rate = counts.clone().mean().reshape([1]);
                let silent = counts.equal_elem(0.0).float().mean().reshape([1]);
                activity.push((rate, silent));
            });
        let [b, _, c] = out.dims();
        let counts = out.sum_dim(1).reshape([b, c]);
        let loss = count_loss(
            counts.clone(),
            batch.labels.clone(),
            batch.sample_weight,
            &self.targets,
        );
        let total = loss.clone() + self.net.regularizer_penalty();
        let classification = ClassificationOutput::new(loss, counts.detach(), batch.labels);
        (
            StepOutput {
                classification,
                activity,
            },
            total,
        )
    }
}

impl ItemLazy for StepOutput {
    fn sync(self) -> Result<Self, ExecutionError> {
        Ok(StepOutput {
            classification: self.classification.sync()?,
            activity: self
                .activity
                .into_iter()
                .map(|(r, s)| (r.without_autodiff(), s.without_autodiff()))
                .collect(),
        })
    }
}

impl Adaptor<AccuracyInput> for StepOutput {
    fn adapt(&self) -> AccuracyInput {
        self.classification.adapt()
    }
}

impl Adaptor<LossInput> for StepOutput {
    fn adapt(&self) -> LossInput {
        self.classification.adapt()
    }
}

impl Adaptor<ActivityInput> for StepOutput {
    fn adapt(&self) -> ActivityInput {
        ActivityInput(self.activity.clone())
    }
}

impl TrainStep for SpikingClassifier {
    type Input = SpikeBatch;
    type Output = StepOutput;

    fn step(&self, batch: SpikeBatch) -> TrainOutput<StepOutput> {
        let indices = batch.indices.clone();
        let (out, total) = self.run(batch);
        if let Some(boosting) = &self.boosting {
            let c = &out.classification;
            let b = indices.len();
            let pred = c.output.clone().argmax(1).reshape([b]);
            let wrong = pred.not_equal(c.targets.clone()).int().into_data();
            let wrong: Vec<bool> = wrong.iter::<i64>().map(|w| w != 0).collect();
            boosting.record(&indices, &wrong);
        }
        TrainOutput::new(self, total.backward(), out)
    }
}

impl InferenceStep for SpikingClassifier {
    type Input = SpikeBatch;
    type Output = StepOutput;

    fn step(&self, batch: SpikeBatch) -> StepOutput {
        self.run(batch).0
    }
}
