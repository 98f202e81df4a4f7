//! Where raw events come from: the raw event model and `.rtrace` trace files, the
//! write-ahead log every run appends to before anything is sealed.

pub mod raw;
pub mod trace;
