//! `istio fetch` against a misbehaving loopback asset server: verification, resume, retries, cache, safe unpacking.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use canary_lab_tests::assert_contains;
use canary_lab_tests::asset_server::{AssetServer, Misbehaviour, sha256_hex};
use canary_lab_tests::cli::Cli;
use canary_lab_tests::istio_tarball::Tarball;
use lab::http::HttpTimeouts;
use lab::istio::{
    AssetFlavor, FetchError, FetchOptions, NetworkPolicy, PartialFile, Platform, ProgressBarMode, fetch_istioctl,
};

/// Pinned in `assets/istio-checksums.toml`: tests that use it pass `--sha256` (or expect the pin to refuse).
const PINNED_ASSET: &str = "istioctl-1.12.7-linux-amd64.tar.gz";
/// Not pinned: trusted on first use.
const UNPINNED_ASSET: &str = "istioctl-1.12.7-osx-arm64.tar.gz";

/// Options for the loopback server: quick backoff so misbehaviour costs little. The idle timeout stays generous
/// (a loaded machine must not turn a good answer into a retry); the slow-server test shortens it.
fn options(cache: &Path, server: &AssetServer, platform: Platform, sha256: Option<&str>) -> FetchOptions {
    let mut options = FetchOptions::lab_default(cache.to_path_buf());
    options.platform = Some(platform);
    options.base_url = Some(server.base_url());
    options.sha256 = sha256.map(str::to_string);
    options.progress = ProgressBarMode::Hidden;
    options.network = NetworkPolicy {
        timeouts: HttpTimeouts {
            connect: Duration::from_secs(5),
            idle: Duration::from_secs(10),
        },
        max_attempts: 4,
        retry_budget: Duration::from_secs(30),
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
    };
    options
}

/// The archives (`*.tar.gz*`, partial downloads included) and `istioctl` binaries under `cache`: what a failed fetch
/// must not leave behind.
fn download_leftovers(cache: &Path) -> Vec<PathBuf> {
    files_under(cache)
        .into_iter()
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.contains("tar.gz") || name == "istioctl"
        })
        .collect()
}

fn fetch_error(error: &anyhow::Error) -> &FetchError {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<FetchError>())
        .unwrap_or_else(|| panic!("not a FetchError: {error:#}"))
}

/// Every file (not directory) under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type().map(|kind| kind.is_dir()) {
                Ok(true) => pending.push(path),
                _ => found.push(path),
            }
        }
    }
    found.sort();
    found
}

fn assert_executable_istioctl(path: &Path) {
    assert!(path.is_absolute(), "{}", path.display());
    assert_eq!(path.file_name().unwrap(), "istioctl");
    let mode = std::fs::metadata(path).unwrap().permissions().mode();
    assert_ne!(mode & 0o111, 0, "{} is not executable ({mode:o})", path.display());
}

#[tokio::test]
async fn good_tarball_with_sha256_flag_yields_an_executable_istioctl_and_a_second_fetch_sends_no_request() {
    let server = AssetServer::start().await;
    let tarball = Tarball::istioctl_release("1.12.7").build();
    server.add(PINNED_ASSET, &tarball);
    let cache = tempfile::tempdir().unwrap();
    let sum = sha256_hex(&tarball);
    let options = options(cache.path(), &server, Platform::LinuxAmd64, Some(&sum));

    let istioctl = fetch_istioctl(&options).await.unwrap();
    assert_executable_istioctl(&istioctl);
    assert!(
        istioctl.starts_with(cache.path().join("istio/1.12.7")),
        "{}",
        istioctl.display()
    );
    // With --sha256, the release's .sha256 is not asked for.
    let names: Vec<String> = server.requests().into_iter().map(|request| request.name).collect();
    assert_eq!(names, vec![PINNED_ASSET.to_string()]);

    let again = fetch_istioctl(&options).await.unwrap();
    assert_eq!(again, istioctl);
    assert_eq!(
        server.requests().len(),
        1,
        "the cache hit sent a request: {:?}",
        server.requests()
    );
}

