//! A real Kafka-protocol broker for end-to-end tests, with a switch to cut the network to it.
//!
//! [`Broker::start`] runs [tansu](https://crates.io/crates/tansu) (a Kafka-compatible broker
//! written in Rust) as a child process on loopback, with its in-memory storage engine, and
//! creates the topics a test asks for. The broker is real: clients (rdkafka) speak the Kafka
//! protocol to it and it keeps what they produce until it is dropped.
//!
//! Clients never reach tansu directly. They connect to a small TCP forwarding proxy in this
//! process (std threads), and tansu advertises the proxy's address in its metadata, so every
//! connection, including reconnections, goes through the proxy. [`Broker::go_down`] closes the
//! proxy's listening socket and every forwarded connection: clients see their connections
//! closed and new ones refused, as if the broker were down. [`Broker::come_back`] listens on
//! the same port again. Only the network path is cut: the broker process keeps running and
//! keeps its in-memory topics, records and committed offsets throughout.
//!
//! The tansu binary comes from `RITMA_TANSU` (test.sh sets it from
//! `tests/broker/install-tansu.sh`) or else from the install script's default cache path.
//! Without it, `start` returns `None` after saying why on stderr, so a developer without the
//! broker skips these tests; under CI (`CI=true`) it panics instead, so CI never passes by
//! skipping them.
//!
//! Known tansu behaviour that tests should allow for (tansu 0.6.0, memory engine): create
//! topics before producing (producing to a missing topic times out); consumer groups join
//! after about `session.timeout.ms / 2`, so set `session.timeout.ms` to about 2000.
//!
//! Use: `#[path = "broker.rs"] mod broker;` (or `mod broker;`) in a file of tests/.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The tansu version that `tests/broker/install-tansu.sh` installs: keep the two alike.
pub const TANSU_VERSION: &str = "0.6.0";

/// How long tansu may take to accept connections, and a topic creation to succeed.
const STARTUP: Duration = Duration::from_secs(30);

/// A running tansu broker behind an outage switch. Dropping it stops both.
pub struct Broker {
    child: Child,
    tansu: PathBuf,
    /// Holds tansu's log file (`tansu.log`) and working directory.
    dir: tempfile::TempDir,
    /// Where tansu itself listens; tests should use [`Broker::bootstrap`] instead.
    upstream: SocketAddr,
    proxy: Proxy,
}

impl Broker {
    /// Starts tansu and creates `topics` (name, partitions). `None` (with the reason on stderr)
    /// when the tansu binary is missing outside CI; panics when it is missing under CI or when
    /// the broker does not come up.
    pub fn start(topics: &[(&str, u32)]) -> Option<Broker> {
        let tansu = match find_tansu() {
            Ok(path) => path,
            Err(reason) => {
                if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                    panic!("broker: {reason} (CI=true: these tests must not be skipped)");
                }
                eprintln!("broker: skipped: {reason}");
                return None;
            }
        };

        let dir = tempfile::tempdir().expect("broker: temp dir");
        let upstream = free_loopback_port();
        let proxy = Proxy::start(upstream);
        let log_path = dir.path().join("tansu.log");
        let log = File::create(&log_path).expect("broker: log file");
        let child = Command::new(&tansu)
            .arg("broker")
            .arg("--listener-url")
            .arg(format!("tcp://{upstream}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://{}", proxy.addr))
            .arg("--storage-engine")
            .arg("memory://tansu/")
            // tansu reads a `.env` file from its working directory: run it where there is none.
            .current_dir(dir.path())
            // Its other settings can also come from the environment: keep them default.
            .env_remove("CLUSTER_ID")
            .env_remove("SCHEMA_REGISTRY")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env(
                "RUST_LOG",
                std::env::var("RITMA_TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("broker: log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("broker: cannot run {}: {e}", tansu.display()));

        let mut broker = Broker {
            child,
            tansu,
            dir,
            upstream,
            proxy,
        };
        broker.wait_until_listening();
        for (name, partitions) in topics {
            broker.create_topic(name, *partitions);
        }
        Some(broker)
    }

