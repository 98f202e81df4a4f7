//! `ritma`: the command line of the Ritma evidence pipeline.

mod case;
mod config;
mod exes;
mod export;
mod fleet;
mod latency;
mod live_link;
mod load;
mod metrics;
mod progress;
mod prove;
mod query;
mod query_clickhouse;
mod record;
mod replay;
mod run;
mod store_writer;
mod taint;
mod trust;
mod witness;

use anyhow::{bail, Context, Result};
use base64::Engine;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use ritma_sinks::keys::Keystore;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "ritma",
    version,
    about = "Tamper-evident evidence of what happens on a Linux host"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create or inspect a store's signing key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run recorded traces through the dataflow and seal them into a store.
    Replay {
        /// Trace files (.rtrace), read in the order given.
        #[arg(required_unless_present = "wal", conflicts_with = "wal")]
        traces: Vec<PathBuf>,
        /// Seal the store's own WAL (`OUT/wal/`, written by `ritma run`) again, from the
        /// state saved at its restart point: every file the store holds must come out the
        /// same, and the hours a stopped run left open are sealed as a restart would.
        #[arg(long)]
        wal: bool,
        /// The store (RITMA_OUT) to write; one node's store, or nodes/<node>/ for several.
        #[arg(long, env = "RITMA_OUT")]
        out: PathBuf,
        /// Dataflow worker threads; the output is the same for any number.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Private key file for a single-node trace (default: the store's own key).
        #[arg(long)]
        key: Option<PathBuf>,
        /// Seconds taint follows a flow or a cone-matched actor after it was last seen.
        #[arg(long, default_value_t = 300)]
        taint_ttl: u64,
    },
    /// Capture live events with the eBPF sensor and seal them into a store as windows close (needs root).
    Run(RunArgs),
    /// Check `ritma run`'s config file, or show the settings a run would use.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Capture live events with the eBPF sensor into a new trace file (needs root).
    Record {
        /// The trace file (.rtrace) to create; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
        /// Stop after this many seconds (default: at SIGINT or SIGTERM).
        #[arg(long)]
        duration: Option<f64>,
        /// Node name, 1-64 of A-Z a-z 0-9 . _ - (default: the host name).
        #[arg(long, env = "RITMA_NODE_ID")]
        node: Option<String>,
        /// Kernels without module support have no init_module/finit_module tracepoints:
        /// watch those calls (which can only fail there) with raw sys_enter/sys_exit
        /// programs, at a cost on every syscall of the host. Default: not watched there.
        #[arg(long)]
        raw_module_hooks: bool,
        #[command(flatten)]
        exes: ExeArgs,
    },
    /// List the BLAKE3 hashes of the executable files under directories: the known
    /// binaries `run --baseline` compares every executed binary with (b3sum format).
    Baseline {
        /// The list to create; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
        /// Directories to read (default: /usr /bin /sbin /lib /lib64 /opt).
        dirs: Vec<PathBuf>,
    },
    /// Check a store: strict bytes, every window root, every signature, continuity.
    Verify {
        /// The store (RITMA_OUT) directory.
        dir: PathBuf,
        #[command(flatten)]
        trust: trust::TrustArgs,
        /// Print the result, or the failure's code, file, window and detail, as JSON.
        #[arg(long)]
        json: bool,
        /// Check blocks and signatures only in the hours from this time on (RFC 3339 UTC or
        /// Unix seconds); windows before are still chained into the node log.
        #[arg(long)]
        from: Option<String>,
        /// Check blocks and signatures only in the hours before this time (as --from).
        #[arg(long)]
        to: Option<String>,
        /// A checkpoint saved or cosigned earlier (a signed note file): the store must still
        /// hold and extend it, so a tail cut or a rewrite after it fails (repeatable).
        #[arg(long, value_name = "FILE")]
        checkpoint: Vec<PathBuf>,
        /// A witness's verifier key (text or file): every --checkpoint must carry its
        /// cosignature (repeatable).
        #[arg(long, value_name = "VKEY", requires = "checkpoint")]
        witness: Vec<String>,
    },
    /// Cosign, as a witness, the newest checkpoint of each node of a store (FORMAT.md
    /// §4.4): the store is verified with a pinned key and must extend the checkpoint this
    /// witness cosigned last (kept in --state), so the witness never vouches for a log that
    /// was cut or rewritten.
    Witness {
        /// The store (RITMA_OUT) directory, read only.
        dir: PathBuf,
        /// The witness's private key (`ritma keys new NAME --out FILE --witness`).
        #[arg(long, value_name = "FILE")]
        witness_key: PathBuf,
        /// The witness's own directory: the checkpoint it cosigned last for each node.
        #[arg(long, value_name = "DIR")]
        state: PathBuf,
        #[command(flatten)]
        trust: trust::TrustArgs,
    },
    /// Ship a store's sealed windows to Kafka from where it last stopped (FORMAT.md §12):
    /// every completed window, its blobs and its hour's derived files, acked by the
    /// broker before the store's cursor moves.
    Ship {
        /// The store (RITMA_OUT) directory (no run may be writing it).
        dir: PathBuf,
        #[command(flatten)]
        brokers: fleet::BrokerArgs,
        /// Keep shipping as the store grows, until SIGINT/SIGTERM.
        #[arg(long)]
        follow: bool,
        /// One JSON object per node tree instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Consume the evidence topic as one member of a consumer group: rebuild each node's
    /// store under OUT/nodes/<node>/, byte for byte, verifying every window against the
    /// pinned node keys first; quarantine what fails; raise alarms on equivocation,
    /// rollback and gaps; as a witness, cosign each accepted checkpoint.
    Ingest(fleet::IngestArgs),
    /// Delete the sealed hours older than a retention period (a dry run unless --apply);
    /// each deletion is signed and kept beside the hour's seal, so `verify` still checks the store.
    Retention {
        /// The store (RITMA_OUT) directory.
        dir: PathBuf,
        /// How long to keep an hour after it ended: a number and a unit, s, m, h or d (e.g. 30d).
        #[arg(long)]
        keep: String,
        /// Delete (default: only list what would go).
        #[arg(long)]
        apply: bool,
        /// Delete hours a shipping cursor has not passed too (their evidence never left
        /// the node).
        #[arg(long)]
        force_unshipped: bool,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Cases: windows an investigation names, frozen against retention, with an access
    /// log; unfreezing needs M of N approvers (FORMAT.md §8.9).
    #[command(subcommand)]
    Case(case::CaseCommand),
    /// Ask a store: processes, an actor's events and process tree, who touched a path,
    /// the taint slice from an actor, cone matches; a table or JSON Lines.
    Query(query::QueryArgs),
    /// Load a store's sealed windows into ClickHouse for analysts: events, actors, edges,
    /// cone matches, health, loss, windows and hour seals, each window exactly once,
    /// resuming where a previous load stopped (docs/ANALYSTS.md).
    Load(load::LoadArgs),
    /// Export a store's sealed windows as files for data tools: the analyst tables as
    /// Parquet, partitioned by node and day (docs/ANALYSTS.md).
    Export(export::ExportArgs),
    /// Write a self-contained proof of one sealed event (FORMAT.md §11).
    Prove {
        /// The store (RITMA_OUT) directory.
        dir: PathBuf,
        /// The event's node-local sequence number.
        #[arg(long)]
        seq: u64,
        /// The node, in a store of several (`nodes/<node>/`).
        #[arg(long)]
        node: Option<String>,
        /// The proof file to create; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
        /// Extend the proof to the signed checkpoint of this node-log size (default: the newest).
        #[arg(long)]
        to_size: Option<u64>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a proof file with nothing else present and print the proven event.
    VerifyProof {
        /// The proof file.
        file: PathBuf,
        #[command(flatten)]
        trust: trust::TrustArgs,
        /// Print the proven event as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a deterministic synthetic trace with labelled attack sequences.
    Synth {
        /// Number of raw events (the last attack sequence may add a few).
        #[arg(long)]
        events: u64,
        /// Seed: the same seed, events and hosts give the same trace, byte for byte.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Number of hosts (nodes `synth-0` …) interleaved in the trace.
        #[arg(long, default_value_t = 1)]
        hosts: u32,
        /// The trace file to create; the labels go beside it as `<FILE>.labels.jsonl`.
        #[arg(long)]
        out: PathBuf,
        /// Events per trace frame (the events are the same for any value).
        #[arg(long, default_value_t = 8192)]
        batch: usize,
        /// Mean events per second of each host (sets how much time the trace spans).
        #[arg(long, default_value_t = ritma_sources::synth::DEFAULT_RATE)]
        rate: u64,
        /// Window length in milliseconds, recorded in the trace (must divide one hour).
        #[arg(long, default_value_t = 1000)]
        window_ms: u64,
    },
}

/// `ritma run`'s options; each but --config and --duration may also come from the config
/// file (pipeline/src/config.rs): the command line first, then the environment, then the
/// file, then the default.
#[derive(clap::Args)]
struct RunArgs {
    /// The config file (default: /etc/ritma/ritma.toml, when it exists).
    #[arg(long, env = "RITMA_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The store (RITMA_OUT) to create, or one an earlier `ritma run` of this node wrote
    /// (stopped or killed) to continue: its WAL is sealed again from the state saved at its
    /// last hour seal, then capture goes on in the same node log. Its signing key is made
    /// if absent.
    #[arg(long, env = "RITMA_OUT", default_value = "RITMA_OUT")]
    out: PathBuf,
    /// Stop after this many seconds (default: at SIGINT or SIGTERM).
    #[arg(long)]
    duration: Option<f64>,
    /// Node name, 1-64 of A-Z a-z 0-9 . _ - (default: the host name).
    #[arg(long, env = "RITMA_NODE_ID")]
    node: Option<String>,
    /// Dataflow worker threads; the output is the same for any number.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Seconds taint follows a flow or a cone-matched actor after it was last seen.
    #[arg(long, default_value_t = 300)]
    taint_ttl: u64,
    /// Kernels without module support have no init_module/finit_module tracepoints:
    /// watch those calls (which can only fail there) with raw sys_enter/sys_exit
    /// programs, at a cost on every syscall of the host. Default: not watched there.
    #[arg(long)]
    raw_module_hooks: bool,
    #[command(flatten)]
    exes: ExeArgs,
    #[command(flatten)]
    ship: fleet::RunShipArgs,
    /// Serve Prometheus metrics at http://ADDR/metrics and a health check at /healthz
    /// (default address 127.0.0.1:9464; off unless given).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:9464")]
    metrics: Option<String>,
    /// /healthz fails when sealing is more than this many windows behind the clock.
    #[arg(long, default_value_t = 10, value_name = "WINDOWS")]
    health_max_lag: u64,
    /// Delete the sealed hours that ended more than this long ago while running, as
    /// `ritma retention --keep D --apply` does (signed deletions): a number and a unit, s,
    /// m, h or d (e.g. 30d). Default: keep everything.
    #[arg(long, value_name = "D")]
    keep: Option<String>,
    /// Move the WAL files no restart needs any more (hours sealed, saved and shipped) to
    /// this directory instead of deleting them (it then grows without bound: the raw
    /// input of every hour, for audits or another machine's replay).
    #[arg(long, value_name = "DIR")]
    wal_archive: Option<PathBuf>,
}

impl RunArgs {
    /// Takes what the command line and environment left unset from the config file, and
    /// says where each setting came from.
    fn resolve(&mut self, m: &clap::ArgMatches) -> Result<Vec<config::Effective>> {
        let file = config::ConfigFile::load(self.config.as_deref())?;
        self.resolve_with(m, file.as_ref())
    }

    /// [`RunArgs::resolve`] with `file` (none: the defaults).
    fn resolve_with(
        &mut self,
        m: &clap::ArgMatches,
        file: Option<&config::ConfigFile>,
    ) -> Result<Vec<config::Effective>> {
        config::resolve(
            config::RunSettings {
                out: &mut self.out,
                node: &mut self.node,
                workers: &mut self.workers,
                taint_ttl: &mut self.taint_ttl,
                baseline: &mut self.exes.baseline,
                full_max_mb: &mut self.exes.full_max_mb,
                ship: &mut self.ship,
                raw_module_hooks: &mut self.raw_module_hooks,
                metrics: &mut self.metrics,
                health_max_lag: &mut self.health_max_lag,
                wal_archive: &mut self.wal_archive,
                keep: &mut self.keep,
            },
            m,
            file,
        )
    }
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a config file: every key known, every value valid, the settings consistent.
    Check {
        /// The file (default: /etc/ritma/ritma.toml).
        #[arg(long, env = "RITMA_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print the settings `ritma run` with these options would use, as a config file,
    /// each with where it came from (option, environment, file:line or default).
    Show(Box<RunArgs>),
}

/// What the capture side does with executed binaries.
#[derive(clap::Args)]
struct ExeArgs {
    /// Known binaries (`ritma baseline`, or `b3sum` output): an exec of any other binary is
    /// the unknown_binary trigger, and Full capture keeps its bytes in the store's CAS.
    /// Without one, only binaries run from writable places or from no path are kept.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Largest binary Full capture keeps, in MiB (0: keep none, hashes only).
    #[arg(long, default_value_t = exes::DEFAULT_FULL_MAX_BYTES >> 20)]
    full_max_mb: u64,
}

impl ExeArgs {
    fn policy(self) -> Result<exes::ExePolicy> {
        if let Err(why) = config::check_full_max_mb(self.full_max_mb) {
            bail!("--full-max-mb {why}");
        }
        let baseline = self
            .baseline
            .as_deref()
            .map(exes::Baseline::load)
            .transpose()?;
        if let (Some(b), Some(path)) = (&baseline, &self.baseline) {
            eprintln!(
                "ritma: executed binaries are compared with the {} known ones of {}",
                b.len(),
                path.display()
            );
        }
        Ok(exes::ExePolicy {
            baseline,
            full_max_bytes: self.full_max_mb << 20,
            ..exes::ExePolicy::default()
        })
    }
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an Ed25519 signing key under DIR/_meta/keys (never overwrites one).
    Init {
        /// The store (RITMA_OUT) directory.
        #[arg(long, env = "RITMA_OUT")]
        out: PathBuf,
        /// Node name, 1-64 of A-Z a-z 0-9 . _ - (default: the host name).
        #[arg(long, env = "RITMA_NODE_ID")]
        node: Option<String>,
    },
    /// Create a standalone signing key (a case approver's): the private key file
    /// (mode 0600, never overwritten) and, printed and beside it as FILE.vkey, the
    /// verifier key others name it by.
    New {
        /// The key's name, e.g. the approver's (signed-note key name: no spaces or +).
        name: String,
        /// The private key file to create.
        #[arg(long)]
        out: PathBuf,
        /// A witness's cosigning key (C2SP cosignature/v1, type 0x04) instead of a
        /// signed-note key.
        #[arg(long)]
        witness: bool,
    },
    /// Print a store's public key, key id and key history.
    Show {
        /// The store (RITMA_OUT) directory.
        dir: PathBuf,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

// Many small allocations per event: mimalloc's per-thread pages beat glibc's bins here.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    no_transparent_huge_pages();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(e) = run(cli, &matches) {
        eprintln!("ritma: error: {}", error_text(&e));
        std::process::exit(1);
    }
}

/// The error and its causes, each cause once: typed errors already say their source in
/// their own message (`{path}: {source}`), which anyhow's chain would repeat.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

/// Transparent huge pages off for this process: the allocator's freed 2 MiB regions were
/// zeroed again in full at each reuse (5 % of a replay's CPU in `clear_page`), and a region
/// partly used stayed resident whole (peak RSS −40 MiB at 2M events; RESULTS 2026-12-05).
fn no_transparent_huge_pages() {
    // SAFETY: a plain prctl on this process; it takes no pointers. Failure (an old
    // kernel) only leaves the system default in place.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

fn run(cli: Cli, matches: &clap::ArgMatches) -> Result<()> {
    match cli.command {
        Command::Keys(KeysCommand::Init { out, node }) => keys_init(&out, node),
        Command::Keys(KeysCommand::Show { dir, json }) => keys_show(&dir, json),
        Command::Keys(KeysCommand::New { name, out, witness }) => keys_new(&name, &out, witness),
        Command::Synth {
            events,
            seed,
            hosts,
            out,
            batch,
            rate,
            window_ms,
        } => synth(events, seed, hosts, batch, rate, window_ms, &out),
        Command::Replay {
            traces,
            wal,
            out,
            workers,
            key,
            taint_ttl,
        } => replay_cmd(traces, wal, out, workers, key, taint_ttl),
        Command::Verify {
            dir,
            trust,
            json,
            from,
            to,
            checkpoint,
            witness,
        } => {
            let saved = witness::saved_checkpoints(&checkpoint, &witness)?;
            verify_cmd(&dir, &trust, json, from, to, &saved)
        }
        Command::Witness {
            dir,
            witness_key,
            state,
            trust,
        } => witness::witness_cmd(&dir, &witness_key, &state, &trust),
        Command::Retention {
            dir,
            keep,
            apply,
            force_unshipped,
            json,
        } => retention_cmd(&dir, &keep, apply, force_unshipped, json),
        Command::Ship {
            dir,
            brokers,
            follow,
            json,
        } => fleet::ship_cmd(&dir, &brokers, follow, json),
        Command::Ingest(a) => fleet::ingest_cmd(a),
        Command::Case(c) => case::case_cmd(c),
        Command::Query(q) => query::query_cmd(q),
        Command::Load(a) => load::load_cmd(a),
        Command::Export(a) => export::export_cmd(a),
        Command::Prove {
            dir,
            seq,
            node,
            out,
            to_size,
            json,
        } => prove::prove_cmd(
            prove::ProveRequest {
                dir,
                seq,
                node,
                out,
                to_size,
            },
            json,
        ),
        Command::VerifyProof { file, trust, json } => {
            prove::verify_proof_cmd(&file, &trust.resolve()?, json)
        }
        Command::Record {
            out,
            duration,
            node,
            raw_module_hooks,
            exes,
        } => record_cmd(out, duration, node, raw_module_hooks, exes.policy()?),
        Command::Run(mut args) => {
            let m = matches.subcommand_matches("run").expect("run's options");
            args.resolve(m)?;
            run_cmd(args)
        }
        Command::Config(ConfigCommand::Check { config }) => config_check(config),
        Command::Config(ConfigCommand::Show(mut args)) => {
            let m = matches
                .subcommand_matches("config")
                .and_then(|m| m.subcommand_matches("show"))
                .expect("show's options");
            let settings = args.resolve(m)?;
            let host = default_node().ok();
            print!("{}", config::show(&settings, host.as_deref()));
            Ok(())
        }
        Command::Baseline { out, dirs } => baseline_cmd(&out, dirs),
    }
}

/// `--duration` in seconds, checked.
fn parse_duration(duration: Option<f64>) -> Result<Option<std::time::Duration>> {
    match duration {
        Some(s) if !(s.is_finite() && s > 0.0 && s <= 1e9) => {
            bail!("--duration must be a positive number of seconds, not {s}")
        }
        Some(s) => Ok(Some(std::time::Duration::from_secs_f64(s))),
        None => Ok(None),
    }
}

/// `--workers` and `--taint-ttl`, checked; the TTL in ns.
fn check_dataflow_args(workers: usize, taint_ttl_s: u64) -> Result<u64> {
    if let Err(why) = config::check_workers(workers as u64) {
        bail!("--workers {why}");
    }
    if let Err(why) = config::check_taint_ttl(taint_ttl_s) {
        bail!("--taint-ttl (seconds) {why}");
    }
    Ok(taint_ttl_s * 1_000_000_000)
}

/// `ritma config check`: the file `config` names (or the default one) is read and
/// checked as `ritma run` would take it, alone (no options, no environment).
fn config_check(config: Option<PathBuf>) -> Result<()> {
    let Some(file) = config::ConfigFile::load(config.as_deref())? else {
        bail!(
            "no config file: {} does not exist (give --config FILE)",
            config::DEFAULT_PATH
        );
    };
    // The defaults alone: neither options nor the environment.
    let m = <RunArgs as clap::Args>::augment_args(clap::Command::new("run"))
        .mut_args(|a| a.env(None::<&str>))
        .try_get_matches_from(["run"])?;
    let mut args = RunArgs::from_arg_matches(&m)?;
    let settings = args.resolve_with(&m, Some(&file))?;
    if let Some(node) = &args.node {
        record::check_node(node)?;
    }
    if let Some(b) = &args.exes.baseline {
        exes::Baseline::load(b)?;
    }
    let from_file = settings.iter().filter(|e| e.source != "default").count();
    println!(
        "{}: ok ({from_file} settings; `ritma config show` prints them all)",
        file.path().display()
    );
    Ok(())
}

fn run_cmd(args: RunArgs) -> Result<()> {
    let duration = parse_duration(args.duration)?;
    let taint_ttl_ns = check_dataflow_args(args.workers, args.taint_ttl)?;
    let node = node_or_host(args.node)?;
    let metrics = args
        .metrics
        .as_deref()
        .map(config::parse_listen)
        .transpose()
        .map_err(|why| anyhow::anyhow!("--metrics {why}"))?
        .map(|addr| (addr, args.health_max_lag));
    let out = args.out;
    let s = run::run(run::RunConfig {
        out: out.clone(),
        duration,
        node,
        workers: args.workers,
        taint_ttl_ns,
        exes: args.exes.policy()?,
        ship: args.ship,
        raw_module_hooks: args.raw_module_hooks,
        metrics,
        wal_archive: args.wal_archive,
        keep_ns: args.keep.as_deref().map(parse_keep).transpose()?,
    })?;
    eprintln!("{}", record::summary_line(&s.wal, &s.capture));
    eprintln!(
        "ritma: sealed {} events in {} windows into {}; seal latency p50 {:.1} ms, p99 {:.1} ms",
        s.sealed.events,
        s.sealed.windows,
        out.display(),
        ms(s.sealed.seal_latency(0.5)),
        ms(s.sealed.seal_latency(0.99)),
    );
    if let Some(p) = s.shipped {
        eprintln!(
            "ritma: shipped {} windows ({} failed attempts retried); {} sealed windows wait in the store for the next run or `ritma ship` (the oldest ended {} ms ago)",
            p.windows, p.failures, p.lag_windows, p.lag_ms
        );
    }
    Ok(())
}

fn record_cmd(
    out: PathBuf,
    duration: Option<f64>,
    node: Option<String>,
    raw_module_hooks: bool,
    exes: exes::ExePolicy,
) -> Result<()> {
    let duration = parse_duration(duration)?;
    let node = node_or_host(node)?;
    let summary = record::record(record::RecordConfig {
        out: out.clone(),
        duration,
        node,
        raw_module_hooks,
        exes,
    })?;
    eprintln!("{}", record::summary_line(&out, &summary));
    Ok(())
}

fn baseline_cmd(out: &Path, dirs: Vec<PathBuf>) -> Result<()> {
    let dirs = if dirs.is_empty() {
        exes::DEFAULT_BASELINE_ROOTS
            .iter()
            .map(PathBuf::from)
            .collect()
    } else {
        dirs
    };
    let (listed, unreadable) = exes::write_baseline(out, &dirs)?;
    eprintln!(
        "ritma: listed {listed} executables in {}{}",
        out.display(),
        if unreadable > 0 {
            format!(" ({unreadable} files or directories could not be read)")
        } else {
            String::new()
        }
    );
    Ok(())
}

fn verify_cmd(
    dir: &Path,
    trust: &trust::TrustArgs,
    json: bool,
    from: Option<String>,
    to: Option<String>,
    saved: &[ritma_sinks::verify::SavedCheckpoint],
) -> Result<()> {
    let trust = trust.resolve()?;
    let anchor = trust.keys();
    let range = match case::parse_range(from.as_deref(), to.as_deref())? {
        (None, None) => None,
        (a, b) => Some(ritma_sinks::verify::TimeRange::new(a, b)),
    };
    let b64 = |h: &[u8]| base64::engine::general_purpose::STANDARD.encode(h);
    let failed = |e: ritma_sinks::verify::VerifyError| -> anyhow::Error {
        if json {
            let v = serde_json::json!({
                "ok": false,
                "code": e.code,
                "path": e.path.display().to_string(),
                "window": e.window,
                "detail": e.detail,
            });
            println!("{v}");
        }
        anyhow::anyhow!("{e}")
    };
    if ritma_sinks::bundle::is_bundle(dir) {
        if range.is_some() {
            bail!(
                "{} is a case bundle: it is checked whole, without --from/--to",
                dir.display()
            );
        }
        let r = ritma_sinks::bundle::verify_bundle(dir, anchor).map_err(failed)?;
        let exported = prove::utc(r.exported_wall_ns as i128);
        if json {
            let v = serde_json::json!({
                "ok": true,
                "key_pinned": anchor.is_some(),
                "bundle": {
                    "node": r.node,
                    "case": r.case,
                    "title": r.title,
                    "state": r.state.name(),
                    "windows": r.windows,
                    "events": r.events,
                    "lost": r.lost,
                    "log_size": r.log_size,
                    "log_root": b64(&r.log_root),
                    "exported": exported,
                },
            });
            println!("{v}");
        } else {
            println!(
                "OK case {} of {} ({}, exported {exported}): {} windows, {} events, {} lost, under the signed checkpoint of size {} root {}",
                r.case,
                r.node,
                r.state.name(),
                r.windows,
                r.events,
                r.lost,
                r.log_size,
                b64(&r.log_root)
            );
        }
        if anchor.is_none() {
            eprintln!("ritma: warning: the key history's first key was taken from the bundle itself (--trust-embedded-key): this proves only that its holder signed it");
        }
        return Ok(());
    }
    let bar = progress::windows("verify", 0);
    let tick = progress::follow(&bar);
    let opts = ritma_sinks::verify::VerifyOptions {
        anchor,
        range,
        progress: &tick,
        checkpoints: saved,
    };
    let reports = ritma_sinks::verify::verify_store_with(dir, &opts);
    bar.finish_and_clear();
    let reports = reports.map_err(failed)?;
    if json {
        let nodes: Vec<_> = reports
            .iter()
            .map(|r| {
                serde_json::json!({
                    "node": r.node,
                    "windows": r.windows,
                    "first_window": r.first_window,
                    "last_window": r.last_window,
                    "events": r.events,
                    "lost": r.lost,
                    "log_size": r.log_size,
                    "log_root": b64(&r.log_root),
                    "deleted_hours": r.deleted_hours,
                    "cases": r.cases,
                    "checked_windows": r.checked_windows,
                    "interrupted": interrupted_json(&r.interrupted),
                    "extends": r.extended.iter().map(|e| serde_json::json!({
                        "checkpoint": e.path.display().to_string(),
                        "size": e.size,
                        "witnesses": e.witnessed.iter().map(|(n, t)| serde_json::json!({"name": n, "time": t})).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let v = serde_json::json!({ "ok": true, "key_pinned": anchor.is_some(), "nodes": nodes });
        println!("{v}");
    }
    for r in reports.iter().filter(|_| !json) {
        let span = match (r.first_window, r.last_window) {
            (Some(a), Some(b)) => format!("windows {a}..={b}"),
            _ => "no windows".to_owned(),
        };
        let deleted = match r.deleted_hours {
            0 => String::new(),
            n => format!(" ({n} hours deleted by retention, counted from their records)"),
        };
        let cases = match r.cases {
            0 => String::new(),
            n => format!(", {n} cases"),
        };
        let checked = match range {
            None => String::new(),
            Some(_) => format!(
                "; blocks and signatures of {} windows in the hours of the range checked, the others chained",
                r.checked_windows
            ),
        };
        println!(
            "OK {}: {} windows ({span}), {} events, {} lost{deleted}{cases}, node log size {} root {}{checked}",
            r.node,
            r.windows,
            r.events,
            r.lost,
            r.log_size,
            b64(&r.log_root)
        );
        for e in &r.extended {
            let witnessed: Vec<String> = e
                .witnessed
                .iter()
                .map(|(n, t)| format!("{n} at {}", prove::utc(*t as i128 * 1_000_000_000)))
                .collect();
            let by = match witnessed.is_empty() {
                true => String::new(),
                false => format!(", cosigned by {}", witnessed.join(", ")),
            };
            println!(
                "  extends the checkpoint {} (size {}{by})",
                e.path.display(),
                e.size
            );
        }
        if !r.interrupted.is_empty() {
            print!("{}", interrupted_text(dir, &r.interrupted));
        }
    }
    if anchor.is_none() {
        eprintln!("ritma: warning: the key history's first key was taken from the store itself (--trust-embedded-key): this proves only that its holder signed it");
    }
    Ok(())
}

/// What `verify` says of a store a writer was cut off in (FORMAT.md §8.12), and how to
/// complete it.
fn interrupted_text(dir: &Path, i: &ritma_sinks::interrupted::Interrupted) -> String {
    use std::fmt::Write;
    let list = |v: &[PathBuf]| {
        v.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut t = String::from(
        "  INTERRUPTED: a writer was cut off before it finished; what is above was verified, and none of this was read as evidence:\n",
    );
    if let Some(w) = i.unfinished_window {
        let _ = writeln!(
            t,
            "    window {w} was begun but has no checkpoint: {}",
            list(&i.unfinished_files)
        );
    }
    if !i.temp_files.is_empty() {
        let _ = writeln!(t, "    temporary files: {}", list(&i.temp_files));
    }
    for d in &i.stale_derived {
        let _ = writeln!(t, "    derived file missing or out of date: {d}");
    }
    let how = match dir.join("wal").is_dir() {
        true => format!(
            "`ritma run --out {}` (it seals its WAL again first)",
            dir.display()
        ),
        false => format!(
            "`ritma replay TRACE… --out {}` with the traces it was sealed from",
            dir.display()
        ),
    };
    let _ = writeln!(t, "  to complete it, continue the run that wrote it: {how}");
    t
}

fn interrupted_json(i: &ritma_sinks::interrupted::Interrupted) -> serde_json::Value {
    if i.is_empty() {
        return serde_json::Value::Null;
    }
    let paths =
        |v: &[PathBuf]| -> Vec<String> { v.iter().map(|p| p.display().to_string()).collect() };
    serde_json::json!({
        "unfinished_window": i.unfinished_window,
        "unfinished_files": paths(&i.unfinished_files),
        "temp_files": paths(&i.temp_files),
        "stale_derived": i.stale_derived,
    })
}

/// A duration like `30d`, `12h`, `90m` or `3600s`, in nanoseconds.
pub(crate) fn parse_keep(s: &str) -> Result<u64> {
    // The unit is the last character, whatever its width (no panic on `3é`).
    let at = s.char_indices().next_back().map_or(0, |(i, _)| i);
    let (n, unit) = s.split_at(at);
    let scale: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("--keep {s:?}: give a number and a unit, s, m, h or d (e.g. 30d)"),
    };
    let n: u64 = n
        .parse()
        .map_err(|_| anyhow::anyhow!("--keep {s:?}: {n:?} is not a whole number"))?;
    n.checked_mul(scale)
        .and_then(|s| s.checked_mul(1_000_000_000))
        .ok_or_else(|| anyhow::anyhow!("--keep {s:?} is too long"))
}

/// The wall clock in ns since the Unix epoch.
pub(crate) fn wall_now_ns() -> Result<u64> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_nanos() as u64)
}

fn retention_cmd(
    dir: &Path,
    keep: &str,
    apply: bool,
    force_unshipped: bool,
    json: bool,
) -> Result<()> {
    use ritma_sinks::retention;
    let keep_ns = parse_keep(keep)?;
    let now_ns = wall_now_ns()?;
    if force_unshipped && apply {
        eprintln!("ritma: warning: --force-unshipped: hours whose evidence never left the node may be deleted");
    }
    // One writer per store: retention must not race a run or replay writing it.
    use ritma_sinks::store::StoreLock;
    let _lock = StoreLock::acquire(dir, &StoreLock::lock_dir())?;
    // No case may freeze windows between the plan and the deletion.
    let mut _case_locks = Vec::new();
    for r in retention::node_roots(dir)? {
        _case_locks.push(StoreLock::acquire_cases(&r, &StoreLock::lock_dir())?);
    }
    let bar = progress::windows("retention: verify", 0);
    let tick = progress::follow(&bar);
    let plans = retention::plan(dir, keep_ns, now_ns, force_unshipped, &tick);
    bar.finish_and_clear();
    let mut plans = plans?;
    // What was done, per node, for the JSON report.
    let mut finished: Vec<serde_json::Value> = Vec::new();
    let say = |line: String| {
        if !json {
            println!("{line}");
        }
    };
    if plans.iter().any(|p| p.hours.iter().any(|h| h.recorded)) {
        if !apply {
            for p in &plans {
                for h in &p.hours {
                    say(format!("{} hour {} ({}): an interrupted deletion, recorded but with files left; --apply finishes it", p.node, retention::hour_label(h.deletion.hour), h.hour_dir.display()));
                }
            }
            bail!("an earlier retention run was interrupted: run again with --apply to finish it, then plan");
        }
        for p in &plans {
            for h in &p.hours {
                say(format!(
                    "{} finish deleting hour {} ({})",
                    p.node,
                    retention::hour_label(h.deletion.hour),
                    h.hour_dir.display()
                ));
                finished.push(serde_json::json!({
                    "node": p.node,
                    "hour": retention::hour_label(h.deletion.hour),
                    "dir": h.hour_dir.display().to_string(),
                }));
            }
            retention::apply(p, keep_ns, now_ns)?;
        }
        plans = retention::plan(dir, keep_ns, now_ns, force_unshipped, &tick)?;
    }
    let mut nodes = Vec::new();
    for plan in &plans {
        let mut hours = Vec::new();
        for h in &plan.hours {
            let d = &h.deletion;
            let what = if apply { "delete" } else { "would delete" };
            say(format!(
                "{} {what} hour {} ({}): windows {}..={}, {} events, {} bytes",
                plan.node,
                retention::hour_label(d.hour),
                h.hour_dir.display(),
                d.first_window,
                d.last_window,
                d.events,
                h.bytes
            ));
            hours.push(serde_json::json!({
                "hour": retention::hour_label(d.hour),
                "dir": h.hour_dir.display().to_string(),
                "first_window": d.first_window,
                "last_window": d.last_window,
                "events": d.events,
                "bytes": h.bytes,
            }));
        }
        let mut held = Vec::new();
        for (hour, cases) in &plan.held {
            say(format!(
                "{} keep hour {}: frozen by case {}",
                plan.node,
                retention::hour_label(*hour),
                cases.join(", ")
            ));
            held.push(serde_json::json!({
                "hour": retention::hour_label(*hour),
                "cases": cases,
            }));
        }
        for hour in &plan.unshipped {
            say(format!(
                "{} keep hour {}: not shipped yet (a shipping cursor has not passed it)",
                plan.node,
                retention::hour_label(*hour)
            ));
        }
        let bytes: u64 = plan.hours.iter().map(|h| h.bytes).sum();
        let mut node = serde_json::json!({
            "unshipped": plan.unshipped.iter().map(|h| retention::hour_label(*h)).collect::<Vec<_>>(),
            "node": plan.node,
            "hours": hours,
            "bytes": bytes,
            "cas_files": plan.cas_files,
            "cas_bytes": plan.cas_bytes,
            "frozen": held,
            "deleted_before": plan.deleted_before,
            "kept": plan.kept,
            "deleted": serde_json::Value::Null,
        });
        if apply {
            let done = retention::apply(plan, keep_ns, now_ns)?;
            say(format!(
                "{}: deleted {} hours ({} files, {} bytes) and {} CAS files ({} bytes) no kept window names; {} deleted before, {} kept, {} frozen by cases",
                plan.node, done.hours, done.files, done.bytes, done.cas_files, done.cas_bytes, plan.deleted_before, plan.kept, plan.held.len()
            ));
            node["deleted"] = serde_json::json!({
                "hours": done.hours,
                "files": done.files,
                "bytes": done.bytes,
                "cas_files": done.cas_files,
                "cas_bytes": done.cas_bytes,
            });
        } else {
            say(format!(
                "{}: {} hours ({bytes} bytes) and {} CAS files ({} bytes) no kept window would name would be deleted; {} deleted before, {} kept, {} frozen by cases (dry run: add --apply to delete)",
                plan.node,
                plan.hours.len(),
                plan.cas_files,
                plan.cas_bytes,
                plan.deleted_before,
                plan.kept,
                plan.held.len()
            ));
        }
        nodes.push(node);
    }
    if json {
        let out = serde_json::json!({
            "apply": apply,
            "keep_ns": keep_ns,
            "finished_interrupted": finished,
            "nodes": nodes,
        });
        println!("{out}");
    }
    Ok(())
}

/// A store's own WAL files from its restart point on, with the state saved there.
fn own_wal(out: &Path) -> Result<(Vec<PathBuf>, Option<replay::Resume>)> {
    let files: Vec<PathBuf> = ritma_sinks::wal::wal_files(out)?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let Some(first) = files.first() else {
        bail!("{}: no WAL files in {}/wal", out.display(), out.display());
    };
    // A store holds one node: the WAL's first run names it and its window length.
    let Some(run) = ritma_sources::trace::scan_runs(first)?.into_iter().next() else {
        bail!("{}: no run in it", first.display());
    };
    let (resume, files) = run::restart_from(out, &run.node, run.window_len_ns, &files)?;
    Ok((files, resume))
}

fn replay_cmd(
    traces: Vec<PathBuf>,
    wal: bool,
    out: PathBuf,
    workers: usize,
    key: Option<PathBuf>,
    taint_ttl_s: u64,
) -> Result<()> {
    let taint_ttl_ns = check_dataflow_args(workers, taint_ttl_s)?;
    let started = std::time::Instant::now();
    let (traces, resume) = if wal { own_wal(&out)? } else { (traces, None) };
    let cfg = replay::ReplayConfig {
        traces,
        out: out.clone(),
        workers,
        key,
        slack_ns: replay::DEFAULT_SLACK_NS,
        taint_ttl_ns,
        metrics: None,
        mode: ritma_schemas::records::CaptureMode::Thin,
        resume,
        wal,
    };
    let s = replay::replay(cfg)?;
    let secs = started.elapsed().as_secs_f64();
    let o = s.operators;
    eprintln!(
        "ritma: cone partial matches expired {}, shed at the bound {}; actor table misses {}, evicted on exit {}, idle {}, at capacity {}",
        o.cone_partials_expired,
        o.cone_partials_shed,
        o.actor_misses,
        o.actors_evicted_exit,
        o.actors_evicted_idle,
        o.actors_evicted_capacity
    );
    eprintln!(
        "ritma: sealed {} events of {} node(s) in {} windows into {} in {secs:.1} s ({:.0} events/s); {} events lost to corrupt trace frames, {} recorded as lost in the trace; seal latency p50 {:.1} ms, p99 {:.1} ms",
        s.events,
        s.nodes.len(),
        s.windows,
        out.display(),
        s.events as f64 / secs.max(1e-9),
        s.lost,
        s.recorded_lost,
        ms(s.seal_latency(0.5)),
        ms(s.seal_latency(0.99)),
    );

    Ok(())
}

fn ms(d: Option<std::time::Duration>) -> f64 {
    d.map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// `--node`, or else the host name.
fn node_or_host(node: Option<String>) -> Result<String> {
    match node {
        Some(n) => Ok(n),
        None => default_node(),
    }
}

fn default_node() -> Result<String> {
    let host =
        std::fs::read_to_string("/proc/sys/kernel/hostname").context("reading the host name")?;
    Ok(host.trim().to_owned())
}

fn keys_init(out: &Path, node: Option<String>) -> Result<()> {
    let node = node_or_host(node)?;
    record::check_node(&node)?;
    let mut seed = [0u8; 32];
    getrandom(&mut seed)?;
    let store = Keystore::for_store(out);
    let signer = store.init(&node, seed)?;
    let private = format!("{} (mode 0600)", store.private_path().display());
    print_key(&node, &signer.verifier(), &private);
    Ok(())
}

fn keys_new(name: &str, out: &Path, witness: bool) -> Result<()> {
    let mut seed = [0u8; 32];
    getrandom(&mut seed)?;
    let bad = |e| anyhow::anyhow!("key name {name:?}: {e}");
    let (private, vkey, key_id) = match witness {
        false => {
            let s = ritma_schemas::note::NoteSigner::from_seed(name, seed).map_err(bad)?;
            (s.to_private_key_text(), s.verifier().to_vkey(), s.key_id())
        }
        true => {
            let s = ritma_schemas::cosignature::Cosigner::from_seed(name, seed).map_err(bad)?;
            let v = s.verifier();
            (s.to_private_key_text(), v.to_vkey(), v.key_id())
        }
    };
    let vkey_path = PathBuf::from(format!("{}.vkey", out.display()));
    ritma_sinks::keys::write_new(out, format!("{private}\n").as_bytes(), 0o600)?;
    ritma_sinks::keys::write_new(&vkey_path, format!("{vkey}\n").as_bytes(), 0o644)?;
    println!("key name:    {name}");
    println!("key id:      {key_id:08x}");
    println!("vkey:        {vkey}");
    println!("private key: {} (mode 0600)", out.display());
    println!("vkey file:   {}", vkey_path.display());
    Ok(())
}

/// The lines `keys init` and `keys show` print about a key.
fn print_key(node: &str, v: &ritma_schemas::note::NoteVerifier, private: &str) {
    println!("node:        {node}");
    println!("key name:    {}", v.name());
    println!("key id:      {:08x}", v.key_id());
    println!(
        "public key:  {}",
        base64::engine::general_purpose::STANDARD.encode(v.public_key())
    );
    println!("vkey:        {}", v.to_vkey());
    println!("private key: {private}");
}

fn keys_show(dir: &Path, json: bool) -> Result<()> {
    let store = Keystore::for_store(dir);
    let v = store.load_verifier()?;
    let node = v
        .name()
        .strip_prefix("ritma/")
        .unwrap_or(v.name())
        .to_owned();
    let history = store.load_history(&node)?;
    // The vkey beside the events must be a key the history knows.
    if !history.spans().iter().any(|s| s.verifier == v) {
        bail!(
            "{}: key {:08x} is not in the key history",
            store.public_path().display(),
            v.key_id()
        );
    }
    let private = match store.private_path().exists() {
        true => match store.load_signer() {
            Ok(_) => "present, mode 0600, matches the public key".to_owned(),
            Err(e) => format!("UNUSABLE: {e}"),
        },
        false => "absent (verification only)".to_owned(),
    };
    if json {
        let spans: Vec<_> = history
            .spans()
            .iter()
            .map(|s| {
                serde_json::json!({
                    "key_id": format!("{:08x}", s.verifier.key_id()),
                    "from": s.from,
                    "until": s.until,
                    "vkey": s.verifier.to_vkey(),
                })
            })
            .collect();
        let out = serde_json::json!({
            "node": node,
            "key_name": v.name(),
            "key_id": format!("{:08x}", v.key_id()),
            "public_key": base64::engine::general_purpose::STANDARD.encode(v.public_key()),
            "vkey": v.to_vkey(),
            "private_key": private,
            "history": spans,
        });
        println!("{out}");
        return Ok(());
    }
    print_key(&node, &v, &private);
    println!("key history ({} keys):", history.spans().len());
    for s in history.spans() {
        let until = s.until.map_or("∞".to_owned(), |u| u.to_string());
        println!(
            "  {:08x}  log sizes [{}, {until})  {}",
            s.verifier.key_id(),
            s.from,
            s.verifier.to_vkey()
        );
    }
    Ok(())
}

fn synth(
    events: u64,
    seed: u64,
    hosts: u32,
    batch: usize,
    rate: u64,
    window_ms: u64,
    out: &Path,
) -> Result<()> {
    if !ritma_schemas::records::window_len_divides_hour(window_ms.saturating_mul(1_000_000)) {
        bail!("--window-ms must divide one hour (3600000), not {window_ms}");
    }
    if rate == 0 || rate > 1_000_000_000 {
        bail!("--rate must be 1 to 1000000000 events per second, not {rate}");
    }
    use ritma_sources::synth::{generate, SynthConfig};
    use ritma_sources::trace::TraceWriter;
    if hosts == 0 || hosts > 1000 {
        bail!("--hosts must be 1 to 1000, not {hosts}");
    }
    if batch == 0 || batch > 1 << 20 {
        bail!("--batch must be 1 to 1048576, not {batch}");
    }
    let labels_path = PathBuf::from(format!("{}.labels.jsonl", out.display()));
    let mut writer = TraceWriter::create(out)?;
    let cfg = SynthConfig {
        batch,
        rate,
        window_len_ns: window_ms * 1_000_000,
        ..SynthConfig::new(events, seed, hosts)
    };
    let started = std::time::Instant::now();
    let labels = generate(&cfg, &mut writer)?;
    let mut text = String::new();
    for l in &labels {
        text.push_str(&l.to_json());
        text.push('\n');
    }
    std::fs::write(&labels_path, text)
        .with_context(|| format!("writing {}", labels_path.display()))?;
    let secs = started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "ritma: wrote {events} events of {hosts} host(s) to {} ({bytes} bytes, {:.1} B/event) in {secs:.1} s ({:.0} events/s); {} attack sequences labelled in {}",
        out.display(),
        bytes as f64 / events.max(1) as f64,
        events as f64 / secs.max(1e-9),
        labels.len(),
        labels_path.display()
    );
    Ok(())
}

/// Fills `buf` from the kernel's CSPRNG with getrandom(2), which waits until the pool is
/// seeded (a key made at early boot from /dev/urandom might not be).
pub(crate) fn getrandom(buf: &mut [u8]) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe `rest`, which outlives the call.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match n {
            n if n > 0 => filled += n as usize,
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e).context("getrandom(2)");
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod argument_tests {
    use super::*;
    use proptest::prelude::*;

    /// Every parser of a command-line value: an error for what it cannot take, never a panic.
    fn parse_all(s: &str) {
        let _ = parse_keep(s);
        let _ = case::parse_time(s);
        let _ = case::parse_range(Some(s), Some(s));
        let _ = case::parse_range(Some("1"), Some(s));
        let _ = query::actor_arg(s);
        let _ = query::flow_arg(s);
        let _ = prove::vkey_arg("--key", s);
        let _ = parse_duration(s.parse().ok());
    }

    #[test]
    fn getrandom_fills_the_buffer_with_fresh_bytes() {
        let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
        getrandom(&mut a).unwrap();
        getrandom(&mut b).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 64]);
        getrandom(&mut []).unwrap();
    }

    #[test]
    fn a_keep_ending_in_a_wide_character_is_an_error() {
        for s in ["3é", "é", "30дн", "", "d", "∞s", "12\u{1F600}"] {
            assert!(parse_keep(s).is_err(), "{s:?}");
        }
        assert_eq!(parse_keep("30d").unwrap(), 30 * 86_400 * 1_000_000_000);
    }

    proptest! {
        #[test]
        fn no_argument_panics(s in any::<String>()) {
            parse_all(&s);
        }

        #[test]
        fn no_argument_shaped_like_a_value_panics(
            s in "[0-9.:TZ+\\-\\[\\]a-fé]{0,40}"
        ) {
            parse_all(&s);
        }
    }
}
