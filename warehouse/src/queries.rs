//! The shipped analyst queries (`deploy/clickhouse/queries/*.sql`): the questions of
//! `ritma query`, asked of the tables. They are plain ClickHouse SQL with `{name:Type}`
//! parameters, so they run as they are in clickhouse-client (`--param_name=…`); Ritma binds
//! the parameters itself (client-side, which servers before 20.x need).

use crate::clickhouse::{ClickHouse, ClickHouseError};
use clickhouse::Client;
use serde_json::Value;
use std::collections::BTreeMap;

/// Each shipped query by name.
pub const QUERIES: [(&str, &str); 9] = [
    (
        "actors",
        include_str!("../../deploy/clickhouse/queries/actors.sql"),
    ),
    (
        "events",
        include_str!("../../deploy/clickhouse/queries/events.sql"),
    ),
    (
        "path",
        include_str!("../../deploy/clickhouse/queries/path.sql"),
    ),
    (
        "flow",
        include_str!("../../deploy/clickhouse/queries/flow.sql"),
    ),
    (
        "cones",
        include_str!("../../deploy/clickhouse/queries/cones.sql"),
    ),
    (
        "loss",
        include_str!("../../deploy/clickhouse/queries/loss.sql"),
    ),
    (
        "cone-hours",
        include_str!("../../deploy/clickhouse/queries/cone_hours.sql"),
    ),
    (
        "egress",
        include_str!("../../deploy/clickhouse/queries/egress.sql"),
    ),
    (
        "new-binaries",
        include_str!("../../deploy/clickhouse/queries/new_binaries.sql"),
    ),
];

/// The SQL of a shipped query without its comments, with each `{name:Type}` made a `?`,
/// and the parameter names in the order of the `?`s.
pub fn prepare(sql: &str) -> (String, Vec<String>) {
    let body: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let (mut out, mut names) = (String::new(), Vec::new());
    let mut rest = body.as_str();
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let inner = &rest[open + 1..open + close];
        match inner.split_once(':') {
            Some((name, _ty)) if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                out.push_str(&rest[..open]);
                out.push('?');
                names.push(name.to_owned());
            }
            _ => out.push_str(&rest[..=open + close]),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    (out, names)
}

/// An answer: column names, and rows of values in that order.
#[derive(Debug, Default)]
pub struct Answer {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl ClickHouse {
    /// Runs the shipped query `name` with `params` (every parameter it names; `Null` for an
    /// unset filter).
    pub fn shipped(
        &self,
        name: &str,
        params: &BTreeMap<&str, Value>,
    ) -> Result<Answer, ClickHouseError> {
        let sql = QUERIES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
            .ok_or_else(|| self.unsupported(format!("no shipped query {name:?}")))?;
        let (sql, names) = prepare(sql);
        let mut values = Vec::new();
        for n in &names {
            let v = params
                .get(n.as_str())
                .ok_or_else(|| self.unsupported(format!("query {name}: no value for {{{n}}}")))?;
            values.push(v.clone());
        }
        self.answer(&format!("running the {name} query"), &sql, values)
    }

    /// Runs `sql` with `?`s bound to `values`.
    pub fn answer(
        &self,
        what: &str,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<Answer, ClickHouseError> {
        let text = self.run(what, async |c: &Client| {
            let mut q = c
                .query(sql)
                .with_setting("output_format_json_quote_64bit_integers", "0");
            for v in &values {
                // serde_json's null is a unit, which the client cannot bind; None is NULL.
                q = match v {
                    Value::Null => q.bind(None::<u8>),
                    v => q.bind(v),
                };
            }
            let mut cursor = q.fetch_bytes("JSONCompact")?;
            let mut out = Vec::new();
            while let Some(chunk) = cursor.next().await? {
                out.extend_from_slice(&chunk);
            }
            Ok(out)
        })?;
        let doc: Value = serde_json::from_slice(&text)
            .map_err(|e| self.unsupported(format!("{what}: the answer is not JSON: {e}")))?;
        let columns = doc["meta"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let rows = doc["data"]
            .as_array()
            .map(|d| {
                d.iter()
                    .map(|r| r.as_array().cloned().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Answer { columns, rows })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_placeholders_in_order() {
        let (sql, names) = prepare(
            "-- a comment with {x:String}\nSELECT 1 WHERE a = {a:String} AND b = {b:Nullable(UInt16)} OR a = {a:String} AND m = map{}",
        );
        assert_eq!(sql, "SELECT 1 WHERE a = ? AND b = ? OR a = ? AND m = map{}");
        assert_eq!(names, ["a", "b", "a"]);
    }

    #[test]
    fn every_shipped_query_has_no_literal_question_mark() {
        // The client binds `?`s: a literal one would take a parameter's place.
        for (name, sql) in QUERIES {
            let (body, names) = prepare(sql);
            assert_eq!(body.matches('?').count(), names.len(), "{name}");
        }
    }
}
