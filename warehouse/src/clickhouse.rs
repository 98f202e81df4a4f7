//! Loading windows into ClickHouse exactly once per (node, window), on any server version
//! from Debian's 18.16 on (docs/ANALYSTS.md).
//!
//! A window counts as loaded when its `windows` row is there; that row is inserted after
//! every other row of its batch. Before touching a window the loader records it in
//! `load_attempts`; a window attempted but never finished may hold some of its rows (a
//! server commits an INSERT block by block), so for those only the rows whose
//! (window, leaf) key is missing are sent again. A retry after any error starts the batch
//! over from these queries, so nothing is loaded twice or skipped, and `count()` of a
//! plain MergeTree table equals the store's count. The ledger lives in ClickHouse, so any
//! machine can resume a load; one loader per node at a time (the caller locks).

use crate::rows::{
    hour_row, AttemptRow, ConeRow, EdgeRow, EventRow, HealthRow, LossRow, Window, WindowRow,
};
use crate::rows::{ActorRow, RowsError};
use clickhouse::{Client, Compression, Row, RowWrite};
use ritma_schemas::records::HourSeal;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// The tables' definitions, in the syntax of current servers (one column per line).
pub const SCHEMA_SQL: &str = include_str!("../../deploy/clickhouse/schema.sql");

#[derive(Debug, thiserror::Error)]
pub enum ClickHouseError {
    #[error("ClickHouse at {url}: {what}: {source}")]
    Server {
        url: String,
        what: String,
        source: clickhouse::error::Error,
    },
    #[error("ClickHouse at {url}: table {table} has another shape than Ritma's: {detail}; drop or rename it, or load into another database (?database= in the URL)")]
    Shape {
        url: String,
        table: String,
        detail: String,
    },
    #[error("ClickHouse at {url}: {detail}")]
    Unsupported { url: String, detail: String },
    #[error(transparent)]
    Rows(#[from] RowsError),
    #[error("cannot start the ClickHouse client: {0}")]
    Runtime(std::io::Error),
}

impl ClickHouseError {
    /// Whether trying again later may succeed (the server was unreachable, cut the
    /// connection, timed out or failed a query), as opposed to a wrong table or bad rows.
    pub fn is_transient(&self) -> bool {
        matches!(self, ClickHouseError::Server { .. })
    }
}

/// The SQL a server understands: `Legacy` for servers before 20.1 (no CODEC, TTL,
/// DateTime64 or ALIAS of it, and LowCardinality only behind an experimental setting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Legacy,
    Modern,
}

impl Dialect {
    /// The dialect of a server reporting `version()` (e.g. `18.16.1`, `26.9.2.1`).
    pub fn of_version(version: &str) -> Dialect {
        let major: u32 = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if major >= 20 {
            Dialect::Modern
        } else {
            Dialect::Legacy
        }
    }
}

/// One column of a table as `schema.sql` defines it.
#[derive(Clone, Debug)]
struct Column {
    name: String,
    ty: String,
    codec: Option<String>,
    alias: Option<String>,
}

/// One table of `schema.sql`.
#[derive(Clone, Debug)]
pub struct TableDef {
    pub name: String,
    columns: Vec<Column>,
    /// The lines after the column list (`ENGINE`, `PARTITION BY`, `ORDER BY`, `TTL`).
    tail: Vec<String>,
}

