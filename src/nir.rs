//! NIR (Neuromorphic Intermediate Representation, <https://neuroir.org>) export and import of a
//! [`SpikingNet`], through the `nir-rs` crate (feature `nir`; links the system HDF5 library).
//!
//! Mapping (time unit: one simulation step, dt = 1):
//!
//! - dense layer → `Linear` (weight `[out, in]`, no bias), after a `Flatten` (start 0, end −1)
//!   when its input is a `[maps, h, w]` map; conv layer → `Conv2d` (weight
//!   `[out, in, k, k]`, stride 1, padding 0, dilation 1, groups 1, zero bias); pool layer →
//!   `SumPool2d` (kernel = stride = window, padding 0). Each is followed by a `CubaLIF` of the
//!   layer's neurons; the output layer's lateral inhibition is a recurrent `Linear`
//!   (−strength off the diagonal, 0 on it) from that `CubaLIF` back to itself.
//! - LIF ↔ `CubaLIF` (`τ_syn İ = −I + w_in S`, `τ_mem v̇ = v_leak − v + r I`, spike when
//!   `v > v_threshold`, then `v = v_reset`), with `I` = our synaptic trace `ep`: `tau_mem` = τm,
//!   `tau_syn` = τs, `r` = τm/τs, `w_in` = τs, `v_leak` = 0, `v_reset` = 0 and `v_threshold` =
//!   `ν − eps` (the value our neuron compares with, in f32). Our update is the Euler
//!   discretisation of these equations at dt = 1 (current first, then the membrane with the
//!   updated current; the spikes of step t − 1 drive step t).
//! - The refractory period has no NIR field: [`export`] refuses a layer with `t_ref > 0`
//!   unless [`Refractory::Metadata`] stores it as the `CubaLIF` node's metadata
//!   [`T_REF_KEY`], which [`import`] reads back (other NIR tools ignore it).
//!
//! [`import`] accepts exactly these patterns (also `Affine` with a zero bias and `Conv2d` with
//! padding `"valid"`) and refuses anything else with an error naming the node.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::TensorData;
use nir_rs::nodes::{Conv2d, CubaLif, Flatten, Input, Linear, Output, Padding, SumPool2d};
use nir_rs::types::{MetadataMap, MetadataValue, Tensor as NirTensor, TensorData as NirData};
use nir_rs::{NirGraph, NirNode};

use crate::model::{LayerDef, NetworkDef, NeuronDef, RuleOptions, SpikingLayer, SpikingNet};
use crate::neuron::LifSpec;
use crate::rule::local::Topology;

/// Metadata key of a `CubaLIF` node holding the refractory period in steps (an integer).
pub const T_REF_KEY: &str = "hm2bp_t_ref";

/// Errors of NIR export and import; each names the file, layer or node concerned.
#[derive(Debug, thiserror::Error)]
pub enum NirError {
    /// A `.nir` file could not be read or written.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The network or graph uses something the mapping cannot express exactly.
    #[error("{0}")]
    Unsupported(String),
}

/// What [`export`] does with a refractory period, which NIR's `CubaLIF` cannot express.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Refractory {
    /// Refuse to export a layer with `t_ref > 0`.
    #[default]
    Refuse,
    /// Store it as the node metadata [`T_REF_KEY`] (read back by [`import`], ignored by other
    /// NIR tools).
    Metadata,
}

fn unsupported(message: String) -> NirError {
    NirError::Unsupported(message)
}

/// The LIF parameters of a layer.
fn layer_lif(layer: &SpikingLayer) -> LifSpec {
    match layer {
        SpikingLayer::Dense(d) => d.spec().lif,
        SpikingLayer::Conv(c) => c.spec().lif,
        SpikingLayer::Pool(p) => p.spec().lif,
    }
}

fn f32_tensor(shape: &[usize], data: Vec<f32>) -> Result<NirTensor, NirError> {
    NirTensor::from_f32(shape.to_vec(), data).map_err(|e| unsupported(e.to_string()))
}

fn filled(shape: &[usize], value: f32) -> Result<NirTensor, NirError> {
    f32_tensor(shape, vec![value; shape.iter().product()])
}

fn pair(value: usize) -> Result<NirTensor, NirError> {
    NirTensor::from_i64(vec![2], vec![value as i64; 2]).map_err(|e| unsupported(e.to_string()))
}

