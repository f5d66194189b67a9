//! `lab bundle create DIR`, on a machine where `lab up` has run: the verified istioctl archive of each platform asked
//! for (this machine's by default; others are fetched and verified against their pinned sums as `istio fetch
//! --platform` does), every
//! image the lab runs saved from the minikube node (`minikube image save`), the exported SavedModels copied out of
//! the node (`minikube cp NODE:PATH`; without them, the export image instead), and `bundle.json` with each file's
//! size and SHA-256.
//!
//! The bundle is built in a staging directory beside `DIR` and renamed into place only once complete, so an
//! interrupted or failed run leaves no bundle that looks whole; the staging directory is removed on failure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use super::normalized_image;
use super::{BundleManifest, BundledFile, BundledImage, MANIFEST_FILE, MANIFEST_FORMAT, node_images};
use crate::definition::manifests::Manifest;
use crate::definition::plan::NODE_MODELS_DIR;
use crate::definition::stages::LabDefinition;
use crate::istio::cache::CacheLayout;
use crate::istio::verify::sha256_of_file;
use crate::istio::{FetchOptions, ISTIO_VERSION, Platform, fetch_istioctl_with_origin};
use crate::lifecycle::models::{self, check_host_layout, collect_files};
use crate::tool::minikube::Minikube;
use crate::{LabError, Settings};

/// The images Istio 1.12.7's `istioctl install` runs (the default profile's hub and tag: istio/istio 1.12.7
/// `manifests/profiles/default.yaml`, `hub: docker.io/istio`, components `pilot` and `proxyv2`).
pub fn istio_images() -> Vec<String> {
    ["pilot", "proxyv2"]
        .iter()
        .map(|component| format!("docker.io/istio/{component}:{ISTIO_VERSION}"))
        .collect()
}

/// What `lab bundle create` makes.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The bundle directory (must not exist, or be empty).
    pub dir: PathBuf,
    /// Bundle the exported models (default); without them the export image is bundled, and each laptop exports.
    pub models: bool,
    /// The platforms whose istioctl archive to bundle (the laptops'); empty: this machine's.
    pub platforms: Vec<Platform>,
}

/// What was bundled.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CreatedBundle {
    /// The bundle directory.
    pub dir: PathBuf,
    /// The images saved.
    pub images: Vec<String>,
    /// The platforms whose istioctl is in it.
    pub platforms: Vec<String>,
    /// Whether the models are in it.
    pub models: bool,
    /// Files (the manifest not counted).
    pub files: usize,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// Makes the bundle; each part's progress goes to `note`.
pub async fn create_bundle(
    settings: &Settings,
    options: &CreateOptions,
    note: &dyn Fn(&str),
) -> anyhow::Result<CreatedBundle> {
    let dir = &options.dir;
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut entries| entries.next().is_some())
            .unwrap_or(true)
    {
        return Err(LabError::not_ready(
            format!("\"{}\" exists and is not empty", dir.display()),
            "name a new directory for the bundle, or remove this one",
        )
        .into());
    }
    let staging = Staging::beside(dir)?;
    let minikube = Minikube::new(settings.minikube_program());
    let profile = settings.profile.as_str();
    let lab = LabDefinition::load_default()?;

    let platforms = match options.platforms.as_slice() {
        [] => vec![Platform::current()?],
        asked => asked
            .iter()
            .copied()
            .collect::<BTreeSet<Platform>>()
            .into_iter()
            .collect(),
    };
    let mut istio_archives = BTreeMap::new();
    for platform in platforms {
        note(&format!(
            "istioctl for {platform}: the verified archive (from the cache, or fetched and verified)"
        ));
        let archive = copy_istio_archive(settings, staging.path(), platform).await?;
        istio_archives.insert(platform.to_string(), archive);
    }

    let mut images: BTreeSet<String> = istio_images().into_iter().collect();
    for stage in &lab.stages {
        images.extend(lab.stage_manifests(stage)?.iter().flat_map(container_images));
    }
    if !options.models {
        images.extend(models::export_manifests()?.iter().flat_map(container_images));
    }
    let on_node = node_images(&minikube, profile)?;
    let mut bundled_images = Vec::new();
    std::fs::create_dir_all(staging.path().join("images"))?;
    for image in &images {
        if !on_node.contains(&normalized_image(image)) {
            return Err(LabError::not_ready(
                format!("the node of profile \"{profile}\" has no image {image}"),
                "run `cargo xtask lab up` on this machine first (it pulls every image the lab runs), then bundle",
            )
            .into());
        }
        note(&format!("image {image}: minikube image save"));
        let file = format!("images/{}.tar", file_name_of(image));
        minikube
            .command("save an image from the node", &["-p", profile, "image", "save", image])
            .arg(staging.path().join(&file))
            .timeout(Duration::from_secs(1800))
            .run()?;
        bundled_images.push(BundledImage {
            image: image.clone(),
            file,
        });
    }

    let models = if options.models {
        note("models: copied out of the node");
        copy_models_out(&minikube, profile, &staging.path().join("models"))?;
        Some("models".to_string())
    } else {
        None
    };

    let files = list_files(staging.path())?;
    let bytes = files.iter().map(|file| file.size).sum();
    let manifest = BundleManifest {
        format: MANIFEST_FORMAT,
        istio_version: ISTIO_VERSION.to_string(),
        istio_archives,
        images: bundled_images,
        models,
        files,
    };
    let text = serde_json::to_string_pretty(&manifest)?;
    std::fs::write(staging.path().join(MANIFEST_FILE), text)?;
    staging.finish(dir)?;
    Ok(CreatedBundle {
        dir: dir.clone(),
        images: manifest.images.iter().map(|image| image.image.clone()).collect(),
        platforms: manifest.istio_archives.keys().cloned().collect(),
        models: manifest.models.is_some(),
        files: manifest.files.len(),
        bytes,
    })
}

