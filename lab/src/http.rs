//! Building HTTP clients: one place that installs the rustls crypto provider and sets timeouts.
//!
//! reqwest is built with `rustls-no-provider`, so a client built before a provider is installed panics; every
//! reqwest client in `lab` comes from here (the kube client comes from `kube_client`, which installs the same
//! provider; the probe drives its own HTTP/1.1 connections and installs it too).

use std::time::Duration;

use anyhow::Context;

/// Timeouts for one HTTP client.
#[derive(Debug, Clone, Copy)]
pub struct HttpTimeouts {
    /// How long establishing a TCP (and TLS) connection may take.
    pub connect: Duration,
    /// How long the connection may stay silent while a response (or its body) is expected.
    pub idle: Duration,
}

/// The `User-Agent` of every request the lab sends: `canary-lab/<version>`.
pub const USER_AGENT: &str = concat!("canary-lab/", env!("CARGO_PKG_VERSION"));

/// A reqwest client with the lab's crypto provider, the given timeouts and a `canary-lab/<version>` user agent.
pub fn client(timeouts: HttpTimeouts) -> anyhow::Result<reqwest::Client> {
    client_builder(timeouts.connect)
        .read_timeout(timeouts.idle)
        .build()
        .context("building the HTTP client")
}

/// A reqwest client (crypto provider and user agent as [`client`]) whose every request, from connecting to the end
/// of the body, must finish within `timeout`: for callers that send a few requests and wait for each whole.
pub fn client_with_total_timeout(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    client_builder(timeout)
        .timeout(timeout)
        .build()
        .context("building the HTTP client")
}

/// A builder with the lab's crypto provider installed, the user agent and the connect timeout.
fn client_builder(connect_timeout: Duration) -> reqwest::ClientBuilder {
    install_crypto_provider();
    #[allow(clippy::disallowed_methods)] // The one place that builds reqwest clients: after the provider is installed.
    let builder = reqwest::Client::builder();
    builder.user_agent(USER_AGENT).connect_timeout(connect_timeout)
}

/// Installs rustls' ring provider once per process; kube and reqwest both use it.
pub fn install_crypto_provider() {
    // A second install returns an error that only says a provider is already there.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
