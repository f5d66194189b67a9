//! The commands a learner types for a stage: `kubectl apply -f` of each of its manifest files in the stage's order,
//! `kubectl delete` of the objects the previous stage had and this one drops (what `lab stage` prunes), and the
//! lab's own `lab stage NAME` and `lab verify NAME`.

use std::path::Path;

use crate::definition::manifests::Manifest;

/// What a learner types for one stage.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnerCommands {
    /// By hand, as in the original lab: the applies in order, then the deletes.
    pub by_hand: Vec<String>,
    /// The lab applies the stage and asserts it.
    pub lab_stage: String,
    /// The lab checks what the learner applied, writing nothing.
    pub lab_verify: String,
}

impl LearnerCommands {
    /// The commands of stage `stage`, whose manifest `files` (in the directory `manifests_dir`, as
    /// [`shown_dir`] writes it) apply `current`; `previous` holds the objects of the stage before it, if any.
    pub fn for_stage(
        stage: &str,
        files: &[String],
        manifests_dir: &str,
        previous: Option<&[Manifest]>,
        current: &[Manifest],
    ) -> LearnerCommands {
        let mut by_hand: Vec<String> = files
            .iter()
            .map(|file| format!("kubectl apply -f {}", shell_quote(&format!("{manifests_dir}/{file}"))))
            .collect();
        for dropped in previous
            .unwrap_or_default()
            .iter()
            .filter(|object| !current.iter().any(|kept| same_object(object, kept)))
        {
            let mut line = format!("kubectl delete {} {}", resource(dropped), shell_quote(dropped.name()));
            if let Some(namespace) = dropped.namespace() {
                line.push_str(&format!(" -n {}", shell_quote(namespace)));
            }
            by_hand.push(line);
        }
        LearnerCommands {
            by_hand,
            lab_stage: format!("cargo xtask lab stage {}", shell_quote(stage)),
            lab_verify: format!("cargo xtask lab verify {}", shell_quote(stage)),
        }
    }
}

/// How a manifests directory is written in commands: relative to the current directory when it is below it (the
/// repository root, where `cargo xtask` runs: `assets/manifests`), else as given.
pub fn shown_dir(dir: &Path) -> String {
    let relative = std::env::current_dir().ok().and_then(|current| {
        let current = current.canonicalize().ok()?;
        let dir = dir.canonicalize().ok()?;
        dir.strip_prefix(&current).ok().map(Path::to_path_buf)
    });
    match relative {
        Some(relative) if !relative.as_os_str().is_empty() => relative.display().to_string(),
        // Elsewhere, the directory without `..` (the assets' default path is `lab/../assets`).
        _ => dir
            .canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .display()
            .to_string(),
    }
}

/// Whether two manifests are the same object (API group, kind, namespace and name).
pub(crate) fn same_object(a: &Manifest, b: &Manifest) -> bool {
    group(a) == group(b) && a.kind() == b.kind() && a.namespace() == b.namespace() && a.name() == b.name()
}

/// The API group of a manifest's `apiVersion` (`apps/v1` → `apps`, `v1` → the core group, empty).
fn group(manifest: &Manifest) -> &str {
    manifest
        .api_version()
        .rsplit_once('/')
        .map(|(group, _)| group)
        .unwrap_or_default()
}

/// The resource as kubectl names it without ambiguity: `deployment.apps`, `virtualservice.networking.istio.io`,
/// `configmap`.
fn resource(manifest: &Manifest) -> String {
    let kind = manifest.kind().to_lowercase();
    match group(manifest) {
        "" => kind,
        group => format!("{kind}.{group}"),
    }
}

/// `text` as one shell word: as is when it holds only safe characters, else in single quotes.
fn shell_quote(text: &str) -> String {
    let safe = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@+,".contains(c));
    if safe {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::manifests::parse_documents;

    fn objects(yaml: &str) -> Vec<Manifest> {
        parse_documents("f.yaml", yaml).unwrap()
    }

    #[test]
    fn applies_every_file_in_order_and_deletes_what_the_stage_drops() {
        let previous = objects(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: canary, namespace: tf-serving}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: svc, namespace: tf-serving}\n---\napiVersion: networking.istio.io/v1alpha3\nkind: DestinationRule\nmetadata: {name: dr, namespace: tf-serving}\n",
        );
        let current = objects("apiVersion: v1\nkind: Service\nmetadata: {name: svc, namespace: tf-serving}\n");
        let commands = LearnerCommands::for_stage(
            "stable",
            &["service.yaml".to_string(), "my vs.yaml".to_string()],
            "/labs/manifests",
            Some(&previous),
            &current,
        );
        assert_eq!(
            commands.by_hand,
            [
                "kubectl apply -f /labs/manifests/service.yaml",
                "kubectl apply -f '/labs/manifests/my vs.yaml'",
                "kubectl delete deployment.apps canary -n tf-serving",
                "kubectl delete destinationrule.networking.istio.io dr -n tf-serving",
            ]
        );
        assert_eq!(commands.lab_stage, "cargo xtask lab stage stable");
        assert_eq!(commands.lab_verify, "cargo xtask lab verify stable");
    }

    #[test]
    fn a_directory_below_the_current_one_is_shown_relative() {
        let here = std::env::current_dir().unwrap();
        assert_eq!(shown_dir(&here.join("src")), "src");
        assert_eq!(shown_dir(Path::new("/nonexistent/dir")), "/nonexistent/dir");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
