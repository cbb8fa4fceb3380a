//! Reader for the IDX format of MNIST-like datasets (raw or gzip'd).
//!
//! An IDX file is a big-endian header — magic number `0x000008DD` (unsigned bytes, `DD`
//! dimensions) followed by one `u32` size per dimension — and then the data, row-major.
//! Images use magic `0x00000803` (count, rows, cols), labels `0x00000801` (count).
//! Whether a file is gzip'd is decided by its first two bytes (`1f 8b`), not by its name.

use std::io::Read;
use std::path::Path;

use crate::datasets::error::{DataError, Result};

/// Magic number of an IDX file of unsigned-byte images (3 dimensions).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte labels (1 dimension).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The most a gzip'd data file may expand to (4 GiB): EMNIST ByClass, the largest IDX set,
/// holds 0.64 GB of images; a gzip bomb stops here instead of exhausting memory.
pub const MAX_DECOMPRESSED_BYTES: u64 = 4 << 30;

/// The most deflate expands its input (1,032 : 1 for a run of one byte), rounded up.
const MAX_DEFLATE_RATIO: u64 = 1100;

/// A stack of greyscale images as stored in an IDX file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// Pixels, row-major, image after image (`count · rows · cols` bytes).
    pub pixels: Vec<u8>,
}

impl IdxImages {
    /// Pixels per image (`rows · cols`).
    pub fn image_len(&self) -> usize {
        self.rows * self.cols
    }

    /// The pixels of image `i`, row-major.
    ///
    /// # Panics
    /// If `i >= self.count`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Transposes every image in place (and swaps `rows` and `cols`).
    ///
    /// EMNIST stores its images transposed relative to MNIST; this undoes that.
    pub fn transpose_each(&mut self) {
        let (rows, cols) = (self.rows, self.cols);
        let n = rows * cols;
        if n == 0 {
            std::mem::swap(&mut self.rows, &mut self.cols);
            return;
        }
        let mut buf = vec![0u8; n];
        for img in self.pixels.chunks_exact_mut(n) {
            for r in 0..rows {
                for c in 0..cols {
                    buf[c * rows + r] = img[r * cols + c];
                }
            }
            img.copy_from_slice(&buf);
        }
        std::mem::swap(&mut self.rows, &mut self.cols);
    }
}

/// Reads a whole file, decompressing it when it starts with the gzip magic bytes.
pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            DataError::MissingFile {
                path: path.to_path_buf(),
                hint: "check the path".to_string(),
            }
        } else {
            DataError::io(path, e)
        }
    })?;
    decode_maybe_gz(path, raw)
}

/// Decompresses `raw` (the content of `path`) when it starts with the gzip magic bytes.
pub fn decode_maybe_gz(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>> {
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    decode_gz_bounded(path, &raw, MAX_DECOMPRESSED_BYTES)
}

/// Decompresses the gzip stream `raw` (the content of `path`), refusing to expand it beyond
/// `limit` bytes.
fn decode_gz_bounded(path: &Path, raw: &[u8], limit: u64) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(capacity_hint(raw, limit));
    flate2::read::MultiGzDecoder::new(raw)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|source| DataError::Gzip {
            path: path.to_path_buf(),
            source,
        })?;
    if out.len() as u64 > limit {
        return Err(DataError::Format {
            path: path.to_path_buf(),
            detail: format!(
                "gzip data expands to more than {limit} bytes (the limit for a data file); \
                 not a dataset file, or a corrupt one"
            ),
        });
    }
    Ok(out)
}

/// The buffer to reserve for decompressing the gzip stream `raw`: the footer's ISIZE (size
/// mod 2³² of the last member), but no more than deflate can expand the input (~1,032 : 1)
/// or `limit`, so that a forged footer reserves nothing large.
pub fn capacity_hint(raw: &[u8], limit: u64) -> usize {
    let footer = raw
        .len()
        .checked_sub(4)
        .map(|at| u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]) as u64);
    let most = (raw.len() as u64)
        .saturating_mul(MAX_DEFLATE_RATIO)
        .min(limit);
    footer.unwrap_or(0).min(most) as usize
}

/// Parses the header of an IDX file with the given magic and number of dimensions.
/// Returns the dimension sizes and the offset of the data.
fn parse_header(
    path: &Path,
    data: &[u8],
    magic: u32,
    what: &'static str,
    ndims: usize,
) -> Result<Vec<usize>> {
    let header_len = 4 + 4 * ndims;
    let truncated = || DataError::Truncated {
        path: path.to_path_buf(),
        detail: format!(
            "IDX header ({what}) needs {header_len} bytes, file has {}",
            data.len()
        ),
    };
    if data.len() < 4 {
        return Err(truncated());
    }
    let word = |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    let found = word(0);
    if found != magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            found,
            expected: magic,
            what,
        });
    }
    if data.len() < header_len {
        return Err(truncated());
    }
    Ok((0..ndims).map(|d| word(4 + 4 * d) as usize).collect())
}

