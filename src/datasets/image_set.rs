//! Static image datasets (MNIST, Fashion-MNIST, EMNIST Balanced) stored as IDX files on disk.
//!
//! Layout: `<data_dir>/<dir_name>/<file>` or `<file>.gz`, with the file names of the original
//! releases (see [`ImageDatasetKind::file_names`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::datasets::error::{DataError, FETCH_COMMAND, Result};
use crate::datasets::idx::{IdxImages, read_idx_images, read_idx_labels};

/// Side length of the images of every supported dataset.
pub const IMAGE_SIDE: usize = 28;

/// A supported static image dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageDatasetKind {
    /// MNIST handwritten digits (10 classes).
    Mnist,
    /// Fashion-MNIST clothing images (10 classes).
    FashionMnist,
    /// EMNIST Balanced handwritten characters (47 classes; images stored transposed).
    EmnistBalanced,
}

/// Train or test split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The training split.
    Train,
    /// The test split.
    Test,
}

impl ImageDatasetKind {
    /// All supported datasets.
    pub const ALL: [ImageDatasetKind; 3] = [
        ImageDatasetKind::Mnist,
        ImageDatasetKind::FashionMnist,
        ImageDatasetKind::EmnistBalanced,
    ];

    /// Name of the dataset's folder under the data folder (also its kebab-case name).
    pub fn dir_name(self) -> &'static str {
        match self {
            ImageDatasetKind::Mnist => "mnist",
            ImageDatasetKind::FashionMnist => "fashion-mnist",
            ImageDatasetKind::EmnistBalanced => "emnist-balanced",
        }
    }

    /// Number of classes.
    pub fn num_classes(self) -> usize {
        match self {
            ImageDatasetKind::Mnist | ImageDatasetKind::FashionMnist => 10,
            ImageDatasetKind::EmnistBalanced => 47,
        }
    }

    /// Uncompressed file names `(images, labels)` of a split, without a `.gz` suffix.
    pub fn file_names(self, split: Split) -> (String, String) {
        let (prefix, part) = match (self, split) {
            (ImageDatasetKind::EmnistBalanced, Split::Train) => ("emnist-balanced-", "train"),
            (ImageDatasetKind::EmnistBalanced, Split::Test) => ("emnist-balanced-", "test"),
            (_, Split::Train) => ("", "train"),
            (_, Split::Test) => ("", "t10k"),
        };
        (
            format!("{prefix}{part}-images-idx3-ubyte"),
            format!("{prefix}{part}-labels-idx1-ubyte"),
        )
    }

    /// What a user should do when this dataset's files are missing from `dir`.
    pub(crate) fn missing_hint(self, dir: &Path) -> String {
        match self {
            ImageDatasetKind::EmnistBalanced => format!(
                "EMNIST cannot be fetched automatically: put emnist-balanced-{{train,test}}-\
                 {{images-idx3,labels-idx1}}-ubyte[.gz] (from the EMNIST gzip release) into {}",
                dir.display()
            ),
            _ => format!("run `{FETCH_COMMAND}` to download it"),
        }
    }
}

impl fmt::Display for ImageDatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir_name())
    }
}

impl FromStr for ImageDatasetKind {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self> {
        ImageDatasetKind::ALL
            .into_iter()
            .find(|k| k.dir_name() == s)
            .ok_or_else(|| DataError::UnknownDataset(s.to_string()))
    }
}

/// One split of an image dataset, loaded and validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSet {
    /// The images (28×28, upright: EMNIST is already transposed back).
    pub images: IdxImages,
    /// One label per image, each `< num_classes`.
    pub labels: Vec<u8>,
    /// Number of classes of the dataset.
    pub num_classes: usize,
}

impl ImageSet {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set has no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Keeps only the first `n` samples (no-op when `n >= len`).
    pub fn truncate(&mut self, n: usize) {
        if n >= self.len() {
            return;
        }
        self.images.count = n;
        self.images.pixels.truncate(n * self.images.image_len());
        self.labels.truncate(n);
    }

    /// Splits the set at `at` (clamped to its length): keeps the samples before it, returns
    /// the rest.
    pub fn split_off(&mut self, at: usize) -> Self {
        let at = at.min(self.len());
        let rest = self.images.pixels.split_off(at * self.images.image_len());
        let images = IdxImages {
            count: self.images.count - at,
            rows: self.images.rows,
            cols: self.images.cols,
            pixels: rest,
        };
        self.images.count = at;
        Self {
            images,
            labels: self.labels.split_off(at),
            num_classes: self.num_classes,
        }
    }
}

