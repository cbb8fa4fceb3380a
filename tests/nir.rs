//! NIR export and import (feature `nir`): a trained network exports and reads back with the
//! same weights and spikes, files written by other NIR tools import or are refused with an
//! error naming the node, and the `experiment export` / `import` commands work end to end.
#![allow(
    clippy::disallowed_methods,
    reason = "tests read tensors directly; only the library's reads are counted"
)]
#![cfg(feature = "nir")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;
use hm2bp::SpikeTrains;
use hm2bp::loss::count_loss;
use hm2bp::model::{LayerDef, NetworkDef, RuleOptions, SpikingLayer, SpikingNet};
use hm2bp::nir::{Refractory, T_REF_KEY, export, import, read, write};
use hm2bp::rule::output::CountTargets;
use hm2bp::rule::regularizer::WeightRegularizer;
use hm2bp::train::classifier::{CountLoss, Network, SpikingClassifier};
use nir_rs::NirNode;

const RULE: RuleOptions = RuleOptions {
    effect_ratio: true,
    regularizer: WeightRegularizer::OFF,
    label_spike_level: 12,
};

/// HDF5 opens `.nir` files without close-on-exec and locks them (`flock`): a child process
/// spawned while another test has a file open inherits the descriptor and keeps the lock for
/// its whole life, so that test's next open fails with "unable to lock file" (errno 11). Tests
/// hold this while they open HDF5 files or spawn the CLI.
static HDF5: Mutex<()> = Mutex::new(());

fn hdf5() -> MutexGuard<'static, ()> {
    HDF5.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/nir").join(name)
}

fn random_spikes(b: usize, t: usize, n: usize, p: f64, dev: &Device) -> SpikeTrains {
    let x = Tensor::<3>::random([b, t, n], Distribution::Uniform(0.0, 1.0), dev);
    SpikeTrains::from_dense(x.lower_elem(p).float())
}

/// The network of `models/MODEL.json` after two training steps on random spikes.
fn trained(model: &str) -> (NetworkDef, SpikingNet) {
    let dev = Device::flex().autodiff();
    dev.seed(5);
    let def = NetworkDef::load(model, &root().join("models")).unwrap();
    let mut net = SpikingNet::new(&def, &RULE, &dev).unwrap();
    let mut optim = AdamConfig::new().init();
    let labels = Tensor::<1, Int>::from_ints([3, 7], &dev);
    for _ in 0..2 {
        let input = random_spikes(2, 60, def.input_size(), 0.15, &dev);
        let counts = net
            .forward(input, Some(labels.clone()))
            .pop()
            .unwrap()
            .counts();
        let loss = count_loss(counts, labels.clone(), None, &CountTargets::default());
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(1e-2, net, grads);
    }
    (def, net.valid())
}

fn weights(net: &SpikingNet) -> Vec<Vec<f32>> {
    let data = |d: burn::tensor::TensorData| d.try_into_vec::<f32>().unwrap();
    net.layers
        .iter()
        .filter_map(|l| match l {
            SpikingLayer::Dense(d) => Some(data(d.weight.val().into_data())),
            SpikingLayer::Conv(c) => Some(data(c.weight.val().into_data())),
            SpikingLayer::Pool(_) => None,
        })
        .collect()
}

/// Every layer's spikes on the same random input, `[B·T·N]` per layer.
fn spikes(net: &SpikingNet, n_in: usize) -> Vec<Vec<f32>> {
    let dev = Device::flex();
    dev.seed(11);
    let input = random_spikes(2, 120, n_in, 0.2, &dev);
    net.forward(input, None)
        .iter()
        .map(|s| s.to_dense().into_data().try_into_vec::<f32>().unwrap())
        .collect()
}