#[tokio::test]
async fn a_verified_archive_in_the_cache_is_unpacked_again_without_a_request() {
    let server = AssetServer::start().await;
    let tarball = Tarball::istioctl_release("1.12.7").build();
    server.add(PINNED_ASSET, &tarball);
    let cache = tempfile::tempdir().unwrap();
    let options = options(cache.path(), &server, Platform::LinuxAmd64, Some(&sha256_hex(&tarball)));
    let istioctl = fetch_istioctl(&options).await.unwrap();
    std::fs::remove_dir_all(istioctl.parent().unwrap()).unwrap();
    // A staging directory left by a killed run is cleaned up too.
    std::fs::create_dir_all(cache.path().join("istio/1.12.7/.unpack-killed/x")).unwrap();

    assert_eq!(fetch_istioctl(&options).await.unwrap(), istioctl);
    assert_executable_istioctl(&istioctl);
    assert_eq!(server.requests().len(), 1, "{:?}", server.requests());
    assert!(!cache.path().join("istio/1.12.7/.unpack-killed").exists());
}

#[tokio::test]
async fn a_403_is_final_and_not_retried() {
    let server = AssetServer::start().await;
    server.add(PINNED_ASSET, b"never served");
    server.misbehave(PINNED_ASSET, &[Misbehaviour::Status(403)]);
    let cache = tempfile::tempdir().unwrap();

    let error = fetch_istioctl(&options(
        cache.path(),
        &server,
        Platform::LinuxAmd64,
        Some(&"2".repeat(64)),
    ))
    .await
    .unwrap_err();
    let FetchError::Refused { status, .. } = fetch_error(&error) else {
        panic!("{error:#}")
    };
    assert_eq!(*status, 403);
    assert_eq!(server.requests().len(), 1, "{:?}", server.requests());
}

#[tokio::test]
async fn full_release_unpacks_istio_version_dir() {
    let server = AssetServer::start().await;
    let tarball = Tarball::full_release("1.12.7").build();
    server.add_with_sha256("istio-1.12.7-linux-amd64.tar.gz", &tarball);
    let cache = tempfile::tempdir().unwrap();
    let mut options = options(cache.path(), &server, Platform::LinuxAmd64, None);
    options.flavor = AssetFlavor::Full;

    let istioctl = fetch_istioctl(&options).await.unwrap();
    assert_executable_istioctl(&istioctl);
    assert!(
        istioctl.ends_with("istio-1.12.7/bin/istioctl"),
        "{}",
        istioctl.display()
    );
    assert!(
        istioctl
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("samples/README.md")
            .is_file()
    );
}

