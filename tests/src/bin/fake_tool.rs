//! A stand-in for `minikube`, `istioctl` and `sudo`, scripted per test.
//!
//! The tool name is the file name it was started as (tests put symlinks named `minikube`, `istioctl`, `sudo`
//! pointing here first on `PATH`). It reads `$FAKE_TOOLS_DIR/<tool>.json`, appends its argv as one JSON line to
//! `$FAKE_TOOLS_DIR/<tool>.calls.jsonl`, and answers with the first rule whose `args` are a prefix of its own.
//! The script format is [`canary_lab_tests::fake_tools::Script`].

use std::io::Write;
use std::process::ExitCode;

use canary_lab_tests::fake_tools::{Rule, Script};

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

    let script_path = dir.join(format!("{tool}.json"));
    let script: Script = match std::fs::read_to_string(&script_path) {
        Ok(text) => serde_json::from_str(&text).expect("fake tool script is valid JSON"),
        Err(_) => Script::default(),
    };
    let rule = script.rules.iter().find(|rule| rule.matches(&args)).cloned();
    let rule = rule.unwrap_or_else(|| Rule {
        args: Vec::new(),
        stdout: String::new(),
        stderr: format!("fake {tool}: no rule for {args:?}\n"),
        code: 99,
        sleep_ms: 0,
        http_get: None,
    });
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
