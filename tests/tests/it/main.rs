//! canary-lab's integration tests: one binary, one module per area.

mod cli_surface;
mod cluster;
mod doctor;
mod manifests;
mod models;
mod tidy;
mod up;
