//! `hmn completions SHELL`: the shell's completion script, generated from the same `clap`
//! definition as `--help`, so it never lags behind the flags.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::outcome::Outcome;
use crate::output::Output;

/// Prints the completions for `shell` on stdout.
pub fn run(shell: clap_complete::Shell, out: &Output) -> Outcome {
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "hmn", &mut text);
    out.data(&String::from_utf8_lossy(&text));
    Outcome::Success
}
