//! cone-match: declarative behaviour templates ("cones") matched against a node's
//! canonical events in seq order. A cone is a short sequence of steps within a time
//! bound; placeholders (`$name`) bind an actor or an object on first use and must
//! match afterwards. A completed match becomes a `ConeInstance` sealed in the window
//! where it completed. Partial matches are bounded in number and expire.
//!
//! Cone files (FORMAT.md §10), one cone per file:
//!
//! ```text
//! # a comment
//! cone download_exec_tmp 1
//! within 30s
//! step open flags=write path^=/tmp/ path^=/dev/shm/ object=$f
//! step exec object=$f actor=$x
//! step connect actor=$x
//! ```
//!
//! Step conditions: `actor=$v`, `object=$v` (bind or match), `path^=P` (object value
//! starts with P) and `path~=S` (contains S) — path conditions are alternatives, at least
//! one must hold — `flags=write|read|create`
//! (all listed), `request=N` (ptrace request), `euid=N` (effective uid after a set*uid),
//! `uid!=N` (uid before the event).

use crate::canonicalize::{CanonicalEvent, Detail};
use ritma_schemas::records::{atom_flags, ConeInstance, EventType};
use ritma_schemas::state::PartialEntry;
use ritma_schemas::Id128;
use std::collections::VecDeque;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{file} line {line}: {reason}")]
pub struct ConeParseError {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

/// One condition of a step.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Cond {
    Actor(usize),
    Object(usize),
    PathPrefix(Vec<u8>),
    PathContains(Vec<u8>),
    ExePrefix(Vec<u8>),
    ExeContains(Vec<u8>),
    Flags(u32),
    /// Any of these ptrace requests.
    Request(Vec<u64>),
    Euid(u32),
    UidNot(u32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Step {
    event: EventType,
    conds: Vec<Cond>,
}

/// A trigger that needs per-process state the step language cannot express; it runs in
/// the attribute stage (crate::triggers), where each process's events arrive in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detector {
    /// The effective uid becomes 0 on an event that is neither an exec nor a set*uid
    /// call (a kernel exploit's credential overwrite).
    Uid0WithoutSetuidExec,
    /// One process tries to connect to at least this many destinations (address and
    /// port) in one window.
    EgressSpike { destinations: u32 },
    /// An exec of a binary whose content hash is not in the sensor's baseline of known
    /// binaries (the capture side decides, and records it in the trace).
    UnknownBinary,
}

/// A parsed cone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConeDef {
    pub id: String,
    pub version: u32,
    pub within_ns: u64,
    /// Placeholder names, in order of first use.
    vars: Vec<String>,
    steps: Vec<Step>,
    /// A built-in detector in place of steps.
    pub detector: Option<Detector>,
}

fn event_type(name: &str) -> Option<EventType> {
    // Present is the sensor's start-up snapshot, not something a step can match.
    EventType::ALL
        .iter()
        .copied()
        .find(|t| *t != EventType::Present && t.name() == name)
}

fn duration_ns(s: &str) -> Option<u64> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = n.parse().ok()?;
    n.checked_mul(match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        _ => return None,
    })
}

