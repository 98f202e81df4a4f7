//! The node's side of the checkpoint topic: `ritma run` keeps the newest checkpoint of
//! its own that a witness cosigned and published, in `_meta/witnessed/checkpoint.sig`
//! (node-local, never shipped): what it can show that its log had left the node.

use crate::kafka::{key_text, KafkaSettings, TransportError};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use ritma_schemas::keys::KeyHistory;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `_meta/witnessed/checkpoint.sig` of a node tree.
pub fn witnessed_path(root: &Path) -> PathBuf {
    root.join("_meta/witnessed/checkpoint.sig")
}

/// A reader of the checkpoint topic for one node.
pub struct CosignedFeed {
    consumer: BaseConsumer,
    node: String,
    root: PathBuf,
    newest: u64,
}

impl CosignedFeed {
    pub fn open(
        settings: &KafkaSettings,
        topic: &str,
        root: &Path,
        node: &str,
    ) -> Result<Self, TransportError> {
        let mut c = settings.client_config();
        c.set("group.id", format!("ritma-node-{node}"))
            .set("enable.auto.commit", "true")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000");
        let consumer: BaseConsumer = c.create()?;
        consumer.subscribe(&[topic])?;
        Ok(CosignedFeed {
            consumer,
            node: node.to_owned(),
            root: root.to_owned(),
            newest: 0,
        })
    }

    /// Reads what has arrived; keeps the largest checkpoint this node signed (its
    /// signature checked with `history`) and returns its size when it grew.
    pub fn poll(&mut self, history: &KeyHistory) -> Result<Option<u64>, TransportError> {
        let mut grew = None;
        while let Some(m) = self.consumer.poll(Duration::from_millis(0)) {
            let m = m?;
            if key_text(&m) != Some(self.node.as_str()) {
                continue;
            }
            let Some(note) = m.payload().and_then(|p| std::str::from_utf8(p).ok()) else {
                continue;
            };
            let Ok(cp) = history.verify_checkpoint(note) else {
                continue;
            };
            if cp.size > self.newest {
                let path = witnessed_path(&self.root);
                std::fs::create_dir_all(path.parent().expect("_meta/witnessed"))
                    .map_err(|e| TransportError::Store(format!("{}: {e}", path.display())))?;
                ritma_sinks::store::replace_file(&path, note.as_bytes())
                    .map_err(|e| TransportError::Store(e.to_string()))?;
                self.newest = cp.size;
                grew = Some(cp.size);
            }
        }
        Ok(grew)
    }
}