/// Checks that `data` holds exactly `header_len + expected` bytes.
fn check_body(
    path: &Path,
    data_len: usize,
    header_len: usize,
    expected: u128,
    dims: &str,
    unit: &str,
) -> Result<usize> {
    let have = data_len - header_len;
    if (have as u128) < expected {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            detail: format!("header says {dims} = {expected} bytes of {unit}, file has {have}"),
        });
    }
    // `expected <= have`, so it fits in usize.
    let expected = expected as usize;
    if have > expected {
        return Err(DataError::TrailingBytes {
            path: path.to_path_buf(),
            count: have - expected,
        });
    }
    Ok(expected)
}

/// Reads an IDX image file (magic `0x00000803`), raw or gzip'd.
pub fn read_idx_images(path: &Path) -> Result<IdxImages> {
    parse_idx_images(path, read_maybe_gz(path)?)
}

/// Parses the (decompressed) content of an IDX image file; `path` names it in errors.
pub fn parse_idx_images(path: &Path, mut data: Vec<u8>) -> Result<IdxImages> {
    let dims = parse_header(path, &data, IDX_IMAGES_MAGIC, "IDX unsigned-byte images", 3)?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    let expected = count as u128 * rows as u128 * cols as u128;
    check_body(
        path,
        data.len(),
        16,
        expected,
        &format!("{count}×{rows}×{cols}"),
        "pixels",
    )?;
    data.drain(..16);
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels: data,
    })
}

/// Reads an IDX label file (magic `0x00000801`), raw or gzip'd.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    parse_idx_labels(path, read_maybe_gz(path)?)
}

