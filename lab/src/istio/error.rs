//! The failures of `istio fetch` that a caller (or a user) acts on: typed, with the values needed to act.

use std::fmt;
use std::path::PathBuf;

/// What happened to the bytes downloaded so far when a download failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartialFile {
    /// Nothing had been written.
    None,
    /// The partial file was kept; the next run resumes it with a `Range` request.
    Kept(PathBuf),
    /// The bytes were deleted (they cannot be trusted).
    Deleted,
    /// A file the user gave (`--archive`, named in the message): left where it is, as it is.
    Untouched,
}

impl fmt::Display for PartialFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartialFile::None => write!(f, "nothing was downloaded"),
            PartialFile::Kept(path) => write!(
                f,
                "the partial download \"{}\" was kept and a rerun resumes it",
                path.display()
            ),
            PartialFile::Deleted => write!(f, "the downloaded bytes were deleted"),
            PartialFile::Untouched => write!(f, "nothing was unpacked (the file is left as it is)"),
        }
    }
}

/// The last segment of a URL: the file a `curl -O` of it writes.
fn file_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// Why `fetch_istioctl` could not produce a verified `istioctl`.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The archive's SHA-256 is not the one expected.
    #[error(
        "checksum mismatch: \"{asset}\" has SHA-256 {actual}, but the sum {source_of_expectation} is {expected}, so {partial}\nhelp: the file is corrupt or not the release it claims to be: rerun `cargo xtask istio fetch`; for a mirror or private build you trust, pass its sum with --sha256"
    )]
    ChecksumMismatch {
        /// The asset's file name.
        asset: String,
        /// The expected sum (lowercase hex).
        expected: String,
        /// The sum of the bytes we have.
        actual: String,
        /// Where the expected sum came from: `--sha256`, the pinned table, the release's `.sha256`, the lock file.
        source_of_expectation: String,
        /// What became of the bytes (always deleted for a mismatch).
        partial: PartialFile,
    },
    /// The server (or the file system, for `file://`) has no such asset.
    #[error(
        "no such release asset: {url}\nhelp: check the version, platform and --base-url (`cargo xtask istio fetch --help`)"
    )]
    NotFound {
        /// The URL asked for.
        url: String,
    },
    /// A 4xx answer other than 404: final, not retried.
    #[error(
        "\"{url}\" answered HTTP {status}; {partial}\nhelp: check --base-url, or download the file by hand and pass --archive PATH"
    )]
    Refused {
        /// The URL asked for.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// What became of the bytes downloaded before.
        partial: PartialFile,
    },
    /// Retries (5xx, timeouts, resets) ran out of attempts or time.
    #[error(
        "downloading \"{url}\" failed after {}: {last_error}; {partial}\nhelp: rerun `cargo xtask istio fetch` later, or fetch it by hand and hand it over: `curl -fLO {url}`, then `cargo xtask istio fetch --archive {}`",
        crate::output::plural(*.attempts, "attempt"),
        file_name(.url)
    )]
    GaveUp {
        /// The URL asked for.
        url: String,
        /// How many requests were made.
        attempts: u32,
        /// The last failure, in words.
        last_error: String,
        /// What became of the bytes downloaded so far.
        partial: PartialFile,
    },
    /// No checksum to verify a local archive against.
    #[error(
        "cannot verify \"{archive}\": \"{asset}\" has no pinned sum, no \"{archive}.sha256\" beside it and none recorded before\nhelp: pass its SHA-256 with `--sha256 HEX`"
    )]
    NoExpectation {
        /// The asset name the archive stands for.
        asset: String,
        /// The archive given with `--archive`.
        archive: String,
    },
    /// The archive holds an entry that would write outside its destination, or a kind of file we never unpack.
    #[error(
        "refusing to unpack \"{asset}\": entry \"{entry}\" {reason}; nothing was written outside the staging directory\nhelp: the archive is not a genuine Istio release; fetch it again from the official --base-url"
    )]
    UnsafeEntry {
        /// The asset's file name.
        asset: String,
        /// The entry's path as stored in the archive.
        entry: String,
        /// What is wrong with it, e.g. "has a `..` component".
        reason: String,
    },
    /// The archive unpacked fine but holds no (executable) `istioctl` where a release has it.
    #[error(
        "\"{asset}\" has no executable \"{expected_path}\"\nhelp: check --full (the full archive keeps istioctl under istio-<version>/bin/)"
    )]
    MissingIstioctl {
        /// The asset's file name.
        asset: String,
        /// Where istioctl should be inside the archive.
        expected_path: String,
    },
    /// The unpacked `istioctl` reports another version than the one asked for.
    #[error(
        "the unpacked istioctl \"{path}\" reports version \"{actual}\", expected \"{expected}\"\nhelp: check --version and the archive or mirror you fetch from"
    )]
    WrongVersion {
        /// The istioctl that was asked.
        path: String,
        /// The version asked for.
        expected: String,
        /// The version it reported.
        actual: String,
    },
    /// This machine is not one Istio publishes istioctl for.
    #[error(
        "Istio publishes no istioctl for \"{os}/{arch}\"\nhelp: pass --platform linux-amd64|linux-arm64|osx|osx-arm64"
    )]
    UnsupportedPlatform {
        /// `std::env::consts::OS`.
        os: String,
        /// `std::env::consts::ARCH`.
        arch: String,
    },
}
