//! The `/` filter's query language: `user=alice`, `gpu=1`, `vram>2GiB`, `name~python`,
//! combined with `and`, `or`, `not` and parentheses.
//!
//! Why a language rather than a search box: on a machine with hundreds of processes the
//! question is "alice's jobs on GPU 3 holding more than 20 GiB", which a substring cannot
//! ask. The grammar is small enough to remember from the error message alone:
//!
//! ```text
//! query  := or
//! or     := and ("or" and)*
//! and    := not (["and"] not)*          -- two terms side by side mean "and"
//! not    := "not" not | "(" or ")" | term
//! term   := FIELD OP VALUE | WORD        -- a bare word means name~WORD
//! ```
//!
//! So `not` binds tighter than `and`, which binds tighter than `or`. Fields: `user` (`=`
//! exact, `~` substring), `name` (`=` exact, `~` substring of the name or the command line,
//! both case-insensitive), `gpu` and `pid` (numbers), `vram`, `rss` and `shared` (sizes in
//! `hmn`'s own size grammar, [`crate::values::parse_size`]), each with `=`, `!=`, `<`, `>`,
//! `<=`, `>=`. A row whose figure is unknown matches no comparison on it (and so matches its
//! `not`): an unknown VRAM is not "more than 2 GiB", nor "less". Keywords are
//! case-insensitive; a value with spaces is written in double quotes (`name~"my app"`).

use crate::values::parse_size;

use super::rows::ProcessRow;

/// The forms every filter error lists.
pub(crate) const FILTER_FORMS: &str = "accepted: user=NAME, user~TEXT, name~TEXT, name=NAME, \
    gpu=N, pid=N, vram>SIZE, rss<=SIZE, shared>=SIZE (comparisons =, !=, <, >, <=, >=), a bare \
    word (name~WORD); combined with and, or, not and ( )";

/// A comparison of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

impl Cmp {
    fn holds(self, left: u64, right: u64) -> bool {
        match self {
            Self::Eq => left == right,
            Self::Ne => left != right,
            Self::Lt => left < right,
            Self::Gt => left > right,
            Self::Le => left <= right,
            Self::Ge => left >= right,
        }
    }
}

/// A figure of a row compared with a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Figure {
    Gpu,
    Pid,
    Vram,
    Rss,
    Shared,
}

impl Figure {
    fn read(self, row: &ProcessRow) -> Option<u64> {
        match self {
            Self::Gpu => row.gpu.map(u64::from),
            Self::Pid => Some(u64::from(row.pid)),
            Self::Vram => row.vram_bytes,
            Self::Rss => row.rss_bytes,
            Self::Shared => row.shared_bytes,
        }
    }

