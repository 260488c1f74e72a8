//! The fleet read against in-process fake endpoints: real sockets on 127.0.0.1, canned
//! `/metrics` bodies and canned Prometheus API answers, some slow past the timeout, refusing,
//! stale, malformed or duplicated.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::*;

/// What a fake endpoint does with a request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Answers with this status and body.
    Answer(u16, String),
    /// Holds the request open without answering (until the client gives up).
    Hang,
    /// Answers the first route whose text the request's path and query contain with its
    /// status and body (a Prometheus API), 404 when none does.
    Routes(Vec<(String, u16, String)>),
}

/// Requests being served at once, across every fake endpoint of a test, and the most ever.
#[derive(Debug, Default)]
pub struct InFlight {
    now: AtomicUsize,
    peak: AtomicUsize,
    pub served: AtomicUsize,
    /// Every request's path and query, in arrival order.
    pub paths: std::sync::Mutex<Vec<String>>,
}

impl InFlight {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// Reads a request's head; returns its path (with query), or `None` when the client left.
fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    head.split_whitespace().nth(1).map(str::to_owned)
}

fn respond(stream: &mut TcpStream, status: u16, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Waits until the client closes the connection (or 30 s pass).
fn hold(stream: &mut TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
    let start = Instant::now();
    let mut byte = [0_u8; 1];
    while start.elapsed() < Duration::from_secs(30) {
        match stream.read(&mut byte) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// Starts a fake endpoint; returns its `host:port`.
pub fn serve(behaviour: Behaviour, in_flight: Arc<InFlight>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let behaviour = behaviour.clone();
            let in_flight = Arc::clone(&in_flight);
            thread::spawn(move || {
                let Some(path) = read_request(&mut stream) else {
                    return;
                };
                in_flight.enter();
                in_flight.paths.lock().unwrap().push(path.clone());
                match &behaviour {
                    Behaviour::Answer(status, body) => respond(&mut stream, *status, body),
                    Behaviour::Hang => hold(&mut stream),
                    Behaviour::Routes(routes) => {
                        match routes.iter().find(|(p, _, _)| path.contains(p.as_str())) {
                            Some((_, status, body)) => respond(&mut stream, *status, body),
                            None => respond(&mut stream, 404, "not found"),
                        }
                    }
                }
                in_flight.served.fetch_add(1, Ordering::SeqCst);
                in_flight.leave();
            });
        }
    });
    addr
}

/// A `host:port` on which nothing listens, and which no other socket can take: the local end
/// of a connection kept open for the life of the test process (a listener's port, once
/// dropped, may be handed to the next `bind(0)`, even another test's fake endpoint).
pub fn refusing() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let held = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let addr = held.local_addr().unwrap().to_string();
    std::mem::forget((listener, held));
    addr
}

fn hmn_body(free: u64, age: f64) -> String {
    format!(
        "# TYPE hypomnesis_gpu_memory_free_bytes gauge\n\
         hypomnesis_gpu_memory_total_bytes{{gpu=\"0\",uuid=\"GPU-0\",name=\"NVIDIA H100 80GB HBM3\",vendor=\"nvidia\"}} 85520809984\n\
         hypomnesis_gpu_memory_free_bytes{{gpu=\"0\",uuid=\"GPU-0\",name=\"NVIDIA H100 80GB HBM3\",vendor=\"nvidia\"}} {free}\n\
         hypomnesis_host_memory_available_bytes 33554432000\n\
         hypomnesis_sample_age_seconds {age}\n\
         hypomnesis_sample_interval_seconds 5\n"
    )
}

const DCGM_BODY: &str = "DCGM_FI_DEV_FB_FREE{gpu=\"0\",UUID=\"GPU-d\",modelName=\"NVIDIA L4\",Hostname=\"l4-node\"} 1405\n\
DCGM_FI_DEV_FB_USED{gpu=\"0\",UUID=\"GPU-d\",modelName=\"NVIDIA L4\",Hostname=\"l4-node\"} 21158\n";

const ALL_SMI_BODY: &str = "all_smi_gpu_memory_used_bytes{gpu=\"NVIDIA H200\",instance=\"h200\",gpu_uuid=\"GPU-s\",gpu_index=\"0\"} 8589934592\n";

/// What each fake node is, and what its node must say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fresh,
    Dcgm,
    AllSmi,
    Slow,
    Refusing,
    Stale,
    Malformed,
    Duplicated,
    NotFound,
    NotAnExporter,
}

