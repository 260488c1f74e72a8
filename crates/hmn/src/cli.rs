//! The command line, as one `clap` definition from which `--help`, the shell completions and
//! the man page are all generated.

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::size::parse_size;

const EXIT_CODES: &str = "\
Exit codes:
  0  success (for `fits`: the size fits)
  1  a negative answer: `fits` does not fit; `ps --exit-status` listed nothing
  2  could not measure (no GPU source, the device could not be read) or bad usage
`run` exits with CMD's own code (128+N when CMD was killed by signal N; 127 when CMD was not
found, 126 when it was found but could not be executed), spilled or not; when CMD exited 0 but
the recording, the plot or the --json-out report could not be written whole, `run` exits 74
(EX_IOERR: the outputs are incomplete; CMD's own failure code is never replaced); `watch` exits 0, 1 when a watched GPU spilled into shared
memory (Windows only: elsewhere spill is not measurable, and never 1), or 2 when there is
nothing it can watch.
A closed stdout (`hmn ps | head -1`) exits 0 quietly.";

const RUN_NOTES: &str = "\
Exit codes: CMD's own; 128+N when CMD was killed by signal N; 127 when CMD was not found, 126
when it was found but could not be executed; 2 when hmn's own arguments are unusable (nothing
is run); 74 (EX_IOERR) when CMD exited 0 but the recording, the plot or the --json-out report
could not be written whole (a full disk: said on stderr when it happens, and in the report; a
recording cut short keeps only whole lines, a failed plot leaves no file; CMD keeps running).
Signals sent to hmn by another process are forwarded to CMD: SIGINT, SIGTERM, SIGHUP, SIGQUIT,
SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGCONT, SIGWINCH and (Linux) the real-time
signals; hmn keeps waiting, then reports. A terminal's Ctrl-C reaches CMD by itself.
Descendants still running when CMD ends are listed with their pids (Linux: hmn adopts CMD's
orphans); --follow-descendants keeps sampling until they end (Ctrl-C or SIGTERM stops waiting).";

const LIMITATIONS: &str = "\
Where the numbers come from, and their limits:
  Linux    NVIDIA through NVML (libnvidia-ml.so.1), else nvidia-smi. Per-process GPU memory
           is what the driver reports; names, users and command lines come from /proc, so
           other users' processes may show `?` unless hmn runs as root. Inside a container
           NVML reports host PIDs.
  Windows  NVIDIA through NVML (nvml.dll), other adapters through DXGI; per-process GPU
           memory and spill from the GPU performance counters (Windows 10 1709 and later; Wine
           has none, and then says so). Spill: dedicated use >= 85 % of the card and shared
           use grown >= 256 MiB over the first reading; `run` and `watch` report its episodes.
  macOS    Apple GPUs through Metal and the IOAccelerator statistics (unified memory).
  Spill    is measurable on Windows only; elsewhere it is reported as not measurable (`n/a`,
           `null`), never as \"no spill\".
  Trees    `run` follows CMD's whole process tree: on Linux new processes are found within
           one interval; on Windows and macOS from a process table read every 500 ms, so a
           child living less than that may be missed.
  NVIDIA   `total = reserved + free + used` (NVML v2, as nvidia-smi); drivers before R510 have
           no reserved figure, and `used` then includes it. Unified-memory parts (GB10) have
           no separate device memory: their budget is host memory.
Unknown figures print as `n/a` and as `null` in JSON, never as 0.

Environment:
  HYPOMNESIS_NVML_LIB    NVML library to load instead of libnvidia-ml.so.1
  HYPOMNESIS_NVIDIA_SMI  nvidia-smi executable to run instead of the one on PATH
  HYPOMNESIS_PROC_ROOT   procfs to read instead of /proc (e.g. the host's, in a container)
  HYPOMNESIS_SYS_ROOT    sysfs to read instead of /sys
  NO_COLOR               disables colour (same as --color never)";

/// GPU and process memory at a glance: free / total / reserved memory per GPU, every
/// process holding GPU memory, and whether a model of a given size fits.
#[derive(Debug, Parser)]
#[command(
    name = "hmn",
    version,
    about = "GPU and process memory at a glance",
    long_about = None,
    after_help = EXIT_CODES,
    after_long_help = format!("{EXIT_CODES}\n\n{LIMITATIONS}"),
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags every command takes.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Print JSON on stdout instead of text (messages stay on stderr).
    #[arg(long, global = true)]
    pub json: bool,

    /// Only this GPU (its index as `hmn` lists it).
    #[arg(long, short = 'd', global = true, value_name = "N")]
    pub device: Option<u32>,

    /// When to colour the output.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    /// Beyond memory: add each GPU's utilization, temperature, power and clocks (the
    /// summary, `watch`).
    #[arg(long, short = 'a', global = true)]
    pub all: bool,

    /// Give up after SECS seconds without an answer from the GPU driver (a hung driver or
    /// GPU); 0 waits forever. The summary, `ps` and `fits` then exit 2 saying so; `watch`,
    /// `run` and `serve` skip the GPU figures concerned and carry on.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 10)]
    pub timeout: u64,
}