impl TableDef {
    /// The tables of `schema.sql`, in order.
    pub fn all() -> Vec<TableDef> {
        let mut tables = Vec::new();
        let body: String = SCHEMA_SQL
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .map(|l| format!("{l}\n"))
            .collect();
        for stmt in body.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let mut lines = stmt.lines();
            let head = lines.next().unwrap_or("");
            let name = head
                .trim_start_matches("CREATE TABLE IF NOT EXISTS ")
                .trim_end_matches(" (")
                .to_owned();
            let mut columns = Vec::new();
            let mut tail = Vec::new();
            for line in lines {
                if let Some(rest) = line.strip_prefix(") ") {
                    tail.push(rest.to_owned());
                } else if !tail.is_empty() {
                    tail.push(line.to_owned());
                } else {
                    columns.push(Column::parse(line.trim().trim_end_matches(',')));
                }
            }
            tables.push(TableDef {
                name,
                columns,
                tail,
            });
        }
        tables
    }

    /// `CREATE TABLE IF NOT EXISTS` for `dialect`, with a TTL of `ttl_days`.
    pub fn create_sql(&self, dialect: Dialect, ttl_days: u32) -> String {
        let cols: Vec<String> = self
            .columns
            .iter()
            .filter(|c| dialect == Dialect::Modern || c.alias.is_none())
            .map(|c| {
                let mut s = format!("    {} {}", c.name, c.ty_for(dialect));
                if dialect == Dialect::Modern {
                    if let Some(codec) = &c.codec {
                        s.push_str(&format!(" CODEC({codec})"));
                    }
                    if let Some(alias) = &c.alias {
                        s.push_str(&format!(" ALIAS {alias}"));
                    }
                }
                s
            })
            .collect();
        let tail: Vec<String> = self
            .tail
            .iter()
            .filter_map(|l| match l.strip_prefix("TTL ") {
                None => Some(l.clone()),
                Some(_) if dialect == Dialect::Legacy => None,
                Some(_) => Some(format!("TTL day + INTERVAL {ttl_days} DAY")),
            })
            .collect();
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n{}\n) {}",
            self.name,
            cols.join(",\n"),
            tail.join("\n")
        )
    }

    /// The stored columns (name, type) a table of `dialect` has, as `system.columns`
    /// lists them.
    fn stored_columns(&self, dialect: Dialect) -> Vec<(String, String)> {
        self.columns
            .iter()
            .filter(|c| c.alias.is_none())
            .map(|c| (c.name.clone(), c.ty_for(dialect)))
            .collect()
    }
}

impl Column {
    fn parse(line: &str) -> Column {
        let (name, rest) = line.split_once(' ').unwrap_or((line, ""));
        let (rest, alias) = match rest.split_once(" ALIAS ") {
            Some((r, a)) => (r, Some(a.to_owned())),
            None => (rest, None),
        };
        let (ty, codec) = match rest.split_once(" CODEC(") {
            Some((t, c)) => (t, Some(c.strip_suffix(')').unwrap_or(c).to_owned())),
            None => (rest, None),
        };
        Column {
            name: name.to_owned(),
            ty: ty.to_owned(),
            codec,
            alias,
        }
    }

    fn ty_for(&self, dialect: Dialect) -> String {
        match dialect {
            Dialect::Modern => self.ty.clone(),
            Dialect::Legacy => self.ty.replace("LowCardinality(String)", "String"),
        }
    }
}

/// What one batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Windows loaded by this batch, and those found loaded before.
    pub loaded: u64,
    pub already: u64,
    /// Windows found partly loaded (attempted, no `windows` row), completed by this batch.
    pub resumed: u64,
    /// Rows inserted, over all tables, and the events of the windows loaded.
    pub rows: u64,
    pub events: u64,
}

/// A connection to one ClickHouse server and database.
pub struct ClickHouse {
    rt: tokio::runtime::Runtime,
    client: Client,
    url: String,
    pub version: String,
    pub dialect: Dialect,
    /// Rows per block the server commits (its `max_insert_block_size`), when set.
    block_rows: Option<u64>,
    /// The longest one request (a query, or one table's INSERT of a batch) may take.
    timeout: Duration,
}

/// The tables rows are keyed by (window, leaf) in, for the gap fill.
const LEAF_TABLES: [&str; 5] = ["events", "actors", "edges", "cone_matches", "health"];