fn weights<const D: usize>(w: &Param<Tensor<D>>) -> Result<(Vec<usize>, Vec<f32>), NirError> {
    let w = w.val();
    let shape = w.dims().to_vec();
    let data = crate::device_reads::try_data(w)
        .map_err(|e| unsupported(format!("reading weights: {e:?}")))?
        .try_into_vec::<f32>()
        .map_err(|e| unsupported(format!("reading weights: {e:?}")))?;
    Ok((shape, data))
}

/// The `CubaLIF` node of `n` neurons of shape `shape` with parameters `lif`.
fn cuba_lif(
    lif: &LifSpec,
    shape: &[usize],
    refractory: Refractory,
    layer: &str,
) -> Result<NirNode, NirError> {
    let mut metadata = MetadataMap::new();
    if lif.t_ref > 0 {
        if refractory == Refractory::Refuse {
            return Err(unsupported(format!(
                "{layer}: refractory period of {} steps: NIR's CubaLIF has no refractory \
                 period, so other NIR tools would simulate these neurons without it; store it \
                 as node metadata `{T_REF_KEY}` (read back by hm2bp; `--refractory-metadata`) \
                 or export a model with t_ref = 0",
                lif.t_ref
            )));
        }
        metadata.insert(T_REF_KEY.into(), MetadataValue::I64(lif.t_ref.into()));
    }
    Ok(NirNode::CubaLif(CubaLif {
        tau_syn: filled(shape, lif.tau_s)?,
        tau_mem: filled(shape, lif.tau_m)?,
        r: filled(shape, lif.tau_m / lif.tau_s)?,
        v_leak: filled(shape, 0.0)?,
        v_threshold: filled(shape, lif.firing_level())?,
        v_reset: Some(filled(shape, 0.0)?),
        w_in: Some(filled(shape, lif.tau_s)?),
        metadata,
    }))
}

/// A graph under construction as a chain of nodes.
struct Chain {
    g: NirGraph,
    /// The last node of the chain.
    last: String,
}

impl Chain {
    /// Inserts `node` as `name`, fed by the last node of the chain.
    fn insert_after_last(&mut self, name: &str, node: NirNode) -> Result<(), NirError> {
        self.g
            .insert_node(name.to_string(), node)
            .map_err(|e| unsupported(e.to_string()))?;
        self.g.add_edge(self.last.as_str(), name.to_string());
        Ok(())
    }

    /// Appends `node` as `name`: it becomes the last node of the chain.
    fn push(&mut self, name: String, node: NirNode) -> Result<(), NirError> {
        self.insert_after_last(&name, node)?;
        self.last = name;
        Ok(())
    }

    /// Adds `node` as `name` in a loop from the last node of the chain back to it.
    fn push_loop(&mut self, name: String, node: NirNode) -> Result<(), NirError> {
        self.insert_after_last(&name, node)?;
        self.g.add_edge(name, self.last.clone());
        Ok(())
    }
}

/// Builds the NIR graph of `net`, which reads inputs of shape `input` (`[maps, h, w]`; a dense
/// first layer reads it flattened).
///
/// # Errors
/// A layer that does not read the shape the previous one writes, or a refractory period
/// that `refractory` refuses.
pub fn export(
    net: &SpikingNet,
    input: [usize; 3],
    refractory: Refractory,
) -> Result<NirGraph, NirError> {
    let mut g = NirGraph::new();
    g.insert_node(
        "input",
        NirNode::Input(Input {
            shape: input.to_vec(),
            metadata: MetadataMap::new(),
        }),
    )
    .map_err(|e| unsupported(e.to_string()))?;
    let mut chain = Chain {
        g,
        last: "input".to_string(),
    };
    let mut shape = input.to_vec();
    for (k, layer) in net.layers.iter().enumerate() {
        shape = export_layer(&mut chain, k, layer, shape, refractory)?;
    }
    let output = NirNode::Output(Output {
        shape,
        metadata: MetadataMap::new(),
    });
    chain.push("output".into(), output)?;
    Ok(chain.g)
}

