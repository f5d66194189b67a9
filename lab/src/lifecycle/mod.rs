//! The commands that bring the lab up, move it between stages and take it down: `lab up`, `lab stage`/`reset`,
//! `lab render`, `lab down`, `lab status`, `lab doctor`, with the models' placement, the ingress and the state kept
//! between runs. The only area that touches the state directory; it calls into every other area.

pub mod apply;
pub mod assert;
pub mod bring_up;
pub mod bundle;
pub mod down;
pub mod exit_code;
pub mod ingress;
pub mod models;
pub mod preflight;
pub mod stage;
pub mod state;
pub mod status;
pub mod tour;
pub mod up;
pub mod verify;
pub mod watch;
