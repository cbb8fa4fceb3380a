//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// The shared read-only data folder (`$HM2BP_SHARED_DATA`, else `../shared/data`), or `None`
/// with a printed reason, so that tests needing real data skip instead of failing; with
/// `HM2BP_REQUIRE_DATA=1` (CI) a missing folder fails the test instead.
pub fn shared_data(sub: &str) -> Option<PathBuf> {
    let root = std::env::var_os("HM2BP_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let dir = root.join(sub);
    if dir.is_dir() {
        Some(dir)
    } else {
        assert!(
            std::env::var_os("HM2BP_REQUIRE_DATA").is_none_or(|v| v != "1"),
            "{} not found and HM2BP_REQUIRE_DATA=1",
            dir.display()
        );
        eprintln!(
            "skipped: {} not found (set HM2BP_SHARED_DATA)",
            dir.display()
        );
        None
    }
}
