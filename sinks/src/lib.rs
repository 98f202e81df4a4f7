//! Where sealed evidence goes. The RITMA_OUT store is the primary, durable sink;
//! every other sink is fed from what it holds.

pub mod bundle;
pub mod cas;
pub mod case;
pub mod catalog;
pub mod continuity;
pub mod index;
pub mod interrupted;
pub mod keys;
pub mod mirror;
pub mod retention;
pub mod ship;
pub mod store;
pub mod verify;
pub mod wal;