impl ConeDef {
    /// Parses one cone file.
    pub fn parse(file: &str, text: &str) -> Result<Self, ConeParseError> {
        let err = |line: usize, reason: String| ConeParseError {
            file: file.to_owned(),
            line,
            reason,
        };
        let mut def: Option<ConeDef> = None;
        let mut within = None;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            match words.next() {
                Some("cone") => {
                    let (Some(id), Some(v), None) = (words.next(), words.next(), words.next())
                    else {
                        return Err(err(n, "expected `cone ID VERSION`".into()));
                    };
                    if def.is_some() {
                        return Err(err(n, "one cone per file".into()));
                    }
                    if id.is_empty()
                        || id.len() > 64
                        || !id
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    {
                        return Err(err(n, format!("cone id `{id}` must be 1-64 of a-z 0-9 _")));
                    }
                    let version = v
                        .parse()
                        .map_err(|_| err(n, format!("bad version `{v}`")))?;
                    def = Some(ConeDef {
                        id: id.into(),
                        version,
                        within_ns: 0,
                        vars: Vec::new(),
                        steps: Vec::new(),
                        detector: None,
                    });
                }
                Some("within") => {
                    let d = words
                        .next()
                        .and_then(duration_ns)
                        .ok_or_else(|| err(n, "expected `within DURATION` (ms, s or m)".into()))?;
                    within = Some(d);
                }
                Some("detector") => {
                    let Some(def) = def.as_mut() else {
                        return Err(err(n, "`detector` before `cone`".into()));
                    };
                    let d = match (words.next(), words.next(), words.next()) {
                        (Some("uid0_without_setuid_exec"), None, None) => {
                            Detector::Uid0WithoutSetuidExec
                        }
                        (Some("unknown_binary"), None, None) => Detector::UnknownBinary,
                        (Some("egress_spike"), Some(k), None) => Detector::EgressSpike {
                            destinations: k.parse().ok().filter(|&k| k > 0).ok_or_else(|| {
                                err(n, format!("bad destination count `{k}`"))
                            })?,
                        },
                        _ => {
                            return Err(err(
                                n,
                                "expected `detector uid0_without_setuid_exec`, `detector unknown_binary` or `detector egress_spike N`".into(),
                            ))
                        }
                    };
                    if def.detector.replace(d).is_some() {
                        return Err(err(n, "one detector per cone".into()));
                    }
                }
                Some("step") => {
                    let Some(def) = def.as_mut() else {
                        return Err(err(n, "`step` before `cone`".into()));
                    };
                    let name = words.next().unwrap_or("");
                    let event = event_type(name)
                        .ok_or_else(|| err(n, format!("unknown event type `{name}`")))?;
                    let mut conds = Vec::new();
                    for w in words {
                        let var =
                            |def: &mut ConeDef, v: &str| -> Result<usize, ConeParseError> {
                                let v = v.strip_prefix('$').filter(|v| !v.is_empty()).ok_or_else(
                                    || err(n, format!("`{w}`: a placeholder starts with $")),
                                )?;
                                Ok(match def.vars.iter().position(|x| x == v) {
                                    Some(i) => i,
                                    None => {
                                        def.vars.push(v.into());
                                        def.vars.len() - 1
                                    }
                                })
                            };
                        let c = if let Some(v) = w.strip_prefix("actor=") {
                            Cond::Actor(var(def, v)?)
                        } else if let Some(v) = w.strip_prefix("object=") {
                            Cond::Object(var(def, v)?)
                        } else if let Some(p) = w.strip_prefix("path^=") {
                            Cond::PathPrefix(p.as_bytes().to_vec())
                        } else if let Some(p) = w.strip_prefix("path~=") {
                            Cond::PathContains(p.as_bytes().to_vec())
                        } else if let Some(p) = w.strip_prefix("exe^=") {
                            Cond::ExePrefix(p.as_bytes().to_vec())
                        } else if let Some(p) = w.strip_prefix("exe~=") {
                            Cond::ExeContains(p.as_bytes().to_vec())
                        } else if let Some(f) = w.strip_prefix("flags=") {
                            let mut bits = 0;
                            for f in f.split('|') {
                                bits |= match f {
                                    "read" => atom_flags::READ,
                                    "write" => atom_flags::WRITE,
                                    "create" => atom_flags::CREATE,
                                    "truncate" => atom_flags::TRUNCATE,
                                    "stdio_net" => atom_flags::STDIO_NET,
                                    _ => return Err(err(n, format!("unknown flag `{f}`"))),
                                };
                            }
                            Cond::Flags(bits)
                        } else if let Some(r) = w.strip_prefix("request=") {
                            Cond::Request(
                                r.split('|')
                                    .map(|r| r.parse())
                                    .collect::<Result<_, _>>()
                                    .map_err(|_| err(n, format!("bad request `{r}`")))?,
                            )
                        } else if let Some(u) = w.strip_prefix("euid=") {
                            Cond::Euid(u.parse().map_err(|_| err(n, format!("bad uid `{u}`")))?)
                        } else if let Some(u) = w.strip_prefix("uid!=") {
                            Cond::UidNot(u.parse().map_err(|_| err(n, format!("bad uid `{u}`")))?)
                        } else {
                            return Err(err(n, format!("unknown condition `{w}`")));
                        };
                        conds.push(c);
                    }
                    def.steps.push(Step { event, conds });
                }
                Some(other) => return Err(err(n, format!("unknown keyword `{other}`"))),
                None => {}
            }
        }
        let mut def = def.ok_or_else(|| err(0, "no `cone` line".into()))?;
        if def.detector.is_some() {
            if !def.steps.is_empty() || within.is_some() {
                return Err(err(
                    0,
                    "a detector cone has no `within` and no steps".into(),
                ));
            }
            return Ok(def);
        }
        if def.steps.is_empty() {
            return Err(err(0, "a cone needs at least one step".into()));
        }
        if def.vars.len() > ritma_schemas::records::MAX_CONE_BINDINGS {
            return Err(err(0, "too many placeholders".into()));
        }
        def.within_ns = within.ok_or_else(|| err(0, "missing `within`".into()))?;
        Ok(def)
    }
}

