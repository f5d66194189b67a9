//! One keep-alive HTTP/1.1 connection of the probe (over TCP, or TLS for an `https` URL) and one request on it.
//!
//! The probe drives hyper's connection API itself, one connection per worker, the way `wrk` does: no pool to check
//! out from, no task per request, and the connection's I/O is polled in the worker's own task together with the
//! request, so a request costs no wake-up of another task. A reused connection found closed before the request
//! went out (the server closed it while it was idle) is replaced and the request sent once more on a fresh one;
//! anything else is the request's failure. The replay cannot make the server see a request twice: "before the
//! request went out" is hyper's canceled error, which it gives only for a request it never started writing
//! (hyper 1.x `src/proto/h1/dispatch.rs`, "the message was never even started"; `src/client/dispatch.rs`, a queued
//! envelope dropped with its connection), or a sender that was not ready. Timeouts are the caller's: dropping a request mid-way drops its
//! connection with it, so no half-read response is ever reused.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use futures::future::{Either, select};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::ProbeConfig;
use crate::definition::routing::VERSION_HEADER;
use crate::report::RequestKind;

// Beside the [`Target`] parsed from it (in this child module, which sees the probe's fields, as `mod.rs` is at its
// size limit).
impl super::Probe {
    /// What it sends, where and how (a simulated probe's URL is `simulated:`).
    pub fn config(&self) -> &ProbeConfig {
        &self.shared.config
    }
}

/// Where the probe's requests go and what each carries, parsed once per probe.
pub(super) struct Target {
    /// The host to connect to (an IPv6 address without brackets).
    host: String,
    /// The port to connect to (the scheme's default when the URL names none).
    port: u16,
    /// For `https`: the TLS connector and the name the certificate must carry.
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    /// The request target in origin form (path and query).
    path: Uri,
    /// `Host`, `Content-Type`, `User-Agent` and the caller's headers.
    headers: HeaderMap,
    /// `POST` for a prediction, `GET` for a status request.
    method: Method,
    /// The shared request body (empty for a status request).
    body: Bytes,
    /// Whether there are references to fingerprint a response without a version header (else its body is not kept).
    fingerprinting: bool,
}

