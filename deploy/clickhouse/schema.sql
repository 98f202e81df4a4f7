-- Ritma's analyst tables (docs/ANALYSTS.md), as `ritma load` creates them on ClickHouse 20.1
-- and later. Every row names its node, window (`win`) and leaf; events also their `seq`, so
-- `ritma prove STORE --seq N` proves any row. Tables are partitioned by day and ordered for
-- per-node time scans. `ritma load` creates them itself (`--print-ddl` shows what it sends):
-- on servers before 20.1 it drops the CODEC, ALIAS and TTL parts and LowCardinality, which
-- those versions lack; with `--keep DUR` the TTL is the store's retention, else 3650 days.
-- One column per line: the loader reads the columns it checks a table's shape against from here.

CREATE TABLE IF NOT EXISTS events (
    node LowCardinality(String) CODEC(ZSTD(3)),
    day Date CODEC(ZSTD(3)),
    win UInt64 CODEC(DoubleDelta, ZSTD(3)),
    leaf UInt64 CODEC(Delta, ZSTD(3)),
    seq UInt64 CODEC(Delta, ZSTD(3)),
    time_ns Int64 CODEC(Delta, ZSTD(3)),
    event LowCardinality(String) CODEC(ZSTD(3)),
    actor FixedString(16) CODEC(ZSTD(3)),
    pid UInt32 CODEC(ZSTD(3)),
    comm LowCardinality(String) CODEC(ZSTD(3)),
    exe LowCardinality(String) CODEC(ZSTD(3)),
    object_kind LowCardinality(String) CODEC(ZSTD(3)),
    object String CODEC(ZSTD(3)),
    object_id FixedString(16) CODEC(ZSTD(3)),
    addr LowCardinality(String) CODEC(ZSTD(3)),
    port UInt16 CODEC(ZSTD(3)),
    flags Array(LowCardinality(String)) CODEC(ZSTD(3)),
    arg_hash String CODEC(ZSTD(3)),
    payload_ref String CODEC(ZSTD(3)),
    time DateTime64(9, 'UTC') ALIAS fromUnixTimestamp64Nano(time_ns)
) ENGINE = MergeTree
PARTITION BY day
ORDER BY (node, time_ns, seq)
TTL day + INTERVAL 3650 DAY;

CREATE TABLE IF NOT EXISTS actors (
    node LowCardinality(String) CODEC(ZSTD(3)),
    day Date CODEC(ZSTD(3)),
    win UInt64 CODEC(DoubleDelta, ZSTD(3)),
    leaf UInt64 CODEC(Delta, ZSTD(3)),
    time_ns Int64 CODEC(DoubleDelta, ZSTD(3)),
    actor FixedString(16) CODEC(ZSTD(3)),
    pid UInt32 CODEC(ZSTD(3)),
    ppid UInt32 CODEC(ZSTD(3)),
    parent FixedString(16) CODEC(ZSTD(3)),
    start_ns UInt64 CODEC(ZSTD(3)),
    uid UInt32 CODEC(ZSTD(3)),
    gid UInt32 CODEC(ZSTD(3)),
    euid UInt32 CODEC(ZSTD(3)),
    comm LowCardinality(String) CODEC(ZSTD(3)),
    exe LowCardinality(String) CODEC(ZSTD(3)),
    exe_hash String CODEC(ZSTD(3)),
    cgroup_id UInt64 CODEC(ZSTD(3)),
    mnt_ns UInt64 CODEC(ZSTD(3)),
    pid_ns UInt64 CODEC(ZSTD(3)),
    net_ns UInt64 CODEC(ZSTD(3)),
    container LowCardinality(String) CODEC(ZSTD(3)),
    service LowCardinality(String) CODEC(ZSTD(3)),
    time DateTime64(9, 'UTC') ALIAS fromUnixTimestamp64Nano(time_ns)
) ENGINE = MergeTree
PARTITION BY day
ORDER BY (node, actor, win)
TTL day + INTERVAL 3650 DAY;

