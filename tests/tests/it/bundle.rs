//! Offline rooms through the CLI as a process: `lab bundle create` on an instructor's machine where `lab up` ran (a
//! modelled minikube node holding the images and the exported models, a verified istioctl in the cache), then `lab
//! up --bundle` on a laptop whose node has nothing, against the fake Kubernetes API and the gateway that follows it.
//! A tampered or incomplete bundle is refused, naming the file, before anything is loaded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use canary_lab_tests::cli::{Cli, CliOutput};
use canary_lab_tests::fake_kube::FakeKube;
use canary_lab_tests::fake_node::FakeNode;
use canary_lab_tests::fake_tools::{FakeTools, MinikubeCluster};
use canary_lab_tests::istio_tarball::Tarball;
use canary_lab_tests::istiod::{IstioGateway, PushTiming};
use canary_lab_tests::traffic::Models;
use lab::istio::cache::{CacheLayout, write_verified_marker};
use lab::istio::{AssetFlavor, ISTIO_VERSION, Platform};
use serde_json::Value;

const PROFILE: &str = "lab";
const SERVING: &str = "tensorflow/serving:2.5.1";
const EXPORT: &str = "tensorflow/tensorflow:2.6.2";
const PILOT: &str = "docker.io/istio/pilot:1.12.7";
const PROXY: &str = "docker.io/istio/proxyv2:1.12.7";

/// One machine: fake tools with a modelled node, a cache and a state dir.
struct Machine {
    tools: FakeTools,
    node: FakeNode,
    home: tempfile::TempDir,
}

impl Machine {
    fn new(kube: &FakeKube) -> Machine {
        let tools = FakeTools::new();
        tools.script_minikube(&MinikubeCluster::healthy(PROFILE).kubernetes("v1.24.3"));
        tools.script_sudo(false);
        tools.script_istioctl("1.12.7", &kube.url());
        let node = FakeNode::at(&tools.dir().join("node"));
        let home = tempfile::tempdir().unwrap();
        kube.write_kubeconfig(&home.path().join("kubeconfig"), PROFILE);
        Machine { tools, node, home }
    }

    fn cache_dir(&self) -> PathBuf {
        self.home.path().join("cache")
    }

    /// A cache where `istio fetch` verified and unpacked istioctl earlier: the archive, and the unpacked istioctl
    /// (this machine's fake one) with its verified marker holding the pinned sum.
    fn with_verified_istioctl(&self) {
        self.with_verified_istioctl_for(Platform::current().unwrap());
    }

    /// As [`Machine::with_verified_istioctl`], for `platform` (what `istio fetch --platform PLATFORM` leaves).
    fn with_verified_istioctl_for(&self, platform: Platform) {
        let asset = AssetFlavor::IstioctlOnly.asset_name(ISTIO_VERSION, platform);
        let layout = CacheLayout::new(
            &self.cache_dir(),
            ISTIO_VERSION,
            &asset,
            &AssetFlavor::IstioctlOnly.istioctl_in_archive(ISTIO_VERSION),
        );
        std::fs::create_dir_all(layout.unpacked_dir()).unwrap();
        std::fs::write(layout.archive_path(), Tarball::istioctl_release(ISTIO_VERSION).build()).unwrap();
        std::os::unix::fs::symlink(self.tools.istioctl_path(), layout.istioctl_path()).unwrap();
        // The marker holds the sum it was verified against: the pinned one, or (osx-arm64 has no pin) the archive's
        // own, as trust on first use records it.
        let verified = lab::istio::verify::pinned_sha256(&asset)
            .unwrap_or_else(|| lab::istio::verify::sha256_of_file(&layout.archive_path()).unwrap());
        write_verified_marker(&layout.unpacked_dir(), &verified).unwrap();
    }

    /// Asserts this machine's node got no image and minikube was never run.
    fn assert_nothing_loaded(&self) {
        assert!(self.node.images().is_empty(), "nothing was loaded");
        let calls = self.tools.calls("minikube");
        assert!(calls.is_empty(), "{calls:?}");
    }

    /// `lab up --bundle BUNDLE --ingress URL --no-assert --format json` with the fakes' timeouts.
    async fn up_with_bundle(&self, bundle: &Path, url: &str) -> CliOutput {
        let bundle = bundle.to_str().unwrap();
        self.run(&[
            "lab",
            "up",
            "--bundle",
            bundle,
            "--ingress",
            url,
            "--rollout-timeout",
            "10s",
            "--istio-timeout",
            "10s",
            "--no-assert",
            "--format",
            "json",
        ])
        .await
    }

    async fn run(&self, args: &[&str]) -> CliOutput {
        let cache = self.cache_dir().display().to_string();
        let mut all = vec!["--cache-dir", &cache];
        all.extend(args);
        let home = self.home.path();
        let cli = Cli::for_lab(
            PROFILE,
            &home.join("state"),
            &self.tools,
            &home.join("kubeconfig"),
            &all,
        );
        tokio::time::timeout(Duration::from_secs(240), cli.run_async())
            .await
            .unwrap_or_else(|_| panic!("`{}` did not finish within 240s", args.join(" ")))
    }
}

