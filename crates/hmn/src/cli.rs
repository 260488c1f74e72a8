//! The command line, as one `clap` definition from which `--help`, the shell completions and
//! the man pages are all generated.
//!
//! Each command accepts only the flags it honours: `hmn ps -a` is a usage error, not a flag
//! silently ignored. The flags the summary shares with other commands (`--json`, `--device`,
//! `--timeout`, `--color`, `-a`) may also come before a command's name (`hmn --json ps`) when
//! that command takes them; [`Cli::resolve`] merges the two places into one [`GlobalArgs`].

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::values::{non_blank, parse_duration, parse_size};

/// `hmn`'s exit codes: code and meaning, one line each (the man pages' EXIT STATUS).
pub const EXIT_CODES: &[(&str, &str)] = &[
    ("0", "success (for `fits`: the size fits)"),
    (
        "1",
        "a negative answer: `fits` does not fit; `ps --exit-status` listed nothing",
    ),
    (
        "2",
        "could not measure (no GPU source, the device could not be read; with a fleet: no node \
         could be read, or for `ps` a node is down), bad usage, or stdout could not be written \
         (a full disk; a closed pipe is not an error)",
    ),
];

/// What the exit codes of `run` and `watch` mean, and what a closed stdout does.
pub const EXIT_CODE_NOTES: &[&str] = &[
    "`run` exits with CMD's own code (128+N when CMD was killed by signal N; 127 when CMD was \
     not found, 126 when it was found but could not be executed), spilled or not; when CMD \
     exited 0 but the recording, the plot or the JSON report (--json-out, or stdout) could \
     not be written whole, `run` exits 74 (EX_IOERR: the outputs are incomplete; CMD's own \
     failure code is never replaced).",
    "`watch` exits 0, 1 when a watched GPU spilled into shared memory (Windows only: \
     elsewhere spill is not measurable, and never 1), or 2 when there is nothing it can watch.",
    "A closed stdout (`hmn ps | head -1`) is not an error: `watch` stops at once with exit 0, \
     the other commands finish quietly with their own exit code.",
];

/// `hmn run`'s own notes (its `--help` and hmn-run(1)).
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

/// Environment variables `hmn` reads: name and meaning (the man pages' ENVIRONMENT).
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "HYPOMNESIS_NVML_LIB",
        "NVML library to load instead of libnvidia-ml.so.1",
    ),
    (
        "HYPOMNESIS_NVIDIA_SMI",
        "nvidia-smi executable to run instead of the one on PATH",
    ),
    (
        "HYPOMNESIS_PROC_ROOT",
        "procfs to read instead of /proc (e.g. the host's, in a container)",
    ),
    ("HYPOMNESIS_SYS_ROOT", "sysfs to read instead of /sys"),
    (
        "COLUMNS",
        "the terminal's width for tables, when stdout is a terminal (else its own size)",
    ),
    ("NO_COLOR", "disables colour (same as --color never)"),
];

/// Where the numbers come from and their limits: a heading (platform or topic) and its text.
pub const LIMITATIONS: &[(&str, &str)] = &[
    (
        "Linux",
        "NVIDIA through NVML (libnvidia-ml.so.1), else nvidia-smi. Per-process GPU memory is \
         what the driver reports; names, users and command lines come from /proc, so other \
         users' processes may show `?` unless hmn runs as root. Inside a container NVML \
         reports host PIDs.",
    ),
    (
        "Windows",
        "NVIDIA through NVML (nvml.dll), other adapters through DXGI; per-process GPU memory \
         and spill from the GPU performance counters (Windows 10 1709 and later; Wine has \
         none, and then says so). Spill: dedicated use >= 85 % of the card and shared use \
         grown >= 256 MiB over the first reading; `run` and `watch` report its episodes.",
    ),
    (
        "macOS",
        "Apple GPUs through Metal and the IOAccelerator statistics (unified memory).",
    ),
    (
        "Spill",
        "is measurable on Windows only; elsewhere it is reported as not measurable (`n/a`, \
         `null`), never as \"no spill\".",
    ),
    (
        "Trees",
        "`run` follows CMD's whole process tree: on Linux new processes are found within one \
         interval; on Windows and macOS from a process table read every 500 ms, so a child \
         living less than that may be missed.",
    ),
    (
        "NVIDIA",
        "`total = reserved + free + used` (NVML v2, as nvidia-smi); drivers before R510 have \
         no reserved figure, and `used` then includes it. Unified-memory parts (GB10) have no \
         separate device memory: their budget is host memory.",
    ),
    (
        "Unknown",
        "figures print as `n/a` and as `null` in JSON, never as 0.",
    ),
    (
        "Names",
        "that processes and drivers chose are shown escaped on a terminal (`\\e`, `\\n`, \
         `\\x7f`, `\\u{202e}`), as ls and ps do; JSON carries them raw.",
    ),
];

