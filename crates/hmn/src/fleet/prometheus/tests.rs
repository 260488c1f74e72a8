use std::sync::Arc;

use super::*;
use crate::fleet::tests::{Behaviour, InFlight, refusing, serve};
use crate::fleet::{Exporter, NodeState, Source, collect as collect_fleet};

#[test]
fn selector_matchers_are_merged_into_every_selector() {
    let extra = selector_matchers(Some(" {cluster=\"a\", node=~\"gpu-.*\",} ")).unwrap();
    assert_eq!(extra.as_deref(), Some("cluster=\"a\", node=~\"gpu-.*\""));
    assert_eq!(
        with_matchers("up", &[], extra.as_deref()),
        "up{cluster=\"a\", node=~\"gpu-.*\"}"
    );
    assert_eq!(
        with_matchers("", &["__name__=~\"a|b\""], extra.as_deref()),
        "{__name__=~\"a|b\",cluster=\"a\", node=~\"gpu-.*\"}"
    );
    assert_eq!(with_matchers("up", &[], None), "up{}");
    assert_eq!(
        selector_matchers(Some("cluster=\"a\"")).unwrap().as_deref(),
        Some("cluster=\"a\"")
    );
    assert_eq!(selector_matchers(Some("{}")).unwrap(), None);
    for bad in ["up{cluster=\"a\"}", "{cluster=\"a\"", "cluster=\"a\"}"] {
        let err = selector_matchers(Some(bad)).unwrap_err().to_string();
        assert!(err.contains("label matchers only"), "{bad}: {err}");
    }
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn vector(samples: &[(&str, f64)]) -> String {
    let result: Vec<String> = samples
        .iter()
        .map(|(metric, v)| format!("{{\"metric\":{metric},\"value\":[{:.3},\"{v}\"]}}", now_s()))
        .collect();
    format!(
        "{{\"status\":\"success\",\"data\":{{\"resultType\":\"vector\",\"result\":[{}]}}}}",
        result.join(",")
    )
}

const HMN_1: &str = r#"{"instance":"gpu-1:9464","job":"hmn","cluster":"a"}"#;
const HMN_2: &str = r#"{"instance":"gpu-2:9464","job":"hmn","cluster":"a","node":"dgx-2"}"#;
const HMN_DOWN: &str = r#"{"instance":"gpu-3:9464","job":"hmn","cluster":"a"}"#;
const DCGM_1: &str = r#"{"instance":"10.0.0.7:9400","job":"dcgm","cluster":"a"}"#;
const NODE_EXPORTER: &str = r#"{"instance":"gpu-1:9100","job":"node","cluster":"a"}"#;

fn series(name: &str, target: &str, labels: &str) -> String {
    let target = target.trim_start_matches('{').trim_end_matches('}');
    if labels.is_empty() {
        format!("{{\"__name__\":\"{name}\",{target}}}")
    } else {
        format!("{{\"__name__\":\"{name}\",{target},{labels}}}")
    }
}

/// A Prometheus scraping two `hmn serve` (one scraped 100 s ago: stale), a failing third, a
/// dcgm-exporter and a node_exporter.
fn prometheus_routes() -> Behaviour {
    let now = now_s();
    let gpu = r#""gpu":"0","uuid":"GPU-0","name":"NVIDIA H100 80GB HBM3","vendor":"nvidia""#;
    let hmn = vector(&[
        (
            &series("hypomnesis_gpu_memory_free_bytes", HMN_1, gpu),
            64_238_911_488.0,
        ),
        (
            &series("hypomnesis_gpu_memory_total_bytes", HMN_1, gpu),
            85_520_809_984.0,
        ),
        (&series("hypomnesis_sample_age_seconds", HMN_1, ""), 1.0),
        (
            &series("hypomnesis_sample_interval_seconds", HMN_1, ""),
            5.0,
        ),
        (
            &series("hypomnesis_host_memory_available_bytes", HMN_1, ""),
            33_554_432_000.0,
        ),
        (
            &series(
                "hypomnesis_gpu_process_memory_bytes",
                HMN_1,
                r#""gpu":"0","pid":"4242","process":"python","user":"alice","kind":"compute""#,
            ),
            16_452_157_440.0,
        ),
        (
            &series("hypomnesis_gpu_memory_free_bytes", HMN_2, gpu),
            1_000.0,
        ),
        (&series("hypomnesis_sample_age_seconds", HMN_2, ""), 1.0),
        (
            &series("hypomnesis_sample_interval_seconds", HMN_2, ""),
            5.0,
        ),
    ]);
    let dcgm_labels = r#""gpu":"0","UUID":"GPU-d","modelName":"NVIDIA L4","Hostname":"l4-node""#;
    let dcgm = vector(&[
        (&series("DCGM_FI_DEV_FB_FREE", DCGM_1, dcgm_labels), 1405.0),
        (&series("DCGM_FI_DEV_FB_USED", DCGM_1, dcgm_labels), 21158.0),
    ]);
    let up = vector(&[
        (&series("up", HMN_1, ""), 1.0),
        (&series("up", HMN_2, ""), 1.0),
        (&series("up", HMN_DOWN, ""), 0.0),
        (&series("up", DCGM_1, ""), 1.0),
        (&series("up", NODE_EXPORTER, ""), 1.0),
    ]);
    let scraped = vector(&[
        (HMN_1, now - 10.0),
        (HMN_2, now - 100.0),
        (HMN_DOWN, now - 3.0),
        (DCGM_1, now - 5.0),
        (NODE_EXPORTER, now - 5.0),
    ]);
    let empty = vector(&[]);
    Behaviour::Routes(vec![
        ("query=up".to_owned(), 200, up),
        ("query=timestamp".to_owned(), 200, scraped),
        ("hypomnesis_gpu_memory_total".to_owned(), 200, hmn),
        ("DCGM_FI_DEV_FB_TOTAL".to_owned(), 200, dcgm),
        ("all_smi_gpu".to_owned(), 200, empty),
    ])
}

fn options() -> CollectOptions {
    CollectOptions {
        timeout: Duration::from_secs(5),
        concurrency: 64,
    }
}

#[test]
fn prometheus_answers_become_nodes_by_instance_with_scrape_age_and_failing_targets() {
    let in_flight = Arc::new(InFlight::default());
    let server = serve(prometheus_routes(), Arc::clone(&in_flight));
    let fleet = collect(&server, Some("{cluster=\"a\"}"), &options()).unwrap();
    let names: Vec<(&str, NodeState)> = fleet
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.state))
        .collect();
    assert_eq!(
        names,
        [
            ("dgx-2", NodeState::Stale),
            ("gpu-1:9464", NodeState::Up),
            ("gpu-3:9464", NodeState::Down),
            ("l4-node", NodeState::Up),
        ],
        "node_exporter's target is no node of this fleet: {:#?}",
        fleet.nodes
    );
    let gpu1 = &fleet.nodes[1];
    assert_eq!(gpu1.exporter, Some(Exporter::Hypomnesis));
    assert_eq!(gpu1.devices[0].free_bytes, Some(64_238_911_488));
    assert_eq!(gpu1.processes[0].user.as_deref(), Some("alice"));
    assert_eq!(gpu1.host.available_bytes, Some(33_554_432_000));
    assert_eq!(gpu1.labels["cluster"], "a");
    assert!(
        !gpu1.labels.contains_key("__name__"),
        "up is no label of the node"
    );
    // Scraped 10 s ago, sampled 1 s before that.
    let age = gpu1.age.unwrap();
    assert!(
        age >= Duration::from_secs(11) && age < Duration::from_secs(60),
        "{age:?}"
    );
    assert!(
        fleet.nodes[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("3 × its 5 s")
    );
    assert!(
        fleet.nodes[2]
            .reason
            .as_deref()
            .unwrap()
            .contains("up == 0")
    );
    let l4 = &fleet.nodes[3];
    assert_eq!(l4.exporter, Some(Exporter::Dcgm));
    assert_eq!(l4.devices[0].used_bytes, Some(21_158 * 1_048_576));
    assert_eq!(l4.endpoint, "10.0.0.7:9400");
    // Every query carried the selector, merged into its braces.
    let paths = in_flight.paths.lock().unwrap().clone();
    assert_eq!(paths.len(), 5, "{paths:?}");
    for p in &paths {
        assert!(p.contains("cluster%3D%22a%22%7D"), "{p}");
        assert!(!p.contains("%7D%7B"), "one selector, not two: {p}");
    }
}

