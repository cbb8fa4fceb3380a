//! Checkpoint averaging (`average_last` in an experiment; not in the paper): the element-wise
//! mean of a network's parameters after each of its last epochs, a model of its own that is
//! tested like any other. Late epochs of a run scatter around a plateau; their mean sits
//! nearer its centre (Polyak averaging over epochs).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use anyhow::{Context, Result};

use super::RunOptions;
use super::checkpoint::{RecordKind, RunFiles, save_record};
use super::classifier::{SpikingClassifier, build_classifier, load_model};
use super::eval::accuracy;
use super::loading::load_split;
use crate::datasets::Split;
use crate::experiment::ExperimentDef;

/// What `summary.json` records of an averaged model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AverageRecord {
    /// The epochs (1-based) whose parameters were averaged.
    pub epochs: Vec<usize>,
    /// Test accuracy of the mean parameters (fraction).
    pub test_accuracy: f64,
}

/// Every float parameter of a module, flattened, in visiting order.
struct Collect(Vec<Vec<f32>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let values = crate::device_reads::data(param.val(), "a parameter").convert::<f32>();
        self.0
            .push(values.try_into_vec::<f32>().unwrap_or_default());
    }
}

/// Replaces every float parameter, in visiting order, by the next of `values`.
struct Replace(std::vec::IntoIter<Vec<f32>>);

impl ModuleMapper for Replace {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let values = self.0.next().expect("one value list per parameter");
        param.map(|t| Tensor::from_data(TensorData::new(values, t.shape()), &t.device()))
    }
}

/// The classifier `models[0]` with every parameter replaced by its mean over `models` (all of
/// the same network). Sums in `f64`.
///
/// # Panics
/// If `models` is empty or their parameters differ in number or shape.
pub fn mean_parameters(models: Vec<SpikingClassifier>) -> SpikingClassifier {
    let n = models.len();
    assert!(n > 0, "mean_parameters: no models");
    let mut sums: Vec<Vec<f64>> = Vec::new();
    let mut first = None;
    for model in models {
        let mut c = Collect(Vec::new());
        model.visit(&mut c);
        if sums.is_empty() {
            sums = c.0.iter().map(|p| vec![0.0; p.len()]).collect();
        }
        assert_eq!(sums.len(), c.0.len(), "mean_parameters: networks differ");
        for (sum, p) in sums.iter_mut().zip(&c.0) {
            assert_eq!(
                sum.len(),
                p.len(),
                "mean_parameters: parameter shapes differ"
            );
            sum.iter_mut().zip(p).for_each(|(s, &v)| *s += f64::from(v));
        }
        first.get_or_insert(model);
    }
    let means: Vec<Vec<f32>> = sums
        .into_iter()
        .map(|s| s.into_iter().map(|v| (v / n as f64) as f32).collect())
        .collect();
    first
        .expect("at least one model")
        .map(&mut Replace(means.into_iter()))
}

/// Averages the parameters of the run's last `exp.average_last` epochs (those whose
/// checkpoints are in `opts.out_dir`), writes `model-average.bpk` and tests it.
pub fn average_last_epochs(exp: &ExperimentDef, opts: &RunOptions) -> Result<AverageRecord> {
    let files = RunFiles::new(&opts.out_dir);
    let last = *files
        .epochs_with_model()
        .first()
        .context("averaging: no epoch checkpoint")?;
    let model_file = |e| files.epoch_record(RecordKind::Model, e);
    let epochs: Vec<usize> = (last.saturating_sub(exp.average_last) + 1..=last)
        .filter(|&e| model_file(e).is_file())
        .collect();
    let (model, _) = build_classifier(exp, &opts.models_dir, &opts.device, opts.kernels)?;
    let models = epochs
        .iter()
        .map(|&e| load_model(model.clone(), &model_file(e)))
        .collect::<Result<Vec<_>>>()?;
    let mean = mean_parameters(models);
    let path = opts.out_dir.join("model-average.bpk");
    save_record(mean.clone().into_record(), &path)
        .map_err(|e| anyhow::anyhow!("saving {}: {e:?}", path.display()))?;
    let test_set = load_split(exp, &opts.data_dir, Split::Test)?;
    let test_accuracy = accuracy(exp, &mean, test_set, &opts.device)?;
    Ok(AverageRecord {
        epochs,
        test_accuracy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::SpikingDenseConfig;
    use crate::model::{SpikingLayer, SpikingNet};
    use crate::neuron::LifSpec;
    use crate::train::classifier::{CountLoss, Network};

    fn classifier(weight: [[f32; 3]; 2]) -> SpikingClassifier {
        let device = Device::flex();
        let layer = SpikingDenseConfig::new(3, 2, LifSpec::paper(8.0))
            .init_with(Tensor::<2>::from_floats(weight, &device));
        let net = SpikingNet {
            layers: vec![SpikingLayer::Dense(layer)],
        };
        SpikingClassifier::new(Network::Hm2bp(net), CountLoss::Mse(Default::default()))
    }

    fn weights(model: &SpikingClassifier) -> Vec<Vec<f32>> {
        let mut c = Collect(Vec::new());
        model.visit(&mut c);
        c.0
    }

    #[test]
    fn the_mean_of_three_networks_is_taken_parameter_by_parameter() {
        let mean = mean_parameters(vec![
            classifier([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]),
            classifier([[2.0, 2.0, 0.0], [-4.0, 5.0, 0.5]]),
            classifier([[3.0, 2.0, 0.0], [0.0, 5.0, 1.0]]),
        ]);
        assert_eq!(weights(&mean), vec![vec![2.0, 2.0, 1.0, 0.0, 5.0, 2.5]]);
    }
}