/// `text` wrapped at `width` columns for a line that already holds `indent` columns (a tag),
/// every line after the first indented by `indent`.
fn wrap(text: &str, width: usize, indent: usize) -> String {
    let mut out = String::new();
    let mut line_len = indent;
    let mut at_start = true;
    for word in text.split_whitespace() {
        let word_len = word.chars().count();
        if !at_start && line_len + 1 + word_len > width {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            line_len = indent;
        } else if !at_start {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += word_len;
        at_start = false;
    }
    out
}

/// A list of (tag, text) as `--help` shows it: tags in a column, texts wrapped beside them.
fn tagged(items: &[(&str, &str)], tag_width: usize) -> String {
    items
        .iter()
        .map(|(tag, text)| {
            let first = format!("  {tag:<tag_width$}  ");
            let indent = first.chars().count();
            format!("{first}{}", wrap(text, HELP_WIDTH, indent))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The width `--help`'s own paragraphs are wrapped to.
const HELP_WIDTH: usize = 92;

/// The exit codes as `--help` shows them.
pub fn exit_codes_help() -> String {
    let notes: Vec<String> = EXIT_CODE_NOTES
        .iter()
        .map(|n| wrap(n, HELP_WIDTH, 0))
        .collect();
    format!(
        "Exit codes:\n{}\n{}",
        tagged(EXIT_CODES, 1),
        notes.join("\n")
    )
}

fn long_help() -> String {
    format!(
        "{}\n\nWhere the numbers come from, and their limits:\n{}\n\nEnvironment:\n{}",
        exit_codes_help(),
        tagged(LIMITATIONS, 7),
        tagged(ENVIRONMENT, 21)
    )
}

/// GPU and process memory at a glance: free / total / reserved memory per GPU, every
/// process holding GPU memory, and whether a model of a given size fits.
#[derive(Debug, Parser)]
#[command(
    name = "hmn",
    version,
    about = "GPU and process memory at a glance",
    long_about = None,
    after_help = exit_codes_help(),
    after_long_help = long_help(),
    propagate_version = true
)]
pub struct Cli {
    /// The summary's flags; those a command takes may also come before its name.
    #[command(flatten)]
    pub summary: SummaryArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The flags every measuring command takes (the summary, `ps`, `fits`, `watch`, `run`,
/// `serve`).
#[derive(Debug, Args, Clone, Default)]
pub struct SharedArgs {
    /// Print JSON on stdout instead of text (messages stay on stderr).
    #[arg(long)]
    pub json: bool,

    /// Only this GPU (its index as `hmn` lists it).
    #[arg(long, short = 'd', value_name = "N")]
    pub device: Option<u32>,

    /// Give up after SECS seconds without an answer from the GPU driver (a hung driver or
    /// GPU); 0 waits forever [default: 10]. The summary, `ps` and `fits` then exit 2 saying
    /// so; `watch`, `run` and `serve` skip the GPU figures concerned and carry on.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
}

/// Where a fleet is read from (the summary, `ps`, `fits`, `top`): exporters' `/metrics`
/// endpoints or a Prometheus server. None given: this machine.
#[derive(Debug, Args, Clone, Default, PartialEq, Eq)]
pub struct FleetArgs {
    /// Read these exporters' /metrics (`hmn serve`, dcgm-exporter, all-smi) instead of this
    /// machine: URLs or host:port, comma-separated or the flag repeated (--hosts a:9464,b:9464).
    // One value per flag: with several, `hmn --hosts a ps` would read `ps` as a host.
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    pub hosts: Vec<String>,

    /// Read the exporters listed in FILE: one URL or host:port a line, or Prometheus file_sd
    /// JSON.
    #[arg(long, value_name = "FILE")]
    pub hostfile: Option<std::path::PathBuf>,

    /// Read the exporters a Prometheus server scrapes (its targets API), directly.
    #[arg(long, value_name = "PROM_URL", conflicts_with = "prometheus")]
    pub targets_from: Option<String>,

    /// Ask a Prometheus server (instant queries) for the fleet's hmn serve, dcgm-exporter or
    /// all-smi series.
    #[arg(long, value_name = "PROM_URL", conflicts_with_all = ["hosts", "hostfile"])]
    pub prometheus: Option<String>,

    /// With --prometheus: only series matching these labels, e.g. '{cluster="a"}'.
    // (That it needs --prometheus is checked once both sides of the command's name are merged:
    // `hmn --prometheus URL ps --selector M` is fine.)
    #[arg(long, value_name = "MATCHERS")]
    pub selector: Option<String>,

    /// How long one node (or one Prometheus query) may take before it counts as down
    /// [default: 2s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub fleet_timeout: Option<std::time::Duration>,
}

/// `--timeout` when not given.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;

/// The summary's flags (`hmn` with no command).
#[derive(Debug, Args, Clone, Default)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub shared: SharedArgs,

    #[command(flatten)]
    pub fleet: FleetArgs,

    /// When to colour the output (the summary, `fits`) [default: auto].
    #[arg(long, value_enum, value_name = "WHEN")]
    pub color: Option<ColorChoice>,

    /// Beyond memory: add each GPU's utilization, temperature, power and clocks (the
    /// summary, `watch`).
    #[arg(long, short = 'a')]
    pub all: bool,
}

/// The shared flags as the command at hand honours them ([`Cli::resolve`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalArgs {
    pub json: bool,
    pub device: Option<u32>,
    pub color: ColorChoice,
    /// `-a`: telemetry too (the summary, `watch`).
    pub all: bool,
    /// Seconds to wait for the driver; 0 waits forever.
    pub timeout: u64,
    /// `--wide`: tables are never cut to the terminal (`ps`, `watch`).
    pub wide: bool,
    /// The fleet flags given before and after the command's name (the summary, `ps`, `fits`,
    /// `top`); all empty: this machine.
    pub fleet: FleetArgs,
}

/// Which of the summary's flags a command takes besides [`SharedArgs`].
struct Takes {
    shared: bool,
    color: bool,
    all: bool,
}

impl Cli {
    /// The shared flags for the chosen command: those given before its name merged with its
    /// own (its own win). A flag before the name that the command does not take is a usage
    /// error naming the commands that do.
    pub fn resolve(&self) -> Result<GlobalArgs, clap::Error> {
        let none = SharedArgs::default();
        #[cfg(feature = "top")]
        let top_shared = match &self.command {
            Some(Command::Top(a)) => SharedArgs {
                json: a.json,
                device: a.device,
                timeout: a.timeout,
            },
            _ => SharedArgs::default(),
        };
        let takes = |shared, color, all| Takes { shared, color, all };
        let (name, own, takes, own_color, own_all, wide) = match &self.command {
            None => ("hmn", &none, takes(true, true, true), None, false, false),
            Some(Command::Ps(a)) => (
                "hmn ps",
                &a.shared,
                takes(true, false, false),
                None,
                false,
                a.wide,
            ),
            Some(Command::Fits(a)) => (
                "hmn fits",
                &a.shared,
                takes(true, true, false),
                a.color,
                false,
                false,
            ),
            #[cfg(feature = "serve")]
            Some(Command::Serve(a)) => (
                "hmn serve",
                &a.shared,
                takes(true, false, false),
                None,
                false,
                false,
            ),
            Some(Command::Run(a)) => (
                "hmn run",
                &a.shared,
                takes(true, false, false),
                None,
                false,
                false,
            ),
            Some(Command::Spill(a)) => (
                "hmn spill",
                &a.shared,
                takes(true, false, false),
                None,
                false,
                false,
            ),
            Some(Command::Watch(a)) => (
                "hmn watch",
                &a.shared,
                takes(true, false, true),
                None,
                a.all,
                a.wide,
            ),
            #[cfg(feature = "top")]
            Some(Command::Top(_)) => (
                "hmn top",
                &top_shared,
                takes(true, false, false),
                None,
                false,
                false,
            ),
            Some(Command::Completions { .. }) => (
                "hmn completions",
                &none,
                takes(false, false, false),
                None,
                false,
                false,
            ),
            Some(Command::Man(_)) => (
                "hmn man",
                &none,
                takes(false, false, false),
                None,
                false,
                false,
            ),
        };
        let top = &self.summary;
        #[cfg(feature = "top")]
        if let Some(Command::Top(a)) = &self.command {
            use clap::CommandFactory;
            let refuse = |flag: &str, why: &str| {
                Cli::command().error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!("`{flag}` does not apply to `hmn top`: {why}"),
                )
            };
            if a.json || top.shared.json {
                return Err(refuse(
                    "--json",
                    "it is an interactive screen. For JSON over time use `hmn watch --json`, or \
                     press `R` in `hmn top` to record NDJSON",
                ));
            }
            if a.device.is_some() || top.shared.device.is_some() {
                return Err(refuse("--device", "it shows every GPU"));
            }
        }
        let fleet = self.fleet(name, &top.fleet)?;
        let misplaced = |flag: &str, takers: &str| {
            use clap::CommandFactory;
            Cli::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                format!("`{flag}` does not apply to `{name}`; it applies to {takers}"),
            )
        };
        const MEASURING: &str =
            "the summary (`hmn`), `ps`, `fits`, `watch`, `run`, `spill` and `serve`";
        if !takes.shared {
            if top.shared.json {
                return Err(misplaced("--json", MEASURING));
            }
            if top.shared.device.is_some() {
                return Err(misplaced("--device", MEASURING));
            }
            if top.shared.timeout.is_some() {
                return Err(misplaced("--timeout", MEASURING));
            }
        }
        if !takes.color && top.color.is_some() {
            return Err(misplaced("--color", "the summary (`hmn`) and `fits`"));
        }
        if !takes.all && top.all {
            return Err(misplaced("--all", "the summary (`hmn`) and `watch`"));
        }
        Ok(GlobalArgs {
            json: own.json || top.shared.json,
            device: own.device.or(top.shared.device),
            color: own_color.or(top.color).unwrap_or(ColorChoice::Auto),
            all: own_all || top.all,
            timeout: own
                .timeout
                .or(top.shared.timeout)
                .unwrap_or(DEFAULT_TIMEOUT_SECS),
            wide,
            fleet,
        })
    }

    /// The command's fleet flags merged with those before its name (its own win, flag by
    /// flag), checked as one set: `hmn --hosts a ps --prometheus p` is as much a conflict as
    /// `hmn ps --hosts a --prometheus p`. A fleet flag before a command that reads no fleet,
    /// and the flags that mean nothing for a fleet, are usage errors saying why.
    fn fleet(&self, name: &str, before: &FleetArgs) -> Result<FleetArgs, clap::Error> {
        use clap::CommandFactory;
        let error = |message: String| {
            Cli::command().error(clap::error::ErrorKind::ArgumentConflict, message)
        };
        let own = match &self.command {
            None => None,
            Some(Command::Ps(a)) => Some(&a.fleet),
            Some(Command::Fits(a)) => Some(&a.fleet),
            #[cfg(feature = "top")]
            Some(Command::Top(a)) => Some(&a.fleet),
            Some(_) => {
                if let Some(flag) = before.first_flag() {
                    return Err(error(format!(
                        "`{flag}` does not apply to `{name}`; it applies to the summary \
                         (`hmn`), `ps`, `fits` and `top`"
                    )));
                }
                return Ok(FleetArgs::default());
            }
        };
        let fleet = match own {
            None => before.clone(),
            Some(own) => own.merged_over(before),
        };
        if fleet.prometheus.is_some() && (!fleet.hosts.is_empty() || fleet.hostfile.is_some()) {
            return Err(error(
                "`--prometheus` cannot be used with `--hosts` or `--hostfile`: ask the \
                 Prometheus server, or scrape the exporters directly, not both"
                    .into(),
            ));
        }
        if fleet.prometheus.is_some() && fleet.targets_from.is_some() {
            return Err(error(
                "`--prometheus` cannot be used with `--targets-from`: the first asks the \
                 server for the series, the second for its targets to scrape them directly"
                    .into(),
            ));
        }
        if fleet.selector.is_some() && fleet.prometheus.is_none() {
            return Err(error(
                "`--selector` needs `--prometheus PROM_URL`: it narrows that server's series"
                    .into(),
            ));
        }
        let Some(flag) = fleet.first_flag() else {
            return Ok(fleet);
        };
        if flag == "--fleet-timeout" {
            return Err(error(
                "`--fleet-timeout` needs a fleet: --hosts, --hostfile, --targets-from or \
                 --prometheus"
                    .into(),
            ));
        }
        let shared =
            |a: &SharedArgs, b: &SharedArgs| (a.device.or(b.device), a.timeout.or(b.timeout));
        let (device, timeout) = match &self.command {
            None => shared(&self.summary.shared, &SharedArgs::default()),
            Some(Command::Ps(a)) => shared(&a.shared, &self.summary.shared),
            Some(Command::Fits(a)) => shared(&a.shared, &self.summary.shared),
            _ => (None, None),
        };
        if device.is_some() {
            return Err(error(format!(
                "`--device` does not apply to a fleet (`{flag}`): GPU N is a different GPU on \
                 every node. `{name} --json` lists every GPU with its node and index"
            )));
        }
        if timeout.is_some() {
            return Err(error(format!(
                "`--timeout` does not apply to a fleet (`{flag}`): it bounds this machine's GPU \
                 driver. Use `--fleet-timeout DURATION` to bound each node's answer"
            )));
        }
        if self.command.is_none() && self.summary.all {
            return Err(error(format!(
                "`--all` does not apply to a fleet (`{flag}`): the summary shows one line per \
                 node. For a node's telemetry, run `hmn -a` on it or query its exporter"
            )));
        }
        if let Some(Command::Ps(a)) = &self.command
            && a.full
        {
            return Err(error(format!(
                "`--full` does not apply to a fleet (`{flag}`): exporters do not export \
                 command lines"
            )));
        }
        Ok(fleet)
    }
}

