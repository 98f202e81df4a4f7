//! The producer's behaviour under faults librdkafka's mock cluster injects: a broker down
//! while a shipment is in flight, a delivery that times out, produce requests that fail
//! and are retried; and the preflight errors for an unknown topic or no broker.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::ClientConfig;
use ritma_transport::{KafkaSettings, TransportError};
use std::time::Duration;

const TOPIC: &str = "ritma.evidence";

fn messages(n: usize) -> Vec<(&'static str, Vec<u8>)> {
    (0..n)
        .map(|i| ("web-1", format!("part {i}").into_bytes()))
        .collect()
}

/// Every value on the topic, in order.
fn read_all(bootstrap: &str, expect: usize) -> Vec<Vec<u8>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "check")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    c.subscribe(&[TOPIC]).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while out.len() < expect && std::time::Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            out.push(m.unwrap().payload().unwrap().to_vec());
        }
    }
    // Nothing more arrives (no duplicate).
    assert!(c.poll(Duration::from_secs(1)).is_none());
    out
}

#[test]
fn a_shipment_in_flight_while_the_broker_is_down_is_delivered_once_when_it_returns() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let shipper = KafkaSettings::new(&bootstrap).producer().unwrap();
    cluster.broker_down(1).unwrap();
    let sending =
        std::thread::spawn(move || shipper.send_all(TOPIC, &messages(50), Duration::from_secs(60)));
    std::thread::sleep(Duration::from_secs(3));
    assert!(!sending.is_finished(), "acked while the broker was down");
    cluster.broker_up(1).unwrap();
    sending.join().unwrap().unwrap();
    let got = read_all(&bootstrap, 50);
    let want: Vec<Vec<u8>> = messages(50).into_iter().map(|(_, v)| v).collect();
    assert_eq!(got, want);
}

#[test]
fn a_delivery_that_times_out_is_an_error() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    let mut settings = KafkaSettings::new(&cluster.bootstrap_servers());
    settings.delivery_timeout = Duration::from_secs(2);
    let shipper = settings.producer().unwrap();
    cluster.broker_down(1).unwrap();
    let err = shipper
        .send_all(TOPIC, &messages(3), Duration::from_secs(30))
        .unwrap_err();
    assert!(matches!(err, TransportError::Delivery { .. }), "{err}");
}

#[test]
fn produce_errors_are_retried_without_duplicates() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 3],
    );
    let shipper = KafkaSettings::new(&bootstrap).producer().unwrap();
    shipper
        .send_all(TOPIC, &messages(20), Duration::from_secs(60))
        .unwrap();
    assert_eq!(read_all(&bootstrap, 20).len(), 20);
}

#[test]
fn an_unknown_topic_or_no_broker_is_said_before_shipping() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    let settings = KafkaSettings::new(&cluster.bootstrap_servers());
    settings
        .check_topics(&[TOPIC], Duration::from_secs(5))
        .unwrap();
    let err = settings
        .check_topics(&["nope"], Duration::from_secs(5))
        .unwrap_err();
    assert!(
        err.to_string().contains("topic nope does not exist"),
        "{err}"
    );
    let err = KafkaSettings::new("127.0.0.1:1")
        .check_topics(&[TOPIC], Duration::from_secs(2))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot reach the Kafka brokers 127.0.0.1:1"),
        "{err}"
    );
}

#[test]
fn a_message_the_broker_finds_too_large_says_which_option_to_lower() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE; 8],
    );
    let shipper = KafkaSettings::new(&cluster.bootstrap_servers())
        .producer()
        .unwrap();
    let err = shipper
        .send_all(TOPIC, &messages(1), Duration::from_secs(30))
        .unwrap_err();
    assert!(matches!(err, TransportError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("--max-message-bytes"), "{err}");
}
