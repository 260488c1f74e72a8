//! What an exporter's `/metrics` says about its node: the Prometheus text format parsed into
//! series, and the series of `hmn serve`, dcgm-exporter or all-smi mapped onto one [`Node`].
//!
//! The three exporters answer the same questions under different names, units and labels
//! (docs/metrics.md has them side by side): `hmn serve` exports bytes and ratios with `gpu`,
//! `uuid`, `name` labels; dcgm-exporter exports MiB and percents with `gpu`, `UUID`,
//! `modelName`, `Hostname` and, for MIG, `GPU_I_ID` / `GPU_I_PROFILE`; all-smi exports bytes
//! and percents with `gpu_index` (older releases `index`), `gpu_uuid` (`uuid`) and the name
//! in `gpu`. Each is one [`Dialect`] — a table of names, units and labels — and one function
//! ([`node_from_series`]) reads any of them, so the three are treated as equals and a fourth
//! exporter is one more table. The same function maps the series a Prometheus server answers
//! (`fleet/prometheus.rs`), so `--hosts` and `--prometheus` say the same about a node.
//!
//! ## Why the text format is parsed here
//! The crates that parse it were evaluated and none fits: `prometheus-parse` (0.2) splits
//! label pairs on `,` and `=` and trims quotes, so a label value holding a comma, an equals
//! sign or an escaped quote (process names and GPU names do: `AMD Radeon \"780M\"`) comes out
//! wrong, and it drops lines it cannot read silently, so a broken body looks like an empty
//! one; `openmetrics-parser` (0.5) is strict and correct but LGPL-3.0, which this MIT OR
//! Apache-2.0 workspace does not take into its statically linked binary;
//! `prom_text_format_parser` (0.1, one release) keeps escapes unresolved and pulls
//! `derive_more` 0.99 and `winnow` 0.5 for it. The sample line's grammar is small (a name,
//! optional `{label="value",…}` with three escapes, a float, an optional timestamp), so a
//! strict parser of it is shorter than the glue any of those would need, and it reports the
//! line it could not read.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use super::{Exporter, MigPlacement, Node, NodeDevice, NodeHost, NodeProcess, NodeState, PodRef};

/// One sample of the text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    /// Milliseconds since the Unix epoch, when the line carries a timestamp.
    pub timestamp_ms: Option<i64>,
}

impl Series {
    fn label(&self, names: &[&str]) -> Option<&str> {
        names
            .iter()
            .find_map(|n| self.labels.get(*n))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// A line of a `/metrics` body that is not the text format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based.
    pub line: usize,
    pub what: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

/// Parses a Prometheus text format (0.0.4) body; OpenMetrics' `# EOF` and `# UNIT` lines are
/// comments to it. Every sample line must parse: a body with a broken line is refused whole,
/// since a reader that skips lines would report a node with a GPU missing as healthy.
pub fn parse(text: &str) -> Result<Vec<Series>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(parse_sample(line).map_err(|what| ParseError { line: i + 1, what })?);
    }
    Ok(out)
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The leading metric or label name of `s`, and the rest.
fn take_name(s: &str, colons: bool) -> Option<(&str, &str)> {
    let first = s.chars().next()?;
    if !is_name_start(first) || (!colons && first == ':') {
        return None;
    }
    let end = s
        .char_indices()
        .find(|&(_, c)| !is_name_char(c) || (!colons && c == ':'))
        .map_or(s.len(), |(i, _)| i);
    Some((&s[..end], &s[end..]))
}

fn parse_sample(line: &str) -> Result<Series, String> {
    let (name, mut rest) = take_name(line, true)
        .ok_or_else(|| format!("`{}` does not start with a metric name", shorten(line)))?;
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = parse_labels(inner, &mut labels).map_err(|what| format!("{name}: {what}"))?;
    }
    let mut fields = rest.split_ascii_whitespace();
    let value = fields
        .next()
        .ok_or_else(|| format!("{name} has no value"))?;
    let value = parse_float(value).ok_or_else(|| format!("{name}: `{value}` is not a number"))?;
    let timestamp_ms = match fields.next() {
        None => None,
        Some(ts) => Some(
            ts.parse::<i64>()
                .map_err(|_| format!("{name}: timestamp `{ts}` is not integer milliseconds"))?,
        ),
    };
    if let Some(extra) = fields.next() {
        return Err(format!("{name}: unexpected `{extra}` after the value"));
    }
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return Err(format!("{name}: no space before the value"));
    }
    Ok(Series {
        name: name.to_owned(),
        labels,
        value,
        timestamp_ms,
    })
}

