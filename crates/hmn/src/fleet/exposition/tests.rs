use super::*;

fn origin(endpoint: &str) -> Origin {
    Origin {
        endpoint: endpoint.to_owned(),
        fallback_name: endpoint.to_owned(),
        labels: BTreeMap::new(),
        now_ms: 1_800_000_000_000,
        extra_age: None,
    }
}

fn node_of(text: &str) -> Node {
    let series = parse(text).unwrap();
    let dialect = dialect_of(&series).unwrap();
    node_from_series(&series, dialect, origin("gpu-1:9464"))
}

/// `hmn serve`'s exposition (the shape of serve/metrics.rs's snapshot, with the telemetry,
/// sampling interval, MIG and pod families).
const HMN: &str = r#"# HELP hypomnesis_gpu_info One series per GPU.
# TYPE hypomnesis_gpu_info gauge
hypomnesis_gpu_info{gpu="0",uuid="GPU-5a5c",name="NVIDIA H100 80GB HBM3",vendor="nvidia",pci_bus_id="00000000:00:09.0",driver_version="590.48.01",source="nvml",unified_memory="false"} 1
hypomnesis_gpu_memory_total_bytes{gpu="0",uuid="GPU-5a5c",name="NVIDIA H100 80GB HBM3",vendor="nvidia"} 85520809984
hypomnesis_gpu_memory_used_bytes{gpu="0",uuid="GPU-5a5c",name="NVIDIA H100 80GB HBM3",vendor="nvidia"} 20780679168
hypomnesis_gpu_memory_free_bytes{gpu="0",uuid="GPU-5a5c",name="NVIDIA H100 80GB HBM3",vendor="nvidia"} 64238911488
hypomnesis_gpu_memory_reserved_bytes{gpu="0",uuid="GPU-5a5c",name="NVIDIA H100 80GB HBM3",vendor="nvidia"} 502267904
hypomnesis_gpu_memory_total_bytes{gpu="1",uuid="",name="AMD Radeon \"780M\" \\ iGPU, rev=2",vendor="amd"} 536870912
hypomnesis_gpu_memory_budget_bytes{gpu="1",uuid="",name="AMD Radeon \"780M\" \\ iGPU, rev=2",vendor="amd"} 29957607424
hypomnesis_gpu_utilization_ratio{gpu="0",uuid="GPU-5a5c",name="NVIDIA H100 80GB HBM3",vendor="nvidia"} 0.87
hypomnesis_gpu_temperature_celsius{gpu="0",uuid="GPU-5a5c",name="NVIDIA H100 80GB HBM3",vendor="nvidia"} 64.0
hypomnesis_gpu_power_watts{gpu="0",uuid="GPU-5a5c",name="NVIDIA H100 80GB HBM3",vendor="nvidia"} 412.345
hypomnesis_gpu_mig_memory_total_bytes{gpu="0",gpu_instance="1",compute_instance="0",uuid="MIG-aaaa"} 42949672960
hypomnesis_gpu_mig_memory_free_bytes{gpu="0",gpu_instance="1",compute_instance="0",uuid="MIG-aaaa"} 40000000000
hypomnesis_gpu_process_memory_bytes{gpu="0",pid="4011345",process="gpu_burn",user="alice",kind="compute",namespace="ml",pod="train-0",container="main"} 16452157440
hypomnesis_gpu_process_memory_bytes{gpu="1",pid="3100",process="ollama",user="ollama",kind="compute"} 104857600
hypomnesis_gpu_process_system_memory_bytes{gpu="1",pid="3100",process="ollama",user="ollama",kind="compute"} 2147483648
hypomnesis_host_memory_total_bytes 67108864000
hypomnesis_host_memory_available_bytes 33554432000
hypomnesis_sample_age_seconds 2.5
hypomnesis_sample_interval_seconds 5.0
hypomnesis_sample_errors_total{backend="nvml"} 1
hypomnesis_build_info{version="0.9.0"} 1
"#;

