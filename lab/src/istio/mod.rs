//! Istio 1.12.7: getting a verified `istioctl` (download, verify, cache, extract).
//!
//! [`fetch_istioctl`] is the one code path for `cargo xtask istio fetch` and `lab up`: under a file lock on
//! `<cache>/istio/<version>/`, it returns the cached istioctl when an earlier run verified it (no request at all);
//! otherwise it downloads the release asset (or takes `--archive`), checks its SHA-256 against every expectation
//! (`verify`), unpacks it safely into a staging directory (`extract`), asks the unpacked istioctl for its version
//! and only then renames the directory into place (`cache`).

pub mod asset;
pub mod cache;
pub mod download;
pub mod error;
pub mod extract;
pub mod gateway_config;
pub mod install;
pub mod progress;
pub mod verify;

use std::path::{Path, PathBuf};

use anyhow::Context;
use reqwest::Url;

pub use asset::{AssetFlavor, Platform};
pub use download::NetworkPolicy;
pub use error::{FetchError, PartialFile};
pub use progress::ProgressBarMode;

use cache::{CacheLayout, CacheLock};
use verify::{Expected, Origin, TrustStore};

use crate::tool::istioctl::Istioctl;

/// The Istio version the lab is written for.
pub const ISTIO_VERSION: &str = "1.12.7";

/// The folder that holds a version's release assets, with `{version}` in place of the version.
pub const RELEASE_BASE_URL: &str = "https://github.com/istio/istio/releases/download/{version}/";

/// What to fetch and where to keep it.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The Istio version, e.g. `1.12.7`.
    pub version: String,
    /// The cache root (`<cache>/istio/<version>/…` is used below it).
    pub cache_dir: PathBuf,
    /// The platform whose asset to take; `None` means this machine's.
    pub platform: Option<Platform>,
    /// The istioctl-only asset (default) or the full release.
    pub flavor: AssetFlavor,
    /// The folder holding the assets (`https://`, `http://` or `file://`); `None` means GitHub's release page.
    pub base_url: Option<String>,
    /// A SHA-256 (hex) that replaces the pinned sum and the release's `.sha256` (mirrors, private builds).
    pub sha256: Option<String>,
    /// An already-downloaded archive to verify and unpack instead of downloading.
    pub archive: Option<PathBuf>,
    /// Timeouts and retries.
    pub network: NetworkPolicy,
    /// Whether a progress bar is drawn on a terminal.
    pub progress: ProgressBarMode,
}

impl FetchOptions {
    /// The lab's defaults: Istio 1.12.7 for this platform, cached under `cache_dir`.
    pub fn lab_default(cache_dir: PathBuf) -> FetchOptions {
        FetchOptions {
            version: ISTIO_VERSION.to_string(),
            cache_dir,
            platform: None,
            flavor: AssetFlavor::IstioctlOnly,
            base_url: None,
            sha256: None,
            archive: None,
            network: NetworkPolicy::standard(),
            progress: ProgressBarMode::Auto,
        }
    }
}

/// Returns the path of a verified `istioctl`, downloading and verifying it when the cache has none.
pub async fn fetch_istioctl(options: &FetchOptions) -> anyhow::Result<PathBuf> {
    Ok(fetch_istioctl_with_origin(options).await?.path)
}

/// A verified `istioctl` and where this call found it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FetchedIstioctl {
    /// Its absolute path.
    pub path: PathBuf,
    /// Whether it was in the cache already, or what this call did to put it there.
    pub origin: FetchedFrom,
    /// The release asset it came from (`istioctl-1.12.7-linux-amd64.tar.gz`).
    pub asset: String,
    /// The SHA-256 (lowercase hex) the asset was verified against.
    pub sha256: String,
}

/// Where [`fetch_istioctl_with_origin`] found `istioctl` (JSON: `cache`, `unpacked`, `downloaded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchedFrom {
    /// The verified, unpacked cache: nothing was downloaded or written.
    Cache,
    /// Unpacked from an archive verified earlier or given with `--archive`: nothing was downloaded.
    Unpacked,
    /// Downloaded, verified and unpacked by this call.
    Downloaded,
}

