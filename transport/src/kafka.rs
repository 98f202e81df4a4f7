//! The Kafka client settings Ritma uses and the checks made before it relies on a
//! broker: that it answers and that the topics exist, with errors that say which.

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default evidence topic.
pub const EVIDENCE_TOPIC: &str = "ritma.evidence";
/// Default topic of witness-cosigned checkpoints.
pub const CHECKPOINT_TOPIC: &str = "ritma.checkpoints";
/// Default SIEM topic.
pub const OCSF_TOPIC: &str = "ritma.ocsf";
/// Default largest message: Kafka's default `message.max.bytes` is 1 048 588.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_000_000;
/// Room for a part's header and the record batch around it within a message.
const PART_OVERHEAD: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot reach the Kafka brokers {brokers}: {detail}")]
    Unreachable { brokers: String, detail: String },
    #[error("topic {topic} does not exist on the brokers {brokers} (create it, e.g. with 3 partitions, before shipping)")]
    NoTopic { topic: String, brokers: String },
    #[error("the broker refused a message of {bytes} bytes on topic {topic} as too large: set --max-message-bytes to the broker's message.max.bytes or less")]
    TooLarge { topic: String, bytes: usize },
    #[error("delivery to topic {topic} failed: {detail}")]
    Delivery { topic: String, detail: String },
    #[error("Kafka client: {0}")]
    Client(#[from] KafkaError),
    #[error("{0}")]
    Store(String),
}

/// Where and how to reach the brokers.
#[derive(Clone, Debug)]
pub struct KafkaSettings {
    pub brokers: String,
    /// Largest message the broker takes; envelopes are cut into parts below it.
    pub max_message_bytes: usize,
    /// How long a message may wait for the broker before its delivery fails (it is then
    /// sent again from the store).
    pub delivery_timeout: Duration,
    /// Extra librdkafka properties (`key=value`).
    pub extra: Vec<(String, String)>,
}

impl KafkaSettings {
    pub fn new(brokers: &str) -> Self {
        KafkaSettings {
            brokers: brokers.to_owned(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            delivery_timeout: Duration::from_secs(120),
            extra: Vec::new(),
        }
    }

    /// The payload size of a part that fits a message.
    pub fn part_payload(&self) -> usize {
        self.max_message_bytes
            .saturating_sub(PART_OVERHEAD)
            .max(4096)
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("allow.auto.create.topics", "false")
            .set("socket.keepalive.enable", "true");
        for (k, v) in &self.extra {
            c.set(k, v);
        }
        c
    }

    /// An idempotent producer that waits for all in-sync replicas, compressing with zstd.
    pub fn producer(&self) -> Result<Shipper, TransportError> {
        let mut c = self.client_config();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "zstd")
            .set(
                "message.max.bytes",
                (self.max_message_bytes + PART_OVERHEAD).to_string(),
            )
            .set("linger.ms", "5")
            .set(
                "message.timeout.ms",
                self.delivery_timeout.as_millis().to_string(),
            );
        let context = Deliveries::default();
        let producer: BaseProducer<Deliveries> = c.create_with_context(context.clone())?;
        Ok(Shipper {
            producer,
            deliveries: context,
            brokers: self.brokers.clone(),
        })
    }

    /// Fails unless the brokers answer within `timeout` and hold every topic of `topics`.
    pub fn check_topics(&self, topics: &[&str], timeout: Duration) -> Result<(), TransportError> {
        let probe: BaseProducer = self.client_config().create()?;
        check_topics(probe.client(), &self.brokers, topics, timeout)
    }
}

/// [`KafkaSettings::check_topics`] through `client`.
fn check_topics<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    brokers: &str,
    topics: &[&str],
    timeout: Duration,
) -> Result<(), TransportError> {
    {
        for topic in topics {
            let md = client.fetch_metadata(Some(topic), timeout).map_err(|e| {
                TransportError::Unreachable {
                    brokers: brokers.to_owned(),
                    detail: e.to_string(),
                }
            })?;
            let found = md.topics().iter().find(|t| t.name() == *topic);
            let missing = match found {
                None => true,
                Some(t) => t.error().is_some() || t.partitions().is_empty(),
            };
            if missing {
                return Err(TransportError::NoTopic {
                    topic: (*topic).to_owned(),
                    brokers: brokers.to_owned(),
                });
            }
        }
        Ok(())
    }
}