#[test]
fn label_values_with_escapes_commas_and_equals_signs_are_read_whole() {
    let series = parse(HMN).unwrap();
    let apu = series
        .iter()
        .find(|s| s.labels.get("gpu").map(String::as_str) == Some("1"))
        .unwrap();
    assert_eq!(apu.labels["name"], "AMD Radeon \"780M\" \\ iGPU, rev=2");
    assert_eq!(apu.labels["vendor"], "amd");
}

#[test]
fn hmn_serve_figures_map_onto_the_node_in_bytes_ratios_and_pods() {
    let node = node_of(HMN);
    assert_eq!(node.exporter, Some(Exporter::Hypomnesis));
    assert_eq!(node.state, NodeState::Up);
    assert_eq!(node.age, Some(Duration::from_millis(2_500)));
    assert_eq!(node.interval, Some(Duration::from_secs(5)));
    assert_eq!(node.host.total_bytes, Some(67_108_864_000));
    assert_eq!(node.host.available_bytes, Some(33_554_432_000));
    assert_eq!(node.devices.len(), 3, "{:#?}", node.devices);
    let h100 = &node.devices[0];
    assert_eq!((h100.index, h100.mig.is_none()), (0, true));
    assert_eq!(h100.free_bytes, Some(64_238_911_488));
    assert_eq!(h100.reserved_bytes, Some(502_267_904));
    assert_eq!(h100.utilization_ratio, Some(0.87));
    assert_eq!(h100.name.as_deref(), Some("NVIDIA H100 80GB HBM3"));
    let mig = &node.devices[1];
    assert_eq!(
        mig.mig,
        Some(MigPlacement {
            gpu_instance: 1,
            compute_instance: Some(0),
            profile: None
        })
    );
    assert_eq!(mig.free_bytes, Some(40_000_000_000));
    assert_eq!(mig.uuid.as_deref(), Some("MIG-aaaa"));
    let apu = &node.devices[2];
    assert_eq!(apu.uuid, None, "an empty label is unknown");
    assert_eq!(apu.room_bytes(), Some(29_957_607_424));
    assert_eq!(apu.used_bytes, None, "unknown stays unknown");
    assert_eq!(node.processes.len(), 2);
    assert_eq!(
        node.processes[0]
            .pod
            .as_ref()
            .and_then(|p| p.pod.as_deref()),
        Some("train-0")
    );
    assert_eq!(node.processes[1].system_bytes, Some(2_147_483_648));
    assert_eq!(node.processes[1].pod, None);
}

#[test]
fn a_sample_older_than_three_intervals_is_stale_with_a_reason() {
    let node = node_of(&HMN.replace(
        "hypomnesis_sample_age_seconds 2.5",
        "hypomnesis_sample_age_seconds 15.5",
    ));
    assert_eq!(node.state, NodeState::Stale);
    assert!(node.reason.as_deref().unwrap().contains("3 × its 5 s"));
    // Exactly three intervals is not yet stale.
    let node = node_of(&HMN.replace(
        "hypomnesis_sample_age_seconds 2.5",
        "hypomnesis_sample_age_seconds 15",
    ));
    assert_eq!(node.state, NodeState::Up);
}

#[test]
fn a_conflicting_duplicate_series_makes_the_node_down_naming_it() {
    let text = format!(
        "{HMN}hypomnesis_gpu_memory_free_bytes{{gpu=\"0\",uuid=\"GPU-5a5c\",name=\"NVIDIA H100 80GB HBM3\",vendor=\"nvidia\"}} 1\n"
    );
    let node = node_of(&text);
    assert_eq!(node.state, NodeState::Down);
    let reason = node.reason.unwrap();
    assert!(
        reason.contains("hypomnesis_gpu_memory_free_bytes"),
        "{reason}"
    );
    assert!(reason.contains("exported twice"), "{reason}");
    assert!(node.devices.is_empty());
    // The same value twice is harmless.
    let line = HMN
        .lines()
        .find(|l| l.starts_with("hypomnesis_gpu_power"))
        .unwrap();
    assert_eq!(node_of(&format!("{HMN}{line}\n")).state, NodeState::Up);
}

