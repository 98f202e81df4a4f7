//! A real ClickHouse server for end-to-end tests, behind a proxy that can cut or corrupt the
//! bytes sent to it.
//!
//! [`Server::start`] runs Debian's clickhouse-server 18.16 (unpacked by
//! `tests/clickhouse/install-clickhouse.sh`, found through `RITMA_CLICKHOUSE` or the script's
//! cache path) as a child process with a config of its own in a temporary directory, HTTP on a
//! free loopback port. Without the binary, `start` returns `None` after saying why, so a
//! developer without it skips these tests; under CI (`CI=true`) it panics instead.
//!
//! Loaders reach the server through [`FaultProxy`]: it forwards bytes both ways and, when
//! armed, cuts every connection once a number of bytes went to the server (as a network
//! failure mid-INSERT would), or flips one byte there (the server then fails the INSERT
//! with its own error, mid-stream).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const STARTUP: Duration = Duration::from_secs(60);

/// A running clickhouse-server. Dropping it kills it.
pub struct Server {
    child: Child,
    dir: tempfile::TempDir,
    pub http: SocketAddr,
}

fn find_server() -> Result<PathBuf, String> {
    let path = match std::env::var_os("RITMA_CLICKHOUSE") {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("RITMA_TOOLS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp/ritma-tools"))
            .join("clickhouse-18.16-1/usr/sbin/clickhouse-server"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "no clickhouse-server at {}; install it with tests/clickhouse/install-clickhouse.sh \
             or set RITMA_CLICKHOUSE",
            path.display()
        ))
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl Server {
    /// Starts the server; `None` when its binary is missing outside CI.
    pub fn start() -> Option<Server> {
        let binary = match find_server() {
            Ok(b) => b,
            Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI=true: {why}")
            }
            Err(why) => {
                eprintln!("skipping: {why}");
                return None;
            }
        };
        let dir = tempfile::tempdir().expect("server dir");
        let d = dir.path().display().to_string();
        let (http, tcp) = (free_port(), free_port());
        std::fs::create_dir_all(dir.path().join("log")).unwrap();
        std::fs::write(
            dir.path().join("config.xml"),
            format!(
                r#"<?xml version="1.0"?><yandex>
 <logger><level>warning</level><log>{d}/log/server.log</log><errorlog>{d}/log/error.log</errorlog><size>10M</size><count>1</count></logger>
 <http_port>{http}</http_port><tcp_port>{tcp}</tcp_port><listen_host>127.0.0.1</listen_host>
 <path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path><user_files_path>{d}/user_files/</user_files_path>
 <format_schema_path>{d}/format_schemas/</format_schema_path><users_config>{d}/users.xml</users_config>
 <default_profile>default</default_profile><default_database>default</default_database>
 <mark_cache_size>67108864</mark_cache_size><uncompressed_cache_size>67108864</uncompressed_cache_size>
 <max_concurrent_queries>50</max_concurrent_queries><mlock_executable>false</mlock_executable>
</yandex>
"#
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("users.xml"),
            r#"<?xml version="1.0"?><yandex>
 <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
 <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default>
  <loader><password>s3cret</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></loader></users>
 <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"#,
        )
        .unwrap();
        let lib = binary
            .parent()
            .and_then(|p| p.parent())
            .map(|usr| usr.join("lib/x86_64-linux-gnu"))
            .unwrap();
        let log = std::fs::File::create(dir.path().join("log/stdout.log")).unwrap();
        let child = Command::new(&binary)
            .arg(format!("--config-file={d}/config.xml"))
            .env("LD_LIBRARY_PATH", lib)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let mut server = Server {
            child,
            dir,
            http: SocketAddr::from(([127, 0, 0, 1], http)),
        };
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Ok(body) = http_request(server.http, "GET", "/ping", "") {
                if body.1 == "Ok.\n" {
                    break;
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("clickhouse-server exited ({status}): {}", server.log());
            }
            assert!(
                Instant::now() < deadline,
                "clickhouse-server did not answer /ping in {STARTUP:?}: {}",
                server.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
        Some(server)
    }

    /// The server's logs, for failure messages.
    pub fn log(&self) -> String {
        ["log/stdout.log", "log/error.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Runs `sql` and returns its TabSeparated answer; panics on a server error.
    pub fn query(&self, sql: &str) -> String {
        match http_request(self.http, "POST", "/", sql) {
            Ok((200, body)) => body,
            Ok((status, body)) => panic!("ClickHouse answered {status} to {sql}: {body}"),
            Err(e) => panic!("ClickHouse at {}: {e}", self.http),
        }
    }

    /// A fresh database; its URL for `ritma load` (through `via`, else directly).
    pub fn database(&self, name: &str, via: Option<SocketAddr>) -> String {
        self.query(&format!("CREATE DATABASE {name}"));
        format!("http://{}/?database={name}", via.unwrap_or(self.http))
    }

    /// `SELECT count() FROM db.table`.
    pub fn count(&self, db: &str, table: &str) -> u64 {
        self.query(&format!("SELECT count() FROM {db}.{table}"))
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ClickHouse 26.9 engine (PyPI chdb-core, in-process) behind the small HTTP front of
/// `tests/clickhouse/chdb_http.py`: the engine is real, the HTTP transport emulated. Its python
/// comes from `RITMA_CLICKHOUSE_ENGINE` or `tests/clickhouse/install-engine.sh`'s cache path.
pub struct Engine {
    child: Child,
    dir: tempfile::TempDir,
    pub http: SocketAddr,
}

/// The python of the engine's virtualenv (chdb, pyarrow, duckdb); `None` when it is
/// missing outside CI.
pub fn engine_python() -> Option<PathBuf> {
    let python = match std::env::var_os("RITMA_CLICKHOUSE_ENGINE") {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("RITMA_TOOLS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp/ritma-tools"))
            .join("clickhouse-engine-2/bin/python3"),
    };
    if python.is_file() {
        return Some(python);
    }
    let why = format!(
        "no chdb engine at {}; install it with tests/clickhouse/install-engine.sh",
        python.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true: {why}");
    }
    eprintln!("skipping: {why}");
    None
}

impl Engine {
    /// Starts the front; `None` when the engine is missing outside CI.
    pub fn start() -> Option<Engine> {
        let python = engine_python()?;
        let dir = tempfile::tempdir().expect("engine dir");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/clickhouse/chdb_http.py"
        );
        let log = std::fs::File::create(dir.path().join("front.log")).unwrap();
        let child = Command::new(&python)
            .arg(script)
            .arg(dir.path().join("data"))
            .arg(dir.path().join("port"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", python.display()));
        let mut engine = Engine {
            child,
            dir,
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Ok(p) = std::fs::read_to_string(engine.dir.path().join("port")) {
                engine.http.set_port(p.trim().parse().unwrap());
                break;
            }
            if let Ok(Some(status)) = engine.child.try_wait() {
                panic!("the chdb front exited ({status}): {}", engine.log());
            }
            assert!(
                Instant::now() < deadline,
                "the chdb front did not start: {}",
                engine.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
        Some(engine)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("front.log")).unwrap_or_default()
    }

    /// Runs `sql` and returns its TabSeparated answer; panics on an engine error.
    pub fn query(&self, sql: &str) -> String {
        match http_request(self.http, "POST", "/", sql) {
            Ok((200, body)) => body,
            Ok((status, body)) => panic!("the engine answered {status} to {sql}: {body}"),
            Err(e) => panic!("the chdb front at {}: {e}", self.http),
        }
    }

    /// A fresh database; its URL for `ritma load`.
    pub fn database(&self, name: &str) -> String {
        self.query(&format!("CREATE DATABASE {name}"));
        format!("http://{}/?database={name}", self.http)
    }

    pub fn count(&self, db: &str, table: &str) -> u64 {
        self.query(&format!("SELECT count() FROM {db}.{table}"))
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bare HTTP/1.0 request; returns the status and body.
fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

/// What the proxy does to the bytes going to the server once armed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Cut every connection when this many more bytes went to the server, and refuse new
    /// ones until [`FaultProxy::heal`] (the server is unreachable).
    CutAfter(u64),
    /// Cut every connection at that point once, then forward again (a network blip).
    BlipAfter(u64),
    /// Flip the bits of the byte at this offset (counted from arming) of the bytes to the server.
    CorruptAt(u64),
}

/// A TCP forwarder to the server that injects one [`Fault`].
pub struct FaultProxy {
    pub addr: SocketAddr,
    shared: Arc<ProxyShared>,
}

#[derive(Default)]
struct ProxyShared {
    /// Bytes sent to the server since the proxy started.
    sent: AtomicU64,
    /// The fault's offset in `sent`, -1 when disarmed.
    at: AtomicI64,
    corrupt: AtomicBool,
    /// Whether a cut makes the proxy refuse connections.
    refuse_after_cut: AtomicBool,
    /// Once a cut happened: refuse every connection while set.
    refusing: AtomicBool,
    conns: Mutex<Vec<[TcpStream; 2]>>,
    stop: AtomicBool,
}

impl FaultProxy {
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let shared = Arc::new(ProxyShared {
            at: AtomicI64::new(-1),
            ..Default::default()
        });
        let proxy = FaultProxy {
            addr: listener.local_addr().unwrap(),
            shared: shared.clone(),
        };
        thread::spawn(move || {
            while !shared.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) if shared.refusing.load(Ordering::SeqCst) => drop(client),
                    Ok((client, _)) => forward(client, upstream, &shared),
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        proxy
    }

    /// Bytes forwarded to the server so far.
    pub fn sent(&self) -> u64 {
        self.shared.sent.load(Ordering::SeqCst)
    }

    /// Arms `fault`, counted from now. A cut also refuses new connections until `heal`.
    pub fn arm(&self, fault: Fault) {
        let now = self.sent() as i64;
        let (off, corrupt, refuse) = match fault {
            Fault::CutAfter(n) => (n, false, true),
            Fault::BlipAfter(n) => (n, false, false),
            Fault::CorruptAt(n) => (n, true, false),
        };
        self.shared.corrupt.store(corrupt, Ordering::SeqCst);
        self.shared.refuse_after_cut.store(refuse, Ordering::SeqCst);
        self.shared.at.store(now + off as i64, Ordering::SeqCst);
    }

    /// Accepts connections again and disarms.
    pub fn heal(&self) {
        self.shared.at.store(-1, Ordering::SeqCst);
        self.shared.refusing.store(false, Ordering::SeqCst);
    }

    /// Whether the armed fault has happened.
    pub fn fired(&self) -> bool {
        let at = self.shared.at.load(Ordering::SeqCst);
        at >= 0 && self.sent() as i64 > at
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for [a, b] in self.shared.conns.lock().unwrap().drain(..) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

fn forward(client: TcpStream, upstream: SocketAddr, shared: &Arc<ProxyShared>) {
    let _ = client.set_nonblocking(false);
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let pair =
        || -> std::io::Result<[TcpStream; 2]> { Ok([client.try_clone()?, server.try_clone()?]) };
    let (Ok(registered), Ok([client_2, server_2])) = (pair(), pair()) else {
        return;
    };
    shared.conns.lock().unwrap().push(registered);
    let up = shared.clone();
    thread::spawn(move || {
        let (mut from, mut to) = (client, server);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let start = up.sent.fetch_add(n as u64, Ordering::SeqCst) as i64;
            let at = up.at.load(Ordering::SeqCst);
            let mut len = n;
            if at >= 0 && at < start + n as i64 && at >= start {
                let i = (at - start) as usize;
                if up.corrupt.load(Ordering::SeqCst) {
                    buf[i] ^= 0xff;
                } else {
                    // The cut: send what came before the offset, then drop everything.
                    len = i;
                    if up.refuse_after_cut.load(Ordering::SeqCst) {
                        up.refusing.store(true, Ordering::SeqCst);
                    }
                    let _ = to.write_all(&buf[..len]);
                    for [a, b] in up.conns.lock().unwrap().drain(..) {
                        let _ = a.shutdown(Shutdown::Both);
                        let _ = b.shutdown(Shutdown::Both);
                    }
                    break;
                }
            }
            if to.write_all(&buf[..len]).is_err() {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
    thread::spawn(move || {
        let (mut from, mut to) = (server_2, client_2);
        let _ = std::io::copy(&mut from, &mut to);
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}
