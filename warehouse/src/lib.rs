//! A store's sealed windows as analyst tables (docs/ANALYSTS.md): rows, and their loading
//! into ClickHouse.

pub mod clickhouse;
pub mod rows;