/// Appends layer `k` (reading trains of `shape`) to `chain`: a `Flatten` before a dense layer
/// that reads a map, its weight node, its `CubaLIF` and the output layer's lateral inhibition.
/// Returns the shape it writes.
fn export_layer(
    chain: &mut Chain,
    k: usize,
    layer: &SpikingLayer,
    mut shape: Vec<usize>,
    refractory: Refractory,
) -> Result<Vec<usize>, NirError> {
    if let SpikingLayer::Dense(_) = layer
        && shape.len() > 1
    {
        let flatten = NirNode::Flatten(Flatten {
            start_dim: 0,
            end_dim: -1,
            input_type: Some(shape.clone()),
            metadata: MetadataMap::new(),
        });
        chain.push(format!("flatten{k}"), flatten)?;
        shape = vec![shape.iter().product()];
    }
    let WeightNode {
        kind,
        reads,
        node,
        writes: out_shape,
    } = weight_node(layer)?;
    let what = format!("layer {k} ({kind})");
    if reads != shape {
        return Err(unsupported(format!(
            "{what} reads {reads:?} but its input is {shape:?}"
        )));
    }
    chain.push(format!("{kind}{k}"), node)?;
    let lif = cuba_lif(&layer_lif(layer), &out_shape, refractory, &what)?;
    chain.push(format!("lif{k}"), lif)?;
    if let SpikingLayer::Dense(d) = layer
        && let Some(o) = d.spec().output.filter(|o| o.lateral_strength != 0.0)
    {
        let lateral = lateral_node(out_shape[0], o.lateral_strength)?;
        chain.push_loop(format!("lateral{k}"), lateral)?;
    }
    Ok(out_shape)
}

/// The weight node of a layer, with its kind and the shapes it reads and writes.
struct WeightNode {
    kind: &'static str,
    reads: Vec<usize>,
    node: NirNode,
    writes: Vec<usize>,
}

impl WeightNode {
    fn new(kind: &'static str, reads: Vec<usize>, node: NirNode, writes: Vec<usize>) -> Self {
        Self {
            kind,
            reads,
            node,
            writes,
        }
    }
}

/// The weight node of a layer.
fn weight_node(layer: &SpikingLayer) -> Result<WeightNode, NirError> {
    Ok(match layer {
        SpikingLayer::Dense(d) => {
            let (w_shape, w) = weights(&d.weight)?;
            let node = NirNode::Linear(Linear {
                weight: f32_tensor(&w_shape, w)?,
                metadata: MetadataMap::new(),
            });
            WeightNode::new("dense", vec![w_shape[1]], node, vec![w_shape[0]])
        }
        SpikingLayer::Conv(c) => {
            let Topology::Conv(t) = c.spec().topology else {
                unreachable!("a conv layer has a conv topology")
            };
            let (w_shape, w) = weights(&c.weight)?;
            let node = NirNode::Conv2d(Conv2d {
                weight: f32_tensor(&w_shape, w)?,
                stride: vec![1, 1],
                padding: Padding::pair(0, 0),
                dilation: vec![1, 1],
                groups: 1,
                bias: filled(&[t.out_maps], 0.0)?,
                input_shape: Some(vec![t.height, t.width]),
                metadata: MetadataMap::new(),
            });
            let reads = vec![t.in_maps, t.height, t.width];
            WeightNode::new("conv", reads, node, c.output_shape().to_vec())
        }
        SpikingLayer::Pool(p) => {
            let Topology::Pool {
                maps,
                height,
                width,
                size,
            } = p.spec().topology
            else {
                unreachable!("a pool layer has a pool topology")
            };
            let node = NirNode::SumPool2d(SumPool2d {
                kernel_size: pair(size)?,
                stride: pair(size)?,
                padding: pair(0)?,
                metadata: MetadataMap::new(),
            });
            let reads = vec![maps, height, width];
            WeightNode::new("pool", reads, node, p.output_shape().to_vec())
        }
    })
}

/// The lateral inhibition of `n` output neurons: an `[n, n]` `Linear`, −`strength` off the
/// diagonal, 0 on it.
fn lateral_node(n: usize, strength: f32) -> Result<NirNode, NirError> {
    let w = (0..n * n)
        .map(|i| if i % (n + 1) == 0 { 0.0 } else { -strength })
        .collect();
    Ok(NirNode::Linear(Linear {
        weight: f32_tensor(&[n, n], w)?,
        metadata: MetadataMap::new(),
    }))
}

