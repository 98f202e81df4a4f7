//! The test broker itself (tests/broker.rs): tansu comes up, answers the Kafka protocol through
//! the outage proxy, and `go_down` / `come_back` cut and restore the network path while the
//! broker keeps its topics. Kafka clients (rdkafka) are exercised by the sink's own tests.

#[path = "broker.rs"]
mod broker;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

/// A Kafka ApiVersions v0 request on `conn`; returns the API keys the broker supports.
fn api_versions(conn: &mut TcpStream, correlation_id: i32) -> Vec<i16> {
    let client_id = b"ritma-smoke";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    body.extend_from_slice(&0i16.to_be_bytes()); // version 0
    body.extend_from_slice(&correlation_id.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    conn.write_all(&frame).expect("send ApiVersions");

    let mut len = [0u8; 4];
    conn.read_exact(&mut len)
        .expect("ApiVersions response length");
    let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
    conn.read_exact(&mut resp).expect("ApiVersions response");
    let i16_at = |at: usize| i16::from_be_bytes([resp[at], resp[at + 1]]);
    let i32_at = |at: usize| i32::from_be_bytes(resp[at..at + 4].try_into().unwrap());
    assert_eq!(i32_at(0), correlation_id, "correlation id");
    assert_eq!(i16_at(4), 0, "ApiVersions error code");
    let n = i32_at(6) as usize;
    (0..n).map(|i| i16_at(10 + 6 * i)).collect()
}

fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

/// `tansu topic list` through the proxy: a real Kafka client's Metadata request.
fn topic_list(b: &broker::Broker) -> String {
    let out = Command::new(b.tansu())
        .args(["topic", "list", "--broker"])
        .arg(format!("tcp://{}", b.bootstrap()))
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "error")
        .output()
        .expect("run tansu topic list");
    assert!(out.status.success(), "tansu topic list: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn broker_answers_and_outage_switch_cuts_and_restores_the_path() {
    let Some(b) = broker::Broker::start(&[("smoke", 3)]) else {
        return;
    };
    let addr = b.bootstrap();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    // Kafka protocol through the proxy; the topic exists with its partitions.
    let mut held = connect(&addr).expect("connect through the proxy");
    let keys = api_versions(&mut held, 7);
    assert!(
        keys.contains(&0) && keys.contains(&1) && keys.contains(&3),
        "Produce, Fetch, Metadata: {keys:?}"
    );
    let list = topic_list(&b);
    assert!(list.contains(r#""name":"smoke""#), "{list}");
    assert_eq!(list.matches(r#""partition_index""#).count(), 3, "{list}");

    // Two outages in a row: the second `come_back` rebinds the port right after the first
    // outage's cut connections (TIME_WAIT on the proxy's side).
    for round in 0..2 {
        b.go_down();
        assert!(b.is_down());
        // The held connection is closed: EOF or reset, never an answer.
        let mut byte = [0u8; 1];
        match held.read(&mut byte) {
            Ok(0) => {}
            Ok(_) => panic!("round {round}: data on a cut connection"),
            Err(e) => assert!(
                matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
                "round {round}: {e}"
            ),
        }
        let refused = connect(&addr).expect_err("connect while down");
        assert_eq!(
            refused.kind(),
            ErrorKind::ConnectionRefused,
            "round {round}"
        );

        b.come_back();
        assert!(!b.is_down());
        held = connect(&addr).expect("connect after come_back");
        assert!(api_versions(&mut held, 8 + round).contains(&0));
    }

    // The broker kept its data through the outages: the topic is still there.
    assert!(topic_list(&b).contains(r#""name":"smoke""#));
    let again = b.try_create_topic("smoke", 3).expect_err("topic exists");
    assert!(again.contains("already exists"), "{again}");
    b.create_topic("second", 1);
    assert!(topic_list(&b).contains(r#""name":"second""#));
}

#[test]
fn brokers_run_side_by_side() {
    let Some(a) = broker::Broker::start(&[("a", 1)]) else {
        return;
    };
    let b = broker::Broker::start(&[]).expect("second broker");
    assert_ne!(a.bootstrap(), b.bootstrap());
    a.go_down();
    // One broker's outage leaves the other reachable.
    assert!(connect(&b.bootstrap()).is_ok());
    assert!(!topic_list(&b).contains(r#""name":"a""#));
}
