//! The live WebSocket source against a loopback server: quotes follow the messages, malformed
//! ones are counted, and the source reconnects and resumes when the server drops it.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bulwark_oracle::binance::LINE_BYTES_MAX;
use bulwark_oracle::source::{SourceKind, SourcesConfig, VenueConfig};
use bulwark_venues::{spawn_sources, Sources};
use futures_util::SinkExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

fn ticker(bid: &str, ask: &str) -> Message {
    Message::text(format!(
        r#"{{"stream":"btcusdt@bookTicker","data":{{"u":7,"s":"BTCUSDT","b":"{bid}","B":"1.5","a":"{ask}","A":"2"}}}}"#
    ))
}

fn trade(price: &str) -> Message {
    Message::text(format!(
        r#"{{"e":"trade","E":1723161256322,"s":"BTCUSDT","t":1,"p":"{price}","q":"0.01","m":false}}"#
    ))
}

fn live_config(url: String) -> SourcesConfig {
    SourcesConfig {
        source: SourceKind::Live,
        venues: vec![VenueConfig {
            name: "loopback".into(),
            weight: 1,
            url: Some(url),
            capture: None,
            speed: 1,
            repeat: false,
        }],
        reconnect_initial_ms: 20,
        reconnect_max_ms: 200,
        connect_timeout_ms: 5_000,
        idle_timeout_ms: 10_000,
    }
}

/// Polls `sources` until `done` holds, for at most 10 s.
async fn wait_for(sources: &Sources, what: &str, done: impl Fn(&Sources) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(sources) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            sources.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn price(sources: &Sources) -> Option<i64> {
    sources.quotes()[0].map(|q| q.price_micros)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_source_follows_counts_malformed_and_reconnects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/stream", listener.local_addr().unwrap());
    let (checked_tx, checked_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        // First connection: a trade, a book, three malformed messages, a subscription reply;
        // closed by the server once the test has looked.
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        for message in [
            trade("61800.30"),
            ticker("61837.63000000", "61837.65000000"),
            Message::text("{\"e\":\"trade\",\"p\":"),
            Message::text("not json at all"),
            Message::binary(vec![0xff, 0x00, 0x13]),
            Message::text(r#"{"result":null,"id":1}"#),
        ] {
            ws.send(message).await.unwrap();
        }
        checked_rx.await.unwrap();
        ws.close(None).await.unwrap();
        drop(ws);
        // Second connection: the source came back; a new book.
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        ws.send(ticker("62000.00", "62000.10")).await.unwrap();
        done_rx.await.unwrap();
        let _ = ws.close(None).await;
    });

    let sources = spawn_sources(&live_config(url), &tokio::runtime::Handle::current()).unwrap();
    assert_eq!(sources.names(), ["loopback"]);
    wait_for(&sources, "the first connection's messages", |s| {
        let st = &s.venue_status()[0];
        st.malformed == 3 && st.unsupported == 1
    })
    .await;
    let quote = sources.quotes()[0].expect("a quote");
    assert_eq!(
        quote.price_micros, 61_837_640_000,
        "the book's mid, not the trade"
    );
    assert_eq!(quote.half_spread_micros, 10_000);
    let status = sources.venue_status().remove(0);
    assert!(status.connected);
    assert_eq!((status.messages, status.reconnects), (2, 0));
    assert!(status.last_message_age_ms.is_some());

    checked_tx.send(()).unwrap();
    wait_for(&sources, "the second connection's book", |s| {
        price(s) == Some(62_000_050_000)
    })
    .await;
    let status = sources.venue_status().remove(0);
    assert!(status.connected && status.reconnects == 1, "{status:?}");
    assert_eq!((status.messages, status.malformed), (3, 3));
    let json = sources.status();
    assert_eq!(json["source"], "live");
    assert_eq!(json["venues"][0]["reconnects"], 1);

    done_tx.send(()).unwrap();
    drop(sources);
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_refused_and_the_connection_reopened() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "ws://{}/ws/btcusdt@bookTicker",
        listener.local_addr().unwrap()
    );
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        ws.send(ticker("100", "100.02")).await.unwrap();
        let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(LINE_BYTES_MAX + 1));
        // The client drops the connection on reading it; the send may or may not complete.
        let _ = ws.send(Message::text(huge)).await;
        let _ = ws.flush().await;
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        ws.send(ticker("200", "200.02")).await.unwrap();
        done_rx.await.unwrap();
    });
    let sources = spawn_sources(&live_config(url), &tokio::runtime::Handle::current()).unwrap();
    wait_for(&sources, "the book after the oversized message", |s| {
        price(s) == Some(200_010_000)
    })
    .await;
    let status = sources.venue_status().remove(0);
    assert_eq!((status.malformed, status.reconnects), (1, 1), "{status:?}");
    assert!(status.last_error.is_some(), "{status:?}");
    done_tx.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_non_tls_server_is_retried_and_reported() {
    // A plain TCP listener that never speaks TLS: a wss:// connection fails its handshake.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            held.push(tcp);
            if held.len() > 2 {
                held.remove(0);
            }
        }
    });
    let mut config = live_config(format!("wss://{addr}/ws"));
    config.connect_timeout_ms = 100;
    let sources = spawn_sources(&config, &tokio::runtime::Handle::current()).unwrap();
    wait_for(&sources, "two failed attempts", |s| {
        s.venue_status()[0].failures >= 2
    })
    .await;
    let status = sources.venue_status().remove(0);
    assert!(!status.connected && status.messages == 0, "{status:?}");
    assert_eq!(sources.quotes(), [None]);
    acceptor.abort();
}
