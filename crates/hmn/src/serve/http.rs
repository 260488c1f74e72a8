//! The HTTP side: three answers, and limits so a bad client cannot take the exporter down.
//!
//! `GET /metrics` copies the latest published sample (see `sampler.rs`) in the format the
//! scraper asked for; `GET /healthz` says the server answers; everything else is 404, and
//! every method other than GET and HEAD is 405 — nothing can be changed through the endpoint.
//!
//! HTTP parsing is hyper's (HTTP/1.1 only), on one tokio thread: a connection costs a small
//! task, not a thread, so slow clients cannot exhaust threads. The limits:
//! - at most [`Limits::max_connections`] open connections; one more is answered `503` and
//!   closed within a second;
//! - request heads (request line and headers) of at most [`Limits::max_header_bytes`] and 100
//!   headers, else `431` and the connection closes; request bodies are never read;
//! - a client must send its whole request head within [`Limits::header_read_timeout`], which
//!   also closes idle keep-alive connections (slowloris);
//! - a connection older than [`Limits::max_connection_age`] finishes its current response and
//!   closes, and is dropped if that takes longer than [`Limits::shutdown_grace`] (a client that
//!   never reads its response).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::metrics::Format;
use super::sampler::{Log, Shared};

/// The server's limits; see the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    pub max_connection_age: Duration,
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 128,
            max_header_bytes: 8 * 1024,
            header_read_timeout: Duration::from_secs(5),
            max_connection_age: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// What an over-the-limit connection is told before it is closed: a fixed reply written
/// without reading the request, so it costs nothing to send.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\nretry-after: 1\r\n\r\n";

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

/// Counts an open connection until dropped.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Answers a connection past the limit with [`BUSY`]. Closing a socket with unread request
/// bytes would reset it and could destroy the answer, so what the client sends is read and
/// discarded for up to a second first — for at most [`MAX_LINGERING`] sockets at a time;
/// beyond that they are closed at once.
fn refuse(stream: tokio::net::TcpStream, lingering: &Arc<AtomicUsize>) {
    let _ = stream.try_write(BUSY);
    if lingering.fetch_add(1, Ordering::Relaxed) >= MAX_LINGERING {
        lingering.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let guard = Open(Arc::clone(lingering));
    tokio::spawn(async move {
        let _guard = guard;
        let drain = async {
            let mut sink = [0_u8; 1024];
            loop {
                if stream.readable().await.is_err() {
                    return;
                }
                match stream.try_read(&mut sink) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    });
}

/// How many refused connections may linger (see [`refuse`]).
const MAX_LINGERING: usize = 128;

/// Accepts and serves connections forever. Must run inside a tokio runtime with IO and time
/// enabled.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, limits: Limits, log: Log) {
    let open = Arc::new(AtomicUsize::new(0));
    let lingering = Arc::new(AtomicUsize::new(0));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
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
        if open.fetch_add(1, Ordering::Relaxed) >= limits.max_connections {
            open.fetch_sub(1, Ordering::Relaxed);
            refuse(stream, &lingering);
            continue;
        }
        let guard = Open(Arc::clone(&open));
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let http = http.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let service = service_fn(move |request: Request<Incoming>| {
                let accept = request
                    .headers()
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok());
                let response = respond(&shared, request.method(), request.uri().path(), accept);
                async move { Ok::<_, Infallible>(response) }
            });
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
        });
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

    fn shared() -> Shared {
        Shared::new(Arc::new(|_: &str| {}))
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
