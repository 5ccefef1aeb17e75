//! Inlet's compactor: turns the WAL into Apache Iceberg tables in the same bucket, so engines
//! query old data directly (see `../shared/DESIGN.md`, "Compactor and the lake").
//!
//! This first step is the lake writer ([`lake`]): the storage adapter that puts Iceberg files
//! in our object store, the lake table layout, and the writer that turns a round of rows
//! into Parquet files and a staged Iceberg commit. The catalog pointer (in the index) and the
//! tiering loop come next.

pub mod lake;