/// The instructor's node after `lab up`: every image pulled, the models exported under the hostPath.
fn instructor_node(node: &FakeNode) {
    node.pull(&[SERVING, EXPORT, PILOT, PROXY]);
    for model in ["resnet50", "resnet101"] {
        let dir = format!("/data/canary-lab/models/{model}/1");
        node.write(&format!("{dir}/saved_model.pb"), format!("{model} graph").as_bytes());
        node.write(&format!("{dir}/variables/variables.index"), b"index");
        node.write(
            &format!("{dir}/variables/variables.data-00000-of-00001"),
            &vec![7u8; 4096],
        );
    }
}

/// Makes a bundle at `dir` on a fresh instructor machine.
async fn create_bundle(dir: &Path) -> CliOutput {
    let kube = FakeKube::start("v1.24.3", "amd64").await;
    let instructor = Machine::new(&kube);
    instructor.with_verified_istioctl();
    instructor_node(&instructor.node);
    instructor
        .run(&["lab", "bundle", "create", dir.to_str().unwrap(), "--format", "json"])
        .await
}

/// A bundle made as [`create_bundle`] makes it, in a temporary directory (kept while the first value lives), and
/// the summary `lab bundle create` printed.
async fn made_bundle() -> (tempfile::TempDir, PathBuf, Value) {
    let out = tempfile::tempdir().unwrap();
    let bundle = out.path().join("room");
    let created = create_bundle(&bundle).await;
    assert_eq!(created.code, 0, "{}\n{}", created.stdout, created.stderr);
    (out, bundle, created.json())
}

