//! HTTP(S) and `file://` downloads: hashed while streaming, resumed with `Range`, retried with backoff.
//!
//! A download writes into a `.partial` file. An interrupted body (reset, timeout, early end) is resumed with
//! `Range: bytes=N-`; only a `206` whose `Content-Range` starts at `N` is appended, a `200` starts over. 5xx,
//! timeouts and resets are retried with exponential backoff, bounded in attempts and in total time; 4xx is final.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::Url;
use reqwest::header::{CONTENT_RANGE, RANGE};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::error::{FetchError, PartialFile};
use super::progress::{Progress, ProgressBarMode};
use super::verify::hash_file;
use crate::error::error_chain;
use crate::http::HttpTimeouts;

/// Timeouts and retry bounds for downloads.
#[derive(Debug, Clone, Copy)]
pub struct NetworkPolicy {
    /// Connect and idle (between reads) timeouts.
    pub timeouts: HttpTimeouts,
    /// At most this many requests per URL.
    pub max_attempts: u32,
    /// No new attempt starts once this much time has passed since the first.
    pub retry_budget: Duration,
    /// The wait before the first retry; it doubles each time.
    pub first_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl NetworkPolicy {
    /// Defaults for real networks: 10 s to connect, 30 s of silence, 6 attempts within 5 minutes.
    pub fn standard() -> NetworkPolicy {
        NetworkPolicy {
            timeouts: HttpTimeouts {
                connect: Duration::from_secs(10),
                idle: Duration::from_secs(30),
            },
            max_attempts: 6,
            retry_budget: Duration::from_secs(300),
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

/// A finished download: its SHA-256 and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Lowercase hex SHA-256 of the whole file.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Downloads with one HTTP client and one policy.
#[derive(Debug, Clone)]
pub struct Downloader {
    client: reqwest::Client,
    policy: NetworkPolicy,
    progress_mode: ProgressBarMode,
}

/// How one attempt failed.
enum AttemptError {
    /// Worth another attempt (5xx, timeout, reset, early end of body).
    Retry(String),
    /// Final (4xx, local IO).
    Final(anyhow::Error),
}

impl Downloader {
    /// A downloader with `policy`; `progress_mode` decides whether large downloads draw a bar.
    pub fn new(policy: NetworkPolicy, progress_mode: ProgressBarMode) -> anyhow::Result<Downloader> {
        Ok(Downloader {
            client: crate::http::client(policy.timeouts)?,
            policy,
            progress_mode,
        })
    }

    /// The whole body of a small file (a `.sha256`) as text.
    pub async fn fetch_text(&self, url: &Url) -> anyhow::Result<String> {
        if url.scheme() == "file" {
            let path = file_path(url)?;
            return match std::fs::read_to_string(&path) {
                Ok(text) => Ok(text),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    Err(FetchError::NotFound { url: url.to_string() }.into())
                }
                Err(error) => Err(error).with_context(|| format!("reading \"{}\"", path.display())),
            };
        }
        let mut quiet = Progress::new("checksum file", ProgressBarMode::Hidden);
        self.with_retries(url, None, &mut quiet, async |_: &mut Progress| {
            let response = self
                .client
                .get(url.clone())
                .send()
                .await
                .map_err(|error| retry_or_final(&error))?;
            check_status(url, response.status(), None)?;
            // A body cut short is reported as a decode error: retry it like a reset.
            response
                .text()
                .await
                .map_err(|error| AttemptError::Retry(error_chain(&error)))
        })
        .await
    }

    /// Downloads `url` into `partial`, resuming what is already there, and returns the whole file's sum and size.
    ///
    /// On failure the partial file is kept when it holds bytes (a rerun resumes it) and the error says so.
    pub async fn fetch_to_file(&self, url: &Url, partial: &Path) -> anyhow::Result<Downloaded> {
        if url.scheme() == "file" {
            return copy_local(url, partial).await;
        }
        let label = url
            .path_segments()
            .and_then(|mut segments| segments.next_back())
            .unwrap_or("download");
        let mut progress = Progress::new(label, self.progress_mode);
        let result = self
            .with_retries(url, Some(partial), &mut progress, async |progress: &mut Progress| {
                self.attempt_download(url, partial, progress).await
            })
            .await;
        match &result {
            Ok(_) => progress.finished(),
            Err(_) => progress.failed(),
        }
        result
    }

    /// Runs `attempt` until it succeeds, fails finally, or the policy's attempts or time run out.
    async fn with_retries<T>(
        &self,
        url: &Url,
        partial: Option<&Path>,
        progress: &mut Progress,
        mut attempt: impl AsyncFnMut(&mut Progress) -> Result<T, AttemptError>,
    ) -> anyhow::Result<T> {
        let started = Instant::now();
        let mut backoff = self.policy.first_backoff;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let reason = match attempt(progress).await {
                Ok(value) => return Ok(value),
                Err(AttemptError::Final(error)) => return Err(error),
                Err(AttemptError::Retry(reason)) => reason,
            };
            let out_of_attempts = attempts >= self.policy.max_attempts;
            let out_of_time = started.elapsed() + backoff > self.policy.retry_budget;
            if out_of_attempts || out_of_time {
                return Err(FetchError::GaveUp {
                    url: url.to_string(),
                    attempts,
                    last_error: reason,
                    partial: partial.map(partial_fate).unwrap_or(PartialFile::None),
                }
                .into());
            }
            progress.retrying(self.policy.max_attempts - attempts, &reason);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.policy.max_backoff);
        }
    }

    /// One request: resume from what `partial` holds, append the body while hashing it, fsync.
    async fn attempt_download(
        &self,
        url: &Url,
        partial: &Path,
        progress: &mut Progress,
    ) -> Result<Downloaded, AttemptError> {
        let final_error = |error: std::io::Error| {
            AttemptError::Final(anyhow::Error::new(error).context(format!("writing \"{}\"", partial.display())))
        };
        let mut already = std::fs::metadata(partial).map(|metadata| metadata.len()).unwrap_or(0);
        let mut request = self.client.get(url.clone());
        if already > 0 {
            request = request.header(RANGE, format!("bytes={already}-"));
        }
        let mut response = request.send().await.map_err(|error| retry_or_final(&error))?;
        let status = response.status();
        let resumed = already > 0 && status == reqwest::StatusCode::PARTIAL_CONTENT;
        if already > 0 && status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
            // The partial file is longer than the asset (it changed, or it is garbage): start over.
            std::fs::remove_file(partial).map_err(final_error)?;
            return Err(AttemptError::Retry(
                "the server refused to resume (HTTP 416); starting over".into(),
            ));
        }
        check_status(url, status, Some(partial))?;
        if resumed {
            let content_range = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            let starts_where_we_stopped = content_range.starts_with(&format!("bytes {already}-"));
            if !starts_where_we_stopped {
                std::fs::remove_file(partial).map_err(final_error)?;
                return Err(AttemptError::Retry(format!(
                    "the server resumed at \"{content_range}\" instead of byte {already}; starting over"
                )));
            }
        }
        if !resumed && already > 0 {
            tracing::info!(url = %url, "the server ignored the range request; downloading from the start");
            already = 0;
        }
        let mut hasher = match already {
            0 => Sha256::new(),
            _ => hash_file(partial).map_err(final_error)?,
        };
        let opened = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(already > 0)
            .truncate(already == 0)
            .open(partial)
            .await
            .map_err(final_error)?;
        // Network chunks are small; a large buffer keeps the number of trips to the blocking pool down.
        let mut file = tokio::io::BufWriter::with_capacity(1024 * 1024, opened);
        let body_length = response.content_length();
        progress.length_known(body_length.map(|length| length + already), already);
        let mut received = 0u64;
        let body_result = loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    hasher.update(&chunk);
                    file.write_all(&chunk).await.map_err(final_error)?;
                    received += chunk.len() as u64;
                    progress.received(chunk.len() as u64);
                }
                Ok(None) => break Ok(()),
                // reqwest reports a body cut short (EOF, reset, idle timeout) as a decode error: always retry.
                Err(error) => break Err(AttemptError::Retry(error_chain(&error))),
            }
        };
        // Whatever arrived is kept on disk for the next attempt to resume.
        file.flush().await.map_err(final_error)?;
        file.get_ref().sync_all().await.map_err(final_error)?;
        body_result?;
        if let Some(length) = body_length
            && received < length
        {
            return Err(AttemptError::Retry(format!(
                "the body ended after {received} of {length} bytes"
            )));
        }
        Ok(Downloaded {
            sha256: hex::encode(hasher.finalize()),
            bytes: already + received,
        })
    }
}

