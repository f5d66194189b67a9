//! The lab as data: its stages (`assets/lab.toml`), their manifests and what their routes do. Nothing here talks to
//! a cluster, a network or a process; the only IO is reading the lab's own assets.

pub mod assets;
pub mod diagnostic;
pub mod expectations;
pub mod explanations;
pub mod hints;
pub mod locate;
pub mod manifests;
pub mod plan;
pub mod routing;
pub mod schema;
pub mod stages;
pub mod validate;
