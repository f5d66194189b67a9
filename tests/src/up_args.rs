//! `lab up`'s command line for tests, built by name (`UpArgs::new(&tools, &url).stage("stable").no_assert()`)
//! instead of edited in argument vectors.

use std::path::{Path, PathBuf};

use crate::fake_tools::FakeTools;

/// The arguments of one `lab up` run (after the global `--profile` and `--state-dir`).
#[derive(Debug, Clone)]
pub struct UpArgs {
    ingress: String,
    istioctl: Option<PathBuf>,
    stage: Option<String>,
    no_assert: bool,
    models: Option<String>,
    json: bool,
    report: Option<PathBuf>,
    reinstall_istio: bool,
    rollout_timeout_s: Option<u64>,
    istio_timeout_s: Option<u64>,
}

/// How long `lab up` waits for a rollout and for Istio against the fakes, which take milliseconds (the margin is
/// for a loaded machine).
const FAKE_TIMEOUT_S: u64 = 10;

impl UpArgs {
    /// `lab up --ingress INGRESS` against the fakes: their `istioctl` and 10-second rollout and Istio timeouts.
    pub fn new(tools: &FakeTools, ingress: &str) -> UpArgs {
        UpArgs::plain(ingress)
            .istioctl(&tools.istioctl_path())
            .rollout_timeout(FAKE_TIMEOUT_S)
            .istio_timeout(FAKE_TIMEOUT_S)
    }

    /// `lab up --ingress INGRESS` with `lab`'s own defaults for everything else (as against a real cluster).
    pub fn plain(ingress: &str) -> UpArgs {
        UpArgs {
            ingress: ingress.to_string(),
            istioctl: None,
            stage: None,
            no_assert: false,
            models: None,
            json: false,
            report: None,
            reinstall_istio: false,
            rollout_timeout_s: None,
            istio_timeout_s: None,
        }
    }

    /// `--ingress INGRESS`: a URL, `tunnel`, `port-forward` or `auto`.
    #[must_use]
    pub fn ingress(mut self, ingress: &str) -> UpArgs {
        self.ingress = ingress.to_string();
        self
    }

    /// `--istioctl PATH`.
    #[must_use]
    pub fn istioctl(mut self, path: &Path) -> UpArgs {
        self.istioctl = Some(path.to_path_buf());
        self
    }

    /// `--stage STAGE`.
    #[must_use]
    pub fn stage(mut self, stage: &str) -> UpArgs {
        self.stage = Some(stage.to_string());
        self
    }

    /// `--no-assert`.
    #[must_use]
    pub fn no_assert(mut self) -> UpArgs {
        self.no_assert = true;
        self
    }

    /// `--models SOURCE`.
    #[must_use]
    pub fn models(mut self, source: &str) -> UpArgs {
        self.models = Some(source.to_string());
        self
    }

    /// `--format json`.
    #[must_use]
    pub fn json(mut self) -> UpArgs {
        self.json = true;
        self
    }

    /// `--report PATH`: the JSON report, written there.
    #[must_use]
    pub fn report(mut self, path: &Path) -> UpArgs {
        self.report = Some(path.to_path_buf());
        self
    }

    /// `--reinstall-istio`.
    #[must_use]
    pub fn reinstall_istio(mut self) -> UpArgs {
        self.reinstall_istio = true;
        self
    }

    /// `--rollout-timeout {seconds}s`.
    #[must_use]
    pub fn rollout_timeout(mut self, seconds: u64) -> UpArgs {
        self.rollout_timeout_s = Some(seconds);
        self
    }

    /// `--istio-timeout {seconds}s`.
    #[must_use]
    pub fn istio_timeout(mut self, seconds: u64) -> UpArgs {
        self.istio_timeout_s = Some(seconds);
        self
    }

    /// `lab up` and its flags, as the CLI takes them.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["lab".to_string(), "up".to_string()];
        let mut flag = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                args.extend([name.to_string(), value]);
            }
        };
        flag("--stage", self.stage.clone());
        flag(
            "--istioctl",
            self.istioctl.as_ref().map(|path| path.display().to_string()),
        );
        flag("--ingress", Some(self.ingress.clone()));
        flag(
            "--rollout-timeout",
            self.rollout_timeout_s.map(|seconds| format!("{seconds}s")),
        );
        flag(
            "--istio-timeout",
            self.istio_timeout_s.map(|seconds| format!("{seconds}s")),
        );
        flag("--models", self.models.clone());
        flag("--format", self.json.then(|| "json".to_string()));
        flag("--report", self.report.as_ref().map(|path| path.display().to_string()));
        let switches = [
            ("--no-assert", self.no_assert),
            ("--reinstall-istio", self.reinstall_istio),
        ];
        args.extend(
            switches
                .into_iter()
                .filter(|(_, on)| *on)
                .map(|(switch, _)| switch.to_string()),
        );
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_flag_appears_once_with_its_value() {
        let args = UpArgs::plain("tunnel")
            .istioctl(Path::new("/bin/istioctl"))
            .stage("stable")
            .no_assert()
            .rollout_timeout(2)
            .rollout_timeout(600)
            .json()
            .args();
        assert_eq!(
            args,
            [
                "lab",
                "up",
                "--stage",
                "stable",
                "--istioctl",
                "/bin/istioctl",
                "--ingress",
                "tunnel",
                "--rollout-timeout",
                "600s",
                "--format",
                "json",
                "--no-assert"
            ]
        );
        assert_eq!(UpArgs::plain("auto").args(), ["lab", "up", "--ingress", "auto"]);
    }
}
