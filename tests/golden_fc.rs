//! Golden parity of the fully connected part of the authors' test CNN: the hidden and output
//! layers, driven by the golden pool2 raster, trained one step through the Burn modules
//! (custom backward + Burn's Adam), must reproduce the authors' rasters bit for bit and the
//! sign and exact zeros of every weight change.
#![allow(
    clippy::disallowed_methods,
    reason = "tests read tensors directly; only the library's reads are counted"
)]

mod common;

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use hm2bp::SpikeTrains;
use hm2bp::datasets::golden::{GOLDEN_LABEL, GOLDEN_STEPS, load_golden_cnn};
use hm2bp::layers::SpikingDenseConfig;
use hm2bp::loss::count_loss;
use hm2bp::model::{SpikingLayer, SpikingNet};
use hm2bp::neuron::LifSpec;
use hm2bp::rule::output::{CountTargets, OutputRule};
use hm2bp::rule::regularizer::WeightRegularizer;
use hm2bp::spikes::SpikeRaster;

fn input_trains(times: &[Vec<u32>], device: &Device) -> SpikeTrains {
    SpikeTrains::from_rasters(&[SpikeRaster::from_times(times, GOLDEN_STEPS)], device)
}

fn times_of(spikes: &SpikeTrains) -> Vec<Vec<u32>> {
    spikes.to_rasters()[0].times()
}

fn weights(w: &[f64], rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    let v: Vec<f32> = w.iter().map(|&x| x as f32).collect();
    Tensor::from_data(TensorData::new(v, [rows, cols]), device)
}

/// The weights of every (dense) layer, as host vectors.
fn dense_weights(net: &SpikingNet) -> Vec<Vec<f32>> {
    net.layers
        .iter()
        .map(|l| match l {
            SpikingLayer::Dense(d) => d
                .weight
                .val()
                .inner()
                .into_data()
                .try_into_vec::<f32>()
                .unwrap(),
            _ => unreachable!("FC-only network"),
        })
        .collect()
}

/// sign with a dead band for the golden files' 6-decimal text.
fn sign(x: f64, zero: f64) -> i8 {
    if x > zero {
        1
    } else if x < -zero {
        -1
    } else {
        0
    }
}

#[test]
#[ignore = "needs ../shared/data/hm2bp-golden/cnn-mnist (the authors' golden step; not fetchable)"]
fn fc_part_matches_golden_data() {
    let dir = common::unfetchable_data("hm2bp-golden/cnn-mnist");
    let g = load_golden_cnn(&dir).expect("golden data loads");
    let dev = Device::flex().autodiff();
    let reg = |c: SpikingDenseConfig| {
        c.with_regularizer(WeightRegularizer {
            lambda: 10.0,
            beta: 0.4,
            limit: 8.0,
        })
    };
    let hidden_cfg = reg(SpikingDenseConfig::new(48, 100, LifSpec::paper(10.0)));
    let output_cfg = reg(
        SpikingDenseConfig::new(100, 10, LifSpec::paper(5.0)).with_output(Some(OutputRule {
            lateral_strength: 1.0,
            label_spike_level: 35,
        })),
    );
    let net = SpikingNet {
        layers: vec![
            SpikingLayer::Dense(hidden_cfg.init_with(weights(
                &g.weights_before.hidden,
                100,
                48,
                &dev,
            ))),
            SpikingLayer::Dense(output_cfg.init_with(weights(
                &g.weights_before.output,
                10,
                100,
                &dev,
            ))),
        ],
    };

    // Forward before the update: bit-exact rasters.
    let labels = Tensor::<1, Int>::from_ints([GOLDEN_LABEL as i64], &dev);
    let outs = net.forward(
        input_trains(&g.rasters_before.pool2, &dev),
        Some(labels.clone()),
    );
    let hidden = times_of(&outs[0]);
    let output = times_of(&outs[1]);
    let total: usize = g.rasters_before.hidden.iter().map(Vec::len).sum();
    let matched: usize = hidden
        .iter()
        .zip(&g.rasters_before.hidden)
        .map(|(a, b)| a.iter().filter(|t| b.contains(t)).count())
        .sum();
    println!("hidden spikes matched {matched}/{total}");
    assert_eq!(hidden, g.rasters_before.hidden, "hidden raster");
    assert_eq!(output, g.rasters_before.output, "output raster (silent)");

    // One HM2-BP step with Adam.
    let counts = outs[1].counts();
    let loss = count_loss(counts, labels.clone(), None, &CountTargets::default())
        + net.regularizer_penalty();
    let grads = GradientsParams::from_grads(loss.backward(), &net);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let before = dense_weights(&net);
    let net = optim.step(1e-3, net, grads);
    let after = dense_weights(&net);

    let golden = [
        (&g.weights_before.hidden, &g.weights_after.hidden, "hidden"),
        (&g.weights_before.output, &g.weights_after.output, "output"),
    ];
    for (k, (w0, w1, name)) in golden.iter().enumerate() {
        let ours = &after[k];
        let mut agree = 0;
        for i in 0..ours.len() {
            let ours_sign = sign((ours[i] - before[k][i]) as f64, 1e-5);
            let golden_sign = sign(w1[i] - w0[i], 5e-4);
            if ours_sign == golden_sign {
                agree += 1;
            } else {
                eprintln!(
                    "{name}[{i}]: ours {} golden {}",
                    ours[i] - before[k][i],
                    w1[i] - w0[i]
                );
            }
        }
        println!("{name}: update signs matched {agree}/{}", ours.len());
        assert_eq!(agree, ours.len(), "{name} update signs");
    }

    // Forward after the update, from the golden post-update pool2 raster.
    let outs = net
        .valid()
        .forward(input_trains(&g.rasters_after.pool2, &Device::flex()), None);
    assert_eq!(
        times_of(&outs[0]),
        g.rasters_after.hidden,
        "hidden after update"
    );
    assert_eq!(
        times_of(&outs[1]),
        g.rasters_after.output,
        "output after update"
    );
}
