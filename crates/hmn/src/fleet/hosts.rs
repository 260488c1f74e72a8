//! `--hosts` and `--hostfile`: the exporters' `/metrics`, scraped directly.
//!
//! A host list is what an operator already has: a file of `host:port` lines, or the
//! `file_sd` JSON Prometheus reads (`[{"targets": ["node-1:9464"], "labels": {...}}]`), so
//! the same file serves both. Each entry is completed to a `/metrics` URL here, and a bad
//! entry is an error naming the file and line before any node is contacted. The scrape
//! itself turns every failure into a down node with its reason, never an error of the read.

use std::collections::BTreeMap;
use std::path::Path;

use super::{FleetError, Target};

/// `hmn serve`'s port when a host is given without one.
pub const DEFAULT_PORT: u16 = 9464;

/// Completes `entry` (`host`, `host:port`, `http://host:port`, or a full URL) to the URL of
/// its `/metrics`; `Err` says what is wrong with it.
pub fn complete_url(entry: &str) -> Result<String, String> {
    let entry = entry.trim();
    if entry.is_empty() {
        return Err("an empty host".to_owned());
    }
    if entry.chars().any(char::is_whitespace) {
        return Err(format!(
            "`{entry}` is not a URL or host:port (one entry a line, or comma-separated)"
        ));
    }
    let (scheme, rest) = match entry.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None => ("http", entry),
    };
    if scheme.eq_ignore_ascii_case("https") {
        return Err(format!(
            "`{entry}`: https is not supported; read the exporter over http://, or through a \
             Prometheus server that scrapes it (--prometheus)"
        ));
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(format!("`{entry}`: only http:// URLs are read"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.starts_with(':') {
        return Err(format!("`{entry}` has no host"));
    }
    // The port follows the last `:`, after the `]` of a bracketed IPv6 literal.
    let after_host = match authority.rfind(']') {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    let authority = match after_host.rsplit_once(':') {
        None => format!("{authority}:{DEFAULT_PORT}"),
        Some((_, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            authority.to_owned()
        }
        Some((_, port)) => return Err(format!("`{entry}`: `{port}` is not a port number")),
    };
    let path = if path.is_empty() || path == "/" {
        "/metrics"
    } else {
        path
    };
    Ok(format!("http://{authority}{path}"))
}

/// `host:port` of a completed URL: how a node without a name label is shown.
pub fn authority_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// The targets of the `--hosts` arguments.
pub fn targets_of_hosts(hosts: &[String]) -> Result<Vec<Target>, FleetError> {
    hosts
        .iter()
        .map(|h| {
            complete_url(h)
                .map(|url| Target {
                    url,
                    labels: BTreeMap::new(),
                })
                .map_err(|why| FleetError::BadSource(format!("--hosts: {why}")))
        })
        .collect()
}

/// Parses a hostfile's text (`path` names it in errors): `file_sd` JSON when it starts with
/// `[`, else one entry a line with `#` comments.
pub fn parse_hostfile(text: &str, path: &Path) -> Result<Vec<Target>, FleetError> {
    let file = path.display();
    if text.trim_start().starts_with('[') {
        return parse_file_sd(text, path);
    }
    if matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yml" | "yaml")
    ) && text
        .lines()
        .any(|l| l.trim_start().starts_with("- targets"))
    {
        return Err(FleetError::BadSource(format!(
            "--hostfile {file}: YAML file_sd is not read; write the same groups as JSON \
             ([{{\"targets\": [\"host:port\"], \"labels\": {{}}}}]) or one host:port a line"
        )));
    }
    let mut targets = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let url = complete_url(entry).map_err(|why| {
            FleetError::BadSource(format!("--hostfile {file}, line {}: {why}", i + 1))
        })?;
        targets.push(Target {
            url,
            labels: BTreeMap::new(),
        });
    }
    if targets.is_empty() {
        return Err(FleetError::BadSource(format!(
            "--hostfile {file} lists no host: write one URL or host:port a line, or file_sd JSON"
        )));
    }
    Ok(targets)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSdGroup {
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn parse_file_sd(text: &str, path: &Path) -> Result<Vec<Target>, FleetError> {
    let file = path.display();
    let groups: Vec<FileSdGroup> = serde_json::from_str(text).map_err(|e| {
        FleetError::BadSource(format!(
            "--hostfile {file}, line {}, column {}: not file_sd JSON ({e}); the format is \
             [{{\"targets\": [\"host:port\", ...], \"labels\": {{\"name\": \"value\"}}}}]",
            e.line(),
            e.column()
        ))
    })?;
    let mut targets = Vec::new();
    for (g, group) in groups.into_iter().enumerate() {
        // Prometheus's relabelling labels: `__metrics_path__` and `__scheme__` change the URL,
        // the other `__` labels are Prometheus's own and are not the node's.
        let scheme = group
            .labels
            .get("__scheme__")
            .cloned()
            .unwrap_or_else(|| "http".to_owned());
        let metrics_path = group.labels.get("__metrics_path__").cloned();
        let labels: BTreeMap<String, String> = group
            .labels
            .into_iter()
            .filter(|(k, _)| !k.starts_with("__"))
            .collect();
        for entry in &group.targets {
            let mut entry = if entry.contains("://") {
                entry.clone()
            } else {
                format!("{scheme}://{entry}")
            };
            if let Some(p) = &metrics_path
                && !entry
                    .split_once("://")
                    .is_some_and(|(_, r)| r.contains('/'))
            {
                entry.push_str(p);
            }
            let url = complete_url(&entry).map_err(|why| {
                FleetError::BadSource(format!("--hostfile {file}, group {}: {why}", g + 1))
            })?;
            targets.push(Target {
                url,
                labels: labels.clone(),
            });
        }
    }
    if targets.is_empty() {
        return Err(FleetError::BadSource(format!(
            "--hostfile {file}: its file_sd groups list no target"
        )));
    }
    Ok(targets)
}

#[cfg(feature = "fleet")]
pub use scrape::{Reached, scrape_all, scrape_each};

#[cfg(feature = "fleet")]
mod scrape {
    use std::collections::BTreeMap;

    use tokio::task::JoinSet;

    use super::super::exposition::{self, Origin};
    use super::super::http::{ACCEPT_TEXT, HttpClient};
    use super::super::{Node, Target};
    use super::authority_of;

    /// The name of a node that could not be read: its list's name label, else `host:port`.
    fn down_node(target: &Target, reason: String) -> Node {
        let name = ["node", "nodename", "hostname", "Hostname"]
            .iter()
            .find_map(|l| target.labels.get(*l).filter(|v| !v.is_empty()).cloned())
            .unwrap_or_else(|| authority_of(&target.url).to_owned());
        let mut node = Node::down(name, target.url.clone(), reason);
        node.labels = target.labels.clone();
        node
    }

    /// How far a scrape got.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Reached {
        /// A GPU exporter answered (the node may still be stale, or down on a duplicate).
        Exporter,
        /// Something answered with a readable body holding no GPU exporter's series.
        NotAGpuExporter,
        /// No usable answer: timeout, refused, HTTP error, unparsable body.
        Failed,
    }

    async fn scrape_reached(client: &HttpClient, target: &Target) -> (Node, Reached) {
        let failed = |reason: String| (down_node(target, reason), Reached::Failed);
        let answer = match client.get(&target.url, ACCEPT_TEXT).await {
            Ok(answer) => answer,
            Err(e) => return failed(e.to_string()),
        };
        if answer.status != 200 {
            let hint = if answer.status == 404 {
                ": is the path the exporter's /metrics?"
            } else {
                ""
            };
            return failed(format!(
                "HTTP {} from the exporter{hint} ({})",
                answer.status,
                answer.body.lines().next().unwrap_or("").trim()
            ));
        }
        let series = match exposition::parse(&answer.body) {
            Ok(series) => series,
            Err(e) => {
                return failed(format!(
                    "unparsable /metrics ({e}): is this a Prometheus exporter?"
                ));
            }
        };
        let Some(dialect) = exposition::dialect_of(&series) else {
            return (
                down_node(
                    target,
                    "its /metrics has no hmn serve, dcgm-exporter or all-smi series: is this \
                     a GPU exporter?"
                        .to_owned(),
                ),
                Reached::NotAGpuExporter,
            );
        };
        let node = exposition::node_from_series(
            &series,
            dialect,
            Origin {
                endpoint: target.url.clone(),
                fallback_name: authority_of(&target.url).to_owned(),
                labels: target.labels.clone(),
                now_ms: super::super::now_ms(),
                extra_age: None,
            },
        );
        (node, Reached::Exporter)
    }

    /// Scrapes every target at once (the client bounds how many run together and how long
    /// each may take); one node per distinct URL, sorted by name.
    pub async fn scrape_all(client: &HttpClient, targets: &[Target]) -> Vec<Node> {
        scrape_each(client, targets)
            .await
            .into_iter()
            .map(|(node, _)| node)
            .collect()
    }

    /// As [`scrape_all`], with how far each scrape got.
    pub async fn scrape_each(client: &HttpClient, targets: &[Target]) -> Vec<(Node, Reached)> {
        let mut unique: BTreeMap<&str, &Target> = BTreeMap::new();
        for t in targets {
            unique.entry(t.url.as_str()).or_insert(t);
        }
        let mut tasks = JoinSet::new();
        for target in unique.into_values() {
            let client = client.clone();
            let target = target.clone();
            tasks.spawn(async move { scrape_reached(&client, &target).await });
        }
        let mut nodes = Vec::with_capacity(tasks.len());
        while let Some(done) = tasks.join_next().await {
            // A scrape task does not panic; were one to, its node is left out rather than
            // failing the whole read.
            if let Ok(node) = done {
                nodes.push(node);
            }
        }
        nodes.sort_by(|(a, _), (b, _)| {
            a.name
                .cmp(&b.name)
                .then_with(|| a.endpoint.cmp(&b.endpoint))
        });
        nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Target>, FleetError> {
        parse_hostfile(text, Path::new("fleet.txt"))
    }

    fn urls(text: &str) -> Vec<String> {
        parse(text).unwrap().into_iter().map(|t| t.url).collect()
    }

    #[test]
    fn entries_are_completed_to_metrics_urls() {
        for (entry, url) in [
            ("gpu-1", "http://gpu-1:9464/metrics"),
            ("gpu-1:9400", "http://gpu-1:9400/metrics"),
            ("http://gpu-1:9400", "http://gpu-1:9400/metrics"),
            ("http://gpu-1:9400/", "http://gpu-1:9400/metrics"),
            (
                "http://gpu-1:9400/custom/path",
                "http://gpu-1:9400/custom/path",
            ),
            ("10.0.0.7", "http://10.0.0.7:9464/metrics"),
            ("[::1]:9464", "http://[::1]:9464/metrics"),
            ("[fe80::1]", "http://[fe80::1]:9464/metrics"),
        ] {
            assert_eq!(complete_url(entry).as_deref(), Ok(url), "{entry}");
        }
        assert!(complete_url("gpu-1:http").is_err());
        assert!(
            complete_url("https://gpu-1:9464")
                .unwrap_err()
                .contains("https is not")
        );
        assert!(complete_url("ftp://gpu-1").is_err());
        assert!(complete_url(":9464").is_err());
    }

    #[test]
    fn a_plain_hostfile_has_one_entry_a_line_with_comments_and_blank_lines() {
        let text =
            "# the A100 rack\ngpu-1:9464\n\n  gpu-2  # spare\nhttp://10.0.0.9:9400/metrics\n";
        assert_eq!(
            urls(text),
            [
                "http://gpu-1:9464/metrics",
                "http://gpu-2:9464/metrics",
                "http://10.0.0.9:9400/metrics"
            ]
        );
    }

    #[test]
    fn a_bad_hostfile_line_is_named_with_the_file_and_what_to_do() {
        let err = parse("gpu-1\ngpu-2 gpu-3\n").unwrap_err().to_string();
        assert!(err.contains("fleet.txt, line 2"), "{err}");
        assert!(err.contains("one entry a line"), "{err}");
        let err = parse("# nothing\n\n").unwrap_err().to_string();
        assert!(err.contains("lists no host"), "{err}");
    }

    #[test]
    fn file_sd_json_groups_give_targets_with_their_labels() {
        let text = r#"[
  {"targets": ["gpu-1:9464", "gpu-2:9464"], "labels": {"cluster": "a", "__meta_x": "y"}},
  {"targets": ["10.0.0.9:9400"], "labels": {"node": "dgx-9", "__metrics_path__": "/dcgm/metrics"}},
  {"targets": ["gpu-3:9464"]}
]"#;
        let targets = parse(text).unwrap();
        assert_eq!(targets.len(), 4);
        assert_eq!(targets[0].url, "http://gpu-1:9464/metrics");
        assert_eq!(targets[1].labels["cluster"], "a");
        assert!(!targets[1].labels.contains_key("__meta_x"));
        assert_eq!(targets[2].url, "http://10.0.0.9:9400/dcgm/metrics");
        assert_eq!(targets[2].labels["node"], "dgx-9");
        assert!(targets[3].labels.is_empty());
    }

    #[test]
    fn bad_file_sd_json_says_where_and_shows_the_format() {
        let err = parse("[{\"targets\": [\"gpu-1:9464\"], \"label\": {}}]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("fleet.txt, line 1, column"), "{err}");
        assert!(err.contains("\"targets\""), "{err}");
        let err = parse("[{\"targets\": [\"gpu 1\"]}]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("group 1"), "{err}");
        let err = parse("[{\"targets\": [\"gpu-1\"], \"labels\": {\"__scheme__\": \"https\"}}]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("https is not supported"), "{err}");
    }

    #[test]
    fn yaml_file_sd_is_refused_with_the_json_to_write_instead() {
        let err = parse_hostfile(
            "- targets: ['gpu-1:9464']\n  labels:\n    cluster: a\n",
            Path::new("sd.yml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sd.yml"), "{err}");
        assert!(err.contains("as JSON"), "{err}");
    }

    #[test]
    fn an_unreadable_hostfile_is_a_bad_source_naming_it() {
        let err = crate::fleet::read_hostfile(Path::new("/nonexistent/fleet.txt")).unwrap_err();
        assert!(
            matches!(&err, FleetError::BadSource(why) if why.contains("/nonexistent/fleet.txt"))
        );
    }
}
