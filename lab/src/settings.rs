//! Options every command shares: minikube profile, kube context, state and cache dirs, output format.

use std::path::{Path, PathBuf};

use anyhow::Context;
use etcetera::BaseStrategy;

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Tables and sentences for people.
    #[default]
    Human,
    /// One JSON document on stdout, in the style of [`crate::output`].
    Json,
}

/// Settings shared by all commands, resolved from flags and the environment before anything runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The minikube profile (`-p`), `minikube` by default.
    pub profile: String,
    /// The kubeconfig context; `None` means the profile's context (minikube names it after the profile).
    pub context: Option<String>,
    /// Where lab state lives (ingress URL, tunnel pid, locks): `$XDG_STATE_HOME/canary-lab` by default.
    pub state_dir: PathBuf,
    /// Where downloads are cached: `$XDG_CACHE_HOME/canary-lab` by default.
    pub cache_dir: PathBuf,
    /// The minikube executable, when given explicitly; otherwise `minikube` is looked up on `PATH`.
    pub minikube_bin: Option<PathBuf>,
    /// The output format.
    pub format: Format,
}

impl Settings {
    /// Settings with the defaults for `profile`, honouring `XDG_STATE_HOME` and `XDG_CACHE_HOME`.
    pub fn with_defaults(profile: &str) -> anyhow::Result<Settings> {
        let dirs = etcetera::choose_base_strategy().context("finding the home directory for state and cache")?;
        let state_home = dirs.state_dir().unwrap_or_else(|| dirs.data_dir());
        Ok(Settings {
            profile: profile.to_string(),
            context: None,
            state_dir: state_home.join("canary-lab"),
            cache_dir: dirs.cache_dir().join("canary-lab"),
            minikube_bin: None,
            format: Format::Human,
        })
    }

    /// The kube context to use: the one given, else the profile's (minikube names the context after the profile).
    pub fn kube_context(&self) -> &str {
        self.context.as_deref().unwrap_or(&self.profile)
    }

    /// The minikube program to run: the explicit path, or `minikube` from `PATH`.
    pub fn minikube_program(&self) -> &Path {
        self.minikube_bin.as_deref().unwrap_or(Path::new("minikube"))
    }
}
