//! The models on the node's hostPath: exported in the cluster by a Job (`--models export`), or taken from a
//! directory the user exported already (`--models host:DIR`), checked first and copied into the node.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use serde_json::Value;

use crate::cluster::apply::{ObjectChange, apply_all};
use crate::cluster::diagnose::diagnose_pods;
use crate::cluster::wait::{diagnose_timeout, wait_for};
use crate::cluster::{Cluster, LAB_NAMESPACE};
use crate::definition::manifests::{self, Manifest};
use crate::tool::minikube::Minikube;

/// The models the lab serves, by directory name.
pub const MODEL_NAMES: &[&str] = &["resnet50", "resnet101"];
/// Where the models live on the node; defined with the hostPath rewrite ([`crate::definition::plan`]).
pub use crate::definition::plan::NODE_MODELS_DIR;
/// The manifest file with the export Job and its script's ConfigMap.
pub const EXPORT_MANIFEST: &str = "export-models.yaml";
/// The export Job's name.
pub const EXPORT_JOB: &str = "export-models";
/// The ConfigMap holding the export script.
pub const EXPORT_SCRIPT_CONFIGMAP: &str = "export-models-script";

/// Where the models come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A Job in the cluster exports them (the default).
    Export,
    /// The user exported them already into this directory (`<dir>/resnet50/<version>/saved_model.pb`, …).
    Host(PathBuf),
}

impl FromStr for ModelSource {
    type Err = String;

    fn from_str(text: &str) -> Result<ModelSource, String> {
        match text.split_once(':') {
            None if text == "export" => Ok(ModelSource::Export),
            Some(("host", dir)) if !dir.is_empty() => Ok(ModelSource::Host(PathBuf::from(dir))),
            _ => Err(format!("expected `export` or `host:DIR`, found \"{text}\"")),
        }
    }
}

/// One model found in a host directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostModel {
    /// `resnet50` or `resnet101`.
    pub name: String,
    /// The version directory name, e.g. `1`.
    pub version: String,
    /// Every file under the version directory, relative to it.
    pub files: Vec<PathBuf>,
}

/// A host directory without the layout TF Serving needs.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} does not hold the models as TF Serving needs them: {problem}\nhelp: export them as <dir>/resnet50/1/ and <dir>/resnet101/1/, each with saved_model.pb and variables/ (scripts/export_models.py --out <dir> does), or use `--models export`",
    .dir.display()
)]
pub struct BadModelLayout {
    /// The directory given.
    pub dir: PathBuf,
    /// What is missing.
    pub problem: String,
}

/// Checks `<dir>/<model>/<version>/{saved_model.pb,variables/}` for both models; the highest numeric version wins.
pub fn check_host_layout(dir: &Path) -> Result<Vec<HostModel>, BadModelLayout> {
    let bad = |problem: String| BadModelLayout {
        dir: dir.to_path_buf(),
        problem,
    };
    let mut found = Vec::new();
    for name in MODEL_NAMES {
        let model_dir = dir.join(name);
        let entries = std::fs::read_dir(&model_dir).map_err(|_| bad(format!("{} is missing", model_dir.display())))?;
        let mut versions: Vec<u64> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().is_dir())
            .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
            .collect();
        versions.sort_unstable();
        let Some(version) = versions.last() else {
            return Err(bad(format!(
                "{} has no numeric version directory (e.g. {name}/1)",
                model_dir.display()
            )));
        };
        let version_dir = model_dir.join(version.to_string());
        if !version_dir.join("saved_model.pb").is_file() {
            return Err(bad(format!(
                "{} is missing",
                version_dir.join("saved_model.pb").display()
            )));
        }
        if !version_dir.join("variables").is_dir() {
            return Err(bad(format!("{} is missing", version_dir.join("variables").display())));
        }
        let mut files = Vec::new();
        collect_files(&version_dir, Path::new(""), &mut files)
            .map_err(|error| bad(format!("reading {}: {error}", version_dir.display())))?;
        found.push(HostModel {
            name: name.to_string(),
            version: version.to_string(),
            files,
        });
    }
    Ok(found)
}

/// Every file under `root.join(relative)`, as paths relative to `root`, in name order.
pub(crate) fn collect_files(root: &Path, relative: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(root.join(relative))?.filter_map(Result::ok).collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = relative.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            collect_files(root, &path, files)?
        } else {
            files.push(path)
        }
    }
    Ok(())
}

/// The export objects (script ConfigMap and Job) from `assets/manifests/export-models.yaml`, with the script's
/// text from `scripts/export_models.py` filled in.
pub fn export_manifests() -> anyhow::Result<Vec<Manifest>> {
    let mut loaded = manifests::load_files(
        &crate::definition::assets::manifests_dir(),
        &[EXPORT_MANIFEST.to_string()],
    )?;
    let script_path = crate::definition::assets::assets_dir().join("../scripts/export_models.py");
    let script = std::fs::read_to_string(&script_path)
        .with_context(|| format!("reading the export script {}", script_path.display()))?;
    for manifest in &mut loaded {
        if manifest.kind() == "ConfigMap" && manifest.name() == EXPORT_SCRIPT_CONFIGMAP {
            manifest.object["data"]["export_models.py"] = Value::String(script.clone());
        }
    }
    Ok(loaded)
}

