//! The analyst tables as Parquet files (`ritma export --format parquet`): the same rows and
//! columns as in ClickHouse (docs/ANALYSTS.md), one file per table, node and day under
//! Hive-style partitions, `OUT/<table>/node=<node>/day=<YYYY-MM-DD>/part-0.parquet`. The node
//! and day are in the path, not in the file. Columns are built from the row structs through
//! serde, so a Parquet file and a ClickHouse table cannot drift apart.

use arrow_array::builder::{
    Date32Builder, FixedSizeBinaryBuilder, Int64Builder, ListBuilder, StringBuilder,
    TimestampNanosecondBuilder, UInt16Builder, UInt32Builder, UInt64Builder, UInt8Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use serde::ser::{self, Impossible, Serialize, SerializeSeq, SerializeStruct, SerializeTuple};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows buffered before they become a record batch.
const BATCH_ROWS: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Write { path: PathBuf, detail: String },
}

/// Columns whose times are ns since the epoch: Parquet timestamps (ns, UTC).
const TIME_COLUMNS: [&str; 3] = ["time_ns", "first_ns", "last_ns"];
/// Columns the partition path holds.
const PATH_COLUMNS: [&str; 2] = ["node", "day"];

enum Builder {
    U8(UInt8Builder),
    U16(UInt16Builder),
    U32(UInt32Builder),
    U64(UInt64Builder),
    I64(Int64Builder),
    Time(TimestampNanosecondBuilder),
    Date(Date32Builder),
    Str(StringBuilder),
    Id(FixedSizeBinaryBuilder),
    StrList(ListBuilder<StringBuilder>),
    U64List(ListBuilder<UInt64Builder>),
}

struct Column {
    name: &'static str,
    nullable: bool,
    builder: Builder,
}

