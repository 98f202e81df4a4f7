//! End-to-end tests: each drives the real `ritma` binary in a temporary directory.

mod util;

mod case;
mod catalog;
mod config;
mod crash;
mod full_capture;
mod index;
mod keys;
mod prove;
mod query;
mod replay;
mod replay_loss;
mod retention;
mod ship;
mod synth;
mod verify_range;
mod witness;
