//! Cases: an investigation's windows, their freeze against retention, and its access
//! log, in one signed record (FORMAT.md §3.13, §8.9).

use crate::cbor::{DecodeError, DecodeErrorKind, Decoder, Encoder};
use crate::note::NoteVerifier;
use crate::records::{invalid, node_name, Record};

/// Largest encoded CaseManifest: its access log grows with every action.
pub const MAX_CASE_LEN: usize = 16 << 20;
/// Most approver keys a case names.
pub const MAX_APPROVERS: usize = 32;
/// Most window ranges a case names.
pub const MAX_CASE_RANGES: u64 = 1 << 20;
/// Most access-log entries.
pub const MAX_CASE_ENTRIES: u64 = 1 << 16;
const MAX_TITLE: u64 = 1024;
const MAX_USER: u64 = 256;
const MAX_DETAIL: u64 = 4096;
const MAX_APPROVAL: u64 = 4096;

/// 1-64 of A-Z a-z 0-9 . _ -, not starting with `.` (the directory is `CASE_<id>`).
pub fn is_valid_case_id(s: &str) -> bool {
    crate::records::is_valid_node_name(s)
}

/// Where a case stands: only an open case takes windows, only a frozen one holds them
/// against retention, and a closed one changes no more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CaseState {
    Open = 0,
    Frozen = 1,
    Closed = 2,
}

impl CaseState {
    pub fn name(self) -> &'static str {
        match self {
            CaseState::Open => "open",
            CaseState::Frozen => "frozen",
            CaseState::Closed => "closed",
        }
    }
}

/// What an access-log entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CaseAction {
    Open = 0,
    Add = 1,
    Freeze = 2,
    Unfreeze = 3,
    Export = 4,
    Close = 5,
}

impl CaseAction {
    const ALL: [CaseAction; 6] = [
        CaseAction::Open,
        CaseAction::Add,
        CaseAction::Freeze,
        CaseAction::Unfreeze,
        CaseAction::Export,
        CaseAction::Close,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CaseAction::Open => "open",
            CaseAction::Add => "add",
            CaseAction::Freeze => "freeze",
            CaseAction::Unfreeze => "unfreeze",
            CaseAction::Export => "export",
            CaseAction::Close => "close",
        }
    }

    /// The state after this action from `state`, or why it cannot be taken there.
    pub fn next_state(self, state: Option<CaseState>) -> Result<CaseState, &'static str> {
        use CaseState::*;
        match (self, state) {
            (CaseAction::Open, None) => Ok(Open),
            (CaseAction::Open, Some(_)) => Err("the case is already open"),
            (_, None) => Err("the case's first action must be open"),
            // A closed case can still be handed over.
            (CaseAction::Export, Some(s)) => Ok(s),
            (_, Some(Closed)) => Err("the case is closed"),
            (CaseAction::Add, Some(s)) => Ok(s),
            (CaseAction::Freeze, Some(Open)) => Ok(Frozen),
            (CaseAction::Freeze, Some(_)) => Err("the case is already frozen"),
            (CaseAction::Unfreeze, Some(Frozen)) => Ok(Open),
            (CaseAction::Unfreeze, Some(_)) => Err("the case is not frozen"),
            (CaseAction::Close, Some(Open)) => Ok(Closed),
            (CaseAction::Close, Some(_)) => Err("a frozen case must be unfrozen before it closes"),
        }
    }
}

/// One access-log entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CaseEntry {
    pub wall_ns: u64,
    /// Who acted (the invoking user's name).
    pub user: String,
    pub action: CaseAction,
    /// What was done: the selection added, the export's destination, the reason.
    pub detail: String,
    /// Unfreeze only: the approvers' signed notes over [`unfreeze_request`].
    pub approvals: Vec<String>,
}

/// A case: its approvers, state, windows and access log (FORMAT.md §3.13). Stored
/// as the body of a SignedRecord at `cases/CASE_<id>/manifest.cbor`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CaseManifest {
    pub node: String,
    pub case: String,
    pub title: String,
    /// Signed-note keys whose approvals an unfreeze needs, in the order given.
    pub approvers: Vec<(String, [u8; 32])>,
    /// Distinct approvers an unfreeze needs (1 ≤ M ≤ approvers).
    pub approvals_needed: u64,
    pub state: CaseState,
    /// The case's windows as sorted, disjoint, non-adjacent inclusive ranges.
    pub windows: Vec<(u64, u64)>,
    /// Every action taken on the case, in order; the first is its opening.
    pub log: Vec<CaseEntry>,
    /// Node-log size when the manifest was signed; the signing key is valid at it.
    pub log_size: u64,
}