/// The outcome of `lab up`'s step `name` in its JSON report.
fn step_outcome<'a>(report: &'a Value, name: &str) -> &'a Value {
    let step = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {report}"));
    &step["outcome"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_made_where_the_lab_ran_brings_up_a_laptop_with_nothing() {
    let (out, bundle, summary) = made_bundle().await;
    let mut images: Vec<&str> = summary["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    images.sort();
    // The models are bundled, so the export image is not.
    assert_eq!(images, [PILOT, PROXY, SERVING]);
    assert_eq!(summary["models"], true);
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(bundle.join("bundle.json")).unwrap()).unwrap();
    let paths: Vec<&str> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"models/resnet101/1/saved_model.pb"), "{paths:?}");
    assert!(
        paths.iter().any(|path| path.starts_with("istio/istioctl-1.12.7-")),
        "{paths:?}"
    );
    assert!(
        !out.path()
            .read_dir()
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().contains("partial"))
    );

    // A laptop without internet: an empty node, and istioctl verified in its cache (see the last test for the
    // archive itself).
    let kube = FakeKube::start("v1.24.3", "amd64").await;
    kube.install_istio_when_asked("1.12.7");
    let laptop = Machine::new(&kube);
    laptop.with_verified_istioctl();
    let models = Models::start_with_bytes_signature().await;
    let gateway = IstioGateway::start(&kube, models.both(), PushTiming::default()).await;
    let up = laptop.up_with_bundle(&bundle, &gateway.url()).await;
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    assert_eq!(step_outcome(&up.json(), "bundle"), "done");
    let mut loaded = laptop.node.images();
    loaded.sort();
    assert_eq!(
        loaded,
        [PILOT, PROXY, "docker.io/tensorflow/serving:2.5.1"],
        "the node has the bundle's images"
    );
    assert_eq!(
        std::fs::read(laptop.node.path("/data/canary-lab/models/resnet50/1/saved_model.pb")).unwrap(),
        b"resnet50 graph",
        "the models were copied into the node"
    );
    assert!(
        !laptop
            .tools
            .calls("minikube")
            .iter()
            .any(|call| call.contains(&"pull".to_string())),
        "nothing was pulled"
    );

    // A second run loads nothing again and writes nothing to the API.
    kube.clear_requests();
    let again = laptop.up_with_bundle(&bundle, &gateway.url()).await;
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert_eq!(step_outcome(&again.json(), "bundle"), "already_done");
    assert!(kube.writes().is_empty(), "{:#?}", kube.writes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_or_incomplete_bundle_is_refused_naming_the_file_before_anything_loads() {
    let (_out, bundle, _) = made_bundle().await;
    let kube = FakeKube::start("v1.24.3", "amd64").await;
    let laptop = Machine::new(&kube);

    let image = bundle.join("images/docker.io_istio_pilot_1.12.7.tar");
    let original = std::fs::read(&image).unwrap();
    let mut bytes = original.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&image, &bytes).unwrap();
    let refused = laptop.up_with_bundle(&bundle, "http://127.0.0.1:9").await;
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused
            .stderr
            .contains("\"images/docker.io_istio_pilot_1.12.7.tar\" has SHA-256"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("nothing was loaded"), "{}", refused.stderr);
    assert!(refused.stderr.contains("help: "), "{}", refused.stderr);

    std::fs::write(&image, &original).unwrap();
    std::fs::remove_file(bundle.join("models/resnet50/1/saved_model.pb")).unwrap();
    let refused = laptop.up_with_bundle(&bundle, "http://127.0.0.1:9").await;
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused
            .stderr
            .contains("\"models/resnet50/1/saved_model.pb\" is missing"),
        "{}",
        refused.stderr
    );

    laptop.assert_nothing_loaded();
    assert!(kube.requests().is_empty(), "{:#?}", kube.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_laptop_verifies_the_bundle_s_istioctl_archive_against_the_pinned_sum() {
    let (_out, bundle, _) = made_bundle().await;
    // A laptop whose cache has no istioctl: the bundle's archive is what gets verified (and this test's stand-in
    // archive cannot have the sum pinned for the real release, so it is refused, offline, naming the archive).
    let kube = FakeKube::start("v1.24.3", "amd64").await;
    let laptop = Machine::new(&kube);
    let refused = laptop.up_with_bundle(&bundle, "http://127.0.0.1:9").await;
    assert_ne!(refused.code, 0, "{}\n{}", refused.stdout, refused.stderr);
    let archive = bundle.join("istio");
    assert!(
        refused.stderr.contains(&archive.display().to_string()),
        "the error names the bundle's archive:\n{}",
        refused.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_images_cannot_be_bundled() {
    let kube = FakeKube::start("v1.24.3", "amd64").await;
    let instructor = Machine::new(&kube);
    instructor.with_verified_istioctl();
    let out = tempfile::tempdir().unwrap();
    let bundle = out.path().join("room");
    let refused = instructor
        .run(&["lab", "bundle", "create", bundle.to_str().unwrap()])
        .await;
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("has no image"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("help: run `cargo xtask lab up`"),
        "{}",
        refused.stderr
    );
    assert!(!bundle.exists());
    let left: Vec<_> = out.path().read_dir().unwrap().collect();
    assert!(left.is_empty(), "the staging directory is gone: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_holds_istioctl_for_each_platform_asked_and_a_laptop_of_another_is_refused_before_loading() {
    let this = Platform::current().unwrap();
    let others: Vec<Platform> = Platform::ALL.into_iter().filter(|p| *p != this).collect();
    let kube = FakeKube::start("v1.24.3", "amd64").await;
    let instructor = Machine::new(&kube);
    // What `istio fetch --platform P` leaves in the instructor's cache for every platform.
    for platform in Platform::ALL {
        instructor.with_verified_istioctl_for(platform);
    }
    instructor_node(&instructor.node);
    let out = tempfile::tempdir().unwrap();

    // Every platform: one verified archive each, listed with its sum.
    let all = out.path().join("all");
    let created = instructor
        .run(&[
            "lab",
            "bundle",
            "create",
            all.to_str().unwrap(),
            "--all-platforms",
            "--format",
            "json",
        ])
        .await;
    assert_eq!(created.code, 0, "{}\n{}", created.stdout, created.stderr);
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(all.join("bundle.json")).unwrap()).unwrap();
    let archives = manifest["istio_archives"].as_object().unwrap();
    let names: Vec<&str> = archives.keys().map(String::as_str).collect();
    assert_eq!(names, ["linux-amd64", "linux-arm64", "osx", "osx-arm64"]);
    for (platform, file) in archives {
        assert_eq!(file, &format!("istio/istioctl-1.12.7-{platform}.tar.gz"));
        assert!(
            manifest["files"].as_array().unwrap().iter().any(|f| f["path"] == *file),
            "{file} is listed with its sum"
        );
    }

    // Only the other platforms: a laptop like this machine is refused, naming what the bundle holds, before any
    // image is loaded.
    let foreign = out.path().join("foreign");
    let mut args = vec!["lab", "bundle", "create", foreign.to_str().unwrap()];
    for platform in &others {
        args.extend(["--platform", platform.as_str()]);
    }
    let created = instructor.run(&args).await;
    assert_eq!(created.code, 0, "{}\n{}", created.stdout, created.stderr);
    let laptop_kube = FakeKube::start("v1.24.3", "amd64").await;
    let laptop = Machine::new(&laptop_kube);
    let refused = laptop.up_with_bundle(&foreign, "http://127.0.0.1:9").await;
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    let bundled: Vec<&str> = others.iter().map(|p| p.as_str()).collect();
    assert!(
        refused.stderr.contains(&format!(
            "holds istioctl for {} only, and this machine is {this}",
            bundled.join(", ")
        )),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains(&format!(
            "help: make the bundle again with this platform too: `cargo xtask lab bundle create DIR --platform {this}`"
        )),
        "{}",
        refused.stderr
    );
    laptop.assert_nothing_loaded();
}
