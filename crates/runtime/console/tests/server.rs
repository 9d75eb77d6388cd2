//! The operator port over real loopback sockets: what it serves, and what a hostile or broken
//! client gets instead (a typed status, never a hang or a crash).
#![allow(clippy::unwrap_used)]

use bulwark_console::{EvidenceView, Limits, MemberView, OperatorServer, Pages, Scrape, View};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Default)]
struct Figures {
    scrapes: AtomicU64,
    views: AtomicU64,
}

impl Pages for Figures {
    fn metrics(&self) -> String {
        let n = self.scrapes.fetch_add(1, Ordering::Relaxed) + 1;
        let mut scrape = Scrape::new();
        scrape.counter("scrapes", "Scrapes served", n);
        scrape.render()
    }

    fn title(&self) -> String {
        "test".into()
    }

    /// A member quarantined from the third view on, with the evidence behind it.
    fn view(&self) -> View {
        let n = self.views.fetch_add(1, Ordering::Relaxed) + 1;
        let quarantined = n >= 3;
        View {
            title: "test".into(),
            time_ms: n * 1000,
            height: n,
            members: vec![MemberView {
                key: "cd".repeat(32),
                data_center: "dc-3".into(),
                sentinel: if quarantined {
                    "quarantined"
                } else {
                    "admitted"
                }
                .into(),
                ..MemberView::default()
            }],
            evidence: if quarantined {
                vec![EvidenceView {
                    id: 1,
                    kind: "refused_proposal".into(),
                    peer: "cd".repeat(32),
                    view: 4,
                    detail: "<script>alert(1)</script>".into(),
                }]
            } else {
                Vec::new()
            },
            ..View::default()
        }
    }

    fn evidence(&self, id: u64) -> Option<String> {
        (id == 1).then(|| "{\"kind\":\"refused_proposal\"}".into())
    }
}

fn start(limits: Limits) -> (OperatorServer, Arc<Figures>) {
    let figures = Arc::new(Figures::default());
    let server =
        OperatorServer::start("127.0.0.1:0".parse().unwrap(), figures.clone(), limits).unwrap();
    (server, figures)
}

