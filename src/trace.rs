//! The one-step trace (`experiment trace`): a faithful HM2-BP training step (batch of one) of
//! a fully connected stack on a JSON case, with every intermediate quantity written out.
//! Formats: `../shared/docs/trace-format.md` (schemas `hm2bp-case/1` → `hm2bp-trace/1`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::neuron::LifSpec;
use crate::rule::dense::{DenseSpec, LayerWeights, forward_sample};
use crate::rule::output::{CountTargets, OutputRule, insert_label_spikes, lateral_factor};
use crate::rule::reference::{LayerBackward, LayerCase, layer_backward};
use crate::rule::regularizer::WeightRegularizer;
use crate::spikes::SpikeRaster;

/// A malformed case: the message names the field.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CaseError {
    /// JSON path of the offending field, e.g. `inputs.spikes[3]`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Longest simulation a trace case may ask for (the authors' runs use at most a few hundred).
pub const MAX_CASE_STEPS: usize = 100_000;

fn err(field: impl Into<String>, message: impl Into<String>) -> CaseError {
    CaseError {
        field: field.into(),
        message: message.into(),
    }
}

/// Adam settings of the trace step (`params.adam` of a case file).
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct AdamDef {
    /// Learning rate.
    pub lr: f64,
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Step number (1 = first step, bias correction from zero moments).
    pub step: i32,
}

/// `params` of a case file.
#[derive(Clone, Debug, Deserialize)]
#[allow(non_snake_case)]
pub struct CaseParamsDef {
    /// Time steps.
    pub T: usize,
    /// τm.
    pub tau_m: f32,
    /// τs.
    pub tau_s: f32,
    /// Refractory steps.
    pub t_ref: u32,
    /// Neurons per layer, input first.
    pub sizes: Vec<usize>,
    /// Threshold of every weight layer.
    pub vth: Vec<f32>,
    /// FC neurons fire when `v > vth − threshold_eps`.
    pub threshold_eps: f32,
    /// Output lateral inhibition strength (0 = none).
    pub lateral_strength: f32,
    /// Desired count of the label neuron.
    pub desired: f32,
    /// Desired count of the others.
    pub undesired: f32,
    /// Dead zone.
    pub margin: f32,
    /// Class of the sample.
    pub label: usize,
    /// Boosting weight β of the sample.
    pub sample_weight: f32,
    /// Effect ratio on.
    pub effect_ratio: bool,
    /// Regulariser λ.
    pub lambda_reg: f64,
    /// Regulariser β.
    pub beta_reg: f64,
    /// Regulariser L.
    pub weight_limit: f64,
    /// Optimizer.
    pub adam: AdamDef,
}

/// A validated case.
#[derive(Clone, Debug)]
pub struct Case {
    /// Parameters.
    pub params: CaseParamsDef,
    /// Input spike steps per input neuron.
    pub input: Vec<Vec<u32>>,
    /// `W_k[post][pre]` per weight layer.
    pub weights: Vec<Vec<Vec<f64>>>,
}

fn field<'a>(v: &'a Value, path: &str) -> Result<&'a Value, CaseError> {
    let mut cur = v;
    for key in path.split('.') {
        cur = cur.get(key).ok_or_else(|| err(path, "missing field"))?;
    }
    Ok(cur)
}

fn parse<T: for<'de> Deserialize<'de>>(v: &Value, path: &str) -> Result<T, CaseError> {
    let raw = field(v, path)?;
    serde_json::from_value(raw.clone()).map_err(|e| err(path, e.to_string()))
}