impl Column {
    fn data_type(&self) -> DataType {
        let item = |t: DataType| DataType::List(Arc::new(Field::new("item", t, true)));
        match &self.builder {
            Builder::U8(_) => DataType::UInt8,
            Builder::U16(_) => DataType::UInt16,
            Builder::U32(_) => DataType::UInt32,
            Builder::U64(_) => DataType::UInt64,
            Builder::I64(_) => DataType::Int64,
            Builder::Time(_) => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            Builder::Date(_) => DataType::Date32,
            Builder::Str(_) => DataType::Utf8,
            Builder::Id(_) => DataType::FixedSizeBinary(16),
            Builder::StrList(_) => item(DataType::Utf8),
            Builder::U64List(_) => item(DataType::UInt64),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match &mut self.builder {
            Builder::U8(b) => Arc::new(b.finish()),
            Builder::U16(b) => Arc::new(b.finish()),
            Builder::U32(b) => Arc::new(b.finish()),
            Builder::U64(b) => Arc::new(b.finish()),
            Builder::I64(b) => Arc::new(b.finish()),
            Builder::Time(b) => Arc::new(b.finish().with_timezone("UTC")),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Str(b) => Arc::new(b.finish()),
            Builder::Id(b) => Arc::new(b.finish()),
            Builder::StrList(b) => Arc::new(b.finish()),
            Builder::U64List(b) => Arc::new(b.finish()),
        }
    }
}

/// Rows of one table turned into Arrow columns, the columns made from the first row.
#[derive(Default)]
pub struct ColumnSink {
    columns: Vec<Column>,
    rows: usize,
}

impl ColumnSink {
    pub fn push<T: Serialize>(&mut self, row: &T) -> Result<(), String> {
        row.serialize(RowSer { sink: self, at: 0 })
            .map_err(|e| e.0)?;
        self.rows += 1;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn schema(&self) -> Arc<Schema> {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(c.name, c.data_type(), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    /// The rows pushed since the last batch.
    pub fn batch(&mut self) -> Result<RecordBatch, String> {
        let schema = self.schema();
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(Column::finish).collect();
        self.rows = 0;
        RecordBatch::try_new(schema, arrays).map_err(|e| e.to_string())
    }
}

#[derive(Debug)]
struct SerError(String);

impl std::fmt::Display for SerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SerError {}

impl ser::Error for SerError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        SerError(msg.to_string())
    }
}

fn unsupported(what: &str) -> SerError {
    SerError(format!("a row field of an unsupported type ({what})"))
}

/// Serializer methods for the value types a serializer refuses, by name: `reject!(bool, i8)`.
macro_rules! reject {
    (bool) => { fn serialize_bool(self, _: bool) -> Result<(), SerError> { Err(unsupported("bool")) } };
    (i8) => { fn serialize_i8(self, _: i8) -> Result<(), SerError> { Err(unsupported("i8")) } };
    (i16) => { fn serialize_i16(self, _: i16) -> Result<(), SerError> { Err(unsupported("i16")) } };
    (i32) => { fn serialize_i32(self, _: i32) -> Result<(), SerError> { Err(unsupported("i32")) } };
    (i64) => { fn serialize_i64(self, _: i64) -> Result<(), SerError> { Err(unsupported("i64")) } };
    (u8) => { fn serialize_u8(self, _: u8) -> Result<(), SerError> { Err(unsupported("u8")) } };
    (u16) => { fn serialize_u16(self, _: u16) -> Result<(), SerError> { Err(unsupported("u16")) } };
    (u32) => { fn serialize_u32(self, _: u32) -> Result<(), SerError> { Err(unsupported("u32")) } };
    (u64) => { fn serialize_u64(self, _: u64) -> Result<(), SerError> { Err(unsupported("u64")) } };
    (f32) => { fn serialize_f32(self, _: f32) -> Result<(), SerError> { Err(unsupported("f32")) } };
    (f64) => { fn serialize_f64(self, _: f64) -> Result<(), SerError> { Err(unsupported("f64")) } };
    (char) => { fn serialize_char(self, _: char) -> Result<(), SerError> { Err(unsupported("char")) } };
    (str) => { fn serialize_str(self, _: &str) -> Result<(), SerError> { Err(unsupported("str")) } };
    (bytes) => { fn serialize_bytes(self, _: &[u8]) -> Result<(), SerError> { Err(unsupported("bytes")) } };
    (none) => { fn serialize_none(self) -> Result<(), SerError> { Err(unsupported("an option")) } };
    (some) => {
        fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), SerError> {
            Err(unsupported("an option"))
        }
    };
    (unit) => {
        fn serialize_unit(self) -> Result<(), SerError> { Err(unsupported("unit")) }
        fn serialize_unit_struct(self, _: &'static str) -> Result<(), SerError> {
            Err(unsupported("unit struct"))
        }
    };
    (newtype) => {
        fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, _: &T) -> Result<(), SerError> {
            Err(unsupported("newtype struct"))
        }
    };
    (seq) => {
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, SerError> {
            Err(unsupported("a list"))
        }
    };
    (tuple) => {
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, SerError> {
            Err(unsupported("a tuple"))
        }
    };
    (struct) => {
        fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, SerError> {
            Err(unsupported("a struct"))
        }
    };
    // Enums, maps and tuple structs: no row has them.
    (rest) => {
        fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), SerError> {
            Err(unsupported("enum"))
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<(), SerError> {
            Err(unsupported("enum"))
        }
        fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, SerError> {
            Err(unsupported("tuple struct"))
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, SerError> {
            Err(unsupported("enum"))
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, SerError> {
            Err(unsupported("map"))
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, SerError> {
            Err(unsupported("enum"))
        }
    };
    ($($kind:tt),+) => { $(reject!($kind);)+ };
}

/// Serializes one row struct: each field into its column.
struct RowSer<'a> {
    sink: &'a mut ColumnSink,
    at: usize,
}

/// Serializes one field's value into column `at` (made on the first row).
struct FieldSer<'a> {
    sink: &'a mut ColumnSink,
    at: usize,
    name: &'static str,
}

impl FieldSer<'_> {
    fn column(&mut self, make: impl FnOnce() -> Builder) -> &mut Builder {
        if self.at == self.sink.columns.len() {
            self.sink.columns.push(Column {
                name: self.name,
                nullable: false,
                builder: make(),
            });
        }
        &mut self.sink.columns[self.at].builder
    }

    fn mismatch(&self) -> SerError {
        SerError(format!(
            "column {}: a value of another type than its first",
            self.name
        ))
    }

