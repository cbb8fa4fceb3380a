//! Errors of the data layer.
//!
//! Every message is one line and names the file (full path as given) or the command involved,
//! so a user can act on it without reading the code.

use std::path::PathBuf;

/// The command that downloads the datasets, quoted in error messages.
pub const FETCH_COMMAND: &str = "cargo run --release --bin experiment -- fetch-data";

/// Everything that can go wrong while reading, encoding-preparing or fetching data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An I/O operation on `path` failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A file that should be there is not.
    #[error("{}: file not found; {hint}", path.display())]
    MissingFile {
        /// The path that was looked for (without the optional `.gz`).
        path: PathBuf,
        /// What to do about it (usually: run the fetch command).
        hint: String,
    },

    /// The data folder itself does not exist.
    #[error("{}: data folder does not exist; {hint}", path.display())]
    MissingDataDir {
        /// The data folder.
        path: PathBuf,
        /// What to do about it.
        hint: String,
    },

    /// The file starts with gzip magic bytes but cannot be decompressed.
    #[error("{}: gzip error: {source}", path.display())]
    Gzip {
        /// The compressed file.
        path: PathBuf,
        /// The decoder's error.
        source: std::io::Error,
    },

    /// An IDX file whose magic number is not the expected one.
    #[error("{}: bad magic 0x{found:08x}, expected 0x{expected:08x} ({what})", path.display())]
    BadMagic {
        /// The IDX file.
        path: PathBuf,
        /// The magic number in the file.
        found: u32,
        /// The magic number that was expected.
        expected: u32,
        /// What the expected magic number stands for.
        what: &'static str,
    },

    /// A file shorter than its header (or format) says.
    #[error("{}: truncated: {detail}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was expected and what was found.
        detail: String,
    },

    /// An IDX file with bytes after the data its header announces.
    #[error("{}: {count} unexpected trailing bytes", path.display())]
    TrailingBytes {
        /// The IDX file.
        path: PathBuf,
        /// How many bytes follow the announced data.
        count: usize,
    },

    /// The image file and the label file hold different numbers of items.
    #[error(
        "{}: {image_count} images but {}: {label_count} labels",
        images.display(),
        labels.display()
    )]
    CountMismatch {
        /// The image file.
        images: PathBuf,
        /// Number of images in it.
        image_count: usize,
        /// The label file.
        labels: PathBuf,
        /// Number of labels in it.
        label_count: usize,
    },

    /// Images of an unexpected size.
    #[error(
        "{}: images are {rows}×{cols}, expected {expected_rows}×{expected_cols}",
        path.display()
    )]
    WrongDimensions {
        /// The image file.
        path: PathBuf,
        /// Rows per image in the file.
        rows: usize,
        /// Columns per image in the file.
        cols: usize,
        /// Expected rows.
        expected_rows: usize,
        /// Expected columns.
        expected_cols: usize,
    },

    /// A label not below the number of classes of its dataset.
    #[error(
        "{}: label {label} of item {index} is out of range (dataset has {num_classes} classes)",
        path.display()
    )]
    LabelOutOfRange {
        /// The label file.
        path: PathBuf,
        /// Index of the offending item.
        index: usize,
        /// The label found.
        label: u8,
        /// Number of classes of the dataset.
        num_classes: usize,
    },

    /// A file whose content does not follow its format (not tied to one line).
    #[error("{}: {detail}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// A text file with a line that cannot be parsed.
    #[error("{}:{line}: {detail}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        detail: String,
    },

    /// The MD5 of a file's (uncompressed) content differs from the published one.
    #[error(
        "{}: md5 mismatch: uncompressed content has {actual}, expected {expected}",
        path.display()
    )]
    Md5Mismatch {
        /// The file.
        path: PathBuf,
        /// The published md5 (hex).
        expected: String,
        /// The md5 found (hex).
        actual: String,
    },

    /// An external tool needed by the fetch step is not installed.
    #[error("`{command}`: `{tool}` is not installed; {hint}")]
    ToolMissing {
        /// The program name.
        tool: String,
        /// The full command line that was attempted.
        command: String,
        /// What to install, or the `--from` alternative.
        hint: String,
    },

    /// An external tool ran and failed.
    #[error("`{command}` (in {}) failed ({status}): {stderr_tail}; {hint}", cwd.display())]
    ToolFailed {
        /// The full command line.
        command: String,
        /// The folder it ran in.
        cwd: PathBuf,
        /// Its exit status.
        status: String,
        /// The last part of its standard error, on one line.
        stderr_tail: String,
        /// What to try next.
        hint: String,
    },

    /// A dataset that the fetch step cannot obtain automatically.
    #[error("{dataset}: cannot be fetched automatically; {hint}")]
    NotFetchable {
        /// The dataset's name.
        dataset: String,
        /// Where to put the files by hand.
        hint: String,
    },

    /// A dataset name that is not known.
    #[error("unknown dataset `{0}` (expected mnist, fashion-mnist or emnist-balanced)")]
    UnknownDataset(String),
}

/// Result type of the data layer.
pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