/// [`fetch_istioctl`], also saying whether it downloaded, unpacked or found `istioctl` in the cache.
pub async fn fetch_istioctl_with_origin(options: &FetchOptions) -> anyhow::Result<FetchedIstioctl> {
    let platform = match options.platform {
        Some(platform) => platform,
        None => Platform::current()?,
    };
    check_release_version(&options.version)?;
    let asset = options.flavor.asset_name(&options.version, platform);
    let layout = CacheLayout::new(
        &options.cache_dir,
        &options.version,
        &asset,
        &options.flavor.istioctl_in_archive(&options.version),
    );
    let version_dir = layout.version_dir();
    std::fs::create_dir_all(version_dir)
        .with_context(|| format!("creating the istio cache \"{}\"", version_dir.display()))?;
    let _lock = CacheLock::acquire(&layout.lock_path()).await?;
    cache::remove_stale_staging_dirs(version_dir)?;
    let mut trust = TrustStore::load(&layout.trust_file())?;
    let pinned = verify::pinned_sha256(&asset);
    if options.sha256.is_some() {
        tracing::warn!(
            asset,
            "using the sum given with --sha256 instead of the pinned and published sums"
        );
    }

    let offline_expectation = offline_expectation(options, &asset, pinned.as_ref(), &trust)?;

    // A cache verified against the same sum answers without a single request.
    let istioctl = layout.istioctl_path();
    if let Some(verified_sum) = layout.verified_sha256() {
        let same_sum = offline_expectation
            .as_ref()
            .is_none_or(|expected| expected.sha256 == verified_sum);
        if same_sum && istioctl.is_file() {
            tracing::info!(path = %istioctl.display(), "using the verified istioctl in the cache");
            return Ok(FetchedIstioctl {
                path: absolute(&istioctl)?,
                origin: FetchedFrom::Cache,
                asset,
                sha256: verified_sum,
            });
        }
        tracing::info!(
            asset,
            "the cached istioctl was verified against another sum; fetching again"
        );
    }

    let (archive, archive_sum, origin) = obtain_archive(options, &layout, &asset, offline_expectation.as_ref()).await?;
    if pinned.is_none() && options.sha256.is_none() {
        tracing::warn!(asset, lock_file = %trust.path().display(), "this asset has no pinned sum; it is trusted on first use");
        if trust.get(&asset).is_none() {
            trust.record(&asset, &archive_sum)?;
        }
    }

    unpack_into_place(&layout, &asset, &archive, &archive_sum, &options.version).await?;
    Ok(FetchedIstioctl {
        path: absolute(&istioctl)?,
        origin,
        asset,
        sha256: archive_sum,
    })
}

/// Refuses a version that is not a release tag: it becomes a directory and part of a URL.
fn check_release_version(version: &str) -> anyhow::Result<()> {
    let plain_version = !version.is_empty()
        && version.chars().all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
        && !version.starts_with('.');
    if !plain_version {
        anyhow::bail!(
            "\"{version}\" is not an Istio release version\nhelp: pass a version such as `--version {ISTIO_VERSION}`"
        );
    }
    Ok(())
}

/// The sum of `asset` known without asking anyone: the flag, else the pin, else what was trusted on first use.
fn offline_expectation(
    options: &FetchOptions,
    asset: &str,
    pinned: Option<&String>,
    trust: &TrustStore,
) -> anyhow::Result<Option<Expected>> {
    Ok(match (&options.sha256, pinned, trust.get(asset)) {
        (Some(flag), _, _) => Some(Expected {
            sha256: verify::parse_sha256_hex(flag)?,
            origin: Origin::Flag,
        }),
        (None, Some(pin), _) => Some(Expected {
            sha256: pin.clone(),
            origin: Origin::Pinned,
        }),
        (None, None, Some(recorded)) => Some(Expected {
            sha256: recorded.to_string(),
            origin: Origin::TrustedOnFirstUse(trust.path().to_path_buf()),
        }),
        (None, None, None) => None,
    })
}