/// Reads `name="value",…}` into `labels`; returns what follows the `}`.
fn parse_labels<'a>(
    mut s: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, String> {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok(rest);
        }
        let (key, rest) =
            take_name(s, false).ok_or_else(|| format!("bad label name at `{}`", shorten(s)))?;
        let rest = rest.trim_start();
        let rest = rest
            .strip_prefix('=')
            .ok_or_else(|| format!("label {key} has no `=`"))?
            .trim_start();
        let rest = rest
            .strip_prefix('"')
            .ok_or_else(|| format!("label {key}'s value is not quoted"))?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("label {key}'s value is not closed")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    _ => return Err(format!("label {key}'s value has a bad escape")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(key.to_owned(), value).is_some() {
            return Err(format!("label {key} is given twice"));
        }
        s = rest[end + 1..].trim_start();
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        } else if !s.starts_with('}') {
            return Err(format!("expected `,` or `}}` after label {key}"));
        }
    }
}

/// Go's float syntax as the text format uses it: `NaN`, `+Inf`, `-Inf`, decimals, exponents.
fn parse_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ if s.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) => s.parse().ok(),
        _ => None,
    }
}

fn shorten(s: &str) -> String {
    s.chars().take(60).collect()
}

/// The same series (name and labels) twice with different values: which one a reader takes
/// is arbitrary, so the body is not trusted. Prometheus refuses such a scrape too.
pub fn conflicting_duplicate(series: &[Series]) -> Option<String> {
    let mut seen: HashMap<(&str, &BTreeMap<String, String>), f64> = HashMap::new();
    for s in series {
        if let Some(before) = seen.insert((&s.name, &s.labels), s.value)
            && before.to_bits() != s.value.to_bits()
        {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            return Some(format!(
                "{}{{{}}} is exported twice, as {before} and {}",
                s.name,
                labels.join(","),
                s.value
            ));
        }
    }
    None
}

/// A device figure an exporter may export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Figure {
    Total,
    Used,
    Free,
    Reserved,
    Budget,
    Utilization,
    Temperature,
    Power,
}

/// A process figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProcessFigure {
    Used,
    System,
}

/// A host figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostFigure {
    Total,
    Available,
}

/// How an exporter writes a figure; each becomes our unit (bytes, 0–1 ratios).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// Already ours: bytes, ratios, °C, W, seconds.
    Base,
    /// MiB (dcgm-exporter's framebuffer figures): × 1048576, exactly.
    Mebibytes,
    /// Percent: ÷ 100.
    Percent,
}

impl Unit {
    fn bytes(self, value: f64) -> Option<u64> {
        if !value.is_finite() || value < 0.0 {
            return None;
        }
        // `as` saturates at u64::MAX for a float past it; the text format has no integers.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let whole = value.round() as u64;
        match self {
            Unit::Mebibytes => whole.checked_mul(1_048_576),
            Unit::Base | Unit::Percent => Some(whole),
        }
    }

    fn scalar(self, value: f64) -> Option<f64> {
        if !value.is_finite() {
            return None;
        }
        Some(match self {
            Unit::Percent => value / 100.0,
            Unit::Base | Unit::Mebibytes => value,
        })
    }
}

/// The label names an exporter uses for one fact, first match wins.
type Labels = &'static [&'static str];

/// One exporter's names, units and labels.
#[derive(Debug)]
pub struct Dialect {
    pub exporter: Exporter,
    /// Every family of this exporter starts so: how the exporter is recognised.
    prefix: &'static str,
    devices: &'static [(&'static str, Figure, Unit)],
    processes: &'static [(&'static str, ProcessFigure, Unit)],
    host: &'static [(&'static str, HostFigure)],
    /// The sample age and sampling interval families (seconds), when the exporter has them.
    age: Option<&'static str>,
    interval: Option<&'static str>,
    gpu_index: Labels,
    uuid: Labels,
    name: Labels,
    /// The vendor label, else what every device of this exporter is.
    vendor: Labels,
    vendor_default: Option<&'static str>,
    gpu_instance: Labels,
    compute_instance: Labels,
    profile: Labels,
    pid: Labels,
    process_name: Labels,
    user: Labels,
    kind: Labels,
    /// Labels naming the machine (dcgm-exporter's `Hostname`).
    hostname: Labels,
}