/// Writes `graph` to the `.nir` (HDF5) file `path`.
///
/// HDF5 locks the file while it is open and opens it without close-on-exec: a child process
/// spawned by another thread meanwhile inherits the lock and keeps it while it runs, so a
/// program that spawns processes should not do so while it reads or writes a `.nir` file.
///
/// # Errors
/// If the file cannot be written.
pub fn write(path: &Path, graph: &NirGraph) -> Result<(), NirError> {
    nir_rs::io::write(path, graph).map_err(|e| NirError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Reads the `.nir` (HDF5) file `path`.
///
/// # Errors
/// If the file cannot be read or is not a NIR graph.
pub fn read(path: &Path) -> Result<NirGraph, NirError> {
    nir_rs::io::read(path).map_err(|e| NirError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The elements of a tensor as `f32` (integer and f64 tensors converted).
fn values(t: &NirTensor) -> Vec<f32> {
    match t.data() {
        NirData::F32(v) => v.clone(),
        NirData::F64(v) => v.iter().map(|&x| x as f32).collect(),
        NirData::I64(v) => v.iter().map(|&x| x as f32).collect(),
        NirData::Bool(v) => v.iter().map(|&x| f32::from(u8::from(x))).collect(),
    }
}

/// The single value of a tensor whose elements are all equal.
fn uniform(t: &NirTensor, field: &str, node: &str) -> Result<f32, NirError> {
    let v = values(t);
    match v.first() {
        Some(&x) if v.iter().all(|&y| y == x) => Ok(x),
        Some(_) => Err(unsupported(format!(
            "node '{node}': `{field}` differs between neurons (hm2bp layers share one value)"
        ))),
        None => Err(unsupported(format!("node '{node}': `{field}` is empty"))),
    }
}

/// The nominal threshold ν whose firing threshold `ν − eps` (f32) is `v_threshold`, closest
/// to `v_threshold + eps`.
fn nominal_threshold(v_threshold: f32, eps: f32) -> Option<f32> {
    let guess = v_threshold + eps;
    let (mut down, mut up) = (guess, guess);
    let mut candidates = vec![guess];
    for _ in 0..8 {
        down = down.next_down();
        up = up.next_up();
        candidates.extend([down, up]);
    }
    let exact = f64::from(v_threshold) + f64::from(eps);
    candidates
        .into_iter()
        .filter(|&nu| {
            let lif = LifSpec {
                threshold_eps: eps,
                ..LifSpec::paper(nu)
            };
            lif.firing_level() == v_threshold
        })
        .min_by(|a, b| {
            (f64::from(*a) - exact)
                .abs()
                .total_cmp(&(f64::from(*b) - exact).abs())
        })
}

/// One spiking layer read from a graph: its kind, weights and neurons.
struct ImportedLayer<'a> {
    def: LayerDef,
    weights: Option<(Vec<usize>, Vec<f32>)>,
    /// `v_threshold` of its `CubaLIF`.
    v_threshold: f32,
    neuron: NeuronDef,
    lateral: f32,
    lif_node: &'a str,
}

/// The neuron constants of a `CubaLIF` node, and its `v_threshold`.
fn lif_params(name: &str, n: &CubaLif) -> Result<(NeuronDef, f32), NirError> {
    let get = |t: &NirTensor, field: &str| uniform(t, field, name);
    let tau_m = get(&n.tau_mem, "tau_mem")?;
    let tau_s = get(&n.tau_syn, "tau_syn")?;
    for (field, tau) in [("tau_mem", tau_m), ("tau_syn", tau_s)] {
        if !(tau >= 1.0 && tau.is_finite()) {
            return Err(unsupported(format!(
                "node '{name}': {field} = {tau}: time constants are read in steps (dt = 1) and \
                 must be at least 1 (a graph in seconds must be rescaled first)"
            )));
        }
    }
    let w_in = n.w_in.as_ref().map_or(Ok(1.0), |t| get(t, "w_in"))?;
    let gain = get(&n.r, "r")? * w_in;
    if ((gain - tau_m) / tau_m).abs() > 1e-6 {
        return Err(unsupported(format!(
            "node '{name}': r · w_in = {gain}, hm2bp neurons need r · w_in = tau_mem = {tau_m} \
             (v += ep/τs)"
        )));
    }
    for (field, t) in [("v_leak", Some(&n.v_leak)), ("v_reset", n.v_reset.as_ref())] {
        if let Some(t) = t
            && get(t, field)? != 0.0
        {
            return Err(unsupported(format!(
                "node '{name}': {field} must be 0 (hm2bp neurons leak to and reset to 0)"
            )));
        }
    }
    let v_threshold = get(&n.v_threshold, "v_threshold")?;
    if !(v_threshold.is_finite() && v_threshold > 0.0) {
        return Err(unsupported(format!(
            "node '{name}': v_threshold = {v_threshold} must be a positive number"
        )));
    }
    let t_ref = match n.metadata.get(T_REF_KEY) {
        None => 0,
        Some(MetadataValue::I64(t)) => u32::try_from(*t).map_err(|_| {
            unsupported(format!(
                "node '{name}': metadata {T_REF_KEY} = {t} is out of range"
            ))
        })?,
        Some(other) => {
            return Err(unsupported(format!(
                "node '{name}': metadata {T_REF_KEY} is {other:?}, not an integer"
            )));
        }
    };
    Ok((
        NeuronDef {
            tau_m,
            tau_s,
            t_ref,
        },
        v_threshold,
    ))
}

/// Edges of a graph by node.
struct Edges<'a> {
    from: HashMap<&'a str, Vec<&'a str>>,
    to: HashMap<&'a str, Vec<&'a str>>,
}

impl<'a> Edges<'a> {
    fn of(g: &'a NirGraph) -> Self {
        let (mut from, mut to) = (HashMap::<_, Vec<_>>::new(), HashMap::<_, Vec<_>>::new());
        for (a, b) in &g.edges {
            from.entry(a.as_str()).or_default().push(b.as_str());
            to.entry(b.as_str()).or_default().push(a.as_str());
        }
        Self { from, to }
    }

    fn successors(&self, node: &str) -> &[&'a str] {
        self.from.get(node).map_or(&[], Vec::as_slice)
    }

    fn predecessors(&self, node: &str) -> &[&'a str] {
        self.to.get(node).map_or(&[], Vec::as_slice)
    }

    /// Successors of `node` that do not feed it back (a layer's lateral inhibition).
    fn forward(&self, node: &str) -> Vec<&'a str> {
        let back = self.predecessors(node);
        let succ = self.successors(node);
        succ.iter().copied().filter(|s| !back.contains(s)).collect()
    }
}

/// The single node named `name` of `g`.
fn node<'a>(g: &'a NirGraph, name: &str) -> Result<&'a NirNode, NirError> {
    g.get(name)
        .ok_or_else(|| unsupported(format!("an edge names the missing node '{name}'")))
}

