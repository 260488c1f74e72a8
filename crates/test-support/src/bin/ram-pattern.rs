//! `ram-pattern`: a process whose memory does known things at known times, for tests of
//! `hmn run`, `hmn watch` and the sampler.
//!
//! ```text
//! ram-pattern spike [--size 200MiB] [--hold-ms 300] [--before-ms 100] [--after-ms 100]
//!                   [--child] [--report FILE]
//!     Waits --before-ms, allocates --size and writes every byte (so every page is resident),
//!     holds it --hold-ms, frees it, waits --after-ms, exits 0. With --report, writes its own
//!     VmHWM (bytes, from /proc/self/status) to FILE while still holding the spike: the
//!     kernel's figure, for comparison. With --child, does all of that in a child process
//!     (itself, without --child) and exits with the child's code.
//! ram-pattern chain --depth N [--delay-ms 200] <spike options>
//!     A chain of N processes: each waits --delay-ms, starts the next and waits for it; the
//!     last one spikes. Every process but the first starts after a delay: a tree that grows.
//! ram-pattern wait --ready FILE --log FILE [--timeout-ms 30000]
//!     Unix: catches SIGINT and SIGTERM, creates FILE (--ready), then waits. On a signal it
//!     appends its name (`SIGINT`) to --log and dies of that signal. Exits 3 on timeout.
//! ram-pattern exit CODE
//!     Exits with CODE.
//! ```
//!
//! Sizes take `KiB`, `MiB`, `GiB` or bytes. Every error exits 2 with a message on stderr.

use std::process::{Command, ExitCode};
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("ram-pattern: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<u8, String> {
    let (mode, rest) = args
        .split_first()
        .ok_or("no mode (spike, chain, wait, exit)")?;
    match mode.as_str() {
        "spike" => {
            let options = Options::parse(rest)?;
            if options.child {
                let mut child_args: Vec<String> = vec!["spike".into()];
                child_args.extend(rest.iter().filter(|a| *a != "--child").cloned());
                return spawn_self(&child_args);
            }
            spike(&options)
        }
        "chain" => {
            let options = Options::parse(rest)?;
            if options.depth <= 1 {
                sleep_ms(options.delay_ms);
                return spike(&options);
            }
            sleep_ms(options.delay_ms);
            let mut next: Vec<String> = vec!["chain".into()];
            let mut skip = false;
            for a in rest {
                if skip {
                    skip = false;
                    continue;
                }
                if a == "--depth" {
                    skip = true;
                    continue;
                }
                next.push(a.clone());
            }
            next.push("--depth".into());
            next.push((options.depth - 1).to_string());
            spawn_self(&next)
        }
        "wait" => wait(&Options::parse(rest)?),
        "exit" => rest
            .first()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| "exit needs a code 0-255".to_string()),
        other => Err(format!("unknown mode {other:?}")),
    }
}

#[derive(Debug)]
struct Options {
    size: usize,
    hold_ms: u64,
    before_ms: u64,
    after_ms: u64,
    delay_ms: u64,
    depth: u32,
    timeout_ms: u64,
    child: bool,
    report: Option<String>,
    ready: Option<String>,
    log: Option<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = Self {
            size: 200 << 20,
            hold_ms: 300,
            before_ms: 100,
            after_ms: 100,
            delay_ms: 200,
            depth: 1,
            timeout_ms: 30_000,
            child: false,
            report: None,
            ready: None,
            log: None,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if flag == "--child" {
                o.child = true;
                continue;
            }
            let value = it
                .next()
                .ok_or_else(|| format!("{flag} needs a value"))?
                .clone();
            let number = |v: &str| v.parse::<u64>().map_err(|_| format!("{flag} {v:?}"));
            match flag.as_str() {
                "--size" => o.size = parse_size(&value)?,
                "--hold-ms" => o.hold_ms = number(&value)?,
                "--before-ms" => o.before_ms = number(&value)?,
                "--after-ms" => o.after_ms = number(&value)?,
                "--delay-ms" => o.delay_ms = number(&value)?,
                "--timeout-ms" => o.timeout_ms = number(&value)?,
                "--depth" => o.depth = u32::try_from(number(&value)?).map_err(|e| e.to_string())?,
                "--report" => o.report = Some(value),
                "--ready" => o.ready = Some(value),
                "--log" => o.log = Some(value),
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        Ok(o)
    }
}

fn parse_size(text: &str) -> Result<usize, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: usize = number.parse().map_err(|_| format!("size {text:?}"))?;
    let unit = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(format!("size {text:?}: unit must be KiB, MiB or GiB")),
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("size {text:?} too large"))
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn spawn_self(args: &[String]) -> Result<u8, String> {
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let status = Command::new(me)
        .args(args)
        .status()
        .map_err(|e| format!("cannot start a child: {e}"))?;
    Ok(status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1)))
}

