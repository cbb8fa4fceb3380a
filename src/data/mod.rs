//! Data: IDX image datasets, N-MNIST event files, the rate encoder, the dataset fetcher and the
//! authors' golden test data.

pub mod encode;
pub mod error;
pub mod fetch;
pub mod golden;
pub mod idx;
pub mod image_set;
pub mod nmnist;

pub use encode::{EncodingMode, RateEncoder};
pub use error::DataError;
pub use idx::IdxImages;
pub use image_set::{ImageDatasetKind, ImageSet, Split, load_image_set};
