//! One-line memory reports in the original hypomnesis crate's words (feature `report`).
//!
//! Code written against the original crate (candle-mi and its kin) prints a step's memory
//! cost with `MemoryReport::print_delta("load")` and a device's room with
//! `GpuDeviceInfo::print_free()`. These helpers keep those names, signatures and lines, so
//! such code moves over by changing the dependency. The lines are for people and logs; a
//! program reads the [`Snapshot`] fields instead.
//!
//! Two things differ from the original, both where its lines could mislead:
//! - a figure that is unknown here (the library's `None`) is written `unknown`, never `0`;
//! - a VRAM delta is given only between two figures of the same kind — two of the process's
//!   own, or two of the whole device's (the `nvidia-smi` fallback, marked `[device-wide]`). A
//!   delta between one of each would mean nothing, so it is left out.
//!
//! "MB" is MiB (2^20 bytes), as in the original.

use crate::snapshot::{GpuDeviceInfo, ProcessGpuInfo, Snapshot};

/// Bytes in the original's "MB".
const MIB: f64 = 1_048_576.0;

#[allow(clippy::cast_precision_loss)] // display only: MiB as a float
fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

/// `"1234 MB"` (MiB, no decimals), or `"unknown"`.
fn mib_or_unknown(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "unknown".to_owned(), |b| format!("{:.0} MB", mib(b)))
}

/// `" [name]"`, or nothing when the name is unknown. The name is the driver's: its control
/// characters are escaped (`\u{1b}`), so a line printed on a terminal cannot move the cursor.
fn name_suffix(device: &GpuDeviceInfo) -> String {
    device
        .name
        .as_deref()
        .map(|n| {
            let shown: String = n
                .chars()
                .map(|c| {
                    if c.is_control() {
                        c.escape_default().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect();
            format!(" [{shown}]")
        })
        .unwrap_or_default()
}

/// What a snapshot's VRAM figure is: the process's own, or (the `nvidia-smi` fallback) the
/// whole device's use, an upper bound on the process's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VramKind {
    PerProcess,
    DeviceWide,
}

impl VramKind {
    const fn qualifier(self) -> &'static str {
        match self {
            Self::PerProcess => " [per-process]",
            Self::DeviceWide => " [device-wide]",
        }
    }
}

/// A snapshot's VRAM figure in MiB and its kind, `None` when it has none.
fn vram(snapshot: &Snapshot) -> Option<(f64, VramKind)> {
    let gpu: &ProcessGpuInfo = snapshot.gpu.as_ref()?;
    match (gpu.process_bytes, gpu.device_used_bytes) {
        (Some(own), _) => Some((mib(own), VramKind::PerProcess)),
        (None, Some(device)) => Some((mib(device), VramKind::DeviceWide)),
        (None, None) => None,
    }
}

/// The memory cost of a step: a [`Snapshot`] before it and one after.
///
/// ```no_run
/// use hypomnesis::{MemoryReport, Snapshot};
/// let before = Snapshot::now(0)?;
/// let weights = vec![0_u8; 64 << 20];
/// let report = MemoryReport::new(before, Snapshot::now(0)?);
/// report.print_delta("load weights"); // "  load weights: RAM +64 MB  |  VRAM +0 MB [per-process]"
/// # drop(weights);
/// # Ok::<(), hypomnesis::HypomnesisError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MemoryReport {
    /// Taken before the step.
    pub before: Snapshot,
    /// Taken after it.
    pub after: Snapshot,
}

impl MemoryReport {
    /// The report between two snapshots.
    #[must_use]
    pub const fn new(before: Snapshot, after: Snapshot) -> Self {
        Self { before, after }
    }

    /// How much the process's RAM grew, MiB (negative when it shrank).
    #[must_use]
    pub fn ram_delta_mb(&self) -> f64 {
        self.after.ram_mb() - self.before.ram_mb()
    }

    /// How much VRAM grew, MiB (negative when it shrank): the process's own when both
    /// snapshots measured it, the whole device's when both could only see that (the
    /// `nvidia-smi` fallback). `None` when either snapshot has no VRAM figure or the two are
    /// of different kinds.
    #[must_use]
    pub fn vram_delta_mb(&self) -> Option<f64> {
        self.vram_delta().map(|(delta, _)| delta)
    }

    fn vram_delta(&self) -> Option<(f64, VramKind)> {
        let (before, before_kind) = vram(&self.before)?;
        let (after, after_kind) = vram(&self.after)?;
        (before_kind == after_kind).then_some((after - before, after_kind))
    }

