//! A venue's live WebSocket (feature `live`): one tokio task per venue connects, folds every
//! text message into the venue's [`VenueFeed`], and reconnects with capped exponential backoff.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{connect_async_tls_with_config, Connector};

use crate::sources::{lock, SharedFeed};
use bulwark_oracle::binance::LINE_BYTES_MAX;
use bulwark_oracle::node::SourceQuote;
use bulwark_oracle::source::config::{check_url, SourcesConfig};
use bulwark_oracle::source::{Backoff, Clock, Outcome, SourceError, VenueSource, VenueStatus};

/// How a live connection behaves (the timing part of [`SourcesConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveOptions {
    /// First reconnect delay, ms.
    pub reconnect_initial_ms: u64,
    /// Largest reconnect delay, ms.
    pub reconnect_max_ms: u64,
    /// Longest time to open a connection (TCP, TLS, upgrade), ms.
    pub connect_timeout_ms: u64,
    /// A connection silent this long is dropped and reopened, ms.
    pub idle_timeout_ms: u64,
    /// Longest message and frame accepted, bytes; a longer one is counted as malformed and the
    /// connection is reopened.
    pub message_bytes_max: usize,
}

impl LiveOptions {
    /// The options a sources config sets; messages bounded by [`LINE_BYTES_MAX`].
    pub fn from_config(config: &SourcesConfig) -> Self {
        LiveOptions {
            reconnect_initial_ms: config.reconnect_initial_ms,
            reconnect_max_ms: config.reconnect_max_ms,
            connect_timeout_ms: config.connect_timeout_ms,
            idle_timeout_ms: config.idle_timeout_ms,
            message_bytes_max: LINE_BYTES_MAX,
        }
    }
}

/// A venue read from its WebSocket URL by a task on a tokio runtime. Dropping it aborts the
/// task (and so closes the connection).
pub struct LiveWebSocket {
    name: String,
    feed: SharedFeed,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for LiveWebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveWebSocket")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl LiveWebSocket {
    /// Starts reading venue `name` at `url` (`ws://` or `wss://`) on `runtime`, whose time
    /// driver must be enabled. Quotes are stamped with `clock`. Fails only on a malformed URL or
    /// TLS set-up; an unreachable venue is retried forever and shows in the status.
    pub fn spawn(
        name: &str,
        url: &str,
        options: &LiveOptions,
        runtime: &Handle,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, SourceError> {
        check_url(url).map_err(|reason| SourceError::BadUrl {
            venue: name.to_owned(),
            url: url.to_owned(),
            reason,
        })?;
        let tls = tls_client_config()?;
        let feed = SharedFeed::default();
        let task = runtime.spawn(run(
            name.to_owned(),
            url.to_owned(),
            *options,
            tls,
            feed.clone(),
            clock,
        ));
        Ok(LiveWebSocket {
            name: name.to_owned(),
            feed,
            task,
        })
    }
}

impl Drop for LiveWebSocket {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl VenueSource for LiveWebSocket {
    fn name(&self) -> &str {
        &self.name
    }

    fn quote(&self) -> Option<SourceQuote> {
        lock(&self.feed).quote()
    }

    fn status(&self, now_ms: u64) -> VenueStatus {
        lock(&self.feed).status(&self.name, "live", now_ms)
    }
}

/// rustls 0.23 with the aws-lc-rs provider named explicitly (so no process-wide default is
/// needed), its safe default protocol versions and the Mozilla roots.
pub(crate) fn tls_client_config() -> Result<Arc<rustls::ClientConfig>, SourceError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SourceError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn run(
    name: String,
    url: String,
    options: LiveOptions,
    tls: Arc<rustls::ClientConfig>,
    feed: SharedFeed,
    clock: Arc<dyn Clock>,
) {
    let mut backoff = Backoff::new(options.reconnect_initial_ms, options.reconnect_max_ms);
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(options.message_bytes_max))
        .max_frame_size(Some(options.message_bytes_max));
    loop {
        let connect = connect_async_tls_with_config(
            url.as_str(),
            Some(ws_config),
            true,
            Some(Connector::Rustls(tls.clone())),
        );
        match tokio::time::timeout(Duration::from_millis(options.connect_timeout_ms), connect).await
        {
            Err(_) => {
                tracing::warn!(venue = %name, "oracle source: connect timed out");
                lock(&feed).fail("connect timed out");
            }
            Ok(Err(e)) => {
                tracing::warn!(venue = %name, error = %e, "oracle source: connect failed");
                lock(&feed).fail(&e.to_string());
            }
            Ok(Ok((mut stream, _response))) => {
                tracing::info!(venue = %name, "oracle source: connected");
                lock(&feed).opened();
                let idle = Duration::from_millis(options.idle_timeout_ms);
                let (delivered, error) = read(&mut stream, idle, &feed, clock.as_ref()).await;
                match &error {
                    Some(e) => {
                        tracing::warn!(venue = %name, error = %e, "oracle source: connection lost")
                    }
                    None => tracing::info!(venue = %name, "oracle source: connection closed"),
                }
                lock(&feed).closed(error.as_deref());
                if delivered {
                    backoff.reset();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(backoff.next_delay_ms())).await;
    }
}

/// Reads one connection until it ends: whether any message was applied, and the error that
/// ended it (`None`: a clean close).
async fn read<S>(
    stream: &mut S,
    idle: Duration,
    feed: &SharedFeed,
    clock: &dyn Clock,
) -> (bool, Option<String>)
where
    S: futures_util::Stream<Item = Result<Message, WsError>> + Unpin,
{
    let mut delivered = false;
    loop {
        let next = match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => return (delivered, Some("idle timeout".to_owned())),
            Ok(None) => return (delivered, None),
            Ok(Some(next)) => next,
        };
        match next {
            Ok(Message::Text(text)) => {
                let outcome = lock(feed).apply_text(clock.now_ms(), text.as_str());
                match outcome {
                    Outcome::Applied => delivered = true,
                    Outcome::Malformed(e) => {
                        tracing::debug!(error = %e, "oracle source: malformed message")
                    }
                    _ => {}
                }
            }
            Ok(Message::Binary(_)) => lock(feed).refuse(clock.now_ms()),
            // Pings are answered by tungstenite on the next read; a close frame is followed by
            // the end of the stream.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_)) => {}
            Err(WsError::ConnectionClosed) => return (delivered, None),
            Err(e @ (WsError::Capacity(_) | WsError::Utf8(_))) => {
                lock(feed).refuse(clock.now_ms());
                return (delivered, Some(e.to_string()));
            }
            Err(e) => return (delivered, Some(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_configuration_builds_with_aws_lc_rs() {
        let config = tls_client_config().expect("builds");
        assert!(!config.crypto_provider().kx_groups.is_empty());
    }
}