#[tokio::test]
async fn wrong_sha256_flag_fails_naming_both_sums_and_leaves_nothing_in_the_cache() {
    let server = AssetServer::start().await;
    let tarball = Tarball::istioctl_release("1.12.7").build();
    server.add(PINNED_ASSET, &tarball);
    let cache = tempfile::tempdir().unwrap();
    let wrong = "0".repeat(64);

    let error = fetch_istioctl(&options(cache.path(), &server, Platform::LinuxAmd64, Some(&wrong)))
        .await
        .unwrap_err();
    match fetch_error(&error) {
        FetchError::ChecksumMismatch {
            asset,
            expected,
            actual,
            source_of_expectation,
            partial,
        } => {
            assert_eq!(asset, PINNED_ASSET);
            assert_eq!(expected, &wrong);
            assert_eq!(actual, &sha256_hex(&tarball));
            assert_eq!(source_of_expectation, "from --sha256");
            assert_eq!(partial, &PartialFile::Deleted);
        }
        other => panic!("unexpected error: {other:?}"),
    }
    let rendered = format!("{error:#}");
    assert!(
        rendered.contains("checksum mismatch") && rendered.contains("help:"),
        "{rendered}"
    );
    let leftovers = download_leftovers(cache.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn the_pin_refuses_a_release_whose_published_sum_differs_before_downloading_it() {
    let server = AssetServer::start().await;
    // A fake linux-amd64 1.12.7 with a self-consistent .sha256: only the pinned table can tell.
    server.add_with_sha256(PINNED_ASSET, &Tarball::istioctl_release("1.12.7").build());
    let cache = tempfile::tempdir().unwrap();

    let error = fetch_istioctl(&options(cache.path(), &server, Platform::LinuxAmd64, None))
        .await
        .unwrap_err();
    let FetchError::ChecksumMismatch {
        expected,
        source_of_expectation,
        ..
    } = fetch_error(&error)
    else {
        panic!("{error:#}")
    };
    assert_eq!(
        expected,
        "8e094e06e48ad55f1e9fabb95332328af4099ed1255e0e46767505b38ef54c84"
    );
    assert_contains!(source_of_expectation, "pinned");
    assert!(server.requests_for(PINNED_ASSET).is_empty(), "{:?}", server.requests());
}

#[tokio::test]
async fn a_wrong_published_sha256_is_a_mismatch_naming_the_release_file() {
    let server = AssetServer::start().await;
    let tarball = Tarball::istioctl_release("1.12.7").build();
    server.add(UNPINNED_ASSET, &tarball);
    server.add(
        &format!("{UNPINNED_ASSET}.sha256"),
        format!("{}  {UNPINNED_ASSET}\n", "ab".repeat(32)).as_bytes(),
    );
    let cache = tempfile::tempdir().unwrap();

    let error = fetch_istioctl(&options(cache.path(), &server, Platform::OsxArm64, None))
        .await
        .unwrap_err();
    let FetchError::ChecksumMismatch {
        source_of_expectation,
        partial,
        ..
    } = fetch_error(&error)
    else {
        panic!("{error:#}")
    };
    assert_contains!(source_of_expectation, &format!("{UNPINNED_ASSET}.sha256"));
    assert_eq!(partial, &PartialFile::Deleted);
    assert!(!cache.path().join("istio/1.12.7").join(UNPINNED_ASSET).exists());
}

#[tokio::test]
async fn an_unpinned_asset_is_trusted_on_first_use_and_a_later_different_sum_is_refused() {
    let server = AssetServer::start().await;
    server.add_with_sha256(UNPINNED_ASSET, &Tarball::istioctl_release("1.12.7").build());
    let cache = tempfile::tempdir().unwrap();
    let options = options(cache.path(), &server, Platform::OsxArm64, None);

    let istioctl = fetch_istioctl(&options).await.unwrap();
    assert_executable_istioctl(&istioctl);
    let lock_file = cache.path().join("istio/1.12.7/trusted-sha256.txt");
    let recorded = std::fs::read_to_string(&lock_file).unwrap();
    assert_contains!(recorded, UNPINNED_ASSET);

    // The release changes under the same name (new sum, consistent .sha256) and the cached copies are gone.
    let changed = Tarball::istioctl_release("1.12.7")
        .file("NOTICE", b"changed\n", 0o644)
        .build();
    server.add_with_sha256(UNPINNED_ASSET, &changed);
    std::fs::remove_dir_all(istioctl.parent().unwrap()).unwrap();
    std::fs::remove_file(cache.path().join("istio/1.12.7").join(UNPINNED_ASSET)).unwrap();
    let error = fetch_istioctl(&options).await.unwrap_err();
    let FetchError::ChecksumMismatch {
        source_of_expectation, ..
    } = fetch_error(&error)
    else {
        panic!("{error:#}")
    };
    assert_contains!(source_of_expectation, "recorded on first use");
}

#[tokio::test]
async fn a_truncated_body_is_resumed_from_where_it_stopped() {
    let server = AssetServer::start().await;
    let tarball = Tarball::istioctl_release("1.12.7")
        .random_file("filler", 200_000, 7)
        .build();
    server.add(PINNED_ASSET, &tarball);
    server.misbehave(PINNED_ASSET, &[Misbehaviour::TruncateAfter(50_000)]);
    let cache = tempfile::tempdir().unwrap();
    let sum = sha256_hex(&tarball);

    let istioctl = fetch_istioctl(&options(cache.path(), &server, Platform::LinuxAmd64, Some(&sum)))
        .await
        .unwrap();
    assert_executable_istioctl(&istioctl);
    let ranges: Vec<Option<String>> = server
        .requests_for(PINNED_ASSET)
        .into_iter()
        .map(|request| request.range)
        .collect();
    assert_eq!(ranges, vec![None, Some("bytes=50000-".to_string())]);
    assert_eq!(server.body_bytes_sent(), tarball.len() as u64);
}

#[tokio::test]
async fn a_connection_reset_mid_body_resumes_and_fetches_only_the_rest() {
    let server = AssetServer::start().await;
    let tarball = Tarball::istioctl_release("1.12.7")
        .random_file("filler", 300_000, 11)
        .build();
    server.add(PINNED_ASSET, &tarball);
    server.misbehave(PINNED_ASSET, &[Misbehaviour::ResetAfter(100_000)]);
    let cache = tempfile::tempdir().unwrap();
    let sum = sha256_hex(&tarball);

    fetch_istioctl(&options(cache.path(), &server, Platform::LinuxAmd64, Some(&sum)))
        .await
        .unwrap();
    let requests = server.requests_for(PINNED_ASSET);
    assert_eq!(requests.len(), 2, "{requests:?}");
    // The second request starts at what arrived before the reset (never from zero, never past what was sent).
    let resumed_from: usize = requests[1]
        .range
        .as_deref()
        .and_then(|range| range.strip_prefix("bytes="))
        .and_then(|range| range.strip_suffix('-'))
        .and_then(|start| start.parse().ok())
        .unwrap_or_else(|| panic!("no resume range: {requests:?}"));
    assert!(resumed_from > 0 && resumed_from <= 100_000, "{resumed_from}");
}

#[tokio::test]
async fn a_server_that_ignores_range_is_downloaded_again_from_the_start() {
    let server = AssetServer::start().await;
    let tarball = Tarball::istioctl_release("1.12.7")
        .random_file("filler", 200_000, 3)
        .build();
    server.add(PINNED_ASSET, &tarball);
    server.misbehave(PINNED_ASSET, &[Misbehaviour::TruncateAfter(60_000)]);
    server.ignore_range();
    let cache = tempfile::tempdir().unwrap();
    let sum = sha256_hex(&tarball);

    let istioctl = fetch_istioctl(&options(cache.path(), &server, Platform::LinuxAmd64, Some(&sum)))
        .await
        .unwrap();
    assert_executable_istioctl(&istioctl);
    let requests = server.requests_for(PINNED_ASSET);
    assert_eq!(requests[1].range.as_deref(), Some("bytes=60000-"));
    assert_eq!(server.body_bytes_sent(), 60_000 + tarball.len() as u64);
}

#[tokio::test]
async fn a_404_is_final_and_names_the_url() {
    let server = AssetServer::start().await;
    let cache = tempfile::tempdir().unwrap();
    let sum = "1".repeat(64);

    let error = fetch_istioctl(&options(cache.path(), &server, Platform::LinuxAmd64, Some(&sum)))
        .await
        .unwrap_err();
    let FetchError::NotFound { url } = fetch_error(&error) else {
        panic!("{error:#}")
    };
    assert_eq!(url, &format!("{}{PINNED_ASSET}", server.base_url()));
    assert!(
        format!("{error:#}").contains(&format!("no such release asset: {url}")),
        "{error:#}"
    );
    assert_eq!(server.requests().len(), 1, "a 404 was retried: {:?}", server.requests());
}

#[tokio::test]
async fn a_500_then_200_is_retried() {
    let server = AssetServer::start().await;
    let tarball = Tarball::istioctl_release("1.12.7").build();
    server.add_with_sha256(UNPINNED_ASSET, &tarball);
    server.misbehave(UNPINNED_ASSET, &[Misbehaviour::Status(500)]);
    server.misbehave(&format!("{UNPINNED_ASSET}.sha256"), &[Misbehaviour::Status(503)]);
    let cache = tempfile::tempdir().unwrap();

    let istioctl = fetch_istioctl(&options(cache.path(), &server, Platform::OsxArm64, None))
        .await
        .unwrap();
    assert_executable_istioctl(&istioctl);
    assert_eq!(server.requests_for(UNPINNED_ASSET).len(), 2);
    assert_eq!(server.requests_for(&format!("{UNPINNED_ASSET}.sha256")).len(), 2);
}

#[tokio::test]
async fn a_truncated_sha256_file_is_fetched_again() {
    let server = AssetServer::start().await;
    server.add_with_sha256(UNPINNED_ASSET, &Tarball::istioctl_release("1.12.7").build());
    let sum_file = format!("{UNPINNED_ASSET}.sha256");
    server.misbehave(&sum_file, &[Misbehaviour::TruncateAfter(10)]);
    let cache = tempfile::tempdir().unwrap();

    fetch_istioctl(&options(cache.path(), &server, Platform::OsxArm64, None))
        .await
        .unwrap();
    let ranges: Vec<Option<String>> = server
        .requests_for(&sum_file)
        .into_iter()
        .map(|request| request.range)
        .collect();
    assert_eq!(ranges, vec![None, None]);
}

#[tokio::test]
async fn a_server_too_slow_times_out_after_bounded_retries_and_keeps_the_partial_file() {
    let server = AssetServer::start().await;
    let tarball = Tarball::istioctl_release("1.12.7")
        .random_file("filler", 100_000, 5)
        .build();
    server.add(PINNED_ASSET, &tarball);
    server.misbehave(PINNED_ASSET, &[Misbehaviour::StallAfter(1_000); 4]);
    let cache = tempfile::tempdir().unwrap();
    let sum = sha256_hex(&tarball);
    let mut options = options(cache.path(), &server, Platform::LinuxAmd64, Some(&sum));
    options.network.timeouts.idle = Duration::from_millis(300);

    let error = fetch_istioctl(&options).await.unwrap_err();
    let FetchError::GaveUp {
        attempts,
        last_error,
        partial,
        ..
    } = fetch_error(&error)
    else {
        panic!("{error:#}")
    };
    assert_eq!(*attempts, 4);
    assert!(
        last_error.contains("timed out") || last_error.contains("timeout"),
        "{last_error}"
    );
    let PartialFile::Kept(partial_path) = partial else {
        panic!("{partial:?}")
    };
    assert_eq!(std::fs::metadata(partial_path).unwrap().len(), 4_000);
    assert!(format!("{error:#}").contains("a rerun resumes it"), "{error:#}");

    // The next run (the server answering normally again) resumes the kept bytes and finishes.
    options.network.timeouts.idle = Duration::from_secs(10);
    fetch_istioctl(&options).await.unwrap();
    let last = server.requests_for(PINNED_ASSET).pop().unwrap();
    assert_eq!(last.range.as_deref(), Some("bytes=4000-"));
}

/// Fetches `tarball` (served as the pinned asset, with `--sha256`) and returns the error and the cache dir's parent.
async fn fetch_hostile(tarball: Tarball) -> (anyhow::Error, tempfile::TempDir) {
    let server = AssetServer::start().await;
    let bytes = tarball.build();
    server.add(PINNED_ASSET, &bytes);
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let error = fetch_istioctl(&options(
        &cache,
        &server,
        Platform::LinuxAmd64,
        Some(&sha256_hex(&bytes)),
    ))
    .await
    .unwrap_err();
    (error, root)
}

fn assert_unsafe_entry(error: &anyhow::Error, entry_expected: &str, root: &Path) {
    let FetchError::UnsafeEntry { entry, .. } = fetch_error(error) else {
        panic!("{error:#}")
    };
    assert_eq!(entry, entry_expected);
    // Nothing outside the cache, no istioctl anywhere, no staging directory left behind.
    let outside: Vec<PathBuf> = files_under(root)
        .into_iter()
        .filter(|path| !path.starts_with(root.join("cache")))
        .collect();
    assert!(outside.is_empty(), "{outside:?}");
    let unpacked: Vec<PathBuf> = files_under(&root.join("cache"))
        .into_iter()
        .filter(|path| {
            let name = path.to_string_lossy();
            name.ends_with("istioctl") || name.contains(".unpack-") || name.ends_with("/x") || name.contains("evil")
        })
        .collect();
    assert!(unpacked.is_empty(), "{unpacked:?}");
}

#[tokio::test]
async fn a_tarball_with_a_parent_dir_entry_is_refused() {
    let (error, root) = fetch_hostile(Tarball::istioctl_release("1.12.7").file("../x", b"escaped", 0o644)).await;
    assert_unsafe_entry(&error, "../x", root.path());
    assert!(format!("{error:#}").contains("refusing to unpack"), "{error:#}");
}

#[tokio::test]
async fn a_tarball_with_an_absolute_path_is_refused() {
    let target = tempfile::tempdir().unwrap();
    let absolute = target.path().join("evil");
    let (error, root) =
        fetch_hostile(Tarball::istioctl_release("1.12.7").file(absolute.to_str().unwrap(), b"escaped", 0o644)).await;
    assert_unsafe_entry(&error, absolute.to_str().unwrap(), root.path());
    assert!(!absolute.exists());
}

#[tokio::test]
async fn a_symlink_escaping_the_destination_is_refused() {
    let (error, root) = fetch_hostile(Tarball::istioctl_release("1.12.7").symlink("link", "../../../..").file(
        "link/evil",
        b"escaped",
        0o644,
    ))
    .await;
    assert_unsafe_entry(&error, "link", root.path());
}

#[tokio::test]
async fn a_hard_link_to_a_file_outside_and_a_device_file_are_refused() {
    let (error, root) = fetch_hostile(Tarball::istioctl_release("1.12.7").hard_link("evil", "../../etc/passwd")).await;
    assert_unsafe_entry(&error, "evil", root.path());
    let (error, _root) = fetch_hostile(Tarball::istioctl_release("1.12.7").fifo("fifo")).await;
    let FetchError::UnsafeEntry { reason, .. } = fetch_error(&error) else {
        panic!("{error:#}")
    };
    assert_contains!(reason, "device file or fifo");
}

#[tokio::test]
async fn an_istioctl_reporting_another_version_is_refused() {
    let server = AssetServer::start().await;
    let tarball = Tarball::istioctl_release("1.13.0").build();
    server.add(PINNED_ASSET, &tarball);
    let cache = tempfile::tempdir().unwrap();
    let options = options(cache.path(), &server, Platform::LinuxAmd64, Some(&sha256_hex(&tarball)));

    let error = fetch_istioctl(&options).await.unwrap_err();
    let FetchError::WrongVersion { expected, actual, .. } = fetch_error(&error) else {
        panic!("{error:#}")
    };
    assert_eq!((expected.as_str(), actual.as_str()), ("1.12.7", "1.13.0"));
    assert!(
        !cache
            .path()
            .join("istio/1.12.7/istioctl-1.12.7-linux-amd64/istioctl")
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_fetches_download_once() {
    let server = AssetServer::start().await;
    let tarball = Tarball::istioctl_release("1.12.7")
        .random_file("filler", 500_000, 9)
        .build();
    server.add_with_sha256(UNPINNED_ASSET, &tarball);
    let cache = tempfile::tempdir().unwrap();
    let options = options(cache.path(), &server, Platform::OsxArm64, None);

    let (first, second) = tokio::join!(fetch_istioctl(&options), fetch_istioctl(&options));
    assert_eq!(first.unwrap(), second.unwrap());
    assert_eq!(server.requests_for(UNPINNED_ASSET).len(), 1, "{:?}", server.requests());
}

#[tokio::test]
async fn a_local_archive_is_verified_like_a_download() {
    let tarball = Tarball::istioctl_release("1.12.7").build();
    let downloads = tempfile::tempdir().unwrap();
    let archive = downloads.path().join(UNPINNED_ASSET);
    std::fs::write(&archive, &tarball).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut options = FetchOptions::lab_default(cache.path().to_path_buf());
    options.platform = Some(Platform::OsxArm64);
    options.archive = Some(archive.clone());
    options.progress = ProgressBarMode::Hidden;

    // No pin, no .sha256 beside it, nothing recorded: nothing to verify against.
    let error = fetch_istioctl(&options).await.unwrap_err();
    assert!(
        matches!(fetch_error(&error), FetchError::NoExpectation { .. }),
        "{error:#}"
    );

    // A wrong .sha256 beside it is a mismatch, and the user's file stays where it is.
    let sidecar = downloads.path().join(format!("{UNPINNED_ASSET}.sha256"));
    std::fs::write(&sidecar, format!("{}  {UNPINNED_ASSET}\n", "cd".repeat(32))).unwrap();
    let error = fetch_istioctl(&options).await.unwrap_err();
    assert!(
        matches!(fetch_error(&error), FetchError::ChecksumMismatch { .. }),
        "{error:#}"
    );
    assert!(archive.exists());
    // The message names the file given, reads as a sentence, and says the file is left alone (before: the asset's
    // name and "nothing was downloaded").
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("checksum mismatch: \"{}\" has SHA-256 ", archive.display())),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "but the sum published in \"{}\" is {}",
            sidecar.display(),
            "cd".repeat(32)
        )),
        "{message}"
    );
    assert!(message.contains("so nothing was unpacked"), "{message}");

    // The right one verifies and unpacks.
    std::fs::write(&sidecar, format!("{}  {UNPINNED_ASSET}\n", sha256_hex(&tarball))).unwrap();
    assert_executable_istioctl(&fetch_istioctl(&options).await.unwrap());
}