/// When to use colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// When stdout is a terminal and `NO_COLOR` is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every process holding GPU memory (PID, user, name, VRAM, device).
    Ps(PsArgs),
    /// Tell whether SIZE bytes fit in a GPU's free memory (exit 0 yes, 1 no, 2 cannot tell).
    Fits(FitsArgs),
    /// Serve device, process and host memory as Prometheus / OpenMetrics metrics over HTTP
    /// (metrics in docs/metrics.md).
    #[cfg(feature = "serve")]
    Serve(ServeArgs),
    /// Run CMD and report what its whole process tree peaked at: RAM, GPU memory, host memory
    /// (a `time -v` for memory, on stderr); optionally record every sample and plot them.
    #[command(after_help = RUN_NOTES)]
    Run(RunArgs),
    /// Watch processes' GPU memory and RAM over time, on every GPU unless --device N; a per-PID
    /// summary (baseline, peak) at the end or on Ctrl-C.
    ///
    /// Every GPU's processes are read each interval, one row per process and device it holds
    /// memory on (GPU column); --device N reads GPU N only.
    ///
    /// On Windows each watched GPU's spill into shared memory is read every interval too (the
    /// SPILL column, and the episodes in the summary); `watch` then exits 1 when one spilled.
    Watch(WatchArgs),
    /// Print shell completions for SHELL on stdout.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout.
    Man,
}

#[derive(Debug, Args, Clone, Default)]
pub struct PsArgs {
    /// Only this process (repeatable).
    #[arg(long, value_name = "PID")]
    pub pid: Vec<u32>,

    /// Only processes holding at least SIZE on a device (e.g. 500MiB, 1.5G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub min: Option<u64>,

    /// Only processes whose name or command line contains PATTERN, case-insensitive
    /// (repeatable: any pattern may match).
    #[arg(long, value_name = "PATTERN", value_parser = non_blank)]
    pub filter: Vec<String>,

    /// Sort order: vram (largest first, GPU memory in system RAM included; alias dedicated,
    /// total, committed), pid, or name.
    #[arg(long, value_enum, default_value_t = SortKey::Vram, value_name = "KEY")]
    pub sort: SortKey,

    /// Add the full command line as a last column.
    #[arg(long)]
    pub full: bool,

    /// Exit 1 when no process is listed, 2 when a device could not be read.
    #[arg(long)]
    pub exit_status: bool,
}

/// How `ps` sorts its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum SortKey {
    /// Largest GPU memory first (ties by name, then pid).
    #[default]
    #[value(alias = "dedicated", alias = "total", alias = "committed")]
    Vram,
    /// Ascending process id.
    Pid,
    /// Process name, case-insensitive (ties by pid).
    Name,
}

#[derive(Debug, Args, Clone)]
pub struct FitsArgs {
    /// How much memory is needed: 12GiB, 12 GiB, 1.5G, 800MiB, 2TB (decimal) or bytes.
    #[arg(value_name = "SIZE", value_parser = parse_size)]
    pub size: u64,
}

/// `hmn serve`: where to listen, how often to sample, whether to export processes.
#[cfg(feature = "serve")]
#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Address and port to listen on. The default answers this machine only; another address
    /// (0.0.0.0:9464) exposes the metrics to the network and prints a warning.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9464", value_parser = crate::serve::parse_listen)]
    pub listen: std::net::SocketAddr,

    /// How often to sample (5s, 500ms, 1m); scrapes in between get the latest sample.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = crate::serve::parse_interval)]
    pub interval: std::time::Duration,

    /// Export per-process GPU memory (the default).
    #[arg(long, overrides_with = "no_processes")]
    pub processes: bool,

    /// Leave per-process metrics out: they reveal process names, users and PIDs.
    #[arg(long, overrides_with = "processes")]
    pub no_processes: bool,
}

