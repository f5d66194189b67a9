//! Everything that sends or judges requests: request bodies and images, ImageNet labels, the TF Serving REST client,
//! the probe, attribution of answers to versions, reference predictions, statistics, the stage assertions and
//! `lab predict`. Traffic reads the cluster (to reach pods for references) but never writes to it.

pub mod attribution;
pub mod checks;
pub mod image_decode;
pub mod labels;
pub mod payload;
pub mod predict;
pub mod probe;
pub mod references;
pub mod smoke;
pub mod stats;
pub mod tf_serving;
pub mod window;