fn round_trip(model: &str) {
    let (def, net) = trained(model);
    let refused = export(&net, def.input, Refractory::Refuse).unwrap_err();
    assert!(
        refused.to_string().contains("layer 0") && refused.to_string().contains("refractory"),
        "{refused}"
    );
    let graph = export(&net, def.input, Refractory::Metadata).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("net.nir");
    let read_back = {
        let _hdf5 = hdf5();
        write(&file, &graph).unwrap();
        read(&file).unwrap()
    };
    let (back_def, back) = import(&read_back, &def.name, &RULE, &Device::flex()).unwrap();
    assert_eq!(back_def.layers, def.layers);
    assert_eq!(back_def.neuron, def.neuron);
    assert_eq!(back_def.input, def.input);
    assert_eq!(back_def.lateral_strength, def.lateral_strength);
    assert_eq!(weights(&back), weights(&net));
    let (a, b) = (
        spikes(&net, def.input_size()),
        spikes(&back, def.input_size()),
    );
    assert!(
        a.iter().flatten().any(|&s| s > 0.0),
        "the network is silent"
    );
    assert_eq!(a, b, "spikes differ after the round trip");
}

#[test]
fn trained_mlp_round_trips() {
    round_trip("tiny-784-40-10");
}

#[test]
fn trained_cnn_round_trips() {
    round_trip("tiny-cnn-4c5-p2-10");
}

