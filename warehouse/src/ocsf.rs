//! OCSF 1.8.0 events in Parquet for Amazon Security Lake (`ritma export --format parquet
//! --ocsf`): ritma-ocsf's events, one source directory per OCSF class, one file per node and
//! event day, rows in time order (docs/ANALYSTS.md, "OCSF for Security Lake").
//!
//! Each class has a fixed Arrow schema ([`class_schema`]): the OCSF 1.8.0 attributes
//! ritma-ocsf can emit for it, typed as OCSF types them (`integer_t` Int32, `long_t` and
//! `timestamp_t` Int64, `boolean_t` Boolean, string types Utf8, `json_t` as its JSON text, an
//! object a struct, an array a list), so every file of a class has the same columns whatever
//! its events hold. Events are decoded into it strictly: an attribute the schema lacks is an
//! error, never a dropped value. `unmapped.ritma` is a struct of Ritma's evidence coordinates.

use arrow_array::{Array, Int64Array, RecordBatch};
use arrow_json::reader::{Decoder, ReaderBuilder};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::WriterProperties;
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::parquet::{commit_file, create_file, writer_properties, ParquetError};

/// An OCSF class Ritma emits, and where its files go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OcsfClass {
    pub uid: u32,
    /// The source directory: a Security Lake custom source holds one class.
    pub source: &'static str,
    /// The class as Security Lake's `CreateCustomLogSource` names event classes.
    pub event_class: &'static str,
}

/// The classes of ritma-ocsf's mapping (its crate docs), in class order.
pub const CLASSES: [OcsfClass; 6] = [
    OcsfClass {
        uid: 1001,
        source: "ritma-file-activity",
        event_class: "FILE_ACTIVITY",
    },
    OcsfClass {
        uid: 1002,
        source: "ritma-kernel-extension-activity",
        event_class: "KERNEL_EXTENSION",
    },
    OcsfClass {
        uid: 1003,
        source: "ritma-kernel-activity",
        event_class: "KERNEL_ACTIVITY",
    },
    OcsfClass {
        uid: 1007,
        source: "ritma-process-activity",
        event_class: "PROCESS_ACTIVITY",
    },
    OcsfClass {
        uid: 2004,
        source: "ritma-detection-finding",
        event_class: "DETECTION_FINDING",
    },
    OcsfClass {
        uid: 4001,
        source: "ritma-network-activity",
        event_class: "NETWORK_ACTIVITY",
    },
];

pub fn class(uid: u32) -> Option<&'static OcsfClass> {
    CLASSES.iter().find(|c| c.uid == uid)
}

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

/// An OCSF `integer_t`.
fn int(name: &str) -> Field {
    Field::new(name, DataType::Int32, true)
}

/// An OCSF `long_t` or `timestamp_t` (ms since the epoch).
fn long(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}

fn boolean(name: &str) -> Field {
    Field::new(name, DataType::Boolean, true)
}

fn object(name: &str, fields: Vec<Field>) -> Field {
    Field::new(name, DataType::Struct(Fields::from(fields)), true)
}

fn array(name: &str, item: DataType) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new_list_field(item, true))),
        true,
    )
}

fn struct_of(fields: Vec<Field>) -> DataType {
    DataType::Struct(Fields::from(fields))
}

fn file(name: &str) -> Field {
    let hash = struct_of(vec![utf8("algorithm"), int("algorithm_id"), utf8("value")]);
    object(
        name,
        vec![
            utf8("name"),
            utf8("path"),
            int("type_id"),
            array("hashes", hash),
        ],
    )
}

fn process(name: &str) -> Field {
    object(
        name,
        vec![
            utf8("uid"),
            int("pid"),
            utf8("name"),
            utf8("cmd_line"),
            object("user", vec![utf8("uid")]),
            file("file"),
            object("container", vec![utf8("uid")]),
            object(
                "parent_process",
                vec![int("pid"), utf8("uid"), utf8("name")],
            ),
        ],
    )
}

fn endpoint(name: &str) -> Field {
    object(
        name,
        vec![utf8("ip"), int("port"), utf8("name"), utf8("uid")],
    )
}

