//! `hmn serve`: the same numbers as `hmn` and `hmn ps`, for Prometheus.
//!
//! Fleets watch memory in the monitoring engine they already run. NVIDIA's dcgm-exporter has
//! no per-process metrics and uses 150–200 MiB; this exporter gives device, per-process and
//! host memory for every vendor the library reads, from one small process.
//!
//! Three pieces over the library's [`Monitor`], which reads a frame of the machine every
//! `--interval` on its own thread, as every other view reads it: `follower` follows the
//! monitor, encoding each new frame once and counting what it could not read; `http` answers
//! scrapes from that encoding without ever touching a driver; `metrics` defines the families
//! (documented in `docs/metrics.md`). Safe by default: it listens on loopback unless told
//! otherwise, is read-only, and bounds what clients can make it hold (see `http`).

mod follower;
mod http;
mod metrics;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hypomnesis::{Monitor, Probe};

use crate::Outcome;
use crate::cli::{GlobalArgs, ServeArgs};
use crate::output::Output;

/// The shortest `--interval`: sampling walks `/proc` for process names.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The longest `--interval` (Prometheus marks series stale after 5 minutes without a sample).
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// Parses `--interval`: `5s`, `500ms`, `1.5s`, `2m`, or a bare number of seconds.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let forms = "accepted forms: 5s, 500ms, 1.5s, 2m, or seconds (5)";
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("invalid interval `{text}` ({forms})"))?;
    let seconds = value * scale;
    if !seconds.is_finite() || seconds < MIN_INTERVAL.as_secs_f64() {
        return Err(format!(
            "interval `{text}` is too short: the minimum is {} ms",
            MIN_INTERVAL.as_millis()
        ));
    }
    if seconds > MAX_INTERVAL.as_secs_f64() {
        return Err(format!(
            "interval `{text}` is too long: the maximum is {} s (Prometheus marks a series \
             stale after 5 minutes without a new sample)",
            MAX_INTERVAL.as_secs()
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses `--listen`: an IP address and port (`127.0.0.1:9464`, `[::1]:9464`,
/// `0.0.0.0:9464`) or `localhost:PORT`. A bare `:PORT` is refused rather than taken to mean
/// every interface, so exposing the metrics is always a visible choice.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let t = text.trim();
    if let Ok(addr) = t.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let hint = "give an IP address and a port: 127.0.0.1:9464 (this machine only), \
                [::1]:9464, or 0.0.0.0:9464 (every interface)";
    if let Some(port) = t.strip_prefix("localhost:") {
        return port
            .parse::<u16>()
            .map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p))
            .map_err(|_| format!("invalid port in `{text}`; {hint}"));
    }
    if t.starts_with(':') {
        return Err(format!("`{text}` has no address; {hint}"));
    }
    Err(format!("invalid listen address `{text}`; {hint}"))
}

/// Whether a socket bound to `ip` can be reached from other machines. An IPv4 address mapped
/// into IPv6 (`::ffff:127.0.0.1`) is the IPv4 address it carries: loopback stays loopback.
fn reaches_beyond_this_machine(ip: IpAddr) -> bool {
    !ip.to_canonical().is_loopback()
}

/// The length of the queue of connections the kernel has completed and `accept` has not yet
/// taken. Clients that hold connections and reconnect as soon as they are cut keep that many
/// connection attempts queued beyond the ones the server holds; a queue shorter than that
/// (std's `bind` asks for 128) is full all the time, and the kernel drops the SYN of a
/// scraper, which retries only after a second. The kernel caps it at `net.core.somaxconn`.
const ACCEPT_BACKLOG: u32 = 1024;

/// A listening socket on `addr` with [`ACCEPT_BACKLOG`]. Must be called inside the runtime.
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std's `bind` does on Unix: a restarted server can bind while old connections linger.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

pub fn run(
    probe: hypomnesis::Probe,
    global: &GlobalArgs,
    args: &ServeArgs,
    out: &Output,
) -> Outcome {
    let config = follower::Config {
        interval: args.interval,
        view: metrics::View {
            processes: !args.no_processes,
            device: global.device,
        },
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            out.say(&format!("cannot start the HTTP runtime: {e}"));
            return Outcome::CouldNotTell;
        }
    };
    let bound = {
        let _guard = runtime.enter();
        listen(args.listen)
    };
    let listener = match bound {
        Ok(listener) => listener,
        Err(e) => {
            out.say(&format!(
                "cannot listen on {}: {e}; pick another address or port with --listen",
                args.listen
            ));
            return Outcome::CouldNotTell;
        }
    };
    let bound = listener.local_addr().unwrap_or(args.listen);
    if reaches_beyond_this_machine(bound.ip()) {
        out.say(&format!(
            "warning: listening on {bound}, beyond this machine: anyone who can reach it reads \
             its GPU and host memory{} — there is no authentication or TLS; use a firewall or a \
             reverse proxy, or --listen 127.0.0.1:{}",
            if config.view.processes {
                ", and process names, users and PIDs (--no-processes leaves them out)"
            } else {
                ""
            },
            bound.port()
        ));
    }

    let log: follower::Log = Arc::new(|line: &str| eprintln!("hmn: {line}"));
    let shared = Arc::new(follower::Shared::new(Arc::clone(&log)));
    let probe = Arc::new(probe);
    let monitor = Arc::new(start_monitor(&probe, &config));
    if let Some(e) = monitor.thread_error() {
        out.say(&format!("cannot start the sampling thread: {e}"));
        return Outcome::CouldNotTell;
    }
    let follower = match follower::Follower::start(
        Arc::clone(&monitor),
        Arc::clone(&probe),
        config,
        Arc::clone(&shared),
    ) {
        Ok(follower) => follower,
        Err(e) => {
            out.say(&format!("cannot start the sampling thread: {e}"));
            return Outcome::CouldNotTell;
        }
    };

    let url = format!("http://{bound}/metrics");
    if global.json {
        out.data(&format!(
            "{}\n",
            serde_json::json!({
                "listen": bound.to_string(),
                "metrics_url": url,
                "interval_seconds": config.interval.as_secs_f64(),
                "processes": config.view.processes,
            })
        ));
    } else {
        out.data(&format!("{url}\n"));
    }
    out.say(&format!(
        "serving metrics on {url} (sampling every {} s; process metrics {}); /healthz answers \
         while it runs; stop with Ctrl-C",
        config.interval.as_secs_f64(),
        if config.view.processes { "on" } else { "off" }
    ));
    #[cfg(unix)]
    stop_on_signals(&runtime);
    runtime.block_on(http::serve(listener, shared, http::Limits::default(), log));
    drop(follower);
    drop(monitor);
    crate::leave_if_driver_hung(&probe, 0);
    Outcome::Success
}

