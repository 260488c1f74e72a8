//! `hmn man`: hmn(1) and one page per command (hmn-ps(1), hmn-fits(1), …), rendered from the
//! same `clap` definition as `--help`.
//!
//! `clap_mangen` renders the synopsis, options and command list; the exit codes, the
//! environment and the limits are ours, from the tables in `cli.rs`, as roff tagged
//! paragraphs (`.TP`). Handed to `clap_mangen` as `after_help` prose they were filled into
//! one paragraph, so `0  success` ran into `1  a negative answer`.

use std::io;
use std::path::Path;

use clap::CommandFactory;
use clap_mangen::Man;
use roff::{Roff, bold, roman};

use crate::cli::{Cli, ENVIRONMENT, EXIT_CODE_NOTES, EXIT_CODES, LIMITATIONS, ManArgs};
use crate::outcome::Outcome;
use crate::output::Output;

/// `hmn man [COMMAND]` prints one page; `hmn man --dir DIR` writes them all.
pub fn run(args: &ManArgs, out: &Output) -> Outcome {
    if let Some(dir) = &args.dir {
        return match write_all(dir) {
            Ok(paths) => {
                let list: Vec<String> =
                    paths.iter().map(|p| format!("{}\n", p.display())).collect();
                out.data(&list.concat());
                Outcome::Success
            }
            Err(e) => {
                out.say(&format!(
                    "cannot write the man pages into {}: {e}",
                    crate::text::Shown(&dir.display().to_string())
                ));
                Outcome::CouldNotTell
            }
        };
    }
    let wanted = args.command.as_deref();
    match pages()
        .into_iter()
        .find(|page| page.command.as_deref() == wanted)
    {
        Some(page) => {
            out.data(&page.roff);
            Outcome::Success
        }
        None => {
            out.say("no such man page");
            Outcome::CouldNotTell
        }
    }
}

/// One man page.
#[derive(Debug)]
pub struct Page {
    /// `None` for hmn(1), else the command (`"ps"` for hmn-ps(1)).
    pub command: Option<String>,
    /// `hmn.1`, `hmn-ps.1`.
    pub file_name: String,
    pub roff: String,
}

/// hmn(1), then one page per command in the order `--help` lists them.
pub fn pages() -> Vec<Page> {
    // `help` is clap's own command, not a page; build() names the commands `hmn-ps` etc.
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let subcommands: Vec<clap::Command> = root
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .cloned()
        .collect();
    let see_also: Vec<String> = subcommands
        .iter()
        .map(|c| format!("hmn-{}(1)", c.get_name()))
        .collect();
    let mut pages = vec![Page {
        command: None,
        file_name: "hmn.1".to_owned(),
        roff: render(root, true, &see_also),
    }];
    for command in subcommands {
        let name = command.get_name().to_owned();
        pages.push(Page {
            file_name: format!("hmn-{name}.1"),
            command: Some(name),
            roff: render(command, false, &["hmn(1)".to_owned()]),
        });
    }
    pages
}

fn write_all(dir: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    pages()
        .into_iter()
        .map(|page| {
            let path = dir.join(&page.file_name);
            std::fs::write(&path, page.roff)?;
            Ok(path)
        })
        .collect()
}