impl Case {
    /// Parses and validates a case from JSON text.
    pub fn from_json(text: &str) -> Result<Self, CaseError> {
        let v: Value = serde_json::from_str(text).map_err(|e| err("<case>", e.to_string()))?;
        let schema: String = parse(&v, "schema")?;
        if schema != "hm2bp-case/1" {
            return Err(err(
                "schema",
                format!("'{schema}', expected 'hm2bp-case/1'"),
            ));
        }
        // Every params field is required: name the first one missing.
        let params_v = field(&v, "params")?;
        for key in [
            "T",
            "tau_m",
            "tau_s",
            "t_ref",
            "sizes",
            "vth",
            "threshold_eps",
            "lateral_strength",
            "desired",
            "undesired",
            "margin",
            "label",
            "sample_weight",
            "effect_ratio",
            "lambda_reg",
            "beta_reg",
            "weight_limit",
            "adam",
        ] {
            parse::<Value>(params_v, key)
                .map_err(|_| err(format!("params.{key}"), "missing field"))?;
        }
        for key in ["lr", "beta1", "beta2", "eps", "step"] {
            parse::<Value>(params_v, &format!("adam.{key}"))
                .map_err(|_| err(format!("params.adam.{key}"), "missing field"))?;
        }
        let params: CaseParamsDef = parse(&v, "params")?;
        let input: Vec<Vec<u32>> = parse(&v, "inputs.spikes")?;
        let weights: Vec<Vec<Vec<f64>>> = parse(&v, "weights")?;
        let case = Case {
            params,
            input,
            weights,
        };
        case.validate()?;
        Ok(case)
    }

    fn validate(&self) -> Result<(), CaseError> {
        let p = &self.params;
        if p.sizes.len() < 2 {
            return Err(err(
                "params.sizes",
                "needs at least an input and an output layer",
            ));
        }
        if p.sizes.contains(&0) {
            return Err(err("params.sizes", "layer sizes must be > 0"));
        }
        let layers = p.sizes.len() - 1;
        if p.vth.len() != layers {
            return Err(err(
                "params.vth",
                format!("{} thresholds for {layers} weight layers", p.vth.len()),
            ));
        }
        if p.T < 2 {
            return Err(err("params.T", "must be at least 2"));
        }
        // The step allocates per time step: a hostile case must not size that.
        if p.T > MAX_CASE_STEPS {
            return Err(err(
                "params.T",
                format!("{} above the {MAX_CASE_STEPS} steps a case may have", p.T),
            ));
        }
        if !(p.tau_m > 0.0 && p.tau_s > 0.0 && p.tau_m != p.tau_s) {
            return Err(err(
                "params.tau_m",
                "tau_m and tau_s must be positive and different",
            ));
        }
        let n_out = p.sizes[layers];
        if p.label >= n_out {
            return Err(err(
                "params.label",
                format!("{} ≥ {n_out} outputs", p.label),
            ));
        }
        if self.input.len() != p.sizes[0] {
            return Err(err(
                "inputs.spikes",
                format!(
                    "{} trains for {} input neurons",
                    self.input.len(),
                    p.sizes[0]
                ),
            ));
        }
        for (n, train) in self.input.iter().enumerate() {
            if let Some(&t) = train.iter().find(|&&t| t as usize >= p.T) {
                return Err(err(
                    format!("inputs.spikes[{n}]"),
                    format!("time {t} outside 0..{}", p.T - 1),
                ));
            }
            if train.windows(2).any(|w| w[1] <= w[0]) {
                return Err(err(
                    format!("inputs.spikes[{n}]"),
                    "times must be strictly ascending",
                ));
            }
        }
        if self.weights.len() != layers {
            return Err(err(
                "weights",
                format!("{} matrices for {layers} weight layers", self.weights.len()),
            ));
        }
        for (k, w) in self.weights.iter().enumerate() {
            let (rows, cols) = (p.sizes[k + 1], p.sizes[k]);
            if w.len() != rows || w.iter().any(|r| r.len() != cols) {
                return Err(err(
                    format!("weights[{k}]"),
                    format!("must be {rows}×{cols} (post × pre)"),
                ));
            }
            if w.iter().flatten().any(|x| !x.is_finite()) {
                return Err(err(format!("weights[{k}]"), "contains a non-finite value"));
            }
        }
        Ok(())
    }
}