/// The monitor `hmn serve` follows. `--interval` is its interval, and processes are scanned at
/// every tick, as `serve` sampled them before it read the monitor: its default interval (5 s)
/// is already five times the monitor's, and one sample age then holds for every series (a
/// process series is never older than the device series beside it). No telemetry and no
/// per-process RSS or cgroup: no metric shows them yet. History covers one interval: a scrape
/// shows the newest frame only.
fn start_monitor(probe: &Arc<Probe>, config: &follower::Config) -> Monitor {
    Monitor::builder()
        .interval(config.interval)
        .process_every(u32::from(config.view.processes))
        .telemetry(false)
        .process_details(false)
        .window(config.interval)
        .max_process_series(0)
        .start(Arc::clone(probe))
}

/// SIGTERM (how service managers stop a server), SIGINT and SIGHUP end `serve` at once, and
/// first end any `nvidia-smi` query in flight with everything it started: those run in their
/// own process groups, so the signal that ends `serve` never reaches them, and one hung in
/// the driver would otherwise outlive the server. Exit handlers are skipped for the reason
/// [`crate::exit_now`] gives (a hung driver call may hold a lock they wait on); `serve` has
/// nothing to save.
#[cfg(unix)]
fn stop_on_signals(runtime: &tokio::runtime::Runtime) {
    use tokio::signal::unix::{SignalKind, signal};
    for (kind, name) in [
        (SignalKind::terminate(), "SIGTERM"),
        (SignalKind::interrupt(), "SIGINT"),
        (SignalKind::hangup(), "SIGHUP"),
    ] {
        let listening = {
            let _guard = runtime.enter();
            signal(kind)
        };
        match listening {
            Ok(mut stream) => {
                runtime.spawn(async move {
                    if stream.recv().await.is_some() {
                        eprintln!("hmn: {name}: stopping");
                        crate::exit_now(0);
                    }
                });
            }
            Err(e) => eprintln!(
                "hmn: cannot catch {name} ({e}): a helper process running when it arrives may \
                 outlive serve"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_with_units_and_bounds() {
        assert_eq!(parse_interval("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_interval("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_interval("10"), Ok(Duration::from_secs(10)));
        assert!(
            parse_interval("50ms")
                .unwrap_err()
                .contains("minimum is 100 ms")
        );
        assert!(parse_interval("2h").unwrap_err().contains("accepted forms"));
        assert!(parse_interval("61m").unwrap_err().contains("too long"));
        assert!(parse_interval("-1s").is_err());
        assert!(parse_interval("NaNs").is_err());
        assert!(parse_interval("").is_err());
    }

    #[test]
    fn listen_addresses_are_ip_and_port_and_never_implicitly_public() {
        assert_eq!(
            parse_listen("127.0.0.1:9464"),
            Ok("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(parse_listen("[::1]:0"), Ok("[::1]:0".parse().unwrap()));
        assert_eq!(
            parse_listen("localhost:9464"),
            Ok("127.0.0.1:9464".parse().unwrap())
        );
        assert!(
            parse_listen(":9464")
                .unwrap_err()
                .contains("has no address")
        );
        assert!(
            parse_listen("example.com:9464")
                .unwrap_err()
                .contains("127.0.0.1:9464")
        );
        assert!(parse_listen("127.0.0.1").is_err());
        assert!(parse_listen("localhost:99999").is_err());
    }

    #[test]
    fn loopback_in_any_spelling_stays_on_this_machine_and_the_rest_is_public() {
        for local in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
            assert!(
                !reaches_beyond_this_machine(local.parse().unwrap()),
                "{local}"
            );
        }
        for public in [
            "0.0.0.0",
            "::",
            "192.168.1.2",
            "::ffff:192.168.1.2",
            "2001:db8::1",
        ] {
            assert!(
                reaches_beyond_this_machine(public.parse().unwrap()),
                "{public}"
            );
        }
    }
}
