//! `--targets-from`: the node list from a Prometheus server's targets API, then each node
//! scraped directly.
//!
//! Where Prometheus discovers the exporters (Kubernetes service discovery, Consul, file_sd),
//! its list of targets is the fleet's list; reading the exporters directly then gives figures
//! as fresh as the exporters' own, not as old as the last scrape. The targets API
//! (`/api/v1/targets?state=active`) gives each target's `scrapeUrl` and its labels
//! (`instance`, `job`, and whatever relabelling added: `node`, `cluster`), which become the
//! node's labels and name. Targets of every job are scraped, since the API cannot tell a GPU
//! exporter from node_exporter; those whose `/metrics` has no GPU exporter's series are left
//! out (a fleet note counts them), and so are the unreachable targets of jobs none of whose
//! targets is a GPU exporter. An unreachable target of a GPU exporter's job is a down node.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use serde::Deserialize;

use super::hosts::{self, Reached};
use super::http::{self, HttpClient};
use super::prometheus::{api_get, server_url};
use super::{CollectOptions, Fleet, FleetError, Node, Target};

#[derive(Debug, Deserialize)]
struct TargetsData {
    #[serde(rename = "activeTargets", default)]
    active_targets: Vec<ActiveTarget>,
}

#[derive(Debug, Deserialize)]
struct ActiveTarget {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(rename = "scrapeUrl")]
    scrape_url: String,
}

/// The targets in a targets API answer's `data` (pure, for the tests); `Err` says what is odd.
pub fn parse_targets(data: serde_json::Value) -> Result<Vec<Target>, String> {
    let data: TargetsData = serde_json::from_value(data).map_err(|e| e.to_string())?;
    Ok(data
        .active_targets
        .into_iter()
        .map(|t| Target {
            url: t.scrape_url,
            labels: t.labels,
        })
        .collect())
}

/// The nodes of GPU exporters among `scraped`, and notes on what was left out.
pub fn keep_gpu_exporters(
    scraped: Vec<(Node, Reached)>,
    mut notes: Vec<String>,
) -> (Vec<Node>, Vec<String>) {
    let job = |n: &Node| n.labels.get("job").cloned();
    let gpu_jobs: BTreeSet<Option<String>> = scraped
        .iter()
        .filter(|(_, r)| *r == Reached::Exporter)
        .map(|(n, _)| job(n))
        .collect();
    let mut left_out: BTreeSet<String> = BTreeSet::new();
    let mut nodes = Vec::new();
    for (node, reached) in scraped {
        let keep = match reached {
            Reached::Exporter => true,
            Reached::Failed => gpu_jobs.contains(&job(&node)),
            Reached::NotAGpuExporter => false,
        };
        if keep {
            nodes.push(node);
        } else {
            left_out.insert(job(&node).unwrap_or_else(|| node.endpoint.clone()));
        }
    }
    if !left_out.is_empty() {
        notes.push(format!(
            "targets of {} are left out: no GPU exporter answered among them",
            left_out.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    (nodes, notes)
}

/// Reads the targets of `server`, then scrapes them as `--hosts` does.
pub fn collect(server: &str, options: &CollectOptions) -> Result<Fleet, FleetError> {
    let server = server_url(server).map_err(|e| match e {
        FleetError::BadSource(why) => {
            FleetError::BadSource(why.replace("--prometheus", "--targets-from"))
        }
        other => other,
    })?;
    let (nodes, notes) = http::run(async {
        let client = HttpClient::new(options.timeout, options.concurrency);
        let what = "the targets API (/api/v1/targets)";
        let answer = api_get(&client, &server, "/api/v1/targets?state=active", what).await?;
        let targets = parse_targets(answer.data).map_err(|e| {
            FleetError::Prometheus(format!("Prometheus at {server} answered {what} oddly: {e}"))
        })?;
        let mut notes: Vec<String> = answer
            .warnings
            .into_iter()
            .map(|w| format!("Prometheus warns: {w}"))
            .collect();
        if targets.is_empty() {
            notes.push(format!("Prometheus at {server} has no active targets"));
        }
        let scraped = hosts::scrape_each(&client, &targets).await;
        Ok::<_, FleetError>(keep_gpu_exporters(scraped, notes))
    })
    .map_err(FleetError::Prometheus)??;
    Ok(Fleet {
        source: format!("targets-from {server}"),
        taken_at: SystemTime::now(),
        nodes,
        notes,
    })
}
