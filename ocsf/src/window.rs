//! A window's leaves, decoded, and the lookups the mapping needs.

use std::collections::BTreeMap;

use ritma_schemas::hash::{blake3, Hash32};
use ritma_schemas::records::{
    ActorRecord, AnyRecord, ConeInstance, DictEntry, DictKind, Edge, EdgeKind, EventAtom, Record,
    WindowRecord,
};
use ritma_schemas::Id128;

use crate::OcsfError;

/// The records of a window's leaves (FORMAT.md §3.1–3.5), each section in leaf order; health
/// records are counted, not kept: no event is made of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowLeaves {
    pub dict: Vec<DictEntry>,
    pub actors: Vec<ActorRecord>,
    pub atoms: Vec<EventAtom>,
    pub edges: Vec<Edge>,
    pub cones: Vec<ConeInstance>,
}

impl WindowLeaves {
    /// Strictly decodes every leaf of the window `record` seals, and checks that each
    /// section holds as many records as the record counts.
    pub fn decode<L: AsRef<[u8]>>(record: &WindowRecord, leaves: &[L]) -> Result<Self, OcsfError> {
        let mut w = WindowLeaves::default();
        let mut health = 0u64;
        for (index, leaf) in leaves.iter().enumerate() {
            let decoded = AnyRecord::decode(leaf.as_ref()).map_err(|source| OcsfError::Decode {
                node: record.node.clone(),
                window: record.window,
                index,
                source: Box::new(source),
            })?;
            let not_a_leaf = |name: &'static str| OcsfError::NotALeaf {
                node: record.node.clone(),
                window: record.window,
                index,
                record: name,
            };
            match decoded {
                AnyRecord::Dict(d) => w.dict.push(d),
                AnyRecord::Actor(a) => w.actors.push(a),
                AnyRecord::Event(a) => w.atoms.push(a),
                AnyRecord::Edge(e) => w.edges.push(e),
                AnyRecord::Cone(c) => w.cones.push(c),
                AnyRecord::Health(_) => health += 1,
                AnyRecord::Window(_) => return Err(not_a_leaf(WindowRecord::NAME)),
                AnyRecord::Hour(_) => return Err(not_a_leaf("HourSeal")),
                AnyRecord::Deletion(_) => return Err(not_a_leaf("HourDeletion")),
                AnyRecord::Case(_) => return Err(not_a_leaf("CaseManifest")),
                AnyRecord::Export(_) => return Err(not_a_leaf("CaseExport")),
                AnyRecord::Key(_) => return Err(not_a_leaf("KeyEvent")),
                AnyRecord::Run(_) => return Err(not_a_leaf("RunMeta")),
                AnyRecord::Signed(_) => return Err(not_a_leaf("SignedRecord")),
            }
        }
        let sections = [
            ("dict", record.dict_count, w.dict.len() as u64),
            ("actor", record.actor_count, w.actors.len() as u64),
            ("event", record.event_count, w.atoms.len() as u64),
            ("edge", record.edge_count, w.edges.len() as u64),
            ("cone", record.cone_count, w.cones.len() as u64),
            ("health", record.health_count, health),
        ];
        for (section, expected, found) in sections {
            if expected != found {
                return Err(OcsfError::Count {
                    node: record.node.clone(),
                    window: record.window,
                    section,
                    expected,
                    found,
                });
            }
        }
        Ok(w)
    }
}

/// A window's records by the keys events refer to them with.
pub(crate) struct Window<'a> {
    pub record: &'a WindowRecord,
    dict: BTreeMap<Id128, &'a DictEntry>,
    actors: BTreeMap<Id128, &'a ActorRecord>,
    /// Argv entries by the hash an exec's or present's `arg_hash` holds (FORMAT.md §3.2).
    argv: BTreeMap<Hash32, &'a DictEntry>,
    atoms: BTreeMap<u64, &'a EventAtom>,
    /// `file_to_file` (rename) edges by their destination path.
    renames: BTreeMap<Id128, Vec<&'a Edge>>,
}

impl<'a> Window<'a> {
    pub fn new(record: &'a WindowRecord, leaves: &'a WindowLeaves) -> Self {
        let mut renames: BTreeMap<Id128, Vec<&Edge>> = BTreeMap::new();
        for e in leaves
            .edges
            .iter()
            .filter(|e| e.kind == EdgeKind::FileToFile)
        {
            renames.entry(e.dst).or_default().push(e);
        }
        Window {
            record,
            dict: leaves.dict.iter().map(|d| (d.id, d)).collect(),
            actors: leaves.actors.iter().map(|a| (a.actor, a)).collect(),
            argv: leaves
                .dict
                .iter()
                .filter(|d| d.kind == DictKind::Argv)
                .filter_map(|d| {
                    // A hashed entry already holds the hash of the argv's encoding.
                    let hash = match d.hashed {
                        true => d.value.as_slice().try_into().ok()?,
                        false => blake3(&d.value),
                    };
                    Some((hash, d))
                })
                .collect(),
            atoms: leaves.atoms.iter().map(|a| (a.seq, a)).collect(),
            renames,
        }
    }

    pub fn node(&self) -> &'a str {
        &self.record.node
    }

    pub fn dict(&self, id: &Id128) -> Option<&'a DictEntry> {
        self.dict.get(id).copied()
    }

    pub fn actor(&self, id: &Id128) -> Option<&'a ActorRecord> {
        self.actors.get(id).copied()
    }

    pub fn argv(&self, arg_hash: &Hash32) -> Option<&'a DictEntry> {
        self.argv.get(arg_hash).copied()
    }

    pub fn atom(&self, seq: u64) -> Option<&'a EventAtom> {
        self.atoms.get(&seq).copied()
    }

    /// The path a rename into `new` at `t_ns` came from, when one edge of the window says so.
    pub fn renamed_from(&self, new: &Id128, t_ns: i64) -> Option<Id128> {
        let edges = self.renames.get(new)?;
        let mut during = edges
            .iter()
            .filter(|e| (e.first_t_ns..=e.last_t_ns).contains(&t_ns));
        match (during.next(), during.next()) {
            (Some(e), None) => Some(e.src),
            _ => None,
        }
    }

    /// Wall time in ns of a time relative to the window's start.
    pub fn wall_ns(&self, t_ns: i64) -> i128 {
        self.record.t_start_ns() as i128 + t_ns as i128
    }

    /// `<node>/<window>/<seq>`: an event's place, as `metadata.uid` names it.
    pub fn event_uid(&self, seq: u64) -> String {
        format!("{}/{}/{}", self.record.node, self.record.window, seq)
    }
}