    const fn is_size(self) -> bool {
        matches!(self, Self::Vram | Self::Rss | Self::Shared)
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    /// Matches every row (an empty filter).
    All,
    /// `user=NAME`: the user is exactly `NAME`.
    UserIs(String),
    /// `user~TEXT`: the user contains `TEXT` (lower-cased here), case-insensitively.
    UserHas(String),
    /// `name=NAME`: the name is `NAME`, case-insensitively (lower-cased here).
    NameIs(String),
    /// `name~TEXT` or a bare word: the name or the command line contains `TEXT` (lower-cased
    /// here), case-insensitively.
    NameHas(String),
    /// `vram>2GiB`, `gpu=1`, `pid<100`.
    Compare(Figure, Cmp, u64),
    Not(Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

impl Filter {
    /// Parses `text`; the error says what is wrong and which forms are accepted. Blank text
    /// is [`Filter::All`].
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let tokens = tokenize(text).map_err(|e| explain(text, &e))?;
        if tokens.is_empty() {
            return Ok(Self::All);
        }
        let mut parser = Parser { tokens, at: 0 };
        let filter = parser.or().map_err(|e| explain(text, &e))?;
        match parser.peek() {
            None => Ok(filter),
            Some(Token::Close) => Err(explain(text, "a `)` without its `(`")),
            Some(other) => Err(explain(text, &format!("unexpected {}", other.describe()))),
        }
    }

    /// Whether `row` passes.
    pub(crate) fn matches(&self, row: &ProcessRow) -> bool {
        match self {
            Self::All => true,
            Self::UserIs(user) => row.user.as_deref() == Some(user.as_str()),
            Self::UserHas(text) => row
                .user
                .as_deref()
                .is_some_and(|u| u.to_lowercase().contains(text.as_str())),
            Self::NameIs(name) => row
                .name
                .as_deref()
                .is_some_and(|n| n.to_lowercase() == *name),
            Self::NameHas(text) => [row.name.as_deref(), row.command.as_deref()]
                .into_iter()
                .flatten()
                .any(|s| s.to_lowercase().contains(text.as_str())),
            Self::Compare(figure, cmp, value) => {
                figure.read(row).is_some_and(|v| cmp.holds(v, *value))
            }
            Self::Not(inner) => !inner.matches(row),
            Self::And(a, b) => a.matches(row) && b.matches(row),
            Self::Or(a, b) => a.matches(row) || b.matches(row),
        }
    }
}

fn explain(text: &str, problem: &str) -> String {
    format!("filter `{}`: {problem} ({FILTER_FORMS})", text.trim())
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    /// `=`, `!=`, `<`, `>`, `<=`, `>=`, `~`.
    Op(&'static str),
    /// A word or a quoted string (`quoted` so that `"and"` is a value, not a keyword).
    Word {
        text: String,
        quoted: bool,
    },
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Self::Open => "`(`".to_owned(),
            Self::Close => "`)`".to_owned(),
            Self::Op(op) => format!("`{op}`"),
            Self::Word { text, .. } => format!("`{text}`"),
        }
    }

    fn keyword(&self, keyword: &str) -> bool {
        matches!(self, Self::Word { text, quoted: false } if text.eq_ignore_ascii_case(keyword))
    }
}

const OPS: [&str; 7] = ["<=", ">=", "!=", "=", "<", ">", "~"];

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() {
            rest = &rest[c.len_utf8()..];
        } else if c == '(' || c == ')' {
            tokens.push(if c == '(' { Token::Open } else { Token::Close });
            rest = &rest[1..];
        } else if let Some(op) = OPS.iter().find(|op| rest.starts_with(**op)) {
            tokens.push(Token::Op(op));
            rest = &rest[op.len()..];
        } else if c == '"' {
            let body = &rest[1..];
            let end = body
                .find('"')
                .ok_or_else(|| "a `\"` without its closing `\"`".to_owned())?;
            tokens.push(Token::Word {
                text: body[..end].to_owned(),
                quoted: true,
            });
            rest = &body[end + 1..];
        } else {
            let end = rest
                .find(|c: char| c.is_whitespace() || "()\"=<>~!".contains(c))
                .unwrap_or(rest.len());
            if end == 0 {
                // A lone `!` not followed by `=`.
                return Err(format!("unexpected `{c}`"));
            }
            tokens.push(Token::Word {
                text: rest[..end].to_owned(),
                quoted: false,
            });
            rest = &rest[end..];
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut left = self.and()?;
        while self.peek().is_some_and(|t| t.keyword("or")) {
            self.at += 1;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut left = self.not()?;
        loop {
            match self.peek() {
                Some(t) if t.keyword("and") => self.at += 1,
                // Side by side: `user=alice python`.
                Some(t) if !t.keyword("or") && *t != Token::Close => {}
                _ => return Ok(left),
            }
            let right = self.not()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
    }

    fn not(&mut self) -> Result<Filter, String> {
        match self.next() {
            Some(t) if t.keyword("not") => Ok(Filter::Not(Box::new(self.not()?))),
            Some(Token::Open) => {
                let inner = self.or()?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    Some(other) => Err(format!("expected `)`, found {}", other.describe())),
                    None => Err("a `(` without its `)`".to_owned()),
                }
            }
            Some(Token::Word { text, quoted }) => self.term(text, quoted),
            Some(other) => Err(format!("expected a condition, found {}", other.describe())),
            None => Err("a condition is missing at the end".to_owned()),
        }
    }

    /// `word` was just read: a comparison when an operator follows, else a bare word.
    fn term(&mut self, word: String, quoted: bool) -> Result<Filter, String> {
        let Some(Token::Op(op)) = self.peek().cloned() else {
            if !quoted && ["and", "or"].iter().any(|k| word.eq_ignore_ascii_case(k)) {
                return Err(format!("`{word}` needs a condition before it"));
            }
            return Ok(Filter::NameHas(word.to_lowercase()));
        };
        self.at += 1;
        let value = match self.next() {
            Some(Token::Word { text, .. }) => text,
            Some(other) => {
                return Err(format!(
                    "`{word}{op}` needs a value, found {}",
                    other.describe()
                ));
            }
            None => return Err(format!("`{word}{op}` needs a value")),
        };
        let field = word.to_lowercase();
        match (field.as_str(), op) {
            ("user", "=") => Ok(Filter::UserIs(value)),
            ("user", "~") => Ok(Filter::UserHas(value.to_lowercase())),
            ("name", "=") => Ok(Filter::NameIs(value.to_lowercase())),
            ("name", "~") => Ok(Filter::NameHas(value.to_lowercase())),
            ("user" | "name", _) => Err(format!("`{field}` takes `=` or `~`, not `{op}`")),
            _ => {
                let figure = match field.as_str() {
                    "gpu" => Figure::Gpu,
                    "pid" => Figure::Pid,
                    "vram" => Figure::Vram,
                    "rss" => Figure::Rss,
                    "shared" => Figure::Shared,
                    _ => {
                        return Err(format!(
                            "unknown field `{word}` (fields: user, name, gpu, pid, vram, rss, \
                             shared)"
                        ));
                    }
                };
                let cmp = match op {
                    "=" => Cmp::Eq,
                    "!=" => Cmp::Ne,
                    "<" => Cmp::Lt,
                    ">" => Cmp::Gt,
                    "<=" => Cmp::Le,
                    ">=" => Cmp::Ge,
                    _ => return Err(format!("`{field}` takes =, !=, <, >, <= or >=, not `{op}`")),
                };
                let number = if figure.is_size() {
                    self.size(&value)?
                } else {
                    value
                        .parse::<u32>()
                        .map(u64::from)
                        .map_err(|_| format!("`{field}` takes a whole number, not `{value}`"))?
                };
                Ok(Filter::Compare(figure, cmp, number))
            }
        }
    }

    /// `value` as a size; `2 GiB` written with a space takes the unit from the next word.
    fn size(&mut self, value: &str) -> Result<u64, String> {
        if let Some(Token::Word {
            text: unit,
            quoted: false,
        }) = self.peek()
        {
            let joined = format!("{value}{unit}");
            if value.chars().all(|c| c.is_ascii_digit() || c == '.')
                && let Ok(bytes) = parse_size(&joined)
            {
                self.at += 1;
                return Ok(bytes);
            }
        }
        parse_size(value).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn row(pid: u32, user: &str, name: &str, gpu: u32, vram: Option<u64>) -> ProcessRow {
        ProcessRow {
            pid,
            user: Some(user.to_owned()),
            name: Some(name.to_owned()),
            gpu: Some(gpu),
            mig: None,
            vram_bytes: vram,
            shared_bytes: None,
            rss_bytes: Some(GIB),
            delta_bytes: None,
            peak_bytes: None,
            age: None,
            command: Some(format!("/usr/bin/{name} --serve")),
            cgroup: None,
            mine: false,
            depth: 0,
            subtree_vram_bytes: None,
        }
    }

    fn rows() -> Vec<ProcessRow> {
        vec![
            row(1, "alice", "python3", 0, Some(3 * GIB)),
            row(2, "alice", "Xorg", 1, Some(GIB / 2)),
            row(3, "bob", "python3", 1, Some(10 * GIB)),
            row(4, "bob", "ollama", 0, None),
        ]
    }

    fn pids(text: &str) -> Vec<u32> {
        let filter = Filter::parse(text).unwrap();
        rows()
            .iter()
            .filter(|r| filter.matches(r))
            .map(|r| r.pid)
            .collect()
    }

    #[test]
    fn each_field_selects_the_rows_it_names() {
        assert_eq!(pids("user=alice"), [1, 2]);
        assert_eq!(pids("user~LI"), [1, 2]);
        assert_eq!(pids("gpu=1"), [2, 3]);
        assert_eq!(pids("pid>=3"), [3, 4]);
        assert_eq!(pids("vram>2GiB"), [1, 3]);
        assert_eq!(pids("vram <= 512MiB"), [2]);
        assert_eq!(pids("vram=3GiB"), [1]);
        assert_eq!(pids("vram!=3GiB"), [2, 3]);
        assert_eq!(pids("rss>=1G"), [1, 2, 3, 4]);
        assert_eq!(pids("name~PYTH"), [1, 3]);
        assert_eq!(pids("name=xorg"), [2]);
        assert_eq!(pids("NAME=python"), Vec::<u32>::new());
    }

    #[test]
    fn a_bare_word_searches_the_name_and_the_command_line() {
        assert_eq!(pids("ollama"), [4]);
        assert_eq!(pids("--SERVE"), [1, 2, 3, 4]);
        assert_eq!(pids("bin/xorg"), [2]);
        assert_eq!(pids("\"bin/xorg --serve\""), [2]);
    }

    #[test]
    fn a_size_may_be_written_with_a_space_before_its_unit() {
        assert_eq!(
            Filter::parse("vram > 2 GiB").unwrap(),
            Filter::Compare(Figure::Vram, Cmp::Gt, 2 * GIB)
        );
        assert_eq!(pids("vram > 2 GiB and gpu=0"), [1]);
    }

    #[test]
    fn an_unknown_figure_matches_no_comparison_but_matches_its_negation() {
        assert!(!pids("vram>0").contains(&4));
        assert!(!pids("vram<100GiB").contains(&4));
        assert!(pids("not vram>0").contains(&4));
    }

    #[test]
    fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
        // or(user=bob, and(gpu=1, vram<1GiB)): 3 and 4 by user, 2 by the conjunction.
        assert_eq!(pids("user=bob or gpu=1 and vram<1GiB"), [2, 3, 4]);
        // and(not(user=bob), gpu=1): only 2, not "not (bob and gpu 1)".
        assert_eq!(pids("not user=bob and gpu=1"), [2]);
        assert_eq!(
            Filter::parse("not a and b or c").unwrap(),
            Filter::Or(
                Box::new(Filter::And(
                    Box::new(Filter::Not(Box::new(Filter::NameHas("a".into())))),
                    Box::new(Filter::NameHas("b".into()))
                )),
                Box::new(Filter::NameHas("c".into()))
            )
        );
    }

    #[test]
    fn parentheses_group_and_words_side_by_side_mean_and() {
        assert_eq!(pids("(user=bob or gpu=1) and vram<1GiB"), [2]);
        assert_eq!(pids("not (user=bob or gpu=1)"), [1]);
        assert_eq!(pids("user=alice python"), [1]);
        assert_eq!(pids("USER=alice AND NOT python"), [2]);
    }

    #[test]
    fn a_blank_filter_matches_everything() {
        assert_eq!(Filter::parse("  ").unwrap(), Filter::All);
        assert_eq!(pids(""), [1, 2, 3, 4]);
    }

    #[test]
    fn errors_name_what_was_wrong_and_list_the_accepted_forms() {
        let cases = [
            ("vram>2XB", "unknown unit `xb`"),
            ("vram>", "`vram>` needs a value"),
            ("colour=red", "unknown field `colour`"),
            ("gpu=one", "`gpu` takes a whole number, not `one`"),
            ("gpu~1", "`gpu` takes =, !=, <, >, <= or >=, not `~`"),
            ("user>alice", "`user` takes `=` or `~`, not `>`"),
            ("(user=bob", "a `(` without its `)`"),
            ("user=bob)", "a `)` without its `(`"),
            ("user=bob and", "a condition is missing at the end"),
            ("or python", "`or` needs a condition before it"),
            ("name~\"open", "a `\"` without its closing `\"`"),
            ("a ! b", "unexpected `!`"),
            ("=3", "expected a condition, found `=`"),
        ];
        for (text, problem) in cases {
            let error = Filter::parse(text).unwrap_err();
            assert!(error.contains(problem), "{text}: {error}");
            assert!(error.contains(text), "{text}: {error}");
            assert!(error.contains(FILTER_FORMS), "{text}: {error}");
        }
    }
}