/// `unmapped.ritma`: where the event is in the evidence, and what OCSF has no place for.
fn unmapped() -> Field {
    let bindings = DataType::Map(
        Arc::new(Field::new(
            "entries",
            struct_of(vec![
                Field::new("key", DataType::Utf8, false),
                utf8("value"),
            ]),
            false,
        )),
        false,
    );
    let ritma = vec![
        utf8("node"),
        long("window"),
        long("seq"),
        utf8("actor"),
        utf8("event"),
        array("flags", DataType::Utf8),
        utf8("arg_hash"),
        utf8("payload_ref"),
        long("time_ns"),
        utf8("flow"),
        utf8("ptrace_request"),
        utf8("cone_id"),
        long("cone_version"),
        long("cone_lib_version"),
        long("first_seq"),
        long("last_seq"),
        long("count"),
        long("t_start_ns"),
        Field::new("bindings", bindings, true),
        array("exceptions", DataType::Int64),
        array("hashed", DataType::Utf8),
        array("unresolved", DataType::Utf8),
    ];
    object("unmapped", vec![object("ritma", ritma)])
}

/// The columns every class has; `time` first, the column files are sorted by.
fn base() -> Vec<Field> {
    vec![
        long("time"),
        int("class_uid"),
        utf8("class_name"),
        int("category_uid"),
        utf8("category_name"),
        int("activity_id"),
        utf8("activity_name"),
        long("type_uid"),
        utf8("type_name"),
        int("severity_id"),
        utf8("severity"),
        int("status_id"),
        utf8("status"),
        utf8("message"),
        object(
            "metadata",
            vec![
                utf8("uid"),
                int("sequence"),
                utf8("version"),
                array("profiles", DataType::Utf8),
                object(
                    "product",
                    vec![utf8("name"), utf8("vendor_name"), utf8("version")],
                ),
            ],
        ),
        object(
            "device",
            vec![
                utf8("name"),
                int("type_id"),
                object("os", vec![utf8("name"), int("type_id")]),
            ],
        ),
        object("actor", vec![process("process")]),
    ]
}

/// The class's own attributes.
fn class_fields(uid: u32) -> Option<Vec<Field>> {
    Some(match uid {
        1001 => vec![file("file"), file("file_result")],
        1002 => vec![object("driver", vec![file("file")])],
        1003 => vec![object(
            "kernel",
            vec![
                utf8("name"),
                utf8("system_call"),
                utf8("type"),
                int("type_id"),
            ],
        )],
        1007 => vec![
            process("process"),
            int("launch_type_id"),
            utf8("launch_type"),
            int("injection_type_id"),
            utf8("injection_type"),
        ],
        2004 => {
            let evidence = struct_of(vec![
                utf8("name"),
                utf8("uid"),
                // json_t: the value's JSON text.
                utf8("data"),
                process("process"),
                file("file"),
                endpoint("src_endpoint"),
                endpoint("dst_endpoint"),
                object("actor", vec![process("process")]),
            ]);
            vec![
                object(
                    "finding_info",
                    vec![
                        utf8("uid"),
                        utf8("title"),
                        utf8("desc"),
                        long("first_seen_time"),
                        long("last_seen_time"),
                        object(
                            "analytic",
                            vec![
                                utf8("uid"),
                                utf8("name"),
                                int("type_id"),
                                utf8("type"),
                                utf8("version"),
                            ],
                        ),
                    ],
                ),
                array("evidences", evidence),
                boolean("is_alert"),
                int("count"),
            ]
        }
        4001 => vec![
            endpoint("src_endpoint"),
            endpoint("dst_endpoint"),
            boolean("is_src_dst_assignment_known"),
        ],
        _ => return None,
    })
}

/// The Arrow schema of a class's files; `None` for a class Ritma does not emit.
pub fn class_schema(uid: u32) -> Option<SchemaRef> {
    static SCHEMAS: OnceLock<Vec<(u32, SchemaRef)>> = OnceLock::new();
    let all = SCHEMAS.get_or_init(|| {
        CLASSES
            .iter()
            .map(|c| {
                let mut fields = base();
                fields.extend(class_fields(c.uid).expect("every class has its fields"));
                fields.push(unmapped());
                (c.uid, Arc::new(Schema::new(fields)))
            })
            .collect()
    });
    all.iter().find(|(u, _)| *u == uid).map(|(_, s)| s.clone())
}

