//! `ritma run`'s configuration file: `/etc/ritma/ritma.toml`, or the one `--config` (or
//! `RITMA_CONFIG`) names. Every key is a `ritma run` option; a setting comes from the
//! command line, else the environment, else the file, else the option's default. The file
//! is strict: an unknown key, a value of the wrong type or out of range, and settings that
//! contradict each other are refused with the file, the line and the reason.
//!
//! ```toml
//! out = "/var/lib/ritma/RITMA_OUT"   # --out
//! node = "web-1"                     # --node
//! workers = 1                        # --workers
//! taint_ttl = 300                    # --taint-ttl, seconds
//! baseline = "/etc/ritma/known.b3"   # --baseline
//! full_max_mb = 64                   # --full-max-mb
//!
//! [kafka]
//! brokers = "kafka-1:9092,kafka-2:9092"  # --kafka-brokers
//! topic = "ritma.evidence"               # --kafka-topic
//! checkpoint_topic = "ritma.checkpoints" # --kafka-checkpoint-topic
//! max_message_bytes = 1000000            # --kafka-max-message-bytes
//! ocsf = "ritma.ocsf"                    # --kafka-ocsf
//! ```
//!
//! and `raw_module_hooks = false` (--raw-module-hooks), `metrics = "127.0.0.1:9464"`
//! (--metrics), `health_max_lag = 10` (--health-max-lag), `wal_archive = "/var/lib/ritma/wal"`
//! (--wal-archive), `keep = "30d"` (--keep) at the top level.

use anyhow::{bail, Result};
use clap::parser::ValueSource;
use clap::ArgMatches;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Where `ritma run` looks for its file when `--config` does not name one.
pub const DEFAULT_PATH: &str = "/etc/ritma/ritma.toml";

/// The most a config file may hold: it is a handful of keys.
const MAX_LEN: u64 = 1 << 20;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    out: Option<Spanned<PathBuf>>,
    node: Option<Spanned<String>>,
    workers: Option<Spanned<i64>>,
    taint_ttl: Option<Spanned<i64>>,
    baseline: Option<Spanned<PathBuf>>,
    full_max_mb: Option<Spanned<i64>>,
    raw_module_hooks: Option<Spanned<bool>>,
    metrics: Option<Spanned<String>>,
    health_max_lag: Option<Spanned<i64>>,
    wal_archive: Option<Spanned<PathBuf>>,
    keep: Option<Spanned<String>>,
    kafka: Option<KafkaSection>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KafkaSection {
    brokers: Option<Spanned<String>>,
    topic: Option<Spanned<String>>,
    checkpoint_topic: Option<Spanned<String>>,
    max_message_bytes: Option<Spanned<i64>>,
    ocsf: Option<Spanned<String>>,
}

/// A config file, read and decoded.
pub struct ConfigFile {
    path: PathBuf,
    text: String,
    cfg: FileConfig,
}

impl ConfigFile {
    /// The file `explicit` names (it must exist), or else [`DEFAULT_PATH`] if there is one.
    pub fn load(explicit: Option<&Path>) -> Result<Option<ConfigFile>> {
        let path = match explicit {
            Some(p) => p.to_owned(),
            None if Path::new(DEFAULT_PATH).exists() => PathBuf::from(DEFAULT_PATH),
            None => return Ok(None),
        };
        let text = read_text(&path)?;
        let cfg = toml::from_str::<FileConfig>(&text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(&text, s.start));
            anyhow::anyhow!("{}:{line}: {}", path.display(), e.message().trim_end())
        })?;
        Ok(Some(ConfigFile { path, text, cfg }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `file:line` of a value.
    fn at<T>(&self, v: &Spanned<T>) -> String {
        format!(
            "{}:{}",
            self.path.display(),
            line_of(&self.text, v.span().start)
        )
    }
}

fn read_text(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_LEN + 1).read_to_end(&mut bytes))
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_LEN {
        bail!("{}: longer than {MAX_LEN} bytes", path.display());
    }
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", path.display()))
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The settings `ritma run` takes from the command line, the environment or the file.
pub struct RunSettings<'a> {
    pub out: &'a mut PathBuf,
    pub node: &'a mut Option<String>,
    pub workers: &'a mut usize,
    pub taint_ttl: &'a mut u64,
    pub baseline: &'a mut Option<PathBuf>,
    pub full_max_mb: &'a mut u64,
    pub ship: &'a mut crate::fleet::RunShipArgs,
    pub raw_module_hooks: &'a mut bool,
    pub metrics: &'a mut Option<String>,
    pub health_max_lag: &'a mut u64,
    pub wal_archive: &'a mut Option<PathBuf>,
    pub keep: &'a mut Option<String>,
}

