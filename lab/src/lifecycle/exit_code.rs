//! The one mapping from a command's failure to its exit code (README: 0 ok; 1 the lab, the cluster or the machine is
//! not in the required state, or an assertion failed; 2 usage or internal error).

use crate::error::LabError;
use crate::istio::FetchError;

/// The exit code `main` uses for an error: 1 when something outside the lab's control is not in the required state
/// (a [`LabError::NotReady`] anywhere in the chain — an unreachable cluster, a missing kubeconfig — or a download
/// that ran out of retries, as offline), 2 otherwise.
pub fn exit_code_for(error: &anyhow::Error) -> u8 {
    let not_ready = error.chain().any(|cause| {
        matches!(cause.downcast_ref::<LabError>(), Some(LabError::NotReady { .. }))
            || matches!(cause.downcast_ref::<FetchError>(), Some(FetchError::GaveUp { .. }))
    });
    if not_ready { 1 } else { 2 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::PartialFile;

    #[test]
    fn not_ready_maps_to_exit_1_even_under_context() {
        let error = anyhow::Error::new(LabError::not_ready("istiod is not running", "run `cargo xtask lab up`"))
            .context("checking istio");
        assert_eq!(exit_code_for(&error), 1);
        let rendered = format!("{:#}", error);
        assert!(rendered.contains("help: run `cargo xtask lab up`"), "{rendered}");
    }

    #[test]
    fn a_download_out_of_retries_is_the_machine_not_ready() {
        // Before, an offline `istio fetch` exited 2, like a bug in the tool.
        let error = anyhow::Error::new(FetchError::GaveUp {
            url: "https://github.com/istio/istio/releases/download/1.12.7/x.tar.gz".into(),
            attempts: 5,
            last_error: "connection refused".into(),
            partial: PartialFile::None,
        })
        .context("getting istioctl");
        assert_eq!(exit_code_for(&error), 1);
    }

    #[test]
    fn other_errors_map_to_exit_2() {
        let error = anyhow::Error::new(LabError::NotImplemented {
            command: "lab predict".into(),
        });
        assert_eq!(exit_code_for(&error), 2);
        assert_eq!(error.to_string(), "`lab predict` is not implemented yet");
    }
}
