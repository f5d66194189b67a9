//! Every command and flag of `cargo xtask`, declared once.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::flag_values;
use lab::definition::stages::DEFAULT_RESET_STAGE;
use lab::istio::ISTIO_VERSION;
use lab::istio::gateway_config::DEFAULT_SERVE_TIMEOUT;
use lab::traffic::checks::ProbeChoice;
use lab::traffic::checks::{DEFAULT_ASSERTION_TIMEOUT, DEFAULT_MAX_ERROR_RATE};
use lab::traffic::payload::PayloadChoice;
use lab::traffic::payload::PayloadKind;
use lab::traffic::probe::{DEFAULT_CONCURRENCY, DEFAULT_REQUEST_TIMEOUT};

/// canary-lab: the TensorFlow canary-release lab on minikube + Istio 1.12.7, in one command.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version)]
pub struct Xtask {
    /// Options every command shares.
    #[command(flatten)]
    pub global: GlobalFlags,
    /// The command group.
    #[command(subcommand)]
    pub command: TopCommand,
}

/// Options every command shares, listed under their own heading in every `--help`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalFlags {
    /// The minikube profile.
    #[arg(long, global = true, default_value = "minikube", env = "CANARY_LAB_PROFILE", value_parser = flag_values::profile)]
    pub profile: String,
    /// The kubeconfig context (default: the profile's context).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Where lab state lives (default: $XDG_STATE_HOME/canary-lab).
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Where downloads are cached (default: $XDG_CACHE_HOME/canary-lab).
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// The minikube executable (default: `minikube` on PATH).
    #[arg(long, global = true, value_name = "PATH")]
    pub minikube_bin: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Output format on stdout.
    #[arg(long, global = true, value_enum, default_value_t = FormatFlag::Human)]
    pub format: FormatFlag,
}

/// Output format on stdout.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatFlag {
    /// Tables and sentences.
    Human,
    /// One JSON document.
    Json,
}

/// The command groups.
#[derive(Debug, Subcommand)]
pub enum TopCommand {
    /// Bring up, check and tear down the lab.
    #[command(subcommand)]
    Lab(LabCommand),
    /// Istio tooling: download and verify istioctl.
    #[command(subcommand)]
    Istio(IstioCommand),
    /// Install the tools the tests need (under target/), then run the whole test suite.
    Test(TestFlags),
    /// Run the benchmarks side by side with their baselines and print the ratios.
    Bench(BenchFlags),
}

/// `cargo xtask lab …`
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Bring the lab up from nothing: preflight, Istio, models, TF Serving, ingress, stages.
    Up(UpFlags),
    /// Check that this machine and the minikube profile can run the lab.
    Doctor,
    /// List the lab's stages, one line each.
    Stages,
    /// Apply one stage and assert that traffic goes where it says.
    Stage(StageFlags),
    /// Return to a stage fast, reusing running pods (default: stable).
    Reset(ResetFlags),
    /// Run only a stage's assertions against an ingress URL given by hand.
    Check(CheckFlags),
    /// Check a stage you applied by hand: its objects, pods and routes, then its traffic; a hint for each miss.
    Verify(VerifyFlags),
    /// Offline rooms: everything `lab up` downloads, in one directory for laptops without internet.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// The lab as a guided walk: each stage explained, its change and commands shown, then applied and asserted.
    Tour(TourFlags),
    /// Watch the traffic live: one bar per version with its share of the latest responses, until q or Ctrl-C.
    Watch(WatchFlags),
    /// Send a prediction through the ingress and print the top classes.
    Predict(PredictFlags),
    /// Print, as multi-document YAML, exactly what `lab up` applies.
    Render(RenderFlags),
    /// Write the workshop handout (Markdown and HTML) from the stages, their YAML and their checks.
    Handout(HandoutFlags),
    /// Show what is deployed and ready, the ingress URL and the active stage.
    Status,
    /// Delete the lab's namespace (and with --all, Istio and the tunnel).
    Down(DownFlags),
}

