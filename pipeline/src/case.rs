//! `ritma case`: an investigation's windows, frozen against retention, with an access
//! log of every action and an unfreeze that needs M of N approvers (FORMAT.md §8.9).

use crate::prove::{node_root, sealed_windows, utc, vkey_arg, Sealed, WindowLeaves};
use crate::wall_now_ns;
use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use ritma_schemas::case::{
    is_valid_case_id, merge_ranges, unfreeze_request, CaseAction, CaseEntry, CaseManifest,
    CaseState,
};
use ritma_schemas::merkle::{aligned_ranges, Blake3Tree, SparseLog, Subtrees};
use ritma_schemas::note::NoteSigner;
use ritma_schemas::proof_bundle::MAX_NOTE_LEN;
use ritma_schemas::records::{
    ConeInstance, HourDeletion, Record, SignedRecord, StoreMeta, WindowRecord,
};
use ritma_sinks::case::{case_dir, case_ids, read_manifest, write_manifest};
use ritma_sinks::keys::{load_private_key, write_new, Keystore};
use ritma_sinks::store::{days_from_civil, StoreLock};
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum CaseCommand {
    /// Open a case, naming the approvers whose signatures an unfreeze needs.
    Open {
        /// The store (RITMA_OUT) directory.
        dir: PathBuf,
        /// Case id, 1-64 of A-Z a-z 0-9 . _ - (the directory is cases/CASE_<id>).
        case: String,
        /// What the case is about.
        #[arg(long, default_value = "")]
        title: String,
        /// An approver's verifier key (vkey text or a file holding it; `ritma keys new`
        /// makes one). Repeat for each approver.
        #[arg(long = "approver", required = true)]
        approvers: Vec<String>,
        /// Approvals an unfreeze needs (default: every approver).
        #[arg(long)]
        approvals: Option<u64>,
        /// The node, in a store of several (`nodes/<node>/`).
        #[arg(long)]
        node: Option<String>,
    },
    /// Add the sealed windows in a time range, or of them those where an actor appears
    /// or a cone matched.
    Add {
        dir: PathBuf,
        case: String,
        /// Start of the range: RFC 3339 UTC (2026-11-23T10:00:00Z) or Unix seconds.
        #[arg(long)]
        from: Option<String>,
        /// End of the range (exclusive), as --from.
        #[arg(long)]
        to: Option<String>,
        /// Only windows where this actor (32 hex digits, as `prove` prints) appears.
        #[arg(long)]
        actor: Option<String>,
        /// Only windows where this cone (e.g. reverse_shell) matched.
        #[arg(long)]
        cone: Option<String>,
        #[arg(long)]
        node: Option<String>,
    },
    /// Freeze the case's windows: retention keeps every hour holding one.
    Freeze {
        dir: PathBuf,
        case: String,
        #[arg(long)]
        node: Option<String>,
    },
    /// Unfreeze with the approvers' signed approvals; without any, print the request
    /// they sign (`ritma case approve`).
    Unfreeze {
        dir: PathBuf,
        case: String,
        /// A signed approval (a note over the request). Repeat for each.
        #[arg(long = "approval")]
        approvals: Vec<PathBuf>,
        #[arg(long)]
        node: Option<String>,
    },
    /// Sign an unfreeze request (or add a signature to an approval already signed).
    Approve {
        /// The request `ritma case unfreeze` printed, or an approval to cosign.
        request: PathBuf,
        /// The approver's private key file (`ritma keys new`).
        #[arg(long)]
        key: PathBuf,
        /// The approval to write (default: standard output); never overwritten.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write a self-verifying bundle of the case's windows (`ritma verify OUT` checks it
    /// with nothing else present).
    Export {
        dir: PathBuf,
        case: String,
        /// The bundle directory to create; an existing one is never written into.
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        node: Option<String>,
    },
    /// Close an open case: it takes no more actions.
    Close {
        dir: PathBuf,
        case: String,
        #[arg(long)]
        node: Option<String>,
    },
    /// List the cases, or show one: state, approvers, windows and access log.
    Show {
        dir: PathBuf,
        case: Option<String>,
        #[arg(long)]
        node: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn case_cmd(cmd: CaseCommand) -> Result<()> {
    match cmd {
        CaseCommand::Open {
            dir,
            case,
            title,
            approvers,
            approvals,
            node,
        } => {
            let keys = approvers
                .iter()
                .map(|k| vkey_arg("--approver", k))
                .collect::<Result<Vec<_>>>()?;
            let needed = approvals.unwrap_or(keys.len() as u64);
            if needed == 0 || needed > keys.len() as u64 {
                bail!(
                    "--approvals {needed}: must be between 1 and the {} approvers",
                    keys.len()
                );
            }
            act(&dir, node.as_deref(), &case, CaseAction::Open, |ctx| {
                for (i, k) in keys.iter().enumerate() {
                    if keys[..i].iter().any(|o| o.name() == k.name()) {
                        bail!("two approver keys named {}", k.name());
                    }
                }
                Ok(Change::Opened(CaseManifest {
                    node: ctx.node.clone(),
                    case: case.clone(),
                    title: title.clone(),
                    approvers: keys
                        .iter()
                        .map(|k| (k.name().to_owned(), k.public_key()))
                        .collect(),
                    approvals_needed: needed,
                    state: CaseState::Open,
                    windows: Vec::new(),
                    log: Vec::new(),
                    log_size: 0,
                }))
            })
        }
        CaseCommand::Add {
            dir,
            case,
            from,
            to,
            actor,
            cone,
            node,
        } => {
            let sel = Selection::parse(from, to, actor, cone)?;
            act(&dir, node.as_deref(), &case, CaseAction::Add, |ctx| {
                let found = sel.windows(ctx)?;
                if found.is_empty() {
                    bail!("no sealed window matches {}", sel.describe());
                }
                let m = ctx.manifest.as_mut().expect("an existing case");
                let ranges = merge_ranges(found.iter().map(|&w| (w, w)).collect());
                let before = count(&m.windows);
                m.windows = merge_ranges(m.windows.iter().chain(&ranges).copied().collect());
                let added = count(&m.windows) - before;
                println!(
                    "case {}: {} windows match {}, {added} of them new; the case names {} windows",
                    m.case,
                    found.len(),
                    sel.describe(),
                    count(&m.windows)
                );
                Ok(Change::Detail(format!(
                    "{}: {} windows ({added} new) in {} ranges",
                    sel.describe(),
                    found.len(),
                    ranges.len()
                )))
            })
        }
        CaseCommand::Freeze { dir, case, node } => {
            act(&dir, node.as_deref(), &case, CaseAction::Freeze, |ctx| {
                let m = ctx.manifest.as_ref().expect("an existing case");
                if m.windows.is_empty() {
                    bail!("case {} names no windows yet (ritma case add)", m.case);
                }
                // A frozen case never names a deleted window, so verify can tell a
                // deletion that broke a freeze (E_RETENTION).
                ctx.none_deleted(m, "frozen")?;
                println!(
                    "case {}: froze {} windows; retention keeps the hours that hold them",
                    m.case,
                    count(&m.windows)
                );
                Ok(Change::Detail(format!("{} windows", count(&m.windows))))
            })
        }
        CaseCommand::Unfreeze {
            dir,
            case,
            approvals,
            node,
        } => {
            let notes = approvals
                .iter()
                .map(|p| fs::read_to_string(p).with_context(|| format!("{}", p.display())))
                .collect::<Result<Vec<_>>>()?;
            act(&dir, node.as_deref(), &case, CaseAction::Unfreeze, |ctx| {
                let m = ctx.manifest.as_ref().expect("an existing case");
                if m.state != CaseState::Frozen {
                    bail!("case {} is {}, not frozen", m.case, m.state.name());
                }
                let entry = m.log.len() as u64;
                if notes.is_empty() {
                    print!("{}", unfreeze_request(&m.node, &m.case, entry));
                    eprintln!("ritma: the request above needs {} of the approvers {} to sign it (ritma case approve REQUEST --key KEY), then: ritma case unfreeze {} {} --approval FILE ...", m.approvals_needed, m.approvers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "), ctx.dir.display(), m.case);
                    return Ok(Change::Nothing);
                }
                let who = m
                    .approvers_of(entry, &notes)
                    .map_err(|e| anyhow!("case {}: {e}", m.case))?;
                if (who.len() as u64) < m.approvals_needed {
                    bail!(
                        "case {}: approved by {} ({}), {} approvers needed",
                        m.case,
                        who.len(),
                        who.join(", "),
                        m.approvals_needed
                    );
                }
                println!(
                    "case {}: unfrozen with the approval of {}",
                    m.case,
                    who.join(", ")
                );
                Ok(Change::Approved(
                    format!("approved by {}", who.join(", ")),
                    notes.clone(),
                ))
            })
        }
        CaseCommand::Approve { request, key, out } => approve(&request, &key, out.as_deref()),
        CaseCommand::Export {
            dir,
            case,
            out,
            node,
        } => act(&dir, node.as_deref(), &case, CaseAction::Export, |ctx| {
            let done = export(ctx, &out)?;
            println!(
                "case {case}: exported {} windows ({} files, {} bytes) to {} under the node's checkpoint of size {}; check it with: ritma verify {}",
                done.windows,
                done.files,
                done.bytes,
                out.display(),
                done.log_size,
                out.display()
            );
            Ok(Change::Detail(format!(
                "to {}: {} windows, checkpoint size {}",
                out.display(),
                done.windows,
                done.log_size
            )))
        }),
        CaseCommand::Close { dir, case, node } => {
            act(&dir, node.as_deref(), &case, CaseAction::Close, |ctx| {
                println!(
                    "case {}: closed",
                    ctx.manifest.as_ref().expect("a case").case
                );
                Ok(Change::Detail(String::new()))
            })
        }
        CaseCommand::Show {
            dir,
            case,
            node,
            json,
        } => show(&dir, node.as_deref(), case.as_deref(), json),
    }
}

/// Windows named by inclusive ranges.
fn count(ranges: &[(u64, u64)]) -> u64 {
    ranges.iter().map(|(a, b)| b - a + 1).sum()
}

/// What an action found in the store, and the case as it stands.
struct Ctx {
    dir: PathBuf,
    root: PathBuf,
    node: String,
    window_len_ns: u64,
    sealed: Vec<Sealed>,
    log: SparseLog,
    deleted: Vec<(PathBuf, HourDeletion)>,
    manifest: Option<CaseManifest>,
}

impl Ctx {
    /// Fails if the case names a window of an hour retention deleted.
    fn none_deleted(&self, m: &CaseManifest, what: &str) -> Result<()> {
        match self
            .deleted
            .iter()
            .find(|(_, d)| m.names_any(d.first_window, d.last_window))
        {
            Some((_, d)) => bail!(
                "case {} names windows of hour {} ({}..={}), which retention deleted: they cannot be {what}",
                m.case,
                ritma_sinks::retention::hour_label(d.hour),
                d.first_window,
                d.last_window
            ),
            None => Ok(()),
        }
    }
}

/// What an action did to the case.
enum Change {
    /// A new case (for open).
    Opened(CaseManifest),
    /// The action's access-log detail.
    Detail(String),
    /// An unfreeze's detail and approvals.
    Approved(String, Vec<String>),
    /// Nothing to record (a request printed).
    Nothing,
}

/// Runs one case action under the store's case lock: reads the case, lets `f` check
/// and change it, appends the access-log entry and writes the signed manifest.
fn act(
    dir: &Path,
    node: Option<&str>,
    case: &str,
    action: CaseAction,
    f: impl FnOnce(&mut Ctx) -> Result<Change>,
) -> Result<()> {
    if !is_valid_case_id(case) {
        bail!("case id {case:?}: must be 1-64 of A-Z a-z 0-9 . _ - and not start with .");
    }
    let (root, meta) = node_root(dir, node)?;
    let _lock = StoreLock::acquire_cases(&root, &StoreLock::lock_dir())?;
    let signer = Keystore::for_store(&root).load_signer().with_context(|| {
        format!(
            "{}: the store's signing key signs its cases",
            root.display()
        )
    })?;
    let (sealed, log, deleted) = sealed_windows(&root, &meta)?;
    let manifest = match (action, read_manifest(&root, case)) {
        (CaseAction::Open, Ok(_)) => bail!(
            "case {case} already exists ({})",
            case_dir(&root, case).display()
        ),
        (CaseAction::Open, Err(ritma_sinks::case::CaseError::NoSuchCase { .. })) => None,
        (_, Ok((_, m))) => Some(m),
        (_, Err(e)) => return Err(e.into()),
    };
    let state = manifest.as_ref().map(|m| m.state);
    action
        .next_state(state)
        .map_err(|why| anyhow!("case {case}: cannot {}: {why}", action.name()))?;
    let mut ctx = Ctx {
        dir: dir.to_owned(),
        root,
        node: meta.node.clone(),
        window_len_ns: meta.window_len_ns,
        sealed,
        log,
        deleted,
        manifest,
    };
    let change = f(&mut ctx)?;
    let (mut m, detail, approvals) = match change {
        Change::Nothing => return Ok(()),
        Change::Opened(m) => (m, String::new(), Vec::new()),
        Change::Detail(d) => (ctx.manifest.take().expect("a case"), d, Vec::new()),
        Change::Approved(d, a) => (ctx.manifest.take().expect("a case"), d, a),
    };
    m.log.push(CaseEntry {
        wall_ns: wall_now_ns()?,
        user: user(),
        action,
        detail,
        approvals,
    });
    m.state = action.next_state(state).expect("checked above");
    m.log_size = ctx.log.size();
    // What verify will check, before anything is written.
    m.check_log()
        .map_err(|e| anyhow!("case {case}: internal error: {e}"))?;
    if action == CaseAction::Open {
        fs::create_dir_all(case_dir(&ctx.root, case))
            .with_context(|| case_dir(&ctx.root, case).display().to_string())?;
        println!(
            "case {case}: opened on node {}; unfreezing needs {} of {} approvers",
            m.node,
            m.approvals_needed,
            m.approvers.len()
        );
    }
    write_manifest(&ctx.root, &m, &signer)?;
    Ok(())
}

/// What an export wrote.
struct Exported {
    windows: u64,
    files: u64,
    bytes: u64,
    log_size: u64,
}

/// Writes the case's bundle to `out` (FORMAT.md §8.10): its windows' records, checkpoints
/// and blocks, the blobs their events name, the key history, the case manifest as it
/// stands, the newest checkpoint and the node-log subtrees between the windows; the
/// signed `bundle.cbor` last, so a bundle without it is an interrupted export.
fn export(ctx: &Ctx, out: &Path) -> Result<Exported> {
    use ritma_sinks::bundle::{BUNDLE_FILE, CASE_FILE, CHECKPOINT_FILE};
    let m = ctx.manifest.as_ref().expect("an existing case");
    if m.windows.is_empty() {
        bail!("case {} names no windows yet (ritma case add)", m.case);
    }
    ctx.none_deleted(m, "exported")?;
    let Some(newest) = ctx.sealed.last() else {
        bail!("the store has no sealed windows");
    };
    let log_size = ctx.log.size();
    // Each range's windows are consecutive leaves (a downtime leaves windows out between
    // sealed ones, never inside a range of sealed windows).
    let leaf_of = |win: u64| {
        ctx.sealed
            .binary_search_by_key(&win, |s| s.record.window)
            .map(|i| ctx.sealed[i].log_index)
            .map_err(|_| anyhow!("window {win} of the case is not sealed in the store"))
    };
    let mut leaf_ranges: Vec<(u64, u64)> = Vec::with_capacity(m.windows.len() + 1);
    for &(a, b) in &m.windows {
        let (first, last) = (leaf_of(a)?, leaf_of(b)?);
        if last - first != b - a {
            bail!("windows {a} to {b} of the case are not all sealed in the store");
        }
        leaf_ranges.push((first, last));
    }
    let first_leaves: Vec<u64> = leaf_ranges.iter().map(|(a, _)| *a).collect();
    fs::create_dir_all(
        out.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
    .with_context(|| out.display().to_string())?;
    fs::create_dir(out).with_context(|| {
        format!(
            "{}: cannot create the bundle directory (an existing one is never written into)",
            out.display()
        )
    })?;
    let mut w = BundleWriter {
        out: out.to_owned(),
        files: 0,
        bytes: 0,
    };
    // The node-log leaves not exported, as gaps of aligned subtree roots.
    let mut gaps = Vec::new();
    let mut at = 0u64;
    leaf_ranges.push((log_size, log_size));
    for &(a, b) in &leaf_ranges {
        if a > at {
            let roots = aligned_ranges(at, a - at)
                .into_iter()
                .map(|(s, h)| ctx.log.subtree_root::<Blake3Tree>(s, s + (1u64 << h)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow!("node-log leaves {at}..{a}: {e}"))?;
            gaps.push((at, a - at, roots));
        }
        at = b + 1;
    }
    let src_cas = ritma_sinks::cas::Cas::open(&ctx.root)?;
    let mut dst_cas = None;
    let mut windows = 0u64;
    let total: u64 = m.windows.iter().map(|&(a, b)| b - a + 1).sum();
    let bar = crate::progress::windows("export", total);
    for &(a, b) in &m.windows {
        for win in a..=b {
            bar.inc(1);
            let i = ctx
                .sealed
                .binary_search_by_key(&win, |s| s.record.window)
                .map_err(|_| anyhow!("window {win} of the case is not sealed in the store"))?;
            let s = &ctx.sealed[i];
            let leaves = WindowLeaves::read(&ctx.root, s)?;
            let paths = &leaves.paths;
            w.copy(&ctx.root, &paths.record(), WindowRecord::MAX_LEN)?;
            w.copy(&ctx.root, &paths.checkpoint(), MAX_NOTE_LEN)?;
            if s.record.leaf_count() > 0 {
                let cap = ritma_sinks::store::block_file_cap(s.record.leaf_count());
                w.copy(&ctx.root, &paths.blocks(), cap)?;
            }
            for i in leaves.atoms() {
                let atom: ritma_schemas::records::EventAtom = leaves.decode(i)?;
                if let Some(h) = atom.payload_ref {
                    let dst = match &mut dst_cas {
                        Some(c) => c,
                        None => dst_cas.insert(ritma_sinks::cas::Cas::open(out)?),
                    };
                    if !dst.contains(&h) {
                        let mut blob = Vec::new();
                        src_cas.get(&h, &mut blob)?;
                        dst.put_bytes(&blob)?;
                        w.bytes += blob.len() as u64;
                    }
                }
            }
            windows += 1;
        }
    }
    bar.finish_and_clear();
    w.copy(&ctx.root, Path::new("_meta/store.cbor"), StoreMeta::MAX_LEN)?;
    w.copy(&ctx.root, Path::new("_meta/keys/signing.vkey"), 1024)?;
    for n in fs::read_dir(ctx.root.join("_meta/keys/events"))? {
        let n = n?.file_name();
        let events = Path::new("_meta/keys/events").join(n);
        w.copy(&ctx.root, &events, SignedRecord::MAX_LEN)?;
    }
    let manifest = case_dir(&ctx.root, &m.case).join(ritma_sinks::case::MANIFEST_FILE);
    let case_bytes = ritma_sinks::store::read_capped(&manifest, SignedRecord::MAX_LEN)
        .with_context(|| manifest.display().to_string())?;
    w.write(Path::new(CASE_FILE), &case_bytes)?;
    let note = ritma_sinks::store::read_capped(&newest.sig_path, MAX_NOTE_LEN)
        .with_context(|| newest.sig_path.display().to_string())?;
    w.write(Path::new(CHECKPOINT_FILE), &note)?;
    let record = ritma_schemas::case::CaseExport {
        node: ctx.node.clone(),
        case: m.case.clone(),
        first_leaves,
        log_size,
        gaps,
        exported_wall_ns: wall_now_ns()?,
        manifest: ritma_schemas::hash::blake3(&case_bytes),
    };
    let signer = Keystore::for_store(&ctx.root).load_signer()?;
    let signed =
        ritma_schemas::keys::sign_record(ritma_schemas::records::Record::encode(&record), &signer);
    w.write(
        Path::new(BUNDLE_FILE),
        &ritma_schemas::records::Record::encode(&signed),
    )?;
    sync_tree(out)?;
    Ok(Exported {
        windows,
        files: w.files,
        bytes: w.bytes,
        log_size,
    })
}

/// Files written into a new bundle, each fsynced.
struct BundleWriter {
    out: PathBuf,
    files: u64,
    bytes: u64,
}

impl BundleWriter {
    fn write(&mut self, rel: &Path, bytes: &[u8]) -> Result<()> {
        let path = self.out.join(rel);
        if let Some(d) = path.parent() {
            fs::create_dir_all(d).with_context(|| d.display().to_string())?;
        }
        write_new(&path, bytes, 0o644)?;
        self.files += 1;
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Copies the store's file `rel` (at most `max` bytes, its bound) to the same path.
    fn copy(&mut self, root: &Path, rel: &Path, max: usize) -> Result<()> {
        let path = root.join(rel);
        let bytes = ritma_sinks::store::read_capped(&path, max)
            .with_context(|| path.display().to_string())?;
        self.write(rel, &bytes)
    }
}

/// fsyncs every directory under `dir` (and `dir`), so the bundle's names are durable.
fn sync_tree(dir: &Path) -> Result<()> {
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            }
        }
        fs::File::open(&d)
            .and_then(|f| f.sync_all())
            .with_context(|| d.display().to_string())?;
    }
    Ok(())
}

/// Who acts, as the access log records it: the process's real uid and that uid's name in
/// the password database, which the actor cannot choose; then, as a claim only, the name
/// `$SUDO_USER`/`$USER`/`$LOGNAME` give when it differs (anyone can set those).
fn user() -> String {
    // SAFETY: getuid cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    let known = user_name(uid);
    let claimed = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()));
    let mut who = match &known {
        Some(name) => format!("uid {uid} ({name})"),
        None => format!("uid {uid}"),
    };
    if let Some(c) = claimed.filter(|c| Some(c) != known.as_ref()) {
        who.push_str(&format!(", claims {c:?}"));
    }
    who.chars().take(256).collect()
}

/// The name of `uid` in the password database, if it has one.
fn user_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: zeroed passwd is a valid out-parameter for getpwuid_r.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and buf's length is passed with it.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() || pw.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points to a NUL-terminated string inside buf.
    let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// `ritma case approve`: signs the request (or cosigns an approval).
fn approve(request: &Path, key: &Path, out: Option<&Path>) -> Result<()> {
    let text = fs::read_to_string(request).with_context(|| request.display().to_string())?;
    let signer: NoteSigner = load_private_key(key)?;
    let body_only = !text.contains("\n\n");
    let note = match body_only {
        true => signer.sign(&text),
        false => signer.cosign(&text),
    }
    .map_err(|e| anyhow!("{}: {e}", request.display()))?;
    let body = note.split("\n\n").next().unwrap_or("");
    if !body.starts_with("ritma case unfreeze\n") {
        bail!(
            "{}: not an unfreeze request of ritma case unfreeze",
            request.display()
        );
    }
    match out {
        None => print!("{note}"),
        Some(p) => write_new(p, note.as_bytes(), 0o644)
            .with_context(|| format!("{} is never overwritten", p.display()))?,
    }
    Ok(())
}

/// Which windows `case add` takes.
struct Selection {
    from_ns: Option<u64>,
    to_ns: Option<u64>,
    actor: Option<ritma_schemas::Id128>,
    cone: Option<String>,
}

impl Selection {
    fn parse(
        from: Option<String>,
        to: Option<String>,
        actor: Option<String>,
        cone: Option<String>,
    ) -> Result<Self> {
        if from.is_none() && to.is_none() && actor.is_none() && cone.is_none() {
            bail!("say which windows: --from/--to, --actor or --cone");
        }
        let (from_ns, to_ns) = parse_range(from.as_deref(), to.as_deref())?;
        let actor = actor
            .map(|s| {
                ritma_sinks::cas::parse_hex::<16>(s.to_ascii_lowercase().as_bytes())
                    .ok_or_else(|| anyhow!("--actor {s:?}: not an actor id (32 hex digits)"))
            })
            .transpose()?;
        Ok(Selection {
            from_ns,
            to_ns,
            actor,
            cone,
        })
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = self.from_ns {
            parts.push(format!("from {}", utc(t as i128)));
        }
        if let Some(t) = self.to_ns {
            parts.push(format!("to {}", utc(t as i128)));
        }
        if let Some(a) = &self.actor {
            parts.push(format!(
                "actor {}",
                a.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ));
        }
        if let Some(c) = &self.cone {
            parts.push(format!("cone {c}"));
        }
        parts.join(" ")
    }

    /// The sealed windows the selection takes, ascending.
    fn windows(&self, ctx: &Ctx) -> Result<Vec<u64>> {
        let len = ctx.window_len_ns as u128;
        let mut out = Vec::new();
        for s in &ctx.sealed {
            let w = s.record.window as u128;
            let (start, end) = (w * len, (w + 1) * len);
            if self.from_ns.is_some_and(|t| end <= t as u128)
                || self.to_ns.is_some_and(|t| start >= t as u128)
            {
                continue;
            }
            if self.actor.is_some() || self.cone.is_some() {
                let leaves = WindowLeaves::read(&ctx.root, s)?;
                if let Some(a) = &self.actor {
                    if leaves.actor(a)?.is_none() {
                        continue;
                    }
                }
                if let Some(c) = &self.cone {
                    let mut hit = false;
                    for i in leaves.cones() {
                        hit |= leaves.decode::<ConeInstance>(i)?.cone_id == *c;
                    }
                    if !hit {
                        continue;
                    }
                }
            }
            out.push(s.record.window);
        }
        Ok(out)
    }
}

/// `--from` and `--to` as ns since the epoch, each if given; the first must be before the
/// second.
pub fn parse_range(from: Option<&str>, to: Option<&str>) -> Result<(Option<u64>, Option<u64>)> {
    let time = |flag: &str, v: Option<&str>| {
        v.map(|s| parse_time(s).map_err(|e| anyhow!("{flag} {s:?}: {e}")))
            .transpose()
    };
    let (from_ns, to_ns) = (time("--from", from)?, time("--to", to)?);
    if let (Some(a), Some(b)) = (from_ns, to_ns) {
        if a >= b {
            bail!("--from must be before --to");
        }
    }
    Ok((from_ns, to_ns))
}

/// `2026-11-23T10:00:00Z` (fraction allowed, UTC only) or Unix seconds (`1763892000.5`).
pub fn parse_time(s: &str) -> Result<u64, String> {
    let frac_ns = |f: &str| -> Result<u64, String> {
        if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
            return Err("the fraction must be 1 to 9 digits".into());
        }
        Ok(f.parse::<u64>().map_err(|e| e.to_string())? * 10u64.pow(9 - f.len() as u32))
    };
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (secs, frac) = split_fraction(s);
        let secs: u64 = secs.parse().map_err(|_| "not a number of seconds")?;
        let frac = frac.map(frac_ns).transpose()?.unwrap_or(0);
        return secs
            .checked_mul(1_000_000_000)
            .and_then(|n| n.checked_add(frac))
            .ok_or_else(|| "too far in the future".into());
    }
    let shape = "expected YYYY-MM-DDTHH:MM:SSZ (UTC) or Unix seconds";
    let rest = s.strip_suffix('Z').ok_or(shape)?;
    let (date, time) = rest.split_once('T').ok_or(shape)?;
    let (time, frac) = split_fraction(time);
    let num = |p: Option<&str>, n: usize| -> Result<u32, String> {
        p.filter(|p| p.len() == n && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| shape.to_owned())
    };
    let mut d = date.split('-');
    let (y, mo, da) = (num(d.next(), 4)?, num(d.next(), 2)?, num(d.next(), 2)?);
    let mut t = time.split(':');
    let (h, mi, se) = (num(t.next(), 2)?, num(t.next(), 2)?, num(t.next(), 2)?);
    if d.next().is_some() || t.next().is_some() {
        return Err(shape.into());
    }
    let days_in = [
        31,
        28 + u32::from(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)),
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo)
        || da == 0
        || da > days_in[mo as usize - 1]
        || h > 23
        || mi > 59
        || se > 59
    {
        return Err("not a valid date and time".into());
    }
    let days = days_from_civil(y as i64, mo, da);
    if days < 0 {
        return Err("before 1970".into());
    }
    let frac = frac.map(frac_ns).transpose()?.unwrap_or(0);
    Ok(
        (days as u64 * 86_400 + u64::from(h) * 3600 + u64::from(mi) * 60 + u64::from(se))
            * 1_000_000_000
            + frac,
    )
}

