//! Why a figure is unknown, keyed by a name the compiler checks.
//!
//! A figure that cannot be measured is `None`, never 0, and its record carries the reason in
//! its `unavailable` list. That list used to be keyed by string literals (`"total_bytes"`
//! written at some twenty call sites), which a typo broke silently: the reason was recorded
//! under a name no reader asked for. Each record that can carry reasons now has an enum naming
//! its fields — [`DeviceField`] for [`crate::GpuDeviceInfo`], [`TelemetryField`] for
//! [`crate::DeviceTelemetry`] — and [`Unavailable`] is generic over it, so a reason can only
//! be filed under a field the record has.
//!
//! The enums serialize as the field's JSON name (the same string [`DeviceField::as_str`]
//! gives), so the `"field"` of every JSON reason is what it was when it was a string.
//!
//! Process records carry no reasons today (a process row's unknown figures are explained by
//! the listing's notes), so there is no process field enum yet.

use std::fmt;

/// Why the field `field` of a record is `None`. `F` names the record's fields:
/// [`DeviceField`] in [`crate::GpuDeviceInfo::unavailable`], [`TelemetryField`] in
/// [`crate::DeviceTelemetry::unavailable`].
///
/// One generic type rather than one per record: the shape (a field and a sentence) and its
/// JSON are the same for every record; only the set of names differs, and that is the type
/// parameter's job.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Unavailable<F> {
    /// The field, serialized as its name in the struct and in JSON (`"reserved_bytes"`).
    pub field: F,
    /// Why it could not be measured, as one line of English.
    pub reason: String,
}

impl<F> Unavailable<F> {
    /// `field` is `None` because of `reason`.
    #[must_use]
    pub fn new(field: F, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// A field of [`crate::GpuDeviceInfo`] that can be `None`, as named in the struct and in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum DeviceField {
    /// [`crate::GpuDeviceInfo::name`], the marketing name.
    Name,
    /// [`crate::GpuDeviceInfo::uuid`].
    Uuid,
    /// [`crate::GpuDeviceInfo::pci_bus_id`].
    PciBusId,
    /// [`crate::GpuDeviceInfo::driver_version`].
    DriverVersion,
    /// [`crate::GpuDeviceInfo::cuda_driver_version`].
    CudaDriverVersion,
    /// [`crate::GpuDeviceInfo::total_bytes`], installed device memory.
    TotalBytes,
    /// [`crate::GpuDeviceInfo::free_bytes`].
    FreeBytes,
    /// [`crate::GpuDeviceInfo::used_bytes`].
    UsedBytes,
    /// [`crate::GpuDeviceInfo::reserved_bytes`], memory the driver and firmware set aside.
    ReservedBytes,
    /// [`crate::GpuDeviceInfo::system_total_bytes`], system RAM the GPU may map.
    SystemTotalBytes,
    /// [`crate::GpuDeviceInfo::system_used_bytes`], GPU buffers held in system RAM.
    SystemUsedBytes,
    /// [`crate::GpuDeviceInfo::budget_bytes`], what a new allocation can still get.
    BudgetBytes,
    /// [`crate::GpuDeviceInfo::budget_basis`]. `None` exactly when `budget_bytes` is, whose
    /// reason explains both; listed so that every optional field has a name.
    BudgetBasis,
}

impl DeviceField {
    /// Every variant, in declaration order.
    pub const ALL: &'static [Self] = &[
        Self::Name,
        Self::Uuid,
        Self::PciBusId,
        Self::DriverVersion,
        Self::CudaDriverVersion,
        Self::TotalBytes,
        Self::FreeBytes,
        Self::UsedBytes,
        Self::ReservedBytes,
        Self::SystemTotalBytes,
        Self::SystemUsedBytes,
        Self::BudgetBytes,
        Self::BudgetBasis,
    ];

    /// The memory figures a memory query fills together (`total`, `free`, `used`,
    /// `reserved`), in that order.
    pub(crate) const MEMORY: [Self; 4] = [
        Self::TotalBytes,
        Self::FreeBytes,
        Self::UsedBytes,
        Self::ReservedBytes,
    ];

    /// The field's name in the struct and in JSON (`"total_bytes"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Uuid => "uuid",
            Self::PciBusId => "pci_bus_id",
            Self::DriverVersion => "driver_version",
            Self::CudaDriverVersion => "cuda_driver_version",
            Self::TotalBytes => "total_bytes",
            Self::FreeBytes => "free_bytes",
            Self::UsedBytes => "used_bytes",
            Self::ReservedBytes => "reserved_bytes",
            Self::SystemTotalBytes => "system_total_bytes",
            Self::SystemUsedBytes => "system_used_bytes",
            Self::BudgetBytes => "budget_bytes",
            Self::BudgetBasis => "budget_basis",
        }
    }

    /// `true` for the figures counted in bytes (every `*_bytes` field).
    #[must_use]
    pub const fn is_bytes(self) -> bool {
        matches!(
            self,
            Self::TotalBytes
                | Self::FreeBytes
                | Self::UsedBytes
                | Self::ReservedBytes
                | Self::SystemTotalBytes
                | Self::SystemUsedBytes
                | Self::BudgetBytes
        )
    }
}

