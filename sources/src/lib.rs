//! Where raw events come from: the raw event model and `.rtrace` trace files, the
//! write-ahead log every run appends to before anything is sealed, and the
//! deterministic synthetic workload.

// Trace errors carry the file, frame and decode error: large, and only on a failure path.
#![allow(clippy::result_large_err)]

pub mod raw;
pub mod synth;
pub mod trace;