/// `python_cnn.nir`, written by the reference Python NIR (see make_python_fixture.py).
#[test]
fn reads_a_graph_written_by_python_nir() {
    let graph = {
        let _hdf5 = hdf5();
        read(&fixture("python_cnn.nir")).unwrap()
    };
    let (def, net) = import(&graph, "python-cnn", &RULE, &Device::flex()).unwrap();
    assert_eq!(def.input, [1, 6, 6]);
    assert_eq!(def.neuron.tau_m, 64.0);
    assert_eq!(def.neuron.tau_s, 8.0);
    assert_eq!(def.neuron.t_ref, 0);
    assert_eq!(def.lateral_strength, 1.0);
    let thresholds: Vec<f32> = def
        .layers
        .iter()
        .map(|l| match *l {
            LayerDef::Conv {
                maps,
                kernel,
                threshold,
            } => {
                assert_eq!((maps, kernel), (2, 3));
                threshold
            }
            LayerDef::Pool { size, threshold } => {
                assert_eq!(size, 2);
                threshold
            }
            LayerDef::Dense { size, threshold } => {
                assert_eq!(size, 3);
                threshold
            }
        })
        .collect();
    // The file's v_threshold is the potential to exceed: ν − 1e-6 for pool and dense layers.
    assert_eq!(thresholds[0], 1.0);
    assert_eq!(thresholds[1] - 1e-6, 2.0);
    assert_eq!(thresholds[2] - 1e-6, 1.5);
    let formula =
        |n: usize| -> Vec<f32> { (0..n).map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0).collect() };
    assert_eq!(weights(&net), vec![formula(18), formula(24)]);
    // It runs, and exports back to the same weights and thresholds.
    assert_eq!(spikes(&net, 36).len(), 3);
    let again = export(&net, def.input, Refractory::Refuse).unwrap();
    let v_thr = |g: &nir_rs::NirGraph| -> Vec<f32> {
        g.nodes
            .values()
            .filter_map(|n| match n {
                NirNode::CubaLif(l) => match l.v_threshold.data() {
                    nir_rs::types::TensorData::F32(v) => Some(v[0]),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    };
    let mut want = v_thr(&graph);
    let mut got = v_thr(&again);
    want.sort_by(f32::total_cmp);
    got.sort_by(f32::total_cmp);
    assert_eq!(got, want);
}

/// A recurrent network of the NIR paper (upstream neuromorphs/NIR, via nir-rs's fixtures):
/// refused, naming the node.
#[test]
fn refuses_what_the_mapping_cannot_express() {
    let graph = {
        let _hdf5 = hdf5();
        read(&fixture("braille_noDelay_noBias_subtract.nir")).unwrap()
    };
    let err = import(&graph, "braille", &RULE, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'lif1.lif'") && err.contains("tau_mem"),
        "{err}"
    );

    // The same graph with time constants in steps: its recurrent weights are refused.
    let mut graph = graph;
    for n in graph.nodes.values_mut() {
        if let NirNode::CubaLif(l) = n {
            let steps = |t: &nir_rs::types::Tensor| {
                let v: Vec<f64> = match t.data() {
                    nir_rs::types::TensorData::F64(v) => v.iter().map(|x| x * 1e4).collect(),
                    nir_rs::types::TensorData::F32(v) => {
                        v.iter().map(|&x| f64::from(x) * 1e4).collect()
                    }
                    _ => unreachable!(),
                };
                nir_rs::types::Tensor::from_f64(t.shape().to_vec(), v).unwrap()
            };
            l.tau_mem = steps(&l.tau_mem);
            l.tau_syn = steps(&l.tau_syn);
            let ratio: Vec<f64> = match (l.tau_mem.data(), l.tau_syn.data()) {
                (nir_rs::types::TensorData::F64(m), nir_rs::types::TensorData::F64(s)) => {
                    m.iter().zip(s).map(|(m, s)| m / s).collect()
                }
                _ => unreachable!(),
            };
            let shape = l.r.shape().to_vec();
            l.r = nir_rs::types::Tensor::from_f64(shape.clone(), ratio).unwrap();
            l.w_in = Some(l.tau_syn.clone());
        }
    }
    let err = import(&graph, "braille", &RULE, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'lif1.w_rec'") && err.contains("recurrent"),
        "{err}"
    );

    // A non-zero leak potential in an exported network.
    let (def, net) = trained("tiny-784-40-10");
    let mut graph = export(&net, def.input, Refractory::Metadata).unwrap();
    if let Some(NirNode::CubaLif(l)) = graph.nodes.get_mut("lif0") {
        l.v_leak = nir_rs::types::Tensor::from_f32(vec![40], vec![0.5; 40]).unwrap();
        assert!(l.metadata.contains_key(T_REF_KEY));
    }
    let err = import(&graph, "x", &RULE, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(err.contains("'lif0'") && err.contains("v_leak"), "{err}");
}

fn experiment(args: &[&str]) -> std::process::Output {
    let _hdf5 = hdf5();
    Command::new(env!("CARGO_BIN_EXE_experiment"))
        .args(args)
        .current_dir(root())
        .env_remove("HM2BP_BACKEND")
        .output()
        .expect("the binary runs")
}

/// `experiment export` (refused without `--refractory-metadata`) and `experiment import`.
#[test]
fn cli_exports_and_imports() {
    let (def, net) = trained("tiny-784-40-10");
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    SpikingClassifier::new(
        Network::Hm2bp(net.clone()),
        CountLoss::Mse(CountTargets::default()),
    )
    .into_record()
    .save(&model)
    .unwrap();
    let bpk = dir.path().join("model.bpk");
    let nir = dir.path().join("tiny.nir");
    let (bpk_s, nir_s) = (bpk.to_str().unwrap(), nir.to_str().unwrap());
    let export_args = [
        "export",
        bpk_s,
        "--format",
        "nir",
        nir_s,
        "--experiment",
        "tiny",
    ];
    let out = experiment(&export_args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("error:") && err.contains("refractory"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let out = experiment(&[&export_args[..], &["--refractory-metadata"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let back = dir.path().join("back.bpk");
    let out = experiment(&["import", nir_s, back.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back_def = NetworkDef::load("back", dir.path()).unwrap();
    assert_eq!(back_def.layers, def.layers);
    let dev = Device::flex();
    let record = burn::store::ModuleRecord::load(dir.path().join("back")).unwrap();
    let fresh = SpikingClassifier::new(
        Network::Hm2bp(SpikingNet::new(&back_def, &RULE, &dev).unwrap()),
        CountLoss::Mse(CountTargets::default()),
    );
    let loaded = fresh.try_load_record(record).unwrap();
    let Network::Hm2bp(loaded) = &loaded.net else {
        unreachable!()
    };
    assert_eq!(weights(loaded), weights(&net));

    let out = experiment(&[
        "import",
        fixture("braille_noDelay_noBias_subtract.nir")
            .to_str()
            .unwrap(),
        back.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("braille_noDelay_noBias_subtract.nir")
            && err.contains("lif1.lif"),
        "{err}"
    );
}
