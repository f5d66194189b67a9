//! canary-lab: bring up the "TensorFlow canary release on minikube + Istio 1.12.7" lab and prove each stage.
//!
//! The crate holds all behaviour; the `xtask` binary only parses flags and calls in here. The modules are grouped in
//! areas — the lab as data ([`definition`]), sending and judging requests ([`traffic`]), Kubernetes ([`cluster`]),
//! Istio ([`istio`]), processes ([`tool`]), results ([`report`]), workshop material ([`teaching`]) and the commands
//! that change the lab ([`lifecycle`]) — with the dependency rules that `ARCHITECTURE.md` states and the tidy test checks.

#![warn(missing_docs)]

pub mod cluster;
pub mod definition;
pub mod error;
mod fs_atomic;
pub mod http;
pub mod istio;
pub mod lifecycle;
pub mod output;
pub mod report;
pub mod settings;
pub mod teaching;
pub mod tool;
pub mod traffic;

pub use error::{CommandStatus, LabError};
pub use settings::{Format, Settings};