/// `lab up`
#[derive(Debug, Args)]
pub struct UpFlags {
    /// Stop after this stage.
    #[arg(long)]
    pub stage: Option<String>,
    /// Apply the stages without asserting them (quick set-up).
    #[arg(long)]
    pub no_assert: bool,
    /// Use this istioctl instead of fetching Istio 1.12.7's.
    #[arg(long, value_name = "PATH")]
    pub istioctl: Option<PathBuf>,
    /// Replace another installed Istio version instead of stopping.
    #[arg(long)]
    pub reinstall_istio: bool,
    /// How long istiod and the ingress gateway may take to become available.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = flag_values::duration)]
    pub istio_timeout: humantime::Duration,
    /// `--rollout-timeout`.
    #[command(flatten)]
    pub rollout: RolloutFlags,
    /// How long the model export Job may take.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = flag_values::duration)]
    pub export_timeout: humantime::Duration,
    /// `--serve-timeout`.
    #[command(flatten)]
    pub serve: ServeFlags,
    /// `--probe`.
    #[command(flatten)]
    pub probe: ProbeFlags,
    /// Where the models come from: `export` (a Job in the cluster) or `host:DIR` (exported already).
    #[arg(long, value_name = "SOURCE", default_value = "export")]
    pub models: String,
    /// How to reach the ingress gateway: auto, tunnel, port-forward, or an http:// URL you already have.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub ingress: String,
    /// Where to write the stages' assertion results besides stdout.
    #[command(flatten)]
    pub reports: ReportFlags,
    /// Bring the lab up offline from a bundle made by `lab bundle create` (images, istioctl archive, models).
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
}

/// `lab stage`
#[derive(Debug, Args)]
pub struct StageFlags {
    /// The stage to apply.
    pub name: String,
    /// Apply the stage without asserting it.
    #[arg(long)]
    pub no_assert: bool,
    /// `--rollout-timeout`.
    #[command(flatten)]
    pub rollout: RolloutFlags,
    /// `--serve-timeout`.
    #[command(flatten)]
    pub serve: ServeFlags,
    /// `--probe`.
    #[command(flatten)]
    pub probe: ProbeFlags,
    /// Where to write the assertion results besides stdout.
    #[command(flatten)]
    pub reports: ReportFlags,
}

/// `lab tour`
#[derive(Debug, Args)]
pub struct TourFlags {
    /// Start at this stage (default: after the stage the last tour completed).
    #[arg(long, value_name = "STAGE")]
    pub from: Option<String>,
    /// Apply each stage after this pause instead of waiting for a key (`0`: at once; an unattended demo). Off a
    /// terminal the tour runs as `--auto 0`.
    #[arg(long, value_name = "DURATION", value_parser = flag_values::pause)]
    pub auto: Option<humantime::Duration>,
    /// `--probe`.
    #[command(flatten)]
    pub probe: ProbeFlags,
    /// `--rollout-timeout`.
    #[command(flatten)]
    pub rollout: RolloutFlags,
    /// `--serve-timeout`.
    #[command(flatten)]
    pub serve: ServeFlags,
}

/// `lab reset`
#[derive(Debug, Args)]
pub struct ResetFlags {
    /// The stage to return to.
    #[arg(default_value = DEFAULT_RESET_STAGE)]
    pub stage: String,
    /// Also clear the tour's progress, so the next group starts the tour from the first stage.
    #[arg(long)]
    pub for_class: bool,
    /// `--rollout-timeout`.
    #[command(flatten)]
    pub rollout: RolloutFlags,
}

/// `--serve-timeout`, shared by the commands that assert a stage they applied (`lab up`, `lab stage`).
#[derive(Debug, Args)]
pub struct ServeFlags {
    /// How long the ingress gateway's Envoy gets to serve an applied stage (its routes and live endpoints) before
    /// the stage's assertions.
    #[arg(long, value_name = "DURATION", default_value_t = DEFAULT_SERVE_TIMEOUT.into(), value_parser = flag_values::duration)]
    pub serve_timeout: humantime::Duration,
}

/// `--probe`, shared by the commands that assert stages (`lab up`, `lab stage`, `lab check`, `lab tour`).
#[derive(Debug, Args)]
pub struct ProbeFlags {
    /// Which requests prove the routing: status (TF Serving's model-status request, no inference, plus a few real
    /// predictions per version), predict (every request a prediction), or auto (status where the stage's routes
    /// send it as they send predictions and set x-model-version, else predictions).
    #[arg(long, value_enum, value_name = "KIND", default_value_t = ProbeFlag::Auto)]
    pub probe: ProbeFlag,
}

