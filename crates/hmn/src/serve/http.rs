//! The HTTP side: three answers, and limits so a bad client cannot take the exporter down.
//!
//! `GET /metrics` copies the latest published sample (see `follower.rs`) in the format the
//! scraper asked for; `GET /healthz` says the server answers; everything else is 404, and
//! every method other than GET and HEAD is 405 — nothing can be changed through the endpoint.
//!
//! HTTP parsing is hyper's (HTTP/1.1 only), on one tokio thread: a connection costs a small
//! task, not a thread, so slow clients cannot exhaust threads. The limits:
//! - at most [`Limits::max_connections`] open connections. Anyone who can reach the port can
//!   open that many and hold them (idle, or sending a request head a byte at a time), and would
//!   lock every scraper out if a new connection were refused at the cap. Instead the connection
//!   that has waited longest for its next request head is closed to make room ([`Connections`]):
//!   a real client sends its request within a round trip of connecting or of its last answer,
//!   so it is answered before it can become the oldest waiter, while idle and slow ones are
//!   the first to go;
//! - request heads (request line and headers) of at most [`Limits::max_header_bytes`] and 100
//!   headers, else `431` and the connection closes; request bodies are never read;
//! - a client must send its whole request head within [`Limits::header_read_timeout`], which
//!   also closes idle keep-alive connections (slowloris); within
//!   [`Limits::header_read_timeout_under_pressure`] for connections accepted while at least
//!   three quarters of the connections are taken;
//! - a connection older than [`Limits::max_connection_age`] finishes its current response and
//!   closes, and is dropped if that takes longer than [`Limits::shutdown_grace`] (a client that
//!   never reads its response).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::follower::{Log, Shared};
use super::metrics::Format;

/// The server's limits; see the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    pub header_read_timeout_under_pressure: Duration,
    pub max_connection_age: Duration,
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 128,
            max_header_bytes: 8 * 1024,
            header_read_timeout: Duration::from_secs(5),
            header_read_timeout_under_pressure: Duration::from_secs(1),
            max_connection_age: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// The format a scraper's `Accept` header asks for: OpenMetrics when it accepts
