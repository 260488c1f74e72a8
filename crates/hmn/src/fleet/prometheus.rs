//! `--prometheus`: the fleet as a Prometheus server already holds it.
//!
//! A site that runs Prometheus has every node's series in one place, so the fleet is a few
//! instant queries (`/api/v1/query`) rather than one scrape per node: `up` (which targets
//! answer), `timestamp(up)` (how old each target's last scrape is), and one query per
//! exporter ([`DIALECTS`]: `hmn serve`, dcgm-exporter, all-smi) naming the families its
//! mapping reads, so a site without `hmn serve` still gets answers. `--selector`'s matchers go
//! into every selector. The answers are grouped into nodes by `instance` and mapped by the
//! same code as a direct scrape (`exposition::node_from_series`).
//!
//! A target whose last scrape failed (`up == 0`) has no series (Prometheus marks them stale),
//! so it is shown as down — when its job is a GPU exporter's, that is, when another target of
//! the same job has GPU series; other targets (node_exporter, Prometheus itself) are not
//! nodes of this fleet. A node's age is its last scrape's age plus, for `hmn serve`, its own
//! sample age; it is stale past three of its sampling intervals (only `hmn serve` exports
//! its interval).
//!
//! A query Prometheus refuses (400, 422: a bad `--selector`) or cannot run (503, a timeout,
//! nothing listening) fails the read with [`FleetError::Prometheus`], saying which query and
//! what Prometheus said.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::exposition::{self, DIALECTS, Dialect, Origin, Series};
use super::http::{self, ACCEPT_JSON, FetchError, HttpClient};
use super::{CollectOptions, Fleet, FleetError, Node};

/// The server's base URL: `http://` added when missing, no trailing `/`.
pub fn server_url(server: &str) -> Result<String, FleetError> {
    let server = server.trim().trim_end_matches('/');
    let url = if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    };
    http::parse_url(&url).map_err(|e| FleetError::BadSource(format!("--prometheus: {e}")))?;
    Ok(url)
}

/// The matchers inside `--selector` (`{cluster="a"}` or `cluster="a"`), without braces and
/// trailing comma; `None` when it has none.
pub fn selector_matchers(selector: Option<&str>) -> Result<Option<String>, FleetError> {
    let Some(selector) = selector else {
        return Ok(None);
    };
    let trimmed = selector.trim();
    let inner = match trimmed.strip_prefix('{') {
        Some(rest) => rest
            .strip_suffix('}')
            .ok_or_else(|| bad_selector(selector))?,
        None if trimmed.ends_with('}') || trimmed.contains('{') => {
            return Err(bad_selector(selector));
        }
        None => trimmed,
    };
    if inner.contains(['{', '}']) {
        return Err(bad_selector(selector));
    }
    let inner = inner.trim().trim_end_matches(',').trim();
    Ok((!inner.is_empty()).then(|| inner.to_owned()))
}

fn bad_selector(selector: &str) -> FleetError {
    FleetError::BadSource(format!(
        "--selector `{selector}`: give label matchers only, e.g. '{{cluster=\"a\"}}' or \
         '{{cluster=\"a\",node=~\"gpu-.*\"}}' (no metric name)"
    ))
}

/// `metric{matchers, extra}`: `extra` (a [`selector_matchers`] result) merged into the
/// selector's own matchers. `metric` may be empty (`{__name__=~"..."}`).
pub fn with_matchers(metric: &str, matchers: &[&str], extra: Option<&str>) -> String {
    let all: Vec<&str> = matchers.iter().copied().chain(extra).collect();
    format!("{metric}{{{}}}", all.join(","))
}

/// A PromQL string literal.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Percent-encodes a query parameter (every byte but the unreserved ones; hand-written: one
/// loop, where a crate would be a dependency for it alone).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The selector of one exporter's families, with `--selector` merged.
pub fn dialect_query(dialect: &Dialect, extra: Option<&str>) -> String {
    let names = dialect.families().join("|");
    with_matchers("", &[&format!("__name__=~{}", quote(&names))], extra)
}

#[derive(Debug, Deserialize)]
struct ApiAnswer {
    status: String,
    #[serde(default)]
    data: Option<serde_json::Value>,
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct VectorData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<VectorSample>,
}