CREATE TABLE IF NOT EXISTS edges (
    node LowCardinality(String) CODEC(ZSTD(3)),
    day Date CODEC(ZSTD(3)),
    win UInt64 CODEC(DoubleDelta, ZSTD(3)),
    leaf UInt64 CODEC(Delta, ZSTD(3)),
    kind LowCardinality(String) CODEC(ZSTD(3)),
    src FixedString(16) CODEC(ZSTD(3)),
    dst FixedString(16) CODEC(ZSTD(3)),
    src_kind LowCardinality(String) CODEC(ZSTD(3)),
    src_value String CODEC(ZSTD(3)),
    dst_kind LowCardinality(String) CODEC(ZSTD(3)),
    dst_value String CODEC(ZSTD(3)),
    flags UInt8 CODEC(ZSTD(3)),
    first_ns Int64 CODEC(Delta, ZSTD(3)),
    last_ns Int64 CODEC(Delta, ZSTD(3)),
    count UInt64 CODEC(ZSTD(3))
) ENGINE = MergeTree
PARTITION BY day
ORDER BY (node, kind, src, win)
TTL day + INTERVAL 3650 DAY;

CREATE TABLE IF NOT EXISTS cone_matches (
    node LowCardinality(String),
    day Date,
    win UInt64 CODEC(DoubleDelta, ZSTD(3)),
    leaf UInt64 CODEC(Delta, ZSTD(3)),
    time_ns Int64 CODEC(DoubleDelta, ZSTD(3)),
    cone LowCardinality(String),
    cone_version UInt32,
    first_seq UInt64 CODEC(Delta, ZSTD(3)),
    last_seq UInt64 CODEC(Delta, ZSTD(3)),
    count UInt64 CODEC(ZSTD(3)),
    binding_names Array(LowCardinality(String)),
    binding_values Array(String),
    exceptions Array(UInt64),
    time DateTime64(9, 'UTC') ALIAS fromUnixTimestamp64Nano(time_ns)
) ENGINE = MergeTree
PARTITION BY day
ORDER BY (node, cone, time_ns)
TTL day + INTERVAL 3650 DAY;

CREATE TABLE IF NOT EXISTS health (
    node LowCardinality(String),
    day Date,
    win UInt64,
    leaf UInt64,
    time_ns Int64,
    kind LowCardinality(String),
    subject String,
    lost Nullable(UInt64)
) ENGINE = MergeTree
PARTITION BY day
ORDER BY (node, time_ns)
TTL day + INTERVAL 3650 DAY;

CREATE TABLE IF NOT EXISTS loss (
    node LowCardinality(String),
    day Date,
    win UInt64,
    reason_id UInt64,
    time_ns Int64,
    reason LowCardinality(String),
    count UInt64
) ENGINE = MergeTree
PARTITION BY day
ORDER BY (node, time_ns, reason_id)
TTL day + INTERVAL 3650 DAY;

CREATE TABLE IF NOT EXISTS windows (
    node LowCardinality(String),
    day Date,
    win UInt64,
    time_ns Int64,
    window_len_ns UInt64,
    log_size UInt64,
    first_seq UInt64,
    event_count UInt64,
    dict_count UInt64,
    actor_count UInt64,
    edge_count UInt64,
    cone_count UInt64,
    health_count UInt64,
    late_events UInt64,
    lost_total UInt64,
    capture_mode LowCardinality(String),
    cone_lib_version UInt32,
    window_root String,
    state String,
    checkpoint String CODEC(ZSTD(3))
) ENGINE = MergeTree
PARTITION BY day
ORDER BY (node, win)
TTL day + INTERVAL 3650 DAY;

CREATE TABLE IF NOT EXISTS hours (
    node LowCardinality(String),
    day Date,
    hour UInt64,
    time_ns Int64,
    first_window UInt64,
    last_window UInt64,
    log_size UInt64,
    log_root String,
    prev_hour Nullable(UInt64),
    prev_log_size Nullable(UInt64)
) ENGINE = MergeTree
PARTITION BY day
ORDER BY (node, hour)
TTL day + INTERVAL 3650 DAY;

CREATE TABLE IF NOT EXISTS load_attempts (
    node LowCardinality(String),
    win UInt64,
    at DateTime
) ENGINE = MergeTree
ORDER BY (node, win);
