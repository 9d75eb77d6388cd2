//! The operator port's HTTP/1.1 server: read-only, bounded, one request per connection.
//!
//! Routes: `/` the console page (embedded, no external assets), `/events` its live updates
//! (server-sent events, one [`View`] a second), `/view.json` the newest view, `/evidence/<id>`
//! one fault evidence record, `/metrics` the OpenMetrics exposition.
//!
//! - GET (or HEAD) only; any other method is answered 405 and nothing else happens. No request
//!   can change anything: the server only calls [`Pages`], whose methods take a snapshot.
//! - A sampler thread takes a view every second and draws the [`Timeline`] from consecutive
//!   views, so the timeline is kept whether or not a page is open; event streams send the
//!   newest sample. At most [`Limits::streams_max`] streams at once, each at most
//!   [`Limits::stream_lifetime`] (the browser reconnects), so streams never take every
//!   connection a scrape needs.
//! - The request head is read within [`Limits::head_timeout`] in total (a client trickling bytes
//!   cannot hold a thread) and may be at most [`Limits::head_bytes_max`]; a body is never read.
//! - At most [`Limits::connections_max`] connections at once; one over it is answered 503 and
//!   closed by the accept thread.
//! - Every answer closes the connection (`Connection: close`), so no state outlives a request.
//!
//! [`parse_head`] is a pure function of the bytes, with a typed [`HeadError`] for every refusal.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::view::{Timeline, View};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often the accept thread looks for new connections and for [`OperatorServer::stop`].
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// The console page, embedded in the binary (no build step, nothing fetched at run time).
const PAGE: &str = include_str!("page.html");
/// What the page may do: run its own inline script and style, talk to this port, nothing else.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/// How often the sampler takes a view and a stream sends one.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// What the operator port serves. Every method takes a snapshot and changes nothing.
pub trait Pages: Send + Sync + 'static {
    /// The OpenMetrics text exposition (see [`crate::Scrape`]).
    fn metrics(&self) -> String;
    /// What this operator port is (e.g. `node node-0 (dc-0)`).
    fn title(&self) -> String;
    /// The committee as this part sees it now (its `events` are filled by the server's
    /// [`Timeline`]).
    fn view(&self) -> View;
    /// Fault evidence record `id` (the [`crate::view::EvidenceView::id`]) as JSON, if still
    /// held.
    fn evidence(&self, id: u64) -> Option<String>;
}

/// Bounds of the operator port.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub connections_max: usize,
    /// Longest request head (request line and headers), bytes.
    pub head_bytes_max: usize,
    /// Time for the whole request head to arrive.
    pub head_timeout: Duration,
    /// Time for each write of the answer.
    pub write_timeout: Duration,
    /// Event streams (`/events`) at once; further ones are answered 503.
    pub streams_max: usize,
    /// How long one event stream lasts before the server ends it (the browser reconnects).
    pub stream_lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections_max: 16,
            head_bytes_max: 8 * 1024,
            head_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            streams_max: 8,
            stream_lifetime: Duration::from_secs(600),
        }
    }
}

/// Why a request head is refused. Each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    /// The head is longer than [`Limits::head_bytes_max`] (431).
    #[error("the request head is longer than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// The request line is not `METHOD TARGET HTTP/1.x`, or the head is not text (400).
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// The method is not GET or HEAD (405).
    #[error("method {0} is not allowed: the operator port is read-only (GET, HEAD)")]
    Method(String),
    /// Not HTTP/1.0 or HTTP/1.1 (505).
    #[error("HTTP version {0} is not supported (HTTP/1.0, HTTP/1.1)")]
    Version(String),
    /// The head did not arrive in time (408).
    #[error("the request head did not arrive within {0:?}")]
    Timeout(Duration),
}

impl HeadError {
    fn status(&self) -> (u16, &'static str) {
        match self {
            HeadError::TooLarge { .. } => (431, "Request Header Fields Too Large"),
            HeadError::Malformed(_) => (400, "Bad Request"),
            HeadError::Method(_) => (405, "Method Not Allowed"),
            HeadError::Version(_) => (505, "HTTP Version Not Supported"),
            HeadError::Timeout(_) => (408, "Request Timeout"),
        }
    }
}