/// True if `needle` occurs in `hay` (an empty needle occurs everywhere).
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    // Compare only where the first byte matches.
    hay.iter()
        .enumerate()
        .take((hay.len() + 1).saturating_sub(needle.len()))
        .any(|(i, &b)| b == first && hay[i + 1..].starts_with(rest))
}

/// A match's placeholder values, inline: trying a step costs no allocation.
type Bindings = [Option<Id128>; ritma_schemas::records::MAX_CONE_BINDINGS];

/// A partial match.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Partial {
    cone: usize,
    next_step: usize,
    /// By placeholder number (`ConeDef::vars`); a cone has at most `MAX_CONE_BINDINGS`.
    bindings: Bindings,
    first_seq: u64,
    start_wall_ns: u64,
}

/// Counters reported with the matcher.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConeStats {
    pub expired: u64,
    /// Partial matches dropped because the bound was reached (oldest first).
    pub shed: u64,
}

/// One node's matcher over a cone library.
pub struct ConeMatcher {
    cones: Vec<ConeDef>,
    /// Each cone's partial matches in start order (by start time, then first seq): one
    /// time bound per cone, so the expired ones are always at the front.
    partials: Vec<VecDeque<Partial>>,
    /// Partial matches held, over all cones.
    held: usize,
    max_partials: usize,
    window_len_ns: u64,
    pub stats: ConeStats,
}

/// A completed match, before it is placed in its window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConeMatch {
    pub window: u64,
    pub instance: ConeInstance,
}

impl ConeMatcher {
    /// A matcher over the step cones of `cones` (detector cones run elsewhere).
    pub fn new(cones: Vec<ConeDef>, max_partials: usize, window_len_ns: u64) -> Self {
        let cones: Vec<ConeDef> = cones.into_iter().filter(|c| c.detector.is_none()).collect();
        ConeMatcher {
            partials: vec![VecDeque::new(); cones.len()],
            cones,
            held: 0,
            max_partials,
            window_len_ns,
            stats: ConeStats::default(),
        }
    }

    /// The partial matches held, for a saved state: by cone in library order, each
    /// cone's in start order.
    pub fn export(&self) -> Vec<PartialEntry> {
        self.partials
            .iter()
            .enumerate()
            .flat_map(|(i, ps)| {
                ps.iter().map(move |p| PartialEntry {
                    cone: self.cones[i].id.clone(),
                    next_step: p.next_step as u64,
                    bindings: p.bindings,
                    first_seq: p.first_seq,
                    start_wall_ns: p.start_wall_ns,
                })
            })
            .collect()
    }

    /// Puts back the partial matches of a saved state (`export`), replacing any held.
    /// Refuses a cone this library does not have, a step it does not have, or more
    /// partial matches than the bound.
    pub fn restore(&mut self, saved: Vec<PartialEntry>) -> Result<(), String> {
        for ps in &mut self.partials {
            ps.clear();
        }
        self.held = 0;
        if saved.len() > self.max_partials {
            return Err(format!(
                "{} partial cone matches, more than the {} a matcher holds",
                saved.len(),
                self.max_partials
            ));
        }
        for p in saved {
            let Some(i) = self.cones.iter().position(|c| c.id == p.cone) else {
                return Err(format!(
                    "a partial match of cone {}, which the cone library does not have",
                    p.cone
                ));
            };
            let steps = self.cones[i].steps.len() as u64;
            if p.next_step == 0 || p.next_step >= steps {
                return Err(format!(
                    "a partial match of cone {} at step {} of {steps}",
                    p.cone, p.next_step
                ));
            }
            self.partials[i].push_back(Partial {
                cone: i,
                next_step: p.next_step as usize,
                bindings: p.bindings,
                first_seq: p.first_seq,
                start_wall_ns: p.start_wall_ns,
            });
            self.held += 1;
        }
        Ok(())
    }