/// Applies the export objects (`export`, from [`export_manifests`]) and waits (on a watch) until the Job completes,
/// at most `deadline`.
pub async fn export_in_cluster(
    cluster: &Cluster,
    export: &[Manifest],
    deadline: Duration,
) -> anyhow::Result<Vec<ObjectChange>> {
    let changes = apply_all(cluster, export).await?;
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), LAB_NAMESPACE);
    let object = format!("Job/{EXPORT_JOB} in namespace \"{LAB_NAMESPACE}\"");
    let waited = wait_for(jobs, EXPORT_JOB, &object, "complete", job_finished, deadline).await;
    let pods_selector = format!("job-name={EXPORT_JOB}");
    match waited {
        Ok(job) if job.as_ref().is_some_and(|job| job_has_condition(job, "Failed")) => {
            let diagnosis = diagnose_pods(cluster, LAB_NAMESPACE, &pods_selector).await;
            anyhow::bail!(
                "{object} failed\n{}\nhelp: {}",
                diagnosis.text.trim_end(),
                diagnosis.help.unwrap_or_else(|| format!(
                    "read its log with `kubectl -n {LAB_NAMESPACE} logs job/{EXPORT_JOB}`, delete it with `kubectl -n {LAB_NAMESPACE} delete job {EXPORT_JOB}` and run `cargo xtask lab up` again"
                ))
            )
        }
        Ok(_) => Ok(changes),
        Err(error) => {
            let help = format!(
                "read the export's log with `kubectl -n {LAB_NAMESPACE} logs job/{EXPORT_JOB}`; the first export downloads about 300 MB of weights"
            );
            Err(diagnose_timeout(error, diagnose_pods(cluster, LAB_NAMESPACE, &pods_selector), help).await)
        }
    }
}

/// The wait's condition: the Job has a `Complete` (or `Failed`) condition that is True. A failure also ends the
/// wait, and the caller reports it from the returned Job.
fn job_finished(job: Option<&Job>) -> bool {
    job.is_some_and(|job| job_has_condition(job, "Complete") || job_has_condition(job, "Failed"))
}

fn job_has_condition(job: &Job, wanted: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition.type_ == wanted && condition.status == "True")
        })
}

/// What copying models into the node did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Models copied.
    pub copied: Vec<String>,
    /// Models already on the node.
    pub present: Vec<String>,
}

/// Copies host models into the node (drivers other than `none`): `minikube cp` per file, skipping a model whose
/// `saved_model.pb` is already there (`minikube ssh -- test -f …`).
pub fn copy_into_node(
    minikube: &Minikube,
    profile: &str,
    dir: &Path,
    models: &[HostModel],
) -> anyhow::Result<CopyReport> {
    let mut report = CopyReport::default();
    for model in models {
        let node_dir = format!("{NODE_MODELS_DIR}/{}/{}", model.name, model.version);
        let marker = format!("{node_dir}/saved_model.pb");
        let probe = minikube
            .command(
                "look for the model on the node",
                &["-p", profile, "ssh", "--", "sudo", "test", "-f", &marker],
            )
            .output()?;
        if probe.success() {
            report.present.push(model.name.clone());
            continue;
        }
        for file in &model.files {
            let source = dir.join(&model.name).join(&model.version).join(file);
            let target = format!("{node_dir}/{}", file.display());
            minikube
                .command("copy a model file into the node", &["-p", profile, "cp"])
                .arg(&source)
                .arg(&target)
                .timeout(Duration::from_secs(600))
                .run()?;
        }
        report.copied.push(model.name.clone());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved_model(root: &Path, name: &str, version: &str) {
        let dir = root.join(name).join(version);
        std::fs::create_dir_all(dir.join("variables")).unwrap();
        std::fs::write(dir.join("saved_model.pb"), b"pb").unwrap();
        std::fs::write(dir.join("variables/variables.index"), b"i").unwrap();
    }

    #[test]
    fn model_sources_parse() {
        assert_eq!("export".parse(), Ok(ModelSource::Export));
        assert_eq!("host:/m".parse(), Ok(ModelSource::Host(PathBuf::from("/m"))));
        assert!("host:".parse::<ModelSource>().is_err());
        assert!("s3://x".parse::<ModelSource>().is_err());
    }

    #[test]
    fn a_complete_layout_lists_the_latest_version_and_its_files() {
        let dir = tempfile::tempdir().unwrap();
        saved_model(dir.path(), "resnet50", "1");
        saved_model(dir.path(), "resnet50", "2");
        saved_model(dir.path(), "resnet101", "1");
        let models = check_host_layout(dir.path()).unwrap();
        assert_eq!(models[0].version, "2");
        assert_eq!(
            models[0].files,
            [
                PathBuf::from("saved_model.pb"),
                PathBuf::from("variables/variables.index")
            ]
        );
    }

    #[test]
    fn a_missing_piece_is_named() {
        let dir = tempfile::tempdir().unwrap();
        saved_model(dir.path(), "resnet50", "1");
        let error = check_host_layout(dir.path()).unwrap_err();
        assert!(error.problem.ends_with("resnet101 is missing"), "{error}");
        std::fs::create_dir_all(dir.path().join("resnet101/1")).unwrap();
        let error = check_host_layout(dir.path()).unwrap_err();
        assert!(
            error.problem.contains("resnet101/1/saved_model.pb is missing"),
            "{error}"
        );
        assert!(error.to_string().contains("help: export them as"), "{error}");
    }

    #[test]
    fn the_export_script_is_filled_in_and_the_host_dir_can_be_mounted() {
        let export = export_manifests().unwrap();
        let script = export[0].object["data"]["export_models.py"].as_str().unwrap();
        assert!(script.contains("def plan("), "the ConfigMap carries the script");
        let lab = crate::definition::stages::LabDefinition::load_default().unwrap();
        let mut stable = lab.stage_manifests(lab.stage("stable").unwrap()).unwrap();
        crate::definition::plan::mount_host_dir(&mut stable, Path::new("/home/me/models"));
        let deployment = stable.iter().find(|manifest| manifest.kind() == "Deployment").unwrap();
        assert_eq!(
            deployment.object["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"],
            "/home/me/models/resnet50"
        );
    }
}