/// `hmn run`: how to sample, where to record, and the command.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// How often to sample (50ms, 0.5s, 2s; a bare number is seconds). RAM peaks of single
    /// processes are exact whatever the interval; tree sums and GPU memory are as fine as it.
    #[arg(long, value_name = "DURATION", default_value = "50ms", value_parser = crate::run::parse_duration)]
    pub interval: std::time::Duration,

    /// Write every sample to FILE as it is taken, flushed each time: NDJSON records, or CSV
    /// when FILE ends in .csv.
    #[arg(long, value_name = "FILE")]
    pub record: Option<std::path::PathBuf>,

    /// Draw RAM and GPU memory over time into FILE (an SVG image).
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,

    /// Write the JSON report to FILE instead of stdout, leaving stdout to the command. (With
    /// --json alone the report is stdout's only content: the command's stdout goes to stderr.)
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<std::path::PathBuf>,

    /// When descendants of the command outlive it (a daemon it started), keep sampling until
    /// they end too (Linux). Without it, the report lists them and hmn exits with the command.
    #[arg(long)]
    pub follow_descendants: bool,

    /// The command to run, and its arguments (after `--`).
    #[arg(
        value_name = "CMD",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<std::ffi::OsString>,
}

/// `hmn watch`: which processes, how often, for how long.
#[derive(Debug, Args, Clone)]
pub struct WatchArgs {
    /// Processes to watch. Without any, the largest GPU processes are chosen (--top).
    #[arg(value_name = "PID")]
    pub pids: Vec<u32>,

    /// How often to sample (5s, 500ms, 1m; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = crate::run::parse_duration)]
    pub interval: std::time::Duration,

    /// Stop after DURATION (default: until Ctrl-C).
    #[arg(long, value_name = "DURATION", value_parser = crate::run::parse_duration)]
    pub duration: Option<std::time::Duration>,

    /// Without PIDs: how many of the largest GPU processes to watch.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub top: u32,

    /// Without PIDs: choose the top N again every interval, following processes that start
    /// (and leaving those that end) while watching.
    #[arg(long)]
    pub follow_new: bool,

    /// Without PIDs: only processes whose name or command line contains PATTERN,
    /// case-insensitive (repeatable: any pattern may match).
    #[arg(long, value_name = "PATTERN", value_parser = non_blank)]
    pub filter: Vec<String>,

    /// Without PIDs: only processes holding at least SIZE of GPU memory (device + system).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub min: Option<u64>,
}