#[test]
fn the_prometheus_source_is_reachable_through_collect() {
    let server = serve(prometheus_routes(), Arc::new(InFlight::default()));
    let source = Source::Prometheus {
        server: format!("http://{server}/"),
        selector: None,
    };
    let fleet = collect_fleet(&source, &options()).unwrap();
    assert_eq!(fleet.nodes.len(), 4);
    assert_eq!(fleet.source, format!("prometheus http://{server}"));
}

fn failing(status: u16, body: &str) -> String {
    let server = serve(
        Behaviour::Answer(status, body.to_owned()),
        Arc::new(InFlight::default()),
    );
    collect(&server, Some("{cluster=\"a\"}"), &options())
        .unwrap_err()
        .to_string()
}

#[test]
fn a_bad_selector_400_names_the_query_and_prometheus_s_error() {
    let err = failing(
        400,
        r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:4: parse error: unexpected \"=\""}"#,
    );
    assert!(err.contains("refused the query `"), "{err}");
    assert!(err.contains("cluster=\"a\"}`"), "{err}");
    assert!(err.contains("HTTP 400, bad_data"), "{err}");
    assert!(err.contains("parse error: unexpected"), "{err}");
    assert!(err.contains("--selector"), "{err}");
}

#[test]
fn a_422_execution_error_names_the_query() {
    let err = failing(
        422,
        r#"{"status":"error","errorType":"execution","error":"query processing would load too many samples into memory"}"#,
    );
    assert!(err.contains("HTTP 422, execution"), "{err}");
    assert!(err.contains("too many samples"), "{err}");
}