const POD_NAMESPACE: Labels = &["namespace"];
const POD_NAME: Labels = &["pod"];
const POD_CONTAINER: Labels = &["container"];

/// The exporters, in the order they are tried on a body or a Prometheus answer that has
/// more than one (an `hmn serve` next to a dcgm-exporter: ours has the host and processes).
pub const DIALECTS: [&Dialect; 3] = [&HMN_SERVE, &DCGM_EXPORTER, &ALL_SMI];

pub static HMN_SERVE: Dialect = Dialect {
    exporter: Exporter::Hypomnesis,
    prefix: "hypomnesis_",
    devices: &[
        (
            "hypomnesis_gpu_memory_total_bytes",
            Figure::Total,
            Unit::Base,
        ),
        ("hypomnesis_gpu_memory_used_bytes", Figure::Used, Unit::Base),
        ("hypomnesis_gpu_memory_free_bytes", Figure::Free, Unit::Base),
        (
            "hypomnesis_gpu_memory_reserved_bytes",
            Figure::Reserved,
            Unit::Base,
        ),
        (
            "hypomnesis_gpu_memory_budget_bytes",
            Figure::Budget,
            Unit::Base,
        ),
        (
            "hypomnesis_gpu_mig_memory_total_bytes",
            Figure::Total,
            Unit::Base,
        ),
        (
            "hypomnesis_gpu_mig_memory_used_bytes",
            Figure::Used,
            Unit::Base,
        ),
        (
            "hypomnesis_gpu_mig_memory_free_bytes",
            Figure::Free,
            Unit::Base,
        ),
        (
            "hypomnesis_gpu_utilization_ratio",
            Figure::Utilization,
            Unit::Base,
        ),
        (
            "hypomnesis_gpu_temperature_celsius",
            Figure::Temperature,
            Unit::Base,
        ),
        ("hypomnesis_gpu_power_watts", Figure::Power, Unit::Base),
    ],
    processes: &[
        (
            "hypomnesis_gpu_process_memory_bytes",
            ProcessFigure::Used,
            Unit::Base,
        ),
        (
            "hypomnesis_gpu_process_system_memory_bytes",
            ProcessFigure::System,
            Unit::Base,
        ),
    ],
    host: &[
        ("hypomnesis_host_memory_total_bytes", HostFigure::Total),
        (
            "hypomnesis_host_memory_available_bytes",
            HostFigure::Available,
        ),
    ],
    age: Some("hypomnesis_sample_age_seconds"),
    interval: Some("hypomnesis_sample_interval_seconds"),
    gpu_index: &["gpu"],
    uuid: &["uuid"],
    name: &["name"],
    vendor: &["vendor"],
    vendor_default: None,
    gpu_instance: &["gpu_instance"],
    compute_instance: &["compute_instance"],
    profile: &["profile"],
    pid: &["pid"],
    process_name: &["process"],
    user: &["user"],
    kind: &["kind"],
    hostname: &[],
};

pub static DCGM_EXPORTER: Dialect = Dialect {
    exporter: Exporter::Dcgm,
    prefix: "DCGM_FI_",
    devices: &[
        ("DCGM_FI_DEV_FB_TOTAL", Figure::Total, Unit::Mebibytes),
        ("DCGM_FI_DEV_FB_USED", Figure::Used, Unit::Mebibytes),
        ("DCGM_FI_DEV_FB_FREE", Figure::Free, Unit::Mebibytes),
        ("DCGM_FI_DEV_FB_RESERVED", Figure::Reserved, Unit::Mebibytes),
        ("DCGM_FI_DEV_GPU_UTIL", Figure::Utilization, Unit::Percent),
        ("DCGM_FI_DEV_GPU_TEMP", Figure::Temperature, Unit::Base),
        ("DCGM_FI_DEV_POWER_USAGE", Figure::Power, Unit::Base),
    ],
    processes: &[],
    host: &[],
    age: None,
    interval: None,
    gpu_index: &["gpu"],
    uuid: &["UUID"],
    name: &["modelName"],
    vendor: &[],
    vendor_default: Some("nvidia"),
    gpu_instance: &["GPU_I_ID"],
    compute_instance: &[],
    profile: &["GPU_I_PROFILE"],
    pid: &[],
    process_name: &[],
    user: &[],
    kind: &[],
    hostname: &["Hostname"],
};