/// One effective setting: its key in the file, its value as TOML, and where it came from.
pub struct Effective {
    pub key: &'static str,
    pub value: Option<String>,
    pub source: String,
}

/// Fills the settings the command line and the environment left at their defaults from
/// `file`, checks every value and the settings together, and says where each came from.
pub fn resolve(
    s: RunSettings<'_>,
    m: &ArgMatches,
    file: Option<&ConfigFile>,
) -> Result<Vec<Effective>> {
    let empty = FileConfig::default();
    let cfg = file.map_or(&empty, |f| &f.cfg);
    let no_kafka = KafkaSection::default();
    let kafka = cfg.kafka.as_ref().unwrap_or(&no_kafka);
    let mut r = Resolver {
        m,
        file,
        out: Vec::new(),
    };
    r.take("out", "out", &cfg.out, s.out, |p| Ok(p.clone()))?;
    r.take_opt("node", "node", &cfg.node, s.node, |n| {
        check_node(n)?;
        Ok(n.clone())
    })?;
    r.take("workers", "workers", &cfg.workers, s.workers, |&n| {
        file_int(n, check_workers)
    })?;
    r.take(
        "taint_ttl",
        "taint_ttl",
        &cfg.taint_ttl,
        s.taint_ttl,
        |&n| file_int(n, check_taint_ttl),
    )?;
    r.take_opt("baseline", "baseline", &cfg.baseline, s.baseline, |p| {
        Ok(p.clone())
    })?;
    r.take(
        "full_max_mb",
        "full_max_mb",
        &cfg.full_max_mb,
        s.full_max_mb,
        |&n| file_int(n, check_full_max_mb),
    )?;
    r.take(
        "raw_module_hooks",
        "raw_module_hooks",
        &cfg.raw_module_hooks,
        s.raw_module_hooks,
        |&b| Ok(b),
    )?;
    r.take_opt("metrics", "metrics", &cfg.metrics, s.metrics, |a| {
        parse_listen(a).map(|_| a.clone())
    })?;
    r.take(
        "health_max_lag",
        "health_max_lag",
        &cfg.health_max_lag,
        s.health_max_lag,
        |&n| file_int(n, check_health_max_lag),
    )?;
    r.take_opt(
        "wal_archive",
        "wal_archive",
        &cfg.wal_archive,
        s.wal_archive,
        |p| Ok(p.clone()),
    )?;
    r.take_opt("keep", "keep", &cfg.keep, s.keep, |k| {
        crate::parse_keep(k)
            .map(|_| k.clone())
            .map_err(|e| e.to_string())
    })?;
    let ship = s.ship;
    r.take_opt(
        "kafka.brokers",
        "kafka_brokers",
        &kafka.brokers,
        &mut ship.kafka_brokers,
        |b| match b.trim().is_empty() {
            true => Err("must name at least one broker (host:port), not \"\"".into()),
            false => Ok(b.clone()),
        },
    )?;
    let topic = |t: &String| check_topic(t).map(|()| t.clone());
    r.take(
        "kafka.topic",
        "kafka_topic",
        &kafka.topic,
        &mut ship.kafka_topic,
        topic,
    )?;
    r.take(
        "kafka.checkpoint_topic",
        "kafka_checkpoint_topic",
        &kafka.checkpoint_topic,
        &mut ship.kafka_checkpoint_topic,
        topic,
    )?;
    r.take(
        "kafka.max_message_bytes",
        "kafka_max_message_bytes",
        &kafka.max_message_bytes,
        &mut ship.kafka_max_message_bytes,
        |&n| file_int(n, check_max_message_bytes),
    )?;
    r.take_opt(
        "kafka.ocsf",
        "kafka_ocsf",
        &kafka.ocsf,
        &mut ship.kafka_ocsf,
        topic,
    )?;
    // Together: shipping settings without brokers, and one topic for two purposes.
    if ship.kafka_brokers.is_none() {
        if let Some(e) = r.out.iter().find(|e| {
            e.key.starts_with("kafka.") && e.key != "kafka.brokers" && e.source != "default"
        }) {
            bail!(
                "{}: {} is set, but no brokers are (--kafka-brokers or kafka.brokers)",
                e.source,
                e.key
            );
        }
    }
    let topics = [
        ("kafka.topic", Some(&ship.kafka_topic)),
        ("kafka.checkpoint_topic", Some(&ship.kafka_checkpoint_topic)),
        ("kafka.ocsf", ship.kafka_ocsf.as_ref()),
    ];
    for (i, (a, ta)) in topics.iter().enumerate() {
        for (b, tb) in &topics[i + 1..] {
            if let (Some(ta), Some(tb)) = (ta, tb) {
                if ta == tb && ship.kafka_brokers.is_some() {
                    let src = |k: &str| r.source_of(k);
                    bail!(
                        "{a} ({}) and {b} ({}) both name topic {ta:?}: evidence, cosigned checkpoints and OCSF events need topics of their own",
                        src(a),
                        src(b)
                    );
                }
            }
        }
    }
    Ok(r.out)
}