#[test]
fn a_broken_line_is_refused_with_its_number() {
    for (text, what) in [
        ("ok 1\nbroken{gpu=\"0\" 5\n", "expected `,` or `}`"),
        ("ok 1\nbroken{gpu=\"0} 5\n", "not closed"),
        ("ok 1\n\nx{gpu=\"0\"} notanumber\n", "not a number"),
        ("ok 1\n{gpu=\"0\"} 1\n", "metric name"),
        ("ok 1\nx{gpu=0} 1\n", "not quoted"),
        ("ok 1\nx{gpu=\"\\q\"} 1\n", "bad escape"),
        ("ok 1\nx 1 2 3\n", "unexpected"),
        ("ok 1\nx{a=\"1\",a=\"2\"} 1\n", "twice"),
        ("ok 1\nx\n", "no value"),
    ] {
        let err = parse(text).unwrap_err();
        assert_eq!(
            err.line,
            if text.contains("\n\n") { 3 } else { 2 },
            "{text}"
        );
        assert!(err.what.contains(what), "{text}: {err}");
    }
}

#[test]
fn values_and_timestamps_follow_the_text_format() {
    let series =
        parse("a NaN\nb +Inf\nc -Inf\nd 1.5e3 1700000000123\ne{} 7\nf{x=\"1\",} 2\n# EOF\n")
            .unwrap();
    assert!(series[0].value.is_nan());
    assert_eq!(series[1].value, f64::INFINITY);
    assert_eq!(series[2].value, f64::NEG_INFINITY);
    assert_eq!(
        (series[3].value, series[3].timestamp_ms),
        (1500.0, Some(1_700_000_000_123))
    );
    assert!(series[4].labels.is_empty());
    assert_eq!(series[5].labels["x"], "1");
}