/// Each column of a schema as `path type` (lists `path[]`), leaves only: the documented form.
pub fn column_lines(schema: &Schema) -> Vec<String> {
    fn walk(prefix: &str, field: &Field, out: &mut Vec<String>) {
        let path = match prefix {
            "" => field.name().clone(),
            p => format!("{p}.{}", field.name()),
        };
        match field.data_type() {
            DataType::Struct(fields) => fields.iter().for_each(|f| walk(&path, f, out)),
            DataType::List(item) => match item.data_type() {
                DataType::Struct(fields) => fields
                    .iter()
                    .for_each(|f| walk(&format!("{path}[]"), f, out)),
                t => out.push(format!("{path}[] {}", type_name(t))),
            },
            DataType::Map(..) => out.push(format!("{path} map<string, string>")),
            t => out.push(format!("{path} {}", type_name(t))),
        }
    }
    fn type_name(t: &DataType) -> &'static str {
        match t {
            DataType::Utf8 => "string",
            DataType::Int32 => "int32",
            DataType::Int64 => "int64",
            DataType::Boolean => "boolean",
            _ => "unexpected",
        }
    }
    let mut out = Vec::new();
    schema.fields().iter().for_each(|f| walk("", f, &mut out));
    out
}

/// An event's `time` (ms since the epoch); OCSF requires it and ritma-ocsf always writes it.
pub fn time_of(event: &Value) -> i64 {
    event["time"].as_i64().unwrap_or(i64::MIN)
}

/// An event as its class's schema holds it: `json_t` values (an evidence's `data`) as text.
fn as_row(mut event: Value) -> Value {
    if let Some(evidences) = event.get_mut("evidences").and_then(Value::as_array_mut) {
        for e in evidences {
            if let Some(data) = e.get_mut("data") {
                *data = Value::String(data.to_string());
            }
        }
    }
    event
}

/// Rows decoded at a time, and read back at a time when runs are merged.
const BATCH_ROWS: usize = 8192;
/// Late rows (earlier than rows already written) held in memory before they are sorted and
/// written to a run of their own.
pub const LATE_ROWS: usize = 32 * 1024;

/// How the files are written: as the analyst tables' (zstd, pages ≤ 512 KB, page statistics),
/// row groups of at most 2^18 rows (some 20 MB: far under Security Lake's 256 MB, and few held
/// in memory), declared sorted by `time`, the first column.
pub fn ocsf_properties() -> WriterProperties {
    writer_properties()
        .into_builder()
        .set_max_row_group_row_count(Some(1 << 18))
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: 0,
            descending: false,
            nulls_first: false,
        }]))
        .build()
}

/// Late rows' runs: written once, read once, so not compressed.
fn run_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .build()
}

/// Decodes events of class `uid` into a batch of its schema, sorted by time (an equal time
/// keeps the given order); strictly: an attribute the schema lacks is an error naming it.
pub fn decode_events(uid: u32, mut events: Vec<Value>) -> Result<RecordBatch, String> {
    thread_local! {
        static DECODERS: std::cell::RefCell<Vec<(u32, Decoder)>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let schema =
        class_schema(uid).ok_or_else(|| format!("OCSF class {uid} is not one Ritma writes"))?;
    events.sort_by_key(time_of);
    let rows: Vec<Value> = events.into_iter().map(as_row).collect();
    DECODERS.with_borrow_mut(|decoders| {
        let at = match decoders.iter().position(|(u, _)| *u == uid) {
            Some(at) => at,
            None => {
                decoders.push((uid, decoder(&schema)?));
                decoders.len() - 1
            }
        };
        let d = &mut decoders[at].1;
        let decoded = d.serialize(&rows).and_then(|_| d.flush());
        if decoded.is_err() {
            // A failed decode may leave rows behind: start the next one afresh.
            decoders.remove(at);
        }
        match decoded.map_err(|e| e.to_string())? {
            Some(batch) => Ok(batch),
            None => Ok(RecordBatch::new_empty(schema)),
        }
    })
}

fn times(batch: &RecordBatch) -> Result<&Int64Array, String> {
    batch
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| "the first column is not the Int64 time".to_string())
}

/// The rows of `batches` sorted by time, an equal time in the order given.
fn sort_by_time(batches: &[RecordBatch], schema: &SchemaRef) -> Result<Vec<RecordBatch>, String> {
    let mut order: Vec<(i64, usize, usize)> = Vec::new();
    for (b, batch) in batches.iter().enumerate() {
        let t = times(batch)?;
        order.extend((0..batch.num_rows()).map(|r| (time_at(t, r), b, r)));
    }
    order.sort_by_key(|&(t, _, _)| t);
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    let mut out = Vec::new();
    for chunk in order.chunks(BATCH_ROWS) {
        let picks: Vec<(usize, usize)> = chunk.iter().map(|&(_, b, r)| (b, r)).collect();
        out.push(
            arrow_select::interleave::interleave_record_batch(&refs, &picks)
                .map_err(|e| e.to_string())?,
        );
    }
    if out.is_empty() {
        out.push(RecordBatch::new_empty(schema.clone()));
    }
    Ok(out)
}

