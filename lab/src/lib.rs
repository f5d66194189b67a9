//! canary-lab: bring up the "TensorFlow canary release on minikube + Istio 1.12.7" lab and prove each stage.
//!
//! The crate holds all behaviour; the `xtask` binary only parses flags and calls in here. Start with
//! `ARCHITECTURE.md` at the repository root for the map of modules and the invariants they keep.

#![warn(missing_docs)]

pub mod assets;
pub mod attribution;
pub mod checks;
pub mod cluster;
pub mod error;
mod fs_atomic;
pub mod http;
pub mod image_decode;
pub mod ingress;
pub mod istio;
pub mod kube_client;
pub mod labels;
pub mod lifecycle;
pub mod manifests;
pub mod models;
pub mod output;
pub mod payload;
pub mod predict;
pub mod preflight;
pub mod probe;
pub mod references;
pub mod report;
pub mod routing;
pub mod settings;
pub mod stage_apply;
pub mod stages;
pub mod state;
pub mod stats;
pub mod tf_serving;
pub mod tool;
pub mod up;

pub use error::{CommandStatus, LabError};
pub use settings::{Format, Settings};
