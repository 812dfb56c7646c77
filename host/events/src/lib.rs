//! The event log: an append-only, hash-chained sequence of events in sled.
//!
//! Every event carries the previous event's hash and its own SHA-256 over a canonical
//! encoding, so any edit or deletion is detectable by [`EventLog::verify`]. Appends
//! are acknowledged only once durable; concurrent appenders share one fsync (group
//! commit). The only crate that depends on sled.

pub mod catalog;
pub mod checkpoint;
mod commit;
pub mod epochs;
mod event;
pub mod import;
mod index;
pub mod original;
pub mod projection;
mod store;

pub use event::{Event, EventDraft, GENESIS_HASH, Origin, Provenance, SCHEMA_VERSION};
pub use projection::Projection;
pub use store::{EventLog, EventReader, Page, Paged, StoreError, VerifyError};
