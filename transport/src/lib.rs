//! Evidence off the node (FORMAT.md §12): the Kafka shipper of a store's sealed windows,
//! the ingest that rebuilds, verifies and witnesses many nodes' stores, and the node's
//! reader of the checkpoints its witnesses cosigned.

pub mod ingest;
pub mod kafka;
pub mod ship;
pub mod witnessed;

pub use kafka::{KafkaSettings, Shipper, TransportError};