impl Target {
    /// The target of `config`'s URL (http or https), sending its body and headers; fails on a URL or header HTTP
    /// does not allow.
    pub(super) fn new(config: &ProbeConfig) -> anyhow::Result<Target> {
        let url = config.url.as_str();
        let parsed = reqwest::Url::parse(url).with_context(|| format!("invalid URL \"{url}\""))?;
        let Some(host_in_url) = parsed.host_str() else {
            anyhow::bail!("URL \"{url}\" names no host");
        };
        // An IPv6 address is bracketed in a URL and bare in a socket address.
        let host = host_in_url.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = parsed
            .port_or_known_default()
            .with_context(|| format!("URL \"{url}\" names no port and its scheme has no default"))?;
        let tls = match parsed.scheme() {
            "http" => None,
            "https" => Some(tls_connector(&host)?),
            other => anyhow::bail!("URL \"{url}\" is {other}, not http or https"),
        };
        let path_and_query = match parsed.query() {
            Some(query) => format!("{}?{query}", parsed.path()),
            None => parsed.path().to_string(),
        };
        let path: Uri = path_and_query
            .parse()
            .with_context(|| format!("request target \"{path_and_query}\" of \"{url}\""))?;
        let authority = match parsed.port() {
            Some(port) => format!("{host_in_url}:{port}"),
            None => host_in_url.to_string(),
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(&authority)?);
        let (method, body) = match config.kind {
            RequestKind::Prediction => {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                (Method::POST, config.body.clone())
            }
            RequestKind::Status => (Method::GET, Bytes::new()),
        };
        headers.insert(header::USER_AGENT, HeaderValue::from_static(crate::http::USER_AGENT));
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).with_context(|| format!("header name \"{name}\""))?;
            let value = HeaderValue::from_str(value).with_context(|| format!("value of header \"{name}\""))?;
            headers.insert(name, value);
        }
        Ok(Target {
            host,
            port,
            tls,
            path,
            headers,
            method,
            body,
            // A status answer has no scores: only its version header can attribute it.
            fingerprinting: config.kind == RequestKind::Prediction && !config.references.is_empty(),
        })
    }

    /// The `Host` header and the request target, for the tests.
    #[cfg(test)]
    pub(super) fn headers_for_tests(&self) -> (String, String) {
        let host = self.headers[header::HOST].to_str().unwrap_or_default().to_string();
        (host, self.path.to_string())
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.path.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// A TLS connector that trusts what reqwest trusts (the platform's verifier) and offers HTTP/1.1 only.
fn tls_connector(host: &str) -> anyhow::Result<(tokio_rustls::TlsConnector, ServerName<'static>)> {
    use rustls_platform_verifier::BuilderVerifierExt;
    crate::http::install_crypto_provider();
    let mut config = rustls::ClientConfig::builder()
        .with_platform_verifier()
        .context("loading the platform's TLS roots")?
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(host.to_string()).with_context(|| format!("\"{host}\" as a TLS server name"))?;
    Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
}

/// The I/O half of a connection: reads and writes the socket while it is polled.
type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// One open HTTP/1.1 connection.
pub(super) struct Connection {
    sender: SendRequest<Full<Bytes>>,
    /// `None` once the connection has ended (closed by the server, or broken).
    driver: Option<Driver>,
    /// Whether a request has completed on it (only then is a closed connection worth one more try).
    reused: bool,
}

/// What a request that got a whole response found.
#[derive(Debug)]
pub(super) struct Answer {
    /// The response's status.
    pub(super) status: StatusCode,
    /// The `x-model-version` header, when present.
    pub(super) version: Option<String>,
    /// The body, kept only for a success without a version header (to fingerprint it).
    pub(super) body: Option<Vec<u8>>,
}

/// A request that failed at the connection: refused, reset, closed, or a broken TLS handshake.
#[derive(Debug)]
pub(super) struct Broken {
    /// The status, when the response's head came before the connection broke.
    pub(super) status: Option<StatusCode>,
    /// The version header of that head.
    pub(super) version: Option<String>,
    /// The request never went out (the connection was found closed first).
    not_sent: bool,
}

impl Broken {
    fn before_sending() -> Broken {
        Broken {
            status: None,
            version: None,
            not_sent: true,
        }
    }

    fn after_sending(status: Option<StatusCode>, version: Option<String>) -> Broken {
        Broken {
            status,
            version,
            not_sent: false,
        }
    }
}

/// Sends one request on the connection in `slot` (opening one when it is empty) and reads the whole response;
/// leaves the connection in `slot` when it can carry the next request.
pub(super) async fn request(target: &Target, slot: &mut Option<Connection>) -> Result<Answer, Broken> {
    loop {
        let mut connection = match slot.take() {
            Some(connection) => connection,
            None => Connection::open(target).await?,
        };
        match connection.exchange(target).await {
            Ok(answer) => {
                if connection.driver.is_some() && !connection.sender.is_closed() {
                    connection.reused = true;
                    *slot = Some(connection);
                }
                return Ok(answer);
            }
            // Found closed while idle: once more on a fresh connection (`reused` is false there, so only once).
            Err(broken) if broken.not_sent && connection.reused => continue,
            Err(broken) => return Err(broken),
        }
    }
}

impl Connection {
    async fn open(target: &Target) -> Result<Connection, Broken> {
        let broken = |_| Broken::after_sending(None, None);
        let stream = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(broken)?;
        // Requests are small writes answered at once: no Nagle delay.
        stream.set_nodelay(true).map_err(broken)?;
        match &target.tls {
            None => Connection::handshake(stream).await,
            Some((connector, name)) => {
                let stream = connector.connect(name.clone(), stream).await.map_err(broken)?;
                Connection::handshake(stream).await
            }
        }
    }

    async fn handshake(stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static) -> Result<Connection, Broken> {
        let (sender, driver) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| Broken::after_sending(None, None))?;
        Ok(Connection {
            sender,
            driver: Some(Box::pin(driver)),
            reused: false,
        })
    }

    /// One request and its whole response, polling the connection's I/O alongside.
    async fn exchange(&mut self, target: &Target) -> Result<Answer, Broken> {
        let sender = &mut self.sender;
        let request = target.request();
        let fingerprinting = target.fingerprinting;
        let exchange = pin!(async move {
            sender.ready().await.map_err(|_| Broken::before_sending())?;
            let response = sender.send_request(request).await.map_err(|error| {
                if error.is_canceled() {
                    Broken::before_sending()
                } else {
                    Broken::after_sending(None, None)
                }
            })?;
            let status = response.status();
            let version = response
                .headers()
                .get(VERSION_HEADER)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string);
            // The body is kept only to fingerprint a success whose header names no version; otherwise it is read
            // and dropped frame by frame (the connection stays reusable and nothing accumulates).
            let needs_body = status.is_success()
                && fingerprinting
                && crate::traffic::attribution::header_version(version.as_deref()).is_none();
            let mut kept = Vec::new();
            let mut body = response.into_body();
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) if needs_body => {
                        if let Some(data) = frame.data_ref() {
                            kept.extend_from_slice(data);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return Err(Broken::after_sending(Some(status), version)),
                }
            }
            Ok(Answer {
                status,
                version,
                body: needs_body.then_some(kept),
            })
        });
        let Some(driver) = self.driver.as_mut() else {
            return Err(Broken::before_sending());
        };
        match select(exchange, driver.as_mut()).await {
            Either::Left((result, _)) => result,
            Either::Right((_, exchange)) => {
                // The connection ended; dropping its I/O half settles whatever the request still waits for.
                self.driver = None;
                exchange.await
            }
        }
    }
}
