//! `ritma run`'s config file (pipeline/src/config.rs) through the real binary: the
//! settings `ritma config show` reports are those `ritma run` resolves, with the command
//! line over the environment over the file over the defaults; `ritma config check` and
//! `ritma run` refuse unknown keys, bad values and contradictions, naming file and line.

use crate::util::{Dir, OutputExt};

const FILE: &str = "\
# a node's settings
out = \"/var/lib/ritma/RITMA_OUT\"
node = \"web-1\"
workers = 2

[kafka]
brokers = \"kafka-1:9092\"
ocsf = \"siem.events\"
";

#[test]
fn options_over_environment_over_file_over_defaults() {
    let d = Dir::new();
    std::fs::write(d.join("ritma.toml"), FILE).unwrap();
    let shown = d
        .ritma(&["config", "show", "--config", "ritma.toml"])
        .output()
        .success();
    for line in [
        "out = \"/var/lib/ritma/RITMA_OUT\"  # ritma.toml:2",
        "node = \"web-1\"  # ritma.toml:3",
        "workers = 2  # ritma.toml:4",
        "taint_ttl = 300  # default",
        "brokers = \"kafka-1:9092\"  # ritma.toml:7",
        "topic = \"ritma.evidence\"  # default",
        "ocsf = \"siem.events\"  # ritma.toml:8",
    ] {
        assert!(shown.lines().any(|l| l == line), "{line:?} in\n{shown}");
    }
    // The environment over the file, an option over both; RITMA_CONFIG names the file.
    let shown = d
        .ritma(&["config", "show", "--workers", "3", "--out", "o"])
        .env("RITMA_CONFIG", "ritma.toml")
        .env("RITMA_NODE_ID", "web-2")
        .env("RITMA_OUT", "env-out")
        .output()
        .success();
    for line in [
        "out = \"o\"  # --out",
        "node = \"web-2\"  # environment RITMA_NODE_ID",
        "workers = 3  # --workers",
        "brokers = \"kafka-1:9092\"  # ritma.toml:7",
    ] {
        assert!(shown.lines().any(|l| l == line), "{line:?} in\n{shown}");
    }
    // What show prints is itself a config file giving the same settings.
    std::fs::write(d.join("again.toml"), &shown).unwrap();
    let again = d
        .ritma(&["config", "show", "--config", "again.toml"])
        .output()
        .success();
    let values = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split("  #").next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(values(&shown), values(&again));
    let out = d
        .ritma(&["config", "check", "--config", "ritma.toml"])
        .output()
        .success();
    assert!(out.starts_with("ritma.toml: ok (5 settings"), "{out}");
}

#[test]
fn bad_files_are_refused_with_file_line_and_reason() {
    let d = Dir::new();
    let cases = [
        (
            "workers = 2\nwrokers = 3\n",
            "x.toml:2: unknown field `wrokers`",
        ),
        ("workers = 0\n", "x.toml:1: workers must be 1 to 256, not 0"),
        (
            "taint_ttl = -5\n",
            "x.toml:1: taint_ttl must not be negative, not -5",
        ),
        ("node = \"a b\"\n", "x.toml:1: node must be 1-64 of"),
        (
            "[kafka]\nbrokers = 9092\n",
            "x.toml:2: invalid type: integer `9092`, expected a string",
        ),
        (
            "[kafka]\nbrokers = \"b:1\"\ntopic = \"no way\"\n",
            "x.toml:3: kafka.topic must be a Kafka topic name",
        ),
        (
            "[kafka]\nmax_message_bytes = 10\n",
            "x.toml:2: kafka.max_message_bytes must be 8192 to 16777216, not 10",
        ),
        (
            "[kafka]\n\ntopic = \"t\"\n",
            "x.toml:3: kafka.topic is set, but no brokers are",
        ),
        (
            "[kafka]\nbrokers = \"b:1\"\ntopic = \"t\"\nocsf = \"t\"\n",
            "kafka.topic (x.toml:3) and kafka.ocsf (x.toml:4) both name topic \"t\"",
        ),
        ("out = ", "x.toml:1: "),
    ];
    for (text, want) in cases {
        std::fs::write(d.join("x.toml"), text).unwrap();
        for args in [
            &["config", "check", "--config", "x.toml"][..],
            &["run", "--config", "x.toml", "--duration", "1", "--out", "s"][..],
        ] {
            let err = d.ritma(args).output().failure();
            assert!(err.contains(want), "{text:?} with {args:?}: {err}");
        }
        assert!(!d.join("s").exists(), "nothing was started");
    }
    // A file named but absent, and an option that needs another.
    let err = d
        .ritma(&["config", "check", "--config", "nope.toml"])
        .output()
        .failure();
    assert!(err.contains("nope.toml: No such file"), "{err}");
    let err = d
        .ritma(&["run", "--kafka-topic", "t", "--duration", "1", "--out", "s"])
        .output()
        .failure();
    assert!(
        err.contains("--kafka-topic: kafka.topic is set, but no brokers are"),
        "{err}"
    );
}