    /// The `bootstrap.servers` value for clients: the proxy's `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        self.proxy.addr.to_string()
    }

    /// Creates a topic with `tansu topic create`, retrying while the broker settles; panics
    /// with tansu's output when it keeps failing or when the topic already exists.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let deadline = Instant::now() + STARTUP;
        loop {
            match self.try_create_topic(name, partitions) {
                Ok(()) => return,
                Err(e) if e.contains("already exists") || Instant::now() > deadline => panic!(
                    "broker: `tansu topic create {name} --partitions {partitions}` failed: {e}\n\
                     --- tansu.log ---\n{}",
                    self.log()
                ),
                Err(_) => thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// One `tansu topic create` (straight to tansu, not through the proxy); `Err` holds its
    /// exit status and output (for an existing topic: "Topic with this name already exists.").
    pub fn try_create_topic(&self, name: &str, partitions: u32) -> Result<(), String> {
        let out = Command::new(&self.tansu)
            .args(["topic", "create", "--broker"])
            .arg(format!("tcp://{}", self.upstream))
            .arg(name)
            .arg("--partitions")
            .arg(partitions.to_string())
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "error")
            .output()
            .expect("broker: run tansu topic create");
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Cuts the network path: closes the proxy's listening socket and every connection it
    /// forwards. The broker keeps running with its data. Idempotent.
    pub fn go_down(&self) {
        self.proxy.stop();
    }

    /// Restores the network path: listens again on the same port. Idempotent.
    pub fn come_back(&self) {
        self.proxy.listen();
    }

    /// The tansu binary in use (for `tansu topic list --broker tcp://BOOTSTRAP` and the like).
    pub fn tansu(&self) -> &Path {
        &self.tansu
    }

    /// Whether the network path is cut.
    pub fn is_down(&self) -> bool {
        !self.proxy.is_listening()
    }

    /// tansu's log so far (set `RITMA_TANSU_LOG`, a `RUST_LOG` filter, for more than warnings).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default()
    }

    /// Waits until tansu accepts TCP connections on its own port; panics with its log when it
    /// exits or takes too long.
    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(status) = self.child.try_wait().expect("broker: wait") {
                panic!(
                    "broker: {} exited at start ({status})\n--- tansu.log ---\n{}",
                    self.tansu.display(),
                    self.log()
                );
            }
            if TcpStream::connect_timeout(&self.upstream, Duration::from_millis(200)).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "broker: tansu did not listen on {} within {STARTUP:?}\n--- tansu.log ---\n{}",
                    self.upstream,
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.proxy.stop();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- tansu.log ---\n{}", self.log());
        }
    }
}

/// The tansu binary: `RITMA_TANSU`, else the install script's cache path
/// (`$RITMA_TOOLS` or /var/tmp/ritma-tools, then `tansu-VERSION/bin/tansu`).
fn find_tansu() -> Result<PathBuf, String> {
    let (path, from) = match std::env::var_os("RITMA_TANSU") {
        Some(p) => (PathBuf::from(p), "RITMA_TANSU"),
        None => {
            let tools = std::env::var_os("RITMA_TOOLS")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/var/tmp/ritma-tools"));
            (
                tools.join(format!("tansu-{TANSU_VERSION}/bin/tansu")),
                "the default cache path",
            )
        }
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "no tansu binary at {} ({from}); install it with tests/broker/install-tansu.sh \
             (a 15-25 minute build the first time) or set RITMA_TANSU",
            path.display()
        ))
    }
}

/// A loopback port that was free a moment ago (tansu binds it next).
fn free_loopback_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("broker: free port")
}