    fn step_matches(step: &Step, e: &CanonicalEvent, bindings: &mut [Option<Id128>]) -> bool {
        if e.atom.event_type != step.event || e.atom.flags & atom_flags::FAILED != 0 {
            return false;
        }
        // Looked up on the first path condition only: most steps have none.
        let mut object_value: Option<Option<&[u8]>> = None;
        let mut object_value = || {
            *object_value.get_or_insert_with(|| {
                e.dict
                    .iter()
                    .find(|d| d.id == e.atom.object)
                    .map(|d| d.value.as_slice())
            })
        };
        let mut prefix_seen = false;
        let mut prefix_ok = false;
        let mut exe_seen = false;
        let mut exe_ok = false;
        for c in &step.conds {
            let ok = match c {
                Cond::Actor(v) | Cond::Object(v) => {
                    let id = if matches!(c, Cond::Actor(_)) {
                        e.atom.actor
                    } else {
                        e.atom.object
                    };
                    match bindings[*v] {
                        Some(b) => b == id,
                        None => {
                            bindings[*v] = Some(id);
                            true
                        }
                    }
                }
                Cond::PathPrefix(p) => {
                    prefix_seen = true;
                    prefix_ok = prefix_ok || object_value().is_some_and(|v| v.starts_with(p));
                    true
                }
                Cond::PathContains(s) => {
                    prefix_seen = true;
                    prefix_ok = prefix_ok || object_value().is_some_and(|v| contains(v, s));
                    true
                }
                Cond::ExePrefix(p) | Cond::ExeContains(p) => {
                    exe_seen = true;
                    let exe = match &e.detail {
                        Detail::FdDup { exe } => Some(exe.as_slice()),
                        Detail::Exec { .. } | Detail::Present { .. } => object_value(),
                        _ => None,
                    };
                    exe_ok = exe_ok
                        || exe.is_some_and(|v| match c {
                            Cond::ExePrefix(_) => v.starts_with(p),
                            _ => contains(v, p),
                        });
                    true
                }
                Cond::Flags(bits) => e.atom.flags & bits == *bits,
                Cond::Request(r) => {
                    matches!(e.detail, Detail::PtraceTarget { request, .. } if r.contains(&request))
                }
                Cond::Euid(u) => {
                    matches!(e.detail, Detail::Credentials { euid: Some(x), .. } if x == *u)
                }
                Cond::UidNot(u) => e.task.uid != *u,
            };
            if !ok {
                return false;
            }
        }
        (!prefix_seen || prefix_ok) && (!exe_seen || exe_ok)
    }

    /// Whether `e` can take any step of any of `cones`. Bindings only ever add conditions,
    /// so an event no step accepts with fresh bindings changes nothing in a matcher but
    /// its clock: for it, [`ConeMatcher::push`] is [`ConeMatcher::expire`]. Lets the
    /// dataflow send the matcher a timestamp in place of such an event.
    pub fn could_match(cones: &[ConeDef], e: &CanonicalEvent) -> bool {
        cones.iter().any(|c| {
            c.steps.iter().any(|s| {
                let mut fresh: Bindings = [None; ritma_schemas::records::MAX_CONE_BINDINGS];
                Self::step_matches(s, e, &mut fresh)
            })
        })
    }

    /// Partial matches held, over all cones.
    pub fn partials(&self) -> usize {
        self.held
    }

    /// Drops the partial matches whose time bound has passed by `wall_ns` (from the front
    /// of each cone's queue: constant time when none has).
    pub fn expire(&mut self, wall_ns: u64) {
        for (queue, cone) in self.partials.iter_mut().zip(&self.cones) {
            while queue
                .front()
                .is_some_and(|p| wall_ns.saturating_sub(p.start_wall_ns) > cone.within_ns)
            {
                queue.pop_front();
                self.held -= 1;
                self.stats.expired += 1;
            }
        }
    }

    /// Holds `p` in its cone's queue at its place in start order, first dropping the
    /// oldest partial match of all when the bound is reached.
    fn hold(&mut self, p: Partial) {
        if self.held >= self.max_partials {
            let oldest = self
                .partials
                .iter()
                .enumerate()
                .filter_map(|(c, q)| q.front().map(|f| ((f.start_wall_ns, f.first_seq, c), c)))
                .min()
                .map(|(_, c)| c);
            if let Some(c) = oldest {
                self.partials[c].pop_front();
                self.held -= 1;
                self.stats.shed += 1;
            }
        }
        let queue = &mut self.partials[p.cone];
        let key = (p.start_wall_ns, p.first_seq);
        let at = queue.partition_point(|q| (q.start_wall_ns, q.first_seq) <= key);
        queue.insert(at, p);
        self.held += 1;
    }