/// Forward rasters and counts, before any modification.
#[derive(Debug, Serialize)]
pub struct ForwardTrace {
    /// Spike steps per neuron, per weight layer.
    pub spikes: Vec<Vec<Vec<u32>>>,
    /// Counts per neuron, per weight layer.
    pub counts: Vec<Vec<u32>>,
}

/// Output-layer quantities.
#[derive(Debug, Serialize)]
pub struct OutputTrace {
    /// Target counts.
    pub target: Vec<f32>,
    /// Output error `d`.
    pub d: Vec<f32>,
    /// Logged cost.
    pub cost: f32,
    /// Lateral factors.
    pub gamma: Vec<f32>,
    /// Whether label spikes were inserted.
    pub label_spikes_inserted: bool,
    /// Output spikes after insertion.
    pub spikes_after_insertion: Vec<Vec<u32>>,
    /// Output counts after insertion.
    pub counts_after_insertion: Vec<u32>,
}

/// One weight layer's backward and update.
#[derive(Debug, Serialize)]
pub struct LayerTrace {
    /// Backward quantities.
    #[serde(flatten)]
    pub backward: LayerBackward,
    /// First Adam moment.
    pub adam_m: Vec<Vec<f64>>,
    /// Second Adam moment.
    pub adam_v: Vec<Vec<f64>>,
    /// Updated weights.
    pub w_new: Vec<Vec<f64>>,
}

/// The whole trace (`hm2bp-trace/1`).
#[derive(Debug, Serialize)]
pub struct Trace {
    /// Schema tag.
    pub schema: &'static str,
    /// Forward pass.
    pub forward: ForwardTrace,
    /// Output layer.
    pub output: OutputTrace,
    /// Weight layers, bottom-up.
    pub layers: Vec<LayerTrace>,
}

impl CaseParamsDef {
    /// Weight layers.
    fn layers(&self) -> usize {
        self.sizes.len() - 1
    }

    /// The neurons of weight layer `k`.
    fn lif(&self, k: usize) -> LifSpec {
        LifSpec {
            tau_m: self.tau_m,
            tau_s: self.tau_s,
            t_ref: self.t_ref,
            threshold: self.vth[k],
            threshold_eps: self.threshold_eps,
        }
    }

    /// The neurons and rule of weight layer `k` (the last: the output layer).
    fn spec(&self, k: usize) -> DenseSpec {
        DenseSpec {
            lif: self.lif(k),
            output: (k == self.layers() - 1).then_some(OutputRule {
                lateral_strength: self.lateral_strength,
                label_spike_level: self.desired as u32,
            }),
            effect_ratio: self.effect_ratio,
        }
    }
}

/// Runs the faithful step on a case.
pub fn run_trace(case: &Case) -> Trace {
    let (times, forward) = trace_forward(case);
    let output = trace_output(case, &times, &forward);
    let layers = trace_backward(case, &times, &output);
    Trace {
        schema: "hm2bp-trace/1",
        forward,
        output,
        layers,
    }
}

/// The forward pass: the spike times of every layer (input first) and the trace of the
/// weight layers' rasters.
fn trace_forward(case: &Case) -> (Vec<Vec<Vec<u32>>>, ForwardTrace) {
    let p = &case.params;
    let mut rasters = vec![SpikeRaster::from_times(&case.input, p.T)];
    for k in 0..p.layers() {
        let (rows, cols) = (p.sizes[k + 1], p.sizes[k]);
        let w32: Vec<f32> = case.weights[k]
            .iter()
            .flatten()
            .map(|&x| x as f32)
            .collect();
        let out = forward_sample(
            &rasters[k],
            &LayerWeights::new(&w32, rows, cols),
            &p.spec(k),
        );
        rasters.push(out);
    }
    let times: Vec<Vec<Vec<u32>>> = rasters.iter().map(SpikeRaster::times).collect();
    let forward = ForwardTrace {
        spikes: times[1..].to_vec(),
        counts: rasters[1..].iter().map(SpikeRaster::counts).collect(),
    };
    (times, forward)
}

