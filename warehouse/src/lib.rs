//! A store's sealed windows as analyst tables (docs/ANALYSTS.md): rows, their loading into
//! ClickHouse, the shipped queries over them, and their export as Parquet, also as OCSF for Security Lake.

pub mod clickhouse;
pub mod ocsf;
pub mod parquet;
pub mod queries;
pub mod rows;