/// The verified archive to unpack, its sum and where it came from: `--archive`, an archive an earlier run verified
/// (its unpacked copy is gone) when a sum known offline still vouches for it, or a fresh download.
async fn obtain_archive(
    options: &FetchOptions,
    layout: &CacheLayout,
    asset: &str,
    offline_expectation: Option<&Expected>,
) -> anyhow::Result<(PathBuf, String, FetchedFrom)> {
    if let Some(archive) = &options.archive {
        let sum = verify_local_archive(archive, asset, offline_expectation).await?;
        return Ok((archive.clone(), sum, FetchedFrom::Unpacked));
    }
    let cached_archive = layout.archive_path();
    let cached_sum = match (offline_expectation, cached_archive.is_file()) {
        (Some(expected), true) => {
            let reading = format!("reading \"{}\"", cached_archive.display());
            let actual = sha256_off_runtime(&cached_archive, "hashing the cached archive", reading).await?;
            (actual == expected.sha256).then_some(actual)
        }
        _ => None,
    };
    match cached_sum {
        Some(sum) => {
            tracing::info!(asset, "reusing the verified archive in the cache");
            Ok((cached_archive, sum, FetchedFrom::Unpacked))
        }
        None => {
            let sum = download_verified(options, layout, asset, offline_expectation).await?;
            Ok((cached_archive, sum, FetchedFrom::Downloaded))
        }
    }
}

/// Checks `archive` against the offline expectation or, failing that, a `.sha256` file beside it.
async fn verify_local_archive(archive: &Path, asset: &str, offline: Option<&Expected>) -> anyhow::Result<String> {
    let sidecar = PathBuf::from(format!("{}.sha256", archive.display()));
    let mut expectations: Vec<Expected> = offline.into_iter().cloned().collect();
    let from_flag = offline.is_some_and(|expected| expected.origin == Origin::Flag);
    if !from_flag && sidecar.is_file() {
        let text = std::fs::read_to_string(&sidecar).with_context(|| format!("reading \"{}\"", sidecar.display()))?;
        let location = sidecar.display().to_string();
        expectations.push(Expected {
            sha256: verify::parse_sha256_file(&text, &location)?,
            origin: Origin::ReleaseFile(location),
        });
    }
    if expectations.is_empty() {
        return Err(FetchError::NoExpectation {
            asset: asset.to_string(),
            archive: archive.display().to_string(),
        }
        .into());
    }
    let reading = format!("reading the archive \"{}\"", archive.display());
    let actual = sha256_off_runtime(archive, "hashing the archive", reading).await?;
    // The file is the user's own: it is left where it is, and the error names it rather than the asset it stands for.
    let named = archive.display().to_string();
    if let Some(mismatch) = checksum_mismatch(&named, &actual, &expectations, PartialFile::Untouched) {
        return Err(mismatch.into());
    }
    Ok(actual)
}

/// Downloads the asset (and, without `--sha256`, its `.sha256`), checks every expectation, and renames the
/// archive into the cache; returns its sum. A mismatch deletes the bytes.
async fn download_verified(
    options: &FetchOptions,
    layout: &CacheLayout,
    asset: &str,
    offline: Option<&Expected>,
) -> anyhow::Result<String> {
    let base_text = options
        .base_url
        .clone()
        .unwrap_or_else(|| RELEASE_BASE_URL.replace("{version}", &options.version));
    let base_with_slash = if base_text.ends_with('/') {
        base_text.clone()
    } else {
        format!("{base_text}/")
    };
    let base = Url::parse(&base_with_slash).with_context(|| format!("reading the base URL \"{base_text}\""))?;
    let asset_url = base
        .join(asset)
        .with_context(|| format!("joining \"{asset}\" to \"{base}\""))?;
    let downloader = download::Downloader::new(options.network, options.progress)?;

    let mut expectations: Vec<Expected> = offline.into_iter().cloned().collect();
    let from_flag = offline.is_some_and(|expected| expected.origin == Origin::Flag);
    if !from_flag {
        let sum_url = base
            .join(&format!("{asset}.sha256"))
            .context("building the .sha256 URL")?;
        let text = downloader
            .fetch_text(&sum_url)
            .await
            .with_context(|| format!("fetching the checksum of \"{asset}\""))?;
        expectations.push(Expected {
            sha256: verify::parse_sha256_file(&text, sum_url.as_str())?,
            origin: Origin::ReleaseFile(sum_url.to_string()),
        });
    }
    // Before any byte of the asset: the published sum must agree with the pin (or the trusted sum).
    if let (Some(offline), Some(published)) = (offline, expectations.last())
        && offline.sha256 != published.sha256
    {
        return Err(FetchError::ChecksumMismatch {
            asset: asset.to_string(),
            expected: offline.sha256.clone(),
            actual: published.sha256.clone(),
            source_of_expectation: format!("{}, while the release file says {}", offline.origin, published.origin),
            partial: PartialFile::None,
        }
        .into());
    }

    let partial = layout.partial_path(&expectations[0].sha256);
    let downloaded = downloader
        .fetch_to_file(&asset_url, &partial)
        .await
        .with_context(|| format!("downloading \"{asset}\""))?;
    if let Some(mismatch) = checksum_mismatch(asset, &downloaded.sha256, &expectations, PartialFile::Deleted) {
        std::fs::remove_file(&partial).with_context(|| format!("deleting \"{}\"", partial.display()))?;
        return Err(mismatch.into());
    }
    let archive = layout.archive_path();
    std::fs::rename(&partial, &archive)
        .with_context(|| format!("moving \"{}\" to \"{}\"", partial.display(), archive.display()))?;
    cache::sync_dir(layout.version_dir())?;
    tracing::info!(asset, bytes = downloaded.bytes, sha256 = %downloaded.sha256, "verified");
    Ok(downloaded.sha256)
}