#[test]
fn a_503_says_prometheus_is_unavailable_and_what_to_do() {
    let err = failing(503, "Service Unavailable");
    assert!(err.contains("unavailable (HTTP 503"), "{err}");
    assert!(err.contains("retry"), "{err}");
    assert!(err.contains("--hosts"), "{err}");
}

#[test]
fn a_server_that_is_no_prometheus_is_said_so() {
    let err = failing(200, "<html>Grafana</html>");
    assert!(err.contains("not a Prometheus API answer"), "{err}");
    let err = failing(404, "404 page not found");
    assert!(err.contains("HTTP 404"), "{err}");
}

#[test]
fn an_unreachable_or_silent_prometheus_is_an_error_saying_why() {
    let err = collect(&refusing(), None, &options()).unwrap_err();
    assert!(
        matches!(&err, FleetError::Prometheus(why) if why.contains("connection refused")),
        "{err}"
    );
    let hung = serve(Behaviour::Hang, Arc::new(InFlight::default()));
    let err = collect(
        &hung,
        None,
        &CollectOptions {
            timeout: Duration::from_millis(200),
            concurrency: 64,
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, FleetError::Prometheus(why) if why.contains("timed out")),
        "{err}"
    );
}

#[test]
fn prometheus_warnings_become_fleet_notes() {
    let warned = vector(&[]).replacen(
        "{\"status\":\"success\",",
        "{\"status\":\"success\",\"warnings\":[\"PromQL info: metric might not be a counter\"],",
        1,
    );
    let server = serve(
        Behaviour::Routes(vec![("query".to_owned(), 200, warned)]),
        Arc::new(InFlight::default()),
    );
    let fleet = collect(&server, None, &options()).unwrap();
    assert!(fleet.nodes.is_empty());
    assert!(
        fleet
            .notes
            .iter()
            .any(|n| n.contains("metric might not be a counter")),
        "{:?}",
        fleet.notes
    );
    assert_eq!(
        fleet
            .notes
            .iter()
            .filter(|n| n.contains("Prometheus warns"))
            .count(),
        1,
        "one note per distinct warning: {:?}",
        fleet.notes
    );
    assert!(
        fleet.notes.iter().any(|n| n.contains("no targets")),
        "{:?}",
        fleet.notes
    );
}

#[test]
fn history_reads_each_gpu_s_memory_over_a_range() {
    let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
        {"metric":{"__name__":"hypomnesis_gpu_memory_used_bytes","instance":"gpu-1:9464","gpu":"1"},"values":[[1700000060,"2048"],[1700000000,"1024"]]},
        {"metric":{"instance":"gpu-1:9464","gpu":"0","UUID":"GPU-d"},"values":[[1700000000,"1048576"]]}
    ]}}"#;
    let in_flight = Arc::new(InFlight::default());
    let server = serve(
        Behaviour::Routes(vec![(
            "/api/v1/query_range".to_owned(),
            200,
            body.to_owned(),
        )]),
        Arc::clone(&in_flight),
    );
    let history = history(
        &server,
        Some("cluster=\"a\""),
        "gpu-1:9464",
        Duration::from_secs(3600),
        Duration::from_secs(60),
        &options(),
    )
    .unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].index, 0);
    assert_eq!(history[0].points[0].1, 1_048_576);
    assert_eq!(history[1].points.len(), 2);
    assert_eq!(
        history[1].points[0],
        (
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            1024
        ),
        "oldest first"
    );
    let path = in_flight.paths.lock().unwrap()[0].clone();
    assert!(path.contains("step=60.000"), "{path}");
    assert!(
        path.contains("instance%3D%22gpu-1%3A9464%22%2Ccluster%3D%22a%22"),
        "{path}"
    );
}

#[test]
fn the_history_query_covers_the_three_exporters_whole_gpus_only() {
    let q = history_query("gpu-1:9464", None);
    assert_eq!(
        q,
        "hypomnesis_gpu_memory_used_bytes{instance=\"gpu-1:9464\"} or \
         DCGM_FI_DEV_FB_USED{instance=\"gpu-1:9464\",GPU_I_ID=\"\"} * 1048576 or \
         all_smi_gpu_memory_used_bytes{instance=\"gpu-1:9464\"}"
    );
    assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
}