    /// `"  {label}: RAM +N MB  |  VRAM +M MB [per-process]\n"`; without the VRAM part when
    /// [`MemoryReport::vram_delta_mb`] is `None`. [`MemoryReport::print_delta`] prints it.
    #[must_use]
    pub fn format_delta(&self, label: &str) -> String {
        let ram = self.ram_delta_mb();
        match self.vram_delta() {
            Some((vram, kind)) => format!(
                "  {label}: RAM {ram:+.0} MB  |  VRAM {vram:+.0} MB{}\n",
                kind.qualifier()
            ),
            None => format!("  {label}: RAM {ram:+.0} MB\n"),
        }
    }

    /// Two lines: `"  {label}: RAM a MB → b MB (+d MB)\n"` and, when
    /// [`MemoryReport::vram_delta_mb`] is known, `"  {label}: VRAM a MB → b MB (+d MB / T MB)
    /// [per-process] [name]\n"` (the total and the name when the after snapshot's device gives
    /// them). [`MemoryReport::print_before_after`] prints it.
    #[must_use]
    pub fn format_before_after(&self, label: &str) -> String {
        let mut out = format!(
            "  {label}: RAM {:.0} MB → {:.0} MB ({:+.0} MB)\n",
            self.before.ram_mb(),
            self.after.ram_mb(),
            self.ram_delta_mb(),
        );
        if let (Some((before, _)), Some((after, kind)), Some(_)) =
            (vram(&self.before), vram(&self.after), self.vram_delta())
        {
            let device = self.after.gpu_device.as_ref();
            let total = device
                .and_then(|d| d.total_bytes)
                .map(|t| format!(" / {:.0} MB", mib(t)))
                .unwrap_or_default();
            let name = device.map(name_suffix).unwrap_or_default();
            out.push_str(&format!(
                "  {label}: VRAM {before:.0} MB → {after:.0} MB ({:+.0} MB{total}){}{name}\n",
                after - before,
                kind.qualifier(),
            ));
        }
        out
    }

    /// Prints [`MemoryReport::format_delta`] on stdout.
    pub fn print_delta(&self, label: &str) {
        print!("{}", self.format_delta(label));
    }

    /// Prints [`MemoryReport::format_before_after`] on stdout.
    pub fn print_before_after(&self, label: &str) {
        print!("{}", self.format_before_after(label));
    }
}

impl GpuDeviceInfo {
    /// `"  GPU 0: free N MB / T MB [name]\n"` (`unknown` in place of `N MB` for a figure
    /// the device did not give). [`GpuDeviceInfo::print_free`] prints it.
    #[must_use]
    pub fn format_free(&self) -> String {
        format!(
            "  GPU {}: free {} / {}{}\n",
            self.index,
            mib_or_unknown(self.free_bytes),
            mib_or_unknown(self.total_bytes),
            name_suffix(self)
        )
    }

    /// Prints [`GpuDeviceInfo::format_free`] on stdout.
    pub fn print_free(&self) {
        print!("{}", self.format_free());
    }

    /// `"  GPU 0: total T MB [name]\n"` (`unknown` when the device did not give it).
    #[must_use]
    pub fn format_total(&self) -> String {
        format!(
            "  GPU {}: total {}{}\n",
            self.index,
            mib_or_unknown(self.total_bytes),
            name_suffix(self)
        )
    }