/// Parses the (decompressed) content of an IDX label file; `path` names it in errors.
pub fn parse_idx_labels(path: &Path, mut data: Vec<u8>) -> Result<Vec<u8>> {
    let dims = parse_header(path, &data, IDX_LABELS_MAGIC, "IDX unsigned-byte labels", 1)?;
    let count = dims[0];
    check_body(
        path,
        data.len(),
        8,
        count as u128,
        &count.to_string(),
        "labels",
    )?;
    data.drain(..8);
    Ok(data)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    /// Serialises images to the IDX format (uncompressed).
    pub(crate) fn idx_images_bytes(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [IDX_IMAGES_MAGIC, count, rows, cols] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        v.extend_from_slice(pixels);
        v
    }

    /// Serialises labels to the IDX format (uncompressed).
    pub(crate) fn idx_labels_bytes(labels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&IDX_LABELS_MAGIC.to_be_bytes());
        v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        v.extend_from_slice(labels);
        v
    }

    /// Gzip-compresses bytes.
    pub(crate) fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// The shared real-data folder (`$HM2BP_SHARED_DATA`, else `../shared/data`).
    pub(crate) fn shared_data() -> PathBuf {
        match std::env::var_os("HM2BP_SHARED_DATA") {
            Some(d) => PathBuf::from(d),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"),
        }
    }

    /// `sub` (a file or folder) inside the shared real-data folder; the test fails, naming
    /// it, when it is absent. Tests that read it are `#[ignore = "needs …"]`: cargo reports
    /// them as ignored unless run with `--include-ignored` (CI).
    pub(crate) fn shared_path(sub: &str) -> PathBuf {
        let path = shared_data().join(sub);
        assert!(
            path.exists(),
            "{} not found: this test needs the shared data folder (set HM2BP_SHARED_DATA)",
            path.display()
        );
        path
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn sample_pixels() -> Vec<u8> {
        (0..2 * 3 * 4).map(|i| i as u8).collect()
    }

    #[test]
    fn round_trip_raw_and_gz() {
        let dir = tempfile::tempdir().unwrap();
        let px = sample_pixels();
        let bytes = idx_images_bytes(2, 3, 4, &px);
        let raw = write(dir.path(), "img", &bytes);
        let gzp = write(dir.path(), "img.gz", &gz(&bytes));
        for p in [raw, gzp] {
            let im = read_idx_images(&p).unwrap();
            assert_eq!((im.count, im.rows, im.cols), (2, 3, 4));
            assert_eq!(im.pixels, px);
            assert_eq!(im.image(1), &px[12..24]);
        }
        let lab = idx_labels_bytes(&[3, 1, 4]);
        let raw = write(dir.path(), "lab", &lab);
        let gzp = write(dir.path(), "lab.gz", &gz(&lab));
        for p in [raw, gzp] {
            assert_eq!(read_idx_labels(&p).unwrap(), vec![3, 1, 4]);
        }
    }

    #[test]
    fn gzip_detected_by_magic_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = idx_images_bytes(2, 3, 4, &sample_pixels());
        // Raw content under a .gz name, and gzip content under a plain name.
        let a = write(dir.path(), "a.gz", &bytes);
        let b = write(dir.path(), "b", &gz(&bytes));
        assert_eq!(read_idx_images(&a).unwrap(), read_idx_images(&b).unwrap());
    }

    #[test]
    fn wrong_magic() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "x", &idx_labels_bytes(&[1, 2]));
        let e = read_idx_images(&p).unwrap_err().to_string();
        assert!(e.contains("bad magic 0x00000801, expected 0x00000803 (IDX unsigned-byte images)"));
        assert!(e.starts_with(&p.display().to_string()), "{e}");
        let p = write(dir.path(), "y", &idx_images_bytes(0, 1, 1, &[]));
        let e = read_idx_labels(&p).unwrap_err();
        assert!(matches!(e, DataError::BadMagic { found: 0x803, .. }), "{e}");
    }

    #[test]
    fn truncated_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "x", &idx_images_bytes(1, 2, 2, &[])[..10]);
        let e = read_idx_images(&p).unwrap_err().to_string();
        assert!(e.contains("truncated: IDX header"), "{e}");
        assert!(e.contains("file has 10"), "{e}");
        let p = write(dir.path(), "y", &[0, 0, 8]);
        assert!(matches!(
            read_idx_labels(&p),
            Err(DataError::Truncated { .. })
        ));
    }

    #[test]
    fn truncated_pixels_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "x", &idx_images_bytes(2, 3, 4, &[0; 20]));
        let e = read_idx_images(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("truncated: header says 2×3×4 = 24 bytes of pixels, file has 20"),
            "{e}"
        );
        let mut lab = idx_labels_bytes(&[1, 2, 3]);
        lab.pop();
        let p = write(dir.path(), "y", &lab);
        let e = read_idx_labels(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("header says 3 = 3 bytes of labels, file has 2"),
            "{e}"
        );
        // A header announcing an absurd size is "truncated", not an overflow or huge allocation.
        let p = write(
            dir.path(),
            "z",
            &idx_images_bytes(u32::MAX, u32::MAX, u32::MAX, &[]),
        );
        assert!(matches!(
            read_idx_images(&p),
            Err(DataError::Truncated { .. })
        ));
    }

    #[test]
    fn trailing_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = idx_images_bytes(2, 3, 4, &sample_pixels());
        bytes.extend_from_slice(&[9, 9, 9]);
        let p = write(dir.path(), "x.gz", &gz(&bytes));
        let e = read_idx_images(&p).unwrap_err().to_string();
        assert!(e.ends_with("x.gz: 3 unexpected trailing bytes"), "{e}");
        let mut lab = idx_labels_bytes(&[1]);
        lab.push(0);
        let p = write(dir.path(), "y", &lab);
        assert!(matches!(
            read_idx_labels(&p),
            Err(DataError::TrailingBytes { count: 1, .. })
        ));
    }

    #[test]
    fn gzip_expanding_beyond_the_limit_is_refused() {
        let path = Path::new("bomb.gz");
        let packed = gz(&vec![0u8; 10_000]);
        let err = decode_gz_bounded(path, &packed, 9_999).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("bomb.gz: gzip data expands to more than 9999 bytes")
        );
        assert_eq!(
            decode_gz_bounded(path, &packed, 10_000).unwrap().len(),
            10_000
        );
    }

    #[test]
    fn corrupt_gzip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut z = gz(&idx_labels_bytes(&[1, 2, 3]));
        z.truncate(z.len() - 6);
        let p = write(dir.path(), "bad.gz", &z);
        let e = read_idx_labels(&p).unwrap_err();
        assert!(matches!(e, DataError::Gzip { .. }), "{e}");
        assert!(e.to_string().contains("gzip error"));
        let e = read_idx_labels(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(e, DataError::MissingFile { .. }), "{e}");
    }

    #[test]
    fn transpose_each_transposes_every_image() {
        let mut im = IdxImages {
            count: 2,
            rows: 2,
            cols: 3,
            pixels: vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        };
        im.transpose_each();
        assert_eq!((im.rows, im.cols), (3, 2));
        assert_eq!(im.pixels, vec![1, 4, 2, 5, 3, 6, 7, 10, 8, 11, 9, 12]);
        im.transpose_each();
        assert_eq!(im.pixels, (1..=12).collect::<Vec<u8>>());
        assert_eq!((im.rows, im.cols), (2, 3));
    }

    #[test]
    #[ignore = "needs ../shared/data/mnist (the integration tests fetch MNIST themselves)"]
    fn real_mnist_labels_and_test_images() {
        let dir = shared_path("mnist");
        let train = dir.join("train-labels-idx1-ubyte.gz");
        let labels = read_idx_labels(&train).unwrap();
        assert_eq!(labels.len(), 60000);
        assert_eq!(&labels[..5], &[5, 0, 4, 1, 9]);
        let mut counts = [0usize; 10];
        for &l in &labels {
            counts[l as usize] += 1;
        }
        assert_eq!(
            counts,
            [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
        );
        let test = read_idx_images(&dir.join("t10k-images-idx3-ubyte.gz")).unwrap();
        assert_eq!((test.count, test.rows, test.cols), (10000, 28, 28));
        assert_eq!(test.pixels.len(), 10000 * 784);
    }
}