struct Resolver<'a> {
    m: &'a ArgMatches,
    file: Option<&'a ConfigFile>,
    out: Vec<Effective>,
}

impl Resolver<'_> {
    /// Where the command line or the environment set `id`, if they did.
    fn given(&self, id: &str) -> Option<String> {
        let flag = || format!("--{}", id.replace('_', "-"));
        match self.m.value_source(id) {
            Some(ValueSource::CommandLine) => Some(flag()),
            Some(ValueSource::EnvVariable) => Some(
                self.m
                    .get_raw(id)
                    .and(env_name(id))
                    .map_or_else(flag, |e| format!("environment {e}")),
            ),
            _ => None,
        }
    }

    fn source_of(&self, key: &str) -> String {
        self.out
            .iter()
            .find(|e| e.key == key)
            .map_or_else(|| "default".into(), |e| e.source.clone())
    }

    /// Where setting `id` comes from, and its value when that is the file (checked by
    /// `parse`); the command line's and the environment's are already in place.
    fn pick<F, T>(
        &self,
        key: &'static str,
        id: &str,
        from_file: &Option<Spanned<F>>,
        parse: impl Fn(&F) -> Result<T, String>,
    ) -> Result<(Option<T>, String)> {
        Ok(match (self.given(id), from_file, self.file) {
            (Some(given), _, _) => (None, given),
            (None, Some(v), Some(file)) => {
                let value = parse(v.get_ref())
                    .map_err(|why| anyhow::anyhow!("{}: {key} {why}", file.at(v)))?;
                (Some(value), file.at(v))
            }
            _ => (None, "default".into()),
        })
    }

    /// A setting with a default: the command line's or environment's, else the file's,
    /// else the default already in `slot`.
    fn take<F, T: Show>(
        &mut self,
        key: &'static str,
        id: &str,
        from_file: &Option<Spanned<F>>,
        slot: &mut T,
        parse: impl Fn(&F) -> Result<T, String>,
    ) -> Result<()> {
        let (value, source) = self.pick(key, id, from_file, parse)?;
        if let Some(v) = value {
            *slot = v;
        }
        self.out.push(Effective {
            key,
            value: Some(slot.show()),
            source,
        });
        Ok(())
    }

    /// [`Resolver::take`] of a setting that may be unset.
    fn take_opt<F, T: Show>(
        &mut self,
        key: &'static str,
        id: &str,
        from_file: &Option<Spanned<F>>,
        slot: &mut Option<T>,
        parse: impl Fn(&F) -> Result<T, String>,
    ) -> Result<()> {
        let (value, source) = self.pick(key, id, from_file, parse)?;
        if value.is_some() {
            *slot = value;
        }
        self.out.push(Effective {
            key,
            value: slot.as_ref().map(Show::show),
            source,
        });
        Ok(())
    }
}

/// The environment variable that sets a `ritma run` option, where one does.
fn env_name(id: &str) -> Option<&'static str> {
    match id {
        "out" => Some("RITMA_OUT"),
        "node" => Some("RITMA_NODE_ID"),
        _ => None,
    }
}

/// A value as TOML text.
trait Show {
    fn show(&self) -> String;
}

impl Show for PathBuf {
    fn show(&self) -> String {
        toml_string(&self.to_string_lossy())
    }
}

impl Show for String {
    fn show(&self) -> String {
        toml_string(self)
    }
}

impl Show for bool {
    fn show(&self) -> String {
        self.to_string()
    }
}

impl Show for usize {
    fn show(&self) -> String {
        self.to_string()
    }
}