impl FleetArgs {
    /// The first fleet flag given, as typed (for messages); `None` when none is.
    pub fn first_flag(&self) -> Option<&'static str> {
        if !self.hosts.is_empty() {
            Some("--hosts")
        } else if self.hostfile.is_some() {
            Some("--hostfile")
        } else if self.targets_from.is_some() {
            Some("--targets-from")
        } else if self.prometheus.is_some() {
            Some("--prometheus")
        } else if self.selector.is_some() {
            Some("--selector")
        } else if self.fleet_timeout.is_some() {
            Some("--fleet-timeout")
        } else {
            None
        }
    }

    /// These flags, each one not given taken from `under` (flags given before a command's
    /// name).
    fn merged_over(&self, under: &FleetArgs) -> FleetArgs {
        FleetArgs {
            hosts: if self.hosts.is_empty() {
                under.hosts.clone()
            } else {
                self.hosts.clone()
            },
            hostfile: self.hostfile.clone().or_else(|| under.hostfile.clone()),
            targets_from: self
                .targets_from
                .clone()
                .or_else(|| under.targets_from.clone()),
            prometheus: self.prometheus.clone().or_else(|| under.prometheus.clone()),
            selector: self.selector.clone().or_else(|| under.selector.clone()),
            fleet_timeout: self.fleet_timeout.or(under.fleet_timeout),
        }
    }
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
    /// Run CMD and report only whether the GPUs spilled into shared memory while it ran (the
    /// original hypomnesis crate's `hmn spill`; `hmn run` gives this and the peaks). Spill is
    /// measurable on Windows only; elsewhere the report says why not.
    #[command(after_help = RUN_NOTES)]
    Spill(SpillArgs),
    /// Watch processes' GPU memory and RAM over time, on every GPU unless --device N; a per-PID
    /// summary (baseline, peak) at the end or on Ctrl-C.
    ///
    /// Every GPU's processes are read each interval, one row per process and device it holds
    /// memory on (GPU column); --device N reads GPU N only.
    ///
    /// On Windows each watched GPU's spill into shared memory is read every interval too (the
    /// SPILL column, and the episodes in the summary); `watch` then exits 1 when one spilled.
    Watch(WatchArgs),
    /// An interactive screen: host memory, every GPU with its history, and every GPU process
    /// (keys: ? for help, q to quit). Needs a terminal; for a log, use `hmn watch`.
    #[cfg(feature = "top")]
    Top(TopArgs),
    /// Print shell completions for SHELL on stdout.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a man page (roff) on stdout: hmn(1), or COMMAND's own page (hmn-ps(1) for `ps`);
    /// with --dir, write them all into DIR.
    Man(ManArgs),
}

