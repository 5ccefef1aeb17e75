//! Inlet's shared vocabulary: ids, the table model, limits, error kinds and the on-object
//! codecs. No I/O and no async runtime here, so every crate (and the simulation) can use it.

pub mod bucket;
pub mod clock;
pub mod column_defaults;
pub mod column_ids;
pub mod column_types;
pub mod error;
pub mod ids;
pub mod ipc;
pub mod limits;
pub mod partition;
pub mod pk;
pub mod rng;
pub mod table;
pub mod wal;
