//! The training wrapper: a spiking network (HM2-BP or BPTT) with its loss on output spike
//! counts, as a burn-train model.

use burn::module::Module;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::ExecutionError;
use burn::train::metric::Adaptor;
use burn::train::{ClassificationOutput, InferenceStep, ItemLazy, TrainOutput, TrainStep};

use super::data::{InputSpikes, SpikeBatch};
use super::hooks::StepHooks;
use super::metrics::{ActivityInput, CountsInput, LayerActivity, StepLoss};
use super::sharded::Workers;
use std::path::Path;

use anyhow::Result;

use crate::bptt::{BpttNet, SpikeFunction};
use crate::experiment::{CountLossKind, ExperimentDef, Method};
use crate::loss::{count_cross_entropy_per_sample, count_loss, count_loss_per_sample};
use crate::model::{NetworkDef, RuleOptions, SpikingLayer, SpikingNet};
use crate::ops::KernelPath;
use crate::ops::LossReduce;
use crate::rule::output::CountTargets;

/// The network of a classifier, by training method.
#[derive(Module, Debug)]
pub enum Network {
    /// Spiking layers whose gradient is the HM2-BP rule.
    Hm2bp(SpikingNet),
    /// LIF layers trained by BPTT with a surrogate spike derivative.
    Bptt(BpttNet),
}

impl Network {
    /// Number of layers.
    pub fn layer_count(&self) -> usize {
        match self {
            Network::Hm2bp(net) => net.layers.len(),
            Network::Bptt(net) => net.layers.len(),
        }
    }

    /// Neurons of every layer, bottom-up.
    pub fn layer_sizes(&self) -> Vec<usize> {
        match self {
            Network::Hm2bp(net) => net
                .layers
                .iter()
                .map(|l| match l {
                    SpikingLayer::Dense(d) => d.weight.val().dims()[0],
                    SpikingLayer::Conv(c) => c.output_shape().iter().product(),
                    SpikingLayer::Pool(p) => p.output_shape().iter().product(),
                })
                .collect(),
            Network::Bptt(net) => net
                .layers
                .iter()
                .map(|l| l.weight.val().dims()[0])
                .collect(),
        }
    }

    /// Output spike counts `[B, C]` for a batch's input spike trains; `inspect` sees every
    /// layer's counts `[B, N]` (detached), bottom-up, output included.
    fn output_counts(
        &self,
        spikes: &InputSpikes,
        labels: Tensor<1, Int>,
        mut inspect: impl FnMut(Tensor<2>),
    ) -> Tensor<2> {
        let device = labels.device();
        match self {
            Network::Hm2bp(net) => {
                let input = spikes.to_trains(&device);
                let out =
                    net.forward_inspecting(input, Some(labels), |s| inspect(s.counts().detach()));
                out.counts()
            }
            Network::Bptt(net) => {
                let runs = net.forward(spikes.to_tensor(&device));
                for run in &runs {
                    inspect(run.counts.clone().detach());
                }
                runs.into_iter()
                    .last()
                    .expect("a network has layers")
                    .counts
            }
        }
    }

    /// The weight-regulariser penalty (HM2-BP networks), `[1]`.
    fn penalty(&self) -> Option<Tensor<1>> {
        match self {
            Network::Hm2bp(net) => Some(net.regularizer_penalty()),
            Network::Bptt(_) => None,
        }
    }

    /// `loss [1]` plus the weight-regulariser penalty (HM2-BP networks), each layer's op
    /// adding its own.
    fn add_penalty(&self, loss: Tensor<1>) -> Tensor<1> {
        match self {
            Network::Hm2bp(net) => net.add_regularizer_penalty(loss),
            Network::Bptt(_) => loss,
        }
    }
}

/// The loss on output spike counts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CountLoss {
    /// HM2-BP's masked squared error to the count targets.
    Mse(CountTargets),
    /// Cross-entropy of `softmax(logit_scale · counts)`.
    CrossEntropy {
        /// Factor on the counts.
        logit_scale: f32,
    },
}

/// A spiking network trained on output spike counts.
#[derive(Module)]
#[module(custom_display)]
pub struct SpikingClassifier {
    /// The network.
    pub net: Network,
    #[module(skip)]
    loss: CountLoss,
    /// The step services of a training run (none outside training).
    #[module(skip)]
    hooks: Option<StepHooks>,
}