/// A request the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Whether only the headers are wanted (HEAD).
    pub head_only: bool,
    /// The path, without any query string.
    pub path: String,
    /// The `Host` header's value, if the request had one (lowercase, port included).
    pub host: Option<String>,
}

/// Longest method name accepted before it is refused as malformed.
const METHOD_MAX: usize = 16;
/// Longest request target.
const TARGET_MAX: usize = 2 * 1024;

/// Parses a complete request head (`bytes` up to and including the blank line, or any prefix
/// of it that holds the request line). Headers are not needed and not interpreted.
pub fn parse_head(bytes: &[u8]) -> Result<Head, HeadError> {
    let line_end = bytes
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or(HeadError::Malformed("no request line"))?;
    let line = std::str::from_utf8(&bytes[..line_end])
        .map_err(|_| HeadError::Malformed("the request line is not UTF-8"))?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed(
            "the request line is not METHOD TARGET VERSION",
        ));
    };
    if method.is_empty()
        || method.len() > METHOD_MAX
        || !method.bytes().all(|b| b.is_ascii_uppercase())
    {
        return Err(HeadError::Malformed("not a method name"));
    }
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        if version.starts_with("HTTP/") && version.len() <= 16 && version.is_ascii() {
            return Err(HeadError::Version(version.to_string()));
        }
        return Err(HeadError::Malformed("not an HTTP version"));
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        other => return Err(HeadError::Method(other.to_string())),
    };
    if !target.starts_with('/') || target.len() > TARGET_MAX || !target.is_ascii() {
        return Err(HeadError::Malformed(
            "the target is not an absolute path of at most 2 KiB",
        ));
    }
    let path = target.split(['?', '#']).next().unwrap_or("/").to_string();
    let host = bytes[line_end + 2..]
        .split(|b| *b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("host")
                .then(|| value.trim().to_ascii_lowercase())
        });
    Ok(Head {
        head_only,
        path,
        host,
    })
}

/// Whether a request naming `host` may be answered: no `Host` (HTTP/1.0), an IP literal, or
/// `localhost`, each with any port. Any other name is refused, so that a web page an operator
/// visits cannot rebind its own name to this machine's loopback and read the port.
pub fn host_allowed(host: Option<&str>) -> bool {
    let Some(host) = host else {
        return true;
    };
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => {
            return rest
                .split(']')
                .next()
                .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
        }
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok()
}

/// A running operator port.
pub struct OperatorServer {
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    sampler: Option<JoinHandle<()>>,
}

/// What the connections share: the pages, the newest sampled view, the counts of connections
/// and streams, the stop flag.
struct Served {
    pages: Arc<dyn Pages>,
    limits: Limits,
    latest: Mutex<Option<Arc<String>>>,
    streams: AtomicUsize,
    stop: Arc<AtomicBool>,
}

impl Served {
    fn latest(&self) -> Option<Arc<String>> {
        self.latest
            .lock()
            .expect("the latest view lock must not be poisoned")
            .clone()
    }
}

impl std::fmt::Debug for OperatorServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorServer")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl OperatorServer {
    /// Binds `listen` and serves `pages` from an accept thread until [`OperatorServer::stop`]
    /// or drop.
    pub fn start(listen: SocketAddr, pages: Arc<dyn Pages>, limits: Limits) -> io::Result<Self> {
        let listener = TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(Served {
            pages,
            limits,
            latest: Mutex::new(None),
            streams: AtomicUsize::new(0),
            stop: stop.clone(),
        });
        let sampler = {
            let served = served.clone();
            thread::Builder::new()
                .name("operator-sampler".into())
                .spawn(move || sample(&served))?
        };
        let accept = {
            let served = served.clone();
            thread::Builder::new()
                .name("operator-accept".into())
                .spawn(move || accept_loop(listener, served))?
        };
        Ok(Self {
            local,
            stop,
            accept: Some(accept),
            sampler: Some(sampler),
        })
    }

    /// The bound address (with the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops accepting and waits for the accept thread. Connections in progress finish on
    /// their own threads (each within its timeouts).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
    }
}