pub static ALL_SMI: Dialect = Dialect {
    exporter: Exporter::AllSmi,
    prefix: "all_smi_",
    devices: &[
        ("all_smi_gpu_memory_total_bytes", Figure::Total, Unit::Base),
        ("all_smi_gpu_memory_used_bytes", Figure::Used, Unit::Base),
        (
            "all_smi_gpu_utilization",
            Figure::Utilization,
            Unit::Percent,
        ),
        (
            "all_smi_gpu_temperature_celsius",
            Figure::Temperature,
            Unit::Base,
        ),
        (
            "all_smi_gpu_power_consumption_watts",
            Figure::Power,
            Unit::Base,
        ),
    ],
    processes: &[(
        "all_smi_gpu_process_memory_bytes",
        ProcessFigure::Used,
        Unit::Base,
    )],
    host: &[
        ("all_smi_memory_total_bytes", HostFigure::Total),
        ("all_smi_memory_available_bytes", HostFigure::Available),
    ],
    age: None,
    interval: None,
    gpu_index: &["gpu_index", "index"],
    uuid: &["gpu_uuid", "uuid"],
    name: &["gpu"],
    vendor: &[],
    vendor_default: None,
    gpu_instance: &[],
    compute_instance: &[],
    profile: &[],
    pid: &["pid"],
    process_name: &["name", "process_name"],
    user: &["user"],
    kind: &[],
    // all-smi labels its GPU series with its own host name as `instance` (a Prometheus that
    // scrapes it renames that `exported_instance`).
    hostname: &["hostname", "instance", "exported_instance"],
};

impl Dialect {
    /// Whether any of `series` is this exporter's.
    pub fn speaks(&self, series: &[Series]) -> bool {
        series.iter().any(|s| s.name.starts_with(self.prefix))
    }

    /// The names of the families this exporter's mapping reads (for a Prometheus query).
    pub fn families(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.devices.iter().map(|d| d.0).collect();
        names.extend(self.processes.iter().map(|p| p.0));
        names.extend(self.host.iter().map(|h| h.0));
        names.extend(self.age);
        names.extend(self.interval);
        names
    }
}

/// The exporter whose series `series` holds, in [`DIALECTS`] order.
pub fn dialect_of(series: &[Series]) -> Option<&'static Dialect> {
    DIALECTS.into_iter().find(|d| d.speaks(series))
}

/// Where a node's series came from, and what the caller knows of it.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The URL scraped, or the Prometheus `instance`.
    pub endpoint: String,
    /// The name to show when neither the target's labels nor the exporter name the machine.
    pub fallback_name: String,
    /// Labels from the target list or Prometheus (`node`, `cluster`, `job`).
    pub labels: BTreeMap<String, String>,
    /// Now, in milliseconds since the epoch (series timestamps are aged against it).
    pub now_ms: i64,
    /// How old the data was already when it was read (a Prometheus scrape's age), added to
    /// the exporter's own sample age.
    pub extra_age: Option<Duration>,
}

/// The labels a target list uses to name a machine, tried before the exporter's.
const NODE_NAME_LABELS: Labels = &[
    "node",
    "nodename",
    "hostname",
    "Hostname",
    "kubernetes_node",
];