/// The output error, the lateral factors γ and the label-spike insertion.
fn trace_output(case: &Case, times: &[Vec<Vec<u32>>], forward: &ForwardTrace) -> OutputTrace {
    let p = &case.params;
    let layers = p.layers();
    let targets = CountTargets {
        desired: p.desired,
        undesired: p.undesired,
        margin: p.margin,
    };
    let out_counts: Vec<f32> = forward.counts[layers - 1]
        .iter()
        .map(|&c| c as f32)
        .collect();
    let (d, cost) = targets.error(&out_counts, p.label, p.sample_weight);
    let out_times = &times[layers];
    let gamma = lateral_factor(out_times, p.label, p.lateral_strength, &p.lif(layers - 1));
    let mut after = out_times.clone();
    let inserted = insert_label_spikes(&mut after[p.label], p.T, p.desired as u32);
    OutputTrace {
        target: (0..out_counts.len())
            .map(|i| targets.target(i, p.label))
            .collect(),
        d,
        cost,
        gamma,
        label_spikes_inserted: inserted,
        counts_after_insertion: after.iter().map(|t| t.len() as u32).collect(),
        spikes_after_insertion: after,
    }
}

/// The backward pass, top-down, all with the pre-update weights, and each layer's Adam step.
fn trace_backward(case: &Case, times: &[Vec<Vec<u32>>], output: &OutputTrace) -> Vec<LayerTrace> {
    let p = &case.params;
    let layers = p.layers();
    let reg = WeightRegularizer {
        lambda: p.lambda_reg,
        beta: p.beta_reg,
        limit: p.weight_limit,
    };
    let mut d_post: Vec<f64> = output.d.iter().map(|&x| x as f64).collect();
    let mut traces = Vec::with_capacity(layers);
    for k in (0..layers).rev() {
        let post = if k == layers - 1 {
            &output.spikes_after_insertion
        } else {
            &times[k + 1]
        };
        let g: Vec<f64> = if k == layers - 1 {
            output.gamma.iter().map(|&x| x as f64).collect()
        } else {
            vec![1.0; p.sizes[k + 1]]
        };
        let b = layer_backward(&LayerCase {
            pre: &times[k],
            post,
            weight: &case.weights[k],
            d_post: &d_post,
            gamma: &g,
            lif: &p.lif(k),
            effect_ratio: p.effect_ratio,
            need_d_pre: k > 0,
            regularizer: &reg,
        });
        if let Some(dp) = &b.d_pre {
            d_post = dp.clone();
        }
        traces.push(adam_step(&p.adam, b, &case.weights[k]));
    }
    traces.reverse();
    traces
}

/// The first Adam step (from zero moments) of one layer on its gradient `b.grad`.
fn adam_step(a: &AdamDef, b: LayerBackward, weights: &[Vec<f64>]) -> LayerTrace {
    let mut adam_m = Vec::new();
    let mut adam_v = Vec::new();
    let mut w_new = Vec::new();
    for (g_row, w_row) in b.grad.iter().zip(weights) {
        let m: Vec<f64> = g_row.iter().map(|g| (1.0 - a.beta1) * g).collect();
        let v: Vec<f64> = g_row.iter().map(|g| (1.0 - a.beta2) * g * g).collect();
        let (c1, c2) = (1.0 - a.beta1.powi(a.step), 1.0 - a.beta2.powi(a.step));
        w_new.push(
            w_row
                .iter()
                .zip(m.iter().zip(&v))
                .map(|(w, (m, v))| w - a.lr * (m / c1) / ((v / c2).sqrt() + a.eps))
                .collect(),
        );
        adam_m.push(m);
        adam_v.push(v);
    }
    LayerTrace {
        backward: b,
        adam_m,
        adam_v,
        w_new,
    }
}