/// `--probe`'s values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProbeFlag {
    /// Status requests where the stage's routes allow them, else predictions.
    Auto,
    /// Status requests; refused for a stage whose routes do not allow them.
    Status,
    /// Predictions only.
    Predict,
}

impl ProbeFlags {
    /// The library's choice.
    pub fn choice(&self) -> ProbeChoice {
        match self.probe {
            ProbeFlag::Auto => ProbeChoice::Auto,
            ProbeFlag::Status => ProbeChoice::Status,
            ProbeFlag::Predict => ProbeChoice::Predict,
        }
    }
}

/// `--rollout-timeout`, shared by the commands that roll Deployments out (`lab up`, `lab stage`, `lab reset`).
#[derive(Debug, Args)]
pub struct RolloutFlags {
    /// How long each Deployment may take to roll out.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = flag_values::duration)]
    pub rollout_timeout: humantime::Duration,
}

impl RolloutFlags {
    /// The rollout deadline of one Deployment.
    pub fn deadline(&self) -> Duration {
        *self.rollout_timeout
    }
}

/// `lab check`
#[derive(Debug, Args)]
pub struct CheckFlags {
    /// The stage whose assertions to run.
    pub stage: String,
    /// The ingress URL, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub url: Option<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY as u32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// The timeout of one request.
    #[arg(long, value_name = "DURATION", default_value_t = DEFAULT_REQUEST_TIMEOUT.into(), value_parser = flag_values::duration)]
    pub request_timeout: humantime::Duration,
    /// The largest share of failed requests that still passes (0–1).
    #[arg(long, default_value_t = DEFAULT_MAX_ERROR_RATE)]
    pub max_error_rate: f64,
    /// Wait up to this long for the routes to take effect before each assertion, as after an apply (default: no
    /// wait: `lab check` tests what is there, and a wrong route fails at its first wrong answer).
    #[arg(long, value_name = "DURATION", value_parser = flag_values::duration)]
    pub settle_timeout: Option<humantime::Duration>,
    /// The deadline of one assertion's requests.
    #[arg(long, value_name = "DURATION", default_value_t = DEFAULT_ASSERTION_TIMEOUT.into(), value_parser = flag_values::duration)]
    pub deadline: humantime::Duration,
    /// The image sent as the prediction payload (default: the lab's Grace Hopper photo).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// The kind of request body (auto: ask the model's metadata through the ingress).
    #[arg(long, value_enum, default_value_t = PayloadFlag::Auto)]
    pub payload: PayloadFlag,
    /// `--probe`.
    #[command(flatten)]
    pub probe: ProbeFlags,
    /// Where to write the results besides stdout.
    #[command(flatten)]
    pub reports: ReportFlags,
}

/// `lab verify`
#[derive(Debug, Args)]
pub struct VerifyFlags {
    /// The stage you applied by hand, e.g. split-70-30.
    pub stage: String,
    /// The ingress URL for the traffic checks (default: the one `lab up` recorded).
    #[arg(long)]
    pub url: Option<String>,
}

/// `lab bundle …`
#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Make a bundle here, where `lab up` has run: istioctl's archive, every image, the exported models.
    Create(BundleCreateFlags),
}

/// `lab bundle create`
#[derive(Debug, Args)]
pub struct BundleCreateFlags {
    /// The bundle directory to make (new, or empty).
    pub dir: PathBuf,
    /// Leave the models out and bundle the export image instead (each laptop then exports them itself).
    #[arg(long)]
    pub without_models: bool,
    /// Bundle istioctl for this platform (repeat for a room that mixes laptops; default: this machine's).
    #[arg(long = "platform", value_enum, value_name = "PLATFORM")]
    pub platforms: Vec<PlatformFlag>,
    /// Bundle istioctl for every platform Istio publishes (linux-amd64, linux-arm64, osx, osx-arm64).
    #[arg(long, conflicts_with = "platforms")]
    pub all_platforms: bool,
}

