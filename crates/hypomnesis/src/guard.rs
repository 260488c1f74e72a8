//! GPU calls with a deadline.
//!
//! Why: a GPU that has fallen off the bus, or a wedged kernel module, can leave a driver call
//! (an NVML ioctl, a read of a hung amdgpu's sysfs file) blocked in the kernel for good, and
//! nothing in user space can interrupt it. A caller that must not hang — a monitoring loop,
//! a command-line tool, an exporter — therefore cannot make such a call on its own thread.
//!
//! How: with [`ProbeBuilder::driver_timeout`](crate::ProbeBuilder::driver_timeout) a `Probe`
//! makes its GPU calls on one worker thread of its own and waits at most the timeout for each
//! answer. A call that overruns is abandoned with [`HypomnesisError::Timeout`]: its thread
//! stays blocked in the kernel until the driver lets go. While it is blocked, later calls fail
//! at once, saying so, instead of queueing behind it; once it returns, calls go through again.
//!
//! Cost: a hand-off to the worker and back, tens of microseconds on a VM, against the
//! microseconds a snapshot takes. So the deadline is opt-in; without it calls run on the
//! caller's thread, as they always did.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{HypomnesisError, Result};

/// A call for the worker, and whether its caller has given up on it.
struct Job {
    run: Box<dyn FnOnce() + Send + 'static>,
    abandoned: Arc<AtomicBool>,
}

/// The call the worker is in: when it began, and whether its caller has given up on it.
type InFlight = Option<(Instant, Arc<AtomicBool>)>;

/// The worker and what it is doing.
pub(crate) struct DriverGuard {
    timeout: Duration,
    in_flight: Arc<Mutex<InFlight>>,
    /// The worker's queue; started on the first call.
    jobs: Mutex<Option<Sender<Job>>>,
}

impl std::fmt::Debug for DriverGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverGuard")
            .field("timeout", &self.timeout)
            .field("stuck_for", &self.stuck_for())
            .finish_non_exhaustive()
    }
}