/// `hmn man`: which page, or all of them into a directory.
#[derive(Debug, Args, Clone)]
pub struct ManArgs {
    /// The command whose page to print (`ps` prints hmn-ps(1)); without it, hmn(1).
    #[arg(value_name = "COMMAND", value_parser = man_page_command, conflicts_with = "dir")]
    pub command: Option<String>,

    /// Write every page (hmn.1, hmn-ps.1, ...) into DIR instead, e.g.
    /// /usr/local/share/man/man1; prints the paths written.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
}

fn man_page_command(name: &str) -> Result<String, String> {
    use clap::CommandFactory;
    let command = Cli::command();
    let names: Vec<&str> = command
        .get_subcommands()
        .map(clap::Command::get_name)
        .collect();
    if names.contains(&name) {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "no such command; pages exist for: {}",
            names.join(", ")
        ))
    }
}

#[derive(Debug, Args, Clone, Default)]
#[command(after_long_help = PS_WIDTH_HELP)]
pub struct PsArgs {
    #[command(flatten)]
    pub shared: SharedArgs,

    #[command(flatten)]
    pub fleet: FleetArgs,

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

    /// Never cut the table to the terminal's width (a pipe or a file always gets it whole).
    #[arg(long)]
    pub wide: bool,
}

/// How `ps` fits a terminal; the order is `ps::render`'s.
pub const PS_WIDTH_HELP: &str = "\
On a terminal narrower than the table, NAME and COMMAND are cut first, ending in `…` (NAME
to no fewer than 12 columns, COMMAND to 20); if the table is still too wide, columns are left
out in this order: SPILL, GPU%, RSS, USER, GI/CI, SYS; then NAME and COMMAND are cut
further. The width is COLUMNS when set, else the terminal's. A pipe or a file gets the whole
table, as does --wide.";

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
    #[command(flatten)]
    pub shared: SharedArgs,

    #[command(flatten)]
    pub fleet: FleetArgs,

    /// When to colour the verdict [default: auto].
    #[arg(long, value_enum, value_name = "WHEN")]
    pub color: Option<ColorChoice>,

    /// How much memory is needed: 12GiB, 12 GiB, 1.5G, 800MiB, 2TB (decimal) or bytes.
    #[arg(value_name = "SIZE", value_parser = parse_size)]
    pub size: u64,

    /// Need N GPUs (or MIG instances), each with SIZE free, as a data-parallel job does
    /// [default: 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub gpus: Option<u32>,

    /// With --gpus: all N on one node (this machine is one node). Without it, a fleet's N may
    /// be on any nodes.
    #[arg(long, requires = "gpus")]
    pub same_node: bool,

    /// Keep this much free on each GPU beyond SIZE: a percentage of the GPU's (or MIG
    /// instance's) total memory, 5%, or a size, 2GiB.
    #[arg(long, value_name = "PERCENT|SIZE", value_parser = crate::values::parse_headroom)]
    pub headroom: Option<crate::values::Headroom>,
}