fn time_at(t: &Int64Array, row: usize) -> i64 {
    match t.is_null(row) {
        true => i64::MIN,
        false => t.value(row),
    }
}

/// One class's file of one node and day, its rows in time order. Windows come in order, and
/// each window's events are sorted by time; an event earlier than rows already written (a late
/// event, FORMAT.md §3) is held aside, and at the end the held rows are merged in.
pub struct OcsfFile {
    path: PathBuf,
    uid: u32,
    schema: SchemaRef,
    main: Option<ArrowWriter<File>>,
    /// The largest time written to the main run.
    main_max: i64,
    late: Vec<RecordBatch>,
    late_rows: usize,
    late_limit: usize,
    late_runs: Vec<PathBuf>,
    pub rows: u64,
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    p.into()
}

impl OcsfFile {
    /// A file of class `uid` at `path`, holding up to `late_limit` late rows in memory.
    pub fn new(path: PathBuf, uid: u32, late_limit: usize) -> Result<Self, ParquetError> {
        let schema = class_schema(uid).ok_or_else(|| ParquetError::Write {
            path: path.clone(),
            detail: format!("OCSF class {uid} is not one Ritma writes"),
        })?;
        Ok(OcsfFile {
            path,
            uid,
            schema,
            main: None,
            main_max: i64::MIN,
            late: Vec::new(),
            late_rows: 0,
            late_limit: late_limit.max(1),
            late_runs: Vec::new(),
            rows: 0,
        })
    }

    fn err(&self, window: Option<u64>, detail: impl std::fmt::Display) -> ParquetError {
        ParquetError::Write {
            path: self.path.clone(),
            detail: match window {
                Some(w) => format!("window {w}: {detail}"),
                None => detail.to_string(),
            },
        }
    }

    /// Adds the events of `window` that belong in this file ([`decode_events`], then
    /// [`OcsfFile::push_batch`]).
    pub fn push_window(&mut self, window: u64, events: Vec<Value>) -> Result<(), ParquetError> {
        let batch = decode_events(self.uid, events).map_err(|e| self.err(Some(window), e))?;
        self.push_batch(window, batch)
    }

    /// Adds a window's rows of this file's class, decoded by [`decode_events`] (so sorted by
    /// time).
    pub fn push_batch(&mut self, window: u64, batch: RecordBatch) -> Result<(), ParquetError> {
        if batch.schema() != self.schema {
            return Err(self.err(Some(window), "rows of another schema"));
        }
        let t = times(&batch).map_err(|e| self.err(Some(window), e))?;
        let n = batch.num_rows();
        if (1..n).any(|r| time_at(t, r - 1) > time_at(t, r)) {
            return Err(self.err(Some(window), "rows not sorted by time"));
        }
        let on_time = (0..n)
            .position(|r| time_at(t, r) >= self.main_max)
            .unwrap_or(n);
        self.rows += n as u64;
        if on_time > 0 {
            self.late.push(batch.slice(0, on_time));
            self.late_rows += on_time;
            if self.late_rows >= self.late_limit {
                self.spill_late(window)?;
            }
        }
        if on_time < n {
            self.main_max = time_at(t, n - 1);
            self.write_main(window, &batch.slice(on_time, n - on_time))?;
        }
        Ok(())
    }

    fn write_main(&mut self, window: u64, batch: &RecordBatch) -> Result<(), ParquetError> {
        if self.main.is_none() {
            let tmp = sibling(&self.path, ".main.tmp");
            let file = create_file(&tmp)?;
            let w = ArrowWriter::try_new(file, self.schema.clone(), Some(ocsf_properties()))
                .map_err(|e| self.err(Some(window), e))?;
            self.main = Some(w);
        }
        let w = self.main.as_mut().expect("made above");
        w.write(batch).map_err(|e| ParquetError::Write {
            path: self.path.clone(),
            detail: format!("window {window}: {e}"),
        })
    }

