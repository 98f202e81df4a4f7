//! Where raw events come from: the raw event model and `.rtrace` trace files, the
//! write-ahead log every run appends to before anything is sealed, and the
//! deterministic synthetic workload.

pub mod raw;
pub mod synth;
pub mod trace;
