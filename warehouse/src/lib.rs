//! A store's sealed windows as analyst tables (docs/ANALYSTS.md): rows, their loading into
//! ClickHouse, and the shipped queries over them.

pub mod clickhouse;
pub mod queries;
pub mod rows;
