//! End-to-end tests: each drives the real `ritma` binary in a temporary directory.

mod util;

mod keys;
mod replay;
mod synth;