impl DriverGuard {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            in_flight: Arc::new(Mutex::new(None)),
            jobs: Mutex::new(None),
        }
    }

    /// Runs `call` on the worker and waits at most the timeout for its result. `what` names
    /// the call in the error (`"device_info"`).
    pub(crate) fn call<R: Send + 'static>(
        &self,
        what: &str,
        call: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R> {
        if let Some(running) = self.stuck_for() {
            return Err(HypomnesisError::Timeout {
                what: format!(
                    "the GPU driver (still in an earlier call, for {:.1} s: the driver or a GPU \
                     is hung; {what} not attempted)",
                    running.as_secs_f64()
                ),
                after: self.timeout,
            });
        }
        let (answer, wait) = mpsc::sync_channel(1);
        let abandoned = Arc::new(AtomicBool::new(false));
        self.submit(Job {
            run: Box::new(move || {
                // The caller may give up meanwhile: then nobody receives, which is fine.
                let _ = answer.send(call());
            }),
            abandoned: Arc::clone(&abandoned),
        })
        .map_err(|e| HypomnesisError::Timeout {
            what: format!("the GPU driver ({what} not attempted: no thread to call it on: {e})"),
            after: self.timeout,
        })?;
        match wait.recv_timeout(self.timeout) {
            Ok(result) => Ok(result),
            Err(RecvTimeoutError::Timeout) => {
                // From here the call counts as stuck while the worker is in it (see
                // `stuck_for`), and if it has not started, it never will.
                abandoned.store(true, Ordering::Release);
                Err(HypomnesisError::Timeout {
                    what: format!("the GPU driver ({what}; the driver or a GPU is hung)"),
                    after: self.timeout,
                })
            }
            // The call ended without answering: only a panic in a vendor library does that.
            Err(RecvTimeoutError::Disconnected) => Err(HypomnesisError::Timeout {
                what: format!(
                    "the GPU driver ({what}: the call failed without an answer, a panic in the \
                     vendor library)"
                ),
                after: self.timeout,
            }),
        }
    }

    /// How long the call in flight has been running, when it has overrun: its caller gave
    /// up on it, or it has run longer than the timeout (another caller's wait may have
    /// begun before it started).
    pub(crate) fn stuck_for(&self) -> Option<Duration> {
        let in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (since, abandoned) = in_flight.as_ref()?;
        let running = since.elapsed();
        (abandoned.load(Ordering::Acquire) || running > self.timeout).then_some(running)
    }

    /// Queues `job` on the worker, starting the worker (again, if it ended) as needed.
    fn submit(&self, job: Job) -> std::io::Result<()> {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let job = match jobs.as_ref() {
            Some(queue) => match queue.send(job) {
                Ok(()) => return Ok(()),
                // The worker is gone: the job comes back.
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        let (queue, incoming) = mpsc::channel::<Job>();
        let in_flight = Arc::clone(&self.in_flight);
        std::thread::Builder::new()
            .name("hypomnesis-driver".into())
            .spawn(move || work(&incoming, &in_flight))?;
        // The receiver lives in the thread just started, which only drops it on leaving.
        let sent = queue.send(job);
        *jobs = Some(queue);
        sent.map_err(|_| std::io::Error::other("the worker thread ended at once"))
    }
}

/// The worker: runs jobs in order until the guard is dropped.
fn work(incoming: &mpsc::Receiver<Job>, in_flight: &Mutex<InFlight>) {
    while let Ok(job) = incoming.recv() {
        // A call given up on while it waited behind another never reaches the driver.
        if job.abandoned.load(Ordering::Acquire) {
            continue;
        }
        set(in_flight, Some((Instant::now(), job.abandoned)));
        // A panic in a vendor library ends that call (its caller sees no answer), not the
        // worker and the calls queued behind it.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job.run));
        set(in_flight, None);
    }
}

fn set(slot: &Mutex<InFlight>, value: InFlight) {
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = value;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_in_time_is_returned() {
        let guard = DriverGuard::new(Duration::from_secs(30));
        assert_eq!(guard.call("sum", || 2 + 2).unwrap(), 4);
        // The same worker serves the next call.
        assert_eq!(guard.call("sum", || 3 + 3).unwrap(), 6);
        assert!(guard.stuck_for().is_none());
    }

    /// Waits (a bounded while) until the guard's worker is out of its call.
    fn wait_until_idle(guard: &DriverGuard) {
        for _ in 0..3000 {
            if guard.in_flight.lock().unwrap().is_none() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the worker never left its call");
    }

    #[test]
    fn a_call_that_overruns_is_abandoned_and_later_calls_fail_at_once_until_it_returns() {
        let guard = DriverGuard::new(Duration::from_millis(500));
        // The worker exists and waits, so the next call starts at once.
        guard.call("warm", || ()).unwrap();
        let (release, hold) = mpsc::channel::<()>();
        // A call blocked until the test releases it, as a hung driver call is.
        let first = guard.call("hung", move || hold.recv().is_ok());
        assert!(
            matches!(&first, Err(HypomnesisError::Timeout { what, .. }) if what.contains("hung")),
            "{first:?}"
        );
        // Given up on, the call in flight counts as stuck at once: the next one is refused,
        // not queued behind it.
        assert!(guard.stuck_for().is_some(), "the hung call never started");
        let ran = Arc::new(AtomicBool::new(false));
        let ran_in_call = Arc::clone(&ran);
        let second = guard.call("device_count", move || {
            ran_in_call.store(true, Ordering::SeqCst);
        });
        let Err(HypomnesisError::Timeout { what, .. }) = second else {
            panic!("{second:?}");
        };
        assert!(what.contains("device_count not attempted"), "{what}");
        // Released, the worker takes calls again.
        release.send(()).unwrap();
        wait_until_idle(&guard);
        assert!(guard.stuck_for().is_none());
        assert_eq!(guard.call("sum", || 1 + 1).unwrap(), 2);
        assert!(!ran.load(Ordering::SeqCst), "the refused call never ran");
    }

    #[test]
    fn a_call_given_up_on_while_queued_never_runs() {
        let guard = Arc::new(DriverGuard::new(Duration::from_millis(500)));
        guard.call("warm", || ()).unwrap();
        let (release, hold) = mpsc::channel::<()>();
        let (started_tx, started) = mpsc::channel::<()>();
        let blocking = Arc::clone(&guard);
        // Another thread's call holds the worker.
        let first = std::thread::spawn(move || {
            blocking.call("slow", move || {
                started_tx.send(()).unwrap();
                hold.recv().is_ok()
            })
        });
        started
            .recv_timeout(Duration::from_secs(30))
            .expect("the slow call started");
        let ran = Arc::new(AtomicBool::new(false));
        let ran_in_call = Arc::clone(&ran);
        let queued = guard.call("queued", move || ran_in_call.store(true, Ordering::SeqCst));
        assert!(
            matches!(queued, Err(HypomnesisError::Timeout { .. })),
            "{queued:?}"
        );
        release.send(()).unwrap();
        let _ = first.join().unwrap();
        wait_until_idle(&guard);
        // The worker has passed the queued job by the time the next call is answered.
        assert_eq!(guard.call("sum", || 1 + 2).unwrap(), 3);
        assert!(
            !ran.load(Ordering::SeqCst),
            "the abandoned call reached the driver"
        );
    }

    #[test]
    fn a_call_that_panics_is_an_error_and_the_worker_takes_the_next_one() {
        let guard = DriverGuard::new(Duration::from_secs(30));
        let failed = guard.call("vendor", || -> u32 { panic!("a vendor library panicked") });
        assert!(
            matches!(&failed, Err(HypomnesisError::Timeout { what, .. }) if what.contains("failed without an answer")),
            "{failed:?}"
        );
        assert_eq!(guard.call("sum", || 5).unwrap(), 5);
    }
}