/// The outcome of every message sent, by the number it was sent with.
#[derive(Clone, Default)]
pub struct Deliveries {
    failed: Arc<Mutex<Vec<(usize, KafkaError)>>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, n: usize) {
        if let Err((e, _)) = result {
            self.failed.lock().expect("deliveries").push((n, e.clone()));
        }
    }
}

/// A producer that sends a batch of messages and waits until the broker acked each.
pub struct Shipper {
    producer: BaseProducer<Deliveries>,
    deliveries: Deliveries,
    brokers: String,
}

impl Shipper {
    /// [`KafkaSettings::check_topics`] on this producer's own connections, which it then
    /// ships on without connecting again.
    pub fn check_topics(&self, topics: &[&str], timeout: Duration) -> Result<(), TransportError> {
        check_topics(self.producer.client(), &self.brokers, topics, timeout)
    }

    /// Sends `(key, value)` messages to `topic` and waits until every one is acked
    /// (acks=all) or `timeout` passes; an error names the first message that failed.
    pub fn send_all(
        &self,
        topic: &str,
        messages: &[(&str, Vec<u8>)],
        timeout: Duration,
    ) -> Result<(), TransportError> {
        self.deliveries.failed.lock().expect("deliveries").clear();
        for (n, (key, value)) in messages.iter().enumerate() {
            let mut record = BaseRecord::with_opaque_to(topic, n)
                .key(*key)
                .payload(value);
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        self.producer.poll(Duration::from_millis(50));
                    }
                    Err((
                        KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
                        _,
                    )) => {
                        return Err(TransportError::TooLarge {
                            topic: topic.to_owned(),
                            bytes: value.len(),
                        })
                    }
                    Err((e, _)) => return Err(e.into()),
                }
            }
        }
        let deadline = Instant::now() + timeout;
        while self.producer.in_flight_count() > 0 && Instant::now() < deadline {
            self.producer.poll(Duration::from_millis(20));
        }
        if self.producer.in_flight_count() > 0 {
            return Err(TransportError::Delivery {
                topic: topic.to_owned(),
                detail: format!(
                    "{} messages not acked by {} within {:?}",
                    self.producer.in_flight_count(),
                    self.brokers,
                    timeout
                ),
            });
        }
        let failed = std::mem::take(&mut *self.deliveries.failed.lock().expect("deliveries"));
        if let Some((n, e)) = failed.into_iter().min_by_key(|(n, _)| *n) {
            if let KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge) = e {
                return Err(TransportError::TooLarge {
                    topic: topic.to_owned(),
                    bytes: messages[n].1.len(),
                });
            }
            return Err(TransportError::Delivery {
                topic: topic.to_owned(),
                detail: format!("message {n}: {e}"),
            });
        }
        Ok(())
    }

    /// Sends without waiting (the checkpoint topic); the next `send_all` or `flush`
    /// collects their outcome.
    pub fn send_unacked(&self, topic: &str, key: &str, value: &[u8]) -> Result<(), TransportError> {
        let record = BaseRecord::with_opaque_to(topic, usize::MAX)
            .key(key)
            .payload(value);
        self.producer.send(record).map_err(|(e, _)| e.into())
    }

    /// Waits for every message sent.
    pub fn flush(&self, timeout: Duration) -> Result<(), TransportError> {
        self.producer.flush(timeout).map_err(Into::into)
    }
}

/// A message's key as text, if it is a valid UTF-8 key.
pub fn key_text<M: Message>(m: &M) -> Option<&str> {
    m.key().and_then(|k| std::str::from_utf8(k).ok())
}