/// A page: clap_mangen's sections, then ours. Writing into a `Vec` cannot fail, so the
/// `io::Result`s of the section writers are dropped.
fn render(command: clap::Command, top: bool, see_also: &[String]) -> String {
    let notes = command
        .get_after_long_help()
        .or_else(|| command.get_after_help())
        .map(ToString::to_string);
    let man = Man::new(command);
    let mut bytes = Vec::new();
    let _ = man.render_title(&mut bytes);
    let _ = man.render_name_section(&mut bytes);
    let _ = man.render_synopsis_section(&mut bytes);
    let _ = man.render_description_section(&mut bytes);
    let _ = man.render_options_section(&mut bytes);
    if top {
        let _ = man.render_subcommands_section(&mut bytes);
    }
    let mut roff = Roff::new();
    if let Some(notes) = notes.filter(|_| !top) {
        roff.control("SH", ["NOTES"]);
        for paragraph in notes.split("\n\n") {
            roff.control("PP", []);
            roff.text([roman(
                paragraph.split_whitespace().collect::<Vec<_>>().join(" "),
            )]);
        }
    }
    roff.control("SH", ["EXIT STATUS"]);
    tagged(&mut roff, EXIT_CODES);
    for note in EXIT_CODE_NOTES {
        roff.control("PP", []);
        roff.text([roman(*note)]);
    }
    roff.control("SH", ["ENVIRONMENT"]);
    tagged(&mut roff, ENVIRONMENT);
    if top {
        roff.control("SH", ["LIMITS"]);
        roff.text([roman("Where the numbers come from, and their limits:")]);
        tagged(&mut roff, LIMITATIONS);
    }
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(see_also.join(", "))]);
    let _ = roff.to_writer(&mut bytes);
    let _ = man.render_version_section(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `.TP` paragraphs: the tag in bold on its own line, its text indented below.
fn tagged(roff: &mut Roff, items: &[(&str, &str)]) {
    for (tag, text) in items {
        roff.control("TP", []);
        roff.text([bold(*tag)]);
        roff.text([roman(*text)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(command: Option<&str>) -> String {
        pages()
            .into_iter()
            .find(|p| p.command.as_deref() == command)
            .map(|p| p.roff)
            .unwrap_or_default()
    }

    /// The lines of section `name` (after `.SH name`, up to the next `.SH`).
    fn section(roff: &str, name: &str) -> Vec<String> {
        let mut lines = roff.lines();
        let heading = format!(".SH \"{name}\"");
        let plain = format!(".SH {name}");
        lines
            .by_ref()
            .find(|l| *l == heading || *l == plain)
            .map(|_| ())
            .unwrap_or_default();
        lines
            .take_while(|l| !l.starts_with(".SH"))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_page_that_a_page_refers_to_is_generated() {
        let all = pages();
        let names: Vec<String> = all
            .iter()
            .map(|p| p.file_name.trim_end_matches(".1").to_owned())
            .collect();
        assert!(names.len() >= 7, "{names:?}");
        for page in &all {
            let text = page.roff.replace("\\-", "-");
            for (at, _) in text.match_indices("(1)") {
                let start = text[..at]
                    .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .map_or(0, |i| i + 1);
                let referenced = &text[start..at];
                assert!(
                    names.iter().any(|n| n == referenced),
                    "{} refers to {referenced}(1), which is not generated",
                    page.file_name
                );
            }
        }
        assert!(page(None).contains("hmn\\-ps(1)"));
        assert!(
            page(Some("ps")).contains(".TH hmn-ps 1"),
            "{}",
            page(Some("ps"))
        );
    }

    #[test]
    fn each_exit_code_is_its_own_tagged_paragraph_never_filled_into_the_next() {
        for roff in [page(None), page(Some("fits"))] {
            let lines = section(&roff, "EXIT STATUS");
            for (code, meaning) in EXIT_CODES {
                let at = lines
                    .iter()
                    .position(|l| *l == format!("\\fB{code}\\fR"))
                    .unwrap_or_else(|| panic!("no tag for exit code {code}: {lines:?}"));
                assert_eq!(lines[at - 1], ".TP", "{lines:?}");
                assert_eq!(lines[at + 1].replace("\\-", "-"), *meaning, "{lines:?}");
            }
        }
    }

    #[test]
    fn each_environment_variable_is_its_own_tagged_paragraph() {
        let lines = section(&page(None), "ENVIRONMENT");
        let tags: Vec<&String> = lines.iter().filter(|l| l.starts_with("\\fB")).collect();
        assert_eq!(tags.len(), ENVIRONMENT.len(), "{lines:?}");
        for (name, _) in ENVIRONMENT {
            let tag = format!("\\fB{}\\fR", name.replace('-', "\\-"));
            assert!(lines.contains(&tag), "{name} missing: {lines:?}");
        }
    }

    #[test]
    fn the_ps_page_tells_the_column_drop_order() {
        let notes = section(&page(Some("ps")), "NOTES").join(" ");
        assert!(
            notes.contains("SPILL, GPU%, RSS, USER, GI/CI, SYS"),
            "{notes}"
        );
    }
}