impl std::fmt::Debug for SpikingClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpikingClassifier")
            .field("net", &self.net)
            .field("loss", &self.loss)
            .finish_non_exhaustive()
    }
}

/// The network and its loss (the run's services are not part of the model).
impl burn::module::ModuleDisplay for SpikingClassifier {
    fn custom_content(&self, content: burn::module::Content) -> Option<burn::module::Content> {
        content
            .add("net", &self.net)
            .add_debug_attribute("loss", &self.loss)
            .optional()
    }
}

/// Everything a step reports: classification (counts as scores) and layer activity.
pub struct StepOutput {
    /// Loss (the count loss, without the regulariser), counts `[B, C]`, labels.
    pub classification: ClassificationOutput,
    /// Per layer: firing rate, silent fraction, spikes per neuron.
    pub activity: Vec<LayerActivity>,
}

impl SpikingClassifier {
    /// Wraps a network with its loss.
    pub fn new(net: Network, loss: CountLoss) -> Self {
        Self {
            net,
            loss,
            hooks: None,
        }
    }

    /// Runs the services of a training run around every step.
    pub fn with_hooks(self, hooks: StepHooks) -> Self {
        Self {
            hooks: Some(hooks),
            ..self
        }
    }

    /// A batch's forward pass: output counts, the count loss of every sample, every layer's
    /// counts (detached).
    pub fn forward(&self, batch: &SpikeBatch) -> Forward {
        self.forward_reduced(batch, LossReduce::PerSample)
    }

    /// [`forward`](Self::forward) with the loss of every sample or, `reduce`, their mean.
    fn forward_reduced(&self, batch: &SpikeBatch, reduce: LossReduce) -> Forward {
        let mut layers = Vec::new();
        let counts = self
            .net
            .output_counts(&batch.spikes, batch.labels.clone(), |counts| {
                layers.push(counts)
            });
        let labels = batch.labels.clone();
        let weight = batch.sample_weight.clone();
        let loss = match (self.loss, reduce) {
            (CountLoss::Mse(targets), LossReduce::Mean) => {
                count_loss(counts.clone(), labels, weight, &targets)
            }
            (CountLoss::Mse(targets), LossReduce::PerSample) => {
                count_loss_per_sample(counts.clone(), labels, weight, &targets)
            }
            (CountLoss::CrossEntropy { logit_scale }, _) => reduce.of(
                count_cross_entropy_per_sample(counts.clone(), labels, weight, logit_scale),
            ),
        };
        Forward {
            counts,
            loss,
            layers,
        }
    }

    /// The weight regulariser's penalty (HM2-BP), added once per step to the loss.
    pub fn penalty(&self) -> Option<Tensor<1>> {
        self.net.penalty()
    }

    /// Runs a batch; returns the outputs and the loss to differentiate (count loss plus, for
    /// HM2-BP, the weight regulariser's penalty).
    pub fn run(&self, batch: SpikeBatch) -> (StepOutput, Tensor<1>) {
        // A device takes the batch mean from the loss op (fewer launches, same gradients); the
        // CPU backends keep the mean of the per-sample losses, whose results are recorded.
        let reduce = match crate::backend::on_host(&batch.labels.device()) {
            true => LossReduce::PerSample,
            false => LossReduce::Mean,
        };
        let forward = self.forward_reduced(&batch, reduce);
        let activity = forward
            .layers
            .into_iter()
            .map(LayerActivity::of_counts)
            .collect();
        let loss = match reduce {
            LossReduce::PerSample => forward.loss.mean(),
            LossReduce::Mean => forward.loss,
        };
        let total = self.net.add_penalty(loss.clone());
        let classification = ClassificationOutput::new(loss, forward.counts.detach(), batch.labels);
        (
            StepOutput {
                classification,
                activity,
            },
            total,
        )
    }

    /// The data-parallel workers of the run (a single process without hooks).
    fn workers(&self) -> Option<&Workers> {
        self.hooks
            .as_ref()
            .map(StepHooks::workers)
            .filter(|w| w.is_sharded())
    }
}

/// What a forward pass hands the loss and the metrics.
pub struct Forward {
    /// Output spike counts `[B, C]`.
    pub counts: Tensor<2>,
    /// The count loss of every sample `[B]` (weighted by boosting), or their mean `[1]` where
    /// the forward pass was asked for it.
    pub loss: Tensor<1>,
    /// Every layer's spike counts `[B, N]`, detached, bottom-up.
    pub layers: Vec<Tensor<2>>,
}

