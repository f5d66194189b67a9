//! Flag values are checked when the command line is parsed (exit 2, with the reason), never turned into a false
//! verdict later: before, `--timeout-ms 0` reported the stage as failed, a header with a space was a "builder error"
//! at send time, `--top 0` printed an empty table and `--profile ../../escape` made a directory outside the state dir.

use canary_lab_tests::assert_contains;
use canary_lab_tests::cli::Cli;

#[tokio::test]
async fn bad_values_are_usage_errors_with_the_reason() {
    let check = |extra: &[&str]| {
        let mut args = vec!["lab", "check", "stable", "--url", "http://127.0.0.1:1"];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (check(&["--request-timeout", "0s"]), "must be more than zero"),
        (check(&["--settle-timeout", "0s"]), "must be more than zero"),
        (check(&["--deadline", "0s"]), "must be more than zero"),
        (check(&["--request-timeout", "1000"]), "write the unit"),
        (
            [
                "lab",
                "predict",
                "--url",
                "http://127.0.0.1:1",
                "--header",
                "bad header=x",
            ]
            .map(String::from)
            .to_vec(),
            "is not an HTTP header name",
        ),
        (
            ["lab", "predict", "--url", "http://127.0.0.1:1", "--top", "0"]
                .map(String::from)
                .to_vec(),
            "--top",
        ),
        (
            ["lab", "predict", "--url", "http://127.0.0.1:1", "--count", "0"]
                .map(String::from)
                .to_vec(),
            "--count",
        ),
        (
            ["lab", "up", "--rollout-timeout", "10"].map(String::from).to_vec(),
            "write the unit",
        ),
        (
            ["lab", "down", "--timeout", "0s"].map(String::from).to_vec(),
            "must be more than zero",
        ),
    ];
    for (args, reason) in cases {
        let output = Cli::new(&args).run_async().await;
        assert_eq!(output.code, 2, "{args:?}: {output:#?}");
        assert_contains!(output.stderr, reason);
    }
}

#[test]
fn a_profile_name_minikube_refuses_creates_nothing() {
    for profile in ["", "x", "../../escape", "a/b"] {
        let cli = Cli::new(["lab", "status", "--profile", profile]);
        let output = cli.run();
        assert_eq!(output.code, 2, "{profile:?}: {output:#?}");
        assert_contains!(output.stderr, "is not a minikube profile name");
        // The state dir is `$XDG_STATE_HOME/canary-lab` = `HOME/state/canary-lab`: `../../escape` would be HOME/escape.
        assert!(!cli.home().join("escape").exists(), "a directory outside the state dir");
    }
}

#[test]
fn the_gateway_wait_is_bounded_by_a_flag_with_the_librarys_default() {
    // Every phase has a bound the user can set: the wait for the gateway to serve an applied stage too.
    use clap::Parser;
    use xtask::flags::{LabCommand, TopCommand, Xtask};
    let parse = |args: &[&str]| Xtask::try_parse_from(std::iter::once("cargo xtask").chain(args.iter().copied()));
    let TopCommand::Lab(LabCommand::Up(up)) = parse(&["lab", "up"]).unwrap().command else {
        panic!("not lab up")
    };
    assert_eq!(
        *up.serve.serve_timeout,
        lab::istio::gateway_config::DEFAULT_SERVE_TIMEOUT
    );
    let TopCommand::Lab(LabCommand::Stage(stage)) = parse(&["lab", "stage", "focused", "--serve-timeout", "90s"])
        .unwrap()
        .command
    else {
        panic!("not lab stage")
    };
    assert_eq!(*stage.serve.serve_timeout, std::time::Duration::from_secs(90));
    assert!(parse(&["lab", "stage", "focused", "--serve-timeout", "0s"]).is_err());
}
