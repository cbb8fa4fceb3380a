//! Finding and reading named definition files (`models/NAME.json`, `experiments/NAME/…`).

use std::path::{Path, PathBuf};

/// Errors of loading a model or experiment definition; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// No such definition.
    #[error("unknown {kind} '{name}': no {path} (available: {available})")]
    Unknown {
        /// "model" or "experiment".
        kind: &'static str,
        /// Requested name.
        name: String,
        /// Path tried.
        path: PathBuf,
        /// Definitions found.
        available: String,
    },
    /// Unreadable file.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Malformed file or invalid values.
    #[error("{path}: {message}")]
    Malformed {
        /// File.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Reads the definition `name`: the file `name` itself if it exists, else `default_path`.
/// `available` lists the known names for the error message.
pub fn read_definition(
    kind: &'static str,
    name: &str,
    default_path: PathBuf,
    available: impl FnOnce() -> Vec<String>,
) -> Result<(PathBuf, String), DefinitionError> {
    let as_path = Path::new(name);
    let path = if as_path.is_file() {
        as_path.to_path_buf()
    } else {
        default_path
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((path, text)),
        Err(source) if source.kind() == std::io::ErrorKind::NotFound => {
            Err(DefinitionError::Unknown {
                kind,
                name: name.into(),
                path,
                available: available().join(", "),
            })
        }
        Err(source) => Err(DefinitionError::Io { path, source }),
    }
}