#[tokio::test]
async fn a_file_url_base_works_offline() {
    let tarball = Tarball::istioctl_release("1.12.7").build();
    let mirror = tempfile::tempdir().unwrap();
    std::fs::write(mirror.path().join(UNPINNED_ASSET), &tarball).unwrap();
    std::fs::write(
        mirror.path().join(format!("{UNPINNED_ASSET}.sha256")),
        format!("{} {UNPINNED_ASSET}\n", sha256_hex(&tarball)),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut options = FetchOptions::lab_default(cache.path().to_path_buf());
    options.platform = Some(Platform::OsxArm64);
    options.base_url = Some(format!("file://{}", mirror.path().display()));
    options.progress = ProgressBarMode::Hidden;

    assert_executable_istioctl(&fetch_istioctl(&options).await.unwrap());
    options.version = "1.12.8".to_string();
    let error = fetch_istioctl(&options).await.unwrap_err();
    assert!(matches!(fetch_error(&error), FetchError::NotFound { .. }), "{error:#}");
}

#[tokio::test]
async fn a_version_that_is_not_a_release_tag_is_refused_before_touching_the_cache() {
    let server = AssetServer::start().await;
    let cache = tempfile::tempdir().unwrap();
    let mut options = options(cache.path(), &server, Platform::LinuxAmd64, None);
    options.version = "../../1.12.7".to_string();

    let error = fetch_istioctl(&options).await.unwrap_err();
    assert!(
        format!("{error:#}").contains("is not an Istio release version"),
        "{error:#}"
    );
    assert!(files_under(cache.path()).is_empty());
    assert!(server.requests().is_empty());
}

fn fetch_args(server: &AssetServer, sum: &str, cache: &Path) -> Vec<String> {
    [
        "istio",
        "fetch",
        "--platform",
        "linux-amd64",
        "--base-url",
        &server.base_url(),
        "--sha256",
        sum,
        "--cache-dir",
        cache.to_str().unwrap(),
    ]
    .map(str::to_string)
    .to_vec()
}

#[tokio::test]
async fn cli_fetch_prints_the_istioctl_path_last_and_a_repeat_sends_no_request() {
    let server = AssetServer::start().await;
    let tarball = Tarball::istioctl_release("1.12.7").build();
    server.add(PINNED_ASSET, &tarball);
    let cache = tempfile::tempdir().unwrap();
    let args = fetch_args(&server, &sha256_hex(&tarball), cache.path());

    let output = Cli::new(args.clone()).run_async().await;
    assert_eq!(output.code, 0, "{output:#?}");
    let last_line = output.stdout.lines().last().expect("a path on stdout");
    assert_executable_istioctl(Path::new(last_line));
    assert_contains!(output.stderr, "--sha256", "the override warns: ");

    let requests_before = server.requests().len();
    let repeat = Cli::new(args.clone()).run_async().await;
    assert_eq!(repeat.code, 0, "{repeat:#?}");
    assert_eq!(repeat.stdout.lines().last(), Some(last_line));
    assert_eq!(server.requests().len(), requests_before, "{:?}", server.requests());

    // `--format json`: the path, the asset and the sum it was verified against (before: the bare path).
    let json = Cli::new(["--format", "json"].into_iter().map(String::from).chain(args))
        .run_async()
        .await;
    assert_eq!(json.code, 0, "{json:#?}");
    let fetched = json.json();
    assert_eq!(fetched["path"].as_str(), Some(last_line));
    assert_eq!(fetched["origin"], "cache");
    assert_eq!(fetched["asset"], PINNED_ASSET);
    assert_eq!(fetched["sha256"].as_str(), Some(sha256_hex(&tarball).as_str()));
}

#[tokio::test]
async fn cli_fetch_with_a_wrong_sha256_fails_naming_the_checksum_and_leaves_nothing() {
    let server = AssetServer::start().await;
    server.add(PINNED_ASSET, &Tarball::istioctl_release("1.12.7").build());
    let cache = tempfile::tempdir().unwrap();

    let output = Cli::new(fetch_args(&server, &"e".repeat(64), cache.path()))
        .run_async()
        .await;
    assert_eq!(output.code, 2, "{output:#?}");
    assert_contains!(output.stderr, "checksum mismatch");
    assert_contains!(output.stderr, &"e".repeat(64));
    let leftovers = download_leftovers(cache.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let malformed = Cli::new(fetch_args(&server, "not-hex", cache.path())).run_async().await;
    assert_eq!(malformed.code, 2, "{malformed:#?}");
    assert_contains!(malformed.stderr, "--sha256");
}

#[tokio::test]
async fn cli_fetch_refuses_a_tarball_with_a_parent_dir_entry() {
    let server = AssetServer::start().await;
    let tarball = Tarball::istioctl_release("1.12.7")
        .file("../x", b"escaped", 0o644)
        .build();
    server.add(PINNED_ASSET, &tarball);
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");

    let output = Cli::new(fetch_args(&server, &sha256_hex(&tarball), &cache))
        .run_async()
        .await;
    assert_eq!(output.code, 2, "{output:#?}");
    assert_contains!(output.stderr, "refusing to unpack");
    assert_contains!(output.stderr, "\"../x\"");
    let outside: Vec<PathBuf> = files_under(root.path())
        .into_iter()
        .filter(|path| !path.starts_with(&cache))
        .collect();
    assert!(outside.is_empty(), "{outside:?}");
    assert!(!cache.join("istio/1.12.7/x").exists());
}

#[tokio::test]
async fn cli_fetch_from_a_stalled_mirror_ends_at_its_timeout_keeping_the_partial_download() {
    // Before, a stalled mirror held `istio fetch` for minutes (30 s of silence per attempt, six attempts).
    let server = AssetServer::start().await;
    let tarball = Tarball::istioctl_release("1.12.7")
        .random_file("filler", 100_000, 5)
        .build();
    server.add(PINNED_ASSET, &tarball);
    server.misbehave(PINNED_ASSET, &[Misbehaviour::StallAfter(1_000); 6]);
    let cache = tempfile::tempdir().unwrap();
    let mut args = fetch_args(&server, &sha256_hex(&tarball), cache.path());
    args.extend(["--timeout", "1s"].map(String::from));

    let output = Cli::new(args).run_async().await;
    assert_eq!(output.code, 1, "{output:#?}");
    assert_contains!(output.stderr, "fetching istioctl took longer than --timeout 1s");
    assert_contains!(
        output.stderr,
        "help: rerun `cargo xtask istio fetch` (it resumes a partial download)"
    );
    assert!(output.stdout.is_empty(), "{}", output.stdout);
    let partial: Vec<PathBuf> = files_under(cache.path())
        .into_iter()
        .filter(|path| path.to_string_lossy().ends_with(".partial"))
        .collect();
    assert_eq!(partial.len(), 1, "a rerun resumes from here: {partial:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_fetch_is_the_machine_not_ready_with_the_way_out() {
    // Nothing listens on the discard port: every request is refused, as offline. `--timeout` bounds the retries.
    let cache = tempfile::tempdir().unwrap();
    let output = Cli::new([
        "istio",
        "fetch",
        "--base-url",
        "http://127.0.0.1:9",
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "--timeout",
        "3s",
    ])
    .run_async()
    .await;
    assert_eq!(output.code, 1, "{}\n{}", output.stdout, output.stderr);
    assert_contains!(output.stderr, "warning: spurious network error (");
    assert_contains!(output.stderr, "help: ");
    assert_contains!(output.stderr, "--archive FILE");
    assert!(!output.stderr.contains("WARN"), "{}", output.stderr);
}