/// `application/openmetrics-text` at least as much as `text/plain`, else the Prometheus text
/// format (also for no header, `*/*`, or a header that cannot be read).
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Prometheus;
    };
    let (mut openmetrics, mut text) = (0.0_f32, 0.0_f32);
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim();
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| v.trim().parse::<f32>().unwrap_or(0.0));
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            openmetrics = openmetrics.max(q);
        } else if ["text/plain", "text/*", "*/*"]
            .iter()
            .any(|m| media.eq_ignore_ascii_case(m))
        {
            text = text.max(q);
        }
    }
    if openmetrics > 0.0 && openmetrics >= text {
        Format::OpenMetrics
    } else {
        Format::Prometheus
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The answer to one request. Pure apart from reading `shared`; never waits on a driver.
pub fn respond(
    shared: &Shared,
    method: &Method,
    path: &str,
    accept: Option<&str>,
) -> Response<Full<Bytes>> {
    let known = matches!(path, "/metrics" | "/healthz");
    if !known {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: hmn serve answers GET /metrics and GET /healthz\n",
        );
    }
    if method != Method::GET && method != Method::HEAD {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: hmn serve is read-only (GET, HEAD)\n",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    if path == "/healthz" {
        return plain(StatusCode::OK, "ok\n");
    }
    let format = negotiate(accept);
    let mut response = Response::new(Full::new(Bytes::from(shared.scrape(format))));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(format.content_type()),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// The open connections, and the choice of which to close when a new one needs room.
///
/// Each connection records when it began waiting for its next request head: when it was
/// accepted, then each time it is answered. At the cap, a new connection takes the place of
/// the one that has been waiting longest — idle keep-alive, slowloris and never-sending
/// connections all age while waiting, and a client that sends its request at once is answered
/// (in the same poll of its task, the request being already in the socket buffer) long before
/// [`Limits::max_connections`] newer connections could push it to the front.
#[derive(Debug)]
struct Connections {
    max: usize,
    /// The zero of every [`Slot::waiting_since`].
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Slot>>>,
}

#[derive(Debug)]
struct Slot {
    /// Microseconds after [`Connections::epoch`] at which the connection began waiting for its
    /// next request head.
    waiting_since: AtomicU64,
    /// Told when the connection is closed to make room.
    evict: Notify,
}

impl Connections {
    fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::with_capacity(max)),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn len(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// A place for a new connection, made by closing the longest waiter when all are taken.
    fn admit(self: &Arc<Self>) -> Ticket {
        let now = self.now();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        while open.len() >= self.max.max(1) {
            let longest = open
                .iter()
                .min_by_key(|(_, slot)| slot.waiting_since.load(Ordering::Relaxed))
                .map(|(id, _)| *id);
            if let Some(victim) = longest.and_then(|id| open.remove(&id)) {
                victim.evict.notify_one();
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            waiting_since: AtomicU64::new(now),
            evict: Notify::new(),
        });
        open.insert(id, Arc::clone(&slot));
        Ticket {
            id,
            slot,
            connections: Arc::clone(self),
        }
    }
}

/// A connection's place in [`Connections`], given up when dropped.
struct Ticket {
    id: u64,
    slot: Arc<Slot>,
    connections: Arc<Connections>,
}

impl Ticket {
    /// The connection was answered: from now it waits for its next request head.
    fn answered(&self) {
        self.slot
            .waiting_since
            .store(self.connections.now(), Ordering::Relaxed);
    }

    /// Runs `work` until it ends or the connection is closed to make room (`None`).
    async fn unless_evicted<F: Future>(&self, work: F) -> Option<F::Output> {
        let mut evicted = std::pin::pin!(self.slot.evict.notified());
        let mut work = std::pin::pin!(work);
        std::future::poll_fn(|cx| {
            if evicted.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            work.as_mut().poll(cx).map(Some)
        })
        .await
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.connections
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// Accepts and serves connections forever. Must run inside a tokio runtime with IO and time
/// enabled.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, limits: Limits, log: Log) {
    let connections = Connections::new(limits.max_connections);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    let mut http_under_pressure = http.clone();
    http_under_pressure.header_read_timeout(limits.header_read_timeout_under_pressure);
    let pressure = limits.max_connections - limits.max_connections / 4;
    let mut last_accept_error = String::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and friends: wait for connections to close rather than spin.
                let message = e.to_string();
                if message != last_accept_error {
                    log(&format!("cannot accept a connection: {message}; retrying"));
                    last_accept_error = message;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let under_pressure = connections.len() >= pressure;
        let ticket = Arc::new(connections.admit());
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let http = if under_pressure {
            http_under_pressure.clone()
        } else {
            http.clone()
        };
        tokio::spawn(async move {
            let answered = Arc::clone(&ticket);
            let service = service_fn(move |request: Request<Incoming>| {
                let accept = request
                    .headers()
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok());
                let response = respond(&shared, request.method(), request.uri().path(), accept);
                answered.answered();
                async move { Ok::<_, Infallible>(response) }
            });
            let work = async move {
                let mut connection =
                    std::pin::pin!(http.serve_connection(TokioIo::new(stream), service));
                // Errors of one connection (timeouts, oversized heads, resets) concern only it.
                if tokio::time::timeout(limits.max_connection_age, connection.as_mut())
                    .await
                    .is_err()
                {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(limits.shutdown_grace, connection).await;
                }
            };
            // Closed to make room: dropping the connection closes the socket.
            let _ = ticket.unless_evicted(work).await;
        });
        if under_pressure {
            // Let the connection just accepted read its request before more are accepted: under
            // a flood of reconnecting clients, accepting on would make it the longest waiter.
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMETHEUS_2_42: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    #[test]
    fn prometheus_gets_openmetrics_and_curl_gets_text() {
        assert_eq!(negotiate(Some(PROMETHEUS_2_42)), Format::OpenMetrics);
        assert_eq!(
            negotiate(Some("application/openmetrics-text")),
            Format::OpenMetrics
        );
        assert_eq!(negotiate(Some("*/*")), Format::Prometheus);
        assert_eq!(negotiate(None), Format::Prometheus);
        assert_eq!(
            negotiate(Some("text/plain;version=0.0.4")),
            Format::Prometheus
        );
    }

    #[test]
    fn quality_values_decide_and_zero_means_never() {
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=0.2, text/plain")),
            Format::Prometheus
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=0, */*")),
            Format::Prometheus
        );
        assert_eq!(
            negotiate(Some(
                "Application/OpenMetrics-Text; Q=0.9, text/plain; q=0.5"
            )),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=banana")),
            Format::Prometheus
        );
        assert_eq!(negotiate(Some(",,;;=")), Format::Prometheus);
    }

    #[test]
    fn at_the_cap_the_connection_waiting_longest_for_a_request_makes_room() {
        let connections = Connections::new(3);
        let tick = || std::thread::sleep(Duration::from_millis(2));
        let first = connections.admit();
        tick();
        let second = connections.admit();
        tick();
        let third = connections.admit();
        tick();
        // The first is answered: it now waits for its next request since the latest moment.
        first.answered();
        tick();
        let fourth = connections.admit();
        let open = |t: &Ticket| connections.open.lock().unwrap().contains_key(&t.id);
        assert!(!open(&second), "the longest waiter is closed");
        assert!(open(&first) && open(&third) && open(&fourth));
        assert_eq!(connections.len(), 3);
        drop(second); // its task ends after the eviction: nothing more to remove
        assert_eq!(connections.len(), 3);
        drop(third);
        assert_eq!(connections.len(), 2);
    }

    fn shared() -> Shared {
        Shared::new(Arc::new(|_: &str| {}), Duration::from_secs(5))
    }

    #[test]
    fn routes_methods_and_content_types() {
        let shared = shared();
        let metrics = respond(&shared, &Method::GET, "/metrics", Some(PROMETHEUS_2_42));
        assert_eq!(metrics.status(), StatusCode::OK);
        assert_eq!(
            metrics.headers()[header::CONTENT_TYPE],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        let text = respond(&shared, &Method::HEAD, "/metrics", None);
        assert_eq!(text.status(), StatusCode::OK);
        assert_eq!(
            text.headers()[header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(
            respond(&shared, &Method::GET, "/healthz", None).status(),
            StatusCode::OK
        );
        for path in ["/", "/metrics/", "/Metrics", "/healthz/x", "/../metrics"] {
            assert_eq!(
                respond(&shared, &Method::GET, path, None).status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
            let r = respond(&shared, &method, "/metrics", None);
            assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(r.headers()[header::ALLOW], "GET, HEAD");
        }
    }
}