/// The note body an approver signs to allow the unfreeze that will be entry `entry`
/// of the case's access log (FORMAT.md §8.9).
pub fn unfreeze_request(node: &str, case: &str, entry: u64) -> String {
    format!("ritma case unfreeze\nnode {node}\ncase {case}\nentry {entry}\n")
}

impl CaseManifest {
    pub fn approver_keys(&self) -> Vec<NoteVerifier> {
        self.approvers
            .iter()
            .filter_map(|(name, key)| NoteVerifier::new(name, *key).ok())
            .collect()
    }

    /// The approvers with a valid signature on the unfreeze request of `entry` in
    /// any of `notes` (each note's body must be that request).
    pub fn approvers_of(&self, entry: u64, notes: &[String]) -> Result<Vec<String>, String> {
        let want = unfreeze_request(&self.node, &self.case, entry);
        let keys = self.approver_keys();
        let mut who = Vec::new();
        for (i, note) in notes.iter().enumerate() {
            let parsed =
                crate::note::parse_note(note).map_err(|e| format!("approval {}: {e}", i + 1))?;
            if parsed.body != want {
                return Err(format!(
                    "approval {} is not of this request (case {}, entry {entry})",
                    i + 1,
                    self.case
                ));
            }
            let mut signed_by_one = false;
            for k in &keys {
                if parsed.signatures.iter().any(|s| s.name == k.name()) {
                    crate::note::verify_note(note, k)
                        .map_err(|e| format!("approval {}: {e}", i + 1))?;
                    signed_by_one = true;
                    if !who.contains(&k.name().to_owned()) {
                        who.push(k.name().to_owned());
                    }
                }
            }
            if !signed_by_one {
                return Err(format!(
                    "approval {} is signed by none of the case's approvers",
                    i + 1
                ));
            }
        }
        Ok(who)
    }

    /// Replays the access log: every action allowed where it was taken, every unfreeze
    /// approved by enough approvers, and the state it leads to this manifest's.
    pub fn check_log(&self) -> Result<(), String> {
        let mut state = None;
        for (i, e) in self.log.iter().enumerate() {
            state = Some(
                e.action
                    .next_state(state)
                    .map_err(|why| format!("entry {i} ({}): {why}", e.action.name()))?,
            );
            if e.action == CaseAction::Unfreeze {
                let who = self
                    .approvers_of(i as u64, &e.approvals)
                    .map_err(|why| format!("entry {i} (unfreeze): {why}"))?;
                if (who.len() as u64) < self.approvals_needed {
                    return Err(format!(
                        "entry {i} (unfreeze): approved by {} of the {} approvers needed",
                        who.len(),
                        self.approvals_needed
                    ));
                }
            }
        }
        if state != Some(self.state) {
            return Err(format!(
                "the access log leads to a case {}, the manifest says {}",
                state.map_or("never opened", CaseState::name),
                self.state.name()
            ));
        }
        Ok(())
    }

    /// True if window `w` is one of the case's.
    pub fn names_window(&self, w: u64) -> bool {
        let i = self.windows.partition_point(|&(_, last)| last < w);
        self.windows.get(i).is_some_and(|&(first, _)| first <= w)
    }

    /// True if any of windows `[first, last]` is one of the case's.
    pub fn names_any(&self, first: u64, last: u64) -> bool {
        let i = self.windows.partition_point(|&(_, l)| l < first);
        self.windows.get(i).is_some_and(|&(f, _)| f <= last)
    }
}

