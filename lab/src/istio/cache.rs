//! The cache layout (`<cache>/istio/<version>/…`) and the file lock that makes a concurrent fetch wait.
//!
//! ```text
//! <cache>/istio/<version>/
//!   .fetch.lock                      held while a fetch runs
//!   trusted-sha256.txt               trust-on-first-use sums for assets that are not pinned
//!   <asset>.<sum prefix>.partial     a download in progress (resumable)
//!   <asset>                          the verified archive
//!   <asset stem>/                    the unpacked archive, renamed into place when complete
//!     .canary-lab-verified           the archive's SHA-256: present only once everything was checked
//!     istioctl | istio-<version>/bin/istioctl
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The marker file written into an unpacked directory once it is verified.
const VERIFIED_MARKER: &str = ".canary-lab-verified";

/// Where one asset's files live in the cache.
#[derive(Debug, Clone)]
pub struct CacheLayout {
    version_dir: PathBuf,
    asset: String,
    istioctl_in_archive: PathBuf,
}

impl CacheLayout {
    /// The layout for `asset` of `version` under `cache_dir`; `istioctl_in_archive` is where the archive keeps it.
    pub fn new(cache_dir: &Path, version: &str, asset: &str, istioctl_in_archive: &Path) -> CacheLayout {
        CacheLayout {
            version_dir: cache_dir.join("istio").join(version),
            asset: asset.to_string(),
            istioctl_in_archive: istioctl_in_archive.to_path_buf(),
        }
    }

    /// `<cache>/istio/<version>`.
    pub fn version_dir(&self) -> &Path {
        &self.version_dir
    }

    /// The lock file held while a fetch runs.
    pub fn lock_path(&self) -> PathBuf {
        self.version_dir.join(".fetch.lock")
    }

    /// The trust-on-first-use lock file.
    pub fn trust_file(&self) -> PathBuf {
        self.version_dir.join("trusted-sha256.txt")
    }

    /// The verified archive.
    pub fn archive_path(&self) -> PathBuf {
        self.version_dir.join(&self.asset)
    }

    /// The download in progress, named after the sum it must reach so that another sum never resumes it.
    pub fn partial_path(&self, expected_sha256: &str) -> PathBuf {
        let prefix = &expected_sha256[..expected_sha256.len().min(16)];
        self.version_dir.join(format!("{}.{prefix}.partial", self.asset))
    }

    /// The unpacked archive.
    pub fn unpacked_dir(&self) -> PathBuf {
        let stem = self.asset.strip_suffix(".tar.gz").unwrap_or(&self.asset);
        self.version_dir.join(stem)
    }

    /// Where istioctl is inside the archive (and inside [`CacheLayout::unpacked_dir`]).
    pub fn istioctl_in_archive(&self) -> &Path {
        &self.istioctl_in_archive
    }

    /// The cached istioctl.
    pub fn istioctl_path(&self) -> PathBuf {
        self.unpacked_dir().join(&self.istioctl_in_archive)
    }

    /// The sum recorded when [`CacheLayout::unpacked_dir`] was verified, if it was.
    pub fn verified_sha256(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.unpacked_dir().join(VERIFIED_MARKER)).ok()?;
        Some(text.trim().to_string())
    }
}

/// Writes the verified marker (the archive's sum) into a staging directory about to be renamed into place.
pub fn write_verified_marker(staging_dir: &Path, sha256: &str) -> anyhow::Result<()> {
    let path = staging_dir.join(VERIFIED_MARKER);
    std::fs::write(&path, format!("{sha256}\n")).with_context(|| format!("writing \"{}\"", path.display()))
}

/// Flushes a directory's entries to disk, so that a rename into it survives a crash.
pub fn sync_dir(directory: &Path) -> anyhow::Result<()> {
    File::open(directory)
        .and_then(|handle| handle.sync_all())
        .with_context(|| format!("syncing \"{}\"", directory.display()))
}

/// Removes staging directories (`.unpack-*`) left by a run that was killed; call it holding the lock.
pub fn remove_stale_staging_dirs(version_dir: &Path) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(version_dir).with_context(|| format!("listing \"{}\"", version_dir.display()))?;
    for entry in entries.flatten() {
        let stale = entry.file_name().to_string_lossy().starts_with(".unpack-");
        if stale {
            let path = entry.path();
            std::fs::remove_dir_all(&path).with_context(|| format!("removing the stale \"{}\"", path.display()))?;
        }
    }
    Ok(())
}

/// An exclusive lock on a cache directory; released when dropped.
#[must_use = "the lock is released when this is dropped"]
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

impl CacheLock {
    /// Takes the lock at `path`, waiting (without blocking the async runtime) while another fetch holds it.
    pub async fn acquire(path: &Path) -> anyhow::Result<CacheLock> {
        let path = path.to_path_buf();
        let context = format!("locking the istio cache \"{}\"", path.display());
        let file = tokio::task::spawn_blocking(move || -> std::io::Result<File> {
            let file = File::options().create(true).truncate(false).write(true).open(&path)?;
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(std::fs::TryLockError::Error(error)) => return Err(error),
                Err(std::fs::TryLockError::WouldBlock) => {}
            }
            tracing::info!(lock = %path.display(), "another istio fetch is running; waiting for it to finish");
            file.lock()?;
            Ok(file)
        })
        .await
        .context(context.clone())?
        .context(context)?;
        Ok(CacheLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_of_the_istioctl_asset() {
        let layout = CacheLayout::new(
            Path::new("/c"),
            "1.12.7",
            "istioctl-1.12.7-linux-amd64.tar.gz",
            Path::new("istioctl"),
        );
        assert_eq!(
            layout.archive_path(),
            Path::new("/c/istio/1.12.7/istioctl-1.12.7-linux-amd64.tar.gz")
        );
        assert_eq!(
            layout.istioctl_path(),
            Path::new("/c/istio/1.12.7/istioctl-1.12.7-linux-amd64/istioctl")
        );
        assert_eq!(
            layout.partial_path(&"ab".repeat(32)),
            Path::new("/c/istio/1.12.7/istioctl-1.12.7-linux-amd64.tar.gz.abababababababab.partial")
        );
    }

    #[tokio::test]
    async fn the_lock_is_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".fetch.lock");
        let held = CacheLock::acquire(&path).await.unwrap();
        let other = File::options().write(true).open(&path).unwrap();
        assert!(matches!(other.try_lock(), Err(std::fs::TryLockError::WouldBlock)));
        drop(held);
        other.try_lock().unwrap();
    }
}
