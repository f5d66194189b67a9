//! Where the lab's assets live: `assets/` in the repository, or `$CANARY_LAB_ASSETS`.
//!
//! Assets are read at run time, not embedded, so an instructor can edit `assets/lab.toml` or a manifest and run
//! again without thinking about rebuilds.

use std::path::PathBuf;

/// The assets directory: `$CANARY_LAB_ASSETS` when set, else the repository's `assets/`.
pub fn assets_dir() -> PathBuf {
    match std::env::var_os("CANARY_LAB_ASSETS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets")),
    }
}

/// `assets/manifests/`.
pub fn manifests_dir() -> PathBuf {
    assets_dir().join("manifests")
}
