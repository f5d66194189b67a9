//! What `lab up` applies before it walks the stages — the namespace, the model export and the first stage's
//! objects — as one [`BringUpPlan`], and `lab render`, which prints that same plan (or one stage's), so the two
//! cannot drift apart.

use std::path::{Path, PathBuf};

use crate::Settings;
use crate::definition::manifests::Manifest;
use crate::definition::plan::StagePlan;
use crate::definition::stages::{DEFAULT_RESET_STAGE, LabDefinition};
use crate::lifecycle::models::{self, HostModel};
use crate::lifecycle::stage::resolve_stage;

/// How a run of `lab up` puts the models on the node (decided from `--models` and the driver).
#[derive(Debug, Clone)]
pub enum ModelsPlan {
    /// The export Job (`--models export`, the default).
    Export,
    /// The `none` driver mounts this host directory as is.
    MountAsIs(PathBuf),
    /// Copy these models from this directory into the node.
    CopyIntoNode(PathBuf, Vec<HostModel>),
}

impl ModelsPlan {
    /// The host directory the Deployments mount as is, if any.
    pub fn host_dir(&self) -> Option<&Path> {
        match self {
            ModelsPlan::MountAsIs(dir) => Some(dir),
            ModelsPlan::Export | ModelsPlan::CopyIntoNode(..) => None,
        }
    }
}

/// The objects `lab up` applies before the stages, in its order.
#[derive(Debug, Clone)]
pub struct BringUpPlan {
    /// The first stage's `Namespace` objects, applied first (labelled for sidecar injection before any pod exists).
    pub namespaces: Vec<Manifest>,
    /// The model export's objects (script ConfigMap and Job); empty unless the models are exported in the cluster.
    pub export: Vec<Manifest>,
    /// The first stage (`stable`), whose objects are applied (and the lab's others pruned) once the models are in
    /// place.
    pub first_stage: StagePlan,
}

impl BringUpPlan {
    /// The bring-up for `models`: the `stable` stage of `lab` with the models' hostPaths as `models` mounts them.
    pub fn resolve(lab: &LabDefinition, models: &ModelsPlan) -> anyhow::Result<BringUpPlan> {
        let first_stage = StagePlan::resolve(lab, lab.stage(DEFAULT_RESET_STAGE)?, models.host_dir())?;
        Ok(BringUpPlan {
            namespaces: first_stage.namespaces().cloned().collect(),
            export: match models {
                ModelsPlan::Export => models::export_manifests()?,
                ModelsPlan::MountAsIs(_) | ModelsPlan::CopyIntoNode(..) => Vec::new(),
            },
            first_stage,
        })
    }

    /// Every object in the order `lab up` first applies it: the namespaces, the export, then the first stage's
    /// other objects (its namespaces, applied again with the rest, are unchanged by then).
    pub fn objects(&self) -> Vec<Manifest> {
        let rest = self
            .first_stage
            .manifests
            .iter()
            .filter(|manifest| manifest.kind() != "Namespace");
        self.namespaces
            .iter()
            .chain(&self.export)
            .chain(rest)
            .cloned()
            .collect()
    }
}

/// What `lab render` prints: with `stage`, that stage's objects as `lab stage` applies them; without, the
/// [`BringUpPlan`] of `lab up` with the default `--models export` — each with the managed-by label, exactly as
/// sent.
pub fn render(settings: &Settings, lab: &LabDefinition, stage: Option<&str>) -> anyhow::Result<Vec<Manifest>> {
    let mut manifests = match stage {
        Some(name) => resolve_stage(settings, lab, lab.stage(name)?)?.manifests,
        None => BringUpPlan::resolve(lab, &ModelsPlan::Export)?.objects(),
    };
    for manifest in &mut manifests {
        manifest.object = crate::cluster::apply::with_managed_by_label(&manifest.object);
    }
    Ok(manifests)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(manifests: &[Manifest]) -> Vec<String> {
        manifests
            .iter()
            .map(|manifest| format!("{}/{}", manifest.kind(), manifest.name()))
            .collect()
    }

    #[test]
    fn the_bring_up_puts_the_namespace_then_the_export_then_the_first_stage() {
        let lab = LabDefinition::load_default().unwrap();
        let plan = BringUpPlan::resolve(&lab, &ModelsPlan::Export).unwrap();
        assert_eq!(
            names(&plan.objects()),
            [
                "Namespace/tf-serving",
                "ConfigMap/export-models-script",
                "Job/export-models",
                "ConfigMap/resnet50-configs",
                "Deployment/image-classifier-resnet50",
                "Service/image-classifier",
                "Gateway/image-classifier-gateway",
                "VirtualService/image-classifier",
            ]
        );
        assert_eq!(plan.first_stage.name, DEFAULT_RESET_STAGE);
    }

    #[test]
    fn models_from_the_host_are_not_exported_and_mounted_only_as_is() {
        let lab = LabDefinition::load_default().unwrap();
        let mounted = BringUpPlan::resolve(&lab, &ModelsPlan::MountAsIs("/home/me/models".into())).unwrap();
        assert!(mounted.export.is_empty());
        let deployment = mounted
            .objects()
            .into_iter()
            .find(|m| m.kind() == "Deployment")
            .unwrap();
        assert_eq!(
            deployment.object["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"],
            "/home/me/models/resnet50"
        );
        let copied = BringUpPlan::resolve(&lab, &ModelsPlan::CopyIntoNode("/m".into(), Vec::new())).unwrap();
        assert!(copied.export.is_empty());
        assert_eq!(
            copied.first_stage.manifests,
            StagePlan::resolve(&lab, lab.stage("stable").unwrap(), None)
                .unwrap()
                .manifests
        );
    }
}