/// The strength `s` of a lateral-inhibition weight matrix (−s off the diagonal, 0 on it).
fn lateral_strength(name: &str, l: &Linear, n: usize) -> Result<f32, NirError> {
    let w = values(&l.weight);
    let off = if n > 1 { w.get(1).copied() } else { Some(0.0) };
    let pattern_ok = l.weight.shape() == [n, n]
        && off.is_some_and(|c| {
            w.iter()
                .enumerate()
                .all(|(i, &x)| x == if i % (n + 1) == 0 { 0.0 } else { c })
        });
    if !pattern_ok {
        return Err(unsupported(format!(
            "node '{name}': a recurrent connection is only supported as the fixed lateral \
             inhibition of a layer (an [n, n] Linear with one value off the diagonal and 0 on it)"
        )));
    }
    Ok(-off.unwrap_or(0.0))
}

/// Reads the weight node `name` (and the `CubaLIF` after it) as a layer reading `shape`.
fn read_layer<'a>(
    g: &NirGraph,
    edges: &Edges<'a>,
    name: &str,
    shape: &[usize],
) -> Result<(ImportedLayer<'a>, Vec<usize>), NirError> {
    let bad = |m: String| unsupported(format!("node '{name}': {m}"));
    let flat: usize = shape.iter().product();
    let (def, weights, out_shape) = match node(g, name)? {
        NirNode::Linear(Linear { weight, .. }) => dense_layer(weight, flat, shape).map_err(bad)?,
        NirNode::Affine(a) => {
            if values(&a.bias).iter().any(|&b| b != 0.0) {
                return Err(bad(
                    "Affine with a non-zero bias (hm2bp layers have no bias)".into(),
                ));
            }
            dense_layer(&a.weight, flat, shape).map_err(bad)?
        }
        NirNode::Conv2d(c) => conv_layer(c, shape).map_err(bad)?,
        NirNode::SumPool2d(p) => pool_layer(p, shape).map_err(bad)?,
        other => {
            return Err(bad(format!(
                "{} is not supported (hm2bp maps Input, Flatten, Linear, Affine with zero bias, \
                 Conv2d, SumPool2d, CubaLIF and Output)",
                other.type_name()
            )));
        }
    };
    let [lif_node] = edges.successors(name)[..] else {
        return Err(bad("must feed exactly one CubaLIF node".into()));
    };
    let NirNode::CubaLif(lif) = node(g, lif_node)? else {
        return Err(bad(format!(
            "is followed by '{lif_node}' ({}), hm2bp needs a CubaLIF after each weight node",
            node(g, lif_node)?.type_name()
        )));
    };
    let (neuron, v_threshold) = lif_params(lif_node, lif)?;
    if lif.v_threshold.numel() != out_shape.iter().product::<usize>() {
        return Err(unsupported(format!(
            "node '{lif_node}': {} neurons, but '{name}' writes {out_shape:?}",
            lif.v_threshold.numel()
        )));
    }
    let mut lateral = 0.0;
    for &p in edges.predecessors(lif_node) {
        if p == name {
            continue;
        }
        let recurrent = match node(g, p)? {
            NirNode::Linear(l) if edges.predecessors(p) == [lif_node] => l,
            _ => {
                return Err(unsupported(format!(
                    "node '{lif_node}': input from '{p}' besides '{name}': only a layer's own \
                     lateral inhibition may feed its CubaLIF"
                )));
            }
        };
        lateral = lateral_strength(p, recurrent, out_shape.iter().product())?;
    }
    let layer = ImportedLayer {
        def,
        weights,
        v_threshold,
        neuron,
        lateral,
        lif_node,
    };
    Ok((layer, out_shape))
}