/// Copies the verified istioctl archive of `platform` from the cache (fetching and verifying it when the cache has
/// none) to `staging/istio/`; returns its path in the bundle.
async fn copy_istio_archive(settings: &Settings, staging: &Path, platform: Platform) -> anyhow::Result<String> {
    let mut options = FetchOptions::lab_default(settings.cache_dir.clone());
    options.platform = Some(platform);
    let fetched = fetch_istioctl_with_origin(&options)
        .await
        .with_context(|| format!("getting the verified istioctl archive for {platform}"))?;
    let layout = CacheLayout::new(
        &options.cache_dir,
        &options.version,
        &fetched.asset,
        &options.flavor.istioctl_in_archive(&options.version),
    );
    let archive = layout.archive_path();
    let relative = format!("istio/{}", fetched.asset);
    std::fs::create_dir_all(staging.join("istio"))?;
    std::fs::copy(&archive, staging.join(&relative)).with_context(|| {
        format!(
            "copying the verified archive \"{}\" (remove {} and run `cargo xtask istio fetch` to download it again)",
            archive.display(),
            layout.version_dir().display()
        )
    })?;
    Ok(relative)
}

/// The container images of a workload manifest.
fn container_images(manifest: &Manifest) -> Vec<String> {
    let spec = &manifest.object["spec"]["template"]["spec"];
    ["initContainers", "containers"]
        .iter()
        .flat_map(|key| spec[*key].as_array().cloned().unwrap_or_default())
        .filter_map(|container| container["image"].as_str().map(str::to_string))
        .collect()
}

/// A file name for an image reference: `docker.io/istio/pilot:1.12.7` → `docker.io_istio_pilot_1.12.7`.
fn file_name_of(image: &str) -> String {
    image
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Copies every file under the node's models directory to `target`, file by file (`minikube cp NODE:PATH`), and
/// checks the copy has the layout TF Serving needs.
fn copy_models_out(minikube: &Minikube, profile: &str, target: &Path) -> anyhow::Result<()> {
    let listed = minikube
        .command(
            "list the models on the node",
            &[
                "-p",
                profile,
                "ssh",
                "--",
                "sudo",
                "find",
                NODE_MODELS_DIR,
                "-type",
                "f",
            ],
        )
        .output()?;
    let files: Vec<&str> = listed
        .stdout
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with(NODE_MODELS_DIR))
        .collect();
    if !listed.success() || files.is_empty() {
        return Err(LabError::not_ready(
            format!("the node of profile \"{profile}\" holds no models under {NODE_MODELS_DIR}"),
            "run `cargo xtask lab up` first (it exports them), or bundle without them: `lab bundle create DIR --without-models`",
        )
        .into());
    }
    for file in files {
        let relative = file.trim_start_matches(NODE_MODELS_DIR).trim_start_matches('/');
        let local = target.join(relative);
        if let Some(parent) = local.parent() {
            std::fs::create_dir_all(parent)?;
        }
        minikube
            .command("copy a model file out of the node", &["-p", profile, "cp"])
            .arg(format!("{profile}:{file}"))
            .arg(&local)
            .timeout(Duration::from_secs(600))
            .run()?;
    }
    check_host_layout(target)?;
    Ok(())
}

/// Every file under `root` (relative, `/`-separated) with its size and sum, sorted.
fn list_files(root: &Path) -> anyhow::Result<Vec<BundledFile>> {
    let mut relative = Vec::new();
    collect_files(root, Path::new(""), &mut relative).with_context(|| format!("listing \"{}\"", root.display()))?;
    let mut found = relative
        .into_iter()
        .map(|file| {
            let path = root.join(&file);
            Ok(BundledFile {
                path: file.to_string_lossy().replace('\\', "/"),
                size: std::fs::metadata(&path)?.len(),
                sha256: sha256_of_file(&path).with_context(|| format!("hashing \"{}\"", path.display()))?,
            })
        })
        .collect::<anyhow::Result<Vec<BundledFile>>>()?;
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// A staging directory beside the bundle's, removed unless [`Staging::finish`] renamed it into place.
struct Staging {
    path: Option<PathBuf>,
}

impl Staging {
    fn beside(dir: &Path) -> anyhow::Result<Staging> {
        let parent = match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).with_context(|| format!("creating \"{}\"", parent.display()))?;
        let name = dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = parent.join(format!(".{name}.partial-{}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating \"{}\"", path.display()))?;
        Ok(Staging { path: Some(path) })
    }

    fn path(&self) -> &Path {
        self.path.as_deref().expect("staging until finished")
    }

    fn finish(mut self, dir: &Path) -> anyhow::Result<()> {
        let path = self.path.take().expect("staging until finished");
        if dir.exists() {
            // An empty directory the user made for it.
            std::fs::remove_dir(dir).with_context(|| format!("replacing the empty \"{}\"", dir.display()))?;
        }
        std::fs::rename(&path, dir).with_context(|| format!("moving the bundle into \"{}\"", dir.display()))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}