/// Maps `series` (one node's) onto a [`Node`] in `dialect`'s terms. A conflicting duplicate
/// makes the node down, naming the series; a sample older than three intervals makes it
/// stale.
pub fn node_from_series(series: &[Series], dialect: &Dialect, origin: Origin) -> Node {
    let hostname = series.iter().find_map(|s| s.label(dialect.hostname));
    let name = NODE_NAME_LABELS
        .iter()
        .find_map(|l| origin.labels.get(*l).filter(|v| !v.is_empty()).cloned())
        .or_else(|| hostname.map(str::to_owned))
        .unwrap_or_else(|| origin.fallback_name.clone());
    if let Some(why) = conflicting_duplicate(series) {
        let mut node = Node::down(
            name,
            origin.endpoint,
            format!("unreadable: {why}; fix the exporter (two collectors exporting one series?)"),
        );
        node.exporter = Some(dialect.exporter);
        node.labels = origin.labels;
        return node;
    }

    let mut devices: BTreeMap<(u32, Option<u32>, Option<u32>), NodeDevice> = BTreeMap::new();
    let mut processes: BTreeMap<(u32, u32), NodeProcess> = BTreeMap::new();
    let mut host = NodeHost::default();
    let mut age_seconds: Option<f64> = None;
    let mut interval_seconds: Option<f64> = None;
    let mut newest_ms: Option<i64> = None;

    for s in series {
        if !s.name.starts_with(dialect.prefix) {
            continue;
        }
        if let Some(ts) = s.timestamp_ms {
            newest_ms = Some(newest_ms.map_or(ts, |n| n.max(ts)));
        }
        if Some(s.name.as_str()) == dialect.age {
            age_seconds = Some(s.value);
        } else if Some(s.name.as_str()) == dialect.interval {
            interval_seconds = Some(s.value);
        } else if let Some(&(_, figure)) = dialect.host.iter().find(|h| h.0 == s.name) {
            let value = Unit::Base.bytes(s.value);
            match figure {
                HostFigure::Total => host.total_bytes = value,
                HostFigure::Available => host.available_bytes = value,
            }
        } else if let Some(&(_, figure, unit)) = dialect.devices.iter().find(|d| d.0 == s.name) {
            let Some(index) = s
                .label(dialect.gpu_index)
                .and_then(|v| v.parse::<u32>().ok())
            else {
                continue;
            };
            let gi = s.label(dialect.gpu_instance).and_then(|v| v.parse().ok());
            let ci = gi.and(
                s.label(dialect.compute_instance)
                    .and_then(|v| v.parse().ok()),
            );
            let device = devices
                .entry((index, gi, ci))
                .or_insert_with(|| new_device(s, dialect, index, gi, ci));
            set_figure(device, figure, unit, s.value);
            // Series of one device may differ in labels (dcgm-exporter puts the pod only on
            // the fields it attributes): the first that has one gives it.
            if device.pod.is_none() {
                device.pod = pod_of(s);
            }
            if device.uuid.is_none() {
                device.uuid = s.label(dialect.uuid).map(str::to_owned);
            }
            if device.name.is_none() {
                device.name = s.label(dialect.name).map(str::to_owned);
            }
        } else if let Some(&(_, figure, unit)) = dialect.processes.iter().find(|p| p.0 == s.name) {
            let index = s
                .label(dialect.gpu_index)
                .and_then(|v| v.parse::<u32>().ok());
            let pid = s.label(dialect.pid).and_then(|v| v.parse::<u32>().ok());
            let (Some(gpu), Some(pid)) = (index, pid) else {
                continue;
            };
            let process = processes.entry((gpu, pid)).or_insert_with(|| NodeProcess {
                gpu,
                pid,
                name: s.label(dialect.process_name).map(str::to_owned),
                user: s.label(dialect.user).map(str::to_owned),
                kind: s.label(dialect.kind).map(str::to_owned),
                used_bytes: None,
                system_bytes: None,
                pod: pod_of(s),
            });
            let value = unit.bytes(s.value);
            match figure {
                ProcessFigure::Used => process.used_bytes = value,
                ProcessFigure::System => process.system_bytes = value,
            }
        }
    }

    // The exporter's own age, else the series' timestamps; plus how old the read was.
    let own_age = age_seconds
        .filter(|a| a.is_finite() && *a >= 0.0)
        .map(Duration::from_secs_f64)
        .or_else(|| {
            newest_ms.map(|ts| {
                Duration::from_millis(u64::try_from(origin.now_ms.saturating_sub(ts)).unwrap_or(0))
            })
        });
    let age = match (own_age, origin.extra_age) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
    let interval = interval_seconds
        .filter(|i| i.is_finite() && *i > 0.0)
        .map(Duration::from_secs_f64);
    let (state, reason) = match (age, interval) {
        (Some(age), Some(interval)) if age > interval * 3 => (
            NodeState::Stale,
            Some(format!(
                "sample is {:.0} s old, more than 3 × its {:.0} s interval: the exporter's \
                 sampling is stuck or slow (see its log and hypomnesis_sample_errors_total)",
                age.as_secs_f64(),
                interval.as_secs_f64()
            )),
        ),
        _ => (NodeState::Up, None),
    };

    let mut devices: Vec<NodeDevice> = devices.into_values().collect();
    // A MIG instance is of its GPU's model and vendor (`hmn serve`'s MIG series carry
    // neither); whole GPUs sort before their instances.
    let parents: BTreeMap<u32, (Option<String>, Option<String>)> = devices
        .iter()
        .filter(|d| d.mig.is_none())
        .map(|d| (d.index, (d.name.clone(), d.vendor.clone())))
        .collect();
    for d in devices.iter_mut().filter(|d| d.mig.is_some()) {
        if let Some((name, vendor)) = parents.get(&d.index) {
            d.name = d.name.take().or_else(|| name.clone());
            d.vendor = d.vendor.take().or_else(|| vendor.clone());
        }
    }
    // dcgm-exporter exports a GPU in MIG mode only per GPU instance. Its whole GPU is still
    // one of the node's GPUs: its room is its roomiest instance's (an allocation cannot cross
    // instances, the library's rule), its own figures unknown.
    let mut whole: BTreeMap<u32, NodeDevice> = BTreeMap::new();
    for d in devices
        .iter()
        .filter(|d| d.mig.is_some() && !parents.contains_key(&d.index))
    {
        let gpu = whole.entry(d.index).or_insert_with(|| NodeDevice {
            mig: None,
            // A MIG device's own UUID is `MIG-…`; dcgm-exporter labels it with its GPU's.
            uuid: d.uuid.clone().filter(|u| !u.starts_with("MIG-")),
            total_bytes: None,
            used_bytes: None,
            free_bytes: None,
            reserved_bytes: None,
            budget_bytes: None,
            utilization_ratio: None,
            temperature_celsius: None,
            power_watts: None,
            pod: None,
            ..d.clone()
        });
        gpu.budget_bytes = gpu.budget_bytes.max(d.free_bytes);
    }
    devices.extend(whole.into_values());
    devices.sort_by_key(|d| {
        (
            d.index,
            d.mig.as_ref().map(|m| (m.gpu_instance, m.compute_instance)),
        )
    });
    for d in &mut devices {
        // dcgm-exporter's FB_TOTAL is not in its default counters; its free, used and
        // reserved add up to it (DCGM 3+: used excludes reserved). Without reserved the sum
        // would be short, so total stays unknown.
        if d.total_bytes.is_none()
            && let (Some(f), Some(u), Some(r)) = (d.free_bytes, d.used_bytes, d.reserved_bytes)
        {
            d.total_bytes = f.checked_add(u).and_then(|t| t.checked_add(r));
        }
    }
    Node {
        name,
        endpoint: origin.endpoint,
        state,
        reason,
        exporter: Some(dialect.exporter),
        age,
        interval,
        host,
        devices,
        processes: processes.into_values().collect(),
        labels: origin.labels,
    }
}