impl fmt::Display for DeviceField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field of [`crate::DeviceTelemetry`] that can be `None`, as named in the struct and in
/// JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum TelemetryField {
    /// [`crate::DeviceTelemetry::gpu_utilization_percent`].
    GpuUtilizationPercent,
    /// [`crate::DeviceTelemetry::memory_utilization_percent`].
    MemoryUtilizationPercent,
    /// [`crate::DeviceTelemetry::encoder_utilization_percent`].
    EncoderUtilizationPercent,
    /// [`crate::DeviceTelemetry::decoder_utilization_percent`].
    DecoderUtilizationPercent,
    /// [`crate::DeviceTelemetry::temperature_celsius`].
    TemperatureCelsius,
    /// [`crate::DeviceTelemetry::power_watts`], power draw.
    PowerWatts,
    /// [`crate::DeviceTelemetry::power_limit_watts`], the enforced limit.
    PowerLimitWatts,
    /// [`crate::DeviceTelemetry::sm_clock_mhz`].
    SmClockMhz,
    /// [`crate::DeviceTelemetry::memory_clock_mhz`].
    MemoryClockMhz,
    /// [`crate::DeviceTelemetry::fan_percent`].
    FanPercent,
    /// [`crate::DeviceTelemetry::pcie_link_generation`].
    PcieLinkGeneration,
    /// [`crate::DeviceTelemetry::pcie_link_width`].
    PcieLinkWidth,
}

impl TelemetryField {
    /// Every variant, in declaration order (the order of the struct's fields).
    pub const ALL: &'static [Self] = &[
        Self::GpuUtilizationPercent,
        Self::MemoryUtilizationPercent,
        Self::EncoderUtilizationPercent,
        Self::DecoderUtilizationPercent,
        Self::TemperatureCelsius,
        Self::PowerWatts,
        Self::PowerLimitWatts,
        Self::SmClockMhz,
        Self::MemoryClockMhz,
        Self::FanPercent,
        Self::PcieLinkGeneration,
        Self::PcieLinkWidth,
    ];

    /// The field's name in the struct and in JSON (`"power_watts"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::GpuUtilizationPercent => "gpu_utilization_percent",
            Self::MemoryUtilizationPercent => "memory_utilization_percent",
            Self::EncoderUtilizationPercent => "encoder_utilization_percent",
            Self::DecoderUtilizationPercent => "decoder_utilization_percent",
            Self::TemperatureCelsius => "temperature_celsius",
            Self::PowerWatts => "power_watts",
            Self::PowerLimitWatts => "power_limit_watts",
            Self::SmClockMhz => "sm_clock_mhz",
            Self::MemoryClockMhz => "memory_clock_mhz",
            Self::FanPercent => "fan_percent",
            Self::PcieLinkGeneration => "pcie_link_generation",
            Self::PcieLinkWidth => "pcie_link_width",
        }
    }
}

impl fmt::Display for TelemetryField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn assert_names_unique(names: &[&'static str]) {
        let unique: HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "a name is repeated: {names:?}");
    }

    #[test]
    fn every_device_field_has_its_own_name() {
        let names: Vec<_> = DeviceField::ALL.iter().map(|f| f.as_str()).collect();
        assert_names_unique(&names);
    }

    #[test]
    fn every_telemetry_field_has_its_own_name() {
        let names: Vec<_> = TelemetryField::ALL.iter().map(|f| f.as_str()).collect();
        assert_names_unique(&names);
    }

    #[test]
    fn display_is_the_json_name() {
        for f in DeviceField::ALL {
            assert_eq!(f.to_string(), f.as_str());
        }
        for f in TelemetryField::ALL {
            assert_eq!(f.to_string(), f.as_str());
        }
    }

    #[test]
    fn is_bytes_holds_for_exactly_the_byte_figures() {
        for f in DeviceField::ALL {
            assert_eq!(f.is_bytes(), f.as_str().ends_with("_bytes"), "{f}");
        }
    }

    // The library's own tests build without serde under `cargo test -p hypomnesis`; the
    // workspace's tests (`hmn` enables it) run these, and `tests/unavailable_json.rs` checks
    // a whole record's JSON through the public API.
    #[cfg(feature = "serde")]
    #[test]
    fn every_field_serializes_as_its_as_str_name() {
        for f in DeviceField::ALL {
            assert_eq!(serde_json::to_value(f).unwrap(), f.as_str(), "{f:?}");
        }
        for f in TelemetryField::ALL {
            assert_eq!(serde_json::to_value(f).unwrap(), f.as_str(), "{f:?}");
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn a_reason_serializes_with_the_field_name_as_a_string() {
        let u = Unavailable::new(DeviceField::ReservedBytes, "driver predates R510");
        assert_eq!(
            serde_json::to_string(&u).unwrap(),
            r#"{"field":"reserved_bytes","reason":"driver predates R510"}"#
        );
        let t = Unavailable::new(TelemetryField::PowerWatts, "not exposed");
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"field":"power_watts","reason":"not exposed"}"#
        );
    }
}
