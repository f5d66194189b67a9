//! A workshop laptop for the tests that run the whole lab through the CLI: a Kubernetes 1.24 API without Istio (its
//! CRDs appear when the fake `istioctl install` runs), the fake `minikube`/`istioctl`/`sudo`, two TF Serving
//! stand-ins (small request bodies: the assertions do not depend on the payload's size) reachable as the pods of
//! each version, and a gateway whose config follows the API as istiod pushes it. One state dir and kubeconfig are
//! shared across runs, as one learner's are.

use std::path::Path;
use std::time::Duration;

use crate::cli::{Cli, CliOutput};
use crate::fake_kube::FakeKube;
use crate::fake_tools::{FakeTools, MinikubeCluster};
use crate::istiod::{IstioGateway, PushTiming};
use crate::traffic::Models;
use crate::up_args::UpArgs;

/// The minikube profile (and kube context) of every workshop laptop.
pub const PROFILE: &str = "lab";

/// How long one CLI run may take: a run takes seconds; the margin is for a loaded machine.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// Everything a workshop laptop has.
pub struct Workshop {
    /// The fake Kubernetes API.
    pub kube: FakeKube,
    /// The fake CLIs.
    pub tools: FakeTools,
    /// The gateway (real Envoy) following the API.
    pub gateway: IstioGateway,
    /// The TF Serving stand-ins behind it.
    pub models: Models,
    home: tempfile::TempDir,
}

impl Workshop {
    /// A laptop with nothing of the lab on it yet.
    pub async fn start() -> Workshop {
        let kube = FakeKube::start("v1.24.3", "amd64").await;
        let tools = FakeTools::new();
        tools.script_minikube(&MinikubeCluster::healthy(PROFILE).kubernetes("v1.24.3"));
        tools.script_sudo(false);
        tools.script_istioctl("1.12.7", &kube.url());
        kube.install_istio_when_asked("1.12.7");
        let models = Models::start_with_bytes_signature().await;
        // Each version's pods answer the lab's reference requests (a port-forward to 8501).
        kube.port_forward_selected_to("version=resnet50", models.resnet50.addr());
        kube.port_forward_selected_to("version=resnet101", models.resnet101.addr());
        let gateway = IstioGateway::start(&kube, models.both(), PushTiming::default()).await;
        let home = tempfile::tempdir().expect("temp home");
        kube.write_kubeconfig(&home.path().join("kubeconfig"), PROFILE);
        Workshop {
            kube,
            tools,
            gateway,
            models,
            home,
        }
    }

    /// A laptop brought up to `stage` with `lab up --stage STAGE --no-assert` (which must succeed).
    pub async fn up_to(stage: &str) -> Workshop {
        let workshop = Workshop::start().await;
        let args = UpArgs::new(&workshop.tools, &workshop.gateway.url())
            .stage(stage)
            .no_assert()
            .args();
        let up = workshop.run(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
        assert_eq!(up.code, 0, "lab up --stage {stage}:\n{}\n{}", up.stdout, up.stderr);
        workshop
    }

    /// The laptop's home (state dir and kubeconfig inside).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The CLI with `args` after the global flags, sharing the laptop's state dir and kubeconfig.
    pub fn cli(&self, args: &[&str]) -> Cli {
        let home = self.home.path();
        Cli::for_lab(
            PROFILE,
            &home.join("state"),
            &self.tools,
            &home.join("kubeconfig"),
            args,
        )
    }

    /// Runs the CLI with `args`; fails the test when it takes more than five minutes.
    pub async fn run(&self, args: &[&str]) -> CliOutput {
        tokio::time::timeout(RUN_TIMEOUT, self.cli(args).run_async())
            .await
            .unwrap_or_else(|_| panic!("`{}` did not finish within {RUN_TIMEOUT:?}", args.join(" ")))
    }

    /// Returns once the gateway has taken a push after the `seen`th; fails the test after 30 s.
    pub async fn until_pushed_after(&self, seen: u64) {
        let pushed = async {
            while self.gateway.pushes() <= seen {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), pushed)
            .await
            .expect("the gateway took the change within 30s");
    }
}
