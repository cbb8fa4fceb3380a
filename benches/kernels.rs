//! Kernel-level timing of one spiking dense layer (784 → 800, T = 400) on real MNIST spike
//! trains: reading bit-packed trains, forward and HM2-BP backward per sample, single thread.
//! `cargo bench --bench kernels` (needs MNIST in `data/` or `$HM2BP_DATA_DIR`).

use std::path::PathBuf;
use std::time::Instant;

use hm2bp::datasets::{EncodingMode, ImageDatasetKind, RateEncoder, Split, load_image_set};
use hm2bp::neuron::LifSpec;
use hm2bp::rule::DenseSpec;
use hm2bp::rule::dense::{LayerWeights, SampleGrad, backward_sample, forward_sample};
use hm2bp::spikes::SpikeRaster;
use rand::{RngExt, SeedableRng};

fn main() {
    let data =
        std::env::var_os("HM2BP_DATA_DIR").map_or_else(|| PathBuf::from("data"), PathBuf::from);
    let set = match load_image_set(ImageDatasetKind::Mnist, &data, Split::Train) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    let (steps, n_in, n_out, samples) = (400, 784, 800, 64);
    let enc = RateEncoder::new(steps, 1, EncodingMode::FixedPerSample);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let w: Vec<f32> = (0..n_in * n_out)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect();
    let lw = LayerWeights::new(&w, n_out, n_in);
    let spec = DenseSpec {
        lif: LifSpec::paper(20.0),
        output: None,
        effect_ratio: true,
    };
    let mut dense = vec![0.0f32; steps * n_in];
    let (mut t_scan, mut t_fwd, mut t_bwd, mut in_spikes, mut out_spikes) = (0.0, 0.0, 0.0, 0, 0);
    let mut grad_t = vec![0.0f32; n_in * n_out];
    let mut words = vec![0u32; steps * hm2bp::spikes::words_per_step(n_in)];
    for s in 0..samples {
        enc.encode_into(set.images.image(s), s as u64, 0, &mut dense);
        SpikeRaster::from_dense(&dense, steps, n_in).write_words(&mut words);
        let t0 = Instant::now();
        let input = SpikeRaster::from_words(&words, steps, n_in);
        let t1 = Instant::now();
        let out = forward_sample(&input, &lw, &spec);
        let t2 = Instant::now();
        let d_post = vec![0.01f32; n_out];
        let args = SampleGrad {
            input: &input,
            output: &out,
            d_post: &d_post,
            label: None,
        };
        backward_sample(&args, &lw, &spec, &mut grad_t, None);
        let t3 = Instant::now();
        t_scan += (t1 - t0).as_secs_f64();
        t_fwd += (t2 - t1).as_secs_f64();
        t_bwd += (t3 - t2).as_secs_f64();
        in_spikes += input.num_spikes();
        out_spikes += out.num_spikes();
    }
    let ms = |x: f64| 1e3 * x / samples as f64;
    println!(
        "784->800, T={steps}: {} input / {} output spikes per sample; per sample: reading words {:.3} ms, forward {:.3} ms, backward {:.3} ms",
        in_spikes / samples,
        out_spikes / samples,
        ms(t_scan),
        ms(t_fwd),
        ms(t_bwd)
    );
}
