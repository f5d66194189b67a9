//! Offline rooms: a bundle is everything `lab up` would download — the verified istioctl archive, every container
//! image the lab runs, and the exported models — in one directory with a manifest of sums, made once where `lab
//! up` has run (`lab bundle create DIR`, [`create`]) and used on laptops without internet (`lab up --bundle DIR`).
//!
//! Before anything is loaded, [`VerifiedBundle::open`] checks every file the manifest lists (present, the size and
//! the SHA-256 it records, a path inside the bundle) and refuses the bundle naming the first file that is not, so a
//! copy cut short on a USB stick never half-loads. Loading then puts the images into the node (`minikube image
//! load`, skipping what the node has), and `lab up` takes the archive and the models from the bundle.

pub mod create;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::LabError;
use crate::istio::Platform;
use crate::istio::verify::sha256_of_file;
use crate::tool::minikube::Minikube;

/// The manifest's file name inside a bundle.
pub const MANIFEST_FILE: &str = "bundle.json";

/// The manifest format this canary-lab writes and reads.
pub const MANIFEST_FORMAT: u32 = 2;

/// The bundle's manifest (`bundle.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The Istio release the archive holds, e.g. `1.12.7`.
    pub istio_version: String,
    /// The istioctl archive of each platform bundled (`linux-amd64` → `istio/istioctl-1.12.7-linux-amd64.tar.gz`,
    /// relative to the bundle): a room of laptops may mix Linux and macOS, Intel and ARM.
    pub istio_archives: BTreeMap<String, String>,
    /// Each container image and its saved archive.
    pub images: Vec<BundledImage>,
    /// The models directory (`models`, laid out as `--models host:` takes it), when the models are bundled.
    pub models: Option<String>,
    /// Every file of the bundle but the manifest, with its size and SHA-256.
    pub files: Vec<BundledFile>,
}

/// A container image in the bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundledImage {
    /// The image reference as the manifests name it, e.g. `tensorflow/serving:2.5.1`.
    pub image: String,
    /// Its archive (`minikube image save`), relative to the bundle.
    pub file: String,
}

/// A file of the bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundledFile {
    /// Relative to the bundle, `/`-separated.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// A bundle whose every file was checked against its manifest.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    /// The bundle directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: BundleManifest,
}

/// The help line of a bundle that cannot be used.
const REMAKE_HELP: &str = "copy the bundle again from the machine that made it, or make it again there with `cargo xtask lab bundle create DIR`";

impl VerifiedBundle {
    /// Reads `dir/bundle.json` and checks every file it lists; a missing, short, changed or escaping file refuses
    /// the bundle with that file named (exit 1), before anything is loaded.
    pub fn open(dir: &Path) -> anyhow::Result<VerifiedBundle> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&manifest_path).map_err(|error| {
            LabError::not_ready(
                format!("\"{}\" is not a bundle: {error}", manifest_path.display()),
                REMAKE_HELP,
            )
        })?;
        let manifest: BundleManifest = serde_json::from_str(&text).map_err(|error| {
            LabError::not_ready(
                format!("\"{}\" is not a bundle manifest: {error}", manifest_path.display()),
                REMAKE_HELP,
            )
        })?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(LabError::not_ready(
                format!(
                    "\"{}\" is a bundle of format {}; this canary-lab reads format {MANIFEST_FORMAT}",
                    manifest_path.display(),
                    manifest.format
                ),
                "make the bundle with the same canary-lab as the laptops run",
            )
            .into());
        }
        let listed = |path: &str| manifest.files.iter().any(|file| file.path == path);
        let referenced = (manifest.istio_archives.values().map(String::as_str))
            .chain(manifest.images.iter().map(|image| image.file.as_str()));
        for path in referenced {
            if !listed(path) {
                return Err(bad_file(dir, path, "is not in the manifest's list of files").into());
            }
        }
        for file in &manifest.files {
            check_file(dir, file)?;
        }
        Ok(VerifiedBundle {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// The istioctl archive for `platform`, or the refusal that names the platforms the bundle has and how to
    /// make one with this one.
    pub fn istio_archive_for(&self, platform: Platform) -> Result<PathBuf, LabError> {
        match self.manifest.istio_archives.get(platform.as_str()) {
            Some(archive) => Ok(self.dir.join(archive)),
            None => {
                let bundled: Vec<&str> = self.manifest.istio_archives.keys().map(String::as_str).collect();
                Err(LabError::not_ready(
                    format!(
                        "the bundle \"{}\" holds istioctl for {} only, and this machine is {platform}; nothing was \
                         loaded",
                        self.dir.display(),
                        bundled.join(", ")
                    ),
                    format!(
                        "make the bundle again with this platform too: `cargo xtask lab bundle create DIR --platform \
                         {platform}` (repeat --platform for each kind of laptop, or use --all-platforms)"
                    ),
                ))
            }
        }
    }

    /// The models directory, when the models are bundled.
    pub fn models_dir(&self) -> Option<PathBuf> {
        self.manifest.models.as_ref().map(|models| self.dir.join(models))
    }

    /// Loads every image of the bundle the node does not have yet (`minikube image load`); returns the images
    /// loaded and those the node had.
    pub fn load_images(&self, minikube: &Minikube, profile: &str) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        let present = node_images(minikube, profile)?;
        let (mut loaded, mut had) = (Vec::new(), Vec::new());
        for image in &self.manifest.images {
            if present.contains(&normalized_image(&image.image)) {
                had.push(image.image.clone());
                continue;
            }
            minikube
                .command(
                    "load an image of the bundle into the node",
                    &["-p", profile, "image", "load"],
                )
                .arg(self.dir.join(&image.file))
                .timeout(std::time::Duration::from_secs(1800))
                .run()?;
            loaded.push(image.image.clone());
        }
        Ok((loaded, had))
    }
}