/// Sends `request` and reads the whole answer (the server closes after one).
fn exchange(at: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(at).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn metrics_are_served_as_openmetrics_and_each_scrape_is_fresh() {
    let (server, _) = start(Limits::default());
    let at = server.local_addr();
    let first = exchange(at, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
    assert!(
        first.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
        "{first}"
    );
    assert!(
        first.contains("bulwark_scrapes_total 1\n# EOF\n"),
        "{first}"
    );
    let second = exchange(at, b"GET /metrics HTTP/1.0\r\n\r\n");
    assert!(second.contains("bulwark_scrapes_total 2\n"), "{second}");
    let head = exchange(at, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
    let page = exchange(at, b"GET / HTTP/1.1\r\nHost: localhost:17149\r\n\r\n");
    assert!(page.contains("Content-Type: text/html"), "{page}");
    assert!(
        page.contains("Content-Security-Policy: default-src 'none'"),
        "{page}"
    );
    assert!(page.contains("new EventSource(\"/events\")"), "{page}");
    // Nothing is fetched from elsewhere at run time.
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    server.stop();
}

#[test]
fn wrong_requests_get_their_status_and_change_nothing() {
    let (server, figures) = start(Limits::default());
    let at = server.local_addr();
    let cases: [(&[u8], &str); 5] = [
        (
            b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            "405",
        ),
        (b"DELETE / HTTP/1.1\r\n\r\n", "405"),
        (b"GET /admin HTTP/1.1\r\n\r\n", "404"),
        (b"GET /metrics HTTP/3\r\n\r\n", "505"),
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
            "400",
        ),
    ];
    for (request, status) in cases {
        let answer = exchange(at, request);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{status}: {answer}"
        );
    }
    // A name other than an IP or localhost: a rebinding page's request, refused unread.
    let rebound = exchange(
        at,
        b"GET /view.json HTTP/1.1\r\nHost: attacker.example\r\n\r\n",
    );
    assert!(rebound.starts_with("HTTP/1.1 421 "), "{rebound}");
    let refused = exchange(at, b"PUT /metrics HTTP/1.1\r\n\r\n");
    assert!(refused.contains("Allow: GET, HEAD\r\n"), "{refused}");
    assert!(refused.contains("read-only"), "{refused}");
    assert_eq!(
        figures.scrapes.load(Ordering::Relaxed),
        0,
        "no refused request scraped"
    );
}

#[test]
fn an_endless_head_is_cut_at_the_limit() {
    let (server, _) = start(Limits {
        head_bytes_max: 1024,
        ..Limits::default()
    });
    let mut stream = TcpStream::connect(server.local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = b"GET /metrics HTTP/1.1\r\n".to_vec();
    request.extend(std::iter::repeat_n(b'a', 4096));
    // The server may close before all of it is written; what it answered is what counts.
    let _ = stream.write_all(&request);
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
}

#[test]
fn a_client_that_trickles_its_head_is_timed_out() {
    let (server, figures) = start(Limits {
        head_timeout: Duration::from_millis(300),
        ..Limits::default()
    });
    let mut stream = TcpStream::connect(server.local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"GET /metrics HT").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert_eq!(figures.scrapes.load(Ordering::Relaxed), 0);
}

#[test]
fn connections_over_the_limit_are_refused_and_the_port_recovers() {
    let (server, _) = start(Limits {
        connections_max: 2,
        head_timeout: Duration::from_secs(2),
        ..Limits::default()
    });
    let at = server.local_addr();
    // Two idle connections hold both slots.
    let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(at).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    // The refusal is written at accept, before any request is read (a client that already
    // sent one may see the close as a reset instead).
    let mut over = TcpStream::connect(at).unwrap();
    over.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut busy = String::new();
    over.read_to_string(&mut busy).unwrap();
    assert!(busy.starts_with("HTTP/1.1 503 "), "{busy}");
    drop(held);
    // The held connections time out (2 s) and free their slots.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        // A refusal written while the request is in flight may arrive as a reset instead.
        let mut stream = TcpStream::connect(at).unwrap();
        let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        if answer.starts_with("HTTP/1.1 200 ") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{answer}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_page_gets_a_view_a_second_with_the_quarantine_on_its_timeline() {
    let (server, _) = start(Limits::default());
    let at = server.local_addr();
    let mut stream = TcpStream::connect(at).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /events HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    // Read until three views arrived (the third shows the quarantine).
    let mut text = String::new();
    let mut chunk = [0u8; 4096];
    while text.matches("data: ").count() < 3 {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "the stream ended early: {text}");
        text.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream"),
        "{text}"
    );
    // The head (and the retry line), then one view per `data:` line.
    let last = text.split("data: ").skip(1).nth(2).unwrap();
    let view: View = serde_json::from_str(last.split("\n\n").next().unwrap()).unwrap();
    let kinds: Vec<&str> = view.events.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.contains(&"quarantined"), "{kinds:?}");
    let quarantine = view
        .events
        .iter()
        .find(|e| e.kind == "quarantined")
        .unwrap();
    assert_eq!(quarantine.evidence, Some(1));
    // The record the timeline links to, and no other.
    let record = exchange(at, b"GET /evidence/1 HTTP/1.1\r\n\r\n");
    assert!(record.starts_with("HTTP/1.1 200 OK"), "{record}");
    assert!(record.contains("refused_proposal"), "{record}");
    for missing in [
        &b"GET /evidence/2 HTTP/1.1\r\n\r\n"[..],
        b"GET /evidence/x HTTP/1.1\r\n\r\n",
    ] {
        let answer = exchange(at, missing);
        assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
    }
    let json = exchange(at, b"GET /view.json HTTP/1.1\r\n\r\n");
    assert!(json.contains("\"title\":\"test\""), "{json}");
}

#[test]
fn event_streams_never_take_every_connection() {
    let (server, _) = start(Limits {
        streams_max: 1,
        ..Limits::default()
    });
    let at = server.local_addr();
    let mut first = TcpStream::connect(at).unwrap();
    first.write_all(b"GET /events HTTP/1.1\r\n\r\n").unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut chunk = [0u8; 256];
    assert!(first.read(&mut chunk).unwrap() > 0);
    let second = exchange(at, b"GET /events HTTP/1.1\r\n\r\n");
    assert!(second.starts_with("HTTP/1.1 503 "), "{second}");
    // A scrape still gets through.
    let metrics = exchange(at, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert!(metrics.starts_with("HTTP/1.1 200 "), "{metrics}");
    drop(first);
}