/// dcgm-exporter's exposition as it serves it (labels, HELP texts and field set of its
/// default counters; a MIG instance and a GPU given to a pod, as on Kubernetes).
const DCGM: &str = r#"# HELP DCGM_FI_DEV_SM_CLOCK SM frequency (in MHz).
# TYPE DCGM_FI_DEV_SM_CLOCK gauge
DCGM_FI_DEV_SM_CLOCK{gpu="0",UUID="GPU-c2f76b33-7953-256e-8f33-1343419b1a1c",pci_bus_id="00000000:31:00.0",device="nvidia0",modelName="NVIDIA L4",Hostname="i-030791dc5a37cd257",DCGM_FI_DRIVER_VERSION="580.105.08"} 2040
# HELP DCGM_FI_DEV_GPU_TEMP GPU temperature (in C).
# TYPE DCGM_FI_DEV_GPU_TEMP gauge
DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-c2f76b33-7953-256e-8f33-1343419b1a1c",pci_bus_id="00000000:31:00.0",device="nvidia0",modelName="NVIDIA L4",Hostname="i-030791dc5a37cd257",DCGM_FI_DRIVER_VERSION="580.105.08"} 41
DCGM_FI_DEV_GPU_TEMP{gpu="1",UUID="GPU-34319582-d595-d1c7-d1d2-179bcfa61660",pci_bus_id="00000000:4B:00.0",device="nvidia1",modelName="NVIDIA A100-SXM4-40GB",Hostname="i-030791dc5a37cd257",DCGM_FI_DRIVER_VERSION="580.105.08",GPU_I_PROFILE="3g.20gb",GPU_I_ID="1"} 35
# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-c2f76b33-7953-256e-8f33-1343419b1a1c",pci_bus_id="00000000:31:00.0",device="nvidia0",modelName="NVIDIA L4",Hostname="i-030791dc5a37cd257",DCGM_FI_DRIVER_VERSION="580.105.08"} 27.154000
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-c2f76b33-7953-256e-8f33-1343419b1a1c",pci_bus_id="00000000:31:00.0",device="nvidia0",modelName="NVIDIA L4",Hostname="i-030791dc5a37cd257",DCGM_FI_DRIVER_VERSION="580.105.08",container="vllm",namespace="inference",pod="vllm-7d9f8b-x2k4q"} 73
# HELP DCGM_FI_DEV_FB_FREE Framebuffer memory free (in MiB).
# TYPE DCGM_FI_DEV_FB_FREE gauge
DCGM_FI_DEV_FB_FREE{gpu="0",UUID="GPU-c2f76b33-7953-256e-8f33-1343419b1a1c",pci_bus_id="00000000:31:00.0",device="nvidia0",modelName="NVIDIA L4",Hostname="i-030791dc5a37cd257",DCGM_FI_DRIVER_VERSION="580.105.08",container="vllm",namespace="inference",pod="vllm-7d9f8b-x2k4q"} 1405
DCGM_FI_DEV_FB_FREE{gpu="1",UUID="GPU-34319582-d595-d1c7-d1d2-179bcfa61660",pci_bus_id="00000000:4B:00.0",device="nvidia1",modelName="NVIDIA A100-SXM4-40GB",Hostname="i-030791dc5a37cd257",DCGM_FI_DRIVER_VERSION="580.105.08",GPU_I_PROFILE="3g.20gb",GPU_I_ID="1"} 19712
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-c2f76b33-7953-256e-8f33-1343419b1a1c",pci_bus_id="00000000:31:00.0",device="nvidia0",modelName="NVIDIA L4",Hostname="i-030791dc5a37cd257",DCGM_FI_DRIVER_VERSION="580.105.08",container="vllm",namespace="inference",pod="vllm-7d9f8b-x2k4q"} 21158
DCGM_FI_DEV_FB_USED{gpu="1",UUID="GPU-34319582-d595-d1c7-d1d2-179bcfa61660",pci_bus_id="00000000:4B:00.0",device="nvidia1",modelName="NVIDIA A100-SXM4-40GB",Hostname="i-030791dc5a37cd257",DCGM_FI_DRIVER_VERSION="580.105.08",GPU_I_PROFILE="3g.20gb",GPU_I_ID="1"} 13
# HELP DCGM_FI_DEV_FB_RESERVED Framebuffer memory reserved (in MiB).
# TYPE DCGM_FI_DEV_FB_RESERVED gauge
DCGM_FI_DEV_FB_RESERVED{gpu="0",UUID="GPU-c2f76b33-7953-256e-8f33-1343419b1a1c",pci_bus_id="00000000:31:00.0",device="nvidia0",modelName="NVIDIA L4",Hostname="i-030791dc5a37cd257",DCGM_FI_DRIVER_VERSION="580.105.08",container="vllm",namespace="inference",pod="vllm-7d9f8b-x2k4q"} 468
# HELP DCGM_FI_DEV_XID_ERRORS Value of the last XID error encountered.
# TYPE DCGM_FI_DEV_XID_ERRORS gauge
DCGM_FI_DEV_XID_ERRORS{gpu="0",UUID="GPU-c2f76b33-7953-256e-8f33-1343419b1a1c",pci_bus_id="00000000:31:00.0",device="nvidia0",modelName="NVIDIA L4",Hostname="i-030791dc5a37cd257",DCGM_FI_DRIVER_VERSION="580.105.08"} 0
"#;

#[test]
fn dcgm_exporter_mapping_golden() {
    let node = node_of(DCGM);
    insta::assert_json_snapshot!("dcgm_exporter_node", node);
}

#[test]
fn dcgm_mebibytes_become_bytes_exactly() {
    let node = node_of(DCGM);
    let l4 = &node.devices[0];
    assert_eq!(l4.free_bytes, Some(1405 * 1_048_576));
    assert_eq!(l4.used_bytes, Some(21_158 * 1_048_576));
    assert_eq!(l4.reserved_bytes, Some(468 * 1_048_576));
    assert_eq!(l4.total_bytes, Some((1405 + 21_158 + 468) * 1_048_576));
    assert_eq!(l4.utilization_ratio, Some(0.73));
    assert_eq!(
        node.name, "i-030791dc5a37cd257",
        "named by its Hostname label"
    );
    // No reserved figure for the MIG instance: its total is unknown, not free + used.
    assert_eq!(
        node.devices[2].mig.as_ref().map(|m| m.gpu_instance),
        Some(1)
    );
    assert_eq!(node.devices[2].total_bytes, None);
    assert_eq!(
        node.host,
        NodeHost::default(),
        "dcgm-exporter has no host memory"
    );
}

