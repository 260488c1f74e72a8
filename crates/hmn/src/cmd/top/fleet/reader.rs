//! Reading the fleet on a thread of its own, every interval, so the screen never waits on
//! the network: a read of many nodes takes up to the fleet timeout (2 s), a key must not.
//!
//! The thread reads, hands the result over a channel, and sleeps until the next interval
//! (counted from the start of the read before, so a slow read does not stretch the cadence
//! beyond what it took) or until the screen asks it to stop. A failed read is handed over as
//! well, and the next interval reads again: a Prometheus server that comes back is shown
//! again without a restart.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::fleet::{CollectOptions, Fleet, FleetError, Source};

/// One read's result.
pub(crate) type Read = Result<Fleet, FleetError>;

/// How a read is made: [`crate::fleet::collect`] on the screen, a fake in tests.
pub(crate) type Collect = fn(&Source, &CollectOptions) -> Read;

/// The reading thread, seen from the screen.
pub(crate) struct Reader {
    reads: Receiver<Read>,
    /// Dropping it (or sending on it) stops the thread at its next wait.
    stop: Sender<()>,
}

impl Reader {
    /// Starts reading `source` every `interval` with `collect`; the first read starts now.
    pub(crate) fn start(
        source: Source,
        options: CollectOptions,
        interval: Duration,
        collect: Collect,
    ) -> std::io::Result<Self> {
        let (tx, reads) = mpsc::channel();
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("hmn-fleet-reader".into())
            .spawn(move || {
                loop {
                    let started = Instant::now();
                    if tx.send(collect(&source, &options)).is_err() {
                        return;
                    }
                    let wait = interval.saturating_sub(started.elapsed());
                    match stopped.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })?;
        Ok(Self { reads, stop })
    }

    /// Every read that arrived since the last call, oldest first; never waits.
    pub(crate) fn poll(&self) -> Vec<Read> {
        self.reads.try_iter().collect()
    }

    /// Waits up to `wait` for the next read.
    #[cfg(test)]
    pub(crate) fn wait(&self, wait: Duration) -> Option<Read> {
        self.reads.recv_timeout(wait).ok()
    }
}

impl Drop for Reader {
    /// Tells the thread to stop at its next wait; a read in progress ends by its own timeout
    /// and its result is dropped. The thread is not joined: quitting never waits on a node.
    fn drop(&mut self) {
        let _ = self.stop.send(());
    }
}

/// One node's last hour, as Prometheus answered for it (the node's name first).
#[cfg(feature = "fleet")]
pub(crate) type Seed = (
    String,
    Result<Vec<crate::fleet::prometheus::DeviceHistory>, FleetError>,
);

/// Asks Prometheus for a node's last hour when the node is opened, each ask on a thread of
/// its own (one range query, bounded by the fleet timeout), so the screen never waits on it.
#[cfg(feature = "fleet")]
pub(crate) struct Seeder {
    server: String,
    selector: Option<String>,
    options: CollectOptions,
    /// One point per read of the screen.
    step: Duration,
    tx: Sender<Seed>,
    seeds: Receiver<Seed>,
}

#[cfg(feature = "fleet")]
impl Seeder {
    /// How far back a node's chart starts: the widest zoom.
    pub(crate) const RANGE: Duration = Duration::from_secs(3600);

    /// A seeder for `source` when it is a Prometheus server; `None` for the others (a node
    /// scraped directly has no past to ask for).
    pub(crate) fn for_source(
        source: &Source,
        options: &CollectOptions,
        step: Duration,
    ) -> Option<Self> {
        let Source::Prometheus { server, selector } = source else {
            return None;
        };
        let (tx, seeds) = mpsc::channel();
        Some(Self {
            server: server.clone(),
            selector: selector.clone(),
            options: options.clone(),
            step,
            tx,
            seeds,
        })
    }

    /// Starts asking for node `name`'s last hour (`instance`: its Prometheus `instance`); a
    /// thread that cannot start is answered at once with why.
    pub(crate) fn fetch(&self, name: String, instance: String) {
        let (server, selector, options, step, tx) = (
            self.server.clone(),
            self.selector.clone(),
            self.options.clone(),
            self.step,
            self.tx.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("hmn-fleet-history".into())
            .spawn({
                let name = name.clone();
                move || {
                    let past = crate::fleet::prometheus::history(
                        &server,
                        selector.as_deref(),
                        &instance,
                        Self::RANGE,
                        step,
                        &options,
                    );
                    let _ = tx.send((name, past));
                }
            });
        if let Err(e) = spawned {
            let why = FleetError::Prometheus(format!("cannot start asking Prometheus: {e}"));
            let _ = self.tx.send((name, Err(why)));
        }
    }

    /// Every answer that arrived since the last call; never waits.
    pub(crate) fn poll(&self) -> Vec<Seed> {
        self.seeds.try_iter().collect()
    }
}
