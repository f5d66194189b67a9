//! Istio 1.12.7: getting a verified `istioctl` (download, verify, cache, extract).

pub mod install;

use std::path::PathBuf;

use crate::LabError;

/// The Istio version the lab is written for.
pub const ISTIO_VERSION: &str = "1.12.7";

/// What to fetch and where to keep it.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The Istio version, e.g. `1.12.7`.
    pub version: String,
    /// The cache root (`<cache>/istio/<version>/…` is used below it).
    pub cache_dir: PathBuf,
}

impl FetchOptions {
    /// The lab's defaults: Istio 1.12.7 for this platform, cached under `cache_dir`.
    pub fn lab_default(cache_dir: PathBuf) -> FetchOptions {
        FetchOptions {
            version: ISTIO_VERSION.to_string(),
            cache_dir,
        }
    }
}

/// Returns the path of a verified `istioctl`, downloading and verifying it when the cache has none.
pub async fn fetch_istioctl(options: &FetchOptions) -> anyhow::Result<PathBuf> {
    let _ = options;
    Err(LabError::NotImplemented {
        command: "istio fetch".to_string(),
    }
    .into())
}