impl Drop for OperatorServer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// `f`'s answer, or `None` when it panicked: a part's page that hits a broken invariant costs
/// that one answer (a 500), never the port.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(_) => {
            tracing::error!(what, "operator port: the page panicked");
            None
        }
    }
}

/// Every [`SAMPLE_EVERY`] until stopped: a view, its timeline, serialized once for every
/// stream and `/view.json`.
fn sample(served: &Served) {
    let mut timeline = Timeline::default();
    while !served.stop.load(Ordering::Relaxed) {
        let Some(mut view) = guarded("view", || served.pages.view()) else {
            thread::sleep(SAMPLE_EVERY);
            continue;
        };
        timeline.observe(&mut view);
        match serde_json::to_string(&view) {
            Ok(json) => {
                *served
                    .latest
                    .lock()
                    .expect("the latest view lock must not be poisoned") = Some(Arc::new(json));
            }
            Err(error) => tracing::error!(%error, "operator port: the view does not serialize"),
        }
        let started = Instant::now();
        while started.elapsed() < SAMPLE_EVERY && !served.stop.load(Ordering::Relaxed) {
            thread::sleep(ACCEPT_POLL);
        }
    }
}

fn accept_loop(listener: TcpListener, served: Arc<Served>) {
    let (limits, stop) = (served.limits, served.stop.clone());
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(ACCEPT_POLL);
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "operator port: accept failed");
                thread::sleep(ACCEPT_POLL);
                continue;
            }
        };
        if stream.set_nonblocking(false).is_err() {
            continue;
        }
        if active.load(Ordering::Acquire) >= limits.connections_max {
            let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
            let mut stream = stream;
            let _ = respond(
                &mut stream,
                503,
                "Service Unavailable",
                "text/plain; charset=utf-8",
                b"too many operator connections at once; try again\n",
                false,
            );
            continue;
        }
        active.fetch_add(1, Ordering::AcqRel);
        let (served, held) = (served.clone(), Held(active.clone()));
        let spawned = thread::Builder::new()
            .name("operator-conn".into())
            .spawn(move || {
                let _held = held;
                serve(stream, &served);
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "operator port: cannot start a connection thread");
        }
    }
}

