//! What `--help` and bad input look like to a user at the terminal: the usage line names `cargo xtask`, the options
//! every command shares sit under their own heading (so `lab check` does not seem to take cluster flags it ignores),
//! and an image that is cut short is refused, not sent with grey rows.

use canary_lab_tests::assert_contains;
use canary_lab_tests::cli::Cli;

#[tokio::test]
async fn help_names_cargo_xtask_and_sets_the_global_options_apart() {
    let output = Cli::new(["lab", "check", "--help"]).run_async().await;
    assert_eq!(output.code, 0, "{output:#?}");
    assert_contains!(output.stdout, "Usage: cargo xtask lab check [OPTIONS] <STAGE>");
    let (own, global) = output
        .stdout
        .split_once("\nGlobal options:\n")
        .unwrap_or_else(|| panic!("no `Global options:` heading: {}", output.stdout));
    for flag in ["--url", "--concurrency", "--payload"] {
        assert_contains!(own, flag);
    }
    for flag in ["--profile", "--context", "--state-dir", "--format"] {
        assert!(
            !own.contains(flag),
            "{flag} is listed among `lab check`'s own options:\n{own}"
        );
        assert_contains!(global, flag);
    }
}

#[tokio::test]
async fn a_truncated_image_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let photo =
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/images/grace_hopper.jpg"))
            .unwrap();
    let truncated = dir.path().join("cut.jpg");
    std::fs::write(&truncated, &photo[..2000]).unwrap();
    // A fixed payload kind builds the body before any request, so no server is needed.
    let output = Cli::new([
        "lab",
        "check",
        "stable",
        "--url",
        "http://127.0.0.1:1",
        "--payload",
        "keras",
        "--image",
        truncated.to_str().unwrap(),
    ])
    .run_async()
    .await;
    assert_ne!(output.code, 0, "{output:#?}");
    assert_contains!(output.stderr, "truncated");
}

#[tokio::test]
async fn a_reader_that_hangs_up_ends_the_output_quietly() {
    // `cargo xtask lab render | head -n 1`: before, the CLI panicked ("failed printing to stdout: Broken pipe") with
    // a backtrace on stderr. The reading end is closed before the CLI starts, so its first write meets the hang-up.
    use std::io::Read;
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = Cli::new(["lab", "render"]).spawn_with_stdout(writer);
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Ended by SIGPIPE, as `cat` or `kubectl` would be: never a failure of its own.
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(13),
        "{status:?}: {stderr}"
    );
}