impl Show for u64 {
    fn show(&self) -> String {
        self.to_string()
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `ritma config show`: the effective settings as a config file, each with its source.
pub fn show(settings: &[Effective], host_node: Option<&str>) -> String {
    let mut text = String::new();
    let mut in_kafka = false;
    for e in settings {
        let key = match e.key.strip_prefix("kafka.") {
            Some(k) => {
                if !in_kafka {
                    text.push_str("\n[kafka]\n");
                    in_kafka = true;
                }
                k
            }
            None => e.key,
        };
        match (&e.value, e.key, host_node) {
            (Some(v), _, _) => text.push_str(&format!("{key} = {v}  # {}\n", e.source)),
            (None, "node", Some(host)) => text.push_str(&format!(
                "# {key} = {}  # default: the host name\n",
                toml_string(host)
            )),
            (None, _, _) => text.push_str(&format!("# {key} is not set  # {}\n", e.source)),
        }
    }
    text
}

// The checks of each setting, for the command line and the file alike: each says what the
// value must be.

pub fn check_node(node: &str) -> Result<(), String> {
    match ritma_schemas::records::is_valid_node_name(node) {
        true => Ok(()),
        false => Err(format!(
            "must be 1-64 of A-Z a-z 0-9 . _ - not starting with `.`, not {node:?}"
        )),
    }
}

pub fn check_workers(n: u64) -> Result<(), String> {
    in_range(n, 1, 256)
}

pub fn check_taint_ttl(s: u64) -> Result<(), String> {
    in_range(s, 1, 86_400)
}

pub fn check_full_max_mb(mb: u64) -> Result<(), String> {
    in_range(mb, 0, 4096)
}

pub fn check_max_message_bytes(n: u64) -> Result<(), String> {
    in_range(n, 8192, 16 << 20)
}

pub fn check_topic(topic: &str) -> Result<(), String> {
    match ritma_sinks::ship::is_topic_name(topic) {
        true => Ok(()),
        false => Err(format!(
            "must be a Kafka topic name (1-249 of A-Z a-z 0-9 . _ -), not {topic:?}"
        )),
    }
}

pub fn check_health_max_lag(n: u64) -> Result<(), String> {
    in_range(n, 1, 86_400)
}

/// A listen address, `IP:PORT`.
pub fn parse_listen(addr: &str) -> Result<std::net::SocketAddr, String> {
    addr.parse()
        .map_err(|_| format!("must be a listen address IP:PORT, not {addr:?}"))
}

fn in_range(n: u64, lo: u64, hi: u64) -> Result<(), String> {
    match (lo..=hi).contains(&n) {
        true => Ok(()),
        false => Err(format!("must be {lo} to {hi}, not {n}")),
    }
}

/// A file's integer, checked by `check`.
fn file_int<T: TryFrom<u64>>(n: i64, check: fn(u64) -> Result<(), String>) -> Result<T, String> {
    let u = u64::try_from(n).map_err(|_| format!("must not be negative, not {n}"))?;
    check(u)?;
    T::try_from(u).map_err(|_| format!("is too large: {n}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<ConfigFile> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ritma.toml");
        std::fs::write(&path, text).unwrap();
        Ok(ConfigFile::load(Some(&path))?.expect("a file"))
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_their_line() {
        let e = load("workers = 2\n\nwrokers = 3\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.ends_with(":3: unknown field `wrokers`, expected one of `out`, `node`, `workers`, `taint_ttl`, `baseline`, `full_max_mb`, `raw_module_hooks`, `metrics`, `health_max_lag`, `wal_archive`, `keep`, `kafka`"), "{e}");
        let e = load("[kafka]\nbrokers = 9092\n").err().unwrap().to_string();
        assert!(
            e.contains(":2: invalid type: integer `9092`, expected a string"),
            "{e}"
        );
        let e = load("[kafka]\ntopics = \"x\"\n").err().unwrap().to_string();
        assert!(e.contains(":2: unknown field `topics`"), "{e}");
        let e = load("workers = [").err().unwrap().to_string();
        assert!(e.contains(":1: "), "{e}");
    }

    #[test]
    fn lines_count_from_one() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }

    #[test]
    fn strings_are_quoted_as_toml() {
        assert_eq!(toml_string("a\"b\\c\n"), r#""a\"b\\c\u000A""#);
        let back: toml::Table =
            toml::from_str(&format!("k = {}", toml_string("a\"b\\c\n"))).unwrap();
        assert_eq!(back["k"].as_str(), Some("a\"b\\c\n"));
    }
}
