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

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The worker and what it is doing.
#[derive(Debug)]
pub(crate) struct DriverGuard {
    timeout: Duration,
    /// When the job the worker is running began; `None` while it waits for work.
    busy_since: Arc<Mutex<Option<Instant>>>,
    /// The worker's queue; started on the first call.
    jobs: Mutex<Option<Sender<Job>>>,
}

impl DriverGuard {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            busy_since: Arc::new(Mutex::new(None)),
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
        let given_up = Arc::clone(&abandoned);
        let job: Job = Box::new(move || {
            // A call given up on while it waited behind another never reaches the driver.
            if given_up.load(Ordering::Acquire) {
                return;
            }
            // The caller may give up meanwhile: then nobody receives, which is fine.
            let _ = answer.send(call());
        });
        self.submit(job)?;
        match wait.recv_timeout(self.timeout) {
            Ok(result) => Ok(result),
            Err(RecvTimeoutError::Timeout) => {
                abandoned.store(true, Ordering::Release);
                Err(HypomnesisError::Timeout {
                    what: format!("the GPU driver ({what}; the driver or a GPU is hung)"),
                    after: self.timeout,
                })
            }
            // The job ended without answering: only a panic in a vendor library does that.
            Err(RecvTimeoutError::Disconnected) => Err(HypomnesisError::Timeout {
                what: format!("the GPU driver ({what}; the call failed without an answer)"),
                after: Duration::ZERO,
            }),
        }
    }

    /// How long the call in flight has been running, when that is longer than the timeout.
    pub(crate) fn stuck_for(&self) -> Option<Duration> {
        let since = *self
            .busy_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        since
            .map(|since| since.elapsed())
            .filter(|running| *running > self.timeout)
    }

    /// Queues `job` on the worker, starting the worker (again, if it ended) as needed.
    fn submit(&self, job: Job) -> Result<()> {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let job = match jobs.as_ref() {
            Some(queue) => match queue.send(job) {
                Ok(()) => return Ok(()),
                // The worker is gone (a vendor library panicked in it): the job comes back.
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        let (queue, incoming) = mpsc::channel::<Job>();
        let busy_since = Arc::clone(&self.busy_since);
        std::thread::Builder::new()
            .name("hypomnesis-driver".into())
            .spawn(move || {
                while let Ok(job) = incoming.recv() {
                    set(&busy_since, Some(Instant::now()));
                    // Cleared on unwinding too, so a panicked call does not read as hung.
                    let _idle_after = Idle(&busy_since);
                    job();
                }
            })
            .map_err(|e| HypomnesisError::Timeout {
                what: format!("the GPU driver (no thread to call it on: {e})"),
                after: Duration::ZERO,
            })?;
        // The receiver lives in the thread just started, so this send cannot fail.
        let sent = queue.send(job).is_ok();
        *jobs = Some(queue);
        if sent {
            Ok(())
        } else {
            Err(HypomnesisError::Timeout {
                what: "the GPU driver (its worker thread ended at once)".into(),
                after: Duration::ZERO,
            })
        }
    }
}

fn set(slot: &Mutex<Option<Instant>>, value: Option<Instant>) {
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = value;
}

/// Marks the worker idle when dropped.
struct Idle<'a>(&'a Mutex<Option<Instant>>);

impl Drop for Idle<'_> {
    fn drop(&mut self) {
        set(self.0, None);
    }
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

    #[test]
    fn a_call_that_overruns_is_abandoned_and_later_calls_fail_at_once_until_it_returns() {
        let guard = DriverGuard::new(Duration::from_millis(100));
        let (release, hold) = mpsc::channel::<()>();
        // A call blocked until the test releases it, as a hung driver call is.
        let first = guard.call("hung", move || hold.recv().is_ok());
        assert!(
            matches!(&first, Err(HypomnesisError::Timeout { what, .. }) if what.contains("hung")),
            "{first:?}"
        );
        // Past the timeout, the worker is known to be stuck: the next call is not queued.
        std::thread::sleep(Duration::from_millis(150));
        assert!(guard.stuck_for().is_some());
        let ran = Arc::new(Mutex::new(false));
        let ran_in_call = Arc::clone(&ran);
        let second = guard.call("device_count", move || {
            *ran_in_call.lock().unwrap() = true;
        });
        let Err(HypomnesisError::Timeout { what, .. }) = second else {
            panic!("{second:?}");
        };
        assert!(what.contains("device_count not attempted"), "{what}");
        // Released, the worker takes calls again.
        release.send(()).unwrap();
        let mut answered = None;
        for _ in 0..200 {
            if guard.stuck_for().is_none() {
                answered = guard.call("sum", || 1 + 1).ok();
                if answered.is_some() {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(answered, Some(2));
        assert!(!*ran.lock().unwrap(), "the refused call never ran");
    }

    #[test]
    fn a_call_given_up_on_while_queued_never_runs() {
        let guard = Arc::new(DriverGuard::new(Duration::from_millis(200)));
        let (release, hold) = mpsc::channel::<()>();
        let blocking = Arc::clone(&guard);
        // Another thread's call holds the worker (not yet long enough to count as stuck).
        let first = std::thread::spawn(move || blocking.call("slow", move || hold.recv().is_ok()));
        std::thread::sleep(Duration::from_millis(50));
        let ran = Arc::new(AtomicBool::new(false));
        let ran_in_call = Arc::clone(&ran);
        let queued = guard.call("queued", move || ran_in_call.store(true, Ordering::SeqCst));
        assert!(
            matches!(queued, Err(HypomnesisError::Timeout { .. })),
            "{queued:?}"
        );
        release.send(()).unwrap();
        let _ = first.join().unwrap();
        // The worker has taken the queued job by the time the next call is answered.
        assert_eq!(guard.call("sum", || 1 + 2).unwrap(), 3);
        assert!(
            !ran.load(Ordering::SeqCst),
            "the abandoned call reached the driver"
        );
    }

    #[test]
    fn a_call_that_panics_is_an_error_and_the_next_call_gets_a_new_worker() {
        let guard = DriverGuard::new(Duration::from_secs(30));
        let failed = guard.call("vendor", || -> u32 { panic!("a vendor library panicked") });
        assert!(
            matches!(&failed, Err(HypomnesisError::Timeout { what, .. }) if what.contains("failed without an answer")),
            "{failed:?}"
        );
        assert_eq!(guard.call("sum", || 5).unwrap(), 5);
    }
}
