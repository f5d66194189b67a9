//! Teaching material made from the lab's definitions: the workshop handout (`lab handout`), and the stage texts a
//! guided tour shows.
//!
//! This area only reads definitions and renders them: it imports `definition`, `report` (the split chart),
//! `output`, `fs_atomic` and `error`, never the areas that reach a cluster, a process or the network, so what a
//! learner reads cannot depend on the state of a cluster.

pub mod handout;
mod handout_html;
mod handout_markdown;
pub mod learner_commands;
pub mod tour;
