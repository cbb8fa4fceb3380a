//! PNG figures with plotters: learning curves from `summary.json` files ([`curves`]), spike
//! rasters and activity histograms of a trained network ([`spikes`]). Text uses the bundled
//! DejaVu Sans font, so no system fonts are needed.

pub mod curves;
pub mod spikes;

use std::sync::Once;

use plotters::style::{FontStyle, register_font};

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Makes "sans-serif" the bundled font (once per process).
pub fn register_bundled_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The bundled font is a valid TrueType file: registration cannot fail.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// A drawing error as an `anyhow` error.
pub(crate) fn draw_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing: {e}")
}