    fn uint(mut self, v: u64, make: fn() -> Builder) -> Result<(), SerError> {
        let name = self.name;
        let ok = match self.column(make) {
            Builder::U8(b) => u8::try_from(v).map(|v| b.append_value(v)).is_ok(),
            Builder::U16(b) => u16::try_from(v).map(|v| b.append_value(v)).is_ok(),
            Builder::U32(b) => u32::try_from(v).map(|v| b.append_value(v)).is_ok(),
            Builder::U64(b) => {
                b.append_value(v);
                true
            }
            Builder::Date(b) if name == "day" => {
                i32::try_from(v).map(|v| b.append_value(v)).is_ok()
            }
            _ => false,
        };
        ok.then_some(()).ok_or_else(|| self.mismatch())
    }
}

impl<'a> ser::Serializer for RowSer<'a> {
    type Ok = ();
    type Error = SerError;
    type SerializeSeq = Impossible<(), SerError>;
    type SerializeTuple = Impossible<(), SerError>;
    type SerializeTupleStruct = Impossible<(), SerError>;
    type SerializeTupleVariant = Impossible<(), SerError>;
    type SerializeMap = Impossible<(), SerError>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), SerError>;

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, SerError> {
        Ok(self)
    }

    reject!(
        bool, i8, i16, i32, i64, u8, u16, u32, u64, f32, f64, char, str, bytes, none, some, unit,
        newtype, seq, tuple, rest
    );
}

impl SerializeStruct for RowSer<'_> {
    type Ok = ();
    type Error = SerError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        if PATH_COLUMNS.contains(&name) {
            return Ok(());
        }
        value.serialize(FieldSer {
            sink: self.sink,
            at: self.at,
            name,
        })?;
        self.at += 1;
        Ok(())
    }

    fn end(self) -> Result<(), SerError> {
        if self.at != self.sink.columns.len() {
            return Err(SerError("a row with another number of fields".into()));
        }
        Ok(())
    }
}

impl<'a> ser::Serializer for FieldSer<'a> {
    type Ok = ();
    type Error = SerError;
    type SerializeSeq = ListSer<'a>;
    type SerializeTuple = IdSer<'a>;
    type SerializeTupleStruct = Impossible<(), SerError>;
    type SerializeTupleVariant = Impossible<(), SerError>;
    type SerializeMap = Impossible<(), SerError>;
    type SerializeStruct = Impossible<(), SerError>;
    type SerializeStructVariant = Impossible<(), SerError>;

    fn serialize_u8(self, v: u8) -> Result<(), SerError> {
        self.uint(v.into(), || Builder::U8(UInt8Builder::new()))
    }

    fn serialize_u16(self, v: u16) -> Result<(), SerError> {
        let day = self.name == "day";
        self.uint(
            v.into(),
            if day {
                || Builder::Date(Date32Builder::new())
            } else {
                || Builder::U16(UInt16Builder::new())
            },
        )
    }

    fn serialize_u32(self, v: u32) -> Result<(), SerError> {
        self.uint(v.into(), || Builder::U32(UInt32Builder::new()))
    }

    fn serialize_u64(self, v: u64) -> Result<(), SerError> {
        self.uint(v, || Builder::U64(UInt64Builder::new()))
    }

    fn serialize_i64(mut self, v: i64) -> Result<(), SerError> {
        let time = TIME_COLUMNS.contains(&self.name);
        match self.column(|| {
            if time {
                Builder::Time(TimestampNanosecondBuilder::new())
            } else {
                Builder::I64(Int64Builder::new())
            }
        }) {
            Builder::Time(b) => b.append_value(v),
            Builder::I64(b) => b.append_value(v),
            _ => return Err(self.mismatch()),
        }
        Ok(())
    }

    fn serialize_str(mut self, v: &str) -> Result<(), SerError> {
        match self.column(|| Builder::Str(StringBuilder::new())) {
            Builder::Str(b) => b.append_value(v),
            _ => return Err(self.mismatch()),
        }
        Ok(())
    }