    /// Sorts the late rows held and writes them as a run.
    fn spill_late(&mut self, window: u64) -> Result<(), ParquetError> {
        let tmp = sibling(&self.path, &format!(".late{}.tmp", self.late_runs.len()));
        let file = create_file(&tmp)?;
        let mut w = ArrowWriter::try_new(file, self.schema.clone(), Some(run_properties()))
            .map_err(|e| self.err(Some(window), e))?;
        for batch in self.late_batches().map_err(|e| self.err(Some(window), e))? {
            w.write(&batch).map_err(|e| self.err(Some(window), e))?;
        }
        w.close().map_err(|e| self.err(Some(window), e))?;
        self.late_runs.push(tmp);
        Ok(())
    }

    /// The late rows held, sorted by time, as batches; none held after.
    fn late_batches(&mut self) -> Result<Vec<RecordBatch>, String> {
        let late = std::mem::take(&mut self.late);
        self.late_rows = 0;
        sort_by_time(&late, &self.schema)
    }

    /// Writes what is left, merges the late rows in, fsyncs the file and renames it into
    /// place; nothing for no rows. Returns the rows written.
    pub fn finish(mut self) -> Result<u64, ParquetError> {
        let main_tmp = sibling(&self.path, ".main.tmp");
        if let Some(w) = self.main.take() {
            w.close().map_err(|e| self.err(None, e))?;
        }
        if self.late_rows == 0 && self.late_runs.is_empty() {
            if self.rows > 0 {
                commit_file(&main_tmp, &self.path)?;
            }
            return Ok(self.rows);
        }
        let held = self.late_batches().map_err(|e| self.err(None, e))?;
        let mut runs: Vec<Box<dyn Iterator<Item = Result<RecordBatch, String>>>> = Vec::new();
        for path in std::iter::once(&main_tmp)
            .filter(|p| p.exists())
            .chain(&self.late_runs)
        {
            runs.push(read_run(path)?);
        }
        runs.push(Box::new(held.into_iter().map(Ok)));
        let tmp = sibling(&self.path, ".tmp");
        let file = create_file(&tmp)?;
        let mut w = ArrowWriter::try_new(file, self.schema.clone(), Some(ocsf_properties()))
            .map_err(|e| self.err(None, e))?;
        let written = merge_by_time(runs, |batch| w.write(batch).map_err(|e| e.to_string()))
            .map_err(|e| self.err(None, format!("merging late events: {e}")))?;
        if written != self.rows {
            return Err(self.err(
                None,
                format!("merged {written} rows of {} pushed", self.rows),
            ));
        }
        w.close().map_err(|e| self.err(None, e))?;
        for run in std::iter::once(&main_tmp).chain(&self.late_runs) {
            match std::fs::remove_file(run) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(ParquetError::Io {
                        path: run.clone(),
                        source: e,
                    })
                }
                _ => {}
            }
        }
        commit_file(&tmp, &self.path)?;
        Ok(self.rows)
    }
}