    /// Feeds the node's next event (in seq order); returns the matches it completes.
    pub fn push(&mut self, e: &CanonicalEvent, wall_ns: u64) -> Vec<ConeMatch> {
        let mut done = Vec::new();
        self.expire(wall_ns);

        let mut advanced = Vec::new();
        for (queue, cone) in self.partials.iter_mut().zip(&self.cones) {
            // A cone none of whose later steps takes this event type holds nothing to advance.
            if !cone.steps[1..].iter().any(|s| s.event == e.atom.event_type) {
                continue;
            }
            let mut i = 0;
            while i < queue.len() {
                let p = &queue[i];
                let step = &cone.steps[p.next_step];
                // Cheap test first: most events are of another type than the step wants.
                if step.event != e.atom.event_type {
                    i += 1;
                    continue;
                }
                let mut b = p.bindings;
                if Self::step_matches(step, e, &mut b) {
                    let mut q = queue.remove(i).expect("index in range");
                    q.bindings = b;
                    q.next_step += 1;
                    advanced.push(q);
                    self.held -= 1;
                } else {
                    i += 1;
                }
            }
        }
        // A new match may start at any event (several instances of one cone may run).
        for (c, cone) in self.cones.iter().enumerate() {
            if cone.steps[0].event != e.atom.event_type {
                continue;
            }
            let mut b: Bindings = [None; ritma_schemas::records::MAX_CONE_BINDINGS];
            if Self::step_matches(&cone.steps[0], e, &mut b) {
                advanced.push(Partial {
                    cone: c,
                    next_step: 1,
                    bindings: b,
                    first_seq: e.atom.seq,
                    start_wall_ns: wall_ns,
                });
            }
        }
        for p in advanced {
            let cone = &self.cones[p.cone];
            if p.next_step == cone.steps.len() {
                let start = e.window as i128 * self.window_len_ns as i128;
                let mut bindings: Vec<(String, Id128)> = cone
                    .vars
                    .iter()
                    .zip(&p.bindings)
                    .filter_map(|(n, b)| b.map(|b| (n.clone(), b)))
                    .collect();
                bindings.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                done.push(ConeMatch {
                    window: e.window,
                    instance: ConeInstance {
                        cone_id: cone.id.clone(),
                        cone_version: cone.version,
                        t_start_ns: (p.start_wall_ns as i128 - start)
                            .clamp(i64::MIN as i128, i64::MAX as i128)
                            as i64,
                        first_seq: p.first_seq,
                        last_seq: e.atom.seq,
                        count: 1,
                        bindings,
                        exceptions: Vec::new(),
                    },
                });
            } else {
                self.hold(p);
            }
        }
        done
    }
}

