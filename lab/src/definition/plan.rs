//! A stage resolved once: its objects as `lab` applies them (the models' hostPaths rewritten when they are mounted
//! from a host directory), its routing parsed from its VirtualService, and its assertions. Applying, pruning, the
//! gateway wait, the references and the assertions all read the same [`StagePlan`], so a stage's manifests are
//! loaded once per command and no step sees other objects than the one before it.

use std::path::Path;

use serde_json::Value;

use crate::definition::manifests::Manifest;
use crate::definition::routing::VirtualServiceSpec;
use crate::definition::stages::{AssertionSpec, LabDefinition, Stage};

/// Where the models live on the node; the Deployments mount `<NODE_MODELS_DIR>/<model>`.
pub const NODE_MODELS_DIR: &str = "/data/canary-lab/models";

/// One stage, resolved: what is applied, how it routes and what is asserted.
#[derive(Debug, Clone)]
pub struct StagePlan {
    /// The stage name, e.g. `split-70-30`.
    pub name: String,
    /// Every object of the stage in apply order, with the models' hostPaths as they are mounted.
    pub manifests: Vec<Manifest>,
    /// Where the traffic must go.
    pub assertions: Vec<AssertionSpec>,
    /// The routing of the stage's one VirtualService; `None` when it has none, or several, or one that does not
    /// parse ([`StagePlan::routing`] then says why). A stage can still be applied without it.
    routing: Option<VirtualServiceSpec>,
}

impl StagePlan {
    /// Resolves `stage` of `lab`: loads its manifests (the only read of them for the command), rewrites the
    /// Deployments' model hostPaths to `models_host_dir` when the models are mounted from a host directory as is
    /// (the `none` driver; the caller reads where from the lab's state), and parses its routing.
    pub fn resolve(lab: &LabDefinition, stage: &Stage, models_host_dir: Option<&Path>) -> anyhow::Result<StagePlan> {
        let mut manifests = lab.stage_manifests(stage)?;
        if let Some(dir) = models_host_dir {
            mount_host_dir(&mut manifests, dir);
        }
        let routing = VirtualServiceSpec::from_manifests(&manifests).ok();
        Ok(StagePlan {
            name: stage.name.clone(),
            manifests,
            assertions: stage.assertions.clone(),
            routing,
        })
    }

    /// The routing of the stage's VirtualService, or why it has none usable (no VirtualService, several, or one
    /// that does not parse).
    pub fn routing(&self) -> anyhow::Result<&VirtualServiceSpec> {
        match &self.routing {
            Some(routing) => Ok(routing),
            // Parsed again only to say why it failed at resolution (the parse is deterministic).
            None => Err(VirtualServiceSpec::from_manifests(&self.manifests)
                .err()
                .unwrap_or_else(|| anyhow::anyhow!("stage \"{}\" has no routing", self.name))),
        }
    }

    /// The stage's `Namespace` objects, which `lab up` applies (labelled for sidecar injection) before anything
    /// else.
    pub fn namespaces(&self) -> impl Iterator<Item = &Manifest> {
        self.manifests.iter().filter(|manifest| manifest.kind() == "Namespace")
    }
}

/// Rewrites the Deployments' model hostPaths (`<NODE_MODELS_DIR>/<model>`) to `<dir>/<model>`: with the `none`
/// driver the models are mounted from the user's directory as is.
pub fn mount_host_dir(manifests: &mut [Manifest], dir: &Path) {
    for manifest in manifests.iter_mut().filter(|manifest| manifest.kind() == "Deployment") {
        let Some(volumes) = manifest.object["spec"]["template"]["spec"]["volumes"].as_array_mut() else {
            continue;
        };
        for volume in volumes {
            let Some(path) = volume["hostPath"]["path"].as_str() else {
                continue;
            };
            if let Some(model) = path.strip_prefix(&format!("{NODE_MODELS_DIR}/")) {
                volume["hostPath"]["path"] = Value::String(dir.join(model).display().to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_paths(plan: &StagePlan) -> Vec<String> {
        plan.manifests
            .iter()
            .filter(|manifest| manifest.kind() == "Deployment")
            .map(|deployment| {
                deployment.object["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn a_plan_mounts_the_host_dir_only_when_given_one() {
        let lab = LabDefinition::load_default().unwrap();
        let stage = lab.stage("canary-deployed").unwrap();
        let node = StagePlan::resolve(&lab, stage, None).unwrap();
        assert_eq!(
            model_paths(&node),
            ["/data/canary-lab/models/resnet50", "/data/canary-lab/models/resnet101"]
        );
        let host = StagePlan::resolve(&lab, stage, Some(Path::new("/home/me/models"))).unwrap();
        assert_eq!(
            model_paths(&host),
            ["/home/me/models/resnet50", "/home/me/models/resnet101"]
        );
        assert_eq!(host.manifests.len(), node.manifests.len());
        assert_eq!(host.assertions, stage.assertions);
    }

    #[test]
    fn a_plan_carries_the_routing_of_its_virtual_service() {
        let lab = LabDefinition::load_default().unwrap();
        let plan = StagePlan::resolve(&lab, lab.stage("split-70-30").unwrap(), None).unwrap();
        let route = plan
            .routing()
            .unwrap()
            .route_for("/", &Default::default())
            .unwrap()
            .unwrap();
        assert_eq!(route.weights().values().sum::<u32>(), 100);
        assert_eq!(plan.namespaces().count(), 1);
    }

    #[test]
    fn a_stage_without_a_virtual_service_resolves_and_says_why_it_has_no_routing() {
        let lab = LabDefinition::load_default().unwrap();
        let mut stage = lab.stage("stable").unwrap().clone();
        stage.manifests.retain(|file| !file.starts_with("virtualservice"));
        let plan = StagePlan::resolve(&lab, &stage, None).unwrap();
        let error = plan.routing().unwrap_err().to_string();
        assert!(error.contains("exactly one VirtualService"), "{error}");
    }
}