#[test]
fn all_smi_series_of_either_label_scheme_map_onto_devices_and_host() {
    let text = r#"
all_smi_gpu_info{gpu="NVIDIA H200 141GB HBM3",instance="node-0058",gpu_uuid="GPU-A",gpu_index="0",type="GPU"} 1
all_smi_gpu_memory_total_bytes{gpu="NVIDIA H200 141GB HBM3",instance="node-0058",gpu_uuid="GPU-A",gpu_index="0"} 150754820096
all_smi_gpu_memory_used_bytes{gpu="NVIDIA H200 141GB HBM3",instance="node-0058",gpu_uuid="GPU-A",gpu_index="0"} 8589934592
all_smi_gpu_utilization{gpu="NVIDIA H200 141GB HBM3", instance="node-0058", uuid="GPU-B", index="1"} 25.5
all_smi_gpu_process_memory_bytes{gpu="NVIDIA H200 141GB HBM3",instance="node-0058",gpu_uuid="GPU-A",gpu_index="0",pid="991",name="python3"} 4294967296
all_smi_memory_total_bytes{instance="node-0058"} 2163558912000
all_smi_memory_available_bytes{instance="node-0058"} 1900000000000
"#;
    let node = node_of(text);
    assert_eq!(node.exporter, Some(Exporter::AllSmi));
    assert_eq!(node.devices.len(), 2);
    assert_eq!(node.devices[0].uuid.as_deref(), Some("GPU-A"));
    assert_eq!(
        node.devices[0].name.as_deref(),
        Some("NVIDIA H200 141GB HBM3")
    );
    assert_eq!(node.devices[0].used_bytes, Some(8_589_934_592));
    assert_eq!(
        node.devices[0].free_bytes, None,
        "all-smi has no free figure"
    );
    assert_eq!(node.devices[1].uuid.as_deref(), Some("GPU-B"));
    assert_eq!(node.devices[1].utilization_ratio, Some(0.255));
    assert_eq!(node.processes[0].name.as_deref(), Some("python3"));
    assert_eq!(node.host.available_bytes, Some(1_900_000_000_000));
    assert_eq!(
        node.name, "node-0058",
        "all-smi's instance label is its host name"
    );
}

#[test]
fn the_exporter_is_recognised_by_its_families_and_hmn_serve_wins() {
    let dcgm = parse(DCGM).unwrap();
    assert_eq!(dialect_of(&dcgm).map(|d| d.exporter), Some(Exporter::Dcgm));
    let mut both = dcgm;
    both.extend(parse(HMN).unwrap());
    assert_eq!(
        dialect_of(&both).map(|d| d.exporter),
        Some(Exporter::Hypomnesis)
    );
    assert!(dialect_of(&parse("node_load1 0.5\n").unwrap()).is_none());
}

#[test]
fn a_target_label_names_the_node_before_the_exporter_does() {
    let series = parse(DCGM).unwrap();
    let mut o = origin("10.0.0.7:9400");
    o.labels.insert("node".to_owned(), "gpu-a-17".to_owned());
    let node = node_from_series(&series, &DCGM_EXPORTER, o);
    assert_eq!(node.name, "gpu-a-17");
    assert_eq!(node.labels["node"], "gpu-a-17");
}

#[test]
fn series_timestamps_give_the_age_when_the_exporter_has_none() {
    let mut o = origin("x");
    o.now_ms = 1_700_000_010_000;
    let series = parse("DCGM_FI_DEV_FB_FREE{gpu=\"0\"} 1 1700000000000\n").unwrap();
    let node = node_from_series(&series, &DCGM_EXPORTER, o);
    assert_eq!(node.age, Some(Duration::from_secs(10)));
    assert_eq!(node.state, NodeState::Up, "no interval: never judged stale");
}