/// `hmn serve`: where to listen, how often to sample, whether to export processes.
#[cfg(feature = "serve")]
#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub shared: SharedArgs,

    /// Address and port to listen on. The default answers this machine only; another address
    /// (0.0.0.0:9464) exposes the metrics to the network and prints a warning.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9464", value_parser = crate::values::parse_listen)]
    pub listen: std::net::SocketAddr,

    /// How often to sample, from 100ms to 1h (5s, 500ms, 1m); scrapes in between get the
    /// latest sample.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = crate::values::serve_interval)]
    pub interval: std::time::Duration,

    /// Export per-process GPU memory (the default).
    #[arg(long, overrides_with = "no_processes")]
    pub processes: bool,

    /// Leave per-process metrics out: they reveal process names, users and PIDs.
    #[arg(long, overrides_with = "processes")]
    pub no_processes: bool,

    /// Label device series with the Kubernetes `namespace`, `pod` and `container` a GPU is
    /// given to wholly (the kubelet's pod-resources API), and process series with the
    /// `pod_uid` and `container_id` their cgroup names, as dcgm-exporter names them.
    #[cfg(all(unix, feature = "kubernetes"))]
    #[arg(long)]
    pub kubernetes: bool,

    /// The kubelet's pod-resources socket (with --kubernetes).
    #[cfg(all(unix, feature = "kubernetes"))]
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/var/lib/kubelet/pod-resources/kubelet.sock",
        requires = "kubernetes"
    )]
    pub pod_resources_socket: std::path::PathBuf,

    /// Label series of GPU N with `hpc_job`, the job ids in DIR/N (one per line, joined with
    /// commas; DIR/N.G for MIG GPU instance G), as dcgm-exporter's HPC job mapping; re-read
    /// every interval.
    #[arg(long, value_name = "DIR")]
    pub job_mapping_dir: Option<std::path::PathBuf>,
}

/// `hmn run`: how to sample, where to record, and the command.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub shared: SharedArgs,

    /// How often to sample (50ms, 0.5s, 2s; a bare number is seconds). RAM peaks of single
    /// processes are exact whatever the interval; tree sums and GPU memory are as fine as it.
    #[arg(long, value_name = "DURATION", default_value = "50ms", value_parser = parse_duration)]
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

/// `hmn spill`: how often to read the spill counters, and the command.
#[derive(Debug, Args, Clone)]
pub struct SpillArgs {
    #[command(flatten)]
    pub shared: SharedArgs,