/// Finds `<dir>/<name>` or `<dir>/<name>.gz` (the raw file wins when both exist).
pub(crate) fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let raw = dir.join(name);
    if raw.is_file() {
        return Some(raw);
    }
    let gz = dir.join(format!("{name}.gz"));
    gz.is_file().then_some(gz)
}

/// Loads and validates one split of an image dataset from `<data_dir>/<dir_name>/`.
///
/// Checks: the data folder exists, both files exist (raw or `.gz`), image and label counts
/// agree, images are 28×28 and labels are below the number of classes. EMNIST images are
/// transposed after loading so that all datasets come out upright.
pub fn load_image_set(kind: ImageDatasetKind, data_dir: &Path, split: Split) -> Result<ImageSet> {
    if !data_dir.is_dir() {
        return Err(DataError::MissingDataDir {
            path: data_dir.to_path_buf(),
            hint: format!("run `{FETCH_COMMAND}` to create it, or pass the right data folder"),
        });
    }
    let dir = data_dir.join(kind.dir_name());
    let (img_name, lab_name) = kind.file_names(split);
    let locate = |name: &str| {
        find_file(&dir, name).ok_or_else(|| DataError::MissingFile {
            path: dir.join(name),
            hint: format!(
                "looked for it with and without .gz; {}",
                kind.missing_hint(&dir)
            ),
        })
    };
    let img_path = locate(&img_name)?;
    let lab_path = locate(&lab_name)?;

    let mut images = read_idx_images(&img_path)?;
    let labels = read_idx_labels(&lab_path)?;
    if images.count != labels.len() {
        return Err(DataError::CountMismatch {
            images: img_path,
            image_count: images.count,
            labels: lab_path,
            label_count: labels.len(),
        });
    }
    if images.rows != IMAGE_SIDE || images.cols != IMAGE_SIDE {
        return Err(DataError::WrongDimensions {
            path: img_path,
            rows: images.rows,
            cols: images.cols,
            expected_rows: IMAGE_SIDE,
            expected_cols: IMAGE_SIDE,
        });
    }
    let num_classes = kind.num_classes();
    if let Some((index, &label)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| usize::from(l) >= num_classes)
    {
        return Err(DataError::LabelOutOfRange {
            path: lab_path,
            index,
            label,
            num_classes,
        });
    }
    if kind == ImageDatasetKind::EmnistBalanced {
        images.transpose_each();
    }
    Ok(ImageSet {
        images,
        labels,
        num_classes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::idx::tests::{
        gz, idx_images_bytes, idx_labels_bytes, shared_data, shared_path,
    };

    /// Writes a split of `kind` with `n` images whose pixel (r, c) of image i is `i + r`.
    fn write_split(root: &Path, kind: ImageDatasetKind, split: Split, labels: &[u8], gzip: bool) {
        let dir = root.join(kind.dir_name());
        std::fs::create_dir_all(&dir).unwrap();
        let n = labels.len();
        let mut px = Vec::new();
        for i in 0..n {
            for r in 0..IMAGE_SIDE {
                for _c in 0..IMAGE_SIDE {
                    px.push((i + r) as u8);
                }
            }
        }
        let (img, lab) = kind.file_names(split);
        let ib = idx_images_bytes(n as u32, 28, 28, &px);
        let lb = idx_labels_bytes(labels);
        if gzip {
            std::fs::write(dir.join(format!("{img}.gz")), gz(&ib)).unwrap();
            std::fs::write(dir.join(format!("{lab}.gz")), gz(&lb)).unwrap();
        } else {
            std::fs::write(dir.join(img), ib).unwrap();
            std::fs::write(dir.join(lab), lb).unwrap();
        }
    }

    #[test]
    fn split_off_keeps_the_head_and_returns_the_tail() {
        let mut set = ImageSet {
            images: IdxImages {
                count: 5,
                rows: 2,
                cols: 2,
                pixels: (0..20).collect(),
            },
            labels: vec![0, 1, 2, 3, 4],
            num_classes: 5,
        };
        let tail = set.split_off(3);
        assert_eq!((set.len(), tail.len()), (3, 2));
        assert_eq!(tail.images.pixels, (12..20).collect::<Vec<u8>>());
        assert_eq!(tail.labels, vec![3, 4]);
        assert_eq!(set.images.pixels.len(), 12);
        assert_eq!(tail.images.count, 2);
    }

    #[test]
    fn names_and_parsing() {
        for k in ImageDatasetKind::ALL {
            assert_eq!(k.to_string().parse::<ImageDatasetKind>().unwrap(), k);
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.dir_name()));
            assert_eq!(serde_json::from_str::<ImageDatasetKind>(&json).unwrap(), k);
        }
        assert!("emnist".parse::<ImageDatasetKind>().is_err());
        assert_eq!(
            ImageDatasetKind::Mnist.file_names(Split::Test),
            (
                "t10k-images-idx3-ubyte".into(),
                "t10k-labels-idx1-ubyte".into()
            )
        );
        assert_eq!(
            ImageDatasetKind::EmnistBalanced.file_names(Split::Train).1,
            "emnist-balanced-train-labels-idx1-ubyte"
        );
        assert_eq!(ImageDatasetKind::EmnistBalanced.num_classes(), 47);
    }

    #[test]
    fn loads_raw_and_gz_and_truncates() {
        let d = tempfile::tempdir().unwrap();
        write_split(
            d.path(),
            ImageDatasetKind::Mnist,
            Split::Train,
            &[1, 2, 3],
            false,
        );
        write_split(
            d.path(),
            ImageDatasetKind::Mnist,
            Split::Test,
            &[9, 0],
            true,
        );
        let mut tr = load_image_set(ImageDatasetKind::Mnist, d.path(), Split::Train).unwrap();
        assert_eq!(tr.len(), 3);
        assert_eq!(tr.labels, vec![1, 2, 3]);
        assert_eq!(tr.images.image(2)[28], 3); // image 2, row 1
        tr.truncate(1);
        assert_eq!(
            (tr.len(), tr.images.count, tr.images.pixels.len()),
            (1, 1, 784)
        );
        tr.truncate(5);
        assert_eq!(tr.len(), 1);
        let te = load_image_set(ImageDatasetKind::Mnist, d.path(), Split::Test).unwrap();
        assert_eq!(te.labels, vec![9, 0]);
        assert!(!te.is_empty());
    }

    #[test]
    fn emnist_is_transposed() {
        let d = tempfile::tempdir().unwrap();
        let k = ImageDatasetKind::EmnistBalanced;
        write_split(d.path(), k, Split::Test, &[46, 0], false);
        let s = load_image_set(k, d.path(), Split::Test).unwrap();
        assert_eq!(s.num_classes, 47);
        // Stored rows were constant (value i + r); after transposing, columns are.
        let img = s.images.image(1);
        assert_eq!(img[0], 1);
        assert_eq!(img[1], 2);
        assert_eq!(img[28], 1);
    }

    #[test]
    fn missing_dir_and_files() {
        let d = tempfile::tempdir().unwrap();
        let e = load_image_set(
            ImageDatasetKind::Mnist,
            &d.path().join("none"),
            Split::Train,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("data folder does not exist"), "{e}");
        assert!(e.contains(FETCH_COMMAND), "{e}");
        let e = load_image_set(ImageDatasetKind::FashionMnist, d.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fashion-mnist/train-images-idx3-ubyte: file not found"),
            "{e}"
        );
        assert!(e.contains(FETCH_COMMAND), "{e}");
        let e = load_image_set(ImageDatasetKind::EmnistBalanced, d.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot be fetched automatically"), "{e}");
    }

    #[test]
    fn count_mismatch_and_bad_labels_and_dims() {
        let d = tempfile::tempdir().unwrap();
        let k = ImageDatasetKind::Mnist;
        write_split(d.path(), k, Split::Train, &[1, 2], false);
        let dir = d.path().join("mnist");
        std::fs::write(dir.join("train-labels-idx1-ubyte"), idx_labels_bytes(&[1])).unwrap();
        let e = load_image_set(k, d.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(e.contains("train-images-idx3-ubyte: 2 images but"), "{e}");
        assert!(e.contains("train-labels-idx1-ubyte: 1 labels"), "{e}");

        std::fs::write(
            dir.join("train-labels-idx1-ubyte"),
            idx_labels_bytes(&[1, 10]),
        )
        .unwrap();
        let e = load_image_set(k, d.path(), Split::Train).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::LabelOutOfRange {
                    index: 1,
                    label: 10,
                    ..
                }
            ),
            "{e}"
        );

        std::fs::write(
            dir.join("train-images-idx3-ubyte"),
            idx_images_bytes(2, 2, 2, &[0; 8]),
        )
        .unwrap();
        let e = load_image_set(k, d.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("images are 2×2, expected 28×28"), "{e}");
    }

    #[test]
    #[ignore = "needs ../shared/data/{mnist,fashion-mnist} (the integration tests fetch MNIST themselves)"]
    fn real_mnist_and_fashion_test_sets() {
        let root = shared_data();
        for k in [ImageDatasetKind::Mnist, ImageDatasetKind::FashionMnist] {
            shared_path(k.dir_name());
            let s = load_image_set(k, &root, Split::Test).unwrap();
            assert_eq!(s.len(), 10000);
            assert_eq!(s.num_classes, 10);
        }
    }
}