/// `lab watch`
#[derive(Debug, Args)]
pub struct WatchFlags {
    /// The ingress URL (default: the one `lab up` recorded).
    #[arg(long)]
    pub url: Option<String>,
    /// A header every request carries, `name=value` (repeatable), e.g. `--header user-group=canary`; with
    /// --header-set, added to every set.
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = flag_values::header)]
    pub headers: Vec<(String, String)>,
    /// Watch this group of requests beside the others (repeatable; the sets take turns at --rate): `none` (no
    /// headers), `user-group=canary` (`,` between headers), or `stage` (the header sets of the recorded stage's
    /// assertions), e.g. `--header-set none --header-set user-group=canary`.
    #[arg(long = "header-set", value_name = "SPEC", value_parser = flag_values::header_set)]
    pub header_sets: Vec<lab::lifecycle::watch::HeaderSetChoice>,
    /// Requests per second (all header sets together).
    #[arg(long, default_value_t = lab::lifecycle::watch::DEFAULT_RATE, value_parser = flag_values::rate)]
    pub rate: f64,
    /// The shares are over the latest this many responses (of each header set, and of all together).
    #[arg(long, default_value_t = lab::traffic::window::DEFAULT_WINDOW as u32, value_parser = clap::value_parser!(u32).range(10..=100_000))]
    pub window: u32,
    /// Requests in flight at most.
    #[arg(long, default_value_t = lab::lifecycle::watch::DEFAULT_WATCH_CONCURRENCY as u32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// The timeout of one request.
    #[arg(long, value_name = "DURATION", default_value_t = DEFAULT_REQUEST_TIMEOUT.into(), value_parser = flag_values::duration)]
    pub request_timeout: humantime::Duration,
    /// How often a line of JSON is written off a terminal (the terminal view redraws four times a second).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = flag_values::duration)]
    pub interval: humantime::Duration,
    /// Stop after this long (default: until q or Ctrl-C).
    #[arg(long = "for", value_name = "DURATION", value_parser = flag_values::duration)]
    pub duration: Option<humantime::Duration>,
    /// The image sent as the prediction payload (default: the lab's Grace Hopper photo).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// `--probe`: under auto, status requests when the stage `lab up` recorded routes them as predictions (only
    /// without --url), else predictions.
    #[command(flatten)]
    pub probe: ProbeFlags,
}

/// Report files written besides stdout by the commands that assert stages.
#[derive(Debug, Args)]
pub struct ReportFlags {
    /// Write the results as JSON (schema: assets/report.schema.json).
    #[arg(long, value_name = "PATH.json")]
    pub report: Option<PathBuf>,
    /// Write one JUnit test case per stage assertion, for CI dashboards.
    #[arg(long, value_name = "PATH.xml")]
    pub junit: Option<PathBuf>,
    /// Write a self-contained HTML page with a chart of each stage's split.
    #[arg(long, value_name = "PATH.html")]
    pub html: Option<PathBuf>,
}

/// `lab predict`
#[derive(Debug, Args)]
pub struct PredictFlags {
    /// The image to classify (default: the lab's Grace Hopper photo).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// A request header, `name=value` (repeatable), e.g. `--header user-group=canary`.
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = flag_values::header)]
    pub headers: Vec<(String, String)>,
    /// How many classes to show.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub top: u16,
    /// How many requests to send.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,
    /// The request body.
    #[arg(long, value_enum, default_value_t = PayloadFlag::Auto)]
    pub payload: PayloadFlag,
    /// The ingress URL (default: the one `lab up` recorded).
    #[arg(long)]
    pub url: Option<String>,
}

/// `lab predict --payload`
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PayloadFlag {
    /// `bytes` when the model has a `serving_bytes` signature, else `keras`.
    Auto,
    /// The original lab's body: the re-saved JPEG's pixels as ints, no resize or preprocessing.
    Raw,
    /// Keras ResNet input: 224×224, BGR, minus the ImageNet means.
    Keras,
    /// The image file, base64, for the `serving_bytes` signature.
    Bytes,
}