/// Sorted, merged ranges of the union of `ranges`.
pub fn merge_ranges(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some((_, last)) if a <= last.saturating_add(1) => *last = (*last).max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn case_id(d: &mut Decoder<'_>) -> Result<String, DecodeError> {
    let at = d.position();
    let case = d.text("case", 64)?;
    if !is_valid_case_id(case) {
        let why = "case id must be 1-64 of A-Z a-z 0-9 . _ - and not start with .";
        return Err(d.error_at("case", at, DecodeErrorKind::Invalid(why)));
    }
    Ok(case.to_owned())
}

fn enum_value<T: Copy>(
    d: &mut Decoder<'_>,
    field: &'static str,
    all: &[T],
) -> Result<T, DecodeError> {
    let at = d.position();
    let v = d.uint(field)?;
    all.get(v as usize)
        .copied()
        .ok_or_else(|| d.error_at(field, at, DecodeErrorKind::Invalid("unknown value")))
}

impl Record for CaseManifest {
    const TYPE: u64 = 22;
    const VERSION: u64 = 1;
    const NAME: &'static str = "CaseManifest";
    const FIELDS: u64 = 11;
    const MAX_LEN: usize = MAX_CASE_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.node)
            .text(&self.case)
            .text(&self.title)
            .array(self.approvers.len() as u64);
        for (name, key) in &self.approvers {
            e.array(2).text(name).bytes(key);
        }
        e.uint(self.approvals_needed)
            .uint(self.state as u64)
            .array(self.windows.len() as u64);
        for (a, b) in &self.windows {
            e.array(2).uint(*a).uint(*b);
        }
        e.array(self.log.len() as u64);
        for x in &self.log {
            e.array(5)
                .uint(x.wall_ns)
                .text(&x.user)
                .uint(x.action as u64)
                .text(&x.detail)
                .array(x.approvals.len() as u64);
            for a in &x.approvals {
                e.text(a);
            }
        }
        e.uint(self.log_size);
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let node = node_name(d)?;
        let case = case_id(d)?;
        let title = d.text("title", MAX_TITLE)?.to_owned();
        let n = d.array("approvers", MAX_APPROVERS as u64)?;
        let mut approvers: Vec<(String, [u8; 32])> = Vec::with_capacity(n as usize);
        for _ in 0..n {
            d.array_exact("approvers", 2)?;
            let at = d.position();
            let name = d.text("approvers.name", 256)?.to_owned();
            let key: [u8; 32] = d.fixed("approvers.key")?;
            if NoteVerifier::new(&name, key).is_err() || approvers.iter().any(|(n, _)| *n == name) {
                let why = "not a signed-note key name, or named twice";
                return Err(d.error_at("approvers.name", at, DecodeErrorKind::Invalid(why)));
            }
            approvers.push((name, key));
        }
        let approvals_needed = d.uint("approvals_needed")?;
        if approvals_needed == 0 || approvals_needed > n {
            return Err(invalid(
                d,
                "approvals_needed",
                "must be between 1 and the number of approvers",
            ));
        }
        let state = enum_value(
            d,
            "state",
            &[CaseState::Open, CaseState::Frozen, CaseState::Closed],
        )?;
        let n = d.array("windows", MAX_CASE_RANGES)?;
        let mut windows: Vec<(u64, u64)> = Vec::with_capacity(n.min(4096) as usize);
        for _ in 0..n {
            d.array_exact("windows", 2)?;
            let (a, b) = (d.uint("windows.first")?, d.uint("windows.last")?);
            let apart = windows
                .last()
                .is_none_or(|&(_, last)| last.checked_add(1).is_some_and(|next| a > next));
            if a > b || !apart {
                return Err(invalid(
                    d,
                    "windows",
                    "ranges must be ascending, disjoint and not adjacent",
                ));
            }
            windows.push((a, b));
        }
        let n = d.array("log", MAX_CASE_ENTRIES)?;
        if n == 0 {
            return Err(invalid(d, "log", "the access log starts with the opening"));
        }
        let mut log = Vec::with_capacity(n.min(4096) as usize);
        for _ in 0..n {
            d.array_exact("log", 5)?;
            let wall_ns = d.uint("log.wall_ns")?;
            let user = d.text("log.user", MAX_USER)?.to_owned();
            let action = enum_value(d, "log.action", &CaseAction::ALL)?;
            let detail = d.text("log.detail", MAX_DETAIL)?.to_owned();
            let k = d.array("log.approvals", MAX_APPROVERS as u64)?;
            if (k > 0) != (action == CaseAction::Unfreeze) {
                return Err(invalid(
                    d,
                    "log.approvals",
                    "approvals exactly on an unfreeze",
                ));
            }
            let approvals = (0..k)
                .map(|_| d.text("log.approvals", MAX_APPROVAL).map(str::to_owned))
                .collect::<Result<_, _>>()?;
            log.push(CaseEntry {
                wall_ns,
                user,
                action,
                detail,
                approvals,
            });
        }
        let log_size = d.uint("log_size")?;
        Ok(CaseManifest {
            node,
            case,
            title,
            approvers,
            approvals_needed,
            state,
            windows,
            log,
            log_size,
        })
    }
}