    fn serialize_none(mut self) -> Result<(), SerError> {
        // Ritma's optional row fields are all u64.
        self.sink_nullable();
        match self.column(|| Builder::U64(UInt64Builder::new())) {
            Builder::U64(b) => b.append_null(),
            _ => return Err(self.mismatch()),
        }
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(mut self, v: &T) -> Result<(), SerError> {
        self.sink_nullable();
        v.serialize(self)
    }

    fn serialize_seq(mut self, _: Option<usize>) -> Result<ListSer<'a>, SerError> {
        let numbers = self.name == "exceptions";
        self.column(|| {
            if numbers {
                Builder::U64List(ListBuilder::new(UInt64Builder::new()))
            } else {
                Builder::StrList(ListBuilder::new(StringBuilder::new()))
            }
        });
        Ok(ListSer { field: self })
    }

    fn serialize_tuple(mut self, len: usize) -> Result<IdSer<'a>, SerError> {
        if len != 16 {
            return Err(unsupported("a tuple other than a 16-byte id"));
        }
        self.column(|| Builder::Id(FixedSizeBinaryBuilder::new(16)));
        Ok(IdSer {
            field: self,
            bytes: Vec::with_capacity(16),
        })
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), SerError> {
        v.serialize(self)
    }

    reject!(bool, i8, i16, i32, f32, f64, char, bytes, unit, struct, rest);
}

impl FieldSer<'_> {
    /// Marks the column nullable (an `Option` field; Ritma's are all u64).
    fn sink_nullable(&mut self) {
        self.column(|| Builder::U64(UInt64Builder::new()));
        self.sink.columns[self.at].nullable = true;
    }
}

/// A list field: strings or numbers appended to the list column's values.
struct ListSer<'a> {
    field: FieldSer<'a>,
}

impl SerializeSeq for ListSer<'_> {
    type Ok = ();
    type Error = SerError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), SerError> {
        let at = self.field.at;
        match &mut self.field.sink.columns[at].builder {
            Builder::StrList(b) => v.serialize(ItemSer::Str(b.values())),
            Builder::U64List(b) => v.serialize(ItemSer::U64(b.values())),
            _ => Err(self.field.mismatch()),
        }
    }

    fn end(self) -> Result<(), SerError> {
        let at = self.field.at;
        match &mut self.field.sink.columns[at].builder {
            Builder::StrList(b) => b.append(true),
            Builder::U64List(b) => b.append(true),
            _ => return Err(self.field.mismatch()),
        }
        Ok(())
    }
}

/// One element of a list.
enum ItemSer<'a> {
    Str(&'a mut StringBuilder),
    U64(&'a mut UInt64Builder),
}

impl ser::Serializer for ItemSer<'_> {
    type Ok = ();
    type Error = SerError;
    type SerializeSeq = Impossible<(), SerError>;
    type SerializeTuple = Impossible<(), SerError>;
    type SerializeTupleStruct = Impossible<(), SerError>;
    type SerializeTupleVariant = Impossible<(), SerError>;
    type SerializeMap = Impossible<(), SerError>;
    type SerializeStruct = Impossible<(), SerError>;
    type SerializeStructVariant = Impossible<(), SerError>;

    fn serialize_str(self, v: &str) -> Result<(), SerError> {
        match self {
            ItemSer::Str(b) => b.append_value(v),
            ItemSer::U64(_) => return Err(unsupported("a string in a list of numbers")),
        }
        Ok(())
    }

    fn serialize_u64(self, v: u64) -> Result<(), SerError> {
        match self {
            ItemSer::U64(b) => b.append_value(v),
            ItemSer::Str(_) => return Err(unsupported("a number in a list of strings")),
        }
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), SerError> {
        v.serialize(self)
    }

    reject!(
        bool, i8, i16, i32, i64, u8, u16, u32, f32, f64, char, bytes, none, some, unit, seq, tuple,
        struct, rest
    );
}

/// A 16-byte id (`[u8; 16]` serializes as a tuple of bytes).
struct IdSer<'a> {
    field: FieldSer<'a>,
    bytes: Vec<u8>,
}