fn new_device(
    s: &Series,
    dialect: &Dialect,
    index: u32,
    gi: Option<u32>,
    ci: Option<u32>,
) -> NodeDevice {
    NodeDevice {
        index,
        mig: gi.map(|gpu_instance| MigPlacement {
            gpu_instance,
            compute_instance: ci,
            profile: s.label(dialect.profile).map(str::to_owned),
        }),
        uuid: s.label(dialect.uuid).map(str::to_owned),
        name: s.label(dialect.name).map(str::to_owned),
        vendor: s
            .label(dialect.vendor)
            .or(dialect.vendor_default)
            .map(str::to_owned),
        total_bytes: None,
        used_bytes: None,
        free_bytes: None,
        reserved_bytes: None,
        budget_bytes: None,
        utilization_ratio: None,
        temperature_celsius: None,
        power_watts: None,
        pod: pod_of(s),
    }
}

fn set_figure(device: &mut NodeDevice, figure: Figure, unit: Unit, value: f64) {
    match figure {
        Figure::Total => device.total_bytes = unit.bytes(value),
        Figure::Used => device.used_bytes = unit.bytes(value),
        Figure::Free => device.free_bytes = unit.bytes(value),
        Figure::Reserved => device.reserved_bytes = unit.bytes(value),
        Figure::Budget => device.budget_bytes = unit.bytes(value),
        Figure::Utilization => device.utilization_ratio = unit.scalar(value),
        Figure::Temperature => device.temperature_celsius = unit.scalar(value),
        Figure::Power => device.power_watts = unit.scalar(value),
    }
}

/// The pod labels of a series, as dcgm-exporter (and `hmn serve --kubernetes`) name them.
fn pod_of(s: &Series) -> Option<PodRef> {
    let pod = PodRef {
        namespace: s.label(POD_NAMESPACE).map(str::to_owned),
        pod: s.label(POD_NAME).map(str::to_owned),
        container: s.label(POD_CONTAINER).map(str::to_owned),
    };
    (pod != PodRef::default()).then_some(pod)
}

#[cfg(test)]
mod tests;