/// A case export bundle's signed description (FORMAT.md §3.14, §8.10): the checkpoint it
/// is proven under and the node-log subtrees between the case's windows. Stored as the body
/// of a SignedRecord at `bundle.cbor` in the bundle.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CaseExport {
    pub node: String,
    pub case: String,
    /// The node-log leaf of the first window of each of the case's window ranges, in
    /// order: a range's windows are consecutive leaves from there.
    pub first_leaves: Vec<u64>,
    /// The size of the checkpoint (`checkpoint.sig`) the bundle is proven under.
    pub log_size: u64,
    /// The leaf ranges not exported, as (first leaf, leaves, roots of
    /// `merkle::aligned_ranges(first leaf, leaves)`), ascending and disjoint.
    pub gaps: Vec<(u64, u64, Vec<crate::Hash32>)>,
    pub exported_wall_ns: u64,
    /// BLAKE3 of the bundle's `case.cbor`.
    pub manifest: crate::Hash32,
}

impl Record for CaseExport {
    const TYPE: u64 = 23;
    const VERSION: u64 = 2;
    const NAME: &'static str = "CaseExport";
    const FIELDS: u64 = 9;
    const MAX_LEN: usize = MAX_CASE_LEN;

    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.node)
            .text(&self.case)
            .array(self.first_leaves.len() as u64);
        for leaf in &self.first_leaves {
            e.uint(*leaf);
        }
        e.uint(self.log_size).array(self.gaps.len() as u64);
        for (start, len, roots) in &self.gaps {
            e.array(3).uint(*start).uint(*len).array(roots.len() as u64);
            for r in roots {
                e.bytes(r);
            }
        }
        e.uint(self.exported_wall_ns).bytes(&self.manifest);
    }

    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let node = node_name(d)?;
        let case = case_id(d)?;
        let n = d.array("first_leaves", MAX_CASE_RANGES)?;
        let mut first_leaves: Vec<u64> = Vec::with_capacity(n.min(4096) as usize);
        for _ in 0..n {
            let leaf = d.uint("first_leaves")?;
            if first_leaves.last().is_some_and(|l| leaf <= *l) {
                return Err(invalid(d, "first_leaves", "not strictly ascending"));
            }
            first_leaves.push(leaf);
        }
        let log_size = d.uint("log_size")?;
        if first_leaves.last().is_some_and(|l| *l >= log_size) {
            return Err(invalid(d, "first_leaves", "a leaf beyond the log"));
        }
        let n = d.array("gaps", MAX_CASE_RANGES + 1)?;
        let mut gaps: Vec<(u64, u64, Vec<crate::Hash32>)> =
            Vec::with_capacity(n.min(4096) as usize);
        for _ in 0..n {
            d.array_exact("gaps", 3)?;
            let (start, len) = (d.uint("gaps.start")?, d.uint("gaps.len")?);
            let after = gaps.last().map_or(0, |(s, l, _)| s + l);
            if len == 0 || start < after || start.checked_add(len).is_none_or(|end| end > log_size)
            {
                return Err(invalid(
                    d,
                    "gaps",
                    "gaps must be non-empty, ascending, disjoint and inside the log",
                ));
            }
            let want = crate::merkle::aligned_ranges(start, len).len() as u64;
            let k = d.array("gaps.roots", 128)?;
            if k != want {
                return Err(invalid(
                    d,
                    "gaps.roots",
                    "not one root per aligned subtree of the gap",
                ));
            }
            let roots = (0..k)
                .map(|_| d.fixed("gaps.roots"))
                .collect::<Result<_, _>>()?;
            gaps.push((start, len, roots));
        }
        let exported_wall_ns = d.uint("exported_wall_ns")?;
        let manifest = d.fixed("manifest")?;
        Ok(CaseExport {
            node,
            case,
            first_leaves,
            log_size,
            gaps,
            exported_wall_ns,
            manifest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::NoteSigner;

    fn approver(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::from_seed(name, [seed; 32]).unwrap()
    }

    fn manifest(approvers: &[&NoteSigner], m: u64) -> CaseManifest {
        CaseManifest {
            node: "web-1".into(),
            case: "IR-7".into(),
            title: "t".into(),
            approvers: approvers
                .iter()
                .map(|s| (s.name().to_owned(), s.verifier().public_key()))
                .collect(),
            approvals_needed: m,
            state: CaseState::Open,
            windows: vec![(3, 5), (9, 9)],
            log: vec![entry(CaseAction::Open, vec![])],
            log_size: 12,
        }
    }

    fn entry(action: CaseAction, approvals: Vec<String>) -> CaseEntry {
        CaseEntry {
            wall_ns: 1,
            user: "root".into(),
            action,
            detail: String::new(),
            approvals,
        }
    }

    #[test]
    fn round_trips_and_rejects_bad_ranges() {
        let a = approver("alice", 1);
        let m = manifest(&[&a], 1);
        let bytes = m.encode();
        assert_eq!(CaseManifest::decode(&bytes).unwrap(), m);
        for windows in [vec![(3, 5), (6, 7)], vec![(5, 3)], vec![(9, 9), (3, 5)]] {
            let bad = CaseManifest {
                windows,
                ..m.clone()
            };
            assert!(CaseManifest::decode(&bad.encode()).is_err());
        }
        let none_needed = CaseManifest {
            approvals_needed: 0,
            ..m.clone()
        };
        assert!(CaseManifest::decode(&none_needed.encode()).is_err());
        let stray_approval = CaseManifest {
            log: vec![entry(CaseAction::Open, vec!["x".into()])],
            ..m
        };
        assert!(CaseManifest::decode(&stray_approval.encode()).is_err());
    }

    #[test]
    fn ranges_merge_and_answer_membership() {
        let r = merge_ranges(vec![(9, 9), (3, 4), (5, 5), (7, 8), (20, 30), (22, 25)]);
        assert_eq!(r, vec![(3, 5), (7, 9), (20, 30)]);
        let m = CaseManifest {
            windows: r,
            ..manifest(&[&approver("a", 1)], 1)
        };
        assert!(m.names_window(3) && m.names_window(8) && m.names_window(30));
        assert!(!m.names_window(6) && !m.names_window(2) && !m.names_window(31));
        assert!(m.names_any(0, 3) && m.names_any(6, 7) && !m.names_any(10, 19));
    }

    #[test]
    fn unfreeze_needs_m_distinct_approvers_over_the_exact_request() {
        let (a, b, c) = (
            approver("alice", 1),
            approver("bob", 2),
            approver("carol", 3),
        );
        let mut m = manifest(&[&a, &b, &c], 2);
        m.log.push(entry(CaseAction::Freeze, vec![]));
        m.state = CaseState::Frozen;
        m.check_log().unwrap();
        let req = unfreeze_request("web-1", "IR-7", 2);
        let sign = |s: &NoteSigner, body: &str| s.sign(body).unwrap();
        let unfreeze = |approvals: Vec<String>| {
            let mut m = m.clone();
            m.log.push(entry(CaseAction::Unfreeze, approvals));
            m.state = CaseState::Open;
            m.check_log()
        };
        unfreeze(vec![sign(&a, &req), sign(&c, &req)]).unwrap();
        // One approver twice is one approval.
        let err = unfreeze(vec![sign(&a, &req), sign(&a, &req)]).unwrap_err();
        assert!(err.contains("1 of the 2"), "{err}");
        // An approval of another entry (an earlier unfreeze, say) does not count.
        let old = unfreeze_request("web-1", "IR-7", 1);
        assert!(unfreeze(vec![sign(&a, &req), sign(&b, &old)]).is_err());
        // A key that is not the case's approver's does not count.
        let mallory = approver("bob", 9);
        assert!(unfreeze(vec![sign(&a, &req), sign(&mallory, &req)]).is_err());
        // The state must follow the log.
        let mut wrong = m.clone();
        wrong.state = CaseState::Open;
        assert!(wrong.check_log().is_err());
    }

    #[test]
    fn actions_follow_the_states() {
        use CaseAction::*;
        assert!(Close.next_state(Some(CaseState::Frozen)).is_err());
        assert!(Add.next_state(Some(CaseState::Closed)).is_err());
        assert!(Freeze.next_state(Some(CaseState::Frozen)).is_err());
        assert_eq!(
            Unfreeze.next_state(Some(CaseState::Frozen)),
            Ok(CaseState::Open)
        );
        assert!(Add.next_state(None).is_err());
    }
}
