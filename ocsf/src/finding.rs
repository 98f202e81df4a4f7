//! Cone instances as OCSF Detection Findings.

use ritma_schemas::records::{ConeInstance, EventAtom, EventType};
use ritma_schemas::Id128;
use serde_json::{json, Map, Value};

use crate::activity::event_type_name;
use crate::objects::{
    dict_kind_name, hex, Activity, EventBuilder, Header, Severity, DETECTION_FINDING, FILE_UNKNOWN,
};
use crate::window::Window;

/// The Detection Finding of one cone instance.
pub(crate) fn cone_finding(w: &Window<'_>, cone: &ConeInstance) -> Value {
    let mut b = EventBuilder::new(w);
    let uid = format!(
        "{}/{}/{}/{}-{}",
        w.node(),
        w.record.window,
        cone.cone_id,
        cone.first_seq,
        cone.last_seq
    );
    let bindings: Map<String, Value> = cone
        .bindings
        .iter()
        .map(|(name, id)| (name.clone(), hex(id).into()))
        .collect();
    let ritma = [
        ("cone_id", cone.cone_id.clone().into()),
        ("cone_version", cone.cone_version.into()),
        ("cone_lib_version", w.record.cone_lib_version.into()),
        ("first_seq", cone.first_seq.into()),
        ("last_seq", cone.last_seq.into()),
        ("count", cone.count.into()),
        ("t_start_ns", cone.t_start_ns.into()),
        ("bindings", bindings.into()),
        ("exceptions", cone.exceptions.clone().into()),
    ];
    b.ritma.extend(
        ritma
            .into_iter()
            .map(|(k, v): (&str, Value)| (k.to_owned(), v)),
    );

    let start_ns = w.wall_ns(cone.t_start_ns);
    // The match completes at its last event, which the window holds (FORMAT.md §10).
    let last = w.atom(cone.last_seq);
    let time_ns = last.map_or(start_ns, |a| w.wall_ns(a.t_ns));
    let mut evidences = Vec::new();
    for (name, id) in &cone.bindings {
        let field = format!("evidences[{}]", evidences.len());
        evidences.push(binding_evidence(&mut b, name, id, &field));
    }
    let first = w
        .atom(cone.first_seq)
        .filter(|_| cone.first_seq != cone.last_seq);
    for atom in first.into_iter().chain(last) {
        let field = format!("evidences[{}]", evidences.len());
        evidences.push(event_evidence(&mut b, atom, &field));
    }

    let mut body = Map::new();
    body.insert(
        "finding_info".into(),
        json!({
            "analytic": {
                "name": cone.cone_id,
                "type": "Rule",
                "type_id": 1,
                "uid": cone.cone_id,
                "version": cone.cone_version.to_string(),
            },
            "desc": format!(
                "Ritma cone {} version {} (cone library {}) matched seqs {} to {}",
                cone.cone_id, cone.cone_version, w.record.cone_lib_version, cone.first_seq, cone.last_seq
            ),
            "first_seen_time": ms(start_ns),
            "last_seen_time": ms(time_ns),
            "title": cone.cone_id,
            "uid": uid,
        }),
    );
    body.insert("evidences".into(), evidences.into());
    body.insert("is_alert".into(), true.into());
    // integer_t is 32-bit: a larger count is in `unmapped.ritma.count` only.
    if let Ok(count) = i32::try_from(cone.count) {
        body.insert("count".into(), count.into());
    }
    body.insert("status_id".into(), 1.into());
    body.insert("status".into(), "New".into());
    let message = format!(
        "cone {} matched (seqs {} to {})",
        cone.cone_id, cone.first_seq, cone.last_seq
    );
    let header = Header {
        class: &DETECTION_FINDING,
        activity: Activity::new(1, "Create"),
        severity: Severity::Medium,
        time_ns,
        uid,
        sequence: None,
    };
    b.finish(header, message, body)
}

fn ms(ns: i128) -> i64 {
    i64::try_from(ns.div_euclid(1_000_000)).unwrap_or(i64::MAX)
}

/// A placeholder's value: a process, a file, an endpoint, or else its dictionary value as data.
fn binding_evidence(b: &mut EventBuilder<'_>, name: &str, id: &Id128, field: &str) -> Value {
    let mut e = Map::new();
    e.insert("name".into(), name.into());
    match object_evidence(b, id, "dst_endpoint", field) {
        Some((key, v)) => {
            e.insert(key.into(), v);
        }
        None => {
            let data = match b.w.dict(id) {
                Some(d) => {
                    let value = b.text_or_id(id, &format!("{field}.data.value"));
                    json!({"kind": dict_kind_name(d.kind), "value": value})
                }
                None => json!({"id": hex(id)}),
            };
            e.insert("data".into(), data);
        }
    }
    e.into()
}

/// One event of the match: its place, actor and object.
fn event_evidence(b: &mut EventBuilder<'_>, atom: &EventAtom, field: &str) -> Value {
    let mut e = Map::new();
    e.insert("uid".into(), b.w.event_uid(atom.seq).into());
    let name = format!("{} seq {}", event_type_name(atom.event_type), atom.seq);
    e.insert("name".into(), name.into());
    let actor = b.process(&atom.actor, &format!("{field}.actor.process"));
    e.insert("actor".into(), json!({ "process": actor }));
    let peer = match atom.event_type {
        EventType::Accept => "src_endpoint",
        _ => "dst_endpoint",
    };
    if let Some((key, v)) = object_evidence(b, &atom.object, peer, field) {
        e.insert(key.into(), v);
    }
    e.into()
}

/// The evidence attribute an id fills: `process` for an actor, `file` for a path, `flow_key`
/// for a flow; `None` for anything else.
fn object_evidence(
    b: &mut EventBuilder<'_>,
    id: &Id128,
    flow_key: &'static str,
    field: &str,
) -> Option<(&'static str, Value)> {
    use ritma_schemas::records::DictKind;
    if b.w.actor(id).is_some() {
        return Some(("process", b.process(id, &format!("{field}.process")).into()));
    }
    match b.w.dict(id)?.kind {
        DictKind::Path => Some((
            "file",
            b.file_at(id, FILE_UNKNOWN, &format!("{field}.file")),
        )),
        DictKind::Flow => Some((flow_key, b.endpoint(id, &format!("{field}.{flow_key}")))),
        _ => None,
    }
}