type LayerRead = (LayerDef, Option<(Vec<usize>, Vec<f32>)>, Vec<usize>);

fn dense_layer(w: &NirTensor, flat: usize, shape: &[usize]) -> Result<LayerRead, String> {
    match *w.shape() {
        [out, inp] if inp == flat && shape.len() == 1 && out > 0 => Ok((
            LayerDef::Dense {
                size: out,
                threshold: 1.0,
            },
            Some((vec![out, inp], values(w))),
            vec![out],
        )),
        ref s => Err(format!(
            "weight {s:?} does not read the input {shape:?} as [out, {flat}] (flatten maps first)"
        )),
    }
}

fn conv_layer(c: &Conv2d, shape: &[usize]) -> Result<LayerRead, String> {
    let &[out, cin, k, k2] = c.weight.shape() else {
        return Err(format!(
            "weight {:?} is not [out, in, k, k]",
            c.weight.shape()
        ));
    };
    let padding_ok = match &c.padding {
        Padding::Valid => true,
        Padding::Explicit(p) => p.iter().all(|&x| x == 0),
        _ => false,
    };
    let ones = |v: &[i64]| v.iter().all(|&x| x == 1);
    if !(k == k2 && ones(&c.stride) && ones(&c.dilation) && c.groups == 1 && padding_ok) {
        return Err("only square kernels, stride 1, padding 0, dilation 1, groups 1".into());
    }
    if values(&c.bias).iter().any(|&b| b != 0.0) {
        return Err("non-zero bias (hm2bp layers have no bias)".into());
    }
    match *shape {
        [c_in, h, w] if c_in == cin && k > 0 && k <= h && k <= w => Ok((
            LayerDef::Conv {
                maps: out,
                kernel: k,
                threshold: 1.0,
            },
            Some((c.weight.shape().to_vec(), values(&c.weight))),
            vec![out, h + 1 - k, w + 1 - k],
        )),
        _ => Err(format!(
            "a [{out}, {cin}, {k}, {k}] kernel does not fit the input {shape:?}"
        )),
    }
}