#[derive(Debug, Deserialize)]
struct VectorSample {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

#[derive(Debug, Deserialize)]
struct MatrixSample {
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

/// What one API call answered: its `data`, and Prometheus's warnings.
pub struct ApiData {
    pub data: serde_json::Value,
    pub warnings: Vec<String>,
}

/// GETs `path` (with its query string) from the server's API; `what` names the call in
/// errors (the PromQL query, or "the targets API").
pub async fn api_get(
    client: &HttpClient,
    server: &str,
    path: &str,
    what: &str,
) -> Result<ApiData, FleetError> {
    let answer = client
        .get(&format!("{server}{path}"), ACCEPT_JSON)
        .await
        .map_err(|e| unreachable_server(server, &e))?;
    let parsed: Option<ApiAnswer> = serde_json::from_str(&answer.body).ok();
    let said = parsed
        .as_ref()
        .and_then(|a| a.error.clone())
        .unwrap_or_else(|| answer.body.lines().next().unwrap_or("").trim().to_owned());
    let kind = parsed
        .as_ref()
        .and_then(|a| a.error_type.clone())
        .map_or(String::new(), |k| format!(", {k}"));
    match answer.status {
        200 => {}
        400 | 422 => {
            return Err(FleetError::Prometheus(format!(
                "Prometheus at {server} refused {what} (HTTP {}{kind}): {said}; check \
                 --selector (label matchers such as '{{cluster=\"a\"}}')",
                answer.status
            )));
        }
        503 => {
            return Err(FleetError::Prometheus(format!(
                "Prometheus at {server} is unavailable (HTTP 503{kind}: {said}) for {what}: it \
                 is starting, shutting down or overloaded; retry shortly, or read the \
                 exporters directly with --targets-from or --hosts"
            )));
        }
        code => {
            return Err(FleetError::Prometheus(format!(
                "Prometheus at {server} answered HTTP {code} to {what}{kind}: {said}; is \
                 {server} a Prometheus server (its /api/v1)?"
            )));
        }
    }
    match parsed {
        Some(ApiAnswer {
            status,
            data: Some(data),
            warnings,
            ..
        }) if status == "success" => Ok(ApiData { data, warnings }),
        _ => Err(FleetError::Prometheus(format!(
            "{server} answered {what} with something that is not a Prometheus API answer; \
             is it a Prometheus server?"
        ))),
    }
}

fn unreachable_server(server: &str, e: &FetchError) -> FleetError {
    FleetError::Prometheus(format!(
        "Prometheus at {server} could not be read: {e}; check the --prometheus URL, or read \
         the exporters directly with --hosts"
    ))
}

/// An instant query's vector.
async fn instant(
    client: &HttpClient,
    server: &str,
    query: &str,
) -> Result<(Vec<VectorSample>, Vec<String>), FleetError> {
    let what = format!("the query `{query}`");
    let ApiData { data, warnings } = api_get(
        client,
        server,
        &format!("/api/v1/query?query={}", encode(query)),
        &what,
    )
    .await?;
    let vector: VectorData = serde_json::from_value(data).map_err(|e| {
        FleetError::Prometheus(format!("Prometheus at {server} answered {what} oddly: {e}"))
    })?;
    if vector.result_type != "vector" {
        return Err(FleetError::Prometheus(format!(
            "Prometheus at {server} answered {what} with a {} instead of a vector",
            vector.result_type
        )));
    }
    Ok((vector.result, warnings))
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "NaN" => Some(f64::NAN),
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        v => v.parse().ok(),
    }
}

fn to_series(sample: VectorSample) -> Option<Series> {
    let mut labels = sample.metric;
    let name = labels.remove("__name__")?;
    Some(Series {
        name,
        labels,
        value: parse_value(&sample.value.1)?,
        timestamp_ms: None,
    })
}

/// The machine a series belongs to: its `instance`, else its `Hostname`/`node` label.
fn node_key(labels: &BTreeMap<String, String>) -> Option<String> {
    ["instance", "Hostname", "node", "hostname"]
        .iter()
        .find_map(|l| labels.get(*l).filter(|v| !v.is_empty()).cloned())
}

/// What the queries of one read answered, before it becomes a [`Fleet`].
#[derive(Debug, Default)]
pub struct Answers {
    /// `up{…}`: each target's labels and whether its last scrape worked.
    pub up: Vec<(BTreeMap<String, String>, f64)>,
    /// `timestamp(up{…})`: each target's last scrape, seconds since the epoch.
    pub scraped_at: Vec<(BTreeMap<String, String>, f64)>,
    /// Every exporter's series, with their labels (`instance`, `job` included).
    pub series: Vec<Series>,
    pub warnings: Vec<String>,
}

/// The nodes `answers` describe, at `now_ms` (pure, for the tests).
pub fn fleet_of(answers: Answers, server: &str, now_ms: i64) -> (Vec<Node>, Vec<String>) {
    let mut notes: Vec<String> = answers
        .warnings
        .iter()
        .map(|w| format!("Prometheus warns: {w}"))
        .collect();
    let mut by_node: BTreeMap<String, Vec<Series>> = BTreeMap::new();
    let mut unplaced = 0_usize;
    for s in answers.series {
        match node_key(&s.labels) {
            Some(key) => by_node.entry(key).or_default().push(s),
            None => unplaced += 1,
        }
    }
    if unplaced > 0 {
        notes.push(format!(
            "{unplaced} series have no instance, Hostname or node label and belong to no node"
        ));
    }
    let up: BTreeMap<String, (&BTreeMap<String, String>, f64)> = answers
        .up
        .iter()
        .filter_map(|(labels, v)| Some((labels.get("instance")?.clone(), (labels, *v))))
        .collect();
    let scraped_at: BTreeMap<&str, f64> = answers
        .scraped_at
        .iter()
        .filter_map(|(labels, t)| Some((labels.get("instance")?.as_str(), *t)))
        .collect();
    let mut gpu_jobs: BTreeSet<String> = BTreeSet::new();
    let mut nodes = Vec::new();
    for (key, series) in &by_node {
        let Some(dialect) = exposition::dialect_of(series) else {
            continue;
        };
        // The dialect of the node's exporter only: an instance has one exporter.
        let labels = match up.get(key) {
            Some((labels, _)) => (*labels).clone(),
            None => series
                .iter()
                .find_map(|s| {
                    s.labels
                        .get("instance")
                        .map(|i| BTreeMap::from([("instance".to_owned(), i.clone())]))
                })
                .unwrap_or_default(),
        };
        if let Some(job) = labels.get("job") {
            gpu_jobs.insert(job.clone());
        }
        let extra_age = scraped_at.get(key.as_str()).map(|t| {
            #[allow(clippy::cast_possible_truncation)]
            let at_ms = (t * 1000.0) as i64;
            Duration::from_millis(u64::try_from(now_ms.saturating_sub(at_ms)).unwrap_or(0))
        });
        let mut node = exposition::node_from_series(
            series,
            dialect,
            Origin {
                endpoint: key.clone(),
                fallback_name: key.clone(),
                labels,
                now_ms,
                extra_age,
            },
        );
        // Series linger for a moment after a failed scrape; the failure is what counts.
        if let Some((labels, v)) = up.get(key)
            && *v == 0.0
        {
            node = down_from_up(key, (*labels).clone());
        }
        nodes.push(node);
    }
    // The failing targets of GPU exporters' jobs: no series, but nodes of this fleet.
    for (instance, (labels, v)) in &up {
        if *v == 0.0
            && !by_node.contains_key(instance)
            && labels.get("job").is_some_and(|j| gpu_jobs.contains(j))
        {
            nodes.push(down_from_up(instance, (*labels).clone()));
        }
    }
    if nodes.is_empty() {
        notes.push(format!(
            "Prometheus at {server} has no hmn serve, dcgm-exporter or all-smi series{}",
            if answers.up.is_empty() {
                " and no targets (is it scraping anything?)"
            } else {
                ": is it scraping a GPU exporter?"
            }
        ));
    }
    nodes.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then_with(|| a.endpoint.cmp(&b.endpoint))
    });
    (nodes, notes)
}