/// `12.5` → (`12`, Some(`5`)); `12` → (`12`, None).
fn split_fraction(s: &str) -> (&str, Option<&str>) {
    match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    }
}

/// `ritma case show`.
fn show(dir: &Path, node: Option<&str>, case: Option<&str>, json: bool) -> Result<()> {
    let (root, _) = node_root(dir, node)?;
    let ids = match case {
        Some(c) => vec![c.to_owned()],
        None => case_ids(&root)?,
    };
    let mut cases = Vec::new();
    for id in &ids {
        cases.push(read_manifest(&root, id)?.1);
    }
    if json {
        let v: Vec<_> = cases.iter().map(case_json).collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    if case.is_none() {
        for m in &cases {
            println!(
                "{}  {}  {} windows  {}",
                m.case,
                m.state.name(),
                count(&m.windows),
                m.title
            );
        }
        if cases.is_empty() {
            println!("no cases ({})", root.join("cases").display());
        }
        return Ok(());
    }
    let m = &cases[0];
    println!("case {} of node {}: {}", m.case, m.node, m.state.name());
    println!("title: {}", m.title);
    println!(
        "unfreeze needs {} of: {}",
        m.approvals_needed,
        m.approvers
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "windows: {} in {} ranges",
        count(&m.windows),
        m.windows.len()
    );
    for (a, b) in &m.windows {
        println!("  {a}..={b}");
    }
    println!("access log:");
    for (i, e) in m.log.iter().enumerate() {
        println!(
            "  {i:>3} {} {} {} {}",
            utc(e.wall_ns as i128),
            e.user,
            e.action.name(),
            e.detail
        );
    }
    Ok(())
}

fn case_json(m: &CaseManifest) -> serde_json::Value {
    serde_json::json!({
        "case": m.case,
        "node": m.node,
        "title": m.title,
        "state": m.state.name(),
        "approvers": m.approvers.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "approvals_needed": m.approvals_needed,
        "windows": m.windows.iter().map(|(a, b)| [a, b]).collect::<Vec<_>>(),
        "window_count": count(&m.windows),
        "log": m.log.iter().map(|e| serde_json::json!({
            "time": utc(e.wall_ns as i128),
            "user": e.user,
            "action": e.action.name(),
            "detail": e.detail,
            "approvals": e.approvals.len(),
        })).collect::<Vec<_>>(),
        "log_size": m.log_size,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_parse_as_utc_or_unix_seconds() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_time("2026-11-01T00:00:01Z"),
            Ok(1_793_491_201_000_000_000)
        );
        assert_eq!(
            parse_time("2026-11-01T00:00:01.25Z"),
            Ok(1_793_491_201_250_000_000)
        );
        assert_eq!(parse_time("1793491201"), Ok(1_793_491_201_000_000_000));
        assert_eq!(parse_time("1793491201.5"), Ok(1_793_491_201_500_000_000));
        for bad in [
            "2026-02-29T00:00:00Z",
            "2026-11-01T24:00:00Z",
            "2026-11-01T00:00:00",
            "2026-11-01 00:00:00Z",
            "2026-11-01T00:00:00.Z",
            "1.",
            "",
            "2026-11-01T00:00:00+01:00",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
