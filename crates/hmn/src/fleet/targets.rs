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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::fleet::tests::{Behaviour, InFlight, refusing, serve};
    use crate::fleet::{CollectOptions, NodeState, Source, collect as collect_fleet};

    fn active(url: &str, job: &str, node: Option<&str>) -> String {
        let instance = super::hosts::authority_of(url);
        let node = node.map_or(String::new(), |n| format!(",\"node\":\"{n}\""));
        format!(
            r#"{{"discoveredLabels":{{"__address__":"{instance}"}},"labels":{{"instance":"{instance}","job":"{job}"{node}}},"scrapePool":"{job}","scrapeUrl":"{url}","globalUrl":"{url}","lastError":"","lastScrape":"2026-12-06T10:00:00Z","lastScrapeDuration":0.002,"health":"up","scrapeInterval":"15s","scrapeTimeout":"10s"}}"#
        )
    }

    #[test]
    fn the_targets_api_gives_the_nodes_which_are_then_scraped_directly() {
        let flight = Arc::new(InFlight::default());
        let hmn = serve(
            Behaviour::Answer(
                200,
                "hypomnesis_gpu_memory_free_bytes{gpu=\"0\",uuid=\"GPU-0\",name=\"H100\",vendor=\"nvidia\"} 42\n"
                    .to_owned(),
            ),
            Arc::clone(&flight),
        );
        let node_exporter = serve(
            Behaviour::Answer(200, "node_load1 0.5\n".to_owned()),
            Arc::clone(&flight),
        );
        let dead_hmn = refusing();
        let dead_other = refusing();
        let targets = [
            active(&format!("http://{hmn}/metrics"), "hmn", Some("dgx-1")),
            active(&format!("http://{dead_hmn}/metrics"), "hmn", None),
            active(&format!("http://{node_exporter}/metrics"), "node", None),
            active(&format!("http://{dead_other}/metrics"), "node", None),
        ];
        let api = format!(
            r#"{{"status":"success","data":{{"activeTargets":[{}],"droppedTargets":[]}}}}"#,
            targets.join(",")
        );
        let server = serve(
            Behaviour::Routes(vec![("/api/v1/targets?state=active".to_owned(), 200, api)]),
            Arc::clone(&flight),
        );
        let fleet = collect_fleet(
            &Source::TargetsFrom {
                server: server.clone(),
            },
            &CollectOptions::default(),
        )
        .unwrap();
        assert_eq!(fleet.source, format!("targets-from http://{server}"));
        let nodes: Vec<(&str, NodeState)> = fleet
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.state))
            .collect();
        assert_eq!(
            nodes,
            [
                (dead_hmn.as_str(), NodeState::Down),
                ("dgx-1", NodeState::Up)
            ],
            "{:#?}",
            fleet.nodes
        );
        assert_eq!(fleet.nodes[1].labels["job"], "hmn");
        assert_eq!(fleet.nodes[1].devices[0].free_bytes, Some(42));
        assert!(
            fleet
                .notes
                .iter()
                .any(|n| n.contains("targets of node are left out")),
            "{:?}",
            fleet.notes
        );
    }

    #[test]
    fn a_targets_api_failure_is_a_prometheus_error() {
        let server = serve(
            Behaviour::Answer(503, "Service Unavailable".to_owned()),
            Arc::new(InFlight::default()),
        );
        let err = collect(&server, &CollectOptions::default()).unwrap_err();
        assert!(
            matches!(&err, FleetError::Prometheus(why) if why.contains("targets API") && why.contains("503")),
            "{err}"
        );
    }

    #[test]
    fn an_odd_targets_answer_is_said_so() {
        assert!(parse_targets(serde_json::json!({"activeTargets": [{"labels": {}}]})).is_err());
        assert_eq!(
            parse_targets(serde_json::json!({"activeTargets": []})).unwrap(),
            Vec::new()
        );
    }
}