fn options(timeout_ms: u64) -> CollectOptions {
    CollectOptions {
        timeout: Duration::from_millis(timeout_ms),
        concurrency: 64,
    }
}

fn targets(addrs: &[String]) -> Source {
    Source::Hosts(
        addrs
            .iter()
            .map(|a| Target {
                url: hosts::complete_url(a).unwrap(),
                labels: BTreeMap::new(),
            })
            .collect(),
    )
}

#[test]
fn one_hundred_and_twenty_eight_endpoints_each_get_their_state_and_reason() {
    let kinds = [
        (Kind::Fresh, 40),
        (Kind::Dcgm, 8),
        (Kind::AllSmi, 8),
        (Kind::Slow, 16),
        (Kind::Refusing, 16),
        (Kind::Stale, 12),
        (Kind::Malformed, 10),
        (Kind::Duplicated, 8),
        (Kind::NotFound, 6),
        (Kind::NotAnExporter, 4),
    ];
    let in_flight = Arc::new(InFlight::default());
    let mut expected: BTreeMap<String, Kind> = BTreeMap::new();
    for (kind, count) in kinds {
        for i in 0..count {
            let free = 1_000_000_000 * (i + 1);
            let behaviour = match kind {
                Kind::Fresh => Behaviour::Answer(200, hmn_body(free, 1.0)),
                Kind::Dcgm => Behaviour::Answer(200, DCGM_BODY.to_owned()),
                Kind::AllSmi => Behaviour::Answer(200, ALL_SMI_BODY.to_owned()),
                Kind::Slow => Behaviour::Hang,
                Kind::Refusing => {
                    expected.insert(refusing(), kind);
                    continue;
                }
                Kind::Stale => Behaviour::Answer(200, hmn_body(free, 600.0)),
                Kind::Malformed => {
                    Behaviour::Answer(200, format!("{}oops{{gpu=\"0\" 1\n", hmn_body(free, 1.0)))
                }
                Kind::Duplicated => Behaviour::Answer(
                    200,
                    format!("{}{}", hmn_body(free, 1.0), hmn_body(free + 1, 1.0)),
                ),
                Kind::NotFound => Behaviour::Answer(404, "404 page not found\n".to_owned()),
                Kind::NotAnExporter => Behaviour::Answer(200, "node_load1 0.5\n".to_owned()),
            };
            expected.insert(serve(behaviour, Arc::clone(&in_flight)), kind);
        }
    }
    assert_eq!(expected.len(), 128);
    let addrs: Vec<String> = expected.keys().cloned().collect();
    // Long enough that a loaded machine answers every live endpoint in time.
    let fleet = collect(&targets(&addrs), &options(3_000)).unwrap();

    assert_eq!(fleet.nodes.len(), 128);
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for node in &fleet.nodes {
        let addr = hosts::authority_of(&node.endpoint);
        let kind = expected[addr];
        let reason = node.reason.as_deref().unwrap_or("");
        let (state, says) = match kind {
            Kind::Fresh | Kind::Dcgm | Kind::AllSmi => (NodeState::Up, ""),
            Kind::Slow => (NodeState::Down, "timed out"),
            Kind::Refusing => (NodeState::Down, "connection refused"),
            Kind::Stale => (NodeState::Stale, "more than 3 × its 5 s interval"),
            Kind::Malformed => (NodeState::Down, "unparsable /metrics (line 7"),
            Kind::Duplicated => (NodeState::Down, "exported twice"),
            Kind::NotFound => (NodeState::Down, "HTTP 404"),
            Kind::NotAnExporter => (NodeState::Down, "no hmn serve, dcgm-exporter or all-smi"),
        };
        assert_eq!(node.state, state, "{kind:?} {addr}: {reason}");
        assert!(reason.contains(says), "{kind:?} {addr}: {reason}");
        *seen.entry(format!("{kind:?}").leak()).or_default() += 1;
        match kind {
            Kind::Fresh => {
                assert_eq!(node.exporter, Some(Exporter::Hypomnesis));
                assert_eq!(node.devices.len(), 1);
                assert_eq!(node.host.available_bytes, Some(33_554_432_000));
                assert_eq!(node.name, addr, "no name label: host:port");
            }
            Kind::Dcgm => {
                assert_eq!(node.exporter, Some(Exporter::Dcgm));
                assert_eq!(node.devices[0].free_bytes, Some(1405 * 1_048_576));
                assert_eq!(node.name, "l4-node");
            }
            Kind::AllSmi => assert_eq!(node.exporter, Some(Exporter::AllSmi)),
            Kind::Stale => assert_eq!(node.devices.len(), 1, "a stale node keeps its figures"),
            _ if node.state == NodeState::Down => assert!(node.devices.is_empty()),
            _ => {}
        }
    }
    assert_eq!(seen.len(), kinds.len(), "{seen:?}");
    // Every slow endpoint held its request open at the same time as the others: they were
    // read at once, not one after another, so the read cost one timeout.
    assert!(
        in_flight.peak() >= 16,
        "peak in flight {}",
        in_flight.peak()
    );
    assert!(
        in_flight.peak() <= 64,
        "peak in flight {}",
        in_flight.peak()
    );
    // Sorted by name.
    let names: Vec<&str> = fleet.nodes.iter().map(|n| n.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
}

#[test]
fn no_more_than_the_concurrency_limit_is_read_at_once_and_every_dead_node_times_out() {
    let in_flight = Arc::new(InFlight::default());
    let targets: Vec<Target> = (0..100)
        .map(|_| Target {
            url: hosts::complete_url(&serve(Behaviour::Hang, Arc::clone(&in_flight))).unwrap(),
            labels: BTreeMap::new(),
        })
        .collect();
    let (nodes, peak) = http::run(async {
        let client = http::HttpClient::new(Duration::from_millis(300), 64);
        let nodes = hosts::scrape_all(&client, &targets).await;
        (nodes, client.peak_running())
    })
    .unwrap();
    assert_eq!(nodes.len(), 100);
    for node in &nodes {
        assert_eq!(node.state, NodeState::Down);
        assert!(
            node.reason.as_deref().unwrap().contains("timed out"),
            "{node:?}"
        );
    }
    // The first 64 hang together until their timeout; the other 36 wait for a turn and are
    // then timed from their own start, so none is counted down for waiting.
    assert_eq!(peak, 64);
}

#[test]
fn an_https_host_is_a_down_node_saying_https_is_not_supported() {
    let fleet = collect(
        &Source::Hosts(vec![Target {
            url: "https://gpu-1:9464/metrics".to_owned(),
            labels: BTreeMap::new(),
        }]),
        &options(300),
    )
    .unwrap();
    assert!(
        fleet.nodes[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("https is not supported")
    );
}

#[test]
fn a_hostfile_label_names_the_node_even_when_it_is_down() {
    let addr = refusing();
    let fleet = collect(
        &Source::Hosts(vec![Target {
            url: hosts::complete_url(&addr).unwrap(),
            labels: BTreeMap::from([("node".to_owned(), "dgx-3".to_owned())]),
        }]),
        &options(300),
    )
    .unwrap();
    assert_eq!(fleet.nodes[0].name, "dgx-3");
    assert_eq!(fleet.nodes[0].labels["node"], "dgx-3");
}

fn device_with_room(index: u32, free: Option<u64>, mig: bool) -> NodeDevice {
    NodeDevice {
        index,
        mig: mig.then_some(MigPlacement {
            gpu_instance: 1,
            compute_instance: Some(0),
            profile: None,
        }),
        uuid: None,
        name: None,
        vendor: None,
        total_bytes: None,
        used_bytes: None,
        free_bytes: free,
        reserved_bytes: None,
        budget_bytes: None,
        utilization_ratio: None,
        temperature_celsius: None,
        power_watts: None,
        pod: None,
    }
}

#[test]
fn a_node_without_gpus_has_no_total_room_rather_than_zero() {
    let mut node = Node::down(
        "n".into(),
        "http://n:9464/metrics".into(),
        "timed out".into(),
    );
    assert_eq!(node.total_room(), None, "a down node lists no GPU");
    node.devices = vec![device_with_room(0, Some(5), true)];
    assert_eq!(
        node.total_room(),
        None,
        "a MIG instance alone is no whole GPU"
    );
    node.devices.push(device_with_room(0, Some(7), false));
    node.devices.push(device_with_room(1, Some(3), false));
    assert_eq!(node.total_room(), Some(10), "whole GPUs only");
    node.devices.push(device_with_room(2, None, false));
    assert_eq!(
        node.total_room(),
        None,
        "one unknown GPU makes the total unknown"
    );
}
