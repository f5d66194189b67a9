//! Exit codes and errors as the README promises them, through the CLI as a process: a cluster that cannot be reached
//! or a kubeconfig that is missing is "not in the required state" (exit 1) with a `help:` line, as kubectl's "The
//! connection to the server … was refused — did you specify the right host or port?" tells the user where to look.

use canary_lab_tests::assert_contains;
use canary_lab_tests::cli::Cli;
use canary_lab_tests::fake_kube::write_kubeconfig;

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_missing_kubeconfig_is_not_ready_with_the_fix() {
    // `Cli::new` points KUBECONFIG at a file that does not exist. Before, this was exit 2, "usage or internal error".
    for command in [vec!["lab", "status"], vec!["lab", "down"]] {
        let output = Cli::new(&command).run_async().await;
        assert_eq!(output.code, 1, "{command:?}: {output:#?}");
        assert_contains!(
            output.stderr,
            "error: cannot read a kubeconfig (KUBECONFIG or ~/.kube/config)"
        );
        assert_contains!(
            output.stderr,
            "help: start the cluster with `minikube start -p minikube`"
        );
    }
}

#[tokio::test]
async fn an_unreachable_api_server_is_not_ready_and_says_where_to_look() {
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = home.path().join("kubeconfig");
    let server = format!("http://127.0.0.1:{}", closed_port());
    write_kubeconfig(&kubeconfig, "lab", &server);
    for command in [
        vec!["lab", "status", "--context", "lab"],
        vec!["lab", "stage", "stable", "--no-assert", "--context", "lab"],
        vec!["lab", "down", "--context", "lab"],
    ] {
        let output = Cli::new(&command).kubeconfig(&kubeconfig).run_async().await;
        assert_eq!(output.code, 1, "{command:?}: {output:#?}");
        assert_contains!(
            output.stderr,
            &format!("error: the connection to the Kubernetes API server {server}/ (context \"lab\") was refused")
        );
        assert_contains!(
            output.stderr,
            "help: is the cluster running? `minikube status -p minikube` says"
        );
        assert_eq!(output.stderr.matches("help:").count(), 1, "{}", output.stderr);
        // Before, kube's own "<timestamp> ERROR failed with error client error (Connect)" came first, and the
        // cause repeated "client error (Connect)".
        assert!(!has_timestamp(&output.stderr), "{}", output.stderr);
        assert_eq!(
            output.stderr.lines().count(),
            2,
            "one error line and one help line: {}",
            output.stderr
        );
    }
}

/// Whether some line starts with an RFC 3339 timestamp, as tracing's default format prints.
fn has_timestamp(text: &str) -> bool {
    text.lines().any(|line| {
        let bytes = line.as_bytes();
        bytes.len() > 20 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-' && bytes[10] == b'T'
    })
}

#[tokio::test]
async fn an_unknown_context_is_not_ready_and_lists_the_known_ones() {
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = home.path().join("kubeconfig");
    write_kubeconfig(&kubeconfig, "lab", "http://127.0.0.1:1");
    let output = Cli::new(["lab", "status", "--context", "other"])
        .kubeconfig(&kubeconfig)
        .run_async()
        .await;
    assert_eq!(output.code, 1, "{output:#?}");
    assert_contains!(output.stderr, "kubeconfig has no context \"other\" (it has: lab)");
    assert_contains!(output.stderr, "help: pass --context NAME");
}