/// The SHA-256 of `path`, hashed on a blocking thread; `hashing` names the task and `reading` the file in errors.
async fn sha256_off_runtime(path: &Path, hashing: &str, reading: String) -> anyhow::Result<String> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || verify::sha256_of_file(&owned))
        .await
        .with_context(|| hashing.to_string())?
        .context(reading)
}

/// A [`FetchError::ChecksumMismatch`] for the first of `expectations` that `actual` does not meet, if any;
/// `partial` says what became of the bytes.
fn checksum_mismatch(asset: &str, actual: &str, expectations: &[Expected], partial: PartialFile) -> Option<FetchError> {
    let failed = verify::first_mismatch(actual, expectations)?;
    Some(FetchError::ChecksumMismatch {
        asset: asset.to_string(),
        expected: failed.sha256.clone(),
        actual: actual.to_string(),
        source_of_expectation: failed.origin.to_string(),
        partial,
    })
}

/// Unpacks a verified archive into a staging directory, checks istioctl's version, marks the directory verified
/// and renames it into place.
async fn unpack_into_place(
    layout: &CacheLayout,
    asset: &str,
    archive: &Path,
    archive_sum: &str,
    version: &str,
) -> anyhow::Result<()> {
    let staging = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(layout.version_dir())
        .context("creating a staging directory in the istio cache")?;
    let staging_path = staging.path().to_path_buf();
    let archive_path = archive.to_path_buf();
    let asset_name = asset.to_string();
    tokio::task::spawn_blocking(move || extract::unpack_safely(&archive_path, &asset_name, &staging_path))
        .await
        .context("unpacking the archive")??;

    let staged_istioctl = staging.path().join(layout.istioctl_in_archive());
    let missing = || FetchError::MissingIstioctl {
        asset: asset.to_string(),
        expected_path: layout.istioctl_in_archive().display().to_string(),
    };
    let metadata = std::fs::symlink_metadata(&staged_istioctl).map_err(|_| missing())?;
    let executable = std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o111 != 0;
    if !metadata.is_file() || !executable {
        return Err(missing().into());
    }

    let program = staged_istioctl.clone();
    let reported = tokio::task::spawn_blocking(move || Istioctl::new(&program).client_version())
        .await
        .context("checking the unpacked istioctl")?
        .context("checking the unpacked istioctl")?;
    if reported.version != version {
        return Err(FetchError::WrongVersion {
            path: staged_istioctl.display().to_string(),
            expected: version.to_string(),
            actual: reported.version,
        }
        .into());
    }

    cache::write_verified_marker(staging.path(), archive_sum)?;
    let destination = layout.unpacked_dir();
    if destination.exists() {
        std::fs::remove_dir_all(&destination)
            .with_context(|| format!("removing the stale \"{}\"", destination.display()))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, &destination)
        .with_context(|| format!("moving \"{}\" to \"{}\"", staged.display(), destination.display()))?;
    cache::sync_dir(layout.version_dir())?;
    Ok(())
}

/// `path` made absolute (the cache dir may be relative).
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving \"{}\"", path.display()))
}
