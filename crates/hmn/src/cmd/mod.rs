//! One module per command: each turns a parsed command line into an [`crate::Outcome`],
//! reading the machine through [`hypomnesis::Frame`]s (or, for long-running commands, a
//! [`hypomnesis::Monitor`]) so every command shows the same facts.

pub(crate) mod fits;
pub(crate) mod ps;
pub(crate) mod run;
pub(crate) mod summary;
pub(crate) mod watch;