impl SerializeTuple for IdSer<'_> {
    type Ok = ();
    type Error = SerError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), SerError> {
        let mut byte = ByteSer(None);
        v.serialize(&mut byte)?;
        self.bytes.push(
            byte.0
                .ok_or_else(|| unsupported("an id of other than bytes"))?,
        );
        Ok(())
    }

    fn end(self) -> Result<(), SerError> {
        let at = self.field.at;
        match &mut self.field.sink.columns[at].builder {
            Builder::Id(b) => b
                .append_value(&self.bytes)
                .map_err(|e| SerError(e.to_string())),
            _ => Err(self.field.mismatch()),
        }
    }
}

/// One byte of an id.
struct ByteSer(Option<u8>);

impl ser::Serializer for &mut ByteSer {
    type Ok = ();
    type Error = SerError;
    type SerializeSeq = Impossible<(), SerError>;
    type SerializeTuple = Impossible<(), SerError>;
    type SerializeTupleStruct = Impossible<(), SerError>;
    type SerializeTupleVariant = Impossible<(), SerError>;
    type SerializeMap = Impossible<(), SerError>;
    type SerializeStruct = Impossible<(), SerError>;
    type SerializeStructVariant = Impossible<(), SerError>;

    fn serialize_u8(self, v: u8) -> Result<(), SerError> {
        self.0 = Some(v);
        Ok(())
    }

    reject!(
        bool, i8, i16, i32, i64, u16, u32, u64, f32, f64, char, str, bytes, none, some, unit,
        newtype, seq, tuple, struct, rest
    );
}

/// How the files are written: zstd, row groups of up to a million rows for scans, page
/// statistics so readers skip pages by time.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("level 3 is valid"),
        ))
        .set_max_row_group_row_count(Some(1 << 20))
        .set_data_page_size_limit(512 << 10)
        .set_dictionary_page_size_limit(512 << 10)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("ritma {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// One Parquet file being written: to `<path>.tmp`, renamed when finished.
pub struct PartFile {
    path: PathBuf,
    tmp: PathBuf,
    sink: ColumnSink,
    writer: Option<ArrowWriter<File>>,
    pub rows: u64,
}

impl PartFile {
    pub fn new(path: PathBuf) -> Self {
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        PartFile {
            path,
            tmp: tmp.into(),
            sink: ColumnSink::default(),
            writer: None,
            rows: 0,
        }
    }

    fn write_err(&self, detail: impl std::fmt::Display) -> ParquetError {
        ParquetError::Write {
            path: self.path.clone(),
            detail: detail.to_string(),
        }
    }

    pub fn push<T: Serialize>(&mut self, row: &T) -> Result<(), ParquetError> {
        self.sink.push(row).map_err(|e| self.write_err(e))?;
        self.rows += 1;
        if self.sink.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ParquetError> {
        if self.sink.is_empty() {
            return Ok(());
        }
        let batch = self.sink.batch().map_err(|e| self.write_err(e))?;
        if self.writer.is_none() {
            let file = create_file(&self.tmp)?;
            let w = ArrowWriter::try_new(file, batch.schema(), Some(writer_properties()))
                .map_err(|e| self.write_err(e))?;
            self.writer = Some(w);
        }
        let w = self.writer.as_mut().expect("made above");
        w.write(&batch).map_err(|e| ParquetError::Write {
            path: self.path.clone(),
            detail: e.to_string(),
        })
    }

    /// Writes what is left, fsyncs the file and renames it into place; nothing for no rows.
    pub fn finish(mut self) -> Result<u64, ParquetError> {
        self.flush()?;
        let Some(w) = self.writer.take() else {
            return Ok(0);
        };
        w.close().map_err(|e| self.write_err(e))?;
        commit_file(&self.tmp, &self.path)?;
        Ok(self.rows)
    }
}

/// Creates `path` (and its directory) for writing.
pub fn create_file(path: &Path) -> Result<File, ParquetError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ParquetError::Io {
            path: dir.to_owned(),
            source,
        })?;
    }
    File::create(path).map_err(|source| ParquetError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Fsyncs the written `tmp`, renames it to `path` and fsyncs the directory: a file is whole
/// under its name or not there.
pub fn commit_file(tmp: &Path, path: &Path) -> Result<(), ParquetError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ParquetError::Io { path, source }
    };
    File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(io(tmp))?;
    std::fs::rename(tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}

