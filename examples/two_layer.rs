//! A library user's program: build a two-layer spiking network from hm2bp's layers and train
//! it with HM2-BP in a plain Burn loop (no CLI, no burn-train), on the first MNIST images.
//!
//! ```sh
//! cargo run --release --example two_layer -- [DATA_DIR] [TRAIN_SAMPLES]
//! ```
//!
//! DATA_DIR holds `mnist/` (default `data`, filled by `experiment fetch-data`).
#![allow(
    clippy::disallowed_methods,
    reason = "a user's program reads tensors with Burn's API"
)]

use std::path::PathBuf;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use hm2bp::neuron::LifSpec;
use hm2bp::prelude::*;
use hm2bp::rule::output::OutputRule;

/// 784 → 100 hidden LIF neurons → 10 output neurons with lateral inhibition.
#[derive(Module, Debug)]
struct TwoLayer {
    hidden: SpikingDense,
    output: SpikingDense,
}

impl TwoLayer {
    fn new(device: &Device) -> Self {
        Self {
            hidden: SpikingDenseConfig::new(784, 100, LifSpec::paper(20.0)).init(device),
            output: SpikingDenseConfig::new(100, 10, LifSpec::paper(8.0))
                .with_output(Some(OutputRule::default()))
                .init(device),
        }
    }

    /// Output spike counts `[B, 10]`; `labels` drive the output layer's rule when training.
    fn forward(&self, input: SpikeTrains, labels: Option<Tensor<1, Int>>) -> Tensor<2> {
        let hidden = self.hidden.forward(input, None);
        self.output.forward(hidden, labels).counts()
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let data_dir = PathBuf::from(args.next().unwrap_or_else(|| "data".into()));
    let train_samples: usize = args.next().map_or(Ok(10000), |s| s.parse())?;
    let (steps, batch) = (200, 16);

    let kind = DatasetKind::Mnist;
    let load = |split| load_samples(kind, &data_dir, split, steps, &InputOptions::default());
    let (Samples::Images(train), Samples::Images(test)) = (load(Split::Train)?, load(Split::Test)?)
    else {
        anyhow::bail!("MNIST is an image dataset");
    };
    let encoder = RateEncoder::new(steps, 1, EncodingMode::FixedPerSample);
    let plain = Device::flex();
    plain.seed(1);
    let device = plain.clone().autodiff();
    // A batch of images as input spike trains (event lists → counts + bit-packed words).
    let batch_of = |set: &hm2bp::datasets::ImageSet, range: std::ops::Range<usize>, device| {
        let rasters: Vec<_> = range
            .clone()
            .map(|i| encoder.encode_raster(set.images.image(i), i as u64, 0))
            .collect();
        let labels: Vec<i64> = range.map(|i| i64::from(set.labels[i])).collect();
        let n = labels.len();
        (
            SpikeTrains::from_rasters(&rasters, device),
            Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), device),
        )
    };

    let mut model = TwoLayer::new(&device);
    let mut optim = AdamConfig::new().init();
    let targets = CountTargets {
        desired: 20.0,
        undesired: 3.0,
        margin: 3.0,
    };
    for start in (0..train_samples.min(train.len())).step_by(batch) {
        let end = (start + batch).min(train_samples);
        let (input, labels) = batch_of(&train, start..end, &device);
        let counts = model.forward(input, Some(labels.clone()));
        let loss = count_loss(counts, labels, None, &targets);
        if start % (batch * 25) == 0 {
            println!(
                "sample {start:>5}: loss {:.2}",
                loss.clone().into_scalar::<f32>()
            );
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(4e-3, model, grads);
    }

    let model = model.valid();
    let (n, mut correct) = (1000.min(test.len()), 0);
    for start in (0..n).step_by(100) {
        let (input, labels) = batch_of(&test, start..(start + 100).min(n), &plain);
        let predicted = model.forward(input, None).argmax(1).flatten::<1>(0, 1);
        correct += predicted.equal(labels).int().sum().into_scalar::<i64>() as usize;
    }
    println!(
        "test accuracy after {train_samples} training samples: {:.1} % ({correct}/{n})",
        100.0 * correct as f64 / n as f64
    );
    Ok(())
}