impl PayloadFlag {
    /// The payload asked for: a fixed kind, or `auto` (the model's metadata decides).
    pub fn choice(self) -> PayloadChoice {
        match self {
            PayloadFlag::Auto => PayloadChoice::Auto,
            PayloadFlag::Raw => PayloadChoice::Fixed(PayloadKind::Raw),
            PayloadFlag::Keras => PayloadChoice::Fixed(PayloadKind::Keras),
            PayloadFlag::Bytes => PayloadChoice::Fixed(PayloadKind::Bytes),
        }
    }
}

/// `lab render`
#[derive(Debug, Args)]
pub struct RenderFlags {
    /// Render this stage's objects instead of the bring-up set.
    #[arg(long)]
    pub stage: Option<String>,
}

/// `lab handout`
#[derive(Debug, Args)]
pub struct HandoutFlags {
    /// The directory to write handout.md and handout.html into (created when missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `lab down`
#[derive(Debug, Args)]
pub struct DownFlags {
    /// Also uninstall Istio and stop the tunnel.
    #[arg(long)]
    pub all: bool,
    /// Use this istioctl (for --all) instead of fetching Istio 1.12.7's.
    #[arg(long, value_name = "PATH")]
    pub istioctl: Option<PathBuf>,
    /// How long the namespace may take to be deleted.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = flag_values::duration)]
    pub timeout: humantime::Duration,
    /// How long `minikube tunnel` may take to clean up after the interrupt (for --all); then it is terminated.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = flag_values::duration)]
    pub tunnel_timeout: humantime::Duration,
}

/// `cargo xtask istio …`
#[derive(Debug, Subcommand)]
pub enum IstioCommand {
    /// Download, verify and unpack istioctl; print its path as the last line.
    Fetch(FetchFlags),
}

/// `istio fetch` (the cache directory is the global `--cache-dir`).
#[derive(Debug, Args)]
pub struct FetchFlags {
    /// The Istio version.
    #[arg(long, default_value = ISTIO_VERSION)]
    pub version: String,
    /// The platform whose istioctl to fetch.
    #[arg(long, value_enum, default_value_t = PlatformFlag::Auto)]
    pub platform: PlatformFlag,
    /// Take the full release (istio-<version>-<platform>.tar.gz: samples, manifests) instead of istioctl alone.
    #[arg(long)]
    pub full: bool,
    /// The folder that holds the release assets (https://, http:// or file://).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// The archive's SHA-256 in hex; replaces the pinned and published sums (mirrors, private builds).
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// An already-downloaded archive to verify and unpack (offline rooms).
    #[arg(long, value_name = "PATH")]
    pub archive: Option<PathBuf>,
    /// The most the whole fetch may take (retries included); a partial download is kept and a rerun resumes it.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = flag_values::duration)]
    pub timeout: humantime::Duration,
}

/// `istio fetch --platform`, `bundle create --platform`
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PlatformFlag {
    /// This machine's platform.
    Auto,
    /// Linux on x86-64.
    #[value(name = "linux-amd64")]
    LinuxAmd64,
    /// Linux on ARM64.
    #[value(name = "linux-arm64")]
    LinuxArm64,
    /// macOS on Intel.
    Osx,
    /// macOS on Apple silicon.
    #[value(name = "osx-arm64")]
    OsxArm64,
}

impl PlatformFlag {
    /// The platform named; `None` for `auto` (this machine's).
    pub fn platform(self) -> Option<lab::istio::Platform> {
        use lab::istio::Platform;
        match self {
            PlatformFlag::Auto => None,
            PlatformFlag::LinuxAmd64 => Some(Platform::LinuxAmd64),
            PlatformFlag::LinuxArm64 => Some(Platform::LinuxArm64),
            PlatformFlag::Osx => Some(Platform::Osx),
            PlatformFlag::OsxArm64 => Some(Platform::OsxArm64),
        }
    }
}

/// `cargo xtask test`
#[derive(Debug, Args)]
pub struct TestFlags {
    /// Only install the test tools; do not run the tests.
    #[arg(long)]
    pub tools_only: bool,
    /// Extra arguments for `cargo test` (after `--`).
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

/// `cargo xtask bench`
#[derive(Debug, Args)]
pub struct BenchFlags {
    /// Only these benchmark groups (default: all).
    pub groups: Vec<String>,
}