/// Where a table's file of one node and day goes under `out`.
pub fn part_path(out: &Path, table: &str, node: &str, day: (i64, u32, u32)) -> PathBuf {
    let (y, m, d) = day;
    out.join(table)
        .join(format!("node={node}"))
        .join(format!("day={y:04}-{m:02}-{d:02}"))
        .join("part-0.parquet")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    struct Row<'a> {
        node: &'a str,
        day: u16,
        win: u64,
        time_ns: i64,
        id: [u8; 16],
        name: &'a str,
        flags: Vec<&'a str>,
        exceptions: Vec<u64>,
        lost: Option<u64>,
        small: u8,
    }

    #[test]
    fn a_written_file_has_small_zstd_pages_in_row_groups_of_a_million_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = part_path(dir.path(), "events", "n", (2026, 11, 1));
        let mut file = PartFile::new(path.clone());
        let text = "x".repeat(40);
        for i in 0..1_200_000u64 {
            let row = Row {
                node: "n",
                day: 20393,
                win: i / 1000,
                time_ns: i as i64,
                id: [(i % 251) as u8; 16],
                name: &text,
                flags: vec!["read"],
                exceptions: vec![],
                lost: None,
                small: (i % 7) as u8,
            };
            file.push(&row).unwrap();
        }
        assert_eq!(file.finish().unwrap(), 1_200_000);
        assert!(path.ends_with("events/node=n/day=2026-11-01/part-0.parquet"));
        let groups = assert_small_zstd_pages(&path);
        assert_eq!(
            groups,
            vec![1 << 20, 1_200_000 - (1 << 20)],
            "row groups of at most 2^20 rows"
        );
    }

    /// Asserts that every column chunk of the file is zstd and every page at most 1 MB
    /// uncompressed, as Security Lake bounds them, and that columns have several pages;
    /// returns the row groups' row counts.
    pub(crate) fn assert_small_zstd_pages(path: &Path) -> Vec<i64> {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
        let meta = reader.metadata();
        let mut pages = 0;
        for g in 0..meta.num_row_groups() {
            let group = reader.get_row_group(g).unwrap();
            for c in 0..meta.row_group(g).num_columns() {
                // The file records the codec, not its level.
                let codec = meta.row_group(g).column(c).compression();
                assert!(matches!(codec, Compression::ZSTD(_)), "{codec:?}");
                for page in group.get_column_page_reader(c).unwrap() {
                    // Uncompressed, as Security Lake bounds them.
                    let page = page.unwrap();
                    assert!(
                        page.buffer().len() <= 1 << 20,
                        "a page of {}",
                        page.buffer().len()
                    );
                    pages += 1;
                }
            }
        }
        assert!(pages > 2 * meta.row_group(0).num_columns());
        meta.row_groups().iter().map(|g| g.num_rows()).collect()
    }

    #[test]
    fn rows_become_typed_columns_without_the_path_columns() {
        let mut sink = ColumnSink::default();
        for i in 0..3u64 {
            let row = Row {
                node: "n",
                day: 20393,
                win: i,
                time_ns: 1_000 + i as i64,
                id: [i as u8; 16],
                name: "x",
                flags: if i == 0 { vec![] } else { vec!["a", "b"] },
                exceptions: vec![i],
                lost: (i == 1).then_some(7),
                small: 1,
            };
            sink.push(&row).unwrap();
        }
        let batch = sink.batch().unwrap();
        assert_eq!(batch.num_rows(), 3);
        let schema = batch.schema();
        let fields: Vec<(&str, &DataType, bool)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type(), f.is_nullable()))
            .collect();
        assert_eq!(fields[0], ("win", &DataType::UInt64, false));
        assert_eq!(
            fields[1],
            (
                "time_ns",
                &DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                false
            )
        );
        assert_eq!(fields[2], ("id", &DataType::FixedSizeBinary(16), false));
        assert_eq!(fields[6], ("lost", &DataType::UInt64, true));
        assert_eq!(fields.len(), 8, "node and day are left to the path");
        assert_eq!(batch.column(6).null_count(), 2);
    }
}