/// A file not finished (an export stopped by an error) leaves no temporary file behind.
impl Drop for OcsfFile {
    fn drop(&mut self) {
        let temporary = [
            sibling(&self.path, ".main.tmp"),
            sibling(&self.path, ".tmp"),
        ];
        for tmp in temporary.iter().chain(&self.late_runs) {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

fn decoder(schema: &SchemaRef) -> Result<Decoder, String> {
    ReaderBuilder::new(schema.clone())
        .with_strict_mode(true)
        // `serialize` takes every row given; the size only presizes the tape.
        .with_batch_size(BATCH_ROWS)
        .build_decoder()
        .map_err(|e| e.to_string())
}

fn read_run(
    path: &Path,
) -> Result<Box<dyn Iterator<Item = Result<RecordBatch, String>>>, ParquetError> {
    let file = File::open(path).map_err(|source| ParquetError::Io {
        path: path.to_owned(),
        source,
    })?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(BATCH_ROWS).build())
        .map_err(|e| ParquetError::Write {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
    Ok(Box::new(reader.map(|b| b.map_err(|e| e.to_string()))))
}

/// One sorted run being merged: its current batch and the next row of it.
struct Cursor {
    batches: Box<dyn Iterator<Item = Result<RecordBatch, String>>>,
    batch: RecordBatch,
    times: Int64Array,
    row: usize,
}

impl Cursor {
    /// The run's next non-empty batch; `None` at its end.
    fn next(
        mut batches: Box<dyn Iterator<Item = Result<RecordBatch, String>>>,
    ) -> Result<Option<Cursor>, String> {
        while let Some(batch) = batches.next().transpose()? {
            if batch.num_rows() == 0 {
                continue;
            }
            let times = times(&batch)?.clone();
            return Ok(Some(Cursor {
                batches,
                batch,
                times,
                row: 0,
            }));
        }
        Ok(None)
    }

    fn time(&self) -> i64 {
        time_at(&self.times, self.row)
    }
}

/// Merges runs each sorted by time (the first column) into batches sorted by time, an equal
/// time taken from the earlier run first; returns the rows written.
pub fn merge_by_time(
    runs: Vec<Box<dyn Iterator<Item = Result<RecordBatch, String>>>>,
    mut write: impl FnMut(&RecordBatch) -> Result<(), String>,
) -> Result<u64, String> {
    let mut cursors = Vec::new();
    for run in runs {
        cursors.extend(Cursor::next(run)?);
    }
    let mut written = 0u64;
    while !cursors.is_empty() {
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(BATCH_ROWS);
        // Until a run's batch is used up, since the picks index the current batches.
        loop {
            let (at, _) = cursors
                .iter()
                .enumerate()
                .min_by_key(|(i, c)| (c.time(), *i))
                .expect("not empty");
            let c = &mut cursors[at];
            picks.push((at, c.row));
            c.row += 1;
            if c.row == c.batch.num_rows() || picks.len() == BATCH_ROWS {
                break;
            }
        }
        let batches: Vec<&RecordBatch> = cursors.iter().map(|c| &c.batch).collect();
        let out = arrow_select::interleave::interleave_record_batch(&batches, &picks)
            .map_err(|e| e.to_string())?;
        write(&out)?;
        written += out.num_rows() as u64;
        let mut next = Vec::with_capacity(cursors.len());
        for c in cursors {
            match c.row == c.batch.num_rows() {
                true => next.extend(Cursor::next(c.batches)?),
                false => next.push(c),
            }
        }
        cursors = next;
    }
    Ok(written)
}

/// Where a class's file of one node and event day goes under `out`: the class's source
/// directory, Security Lake's `region=`/`accountId=` levels when both are given, then
/// `eventDay=YYYYMMDD/<node>.parquet`.
pub fn ocsf_path(
    out: &Path,
    class: &OcsfClass,
    lake: Option<(&str, &str)>,
    node: &str,
    day: (i64, u32, u32),
) -> PathBuf {
    let (y, m, d) = day;
    let mut p = out.join(class.source);
    if let Some((region, account)) = lake {
        p = p
            .join(format!("region={region}"))
            .join(format!("accountId={account}"));
    }
    p.join(format!("eventDay={y:04}{m:02}{d:02}"))
        .join(format!("{node}.parquet"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use serde_json::json;

    /// An event of class 1007 with only what the test needs.
    fn event(uid: &str, time: i64) -> Value {
        json!({"time": time, "class_uid": 1007, "metadata": {"uid": uid}})
    }

    fn read_back(path: &Path) -> Vec<(i64, String)> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let mut out = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let times = times(&batch).unwrap();
            let metadata = batch.column_by_name("metadata").unwrap().as_struct();
            let uids = metadata.column_by_name("uid").unwrap().as_string::<i32>();
            for i in 0..batch.num_rows() {
                out.push((times.value(i), uids.value(i).to_owned()));
            }
        }
        out
    }

    /// Windows of events 10 ms apart, every third window holding events of earlier windows.
    fn windows() -> Vec<(u64, Vec<Value>)> {
        (0..40u64)
            .map(|w| {
                let mut events: Vec<Value> = (0..50)
                    .rev()
                    .map(|i| event(&format!("{w}/{i}"), (w * 1000 + i * 10) as i64))
                    .collect();
                if w % 3 == 2 {
                    for i in 0..7 {
                        let t = ((w - 2) * 1000 + i * 130 + 5) as i64;
                        events.push(event(&format!("{w}/late{i}"), t));
                    }
                }
                (w, events)
            })
            .collect()
    }

    fn export(path: &Path, late_limit: usize) -> u64 {
        let mut f = OcsfFile::new(path.to_owned(), 1007, late_limit).unwrap();
        for (w, events) in windows() {
            f.push_window(w, events).unwrap();
        }
        f.finish().unwrap()
    }

    #[test]
    fn late_events_are_merged_in_so_a_file_is_sorted_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let want: usize = windows().iter().map(|(_, e)| e.len()).sum();
        let mut bytes = Vec::new();
        // Late rows held in memory only, and spilled to runs every 5 rows.
        for (name, limit) in [("held.parquet", LATE_ROWS), ("spilled.parquet", 5)] {
            let path = dir.path().join(name);
            assert_eq!(export(&path, limit), want as u64);
            let rows = read_back(&path);
            assert_eq!(rows.len(), want);
            assert!(rows.windows(2).all(|p| p[0].0 <= p[1].0), "not sorted");
            let uids: std::collections::BTreeSet<_> = rows.iter().map(|r| &r.1).collect();
            assert_eq!(uids.len(), want, "a row lost or doubled");
            assert!(uids.contains(&"38/late6".to_string()));
            bytes.push(std::fs::read(&path).unwrap());
        }
        // How the late rows were held does not change the file.
        assert_eq!(bytes[0], bytes[1]);
        // Nothing but the files is left.
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2);
    }

    #[test]
    fn a_day_of_many_events_has_small_zstd_pages_in_row_groups_of_2_18_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.parquet");
        let mut f = OcsfFile::new(path.clone(), 1007, LATE_ROWS).unwrap();
        let n = 300_000u64;
        for w in 0..n / 10_000 {
            let events = (0..10_000)
                .map(|i| {
                    let seq = w * 10_000 + i;
                    let mut e = event(&format!("n/{w}/{seq}"), seq as i64);
                    e["process"] = json!({"pid": seq % 40_000, "name": "worker", "cmd_line": "worker --serve --port 8080"});
                    e["message"] = format!("worker exec {seq}").into();
                    e
                })
                .collect();
            f.push_window(w, events).unwrap();
        }
        assert_eq!(f.finish().unwrap(), n);
        let groups = crate::parquet::tests::assert_small_zstd_pages(&path);
        assert_eq!(groups, vec![1 << 18, n as i64 - (1 << 18)]);
    }

    #[test]
    fn an_attribute_the_schema_lacks_is_an_error_naming_file_window_and_attribute() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        let mut f = OcsfFile::new(path.clone(), 1007, LATE_ROWS).unwrap();
        let mut e = event("a", 1);
        e["process"]["colour"] = "blue".into();
        let err = f.push_window(17, vec![e]).unwrap_err().to_string();
        assert!(
            err.contains("x.parquet") && err.contains("window 17"),
            "{err}"
        );
        assert!(err.contains("colour"), "{err}");
        let err = OcsfFile::new(path, 3001, 1).err().unwrap().to_string();
        assert!(err.contains("3001"), "{err}");
    }