fn down_from_up(instance: &str, labels: BTreeMap<String, String>) -> Node {
    let name = [
        "node",
        "nodename",
        "hostname",
        "Hostname",
        "kubernetes_node",
    ]
    .iter()
    .find_map(|l| labels.get(*l).filter(|v| !v.is_empty()).cloned())
    .unwrap_or_else(|| instance.to_owned());
    let job = labels.get("job").cloned().unwrap_or_default();
    let mut node = Node::down(
        name,
        instance.to_owned(),
        format!(
            "Prometheus's last scrape of it failed (up == 0, job {job}): see the target's \
             error on the server's /targets page"
        ),
    );
    node.labels = labels;
    node
}

/// Reads the fleet from the Prometheus server at `server`.
pub fn collect(
    server: &str,
    selector: Option<&str>,
    options: &CollectOptions,
) -> Result<Fleet, FleetError> {
    let server = server_url(server)?;
    let extra = selector_matchers(selector)?;
    let up_query = with_matchers("up", &[], extra.as_deref());
    let mut queries = vec![up_query.clone(), format!("timestamp({up_query})")];
    queries.extend(DIALECTS.iter().map(|d| dialect_query(d, extra.as_deref())));
    let results = http::run(async {
        let client = HttpClient::new(options.timeout, options.concurrency);
        let mut tasks = JoinSet::new();
        for (i, query) in queries.iter().enumerate() {
            let client = client.clone();
            let server = server.clone();
            let query = query.clone();
            tasks.spawn(async move { (i, instant(&client, &server, &query).await) });
        }
        let mut results: Vec<Option<Result<_, FleetError>>> =
            queries.iter().map(|_| None).collect();
        while let Some(Ok((i, result))) = tasks.join_next().await {
            results[i] = Some(result);
        }
        results
    })
    .map_err(FleetError::Prometheus)?;
    let mut answers = Answers::default();
    for (i, result) in results.into_iter().enumerate() {
        let (samples, warnings) = result.ok_or_else(|| {
            FleetError::Prometheus(format!("the query `{}` did not finish", queries[i]))
        })??;
        answers.warnings.extend(warnings);
        match i {
            0 => {
                answers.up = samples
                    .into_iter()
                    .filter_map(|mut s| {
                        // The target's labels are the node's; `up` is no label of it.
                        s.metric.remove("__name__");
                        Some((s.metric, parse_value(&s.value.1)?))
                    })
                    .collect();
            }
            1 => {
                answers.scraped_at = samples
                    .into_iter()
                    .filter_map(|s| Some((s.metric, parse_value(&s.value.1)?)))
                    .collect();
            }
            _ => answers
                .series
                .extend(samples.into_iter().filter_map(to_series)),
        }
    }
    answers.warnings.sort();
    answers.warnings.dedup();
    let (nodes, notes) = fleet_of(answers, &server, super::now_ms());
    Ok(Fleet {
        source: format!("prometheus {server}"),
        taken_at: SystemTime::now(),
        nodes,
        notes,
    })
}