fn pool_layer(p: &SumPool2d, shape: &[usize]) -> Result<LayerRead, String> {
    let (kernel, stride, padding) = (
        values(&p.kernel_size),
        values(&p.stride),
        values(&p.padding),
    );
    let size = kernel.first().copied().unwrap_or(0.0);
    let tiles = |s: usize| size >= 1.0 && s.is_multiple_of(size as usize);
    match *shape {
        [maps, h, w]
            if kernel.len() == 2
                && kernel.iter().all(|&x| x == size)
                && stride == kernel
                && padding.iter().all(|&x| x == 0.0)
                && tiles(h)
                && tiles(w) =>
        {
            let s = size as usize;
            Ok((
                LayerDef::Pool {
                    size: s,
                    threshold: 1.0,
                },
                None,
                vec![maps, h / s, w / s],
            ))
        }
        _ => Err(format!(
            "kernel {kernel:?}, stride {stride:?}, padding {padding:?} on {shape:?}: only \
             square non-overlapping windows (stride = kernel, padding 0) that tile the map"
        )),
    }
}

/// The shape after a `Flatten` node, which must flatten all of `shape`.
fn flattened(name: &str, f: &Flatten, shape: &[usize]) -> Result<Vec<usize>, NirError> {
    let last = shape.len() as i64 - 1;
    let input_ok = f.input_type.as_ref().is_none_or(|t| t == shape);
    if f.start_dim != 0 || !(f.end_dim == -1 || f.end_dim == last) || !input_ok {
        return Err(unsupported(format!(
            "node '{name}': only a Flatten of the whole {shape:?} input (start_dim 0, end_dim \
             -1) is supported, not start_dim {}, end_dim {}, input {:?}",
            f.start_dim, f.end_dim, f.input_type
        )));
    }
    Ok(vec![shape.iter().product()])
}

/// Builds the network of a NIR graph: its definition (named `name`) and the network with the
/// graph's weights. `rule` sets the learning-rule options (which NIR does not describe).
///
/// # Errors
/// Any node, edge or parameter value the mapping (module docs) does not express exactly,
/// named in the message.
pub fn import(
    g: &NirGraph,
    name: &str,
    rule: &RuleOptions,
    device: &Device,
) -> Result<(NetworkDef, SpikingNet), NirError> {
    let edges = Edges::of(g);
    let (input_name, input) = graph_input(g)?;
    let input_shape = network_input(input_name, input)?;
    let (layers, shape, output_shape) = read_chain(g, &edges, input_name, input.shape.clone())?;
    let lateral_strength = output_lateral(&layers)?;
    if output_shape.iter().product::<usize>() != shape.iter().product::<usize>() {
        return Err(unsupported(format!(
            "Output shape {output_shape:?} does not match the last layer's {shape:?}"
        )));
    }
    let mut def = NetworkDef {
        name: name.to_string(),
        input: input_shape,
        layers: layers.iter().map(|l| l.def.clone()).collect(),
        neuron: shared_neurons(&layers)?,
        init_scale: 1.0,
        conv_init_scale: 0.5,
        lateral_strength,
    };
    let build = |def: &NetworkDef| {
        SpikingNet::new(def, rule, device).map_err(|e| unsupported(e.to_string()))
    };
    // The layers' threshold_eps decide ν from v_threshold = ν − eps.
    let probe = build(&def)?;
    set_nominal_thresholds(&mut def, &layers, &probe)?;
    let mut net = build(&def)?;
    for (layer, l) in net.layers.iter_mut().zip(&layers) {
        let Some((w_shape, w)) = &l.weights else {
            continue;
        };
        let data = TensorData::new(w.clone(), w_shape.clone());
        match layer {
            SpikingLayer::Dense(d) => {
                d.weight = Param::from_tensor(Tensor::from_data(data, device))
            }
            SpikingLayer::Conv(c) => c.weight = Param::from_tensor(Tensor::from_data(data, device)),
            SpikingLayer::Pool(_) => {}
        }
    }
    Ok((def, net))
}

/// The single `Input` node of a graph and its name.
fn graph_input(g: &NirGraph) -> Result<(&str, &Input), NirError> {
    let inputs: Vec<_> = g
        .nodes
        .iter()
        .filter(|(_, n)| matches!(n, NirNode::Input(_)))
        .collect();
    match inputs[..] {
        [(name, NirNode::Input(input))] => Ok((name.as_str(), input)),
        _ => Err(unsupported(format!(
            "the graph has {} Input nodes, hm2bp needs exactly one",
            inputs.len()
        ))),
    }
}