    /// `"  GPU 0: used N MB [name]\n"` (`unknown` when the device did not give it).
    #[must_use]
    pub fn format_used(&self) -> String {
        format!(
            "  GPU {}: used {}{}\n",
            self.index,
            mib_or_unknown(self.used_bytes),
            name_suffix(self)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{GpuQuerySource, GpuVendor};

    const MB: u64 = 1 << 20;

    fn device(total: Option<u64>, name: Option<&str>) -> GpuDeviceInfo {
        let mut d = GpuDeviceInfo::new(0, GpuVendor::Nvidia, GpuQuerySource::Nvml);
        d.total_bytes = total;
        d.free_bytes = total.map(|t| t / 2);
        d.used_bytes = total.map(|t| t / 2);
        d.name = name.map(str::to_owned);
        d
    }

    fn snapshot(ram: u64, gpu: Option<ProcessGpuInfo>, dev: Option<GpuDeviceInfo>) -> Snapshot {
        Snapshot {
            ram_bytes: ram,
            gpu,
            gpu_device: dev,
            gpu_error: None,
            telemetry: None,
        }
    }

    fn own(bytes: u64) -> Option<ProcessGpuInfo> {
        Some(ProcessGpuInfo::own(bytes, 0, GpuQuerySource::Nvml))
    }

    fn device_wide(bytes: u64) -> Option<ProcessGpuInfo> {
        Some(ProcessGpuInfo::device_wide(
            bytes,
            0,
            GpuQuerySource::NvidiaSmi,
        ))
    }

    #[test]
    fn a_steps_delta_is_one_line_with_the_vram_qualifier() {
        let r = MemoryReport::new(
            snapshot(100 * MB, own(500 * MB), None),
            snapshot(200 * MB, own(1000 * MB), None),
        );
        assert_eq!(
            r.format_delta("alloc"),
            "  alloc: RAM +100 MB  |  VRAM +500 MB [per-process]\n"
        );
        assert_eq!(r.vram_delta_mb(), Some(500.0));
        let freed = MemoryReport::new(snapshot(80 * MB, None, None), snapshot(50 * MB, None, None));
        assert_eq!(freed.format_delta("free"), "  free: RAM -30 MB\n");
        assert_eq!(freed.ram_delta_mb(), -30.0);
    }

    #[test]
    fn the_nvidia_smi_fallbacks_device_figures_are_marked_device_wide() {
        let r = MemoryReport::new(
            snapshot(100 * MB, device_wide(500 * MB), None),
            snapshot(150 * MB, device_wide(750 * MB), None),
        );
        assert_eq!(
            r.format_delta("step"),
            "  step: RAM +50 MB  |  VRAM +250 MB [device-wide]\n"
        );
    }

    #[test]
    fn no_vram_delta_between_a_process_figure_and_a_device_figure_or_a_missing_one() {
        let mixed = MemoryReport::new(
            snapshot(0, device_wide(5000 * MB), None),
            snapshot(0, own(500 * MB), None),
        );
        assert_eq!(mixed.vram_delta_mb(), None);
        assert_eq!(mixed.format_delta("x"), "  x: RAM +0 MB\n");
        let one_side = MemoryReport::new(snapshot(0, None, None), snapshot(0, own(1), None));
        assert_eq!(one_side.vram_delta_mb(), None);
    }

    #[test]
    fn before_and_after_gives_the_devices_total_and_name_when_known() {
        let gpu = || Some(device(Some(16_384 * MB), Some("NVIDIA Test GPU")));
        let r = MemoryReport::new(
            snapshot(100 * MB, own(500 * MB), gpu()),
            snapshot(200 * MB, own(1000 * MB), gpu()),
        );
        assert_eq!(
            r.format_before_after("model_load"),
            "  model_load: RAM 100 MB → 200 MB (+100 MB)\n  model_load: VRAM 500 MB → 1000 MB \
             (+500 MB / 16384 MB) [per-process] [NVIDIA Test GPU]\n"
        );
        let unknown_total = MemoryReport::new(
            snapshot(0, own(0), None),
            snapshot(0, own(MB), Some(device(None, None))),
        );
        assert_eq!(
            unknown_total.format_before_after("t"),
            "  t: RAM 0 MB → 0 MB (+0 MB)\n  t: VRAM 0 MB → 1 MB (+1 MB) [per-process]\n"
        );
        let cpu = MemoryReport::new(
            snapshot(100 * MB, None, None),
            snapshot(150 * MB, None, None),
        );
        assert_eq!(
            cpu.format_before_after("cpu_only"),
            "  cpu_only: RAM 100 MB → 150 MB (+50 MB)\n"
        );
    }

    #[test]
    fn device_lines_say_unknown_for_a_figure_the_device_did_not_give() {
        let d = device(Some(16_384 * MB), Some("RTX"));
        assert_eq!(d.format_free(), "  GPU 0: free 8192 MB / 16384 MB [RTX]\n");
        assert_eq!(d.format_total(), "  GPU 0: total 16384 MB [RTX]\n");
        assert_eq!(d.format_used(), "  GPU 0: used 8192 MB [RTX]\n");
        let unified = device(None, None);
        assert_eq!(unified.format_free(), "  GPU 0: free unknown / unknown\n");
        assert_eq!(unified.format_total(), "  GPU 0: total unknown\n");
        assert_eq!(unified.format_used(), "  GPU 0: used unknown\n");
        let hostile = device(Some(MB), Some("GPU\x1b[2J\n"));
        assert_eq!(
            hostile.format_total(),
            "  GPU 0: total 1 MB [GPU\\u{1b}[2J\\n]\n"
        );
    }
}
