//! `ritma run --metrics ADDR`: the run's counters in the Prometheus (OpenMetrics) text
//! format at `/metrics`, and `/healthz`, which fails when the capture loop stopped turning
//! or sealing fell more than a set number of windows behind the clock.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use ritma_schemas::records::{EventType, LossReason};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The capture loop counts as stopped when it has not turned for this long (it turns
/// at least every poll slice, 100 ms, with or without events).
const CAPTURE_STALL: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The counters a live run keeps for its metrics endpoint, shared by the capture loop,
/// the sealing and the shipping thread.
pub struct RunMetrics {
    registry: Registry,
    events: Family<TypeLabel, Counter>,
    lost: Family<ReasonLabel, Counter>,
    windows_sealed: Counter,
    seal_latency: Histogram,
    cas_bytes: Gauge,
    rss_bytes: Gauge,
    ship_lag_windows: Gauge,
    ship_lag_seconds: Gauge<f64, AtomicU64>,
    seal_lag_windows: Gauge,
    ring_fill: Gauge<f64, AtomicU64>,
    cone_shed: Counter,
    shipping: std::sync::OnceLock<Arc<crate::fleet::ShipCounters>>,
    /// Wall ns of the capture loop's last turn, 0 before the first and after it ended.
    capture_turned_ns: AtomicI64,
    /// The newest window sealed, +1 (0: none yet).
    sealed_below: AtomicU64,
    window_len_ns: u64,
    /// `/healthz` fails beyond this many windows between the clock and the newest seal.
    max_seal_lag: u64,
}