    #[test]
    fn json_values_are_written_as_their_text() {
        let e = json!({"evidences": [{"name": "n", "data": {"kind": "comm", "value": "sh"}}]});
        let row = as_row(e);
        assert_eq!(
            row["evidences"][0]["data"],
            r#"{"kind":"comm","value":"sh"}"#
        );
    }

    #[test]
    fn the_columns_are_the_documented_ones() {
        let mut text = String::new();
        for c in CLASSES {
            text.push_str(&format!("# {} {} ({})\n", c.uid, c.source, c.event_class));
            for line in column_lines(&class_schema(c.uid).unwrap()) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ocsf-parquet-columns.txt");
        if std::env::var_os("RITMA_BLESS").is_some() {
            std::fs::write(&file, &text).unwrap();
        }
        let kept = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            kept == text,
            "{} differs from the schema: a column changed. If that is meant, run with RITMA_BLESS=1 and say so in the docs.",
            file.display()
        );
    }

    #[test]
    fn paths_follow_security_lake() {
        let c = class(2004).unwrap();
        let p = ocsf_path(
            Path::new("o"),
            c,
            Some(("eu-west-1", "123456789012")),
            "n-1",
            (2026, 3, 9),
        );
        assert_eq!(
            p,
            Path::new("o/ritma-detection-finding/region=eu-west-1/accountId=123456789012/eventDay=20260309/n-1.parquet")
        );
        let p = ocsf_path(Path::new("o"), c, None, "n-1", (2026, 3, 9));
        assert_eq!(
            p,
            Path::new("o/ritma-detection-finding/eventDay=20260309/n-1.parquet")
        );
    }
}
