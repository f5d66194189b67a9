//! A release-asset server on loopback that misbehaves on demand: wrong status, truncated or reset bodies,
//! stalls, ignored `Range` requests. It records every request and counts the body bytes it sent.
//!
//! It speaks just enough HTTP/1.1 by hand (one request per connection, `Connection: close`) to control exactly
//! when bytes stop, which a framework would hide.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One way to answer a single request for a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Answer with this status and a short text body.
    Status(u16),
    /// Declare the full length, send only this many body bytes, then close the connection cleanly.
    TruncateAfter(usize),
    /// Send this many body bytes, then reset the connection (RST).
    ResetAfter(usize),
    /// Send the headers and this many body bytes, then stay silent (until the client gives up).
    StallAfter(usize),
}

/// One request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedRequest {
    /// The file name asked for (the path without its leading `/`).
    pub name: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    files: HashMap<String, Vec<u8>>,
    plans: HashMap<String, VecDeque<Misbehaviour>>,
    ignore_range: bool,
    requests: Vec<ServedRequest>,
    body_bytes_sent: u64,
}

/// A running asset server; it stops when dropped.
pub struct AssetServer {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl AssetServer {
    /// Starts a server with no files on 127.0.0.1. Must be called inside a tokio runtime.
    pub async fn start() -> AssetServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the asset server");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let for_loop = shared.clone();
        let accept_loop = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_connection(stream, for_loop.clone()));
            }
        });
        AssetServer {
            addr,
            shared,
            accept_loop,
        }
    }

    /// The base URL (`http://127.0.0.1:PORT/`): the folder that holds the files.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Serves `bytes` as `name`.
    pub fn add(&self, name: &str, bytes: &[u8]) {
        self.lock().files.insert(name.to_string(), bytes.to_vec());
    }

    /// Serves `bytes` as `name` and their true sum as `name.sha256` (`<hex> <name>`, as Istio publishes it).
    pub fn add_with_sha256(&self, name: &str, bytes: &[u8]) {
        self.add(name, bytes);
        self.add(
            &format!("{name}.sha256"),
            format!("{} {name}\n", sha256_hex(bytes)).as_bytes(),
        );
    }

    /// The next requests for `name` are answered with these misbehaviours, one each, then normally.
    pub fn misbehave(&self, name: &str, plan: &[Misbehaviour]) {
        self.lock()
            .plans
            .entry(name.to_string())
            .or_default()
            .extend(plan.iter().copied());
    }

    /// From now on, `Range` headers are ignored: every answer is a `200` with the whole file.
    pub fn ignore_range(&self) {
        self.lock().ignore_range = true;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<ServedRequest> {
        self.lock().requests.clone()
    }

    /// The requests so far for `name`.
    pub fn requests_for(&self, name: &str) -> Vec<ServedRequest> {
        self.requests()
            .into_iter()
            .filter(|request| request.name == name)
            .collect()
    }

    /// How many body bytes the server has sent, over all requests.
    pub fn body_bytes_sent(&self) -> u64 {
        self.lock().body_bytes_sent
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().expect("asset server state")
    }
}

impl Drop for AssetServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

/// The lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Reads one request head, answers it according to the plan, and closes the connection.
async fn serve_connection(mut stream: TcpStream, shared: Arc<Mutex<Shared>>) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    // The request line is `METHOD /NAME HTTP/1.1`: the name is its second word.
    let name = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_string();
    let range = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(header, _)| header.eq_ignore_ascii_case("range"))
        .map(|(_, value)| value.trim().to_string());

    let (file, misbehaviour, ignore_range) = {
        let mut state = shared.lock().expect("asset server state");
        state.requests.push(ServedRequest {
            name: name.clone(),
            range: range.clone(),
        });
        let misbehaviour = state.plans.get_mut(&name).and_then(VecDeque::pop_front);
        (state.files.get(&name).cloned(), misbehaviour, state.ignore_range)
    };

    let status_only = |code: u16, reason: &str| {
        format!(
            "HTTP/1.1 {code} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reason}",
            reason.len()
        )
    };
    if let Some(Misbehaviour::Status(code)) = misbehaviour {
        let _ = stream.write_all(status_only(code, "Scripted Failure").as_bytes()).await;
        return;
    }
    let Some(file) = file else {
        let _ = stream.write_all(status_only(404, "Not Found").as_bytes()).await;
        return;
    };
    let requested_start = range
        .as_deref()
        .and_then(|value| value.strip_prefix("bytes="))
        .and_then(|value| value.strip_suffix('-'))
        .and_then(|start| start.parse::<usize>().ok());
    let (status_line, start, extra_header) = match (requested_start, ignore_range) {
        (Some(start), false) if start >= file.len() => {
            let _ = stream
                .write_all(status_only(416, "Range Not Satisfiable").as_bytes())
                .await;
            return;
        }
        (Some(start), false) => (
            "206 Partial Content",
            start,
            format!("Content-Range: bytes {start}-{}/{}\r\n", file.len() - 1, file.len()),
        ),
        _ => ("200 OK", 0, "Accept-Ranges: bytes\r\n".to_string()),
    };
    let body = &file[start..];
    let header = format!(
        "HTTP/1.1 {status_line}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n{extra_header}Connection: close\r\n\r\n",
        body.len()
    );
    if stream.write_all(header.as_bytes()).await.is_err() {
        return;
    }
    let send_count = match misbehaviour {
        Some(
            Misbehaviour::TruncateAfter(count) | Misbehaviour::ResetAfter(count) | Misbehaviour::StallAfter(count),
        ) => count.min(body.len()),
        _ => body.len(),
    };
    for chunk in body[..send_count].chunks(64 * 1024) {
        if stream.write_all(chunk).await.is_err() {
            return;
        }
        shared.lock().expect("asset server state").body_bytes_sent += chunk.len() as u64;
    }
    let _ = stream.flush().await;
    match misbehaviour {
        Some(Misbehaviour::ResetAfter(_)) => {
            // SO_LINGER 0: closing sends RST instead of FIN.
            let _ = stream.set_zero_linger();
        }
        Some(Misbehaviour::StallAfter(_)) => {
            // Silence: the client's idle timeout must notice. Held long past any test's timeout.
            tokio::time::sleep(Duration::from_secs(120)).await;
        }
        _ => {
            let _ = stream.shutdown().await;
        }
    }
}
