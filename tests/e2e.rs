//! End-to-end tests: each drives the real `ritma` binary in a temporary directory.

mod util;

mod index;
mod keys;
mod replay;
mod replay_loss;
mod synth;
