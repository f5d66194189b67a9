//! A stand-in for `minikube`, `istioctl` and `sudo`, scripted per test.
//!
//! The tool name is the file name it was started as (tests put symlinks named `minikube`, `istioctl`, `sudo`
//! pointing here first on `PATH`). It reads `$FAKE_TOOLS_DIR/<tool>.json`, appends its argv as one JSON line to
//! `$FAKE_TOOLS_DIR/<tool>.calls.jsonl`, and answers with the first rule whose `args` are a prefix of its own.
//! The script format is [`canary_lab_tests::fake_tools::Script`]. A rule with `until_signalled` runs like
//! `minikube tunnel`: until an interrupt or a SIGTERM, optionally forwarding a local port meanwhile.

use std::io::Write;
use std::process::ExitCode;

use canary_lab_tests::fake_tools::{Rule, Script, SignalRecord};

fn main() -> ExitCode {
    let mut argv = std::env::args();
    let invoked_as = argv.next().unwrap_or_default();
    let args: Vec<String> = argv.collect();
    let tool = std::path::Path::new(&invoked_as)
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(dir) = std::env::var_os("FAKE_TOOLS_DIR") else {
        eprintln!("fake-tool: FAKE_TOOLS_DIR is not set");
        return ExitCode::from(97);
    };
    let dir = std::path::PathBuf::from(dir);

    // Record the call first, so a test sees it even when the script is broken.
    let record = serde_json::to_string(&args).expect("argv serialises");
    let calls = dir.join(format!("{tool}.calls.jsonl"));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&calls)
        .expect("open calls log");
    writeln!(file, "{record}").expect("write calls log");

    // A modelled node (`$FAKE_TOOLS_DIR/node/`) answers minikube's image, cp and ssh commands itself.
    let node_dir = dir.join("node");
    if tool == "minikube" && node_dir.is_dir() {
        let without_profile = strip_profile(&args);
        if let Some(answer) = canary_lab_tests::fake_node::FakeNode::at(&node_dir).answer(&without_profile) {
            print!("{}", answer.stdout);
            eprint!("{}", answer.stderr);
            let _ = std::io::stdout().flush();
            return ExitCode::from(answer.code);
        }
    }

    let script_path = dir.join(format!("{tool}.json"));
    let script: Script = match std::fs::read_to_string(&script_path) {
        Ok(text) => serde_json::from_str(&text).expect("fake tool script is valid JSON"),
        Err(_) => Script::default(),
    };
    let rule = script.rules.iter().find(|rule| rule.matches(&args)).cloned();
    let rule = rule.unwrap_or_else(|| Rule {
        stderr: format!("fake {tool}: no rule for {args:?}\n"),
        code: 99,
        ..Rule::default()
    });
    if rule.until_signalled {
        return run_until_signalled(&rule, &dir.join(format!("{tool}.signals.jsonl")));
    }
    if let Some(url) = &rule.http_get {
        http_get(url);
    }
    if rule.sleep_ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(rule.sleep_ms));
    }
    print!("{}", rule.stdout);
    eprint!("{}", rule.stderr);
    let _ = std::io::stdout().flush();
    ExitCode::from(u8::try_from(rule.code).unwrap_or(1))
}

/// minikube's argv without `-p P` / `--profile P` / `--profile=P`.
fn strip_profile(args: &[String]) -> Vec<String> {
    let mut kept = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "-p" | "--profile" => {
                rest.next();
            }
            other if other.starts_with("--profile=") => {}
            _ => kept.push(arg.clone()),
        }
    }
    kept
}

/// A minimal HTTP/1.0 GET to a loopback URL (`http://127.0.0.1:PORT/path`); the answer is ignored.
fn http_get(url: &str) {
    use std::io::Read;
    let rest = url.strip_prefix("http://").expect("http:// URL");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = std::net::TcpStream::connect(host).expect("connect to the fake API");
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").expect("send request");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
}

/// Runs as a long-lived tool (`minikube tunnel`): forwards `rule.forward` if any, sends `rule.http_get`, prints
/// `rule.stdout`, then waits for a signal. An interrupt cleans up (taking `interrupt_cleanup_ms`) and exits 0; a
/// SIGTERM, also during that cleanup, exits at once without cleaning up, with 143 as a shell reports a process
/// killed by SIGTERM (Go's default for a signal it was not asked to handle is to die of it).
fn run_until_signalled(rule: &Rule, signals_log: &std::path::Path) -> ExitCode {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let mut interrupts = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut terminations = signal(SignalKind::terminate()).expect("SIGTERM handler");
        if let Some(forward) = &rule.forward {
            let listener = tokio::net::TcpListener::bind(&forward.listen)
                .await
                .unwrap_or_else(|error| panic!("fake tunnel: listening on {}: {error}", forward.listen));
            let target = forward.target.clone();
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let target = target.clone();
                    tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
            });
        }
        if let Some(url) = &rule.http_get {
            let url = url.clone();
            tokio::task::spawn_blocking(move || http_get(&url))
                .await
                .expect("http_get");
        }
        print!("{}", rule.stdout);
        eprint!("{}", rule.stderr);
        let _ = std::io::stdout().flush();
        // A bound on its life, so a test that fails before stopping it leaves no process behind for long.
        let lifetime = match rule.sleep_ms {
            0 => std::time::Duration::from_secs(300),
            ms => std::time::Duration::from_millis(ms),
        };
        tokio::select! {
            _ = interrupts.recv() => {
                let cleanup = tokio::time::sleep(std::time::Duration::from_millis(rule.interrupt_cleanup_ms));
                tokio::select! {
                    () = cleanup => {
                        record_signal(signals_log, "SIGINT", true);
                        ExitCode::SUCCESS
                    }
                    _ = terminations.recv() => {
                        record_signal(signals_log, "SIGINT", false);
                        record_signal(signals_log, "SIGTERM", false);
                        ExitCode::from(143)
                    }
                }
            }
            _ = terminations.recv() => {
                record_signal(signals_log, "SIGTERM", false);
                ExitCode::from(143)
            }
            () = tokio::time::sleep(lifetime) => ExitCode::SUCCESS,
        }
    })
}

/// Appends one [`SignalRecord`] line.
fn record_signal(path: &std::path::Path, signal: &str, cleaned_up: bool) {
    let record = SignalRecord {
        signal: signal.to_string(),
        cleaned_up,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open signals log");
    writeln!(file, "{}", serde_json::to_string(&record).expect("record serialises")).expect("write signals log");
}
