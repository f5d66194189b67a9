//! The probe against hand-written HTTP/1.1 servers that misbehave in ways Envoy rarely does: closing idle
//! keep-alive connections, answering `Connection: close`, speaking plain HTTP to a TLS client.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// How a [`RawServer`] ends each connection.
#[derive(Clone, Copy)]
enum Closing {
    /// Answers one request as if keeping the connection open, then closes it when the test releases it (a server's
    /// idle timeout).
    SilentlyAfterOne,
    /// Answers every request with `Connection: close` and closes.
    Announced,
}

/// A loopback HTTP/1.1 server that answers every request with a `resnet50` prediction and counts connections.
struct RawServer {
    url: String,
    connections: Arc<AtomicUsize>,
    /// Connections the server has finished and closed.
    closed: Arc<tokio::sync::Notify>,
    /// Lets a [`Closing::SilentlyAfterOne`] connection close.
    release: Arc<tokio::sync::Notify>,
}

impl RawServer {
    async fn start(closing: Closing) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/models/m:predict", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(tokio::sync::Notify::new());
        let release = Arc::new(tokio::sync::Notify::new());
        let (counter, notify, released) = (Arc::clone(&connections), Arc::clone(&closed), Arc::clone(&release));
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                let notify = Arc::clone(&notify);
                let released = Arc::clone(&released);
                tokio::spawn(async move {
                    answer_one(stream, closing, &released).await;
                    notify.notify_one();
                });
            }
        });
        RawServer {
            url,
            connections,
            closed,
            release,
        }
    }
}

/// Reads one request (head and `Content-Length` body), answers it and closes the connection.
async fn answer_one(mut stream: TcpStream, closing: Closing, release: &tokio::sync::Notify) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let body_start = loop {
        let read = stream.read(&mut buffer).await.unwrap();
        if read == 0 {
            return;
        }
        received.extend_from_slice(&buffer[..read]);
        if !received[0].is_ascii_uppercase() {
            // Not HTTP (a TLS ClientHello starts with 0x16): answered as HTTP servers do, with a 400 and a close.
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
            let _ = stream.shutdown().await;
            return;
        }
        if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&received[..body_start]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map(|value| value.trim().parse().unwrap())
        .unwrap_or(0);
    while received.len() < body_start + length {
        let read = stream.read(&mut buffer).await.unwrap();
        assert!(read > 0, "the request body ended early");
        received.extend_from_slice(&buffer[..read]);
    }
    let body = r#"{"predictions": [[1.0]]}"#;
    let connection = match closing {
        Closing::SilentlyAfterOne => "",
        Closing::Announced => "connection: close\r\n",
    };
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-model-version: resnet50\r\n{connection}content-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await.unwrap();
    if let Closing::SilentlyAfterOne = closing {
        release.notified().await;
    }
    stream.shutdown().await.unwrap();
}

fn config(url: &str) -> ProbeConfig {
    ProbeConfig {
        url: url.to_string(),
        kind: crate::report::RequestKind::Prediction,
        body: Bytes::from_static(br#"{"instances": [[[[1, 2, 3]]]]}"#),
        headers: BTreeMap::from([("user-group".to_string(), "canary".to_string())]),
        concurrency: 2,
        request_timeout: Duration::from_secs(5),
        references: References::default(),
    }
}

fn answered(observation: &Observation) -> bool {
    observation.outcome
        == Outcome::Answered {
            version: "resnet50".to_string(),
        }
}

#[tokio::test]
async fn a_keep_alive_connection_the_server_closed_while_idle_is_replaced_not_failed() {
    let server = RawServer::start(Closing::SilentlyAfterOne).await;
    let probe = Probe::new(config(&server.url)).unwrap();
    let first = probe.send_one().await;
    assert!(answered(&first), "{first:?}");
    // The server closes the connection the probe keeps for its next request.
    server.release.notify_one();
    server.closed.notified().await;
    let second = probe.send_one().await;
    assert!(answered(&second), "{second:?}");
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        2,
        "the second request went on a new connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_answers_cost_a_connection_each_and_no_failure() {
    let server = RawServer::start(Closing::Announced).await;
    let probe = Probe::new(config(&server.url)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut failures = Vec::new();
    let summary = probe
        .run(40, deadline, |observation| {
            if !answered(&observation) {
                failures.push(observation);
            }
            Flow::Continue
        })
        .await;
    assert_eq!(
        (summary.end, summary.launched, summary.observed),
        (RunEnd::Exhausted, 40, 40)
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert!(server.connections.load(Ordering::SeqCst) >= 40);
}

#[tokio::test]
async fn a_tls_client_meeting_a_plain_http_server_is_a_connection_failure() {
    let server = RawServer::start(Closing::Announced).await;
    let probe = Probe::new(config(&server.url.replace("http://", "https://"))).unwrap();
    let observation = probe.send_one().await;
    assert_eq!(
        (observation.status, observation.outcome),
        (
            None,
            Outcome::Failed {
                version: None,
                kind: ErrorKind::Connection
            }
        )
    );
}

#[tokio::test]
async fn nothing_listening_is_a_connection_failure_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let observation = Probe::new(config(&url)).unwrap().send_one().await;
    assert_eq!(
        observation.outcome,
        Outcome::Failed {
            version: None,
            kind: ErrorKind::Connection
        }
    );
}

#[test]
fn urls_and_headers_http_does_not_allow_are_refused_up_front() {
    let error = |url: &str, headers: &[(&str, &str)]| {
        let mut config = config(url);
        config.headers = headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        format!("{:#}", Probe::new(config).unwrap_err())
    };
    assert!(error("ftp://127.0.0.1/", &[]).contains("not http or https"));
    assert!(error("not a url", &[]).contains("invalid URL"));
    assert!(error("http://127.0.0.1/", &[("bad name", "x")]).contains("header name \"bad name\""));
    assert!(error("http://127.0.0.1/", &[("x", "line\nbreak")]).contains("value of header \"x\""));
}

#[test]
fn the_host_header_carries_the_port_only_when_the_url_does() {
    let host_of = |url: &str| {
        let target = connection::Target::new(&config(url)).unwrap();
        target.headers_for_tests()
    };
    assert_eq!(
        host_of("http://127.0.0.1:8080/p"),
        ("127.0.0.1:8080".to_string(), "/p".to_string())
    );
    assert_eq!(
        host_of("http://example.test/p?x=1"),
        ("example.test".to_string(), "/p?x=1".to_string())
    );
    assert_eq!(host_of("http://[::1]:81/"), ("[::1]:81".to_string(), "/".to_string()));
}
