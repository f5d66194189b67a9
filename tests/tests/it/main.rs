//! canary-lab's integration tests: one binary, one module per area.

mod cli_surface;
mod doctor;
mod manifests;
mod tidy;
