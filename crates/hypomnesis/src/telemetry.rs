//! Beyond memory: how busy, how hot and how power-hungry each GPU is.
//!
//! A planner deciding where to put the next job needs more than free memory. Every figure is
//! optional: each platform and driver exposes a different subset, and a figure that cannot be
//! read is `None` with the reason in [`DeviceTelemetry::unavailable`] — never 0. Figures that
//! are rates over time need two readings. On Linux (Intel energy and engine busy-time
//! counters) the [`crate::Probe`] keeps the previous reading, so the first call reports them as
//! "warming up" rather than inventing a number; on Windows the PDH engine counters are
//! collected twice, 100 ms apart, within one call. NVML and amdgpu report ready-made rates.

use crate::model::GpuQuerySource;
use crate::unavailable::{TelemetryField, Unavailable};

/// One GPU's activity at one moment.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct DeviceTelemetry {
    /// The device's index (see [`crate::GpuDeviceInfo::index`]).
    pub index: u32,
    /// Percent of time the GPU's compute/graphics engines were busy over the driver's last
    /// sample period (NVML `utilizationRates.gpu`, amdgpu `gpu_busy_percent`, the busiest
    /// engine type on Windows as Task Manager shows, Apple "Device Utilization %").
    pub gpu_utilization_percent: Option<f64>,
    /// Percent of time device memory was being read or written (NVML `utilizationRates.memory`,
    /// amdgpu `mem_busy_percent`).
    pub memory_utilization_percent: Option<f64>,
    /// Video encoder utilization, percent.
    pub encoder_utilization_percent: Option<f64>,
    /// Video decoder utilization, percent.
    pub decoder_utilization_percent: Option<f64>,
    /// GPU core temperature, degrees Celsius.
    pub temperature_celsius: Option<f64>,
    /// Power draw, watts.
    pub power_watts: Option<f64>,
    /// Enforced power limit, watts.
    pub power_limit_watts: Option<f64>,
    /// Graphics / shader (SM) clock, MHz.
    pub sm_clock_mhz: Option<u32>,
    /// Memory clock, MHz.
    pub memory_clock_mhz: Option<u32>,
    /// Fan speed, percent of maximum.
    pub fan_percent: Option<f64>,
    /// Current PCIe link generation.
    pub pcie_link_generation: Option<u32>,
    /// Current PCIe link width (lanes).
    pub pcie_link_width: Option<u32>,
    /// Why each `None` field above is `None` (`"warming up: needs a second reading"`,
    /// `"not exposed by amdgpu on this card"`, ...).
    pub unavailable: Vec<Unavailable<TelemetryField>>,
    /// Which backend produced the figures.
    pub source: GpuQuerySource,
}

impl DeviceTelemetry {
    /// A record for `index` with every figure `None`.
    #[must_use]
    pub fn empty(index: u32, source: GpuQuerySource) -> Self {
        Self {
            index,
            gpu_utilization_percent: None,
            memory_utilization_percent: None,
            encoder_utilization_percent: None,
            decoder_utilization_percent: None,
            temperature_celsius: None,
            power_watts: None,
            power_limit_watts: None,
            sm_clock_mhz: None,
            memory_clock_mhz: None,
            fan_percent: None,
            pcie_link_generation: None,
            pcie_link_width: None,
            unavailable: Vec::new(),
            source,
        }
    }

    /// Records why `field` is `None`.
    pub fn mark_unavailable(&mut self, field: TelemetryField, reason: impl Into<String>) {
        self.unavailable.push(Unavailable::new(field, reason));
    }

    /// Why `field` is `None`, when a reason was recorded.
    #[must_use]
    pub fn unavailable_reason(&self, field: TelemetryField) -> Option<&str> {
        self.unavailable
            .iter()
            .find(|u| u.field == field)
            .map(|u| u.reason.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_record_has_no_figures_and_keeps_reasons() {
        let mut t = DeviceTelemetry::empty(2, GpuQuerySource::Drm);
        assert_eq!(t.index, 2);
        assert!(t.gpu_utilization_percent.is_none() && t.power_watts.is_none());
        t.mark_unavailable(
            TelemetryField::GpuUtilizationPercent,
            "warming up: needs a second reading",
        );
        assert_eq!(
            t.unavailable_reason(TelemetryField::GpuUtilizationPercent),
            Some("warming up: needs a second reading")
        );
        assert_eq!(t.unavailable_reason(TelemetryField::PowerWatts), None);
    }
}
