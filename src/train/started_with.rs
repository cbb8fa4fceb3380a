//! The settings a run was started with, kept in its checkpoint folder: `--resume` continues
//! only with the same ones, since another batch size, seed, data order or learning rate would
//! silently train something else than the checkpoints and the data position describe.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::experiment::ExperimentDef;
use crate::model::NetworkDef;

const FILE: &str = "started-with.json";

/// Experiment fields a resumed run may change: how long it runs, how often it checkpoints,
/// how many last epochs it averages (neither changes training), and its description.
const MAY_CHANGE: [&str; 4] = [
    "epochs",
    "checkpoint_minutes",
    "average_last",
    "description",
];

/// The settings of one run: its experiment and network definitions.
#[derive(Debug)]
pub struct StartedWith {
    settings: Value,
}

impl StartedWith {
    /// The settings of a run of `exp` with network `def`.
    pub fn new(exp: &ExperimentDef, def: &NetworkDef) -> Result<Self> {
        let settings = serde_json::json!({
            "experiment": serde_json::to_value(exp)?,
            "model": serde_json::to_value(def)?,
        });
        Ok(Self { settings })
    }

    fn path(checkpoint_dir: &Path) -> PathBuf {
        checkpoint_dir.join(FILE)
    }

    /// Records them as the settings of the run whose checkpoints go to `checkpoint_dir`.
    pub fn save(&self, checkpoint_dir: &Path) -> Result<()> {
        let path = Self::path(checkpoint_dir);
        std::fs::create_dir_all(checkpoint_dir)
            .with_context(|| format!("cannot create {}", checkpoint_dir.display()))?;
        std::fs::write(&path, serde_json::to_string_pretty(&self.settings)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Refuses to resume the run of `checkpoint_dir` with these settings if it was started
    /// with others (fields of `MAY_CHANGE` aside), unless `accept_changes`: then it prints
    /// the differences and records these settings. A run folder without the record (written
    /// by an older version) is not checked.
    pub fn check_resumes(&self, checkpoint_dir: &Path, accept_changes: bool) -> Result<()> {
        let path = Self::path(checkpoint_dir);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(());
        };
        let started: Value = serde_json::from_str(&text)
            .with_context(|| format!("--resume: {} is not valid JSON", path.display()))?;
        let started = with_defaults(started);
        let mut differences = Vec::new();
        differing_fields("", &started, &self.settings, &mut differences);
        differences.retain(|(field, ..)| {
            !field
                .strip_prefix("experiment.")
                .is_some_and(|f| MAY_CHANGE.contains(&f))
        });
        let Some((field, was, now)) = differences.first() else {
            return Ok(());
        };
        if accept_changes {
            for (field, was, now) in &differences {
                eprintln!(
                    "warning: resuming with {field} = {now} (the run was started with {was})"
                );
            }
            return self.save(checkpoint_dir);
        }
        let others = match differences.len() {
            1 => String::new(),
            n => format!(" (and {} more field(s))", n - 1),
        };
        bail!(
            "--resume: the run was started with {field} = {was}, the experiment now has {now}{others} \
             ({}); resume with the settings it was started with, add --accept-changed-settings, or start a \
             new run with another --out",
            path.display()
        )
    }
}

/// A record as today's definitions read it: a field added since it was written (absent in
/// it) takes its default, which is what the run was started with, since a new setting's
/// default keeps the behaviour from before it existed. A record that today's definitions
/// cannot read is compared as it is.
fn with_defaults(record: Value) -> Value {
    let read = |key: &str| record.get(key).cloned().unwrap_or(Value::Null);
    let experiment = serde_json::from_value::<ExperimentDef>(read("experiment"));
    let model = serde_json::from_value::<NetworkDef>(read("model"));
    match (experiment, model) {
        (Ok(experiment), Ok(model)) => StartedWith::new(&experiment, &model)
            .map(|s| s.settings)
            .unwrap_or(record),
        _ => record,
    }
}

/// The leaf fields (dotted paths) where `a` and `b` differ, with both values.
fn differing_fields(at: &str, a: &Value, b: &Value, out: &mut Vec<(String, String, String)>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let field = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                let (va, vb) = (x.get(k), y.get(k));
                differing_fields(
                    &field,
                    va.unwrap_or(&Value::Null),
                    vb.unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if a != b => out.push((at.to_string(), a.to_string(), b.to_string())),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A record written before a setting existed resumes (the setting's default is what the
    /// run did); a record with another value of it does not.
    #[test]
    fn fields_added_since_the_record_take_their_defaults() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let exp = ExperimentDef::load("tiny", &root.join("experiments")).unwrap();
        let def = NetworkDef::load(&exp.model, &root.join("models")).unwrap();
        let now = StartedWith::new(&exp, &def).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let write = |experiment: Value| {
            let record = json!({"experiment": experiment, "model": now.settings["model"]});
            std::fs::write(dir.path().join(FILE), record.to_string()).unwrap();
        };
        let mut older = now.settings["experiment"].clone();
        older.as_object_mut().unwrap().remove("spike_process");
        write(older);
        now.check_resumes(dir.path(), false).unwrap();
        let mut other = now.settings["experiment"].clone();
        other["spike_process"] = json!("regular");
        write(other);
        let err = now
            .check_resumes(dir.path(), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("experiment.spike_process = \"regular\""),
            "{err}"
        );
    }

    #[test]
    fn lists_the_differing_leaves() {
        let a = json!({"experiment": {"batch_size": 16, "epochs": 2, "lr": {"base": 1}}});
        let b = json!({"experiment": {"batch_size": 32, "epochs": 5, "lr": {"base": 1}}});
        let mut out = Vec::new();
        differing_fields("", &a, &b, &mut out);
        assert_eq!(
            out,
            vec![
                ("experiment.batch_size".into(), "16".into(), "32".into()),
                ("experiment.epochs".into(), "2".into(), "5".into()),
            ]
        );
    }
}