impl RunMetrics {
    /// The metrics of a run of windows of `window_len_ns`; `shipping`: the run ships to
    /// Kafka (its lag is then exported, once [`RunMetrics::shipping`] gives the counters).
    pub fn new(window_len_ns: u64, max_seal_lag: u64, shipping: bool) -> Self {
        let mut registry = Registry::with_prefix("ritma");
        let events = Family::<TypeLabel, Counter>::default();
        registry.register(
            "events",
            "Events captured, by type (written to the WAL)",
            events.clone(),
        );
        let lost = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "events_lost",
            "Events lost, by reason (each one sealed in a window record)",
            lost.clone(),
        );
        let windows_sealed = Counter::default();
        registry.register(
            "windows_sealed",
            "Windows sealed and signed",
            windows_sealed.clone(),
        );
        // 10 ms to ~20 s.
        let seal_latency = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.01, 2.0, 12),
        );
        registry.register(
            "seal_latency_seconds",
            "From a window's close to its signed checkpoint on disk",
            seal_latency.clone(),
        );
        let seal_lag_windows = Gauge::default();
        registry.register(
            "seal_lag_windows",
            "Windows between the clock's and the newest sealed one",
            seal_lag_windows.clone(),
        );
        let cas_bytes = Gauge::default();
        registry.register(
            "cas_bytes",
            "Bytes of executables Full capture kept in the store's CAS this run",
            cas_bytes.clone(),
        );
        let rss_bytes = Gauge::default();
        registry.register(
            "resident_memory_bytes",
            "Resident set size of the ritma process",
            rss_bytes.clone(),
        );
        let ring_fill = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "ringbuf_fill_ratio",
            "How full the kernel ring buffer is (0 to 1), as the capture loop last saw it",
            ring_fill.clone(),
        );
        let cone_shed = Counter::default();
        registry.register(
            "cone_partials_shed",
            "Partial cone matches dropped at the matcher's bound (their sequences can no longer match)",
            cone_shed.clone(),
        );
        let ship_lag_windows = Gauge::default();
        let ship_lag_seconds = Gauge::<f64, AtomicU64>::default();
        if shipping {
            registry.register(
                "shipping_lag_windows",
                "Sealed windows not yet acked by the Kafka brokers",
                ship_lag_windows.clone(),
            );
            registry.register(
                "shipping_lag_seconds",
                "How long ago the oldest sealed, unshipped window ended",
                ship_lag_seconds.clone(),
            );
        }
        RunMetrics {
            registry,
            events,
            lost,
            windows_sealed,
            seal_latency,
            cas_bytes,
            rss_bytes,
            ship_lag_windows,
            ship_lag_seconds,
            seal_lag_windows,
            ring_fill,
            cone_shed,
            shipping: std::sync::OnceLock::new(),
            capture_turned_ns: AtomicI64::new(0),
            sealed_below: AtomicU64::new(0),
            window_len_ns,
            max_seal_lag,
        }
    }

    /// The shipping thread's counters (lag in windows and seconds).
    pub fn shipping(&self, counters: Arc<crate::fleet::ShipCounters>) {
        let _ = self.shipping.set(counters);
    }

    pub fn events(&self, t: EventType, n: u64) {
        self.events
            .get_or_create(&TypeLabel { r#type: t.name() })
            .inc_by(n);
    }

    pub fn lost(&self, reason: LossReason, n: u64) {
        self.lost
            .get_or_create(&ReasonLabel {
                reason: reason.name(),
            })
            .inc_by(n);
    }

    /// `n` more partial cone matches shed at the matcher's bound.
    pub fn cone_partials_shed(&self, n: u64) {
        if n > 0 {
            self.cone_shed.inc_by(n);
        }
    }

    pub fn cas_bytes(&self, total: u64) {
        self.cas_bytes.set(total as i64);
    }

    /// The ring buffer's fill, 0 to 1.
    pub fn ring_fill(&self, fill: f64) {
        self.ring_fill.set(fill);
    }

    /// The capture loop turned (or, with `running` false, ended).
    pub fn capture_turned(&self, running: bool) {
        let now = match running {
            true => wall_ns(),
            false => 0,
        };
        self.capture_turned_ns.store(now, Ordering::Relaxed);
    }

    /// Window `window` was sealed, `latency` after it closed (when that is known).
    pub fn sealed(&self, window: u64, latency: Option<Duration>) {
        self.windows_sealed.inc();
        if let Some(l) = latency {
            self.seal_latency.observe(l.as_secs_f64());
        }
        self.sealed_below.fetch_max(window + 1, Ordering::Relaxed);
    }

    /// Why the run is unhealthy now, if it is.
    pub fn unhealthy(&self) -> Option<String> {
        let now = wall_ns();
        let turned = self.capture_turned_ns.load(Ordering::Relaxed);
        if turned == 0 {
            return Some("capture is not running".into());
        }
        let stalled = Duration::from_nanos(now.saturating_sub(turned).max(0) as u64);
        if stalled > CAPTURE_STALL {
            return Some(format!(
                "capture has not turned for {:.1} s",
                stalled.as_secs_f64()
            ));
        }
        let lag = self.seal_lag(now);
        if lag > self.max_seal_lag {
            return Some(format!(
                "sealing is {lag} windows behind the clock (more than {})",
                self.max_seal_lag
            ));
        }
        None
    }

    /// Windows closed by the clock and not sealed: the windows before the current one
    /// from the newest sealed on.
    fn seal_lag(&self, now_ns: i64) -> u64 {
        let current = u64::try_from(now_ns).unwrap_or(0) / self.window_len_ns.max(1);
        let sealed_below = self.sealed_below.load(Ordering::Relaxed);
        match sealed_below {
            0 => 0,
            below => current.saturating_sub(below),
        }
    }

    /// The `/metrics` text.
    pub fn render(&self) -> String {
        self.seal_lag_windows.set(self.seal_lag(wall_ns()) as i64);
        self.rss_bytes.set(rss_bytes() as i64);
        if let Some(s) = self.shipping.get() {
            self.ship_lag_windows
                .set(s.lag_windows.load(Ordering::Relaxed) as i64);
            self.ship_lag_seconds
                .set(s.lag_ms.load(Ordering::Relaxed) as f64 / 1000.0);
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

fn wall_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Resident set size from /proc/self/statm (0 if unreadable).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf only reads a constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// The HTTP server of `/metrics` and `/healthz`, on its own thread until dropped.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub addr: SocketAddr,
}

impl MetricsServer {
    pub fn start(addr: SocketAddr, metrics: Arc<RunMetrics>) -> anyhow::Result<Self> {
        let server = tiny_http::Server::http(addr)
            .map_err(|e| anyhow::anyhow!("serving metrics on {addr}: {e}"))?;
        let bound = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| anyhow::anyhow!("serving metrics on {addr}: not an IP address"))?;
        let server = Arc::new(server);
        let thread = {
            let server = server.clone();
            std::thread::Builder::new()
                .name("ritma:metrics".into())
                .spawn(move || {
                    for request in server.incoming_requests() {
                        let _ = respond(request, &metrics);
                    }
                })?
        };
        Ok(MetricsServer {
            server,
            thread: Some(thread),
            addr: bound,
        })
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn respond(request: tiny_http::Request, metrics: &RunMetrics) -> std::io::Result<()> {
    use tiny_http::{Header, Method, Response};
    let text_header = |v: &str| Header::from_bytes("Content-Type", v).expect("a valid header");
    let path = request.url().split('?').next().unwrap_or("");
    let (status, body, content_type) = match (request.method(), path) {
        (Method::Get, "/metrics") => (
            200,
            metrics.render(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        (Method::Get, "/healthz") => match metrics.unhealthy() {
            None => (200, "ok\n".to_owned(), "text/plain; charset=utf-8"),
            Some(why) => (503, format!("{why}\n"), "text/plain; charset=utf-8"),
        },
        (Method::Get, _) => (
            404,
            "not found: /metrics or /healthz\n".to_owned(),
            "text/plain; charset=utf-8",
        ),
        _ => (405, "only GET\n".to_owned(), "text/plain; charset=utf-8"),
    };
    request.respond(
        Response::from_string(body)
            .with_status_code(status)
            .with_header(text_header(content_type)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn health_fails_when_capture_is_not_turning_or_sealing_lags() {
        let m = RunMetrics::new(SECOND, 10, false);
        assert_eq!(m.unhealthy().as_deref(), Some("capture is not running"));
        m.capture_turned(true);
        assert_eq!(m.unhealthy(), None);
        let now_window = wall_ns() as u64 / SECOND;
        m.sealed(now_window - 5, None);
        assert_eq!(m.unhealthy(), None);
        // Sealing far behind: the newest sealed window is 20 windows ago.
        let m2 = RunMetrics::new(SECOND, 10, false);
        m2.capture_turned(true);
        m2.sealed(now_window - 20, None);
        let why = m2.unhealthy().unwrap();
        assert!(why.starts_with("sealing is 1"), "{why}");
        // A loop that last turned 6 s ago.
        m.capture_turned_ns
            .store(wall_ns() - 6_000_000_000, Ordering::Relaxed);
        let why = m.unhealthy().unwrap();
        assert!(why.starts_with("capture has not turned for 6."), "{why}");
        m.capture_turned(false);
        assert_eq!(m.unhealthy().as_deref(), Some("capture is not running"));
    }

    #[test]
    fn the_exposition_names_events_loss_and_seals() {
        let m = RunMetrics::new(SECOND, 10, false);
        m.events(EventType::Exec, 3);
        m.events(EventType::Open, 2);
        m.events(EventType::Exec, 1);
        m.lost(LossReason::KernelRingbufFull, 7);
        m.sealed(1, Some(Duration::from_millis(300)));
        m.cone_partials_shed(5);
        m.cone_partials_shed(0);
        let text = m.render();
        for line in [
            "ritma_events_total{type=\"exec\"} 4",
            "ritma_events_total{type=\"open\"} 2",
            "ritma_events_lost_total{reason=\"kernel_ringbuf_full\"} 7",
            "ritma_windows_sealed_total 1",
            "ritma_seal_latency_seconds_count 1",
            "ritma_seal_latency_seconds_bucket{le=\"0.32\"} 1",
            "ritma_cone_partials_shed_total 5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