/// Parses the library new windows are matched with (`cone_library::CURRENT`).
pub fn builtin_cones() -> Vec<ConeDef> {
    ritma_schemas::cone_library::library(ritma_schemas::cone_library::CURRENT)
        .expect("this build knows its current library")
        .into_iter()
        .map(|(f, t)| ConeDef::parse(f, t).expect("built-in cones parse"))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::canonicalize::{canonicalize, RunContext};
    use ritma_sources::raw::{IdCall, RawBody, RawEvent, SockAddr, Task};

    #[test]
    fn contains_finds_every_occurrence_a_naive_scan_finds() {
        let hay = b"/tmp/.x/tmp/aab/.ssh/id_rsa";
        for len in 0..6 {
            for start in 0..=hay.len() - len {
                let needle = &hay[start..start + len];
                assert!(contains(hay, needle), "{needle:?}");
            }
        }
        for needle in [&b"/tmp/x"[..], b"aaab", b"id_rsa.", b"/.sshx"] {
            let naive = hay.windows(needle.len()).any(|w| w == needle);
            assert_eq!(contains(hay, needle), naive, "{needle:?}");
            assert!(!naive);
        }
        assert!(!contains(b"", b"a"));
        assert!(!contains(b"ab", b"abc"));
        assert!(contains(b"", b""));
    }

    fn ctx() -> RunContext {
        RunContext {
            node: "n".into(),
            boot_id: [0; 16],
            window_len_ns: 1_000_000_000,
            wall_minus_mono_ns: 0,
        }
    }

    /// An event of process `pid` (uid and euid `uid`) at `t_ms`, and its wall time.
    pub(crate) fn ev(
        seq: u64,
        t_ms: u64,
        pid: u32,
        uid: u32,
        body: RawBody,
    ) -> (CanonicalEvent, u64) {
        let c = ctx();
        let task = Task {
            pid,
            start_ns: pid as u64,
            uid,
            euid: uid,
            ..Task::default()
        };
        let mono = t_ms * 1_000_000;
        (
            canonicalize(
                &c,
                c.window_of(mono),
                RawEvent {
                    seq,
                    mono_ns: mono,
                    task,
                    body,
                },
            ),
            mono,
        )
    }

    fn run(events: Vec<(CanonicalEvent, u64)>) -> Vec<ConeMatch> {
        let mut m = ConeMatcher::new(builtin_cones(), 1000, 1_000_000_000);
        events.iter().flat_map(|(e, t)| m.push(e, *t)).collect()
    }

    fn open(path: &str, flags: u32) -> RawBody {
        RawBody::Open {
            path: path.as_bytes().to_vec(),
            flags,
            mode: 0,
            result: 3,
            given: None,
        }
    }

    fn exec(path: &str) -> RawBody {
        RawBody::Exec {
            filename: path.as_bytes().to_vec(),
            argv: vec![],
            argv_truncated: false,
            exe_dev: 0,
            exe_ino: 0,
            given: None,
            stdio_net: 0,
        }
    }

    fn connect() -> RawBody {
        RawBody::Connect {
            addr: SockAddr::V4 {
                addr: [203, 0, 113, 9],
                port: 4444,
            },
            result: 0,
        }
    }

    #[test]
    fn an_event_no_step_accepts_only_moves_the_clock() {
        // A mix of attack steps and benign events, some of them past the time bounds.
        let bodies = [
            open("/tmp/.x", 0o1101),
            open("/usr/lib/libc.so.6", 0),
            exec("/tmp/.x"),
            connect(),
            open("/etc/shadow", 0),
            open("/home/u/notes.txt", 0o1101),
            exec("/usr/bin/ls"),
            RawBody::Exit { code: 0 },
        ];
        let mut x = 7u64;
        let events: Vec<(CanonicalEvent, u64)> = (0..2000u64)
            .map(|seq| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let body = bodies[(x >> 33) as usize % bodies.len()].clone();
                ev(seq, seq * 97, 10 + (x >> 40) as u32 % 4, 1000, body)
            })
            .collect();
        let cones = builtin_cones();
        let mut all = ConeMatcher::new(cones.clone(), 8, 1_000_000_000);
        let mut filtered = ConeMatcher::new(cones.clone(), 8, 1_000_000_000);
        let (mut a, mut b, mut skipped) = (Vec::new(), Vec::new(), 0);
        for (e, t) in &events {
            a.extend(all.push(e, *t));
            if ConeMatcher::could_match(&cones, e) {
                b.extend(filtered.push(e, *t));
            } else {
                skipped += 1;
                filtered.expire(*t);
            }
        }
        assert!(
            !a.is_empty() && skipped > 400,
            "{} matches, {skipped} skipped",
            a.len()
        );
        assert_eq!(a, b);
        assert_eq!(all.stats, filtered.stats);
        assert_eq!(all.partials, filtered.partials);
    }

    #[test]
    fn the_builtin_library_parses_and_has_at_least_eight_cones() {
        let cones = builtin_cones();
        assert!(cones.len() >= 8);
        let mut ids: Vec<_> = cones.iter().map(|c| c.id.clone()).collect();
        ids.dedup();
        assert_eq!(ids.len(), cones.len());
    }

    #[test]
    fn download_then_exec_then_connect_matches_across_processes() {
        let m = run(vec![
            ev(1, 100, 10, 1000, open("/tmp/.x", 0o1101)),
            ev(2, 200, 11, 1000, exec("/tmp/.x")),
            ev(3, 300, 11, 1000, connect()),
        ]);
        let ids: Vec<_> = m.iter().map(|m| m.instance.cone_id.as_str()).collect();
        assert!(
            ids.contains(&"download_exec_tmp") && ids.contains(&"exec_from_tmp"),
            "{ids:?}"
        );
        let d = m
            .iter()
            .find(|m| m.instance.cone_id == "download_exec_tmp")
            .unwrap();
        assert_eq!(
            (
                d.instance.first_seq,
                d.instance.last_seq,
                d.instance.t_start_ns
            ),
            (1, 3, 100_000_000)
        );
        assert_eq!(
            d.instance
                .bindings
                .iter()
                .map(|b| b.0.as_str())
                .collect::<Vec<_>>(),
            vec!["f", "x"]
        );
    }

    #[test]
    fn steps_must_bind_consistently_and_within_the_time_bound() {
        // Another file executed: no download-exec.
        let m = run(vec![
            ev(1, 100, 10, 1000, open("/tmp/a", 0o1101)),
            ev(2, 200, 11, 1000, exec("/tmp/b")),
            ev(3, 300, 11, 1000, connect()),
        ]);
        assert!(!m.iter().any(|m| m.instance.cone_id == "download_exec_tmp"));
        // Too late: the exec comes 40 s after the write.
        let m = run(vec![
            ev(1, 100, 10, 1000, open("/tmp/.x", 0o1101)),
            ev(2, 40_100, 11, 1000, exec("/tmp/.x")),
            ev(3, 40_200, 11, 1000, connect()),
        ]);
        assert!(!m.iter().any(|m| m.instance.cone_id == "download_exec_tmp"));
    }

    #[test]
    fn single_step_cones_fire_and_benign_events_do_not() {
        let cases: Vec<((CanonicalEvent, u64), &str)> = vec![
            (
                ev(
                    1,
                    0,
                    5,
                    1000,
                    RawBody::SetUid {
                        call: IdCall::Set,
                        ids: [0, 0, 0],
                        result: 0,
                    },
                ),
                "priv_esc_setuid",
            ),
            (
                ev(1, 0, 5, 0, open("/etc/cron.d/x", 0o1101)),
                "persistence_write",
            ),
            (
                ev(
                    1,
                    0,
                    5,
                    0,
                    RawBody::ModuleLoad {
                        name: b"evil".to_vec(),
                        from_fd: true,
                        result: 0,
                    },
                ),
                "module_load",
            ),
            (
                ev(
                    1,
                    0,
                    5,
                    0,
                    RawBody::BpfProgLoad {
                        prog_type: 1,
                        name: b"x".to_vec(),
                        result: 0,
                    },
                ),
                "bpf_prog_load",
            ),
        ];
        for (e, id) in cases {
            let m = run(vec![e]);
            assert_eq!(
                m.iter()
                    .map(|m| m.instance.cone_id.as_str())
                    .collect::<Vec<_>>(),
                vec![id]
            );
        }
        let benign = run(vec![
            ev(1, 0, 5, 1000, open("/etc/ld.so.cache", 0)),
            ev(
                2,
                1,
                5,
                0,
                RawBody::SetUid {
                    call: IdCall::Set,
                    ids: [0, 0, 0],
                    result: 0,
                },
            ),
            ev(3, 2, 5, 1000, exec("/usr/bin/ls")),
            ev(4, 3, 5, 1000, open("/etc/cron.d/x", 0)),
        ]);
        assert!(benign.is_empty(), "{benign:?}");
    }

    fn dup(newfd: u8, peer: SockAddr, exe: &str) -> RawBody {
        let source = match peer {
            SockAddr::Other { family: 0 } => ritma_sources::raw::DupSource::Pipe,
            _ => ritma_sources::raw::DupSource::Socket,
        };
        RawBody::FdDup {
            call: ritma_sources::raw::DupCall::Dup2,
            oldfd: 3,
            newfd,
            source,
            peer,
            exe: exe.as_bytes().to_vec(),
        }
    }

    fn fired(events: Vec<(CanonicalEvent, u64)>) -> Vec<String> {
        run(events)
            .into_iter()
            .map(|m| m.instance.cone_id)
            .collect()
    }

    #[test]
    fn library_5_cones_fire_on_their_technique_and_not_on_look_alikes() {
        let net = SockAddr::V4 {
            addr: [203, 0, 113, 9],
            port: 4444,
        };
        // A shell or interpreter whose own stdio becomes a network socket, by exe path.
        for (fd, exe) in [
            (0, "/usr/bin/bash"),
            (1, "/root/.pyenv/versions/3.11.7/bin/python3.11"),
            (2, "/tmp/x"),
            (1, "/memfd:payload"),
        ] {
            assert_eq!(
                fired(vec![ev(1, 0, 5, 0, dup(fd, net.clone(), exe))]),
                vec!["shell_stdio_redirect"],
                "{exe}"
            );
        }
        // Not a shell, not a network socket, a unix socket: nothing.
        for body in [
            dup(1, net.clone(), "/usr/lib/systemd/systemd"),
            dup(1, SockAddr::Other { family: 0 }, "/usr/bin/bash"),
            dup(
                0,
                SockAddr::Unix {
                    path: b"/run/x".to_vec(),
                },
                "/usr/bin/bash",
            ),
        ] {
            assert!(fired(vec![ev(1, 0, 5, 0, body)]).is_empty());
        }
        // The atom: the peer's flow, read for fd 0 and write otherwise, the call hashed.
        let (e, _) = ev(1, 0, 5, 0, dup(0, net.clone(), "/usr/bin/bash"));
        assert_eq!(e.atom.event_type, EventType::FdDup);
        assert_eq!(e.atom.flags, atom_flags::READ | atom_flags::STDIO_NET);
        assert!(e.atom.arg_hash.is_some());
        assert_eq!(e.dict[0].kind, ritma_schemas::records::DictKind::Flow);
        let (e, _) = ev(1, 0, 5, 0, dup(2, SockAddr::Other { family: 0 }, "/bin/x"));
        assert_eq!(e.atom.flags, atom_flags::WRITE);
        assert_eq!(e.dict[0].value, b"pipe");

        // Logs emptied, release_agent written, data destroyed, persistence by rename.
        let rename = |new: &str| RawBody::Rename {
            old: b"/tmp/x".to_vec(),
            new: new.as_bytes().to_vec(),
            old_given: None,
            new_given: None,
            flags: 0,
            result: 0,
        };
        for (body, id) in [
            (open("/var/log/auth.log", 0o1001), "log_clear"),
            (
                open("/sys/fs/cgroup/rdma/release_agent", 0o1),
                "release_agent_write",
            ),
            (exec("/usr/bin/shred"), "data_destruction"),
            (exec("/usr/sbin/mkfs.ext4"), "data_destruction"),
            (rename("/etc/cron.d/job"), "persistence_rename"),
            (rename("/root/.ssh/authorized_keys"), "persistence_rename"),
            (
                open("/home/u/.ssh/authorized_keys", 0o2101),
                "persistence_write",
            ),
        ] {
            assert_eq!(fired(vec![ev(1, 0, 5, 0, body)]), vec![id]);
        }
        for body in [
            open("/var/log/auth.log", 0o2001),
            open("/var/log/auth.log", 0o1000),
            rename("/etc/hosts"),
            exec("/usr/bin/shredder-not"),
        ] {
            // shredder-not contains "/shred": the cone is by substring, as Falco's is by name.
            let f = fired(vec![ev(1, 0, 5, 0, body.clone())]);
            assert!(
                f.is_empty() || matches!(body, RawBody::Exec { .. }),
                "{f:?}"
            );
        }

        // An inject after a seize, with POKEDATA.
        let ptrace = |request: u64| RawBody::Ptrace {
            request,
            target_pid: 9,
            target_start_ns: 9,
            result: 0,
        };
        assert_eq!(
            fired(vec![
                ev(1, 0, 5, 0, ptrace(16902)),
                ev(2, 1, 5, 0, ptrace(5))
            ]),
            vec!["ptrace_attach", "ptrace_inject"]
        );
    }

    #[test]
    fn partial_matches_are_bounded() {
        let mut m = ConeMatcher::new(builtin_cones(), 4, 1_000_000_000);
        for i in 0..10 {
            let (e, t) = ev(
                i,
                i,
                10 + i as u32,
                1000,
                open(&format!("/tmp/f{i}"), 0o1101),
            );
            m.push(&e, t);
        }
        assert_eq!(m.partials(), 4);
        assert_eq!(m.stats.shed, 6);
        // The oldest went first: the four that started last are held.
        let held: Vec<u64> = m.partials.iter().flatten().map(|p| p.first_seq).collect();
        assert_eq!(held, vec![6, 7, 8, 9]);
    }

    #[test]
    fn partials_expire_from_the_front_and_a_late_start_keeps_its_place() {
        let cone = ConeDef::parse(
            "t.cone",
            "cone t 1\nwithin 10s\nstep open flags=write path^=/tmp/ object=$f\nstep exec object=$f\nstep exec object=$f\n",
        )
        .unwrap();
        let mut m = ConeMatcher::new(vec![cone], 100, 1_000_000_000);
        let at =
            |seq: u64, secs: u64, pid: u32, body: RawBody| ev(seq, secs * 1000, pid, 1000, body);
        let s = 1_000_000_000u64;
        // Starts at 5 s, 1 s (a late event: it goes before the first) and 8 s.
        for (seq, secs, path) in [(0, 5, "/tmp/a"), (1, 1, "/tmp/b"), (2, 8, "/tmp/c")] {
            let (e, t) = at(seq, secs, 10, open(path, 0o1101));
            m.push(&e, t);
        }
        let starts: Vec<u64> = m.partials[0].iter().map(|p| p.start_wall_ns / s).collect();
        assert_eq!(starts, vec![1, 5, 8]);
        // The one that started at 5 s advances and keeps its place in start order.
        let (e, t) = at(3, 9, 11, exec("/tmp/a"));
        assert!(m.push(&e, t).is_empty());
        let order: Vec<(u64, usize)> = m.partials[0]
            .iter()
            .map(|p| (p.start_wall_ns / s, p.next_step))
            .collect();
        assert_eq!(order, vec![(1, 1), (5, 2), (8, 1)]);
        // At 12 s only the one started at 1 s has run out of time.
        m.expire(12 * s);
        assert_eq!((m.partials(), m.stats.expired), (2, 1));
        // The one started at 5 s completes at 14 s, within its 10 s.
        let (e, t) = at(4, 14, 12, exec("/tmp/a"));
        let done = m.push(&e, t);
        assert_eq!(done.len(), 1);
        assert_eq!(
            (done[0].instance.first_seq, done[0].instance.last_seq),
            (0, 4)
        );
        assert_eq!(m.partials(), 1);
    }

    #[test]
    fn parse_errors_name_the_file_and_line() {
        let e =
            ConeDef::parse("x.cone", "cone x 1\nwithin 5s\nstep exec colour=red\n").unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("x.cone", 3));
        assert!(ConeDef::parse("y.cone", "cone y 1\nstep exec\n")
            .unwrap_err()
            .reason
            .contains("within"));
        assert!(ConeDef::parse("z.cone", "cone Z 1\n").is_err());
    }
}
