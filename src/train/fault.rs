//! Numerical faults: a NaN or infinity in the loss, a weight or a gradient stops the run with
//! a message naming the parameter and the step, before the faulty update is applied (so the
//! model, and every checkpoint, stay the last good ones).

use std::sync::{Arc, Mutex};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::train::Interrupter;

use super::position::StepClock;
use crate::device_reads;

/// Watches the training steps of one run and stops it on the first non-finite value.
#[derive(Clone)]
pub struct FaultWatch {
    interrupter: Interrupter,
    clock: StepClock,
    fault: Arc<Mutex<Option<String>>>,
    /// Steps between checks (1: every step).
    every: usize,
}

impl std::fmt::Debug for FaultWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultWatch")
            .field("steps", &self.clock.steps())
            .field("fault", &self.fault())
            .finish_non_exhaustive()
    }
}

impl FaultWatch {
    /// A watch that stops training through `interrupter` and names the step by `clock`.
    pub fn new(interrupter: Interrupter, clock: StepClock) -> Self {
        Self {
            interrupter,
            clock,
            fault: Arc::new(Mutex::new(None)),
            every: 1,
        }
    }

    /// A watch whose checks run every `n` steps (see [`super::hooks::StepHooks`]); its
    /// messages say so.
    pub fn checked_every(self, n: usize) -> Self {
        Self {
            every: n.max(1),
            ..self
        }
    }

    /// The fault that stopped the run, if any.
    pub fn fault(&self) -> Option<String> {
        self.fault.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// "epoch E, batch B" of the current step (1-based).
    fn position(&self) -> String {
        let at = self.clock.position();
        let at = format!("epoch {}, batch {}", at.epoch + 1, at.batch + 1);
        match self.every {
            1 => at,
            n => format!(
                "{at} (checked every {n} steps: it arose in the steps since the last check)"
            ),
        }
    }

    fn stop(&self, what: String) {
        let message = format!("{what} at {}", self.position());
        let mut slot = self.fault.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(message.clone());
        }
        self.interrupter.stop(Some(&message));
    }

    /// Checks a step's loss; returns whether it is finite. A non-finite loss of a `module`
    /// whose weights are not all finite (a damaged checkpoint) is reported as those weights.
    pub fn check_loss<M: Module>(&self, loss: &Tensor<1>, module: &M) -> bool {
        let value: f64 = device_reads::scalar(loss.clone(), "the loss");
        let ok = value.is_finite();
        if !ok {
            let weights = FiniteVisitor::first_fault(module, None);
            self.stop(weights.unwrap_or_else(|| format!("the loss is {value}")));
        }
        ok
    }

    /// Checks every parameter of `module` and its gradient before the update; returns
    /// whether all are finite.
    pub fn check_update<M: Module>(&self, module: &M, grads: &GradientsParams) -> bool {
        match FiniteVisitor::first_fault(module, Some(grads)) {
            Some(what) => {
                self.stop(what);
                false
            }
            None => true,
        }
    }
}

/// Finds the first parameter (or gradient) with a NaN or infinity.
struct FiniteVisitor<'a> {
    grads: Option<&'a GradientsParams>,
    path: Vec<String>,
    bad: Option<String>,
}

impl<'a> FiniteVisitor<'a> {
    /// The first non-finite parameter of `module` (or, with `grads`, gradient), described.
    fn first_fault<M: Module>(module: &M, grads: Option<&'a GradientsParams>) -> Option<String> {
        let mut visitor = Self {
            grads,
            path: Vec::new(),
            bad: None,
        };
        module.visit(&mut visitor);
        visitor.bad
    }

    /// `net.layers.1.weight` as "layer 2 (net.layers.1.weight)".
    fn name(&self) -> String {
        let path: Vec<&str> = self.path.iter().map(String::as_str).collect();
        let full = path.join(".");
        let layer = path
            .windows(2)
            .find(|w| w[0] == "layers")
            .and_then(|w| w[1].parse::<usize>().ok());
        match layer {
            Some(k) => format!("layer {} ({full})", k + 1),
            None => full,
        }
    }
}

/// Whether every element of `t` is finite: its sum is (one reduction, no mask; a NaN or an
/// infinity among the elements makes it non-finite), or, where the sum overflowed, the
/// elements are.
fn all_finite<const D: usize>(t: &Tensor<D>) -> bool {
    device_reads::scalar::<f64, 1, _>(t.clone().sum(), "a sum").is_finite()
        || device_reads::scalar::<bool, 1, _>(t.clone().is_finite().all(), "finiteness")
}

impl ModuleVisitor for FiniteVisitor<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        // Enum variants ("Enum:…") add their variant name; keep only fields and indices.
        if !container_type.starts_with("Enum:") {
            self.path.push(name.to_string());
        }
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        if !container_type.starts_with("Enum:") {
            self.path.pop();
        }
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.bad.is_some() {
            return;
        }
        if !all_finite(&param.val()) {
            self.bad = Some(format!("non-finite weights in {}", self.name()));
        } else if let Some(g) = self.grads.and_then(|g| g.get::<D>(param.id))
            && !all_finite(&g)
        {
            self.bad = Some(format!("a non-finite gradient of {}", self.name()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finiteness_is_read_from_the_sum_and_the_elements_where_it_overflows() {
        let device = Device::flex();
        let t = |v: [f32; 3]| Tensor::<1>::from_floats(v, &device);
        assert!(all_finite(&t([1.0, -2.0, 3.5])));
        // Finite elements whose sum overflows to infinity.
        assert!(all_finite(&t([f32::MAX, f32::MAX, 1.0])));
        assert!(!all_finite(&t([1.0, f32::NAN, 3.0])));
        assert!(!all_finite(&t([1.0, f32::INFINITY, 3.0])));
        assert!(!all_finite(&t([f32::NEG_INFINITY, f32::INFINITY, 0.0])));
        assert!(!all_finite(&t([f32::MAX, f32::MAX, f32::NAN])));
    }
}