fn spike(o: &Options) -> Result<u8, String> {
    sleep_ms(o.before_ms);
    let mut block: Vec<u8> = Vec::new();
    block
        .try_reserve_exact(o.size)
        .map_err(|e| format!("cannot allocate {} bytes: {e}", o.size))?;
    // Writing every byte makes every page resident (a zeroed allocation would not).
    block.resize(o.size, 0xA5);
    std::hint::black_box(&mut block);
    if let Some(path) = &o.report {
        let hwm = own_hwm_bytes().ok_or("cannot read VmHWM from /proc/self/status")?;
        std::fs::write(path, hwm.to_string()).map_err(|e| format!("{path}: {e}"))?;
    }
    sleep_ms(o.hold_ms);
    drop(std::hint::black_box(block));
    sleep_ms(o.after_ms);
    Ok(0)
}

/// `VmHWM` of this process, bytes (Linux); `None` elsewhere.
fn own_hwm_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(unix)]
mod signals {
    use std::sync::atomic::{AtomicI32, Ordering};

    pub static RECEIVED: AtomicI32 = AtomicI32::new(0);

    extern "C" fn on_signal(signal: libc::c_int) {
        RECEIVED.store(signal, Ordering::SeqCst);
    }

    pub fn catch(signal: libc::c_int) -> Result<(), String> {
        // SAFETY: a zeroed sigaction is a valid value to fill in; the handler only stores to
        // an atomic, which is async-signal-safe.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: `action` and the null old-action pointer are valid for the call.
        let rc = unsafe { libc::sigaction(signal, &raw const action, std::ptr::null_mut()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(format!("sigaction({signal}) failed"))
        }
    }

    pub fn die_of(signal: libc::c_int) -> ! {
        // SAFETY: restoring the default action and raising the signal on ourselves.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
        std::process::exit(128 + signal)
    }
}

#[cfg(unix)]
fn wait(o: &Options) -> Result<u8, String> {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    let ready = o.ready.as_deref().ok_or("wait needs --ready FILE")?;
    let log = o.log.as_deref().ok_or("wait needs --log FILE")?;
    signals::catch(libc::SIGINT)?;
    signals::catch(libc::SIGTERM)?;
    std::fs::write(ready, std::process::id().to_string()).map_err(|e| format!("{ready}: {e}"))?;
    let deadline = std::time::Instant::now() + Duration::from_millis(o.timeout_ms);
    while std::time::Instant::now() < deadline {
        let signal = signals::RECEIVED.load(Ordering::SeqCst);
        if signal != 0 {
            let name = match signal {
                libc::SIGINT => "SIGINT",
                libc::SIGTERM => "SIGTERM",
                _ => "other",
            };
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|e| format!("{log}: {e}"))?;
            writeln!(file, "{name}").map_err(|e| format!("{log}: {e}"))?;
            drop(file);
            signals::die_of(signal);
        }
        sleep_ms(5);
    }
    Ok(3)
}

#[cfg(not(unix))]
fn wait(_: &Options) -> Result<u8, String> {
    Err("wait needs Unix signals".into())
}