/// The images the node's container runtime has, normalized (`minikube image ls`, one reference per line).
pub fn node_images(minikube: &Minikube, profile: &str) -> anyhow::Result<Vec<String>> {
    let listed = minikube
        .command("list the node's images", &["-p", profile, "image", "ls"])
        .run()?;
    Ok(listed
        .stdout
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(normalized_image)
        .collect())
}

/// An image reference as a container runtime lists it: Docker Hub's registry and `library/` written out
/// (`tensorflow/serving:2.5.1` → `docker.io/tensorflow/serving:2.5.1`, `nginx` → `docker.io/library/nginx:latest`;
/// the reference grammar of distribution/reference, `normalize.go`).
pub fn normalized_image(image: &str) -> String {
    let (name, tag) = match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_string(), tag.to_string()),
        _ => (image.to_string(), "latest".to_string()),
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_registry = name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let name = match (has_registry, name.contains('/')) {
        (true, _) => name,
        (false, true) => format!("docker.io/{name}"),
        (false, false) => format!("docker.io/library/{name}"),
    };
    format!("{name}:{tag}")
}

/// Checks one listed file: a relative path inside the bundle, present, its size and its sum.
fn check_file(dir: &Path, file: &BundledFile) -> Result<(), LabError> {
    let relative = Path::new(&file.path);
    if !relative.components().all(|part| matches!(part, Component::Normal(_))) {
        return Err(bad_file(dir, &file.path, "is not a path inside the bundle"));
    }
    let path = dir.join(relative);
    let size = match std::fs::metadata(&path) {
        Ok(metadata) if metadata.is_file() => metadata.len(),
        Ok(_) => return Err(bad_file(dir, &file.path, "is not a file")),
        Err(_) => return Err(bad_file(dir, &file.path, "is missing")),
    };
    if size != file.size {
        return Err(bad_file(
            dir,
            &file.path,
            &format!("has {size} bytes where the manifest says {}", file.size),
        ));
    }
    let actual =
        sha256_of_file(&path).map_err(|error| bad_file(dir, &file.path, &format!("cannot be read: {error}")))?;
    if actual != file.sha256 {
        return Err(bad_file(
            dir,
            &file.path,
            &format!("has SHA-256 {actual} where the manifest says {}", file.sha256),
        ));
    }
    Ok(())
}

/// The refusal of a bundle for one of its files.
fn bad_file(dir: &Path, path: &str, problem: &str) -> LabError {
    LabError::not_ready(
        format!(
            "the bundle \"{}\" cannot be used: \"{path}\" {problem}; nothing was loaded",
            dir.display()
        ),
        REMAKE_HELP,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn image_references_are_normalized_as_a_runtime_lists_them() {
        assert_eq!(
            normalized_image("tensorflow/serving:2.5.1"),
            "docker.io/tensorflow/serving:2.5.1"
        );
        assert_eq!(
            normalized_image("docker.io/istio/pilot:1.12.7"),
            "docker.io/istio/pilot:1.12.7"
        );
        assert_eq!(normalized_image("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(normalized_image("localhost:5000/x/y:2"), "localhost:5000/x/y:2");
        assert_eq!(normalized_image("localhost:5000/x/y"), "localhost:5000/x/y:latest");
    }

    fn bundle_with(file: &str, content: &[u8], listed: BundledFile) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("istio")).unwrap();
        std::fs::write(dir.path().join(file), content).unwrap();
        let manifest = BundleManifest {
            format: MANIFEST_FORMAT,
            istio_version: "1.12.7".into(),
            istio_archives: BTreeMap::from([("linux-amd64".to_string(), listed.path.clone())]),
            images: Vec::new(),
            models: None,
            files: vec![listed],
        };
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            serde_json::to_string(&manifest).unwrap(),
        )
        .unwrap();
        dir
    }

    #[test]
    fn a_file_with_another_sum_or_size_or_path_is_named() {
        let good = BundledFile {
            path: "istio/a.tar.gz".into(),
            size: 5,
            sha256: hex::encode(Sha256::digest(b"hello")),
        };
        let dir = bundle_with("istio/a.tar.gz", b"hello", good.clone());
        VerifiedBundle::open(dir.path()).unwrap();
        let dir = bundle_with("istio/a.tar.gz", b"hellO", good.clone());
        let error = VerifiedBundle::open(dir.path()).unwrap_err().to_string();
        assert!(error.contains("\"istio/a.tar.gz\" has SHA-256"), "{error}");
        let dir = bundle_with("istio/a.tar.gz", b"hell", good.clone());
        let error = VerifiedBundle::open(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("\"istio/a.tar.gz\" has 4 bytes where the manifest says 5"),
            "{error}"
        );
        let escaping = BundledFile {
            path: "../a.tar.gz".into(),
            ..good
        };
        let dir = bundle_with("istio/a.tar.gz", b"hello", escaping);
        let error = VerifiedBundle::open(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("\"../a.tar.gz\" is not a path inside the bundle"),
            "{error}"
        );
    }
}