/// A connection's place in the count, given back when its thread ends (even by a panic).
struct Held(Arc<AtomicUsize>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Reads the head within the limits, then answers once (or streams) and closes.
fn serve(mut stream: TcpStream, served: &Served) {
    let limits = served.limits;
    let _ = stream.set_write_timeout(Some(limits.write_timeout));
    let answer = match read_head(&mut stream, limits).and_then(|bytes| parse_head(&bytes)) {
        Ok(head) if !host_allowed(head.host.as_deref()) => Answer {
            status: 421,
            reason: "Misdirected Request",
            content_type: "text/plain; charset=utf-8",
            body: b"the operator port answers requests to an IP address or localhost only\n"
                .to_vec(),
            head_only: head.head_only,
        },
        Ok(head) if head.path == "/events" && !head.head_only => {
            stream_events(&mut stream, served);
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        Ok(head) => route(&head, served),
        Err(error) => {
            let (status, reason) = error.status();
            let mut text = error.to_string();
            text.push('\n');
            Answer {
                status,
                reason,
                content_type: "text/plain; charset=utf-8",
                body: text.into_bytes(),
                head_only: false,
            }
        }
    };
    let _ = respond(
        &mut stream,
        answer.status,
        answer.reason,
        answer.content_type,
        &answer.body,
        answer.head_only,
    );
    close_gently(stream);
}

/// Ends the answer with a FIN, then reads and drops what the client still sends (at most
/// 64 KiB, for at most 200 ms) before closing: closing with unread bytes would send a reset,
/// which can destroy the answer in flight.
fn close_gently(mut stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + Duration::from_millis(200);
    let mut drained = 0usize;
    let mut chunk = [0u8; 4096];
    while drained < 64 * 1024 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

struct Answer {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    head_only: bool,
}

fn route(head: &Head, served: &Served) -> Answer {
    const TEXT: &str = "text/plain; charset=utf-8";
    const JSON: &str = "application/json";
    let path = head.path.as_str();
    let (status, reason, content_type, body) = if path == "/metrics" {
        match guarded("metrics", || served.pages.metrics()) {
            Some(text) => (
                200,
                "OK",
                crate::exposition::OPENMETRICS_CONTENT_TYPE,
                text.into_bytes(),
            ),
            None => (
                500,
                "Internal Server Error",
                TEXT,
                b"the metrics could not be taken (see the log)\n".to_vec(),
            ),
        }
    } else if path == "/" || path == "/index.html" {
        (
            200,
            "OK",
            "text/html; charset=utf-8",
            PAGE.as_bytes().to_vec(),
        )
    } else if path == "/view.json" {
        match served.latest() {
            Some(json) => (200, "OK", JSON, json.as_bytes().to_vec()),
            None => (
                503,
                "Service Unavailable",
                TEXT,
                b"the first view is not sampled yet; try again in a second\n".to_vec(),
            ),
        }
    } else if let Some(id) = path.strip_prefix("/evidence/") {
        let record = id
            .parse::<u64>()
            .ok()
            .and_then(|id| guarded("evidence", || served.pages.evidence(id)).flatten());
        match record {
            Some(json) => (200, "OK", JSON, json.into_bytes()),
            None => (
                404,
                "Not Found",
                TEXT,
                b"no such evidence record here (its id is a number, and a node keeps the newest 4096)\n"
                    .to_vec(),
            ),
        }
    } else {
        (
            404,
            "Not Found",
            TEXT,
            b"not found: the operator port serves /, /events, /view.json, /evidence/<id> and /metrics\n"
                .to_vec(),
        )
    };
    Answer {
        status,
        reason,
        content_type,
        body,
        head_only: head.head_only,
    }
}

/// Server-sent events: the newest view every [`SAMPLE_EVERY`], until the client goes, the
/// server stops, or the stream's lifetime ends.
fn stream_events(stream: &mut TcpStream, served: &Served) {
    let limits = served.limits;
    if served.streams.fetch_add(1, Ordering::AcqRel) >= limits.streams_max {
        served.streams.fetch_sub(1, Ordering::AcqRel);
        let _ = respond(
            stream,
            503,
            "Service Unavailable",
            "text/plain; charset=utf-8",
            b"too many event streams at once; try again\n",
            false,
        );
        return;
    }
    let _slot = Slot(&served.streams);
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\nretry: 1000\n\n";
    let started = Instant::now();
    let mut ok = stream.write_all(head.as_bytes()).is_ok();
    let mut sent: Option<Arc<String>> = None;
    while ok && !served.stop.load(Ordering::Relaxed) && started.elapsed() < limits.stream_lifetime {
        if let Some(json) = served.latest() {
            if sent.as_ref().is_none_or(|last| !Arc::ptr_eq(last, &json)) {
                ok = stream
                    .write_all(format!("data: {json}\n\n").as_bytes())
                    .and_then(|()| stream.flush())
                    .is_ok();
                sent = Some(json);
            }
        }
        thread::sleep(ACCEPT_POLL * 5);
    }
}

/// An event stream's place in [`Served::streams`], given back when the stream ends.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Reads until the blank line that ends the head, within the size and time limits.
fn read_head(stream: &mut TcpStream, limits: Limits) -> Result<Vec<u8>, HeadError> {
    let deadline = Instant::now() + limits.head_timeout;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(HeadError::Timeout(limits.head_timeout));
        }
        let read = match stream.read(&mut chunk) {
            Ok(0) => return Err(HeadError::Malformed("the connection closed mid-request")),
            Ok(read) => read,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(HeadError::Timeout(limits.head_timeout))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(HeadError::Malformed("the connection failed mid-request")),
        };
        // Only the new bytes and the three before them can complete the terminator.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..read]);
        if let Some(end) = head[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(from + end + 4);
            if head.len() > limits.head_bytes_max {
                break;
            }
            return Ok(head);
        }
        if head.len() > limits.head_bytes_max {
            break;
        }
    }
    Err(HeadError::TooLarge {
        max: limits.head_bytes_max,
    })
}

fn respond(
    stream: &mut TcpStream,
    status: u16,
    reason: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nContent-Security-Policy: {CSP}\r\nConnection: close\r\n",
        body.len()
    );
    if status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(body);
    }
    stream.write_all(&bytes)?;
    stream.flush()
}