/// One GPU's memory in use over time, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceHistory {
    /// The GPU's index on its node.
    pub index: u32,
    /// `(when, used bytes)`.
    pub points: Vec<(SystemTime, u64)>,
}

/// The memory in use of each whole GPU of one node (its Prometheus `instance`) over the last
/// `range`, one point per `step` (`/api/v1/query_range`): `hmn serve`'s, dcgm-exporter's
/// (MiB → bytes) or all-smi's series, whichever the node has.
pub fn history(
    server: &str,
    selector: Option<&str>,
    instance: &str,
    range: Duration,
    step: Duration,
    options: &CollectOptions,
) -> Result<Vec<DeviceHistory>, FleetError> {
    let server = server_url(server)?;
    let extra = selector_matchers(selector)?;
    let query = history_query(instance, extra.as_deref());
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let path = format!(
        "/api/v1/query_range?query={}&start={:.3}&end={now:.3}&step={:.3}",
        encode(&query),
        now - range.as_secs_f64(),
        step.as_secs_f64().max(0.001)
    );
    let what = format!("the range query `{query}`");
    let ApiData { data, .. } = http::run(async {
        let client = HttpClient::new(options.timeout, 1);
        api_get(&client, &server, &path, &what).await
    })
    .map_err(FleetError::Prometheus)??;
    parse_matrix(data, &server, &what)
}

/// The range query of [`history`].
pub fn history_query(instance: &str, extra: Option<&str>) -> String {
    let instance = format!("instance={}", quote(instance));
    format!(
        "{} or {} * 1048576 or {}",
        with_matchers("hypomnesis_gpu_memory_used_bytes", &[&instance], extra),
        with_matchers("DCGM_FI_DEV_FB_USED", &[&instance, "GPU_I_ID=\"\""], extra),
        with_matchers("all_smi_gpu_memory_used_bytes", &[&instance], extra),
    )
}

fn parse_matrix(
    data: serde_json::Value,
    server: &str,
    what: &str,
) -> Result<Vec<DeviceHistory>, FleetError> {
    #[derive(Deserialize)]
    struct MatrixData {
        result: Vec<MatrixSample>,
    }
    let matrix: MatrixData = serde_json::from_value(data).map_err(|e| {
        FleetError::Prometheus(format!("Prometheus at {server} answered {what} oddly: {e}"))
    })?;
    let mut out: BTreeMap<u32, DeviceHistory> = BTreeMap::new();
    for sample in matrix.result {
        let Some(index) = ["gpu", "gpu_index", "index"]
            .iter()
            .find_map(|l| sample.metric.get(*l)?.parse::<u32>().ok())
        else {
            continue;
        };
        let history = out.entry(index).or_insert_with(|| DeviceHistory {
            index,
            points: Vec::new(),
        });
        for (t, v) in sample.values {
            let Some(v) = parse_value(&v).filter(|v| v.is_finite() && *v >= 0.0) else {
                continue;
            };
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let bytes = v.round() as u64;
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(t.max(0.0));
            history.points.push((at, bytes));
        }
        history.points.sort_by_key(|p| p.0);
    }
    Ok(out.into_values().collect())
}

#[cfg(test)]
mod tests;
