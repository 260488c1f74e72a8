//! The `"field"` of every reason in `hmn --json` is the field's name in the record: typing the
//! names (`DeviceField`, `TelemetryField`) must not change a byte of that contract. These run
//! here because the library's own tests build without serde.

use hypomnesis::{DeviceField, GpuDeviceInfo, TelemetryField};

#[test]
fn every_field_serializes_as_its_as_str_name() {
    for f in DeviceField::ALL {
        assert_eq!(serde_json::to_value(f).unwrap(), f.as_str(), "{f:?}");
    }
    for f in TelemetryField::ALL {
        assert_eq!(serde_json::to_value(f).unwrap(), f.as_str(), "{f:?}");
    }
}

#[test]
fn a_device_marked_unavailable_serializes_the_field_as_its_json_name() {
    let device = GpuDeviceInfo::builder()
        .unavailable(DeviceField::ReservedBytes, "amdgpu has no reserved figure")
        .unavailable(DeviceField::PciBusId, "not on a PCI bus")
        .build();
    let json = serde_json::to_value(&device).unwrap();
    assert_eq!(
        json["unavailable"],
        serde_json::json!([
            {"field": "reserved_bytes", "reason": "amdgpu has no reserved figure"},
            {"field": "pci_bus_id", "reason": "not on a PCI bus"},
        ])
    );
}
