//! HTTP GETs for the fleet's reads, each bounded by one timeout, many at once.
//!
//! A fleet read must cost about one timeout however many nodes are dead: a node that does not
//! answer must never delay the others. So every GET runs on one current-thread tokio runtime
//! made for the read (`hmn` is otherwise synchronous), at most `concurrency` at a time, each
//! under `tokio::time::timeout` from the moment it starts (a GET waiting for its turn is not
//! yet timed). hyper-util's pooled client does the HTTP/1.1; the body is capped
//! ([`MAX_BODY_BYTES`]) so a runaway endpoint cannot fill memory.
//!
//! `http://` only: exporters and Prometheus servers inside a cluster are read over plain
//! HTTP, and a TLS stack (rustls and its certificate roots) would double this binary's
//! dependencies. An `https://` URL is refused with what to do instead.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, HeaderValue};
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;

/// The largest body read: a 128-GPU node with thousands of processes is a few MiB.
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// `Accept` of a scrape: the Prometheus text format, which all three exporters serve.
pub const ACCEPT_TEXT: &str = "text/plain;version=0.0.4;q=1,*/*;q=0.1";
/// `Accept` of a Prometheus API call.
pub const ACCEPT_JSON: &str = "application/json";

/// Why a GET gave no usable answer, in words that say what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The URL is not an `http://` URL with a host.
    BadUrl(String),
    /// No answer within the timeout.
    Timeout(Duration),
    /// Nothing listens on the port.
    Refused,
    /// The connection failed otherwise (unknown host, unreachable network, reset).
    Connect(String),
    /// The body could not be read (cut off, too large, not UTF-8).
    Body(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::BadUrl(why) => f.write_str(why),
            FetchError::Timeout(t) => write!(
                f,
                "no answer within {} s (timed out): the host is down, overloaded or firewalled; \
                 raise --fleet-timeout if it is only slow",
                t.as_secs_f64()
            ),
            FetchError::Refused => f.write_str(
                "connection refused: nothing listens on that port (is the exporter running?)",
            ),
            FetchError::Connect(why) => write!(f, "could not connect: {why}"),
            FetchError::Body(why) => write!(f, "could not read the answer: {why}"),
        }
    }
}

/// An answer of any status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Parses an `http://` URL, refusing `https://` and anything without a host.
pub fn parse_url(url: &str) -> Result<Uri, FetchError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| FetchError::BadUrl(format!("`{url}` is not a URL ({e})")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(FetchError::BadUrl(format!(
                "`{url}`: https is not supported; read the endpoint over http:// (inside the \
                 cluster), or through a Prometheus server that scrapes it (--prometheus)"
            )));
        }
        _ => {
            return Err(FetchError::BadUrl(format!("`{url}` is not an http:// URL")));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(FetchError::BadUrl(format!("`{url}` has no host")));
    }
    Ok(uri)
}

/// A client for one read: GETs share its connection pool and its limit on concurrency.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
    permits: Arc<Semaphore>,
    /// GETs running now (past their turn), and the most ever.
    running: Arc<(AtomicUsize, AtomicUsize)>,
}

impl HttpClient {
    /// Must be called inside the tokio runtime that runs the GETs.
    pub fn new(timeout: Duration, concurrency: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(5))
            .build(connector);
        HttpClient {
            client,
            timeout,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            running: Arc::default(),
        }
    }

    /// The most GETs that ran at once (past their turn) on this client and its clones (the
    /// concurrency tests read it).
    #[cfg(test)]
    pub fn peak_running(&self) -> usize {
        self.running.1.load(Ordering::SeqCst)
    }

    /// GETs `url`: the answer whatever its status, or why there is none. Waits for a turn
    /// among the client's `concurrency`, then at most the timeout.
    pub async fn get(&self, url: &str, accept: &'static str) -> Result<Answer, FetchError> {
        let uri = parse_url(url)?;
        // The semaphore is never closed, so acquiring only waits.
        let _permit = self.permits.acquire().await;
        let _running = Running::enter(&self.running);
        let request = Request::get(uri)
            .header(ACCEPT, HeaderValue::from_static(accept))
            .header("User-Agent", concat!("hmn/", env!("CARGO_PKG_VERSION")))
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::BadUrl(format!("`{url}`: {e}")))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(connect_error)?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| FetchError::Body(e.to_string()))?
                .to_bytes();
            let body = String::from_utf8(body.to_vec())
                .map_err(|_| FetchError::Body("the body is not UTF-8 text".to_owned()))?;
            Ok(Answer { status, body })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(FetchError::Timeout(self.timeout)),
        }
    }
}

/// Counts a GET as running until dropped.
struct Running<'a>(&'a (AtomicUsize, AtomicUsize));

impl<'a> Running<'a> {
    fn enter(counts: &'a (AtomicUsize, AtomicUsize)) -> Self {
        let now = counts.0.fetch_add(1, Ordering::SeqCst) + 1;
        counts.1.fetch_max(now, Ordering::SeqCst);
        Running(counts)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A client error as the user should read it: refused, or the innermost cause.
fn connect_error(e: hyper_util::client::legacy::Error) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    let mut innermost = e.to_string();
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return FetchError::Refused;
            }
            if io.kind() == std::io::ErrorKind::TimedOut {
                return FetchError::Connect("the connection timed out".to_owned());
            }
        }
        innermost = err.to_string();
        source = err.source();
    }
    FetchError::Connect(innermost)
}

/// Runs `work` on a current-thread runtime made for it (the fleet commands are otherwise
/// synchronous). `Err` when the runtime cannot start (no file descriptors left).
pub fn run<F: Future>(work: F) -> Result<F::Output, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("could not start the network runtime: {e}"))?;
    let output = runtime.block_on(work);
    // A name lookup runs on the blocking pool, where a timeout cannot stop it; dropping the
    // runtime would wait for it (a broken resolver takes tens of seconds), so leave it behind.
    runtime.shutdown_background();
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_urls_are_refused_with_what_to_do() {
        let err = parse_url("https://node-1:9464/metrics").unwrap_err();
        assert!(err.to_string().contains("https is not supported"), "{err}");
        assert!(err.to_string().contains("http://"), "{err}");
    }

    #[test]
    fn a_read_does_not_wait_for_blocking_work_a_timeout_abandoned() {
        use std::sync::atomic::AtomicBool;
        // A name lookup stuck in getaddrinfo, as on a broken resolver: it runs on the
        // runtime's blocking pool, and the read gives up on it at its timeout.
        let finished = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&finished);
        let outcome = run(async move {
            let lookup = tokio::task::spawn_blocking(move || {
                std::thread::sleep(Duration::from_secs(3));
                flag.store(true, Ordering::SeqCst);
            });
            tokio::time::timeout(Duration::from_millis(10), lookup)
                .await
                .is_err()
        })
        .unwrap();
        assert!(outcome, "the lookup outlived its timeout");
        assert!(
            !finished.load(Ordering::SeqCst),
            "the read returned only after the abandoned lookup finished"
        );
    }

    #[test]
    fn urls_without_a_host_or_scheme_are_refused() {
        assert!(parse_url("http:///metrics").is_err());
        assert!(parse_url("ftp://node/metrics").is_err());
        assert!(parse_url("not a url").is_err());
        assert!(parse_url("http://node-1:9464/metrics").is_ok());
    }
}
