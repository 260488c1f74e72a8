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

mod attribution;
mod follower;
mod http;
mod jobs;
#[cfg(all(unix, feature = "kubernetes"))]
mod kubernetes;
mod metrics;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hypomnesis::{Monitor, Probe};

use crate::cli::{GlobalArgs, ServeArgs};
use crate::outcome::Outcome;
use crate::output::Output;

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
    let attribution = match attribution(args, &log) {
        Ok(attribution) => attribution,
        Err(e) => {
            out.say(&format!("cannot start the kubelet thread: {e}"));
            return Outcome::CouldNotTell;
        }
    };
    let cgroups = attribution.needs_cgroups();
    let shared = Arc::new(
        follower::Shared::new(Arc::clone(&log), config.interval).with_attribution(attribution),
    );
    let probe = Arc::new(probe);
    let monitor = Arc::new(start_monitor(&probe, &config, cgroups));
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
    crate::driver::leave_if_driver_hung(&probe, 0);
    Outcome::Success
}

/// The sources of pod and job labels the flags ask for (`--kubernetes` starts asking the
/// kubelet at once, on its own thread).
fn attribution(args: &ServeArgs, log: &follower::Log) -> std::io::Result<attribution::Attribution> {
    let mut attribution = attribution::Attribution::default();
    #[cfg(all(unix, feature = "kubernetes"))]
    if args.kubernetes {
        let pods = kubernetes::PodSource::start(
            args.pod_resources_socket.clone(),
            kubernetes::refresh_every(args.interval),
            Arc::clone(log),
        )?;
        attribution = attribution.with_pods(pods);
    }
    if let Some(dir) = &args.job_mapping_dir {
        attribution = attribution.with_jobs(dir.clone(), Arc::clone(log));
    }
    Ok(attribution)
}

/// The monitor `hmn serve` follows. `--interval` is its interval, and processes are scanned at
/// every tick, as `serve` sampled them before it read the monitor: its default interval (5 s)
/// is already five times the monitor's, and one sample age then holds for every series (a
/// process series is never older than the device series beside it). Telemetry is read at every
/// tick too (about a dozen driver calls per device, the figures `hmn -a` shows); no per-process
/// RSS; each process's cgroup only when `cgroups` (`--kubernetes` labels processes by the pod
/// their cgroup names). History covers one interval: a scrape shows the newest frame only.
fn start_monitor(probe: &Arc<Probe>, config: &follower::Config, cgroups: bool) -> Monitor {
    Monitor::builder()
        .interval(config.interval)
        .process_every(u32::from(config.view.processes))
        .telemetry(true)
        .process_details(cgroups)
        .window(config.interval)
        .long_window(config.interval)
        .max_process_series(0)
        .start(Arc::clone(probe))
}

/// SIGTERM (how service managers stop a server), SIGINT and SIGHUP end `serve` at once, and
/// first end any `nvidia-smi` query in flight with everything it started: those run in their
/// own process groups, so the signal that ends `serve` never reaches them, and one hung in
/// the driver would otherwise outlive the server. Exit handlers are skipped for the reason
/// [`crate::driver::exit_now`] gives (a hung driver call may hold a lock they wait on); `serve` has
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
                        crate::driver::exit_now(0);
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