/// A TCP forwarder from a fixed loopback port to tansu, which can stop listening and cut its
/// connections, then listen again on the same port.
struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    /// The accept thread and its stop flag, while listening.
    acceptor: Mutex<Option<(Arc<AtomicBool>, JoinHandle<()>)>>,
}

#[derive(Default)]
struct Shared {
    /// Both sockets of each forwarded connection, so `stop` can shut them down.
    conns: Mutex<HashMap<u64, [TcpStream; 2]>>,
    next_id: AtomicU64,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("broker proxy: bind");
        let proxy = Proxy {
            addr: listener.local_addr().expect("broker proxy: address"),
            upstream,
            shared: Arc::default(),
            acceptor: Mutex::new(None),
        };
        proxy.accept_on(listener);
        proxy
    }

    fn is_listening(&self) -> bool {
        self.acceptor.lock().unwrap().is_some()
    }

    /// Listens again on the same port. std's `TcpListener::bind` sets SO_REUSEADDR on Unix,
    /// so the connections just cut (in TIME_WAIT on this port) do not block the bind; the
    /// retries only cover another socket taking the port in between.
    fn listen(&self) {
        if self.is_listening() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("broker proxy: rebinding {}: {e}; retrying", self.addr);
                    thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("broker proxy: cannot listen on {} again: {e}", self.addr),
            }
        };
        self.accept_on(listener);
    }

    fn accept_on(&self, listener: TcpListener) {
        // Non-blocking accept polled every few ms, so `stop` can end the thread (and close
        // the listening socket) promptly.
        listener
            .set_nonblocking(true)
            .expect("broker proxy: non-blocking");
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, shared, upstream) = (stop.clone(), self.shared.clone(), self.upstream);
        let handle = thread::Builder::new()
            .name("broker-proxy".into())
            .spawn(move || {
                while !flag.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => forward(client, upstream, &shared),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5))
                        }
                        Err(e) => {
                            eprintln!("broker proxy: accept: {e}");
                            thread::sleep(Duration::from_millis(5))
                        }
                    }
                }
                // `listener` drops here: the port refuses connections from now on.
            })
            .expect("broker proxy: thread");
        *self.acceptor.lock().unwrap() = Some((stop, handle));
    }

    /// Stops listening (the socket is closed when this returns) and shuts down every
    /// forwarded connection, both the client's side and tansu's.
    fn stop(&self) {
        let acceptor = self.acceptor.lock().unwrap().take();
        if let Some((stop, handle)) = acceptor {
            stop.store(true, Ordering::SeqCst);
            let _ = handle.join();
        }
        for (_, [client, server]) in self.shared.conns.lock().unwrap().drain() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    }
}

/// Connects `client` to tansu and copies bytes both ways on two threads; when either side
/// closes, or `stop` shuts the sockets down, both sockets are shut down.
fn forward(client: TcpStream, upstream: SocketAddr, shared: &Arc<Shared>) {
    let _ = client.set_nonblocking(false);
    let server = match TcpStream::connect(upstream) {
        Ok(s) => s,
        Err(e) => {
            // tansu is not there (it exited, or the test is ending): refuse this client.
            eprintln!("broker proxy: connect to tansu at {upstream}: {e}");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let clones = || -> io::Result<_> {
        Ok((
            [client.try_clone()?, server.try_clone()?],
            [client.try_clone()?, server.try_clone()?],
        ))
    };
    let Ok((registered, [client_2, server_2])) = clones() else {
        return;
    };
    shared.conns.lock().unwrap().insert(id, registered);
    for (from, to) in [(client, server), (server_2, client_2)] {
        let shared = shared.clone();
        let _ = thread::Builder::new()
            .name("broker-proxy-copy".into())
            .spawn(move || {
                pump(&from, &to);
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
                shared.conns.lock().unwrap().remove(&id);
            });
    }
}

/// Copies `from` to `to` until end of stream or an error.
fn pump(mut from: &TcpStream, mut to: &TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}