    /// How often to read (250ms, 1s). A bare number is milliseconds, as the original crate's
    /// `hmn spill --interval 250` took it; readings are at least 100ms apart.
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_spill_interval)]
    pub interval: std::time::Duration,

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

/// `hmn spill --interval`: the duration forms, except that a bare whole number is milliseconds
/// (the original crate's `--interval <MS>`), so its scripts keep their meaning.
fn parse_spill_interval(input: &str) -> Result<std::time::Duration, crate::values::ValueError> {
    match input.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(std::time::Duration::from_millis(ms)),
        _ => parse_duration(input),
    }
}

/// `hmn watch`: which processes, how often, for how long.
#[derive(Debug, Args, Clone)]
pub struct WatchArgs {
    #[command(flatten)]
    pub shared: SharedArgs,

    /// Beyond memory: add the device's utilization, temperature, power and clocks.
    #[arg(long, short = 'a')]
    pub all: bool,

    /// Never cut the per-PID summary table to the terminal's width.
    #[arg(long)]
    pub wide: bool,

    /// Processes to watch. Without any, the largest GPU processes are chosen (--top).
    #[arg(value_name = "PID")]
    pub pids: Vec<u32>,

    /// How often to sample (5s, 500ms, 1m; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub interval: std::time::Duration,

    /// Stop after DURATION (default: until Ctrl-C).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
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

/// `hmn top --theme`: a palette.
#[cfg(feature = "top")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ThemeChoice {
    /// The terminal's own 16 ANSI colours.
    #[default]
    Default,
    Dark,
    Light,
    HighContrast,
    /// No colour: emphasis by bold, reverse and underline only.
    Mono,
}

/// `hmn top`'s own notes (its `--help` and hmn-top(1)).
#[cfg(feature = "top")]
pub const TOP_NOTES: &str = "\
Exit codes: 0 when quit (q, Esc, Ctrl-C) or stopped by SIGTERM or SIGHUP; 2 when stdin or stdout
is not a terminal (use `hmn watch`), or when the recording given to --replay cannot be read (its
line and what was wrong are said). However top ends, a crash included, the terminal is given
back as it was. A terminal that reports its size as 0x0 is drawn at COLUMNS x LINES, else 80x24.";

/// `hmn top`: how often, how it looks, what it may do.
#[cfg(feature = "top")]
#[derive(Debug, Args, Clone)]
#[command(after_help = TOP_NOTES)]
pub struct TopArgs {
    /// Refused with the reason (a screen prints no JSON): accepted only to say so.
    #[arg(long, hide = true)]
    pub json: bool,

    /// Refused with the reason (top shows every GPU): accepted only to say so.
    #[arg(long, short = 'd', value_name = "N", hide = true)]
    pub device: Option<u32>,

    /// Give up on a GPU call after SECS seconds without an answer (a hung driver or GPU): the
    /// screen keeps the last figures and says so; 0 waits forever [default: 10].
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,

    #[command(flatten)]
    pub fleet: FleetArgs,

    /// How often device memory and telemetry are read (1s, 500ms; a bare number is seconds);
    /// processes are scanned every third interval. The fleet screen (--hosts, --prometheus…)
    /// reads the fleet this often [default: 1s; the fleet: 5s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub interval: Option<std::time::Duration>,

    /// Never send signals: the `k` menu is disabled.
    #[arg(long)]
    pub readonly: bool,

    /// Colours: the terminal's own 16 (default), dark, light, high-contrast or mono. NO_COLOR
    /// in the environment means mono.
    #[arg(long, value_enum, value_name = "THEME")]
    pub theme: Option<ThemeChoice>,

    /// Draw with ASCII only (no box-drawing or block characters).
    #[arg(long)]
    pub ascii: bool,

    /// Play back a recording (made with `R`, or `hmn watch --json`) instead of the machine;
    /// the screen stays on its last frame.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["hosts", "hostfile", "targets_from", "prometheus"])]
    pub replay: Option<std::path::PathBuf>,

    /// With --replay: play this many times faster than real time (2, 10, 0.5).
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0, requires = "replay", value_parser = replay_speed)]
    pub replay_speed: f64,

    /// Where `R` writes its recordings (hmn-top-<local time>.ndjson) [default: the current
    /// directory].
    #[arg(long, value_name = "DIR")]
    pub record_dir: Option<std::path::PathBuf>,

    /// Quit after drawing N screens with data (tests, benches and CI under Wine: proves a
    /// screen is drawn without a person to press `q`). Hidden: not for users.
    #[arg(long, value_name = "N", hide = true)]
    pub exit_after_frames: Option<u32>,
}