#[test]
fn a_real_hmn_serve_capture_of_a_mig_gpu_gives_the_gpu_and_its_mig_instances() {
    let node = node_of(include_str!("../fixtures/hmn_serve_mig.prom"));
    assert_eq!(node.exporter, Some(Exporter::Hypomnesis));
    type Row = (Option<(u32, Option<u32>)>, Option<u64>, Option<u64>);
    let rows: Vec<Row> = node
        .devices
        .iter()
        .map(|d| {
            (
                d.mig.as_ref().map(|m| (m.gpu_instance, m.compute_instance)),
                d.total_bytes,
                d.free_bytes,
            )
        })
        .collect();
    // fixtures/nvml/mig.json's figures.
    assert_eq!(
        rows,
        [
            (None, Some(85_520_809_984), Some(64_080_576_512)),
            (
                Some((1, Some(0))),
                Some(21_474_836_480),
                Some(11_274_289_152)
            ),
            (
                Some((2, Some(0))),
                Some(21_474_836_480),
                Some(11_811_160_064)
            ),
            (
                Some((2, Some(1))),
                Some(21_474_836_480),
                Some(11_811_160_064)
            ),
        ]
    );
    let gi1 = &node.devices[1];
    assert_eq!(
        gi1.uuid.as_deref(),
        Some("MIG-1c2d3e4f-5a6b-5c7d-8e9f-0a1b2c3d4e01")
    );
    assert_eq!(
        gi1.name.as_deref(),
        Some("NVIDIA H100 80GB HBM3"),
        "its GPU's model"
    );
    assert_eq!(
        node.devices[0].room_bytes(),
        Some(11_811_160_064),
        "the budget: the roomiest instance"
    );
    assert_eq!(node.largest_room(), Some(11_811_160_064));
    assert_eq!(
        node.total_room(),
        Some(11_811_160_064),
        "MIG instances are inside their GPU"
    );
    let pids: Vec<u32> = node.processes.iter().map(|p| p.pid).collect();
    assert_eq!(pids, [4_060_001, 4_060_002, 4_060_003]);
    assert_eq!(
        node.processes[0].user, None,
        "an empty user label is unknown"
    );
}

#[test]
fn a_dcgm_gpu_in_mig_mode_is_a_whole_gpu_whose_room_is_its_roomiest_instance() {
    let labels = |gi: u32| {
        format!(
            "gpu=\"1\",UUID=\"GPU-3431\",device=\"nvidia1\",modelName=\"NVIDIA A100-SXM4-40GB\",Hostname=\"a100\",GPU_I_PROFILE=\"3g.20gb\",GPU_I_ID=\"{gi}\""
        )
    };
    let text = format!(
        "DCGM_FI_DEV_FB_FREE{{{}}} 19712\nDCGM_FI_DEV_FB_FREE{{{}}} 1024\nDCGM_FI_DEV_FB_USED{{{}}} 13\n",
        labels(1),
        labels(2),
        labels(1)
    );
    let node = node_of(&text);
    let shape: Vec<(u32, Option<u32>, Option<u64>)> = node
        .devices
        .iter()
        .map(|d| {
            (
                d.index,
                d.mig.as_ref().map(|m| m.gpu_instance),
                d.room_bytes(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (1, None, Some(19_712 * 1_048_576)),
            (1, Some(1), Some(19_712 * 1_048_576)),
            (1, Some(2), Some(1_024 * 1_048_576)),
        ]
    );
    let gpu = &node.devices[0];
    assert_eq!(gpu.uuid.as_deref(), Some("GPU-3431"));
    assert_eq!(gpu.name.as_deref(), Some("NVIDIA A100-SXM4-40GB"));
    assert_eq!(
        (gpu.free_bytes, gpu.total_bytes),
        (None, None),
        "its own figures are unknown"
    );
    assert_eq!(node.total_room(), Some(19_712 * 1_048_576));
}