/// Builds the classifier of an experiment on `device`.
pub fn build_classifier(
    exp: &ExperimentDef,
    models_dir: &Path,
    device: &Device,
    kernels: KernelPath,
) -> Result<(SpikingClassifier, NetworkDef)> {
    let def = NetworkDef::load(&exp.model, models_dir)?;
    let classifier = match exp.method {
        Method::Hm2bp => {
            let rule = RuleOptions {
                effect_ratio: exp.effect_ratio,
                regularizer: exp.regularizer.params(),
                label_spike_level: exp.targets.desired as u32,
            };
            let net = SpikingNet::new(&def, &rule, device)?.with_kernels(kernels);
            SpikingClassifier::new(Network::Hm2bp(net), CountLoss::Mse(exp.targets))
        }
        Method::Bptt => {
            let b = &exp.bptt;
            let spike = SpikeFunction::Surrogate(b.surrogate);
            let net = BpttNet::new(&def, spike, b.window, device)?;
            let loss = match b.loss {
                CountLossKind::CountMse => CountLoss::Mse(exp.targets),
                CountLossKind::CrossEntropy => CountLoss::CrossEntropy {
                    logit_scale: b.logit_scale / exp.steps as f32,
                },
            };
            SpikingClassifier::new(Network::Bptt(net), loss)
        }
    };
    Ok((classifier, def))
}

/// Loads the parameters of a model file into `model`, with an error (not a panic) when the
/// file is unreadable or does not fit the model.
pub fn load_model(model: SpikingClassifier, path: &Path) -> Result<SpikingClassifier> {
    let record = burn::store::ModuleRecord::load(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot load the model: {e:?}", path.display()))?;
    model
        .try_load_record(record)
        .map_err(|e| anyhow::anyhow!("{}: does not fit the model: {e:?}", path.display()))
}

impl ItemLazy for StepOutput {
    fn sync(self) -> Result<Self, ExecutionError> {
        Ok(StepOutput {
            classification: self.classification.sync()?,
            activity: self
                .activity
                .into_iter()
                .map(LayerActivity::without_autodiff)
                .collect(),
        })
    }
}

impl Adaptor<StepLoss> for StepOutput {
    fn adapt(&self) -> StepLoss {
        StepLoss(self.classification.loss.clone())
    }
}

impl Adaptor<ActivityInput> for StepOutput {
    fn adapt(&self) -> ActivityInput {
        ActivityInput(self.activity.clone())
    }
}

impl Adaptor<CountsInput> for StepOutput {
    fn adapt(&self) -> CountsInput {
        CountsInput {
            counts: self.classification.output.clone(),
            labels: self.classification.targets.clone(),
        }
    }
}

impl TrainStep for SpikingClassifier {
    type Input = SpikeBatch;
    type Output = StepOutput;

    fn step(&self, batch: SpikeBatch) -> TrainOutput<StepOutput> {
        if let Some(workers) = self.workers() {
            let (grads, out, total) = super::sharded::train_step(self, batch, workers);
            if let Some(hooks) = &self.hooks {
                let indices = out.indices.clone();
                hooks.after_forward(self, &indices, &out.step.classification, &total);
            }
            return TrainOutput {
                grads,
                item: out.step,
            };
        }
        let indices = batch.indices.clone();
        let (out, total) = self.run(batch);
        if let Some(hooks) = &self.hooks {
            hooks.after_forward(self, &indices, &out.classification, &total);
        }
        TrainOutput::new(self, total.backward(), out)
    }

    fn optimize(
        self,
        optim: &mut ModuleOptimizer,
        lr_module: ModuleLearningRate,
        grads: GradientsParams,
    ) -> Self {
        if let Some(hooks) = &self.hooks
            && !hooks.before_update(&self, &grads)
        {
            // The run stops: keep the last good weights.
            return self;
        }
        let model = optim.step(lr_module, self, grads);
        if let Some(hooks) = &model.hooks {
            hooks.after_update(&model, optim);
        }
        model
    }
}

impl InferenceStep for SpikingClassifier {
    type Input = SpikeBatch;
    type Output = StepOutput;

    fn step(&self, batch: SpikeBatch) -> StepOutput {
        match self.workers() {
            Some(workers) => super::sharded::inference_step(self, batch, workers).step,
            None => self.run(batch).0,
        }
    }
}