impl ClickHouse {
    /// Connects to `url` (`http://[user[:password]@]host:port/?database=db`), reading the
    /// server's version; every request then gets `timeout`. `password` (e.g. from the
    /// environment) stands in for one the URL does not give.
    pub fn connect(
        url: &str,
        password: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, ClickHouseError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ClickHouseError::Runtime)?;
        let parts = UrlParts::parse(url);
        // The crate reads `database` from the URL; user and password go in its headers.
        let mut client = Client::default()
            .with_url(&parts.bare)
            .with_compression(Compression::Lz4)
            .with_validation(false);
        if let Some(user) = &parts.user {
            client = client.with_user(user);
        }
        if let Some(pw) = parts.password.as_deref().or(password) {
            client = client.with_password(pw);
        }
        let mut ch = ClickHouse {
            rt,
            client,
            url: parts.shown,
            version: String::new(),
            dialect: Dialect::Legacy,
            block_rows: None,
            timeout,
        };
        let version: String = ch.run("reading the server version", async |c: &Client| {
            c.query("SELECT version()").fetch_one::<String>().await
        })?;
        ch.dialect = Dialect::of_version(&version);
        ch.version = version;
        Ok(ch)
    }

    /// The server's URL as messages show it (without the password).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Makes the server commit inserts every `rows` rows (its `max_insert_block_size`).
    pub fn with_block_rows(mut self, rows: u64) -> Self {
        self.block_rows = Some(rows);
        self
    }

    pub(crate) fn run<T>(
        &self,
        what: &str,
        f: impl AsyncFnOnce(&Client) -> clickhouse::error::Result<T>,
    ) -> Result<T, ClickHouseError> {
        // A server that accepts the connection and never answers must not hang the load.
        self.rt
            .block_on(async { tokio::time::timeout(self.timeout, f(&self.client)).await })
            .unwrap_or(Err(clickhouse::error::Error::TimedOut))
            .map_err(|source| ClickHouseError::Server {
                url: self.url.clone(),
                what: what.to_owned(),
                source,
            })
    }

    pub(crate) fn unsupported(&self, detail: String) -> ClickHouseError {
        ClickHouseError::Unsupported {
            url: self.url.clone(),
            detail,
        }
    }

    /// The DDL this server gets.
    pub fn ddl(&self, ttl_days: u32) -> Vec<(String, String)> {
        TableDef::all()
            .into_iter()
            .map(|t| {
                let sql = t.create_sql(self.dialect, ttl_days);
                (t.name, sql)
            })
            .collect()
    }

    /// Creates the tables that are missing, then checks every table has Ritma's shape,
    /// naming the first difference (nothing is altered: a table of another shape is
    /// someone's data).
    pub fn ensure_tables(&self, ttl_days: u32) -> Result<(), ClickHouseError> {
        for (name, sql) in self.ddl(ttl_days) {
            self.run(&format!("creating table {name}"), async |c: &Client| {
                c.query(&sql).execute().await
            })?;
        }
        for t in TableDef::all() {
            let want = t.stored_columns(self.dialect);
            let table = t.name.clone();
            let have: Vec<(String, String)> = self.run(
                &format!("reading the columns of {}", t.name),
                async |c: &Client| {
                    c.query(
                        "SELECT name, type FROM system.columns \
                         WHERE database = currentDatabase() AND table = ? \
                         AND default_kind != 'ALIAS'",
                    )
                    .bind(table.as_str())
                    .fetch_all::<(String, String)>()
                    .await
                },
            )?;
            if let Some(detail) = shape_difference(&want, &have) {
                return Err(ClickHouseError::Shape {
                    url: self.url.clone(),
                    table: t.name,
                    detail,
                });
            }
        }
        Ok(())
    }

    /// Loads `windows` (all of one node, ascending) exactly once: windows already
    /// loaded are skipped, windows partly loaded are completed.
    pub fn load_batch(&self, windows: &[Window]) -> Result<BatchOutcome, ClickHouseError> {
        let (Some(first), Some(last)) = (windows.first(), windows.last()) else {
            return Ok(BatchOutcome::default());
        };
        let node = first.node().to_owned();
        let (lo, hi) = (first.record.window, last.record.window);
        // The windows of the batch that `table` names.
        let named_in = |table: &str| -> Result<HashSet<u64>, ClickHouseError> {
            let sql = format!(
                "SELECT DISTINCT win FROM {table} WHERE node = ? AND win >= ? AND win <= ?"
            );
            let wins = self.run(&format!("reading {table}"), async |c: &Client| {
                c.query(&sql)
                    .bind(node.as_str())
                    .bind(lo)
                    .bind(hi)
                    .fetch_all::<u64>()
                    .await
            })?;
            Ok(wins.into_iter().collect())
        };
        let done = named_in("windows")?;
        let todo: Vec<&Window> = windows
            .iter()
            .filter(|w| !done.contains(&w.record.window))
            .collect();
        let mut outcome = BatchOutcome {
            already: (windows.len() - todo.len()) as u64,
            ..BatchOutcome::default()
        };
        if todo.is_empty() {
            return Ok(outcome);
        }
        let attempted = named_in("load_attempts")?;
        let partial: Vec<u64> = todo
            .iter()
            .map(|w| w.record.window)
            .filter(|w| attempted.contains(w))
            .collect();
        outcome.resumed = partial.len() as u64;
        // Rows already there, by table: only windows attempted before can hold any.
        let mut present: BTreeMap<&str, HashSet<(u64, u64)>> = BTreeMap::new();
        if !partial.is_empty() {
            // An INSERT the last try lost track of may still be running on the server; its
            // blocks must all be in (or it stopped) before the rows present are read.
            self.settle_inserts(&node)?;
            for table in LEAF_TABLES.iter().copied().chain(["loss"]) {
                let key = if table == "loss" { "reason_id" } else { "leaf" };
                let sql = format!(
                    "SELECT win, {key} FROM {table} WHERE node = ? AND win IN ({})",
                    number_list(&partial)
                );
                let keys = self.run(&format!("reading the rows of {table}"), async |c| {
                    c.query(&sql)
                        .bind(node.as_str())
                        .fetch_all::<(u64, u64)>()
                        .await
                })?;
                present.insert(table, keys.into_iter().collect());
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        let fresh = todo
            .iter()
            .filter(|w| !attempted.contains(&w.record.window));
        let attempts: Vec<AttemptRow> = fresh
            .map(|w| AttemptRow {
                node: &node,
                win: w.record.window,
                at: now,
            })
            .collect();
        self.insert::<AttemptRow>(&node, "load_attempts", attempts.into_iter())?;
        let missing = |table: &'static str| {
            let have = present.get(table);
            move |win: u64, key: u64| !have.is_some_and(|h| h.contains(&(win, key)))
        };
        let keep = missing("events");
        let rows = todo.iter().flat_map(|w| w.events());
        outcome.rows +=
            self.insert::<EventRow>(&node, "events", rows.filter(|r| keep(r.win, r.leaf)))?;
        let keep = missing("actors");
        let rows = todo.iter().flat_map(|w| w.actors());
        outcome.rows +=
            self.insert::<ActorRow>(&node, "actors", rows.filter(|r| keep(r.win, r.leaf)))?;
        let keep = missing("edges");
        let rows = todo.iter().flat_map(|w| w.edges());
        outcome.rows +=
            self.insert::<EdgeRow>(&node, "edges", rows.filter(|r| keep(r.win, r.leaf)))?;
        let keep = missing("cone_matches");
        let rows = todo.iter().flat_map(|w| w.cones());
        outcome.rows +=
            self.insert::<ConeRow>(&node, "cone_matches", rows.filter(|r| keep(r.win, r.leaf)))?;
        let keep = missing("health");
        let rows = todo.iter().flat_map(|w| w.health());
        outcome.rows +=
            self.insert::<HealthRow>(&node, "health", rows.filter(|r| keep(r.win, r.leaf)))?;
        let keep = missing("loss");
        let rows = todo.iter().flat_map(|w| w.loss());
        outcome.rows +=
            self.insert::<LossRow>(&node, "loss", rows.filter(|r| keep(r.win, r.reason_id)))?;
        // The commit mark, last.
        let rows = todo.iter().map(|w| w.window_row());
        outcome.rows += self.insert::<WindowRow>(&node, "windows", rows)?;
        outcome.loaded = todo.len() as u64;
        outcome.events = todo.iter().map(|w| w.event_count() as u64).sum();
        Ok(outcome)
    }

    /// Loads the hour seals not loaded yet (all of one node); returns how many it loaded.
    pub fn load_hours(&self, seals: &[HourSeal]) -> Result<u64, ClickHouseError> {
        let Some(first) = seals.first() else {
            return Ok(0);
        };
        let node = first.node.clone();
        self.settle_inserts(&node)?;
        let hours: Vec<u64> = seals.iter().map(|s| s.hour).collect();
        let sql = format!(
            "SELECT hour FROM hours WHERE node = ? AND hour IN ({})",
            number_list(&hours)
        );
        let done: HashSet<u64> = self
            .run("reading the hours loaded", async |c: &Client| {
                c.query(&sql).bind(node.as_str()).fetch_all::<u64>().await
            })?
            .into_iter()
            .collect();
        let rows = seals
            .iter()
            .filter(|s| !done.contains(&s.hour))
            .map(hour_row)
            .collect::<Result<Vec<_>, _>>()?;
        self.insert::<crate::rows::HourRow>(&node, "hours", rows.into_iter())
    }

    /// Inserts `rows` into `table` in one INSERT (streamed: the client sends each 256 KiB
    /// as it fills); returns the rows sent. Nothing is sent for no rows.
    fn insert<'r, T>(
        &self,
        node: &str,
        table: &str,
        mut rows: impl Iterator<Item = T::Value<'r>>,
    ) -> Result<u64, ClickHouseError>
    where
        T: Row + RowWrite,
    {
        let Some(first) = rows.next() else {
            return Ok(0);
        };
        let what = format!("inserting into {table}");
        // Named, so a later try can find it if the server still runs it (`settle_inserts`).
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let query_id = format!(
            "{}{table}/{}-{nanos}",
            query_id_prefix(node),
            std::process::id()
        );
        self.run(&what, async |c: &Client| {
            let mut insert = c
                .insert::<T>(table)
                .await?
                .with_setting("query_id", query_id.as_str());
            if let Some(n) = self.block_rows {
                // Squashing would otherwise merge the small blocks back before writing.
                insert = insert
                    .with_setting("max_insert_block_size", n.to_string())
                    .with_setting("min_insert_block_size_rows", n.to_string());
            }
            insert.write(&first).await?;
            let mut sent = 1u64;
            for row in rows {
                insert.write(&row).await?;
                sent += 1;
            }
            insert.end().await?;
            Ok(sent)
        })
    }

    /// On a server without TTL (before 20.1): drops the day partitions of every table older
    /// than `keep_days` before today (UTC), as a modern table's TTL would; returns how many.
    pub fn drop_days_before(&self, keep_days: u32) -> Result<u64, ClickHouseError> {
        let today = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 86_400);
        let cutoff = today.saturating_sub(keep_days as u64);
        let mut dropped = 0;
        for t in TableDef::all()
            .iter()
            .filter(|t| t.tail.iter().any(|l| l == "PARTITION BY day"))
        {
            let table = t.name.as_str();
            let days: Vec<(String, u64)> = self.run(
                &format!("reading the days of {table}"),
                async |c: &Client| {
                    c.query(
                    "SELECT DISTINCT toString(day), toUInt64(day) FROM ?  WHERE day < toDate(?)",
                )
                .bind(clickhouse::sql::Identifier(table))
                .bind(cutoff)
                .fetch_all::<(String, u64)>()
                .await
                },
            )?;
            for (day, _) in days {
                let sql = format!("ALTER TABLE {table} DROP PARTITION '{day}'");
                self.run(&format!("dropping {day} of {table}"), async |c: &Client| {
                    c.query(&sql).execute().await
                })?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    /// Waits until no INSERT of `node`'s loads runs on the server, stopping any that does:
    /// one cut off from its client (a dropped connection, a killed loader) can still commit
    /// blocks after the client gave up on it.
    fn settle_inserts(&self, node: &str) -> Result<(), ClickHouseError> {
        let pattern = format!("{}%", like_literal(&query_id_prefix(node)));
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            let running = self.run("looking for inserts still running", async |c: &Client| {
                c.query("SELECT count() FROM system.processes WHERE query_id LIKE ?")
                    .bind(pattern.as_str())
                    .fetch_one::<u64>()
                    .await
            })?;
            if running == 0 {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(self.unsupported(format!(
                    "an earlier INSERT of node {node} still runs after {:?}; try again later",
                    self.timeout
                )));
            }
            // Refused or not, it is waited for: a kill only shortens the wait.
            let _ = self.run("stopping an earlier insert", async |c: &Client| {
                c.query("KILL QUERY WHERE query_id LIKE ? SYNC")
                    .bind(pattern.as_str())
                    .execute()
                    .await
            });
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A server URL split into what the client gets and what messages show.
struct UrlParts {
    /// The URL without user and password.
    bare: String,
    /// The URL with the password hidden.
    shown: String,
    user: Option<String>,
    password: Option<String>,
}

impl UrlParts {
    fn parse(url: &str) -> UrlParts {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        let Some((userinfo, host)) = authority.rsplit_once('@') else {
            return UrlParts {
                bare: url.to_owned(),
                shown: url.to_owned(),
                user: None,
                password: None,
            };
        };
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u.to_owned(), Some(p.to_owned())),
            None => (userinfo.to_owned(), None),
        };
        let prefix = if scheme.is_empty() {
            String::new()
        } else {
            format!("{scheme}://")
        };
        let hidden = if password.is_some() { ":***" } else { "" };
        UrlParts {
            bare: format!("{prefix}{host}{path}"),
            shown: format!("{prefix}{user}{hidden}@{host}{path}"),
            user: Some(user),
            password,
        }
    }
}

/// The start of the query ids of a node's inserts.
fn query_id_prefix(node: &str) -> String {
    format!("ritma-load/{node}/")
}

/// `s` as a LIKE pattern matching only itself.
fn like_literal(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// `1, 2, 3`: numbers for an `IN (…)` list (18.16 takes no array there).
fn number_list(ns: &[u64]) -> String {
    ns.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}

/// The first difference between the columns a table should have and those it has.
fn shape_difference(want: &[(String, String)], have: &[(String, String)]) -> Option<String> {
    if have.is_empty() {
        return Some("it has no columns (or does not exist)".into());
    }
    for (name, ty) in want {
        match have.iter().find(|(n, _)| n == name) {
            None => return Some(format!("no column {name} ({ty})")),
            Some((_, t)) if t != ty => {
                return Some(format!("column {name} is {t}, Ritma writes {ty}"))
            }
            Some(_) => {}
        }
    }
    have.iter()
        .find(|(n, _)| !want.iter().any(|(w, _)| w == n))
        .map(|(n, t)| format!("an extra column {n} ({t}) that Ritma does not write"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_parses_into_every_table_with_columns() {
        let tables = TableDef::all();
        let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "events",
                "actors",
                "edges",
                "cone_matches",
                "health",
                "loss",
                "windows",
                "hours",
                "load_attempts"
            ]
        );
        let events = &tables[0];
        let cols = events.stored_columns(Dialect::Modern);
        assert_eq!(cols[0], ("node".into(), "LowCardinality(String)".into()));
        assert!(
            cols.iter().all(|(n, _)| n != "time"),
            "aliases are not stored"
        );
        assert_eq!(
            events.stored_columns(Dialect::Legacy)[0],
            ("node".into(), "String".into())
        );
    }

    #[test]
    fn the_modern_ddl_is_schema_sql_itself() {
        let statements: Vec<String> = SCHEMA_SQL
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n")
            .split(';')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        let made: Vec<String> = TableDef::all()
            .iter()
            .map(|t| t.create_sql(Dialect::Modern, 3650))
            .collect();
        assert_eq!(made, statements);
    }

    #[test]
    fn the_legacy_ddl_has_no_codec_ttl_alias_or_low_cardinality() {
        for t in TableDef::all() {
            let legacy = t.create_sql(Dialect::Legacy, 30);
            for word in ["CODEC", "TTL", "ALIAS", "LowCardinality", "DateTime64"] {
                assert!(!legacy.contains(word), "{word} in {legacy}");
            }
            assert!(legacy.contains("ENGINE = MergeTree"), "{legacy}");
            let modern = t.create_sql(Dialect::Modern, 30);
            if t.name != "load_attempts" {
                assert!(modern.contains("TTL day + INTERVAL 30 DAY"), "{modern}");
            }
        }
    }

    #[test]
    fn a_url_gives_user_and_password_and_never_shows_the_password() {
        let p = UrlParts::parse("http://loader:s3cret@10.0.0.1:8123/?database=ritma");
        assert_eq!(p.bare, "http://10.0.0.1:8123/?database=ritma");
        assert_eq!(p.shown, "http://loader:***@10.0.0.1:8123/?database=ritma");
        assert_eq!(
            (p.user.as_deref(), p.password.as_deref()),
            (Some("loader"), Some("s3cret"))
        );
        let p = UrlParts::parse("http://127.0.0.1:8123");
        assert_eq!((p.bare.as_str(), p.user), ("http://127.0.0.1:8123", None));
        let p = UrlParts::parse("http://me@h:1/");
        assert_eq!((p.shown.as_str(), p.password), ("http://me@h:1/", None));
    }

    #[test]
    fn a_node_name_is_a_literal_in_a_like_pattern() {
        assert_eq!(like_literal("web_1%"), "web\\_1\\%");
        assert_eq!(query_id_prefix("web_1"), "ritma-load/web_1/");
    }

    #[test]
    fn versions_pick_their_dialect() {
        assert_eq!(Dialect::of_version("18.16.1"), Dialect::Legacy);
        assert_eq!(Dialect::of_version("19.17.4.11"), Dialect::Legacy);
        assert_eq!(Dialect::of_version("26.9.2.1"), Dialect::Modern);
        assert_eq!(Dialect::of_version("garbage"), Dialect::Legacy);
    }

    #[test]
    fn a_shape_difference_names_the_column() {
        let want = vec![("a".to_owned(), "UInt64".to_owned())];
        let same = want.clone();
        assert_eq!(shape_difference(&want, &same), None);
        let other = vec![("a".to_owned(), "String".to_owned())];
        assert!(shape_difference(&want, &other)
            .unwrap()
            .contains("column a is String"));
        let extra = vec![("a".into(), "UInt64".into()), ("b".into(), "UInt8".into())];
        assert!(shape_difference(&want, &extra)
            .unwrap()
            .contains("extra column b"));
        assert!(shape_difference(&want, &[]).is_some());
    }
}