/// `--replay-speed`: a positive, finite factor.
#[cfg(feature = "top")]
fn replay_speed(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err("expected a positive factor such as 2, 10 or 0.5".into()),
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
    fn help_paragraphs_stay_within_their_width() {
        for line in long_help().lines() {
            assert!(line.chars().count() <= HELP_WIDTH, "{line}");
        }
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[cfg(feature = "top")]
    #[test]
    fn top_refuses_json_and_device_wherever_they_are_given() {
        for args in [
            &["top", "--json"][..],
            &["--json", "top"],
            &["top", "-d", "1"],
            &["--device", "1", "top"],
        ] {
            let error = parse(args).unwrap().resolve().unwrap_err().to_string();
            assert!(
                error.contains("does not apply to `hmn top`"),
                "{args:?}: {error}"
            );
        }
        let global = parse(&["--timeout", "3", "top"])
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(global.timeout, 3);
    }

    #[cfg(feature = "top")]
    #[test]
    fn top_replay_speed_is_a_positive_factor_for_a_replay() {
        let cli = parse(&["top", "--replay", "r.ndjson", "--replay-speed", "2.5"]).unwrap();
        let Some(Command::Top(top)) = cli.command else {
            panic!("not top");
        };
        assert!((top.replay_speed - 2.5).abs() < f64::EPSILON);
        assert!(parse(&["top", "--replay", "r.ndjson", "--replay-speed", "0"]).is_err());
        assert!(parse(&["top", "--replay", "r.ndjson", "--replay-speed", "inf"]).is_err());
        assert!(
            parse(&["top", "--replay-speed", "2"]).is_err(),
            "without --replay"
        );
    }

    #[test]
    fn no_arguments_is_the_device_summary() {
        let cli = parse(&[]).unwrap();
        assert!(cli.command.is_none());
        let global = cli.resolve().unwrap();
        assert!(!global.json);
        assert_eq!(global.color, ColorChoice::Auto);
        assert_eq!(global.timeout, DEFAULT_TIMEOUT_SECS);
    }

    #[test]
    fn global_flags_work_before_and_after_the_subcommand() {
        let before = parse(&["--json", "--device", "1", "ps"]).unwrap();
        let after = parse(&["ps", "--json", "-d", "1"]).unwrap();
        for cli in [before, after] {
            let global = cli.resolve().unwrap();
            assert!(global.json);
            assert_eq!(global.device, Some(1));
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
            parse(&["--color", "never"])
                .unwrap()
                .resolve()
                .unwrap()
                .color,
            ColorChoice::Never
        );
        assert_eq!(
            parse(&["--color=always"]).unwrap().resolve().unwrap().color,
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
        let Some(Command::Run(ref run)) = cli.command else {
            panic!("not run");
        };
        assert!(cli.resolve().unwrap().json);
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
    fn spill_takes_the_original_crates_bare_milliseconds_and_the_duration_forms() {
        let interval = |args: &[&str]| {
            let Some(Command::Spill(spill)) = parse(args).unwrap().command else {
                panic!("not spill");
            };
            (spill.interval, spill.command)
        };
        let ms = std::time::Duration::from_millis;
        assert_eq!(
            interval(&["spill", "--", "python", "train.py"]),
            (ms(100), vec!["python".into(), "train.py".into()])
        );
        assert_eq!(
            interval(&["spill", "--interval", "250", "--", "x"]).0,
            ms(250)
        );
        assert_eq!(
            interval(&["spill", "--interval", "2s", "--", "x"]).0,
            ms(2000)
        );
        assert!(parse(&["spill", "--interval", "0", "--", "x"]).is_err());
        assert!(parse(&["spill"]).is_err(), "CMD is required");
        let cli = parse(&["--json", "spill", "--", "x"]).unwrap();
        assert!(cli.resolve().unwrap().json);
    }

    /// One duration grammar for every flag: `serve --interval 1h` used to be refused while
    /// `run --interval 1h` was accepted.
    #[test]
    fn every_duration_flag_takes_the_same_forms() {
        let hour = std::time::Duration::from_secs(3600);
        let Some(Command::Run(run)) = parse(&["run", "--interval", "1h", "--", "true"])
            .unwrap()
            .command
        else {
            panic!("not run");
        };
        assert_eq!(run.interval, hour);
        let Some(Command::Watch(watch)) = parse(&["watch", "--interval", "1h", "--duration", "1h"])
            .unwrap()
            .command
        else {
            panic!("not watch");
        };
        assert_eq!((watch.interval, watch.duration), (hour, Some(hour)));
        #[cfg(feature = "serve")]
        {
            let Some(Command::Serve(serve)) =
                parse(&["serve", "--interval", "1h"]).unwrap().command
            else {
                panic!("not serve");
            };
            assert_eq!(serve.interval, hour);
            let err = parse(&["serve", "--interval", "2h"])
                .unwrap_err()
                .to_string();
            assert!(err.contains("too long"), "{err}");
        }
        for flag in [
            &["run", "--interval", "1d", "--", "true"][..],
            &["watch", "--duration", "1d"],
        ] {
            let err = parse(flag).unwrap_err().to_string();
            assert!(err.contains("invalid duration `1d`"), "{err}");
            assert!(err.contains(crate::values::DURATION_FORMS), "{err}");
        }
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
            Some(Command::Man(ManArgs { command: None, .. }))
        ));
        assert!(matches!(
            parse(&["man", "ps"]).unwrap().command,
            Some(Command::Man(ManArgs { command: Some(ref c), .. })) if c == "ps"
        ));
        assert!(parse(&["man", "frobnicate"]).is_err());
    }

    /// `hmn ps -a`, `fits -a`, `serve -a`, `man --json`, `completions --device` used to be
    /// accepted and ignored.
    #[test]
    fn a_flag_is_refused_where_it_does_nothing() {
        for args in [
            &["ps", "-a"][..],
            &["fits", "-a", "1G"],
            &["fits", "1G", "--all"],
            &["man", "--json"],
            &["man", "--timeout", "3"],
            &["completions", "bash", "--device", "0"],
            &["completions", "--json", "bash"],
            &["ps", "--color", "never"],
            &["watch", "--color", "never"],
        ] {
            assert!(parse(args).is_err(), "{args:?} should be refused");
        }
        #[cfg(feature = "serve")]
        assert!(parse(&["serve", "-a"]).is_err());
    }

    #[test]
    fn a_flag_before_a_command_that_does_not_take_it_is_a_usage_error() {
        for (args, flag) in [
            (&["-a", "ps"][..], "--all"),
            (&["--all", "fits", "1G"], "--all"),
            (&["--json", "man"], "--json"),
            (&["--device", "0", "completions", "bash"], "--device"),
            (&["--color", "always", "ps"], "--color"),
        ] {
            let cli = parse(args).unwrap();
            let err = cli.resolve().unwrap_err().to_string();
            assert!(
                err.contains(&format!("`{flag}` does not apply")),
                "{args:?}: {err}"
            );
        }
        #[cfg(feature = "serve")]
        assert!(parse(&["-a", "serve"]).unwrap().resolve().is_err());
    }

    #[test]
    fn flags_a_command_takes_work_on_either_side_of_its_name() {
        let watch = parse(&["-a", "watch", "--timeout", "3"])
            .unwrap()
            .resolve()
            .unwrap();
        assert!(watch.all);
        assert_eq!(watch.timeout, 3);
        let watch = parse(&["watch", "-a", "--wide"])
            .unwrap()
            .resolve()
            .unwrap();
        assert!(watch.all && watch.wide);
        let fits = parse(&["--color", "never", "fits", "1G"])
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(fits.color, ColorChoice::Never);
        let fits = parse(&["fits", "1G", "--color", "always", "-d", "0"])
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!((fits.color, fits.device), (ColorChoice::Always, Some(0)));
        let ps = parse(&["--timeout", "1", "ps", "--timeout", "5", "--wide"])
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(ps.timeout, 5, "the command's own flag wins");
        assert!(ps.wide);
    }

    #[test]
    fn fleet_flags_work_on_either_side_of_the_command_and_the_commands_own_win() {
        let before = parse(&["--hosts", "a:9464,b:9464", "ps"])
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(before.fleet.hosts, ["a:9464", "b:9464"]);
        let after = parse(&["fits", "40GiB", "--prometheus", "http://p:9090"])
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(after.fleet.prometheus.as_deref(), Some("http://p:9090"));
        let both = parse(&[
            "--fleet-timeout",
            "5s",
            "--hosts",
            "a",
            "ps",
            "--hosts",
            "b",
        ])
        .unwrap()
        .resolve()
        .unwrap();
        assert_eq!(both.fleet.hosts, ["b"]);
        assert_eq!(
            both.fleet.fleet_timeout,
            Some(std::time::Duration::from_secs(5))
        );
        let split = parse(&[
            "--prometheus",
            "http://p:9090",
            "ps",
            "--selector",
            "{a=\"b\"}",
        ])
        .unwrap()
        .resolve()
        .unwrap();
        assert_eq!(split.fleet.selector.as_deref(), Some("{a=\"b\"}"));
        let summary = parse(&["--hosts", "a"]).unwrap().resolve().unwrap();
        assert_eq!(summary.fleet.hosts, ["a"]);
        #[cfg(feature = "top")]
        assert_eq!(
            parse(&["--hosts", "a", "top"])
                .unwrap()
                .resolve()
                .unwrap()
                .fleet
                .hosts,
            ["a"],
            "top takes a fleet too (its screen is engineer D's)"
        );
    }

    #[test]
    fn fleet_flags_that_conflict_or_mean_nothing_are_refused_with_the_reason() {
        for (args, says) in [
            (
                &["--prometheus", "p", "ps", "--hosts", "a"][..],
                "cannot be used with `--hosts`",
            ),
            (
                &["--targets-from", "p", "fits", "1G", "--prometheus", "q"],
                "--targets-from",
            ),
            (
                &["--hosts", "a", "--device", "0"],
                "GPU N is a different GPU on every node",
            ),
            (
                &["ps", "--hosts", "a", "-d", "1"],
                "`--device` does not apply to a fleet",
            ),
            (
                &["--hosts", "a", "fits", "1G", "--timeout", "3"],
                "--fleet-timeout",
            ),
            (&["--hosts", "a", "-a"], "one line per node"),
            (&["ps", "--hosts", "a", "--full"], "command lines"),
            (&["--fleet-timeout", "1s", "ps"], "needs a fleet"),
            (&["ps", "--selector", "{a=\"b\"}"], "needs `--prometheus"),
            (&["--hosts", "a", "watch"], "does not apply to `hmn watch`"),
        ] {
            let err = parse(args).unwrap().resolve().unwrap_err().to_string();
            assert!(err.contains(says), "{args:?}: {err}");
        }
    }

    #[test]
    fn fits_takes_gpus_same_node_and_headroom() {
        let Some(Command::Fits(fits)) = parse(&[
            "fits",
            "40GiB",
            "--gpus",
            "4",
            "--same-node",
            "--headroom",
            "5%",
        ])
        .unwrap()
        .command
        else {
            panic!("not fits");
        };
        assert_eq!((fits.gpus, fits.same_node), (Some(4), true));
        assert_eq!(
            fits.headroom,
            Some(crate::values::Headroom::Percent { hundredths: 500 })
        );
        assert!(parse(&["fits", "1G", "--gpus", "0"]).is_err());
        assert!(
            parse(&["fits", "1G", "--same-node"]).is_err(),
            "needs --gpus"
        );
        assert!(parse(&["fits", "1G", "--headroom", "120%"]).is_err());
    }
}
