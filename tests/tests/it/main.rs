//! canary-lab's integration tests: one binary, one module per area.

mod cli_surface;
mod cluster;
mod doctor;
mod exit_codes;
mod faults;
mod flag_values;
mod gateway;
mod help_text;
mod ingress;
mod istio_fetch;
mod json_style;
mod lifecycle_real;
mod manifests;
mod models;
mod payload;
mod predict;
mod probe_kind;
mod real_api;
mod render;
mod report;
mod statistics;
mod tf_serving;
mod tidy;
mod traffic;
mod up;
mod whole_lab;
