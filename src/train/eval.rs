//! Trained models on the test split: `experiment eval`, the averaged model's test, plots.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use burn::data::dataloader::DataLoader;
use burn::prelude::*;

use super::RunOptions;
use super::classifier::{SpikingClassifier, build_classifier, load_model};
use super::data::SpikeBatch;
use super::loading::{SplitLoading, load_split, split_loader};
use crate::datasets::{Samples, Split};
use crate::experiment::ExperimentDef;

/// The experiment's classifier with the parameters of a trained model file.
pub fn trained_classifier(
    exp: &ExperimentDef,
    opts: &RunOptions,
    model_file: &Path,
) -> Result<SpikingClassifier> {
    let (model, _) = build_classifier(exp, &opts.models_dir, &opts.device, opts.kernels)?;
    load_model(model, model_file)
}

/// Batches of a test split in order, encoded as in training (test trains are drawn once).
pub fn test_batches(
    exp: &ExperimentDef,
    set: Samples,
    device: &Device,
) -> Arc<dyn DataLoader<SpikeBatch>> {
    split_loader(exp, set, device, SplitLoading::test(0))
}

/// Test accuracy (fraction) of a trained model file on the experiment's test split.
pub fn evaluate(exp: &ExperimentDef, opts: &RunOptions, model_file: &Path) -> Result<f64> {
    let test_set = load_split(exp, &opts.data_dir, Split::Test)?;
    let model = trained_classifier(exp, opts, model_file)?;
    accuracy(exp, &model, test_set, &opts.device)
}

/// Accuracy (fraction) of `model` on `test_set`, encoded as the experiment's test split.
pub fn accuracy(
    exp: &ExperimentDef,
    model: &SpikingClassifier,
    test_set: Samples,
    device: &Device,
) -> Result<f64> {
    let n = test_set.len();
    let mut correct = 0usize;
    for batch in test_batches(exp, test_set, device).iter() {
        let batch = batch.map_err(|e| anyhow::anyhow!("loading a test batch: {e:?}"))?;
        let labels = batch.labels.clone();
        let out = model.run(batch).0.classification.output;
        let pred = out.argmax(1).reshape([labels.dims()[0]]);
        let hits: i64 = crate::device_reads::scalar(pred.equal(labels).int().sum(), "hits");
        correct += hits as usize;
    }
    Ok(correct as f64 / n as f64)
}
