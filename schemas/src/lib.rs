//! Every byte Ritma hashes, signs or stores: deterministic CBOR, the record types,
//! content-derived ids, Merkle trees, signed checkpoints and key history.
//!
//! The normative description of these bytes is `docs/FORMAT.md`; this crate is its
//! reference implementation and the tests keep the two in step.

pub mod cas_manifest;
pub mod case;
pub mod catalog;
pub mod cbor;
pub mod cone_library;
pub mod cosignature;
pub mod display;
pub mod format_doc;
pub mod hash;
pub mod index;
pub mod keys;
pub mod merkle;
pub mod note;
pub mod packed;
pub mod path;
pub mod proof_bundle;
pub mod records;
pub mod ship;
pub mod state;

pub use hash::{Hash32, Id128};

/// The FORMAT specification this code implements, copied into every store's
/// `_meta/schema/` so the bytes can be read without this repository.
pub const FORMAT_SPEC: &str = include_str!("../../docs/FORMAT.md");
