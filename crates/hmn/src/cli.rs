//! The command line, as one `clap` definition from which `--help`, the shell completions and
//! the man page are all generated.

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::size::parse_size;

const EXIT_CODES: &str = "\
Exit codes:
  0  success (for `fits`: the size fits)
  1  a negative answer: `fits` does not fit; `ps --exit-status` listed nothing
  2  could not measure (no GPU source, the device could not be read) or bad usage
A closed stdout (`hmn ps | head -1`) exits 0 quietly.";

const LIMITATIONS: &str = "\
Where the numbers come from, and their limits:
  Linux    NVIDIA through NVML (libnvidia-ml.so.1), else nvidia-smi. Per-process GPU memory
           is what the driver reports; names, users and command lines come from /proc, so
           other users' processes may show `?` unless hmn runs as root. Inside a container
           NVML reports host PIDs.
  Windows  and macOS: GPU backends are not available yet; the library reports why.
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

    /// Sort order: vram (largest first; alias dedicated, total, committed), pid, or name.
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