fn non_blank(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("the pattern is blank; give some text to match".to_owned())
    } else {
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("hmn").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_arguments_is_the_device_summary() {
        let cli = parse(&[]).unwrap();
        assert!(cli.command.is_none());
        assert!(!cli.global.json);
        assert_eq!(cli.global.color, ColorChoice::Auto);
    }

    #[test]
    fn global_flags_work_before_and_after_the_subcommand() {
        let before = parse(&["--json", "--device", "1", "ps"]).unwrap();
        let after = parse(&["ps", "--json", "-d", "1"]).unwrap();
        for cli in [before, after] {
            assert!(cli.global.json);
            assert_eq!(cli.global.device, Some(1));
            assert!(matches!(cli.command, Some(Command::Ps(_))));
        }
    }

    #[test]
    fn ps_flags_parse() {
        let cli = parse(&[
            "ps",
            "--pid",
            "1",
            "--pid",
            "22",
            "--min",
            "1.5G",
            "--filter",
            "py",
            "--filter",
            "Llama",
            "--sort",
            "name",
            "--full",
            "--exit-status",
        ])
        .unwrap();
        let Some(Command::Ps(ps)) = cli.command else {
            panic!("not ps");
        };
        assert_eq!(ps.pid, vec![1, 22]);
        assert_eq!(ps.min, Some(1_610_612_736));
        assert_eq!(ps.filter, vec!["py", "Llama"]);
        assert_eq!(ps.sort, SortKey::Name);
        assert!(ps.full && ps.exit_status);
    }

    #[test]
    fn sort_aliases_of_the_original_crate_mean_vram() {
        for alias in ["vram", "dedicated", "total", "committed"] {
            let Some(Command::Ps(ps)) = parse(&["ps", "--sort", alias]).unwrap().command else {
                panic!("not ps");
            };
            assert_eq!(ps.sort, SortKey::Vram, "{alias}");
        }
    }

    #[test]
    fn color_choices_parse() {
        assert_eq!(
            parse(&["--color", "never"]).unwrap().global.color,
            ColorChoice::Never
        );
        assert_eq!(
            parse(&["--color=always"]).unwrap().global.color,
            ColorChoice::Always
        );
        assert!(parse(&["--color", "sometimes"]).is_err());
    }

    #[test]
    fn fits_takes_a_size_and_rejects_bad_ones_with_the_accepted_forms() {
        let Some(Command::Fits(fits)) = parse(&["fits", "12GiB"]).unwrap().command else {
            panic!("not fits");
        };
        assert_eq!(fits.size, 12 << 30);
        let err = parse(&["fits", "12 parsecs"]).unwrap_err().to_string();
        assert!(err.contains("accepted forms"), "{err}");
        assert!(parse(&["fits"]).is_err(), "SIZE is required");
    }

    #[test]
    fn bad_values_are_usage_errors() {
        assert!(parse(&["ps", "--pid", "abc"]).is_err());
        assert!(parse(&["ps", "--pid", "1,2"]).is_err(), "one pid per flag");
        assert!(parse(&["ps", "--filter", "  "]).is_err());
        assert!(parse(&["ps", "--sort", "size"]).is_err());
        assert!(parse(&["--device", "-1"]).is_err());
        assert!(parse(&["ps", "--min", "lots"]).is_err());
        assert!(parse(&["frobnicate"]).is_err());
    }

    #[test]
    fn run_takes_everything_after_its_options_as_the_command() {
        let cli = parse(&[
            "--json",
            "run",
            "--interval",
            "20ms",
            "--record",
            "r.csv",
            "--",
            "python3",
            "-c",
            "pass",
            "--json",
        ])
        .unwrap();
        let Some(Command::Run(run)) = cli.command else {
            panic!("not run");
        };
        assert!(cli.global.json);
        assert_eq!(run.interval, std::time::Duration::from_millis(20));
        assert_eq!(run.record.as_deref(), Some(std::path::Path::new("r.csv")));
        assert_eq!(run.command, ["python3", "-c", "pass", "--json"]);
        let without_dashes = parse(&["run", "make", "-j8"]).unwrap();
        let Some(Command::Run(run)) = without_dashes.command else {
            panic!("not run");
        };
        assert_eq!(run.command, ["make", "-j8"]);
        assert!(parse(&["run"]).is_err(), "CMD is required");
        assert!(parse(&["run", "--interval", "fast", "--", "true"]).is_err());
    }

    #[test]
    fn watch_flags_parse() {
        let cli = parse(&[
            "watch",
            "--interval",
            "500ms",
            "--duration",
            "1m",
            "--top",
            "3",
            "--follow-new",
            "--filter",
            "py",
            "--min",
            "1GiB",
        ])
        .unwrap();
        let Some(Command::Watch(watch)) = cli.command else {
            panic!("not watch");
        };
        assert!(watch.pids.is_empty());
        assert_eq!(watch.interval, std::time::Duration::from_millis(500));
        assert_eq!(watch.duration, Some(std::time::Duration::from_secs(60)));
        assert_eq!((watch.top, watch.follow_new), (3, true));
        assert_eq!(watch.min, Some(1 << 30));
        let pids = parse(&["watch", "12", "34"]).unwrap();
        let Some(Command::Watch(watch)) = pids.command else {
            panic!("not watch");
        };
        assert_eq!(watch.pids, [12, 34]);
        assert_eq!(watch.interval, std::time::Duration::from_secs(5));
        assert!(parse(&["watch", "--top", "0"]).is_err());
    }

    #[test]
    fn completions_and_man_are_commands() {
        assert!(matches!(
            parse(&["completions", "bash"]).unwrap().command,
            Some(Command::Completions { .. })
        ));
        assert!(matches!(
            parse(&["man"]).unwrap().command,
            Some(Command::Man)
        ));
    }
}