/// Success statuses pass; 404 is [`FetchError::NotFound`], other 4xx [`FetchError::Refused`], 5xx and 429 retry.
fn check_status(url: &Url, status: reqwest::StatusCode, partial: Option<&Path>) -> Result<(), AttemptError> {
    if status.is_success() {
        return Ok(());
    }
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(AttemptError::Retry(format!("HTTP {status}")));
    }
    let error = match status {
        reqwest::StatusCode::NOT_FOUND => FetchError::NotFound { url: url.to_string() },
        _ => FetchError::Refused {
            url: url.to_string(),
            status: status.as_u16(),
            partial: partial.map(partial_fate).unwrap_or(PartialFile::None),
        },
    };
    Err(AttemptError::Final(error.into()))
}

/// Timeouts, connection failures and broken bodies are worth a retry; anything else (a bad URL) is not.
fn retry_or_final(error: &reqwest::Error) -> AttemptError {
    let transient = error.is_timeout() || error.is_connect() || error.is_request() || error.is_body();
    let described = error_chain(error);
    if transient {
        AttemptError::Retry(described)
    } else {
        AttemptError::Final(anyhow::anyhow!(described))
    }
}

/// Kept when it holds bytes, otherwise none.
fn partial_fate(path: &Path) -> PartialFile {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.len() > 0 => PartialFile::Kept(path.to_path_buf()),
        _ => PartialFile::None,
    }
}

fn file_path(url: &Url) -> anyhow::Result<std::path::PathBuf> {
    url.to_file_path()
        .map_err(|()| anyhow::anyhow!("\"{url}\" is not a local file URL"))
}

/// `file://`: copy into `partial` while hashing (no resume needed on a local disk).
async fn copy_local(url: &Url, partial: &Path) -> anyhow::Result<Downloaded> {
    let source = file_path(url)?;
    if !source.is_file() {
        return Err(FetchError::NotFound { url: url.to_string() }.into());
    }
    let destination = partial.to_path_buf();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Downloaded> {
        let context = || format!("copying \"{}\" to \"{}\"", source.display(), destination.display());
        let mut reader = std::fs::File::open(&source).with_context(context)?;
        let writer = std::fs::File::create(&destination).with_context(context)?;
        let mut hashing = HashingWriter {
            inner: writer,
            hasher: Sha256::new(),
        };
        let bytes = std::io::copy(&mut reader, &mut hashing).with_context(context)?;
        hashing.inner.sync_all().with_context(context)?;
        Ok(Downloaded {
            sha256: hex::encode(hashing.hasher.finalize()),
            bytes,
        })
    })
    .await
    .context("copying a file:// asset")?
}

/// Hashes what passes through on its way to `inner`.
struct HashingWriter {
    inner: std::fs::File,
    hasher: Sha256,
}

impl std::io::Write for HashingWriter {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buffer)?;
        self.hasher.update(&buffer[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