/// `GET path` from an operator port at `at` (another node's, for `bulwark up`, or a test's):
/// the body of a 200 answer, or why there is none. The whole answer (at most 16 MiB) must
/// arrive within `timeout`.
pub fn get(at: SocketAddr, path: &str, timeout: Duration) -> Result<String, String> {
    let mut stream =
        TcpStream::connect_timeout(&at, timeout).map_err(|e| format!("connect {at}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .map_err(|e| format!("send to {at}: {e}"))?;
    // The whole answer within `timeout` (a peer trickling bytes cannot hold the caller).
    let deadline = Instant::now() + timeout;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("{at} did not answer within {timeout:?}"));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) if answer.len() + n <= 16 << 20 => answer.extend_from_slice(&chunk[..n]),
            Ok(_) => return Err(format!("{at} answered more than 16 MiB")),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read from {at}: {e}")),
        }
    }
    let answer = String::from_utf8(answer).map_err(|_| format!("{at} answered non-UTF-8"))?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP head from {at}"))?;
    if !head.starts_with("HTTP/1.1 200 ") {
        return Err(format!(
            "{at} answered {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_get_is_parsed_and_the_query_dropped() {
        let head = parse_head(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(
            head,
            Head {
                head_only: false,
                path: "/metrics".into(),
                host: Some("a".into()),
            }
        );
        assert!(parse_head(b"HEAD / HTTP/1.0\r\n\r\n").unwrap().head_only);
    }

    #[test]
    fn only_ip_literals_and_localhost_are_answered() {
        for allowed in [
            None,
            Some("127.0.0.1"),
            Some("127.0.0.1:17149"),
            Some("localhost:17149"),
            Some("[::1]:7300"),
            Some("10.1.2.3:7300"),
        ] {
            assert!(host_allowed(allowed), "{allowed:?}");
        }
        for refused in [
            Some("evil.example"),
            Some("evil.example:17149"),
            Some("localhost.evil.example"),
            Some("[evil]:80"),
            Some(""),
        ] {
            assert!(!host_allowed(refused), "{refused:?}");
        }
        let head = parse_head(b"GET / HTTP/1.1\r\nhOsT:  Evil.Example:80 \r\n\r\n").unwrap();
        assert_eq!(head.host.as_deref(), Some("evil.example:80"));
    }

    #[test]
    fn every_malformed_head_gets_its_typed_refusal() {
        assert_eq!(
            parse_head(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Err(HeadError::Method("POST".into()))
        );
        assert_eq!(
            parse_head(b"GET /metrics HTTP/2.0\r\n\r\n"),
            Err(HeadError::Version("HTTP/2.0".into()))
        );
        for bad in [
            &b"GET /metrics\r\n\r\n"[..],
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"get /metrics HTTP/1.1\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET /m\xff HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1 extra\r\n\r\n",
            b"GET /metrics SPDY\r\n\r\n",
            b"no line end at all",
            b"",
        ] {
            assert!(
                matches!(parse_head(bad), Err(HeadError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(TARGET_MAX));
        assert!(matches!(
            parse_head(long.as_bytes()),
            Err(HeadError::Malformed(_))
        ));
    }
}
