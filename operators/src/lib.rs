//! The operators of Ritma's dataflow, each a plain state machine that tests drive
//! directly; the timely wrappers in the pipeline are a few lines around them.

pub mod attribute;
pub mod canonicalize;
pub mod capture_mode;
pub mod cone_match;
pub mod graph_edge;
pub mod hour_seal;
pub mod taint;
pub mod triggers;
pub mod window_merkle;