/// The network input `[maps, h, w]` of the `Input` node `name` (`[n]`: `[n, 1, 1]`).
fn network_input(name: &str, input: &Input) -> Result<[usize; 3], NirError> {
    match input.shape[..] {
        [n] => Ok([n, 1, 1]),
        [c, h, w] => Ok([c, h, w]),
        ref s => Err(unsupported(format!(
            "node '{name}': input shape {s:?} is neither [n] nor [maps, h, w]"
        ))),
    }
}

/// The layers of the chain that starts at the input node `at` (of shape `shape`) and ends at
/// an `Output` node, the shape the last layer writes and the `Output` node's shape.
type Chained<'a> = (Vec<ImportedLayer<'a>>, Vec<usize>, Vec<usize>);

/// Reads the chain of layers that starts at the input node `at` (of shape `shape`).
fn read_chain<'a>(
    g: &'a NirGraph,
    edges: &Edges<'a>,
    mut at: &'a str,
    mut shape: Vec<usize>,
) -> Result<Chained<'a>, NirError> {
    let mut layers: Vec<ImportedLayer> = Vec::new();
    let mut visited = 0;
    let output_shape = loop {
        visited += 1;
        let next = match edges.forward(at)[..] {
            [one] if visited <= g.len() => one,
            _ => {
                return Err(unsupported(format!(
                    "node '{at}' must feed exactly one next node (a chain of layers)"
                )));
            }
        };
        match node(g, next)? {
            NirNode::Output(o) => break o.shape.clone(),
            NirNode::Flatten(f) => {
                shape = flattened(next, f, &shape)?;
                at = next;
            }
            NirNode::Graph(_) => {
                return Err(unsupported(format!(
                    "node '{next}': nested NIRGraph subgraphs are not supported"
                )));
            }
            _ => {
                let (layer, out_shape) = read_layer(g, edges, next, &shape)?;
                at = layer.lif_node;
                layers.push(layer);
                shape = out_shape;
            }
        }
    };
    Ok((layers, shape, output_shape))
}

/// The lateral inhibition of the output layer (0 without layers), or a refusal of lateral
/// inhibition in another layer.
fn output_lateral(layers: &[ImportedLayer]) -> Result<f32, NirError> {
    if let Some(l) = layers.iter().rev().skip(1).find(|l| l.lateral != 0.0) {
        return Err(unsupported(format!(
            "node '{}': only the output layer may have lateral inhibition",
            l.lif_node
        )));
    }
    Ok(layers.last().map_or(0.0, |l| l.lateral))
}

/// The neuron constants every layer shares, or a refusal of layers that differ or of no
/// layer at all.
fn shared_neurons(layers: &[ImportedLayer]) -> Result<NeuronDef, NirError> {
    let Some(first) = layers.first() else {
        return Err(unsupported("the graph has no layer".into()));
    };
    let neuron = first.neuron;
    if let Some(l) = layers.iter().find(|l| l.neuron != neuron) {
        return Err(unsupported(format!(
            "node '{}': {:?} differ from '{}' ({neuron:?}); hm2bp layers share one τm, τs, t_ref",
            l.lif_node, l.neuron, first.lif_node
        )));
    }
    Ok(neuron)
}

/// Sets the threshold ν of every layer of `def` from its `CubaLIF`'s `v_threshold = ν − eps`,
/// with the `eps` of the layer `probe` (built from `def`) has.
fn set_nominal_thresholds(
    def: &mut NetworkDef,
    layers: &[ImportedLayer],
    probe: &SpikingNet,
) -> Result<(), NirError> {
    for ((l, layer), d) in layers.iter().zip(&probe.layers).zip(&mut def.layers) {
        let eps = layer_lif(layer).threshold_eps;
        let nu = nominal_threshold(l.v_threshold, eps).ok_or_else(|| {
            unsupported(format!(
                "node '{}': v_threshold {} is not ν − {eps} (in f32) for any threshold ν",
                l.lif_node, l.v_threshold
            ))
        })?;
        match d {
            LayerDef::Dense { threshold, .. }
            | LayerDef::Conv { threshold, .. }
            | LayerDef::Pool { threshold, .. } => *threshold = nu,
        }
    }
    Ok(())
}
