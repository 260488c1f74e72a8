//! `hmn fits SIZE`: will a model of SIZE bytes fit in a GPU's free memory right now?
//!
//! The budget is the device's free memory. On a unified-memory device (GB10, APUs) there is
//! no separate device memory, so the budget is the host's available memory, and the verdict
//! says so. Without `--device`, every readable GPU is considered and the one with the most
//! room answers. Exit 0 fits, 1 does not, 2 cannot tell.

use hypomnesis::{GpuDeviceInfo, Probe};
use serde::Serialize;

use crate::Outcome;
use crate::cli::{FitsArgs, GlobalArgs};
use crate::output::{Output, Tone};
use crate::size::format_size;

/// The `fits --json` document (see `docs/json.md`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FitsVerdict {
    /// `true` fits, `false` does not, `null` could not tell.
    pub fits: Option<bool>,
    pub requested_bytes: u64,
    pub device_index: Option<u32>,
    pub device_name: Option<String>,
    /// The memory the size was compared with.
    pub budget_bytes: Option<u64>,
    /// `device_free` or `host_available` (unified memory).
    pub budget_source: Option<&'static str>,
    /// Budget minus request: negative when short.
    pub headroom_bytes: Option<i128>,
    /// Why `fits` is `null`.
    pub reason: Option<String>,
}

/// A device's budget and where it came from, or why there is none.
fn budget(device: &GpuDeviceInfo, host_available: Option<u64>) -> Option<(u64, &'static str)> {
    match (device.free_bytes, device.unified_memory) {
        (Some(free), _) => Some((free, "device_free")),
        (None, true) => host_available.map(|a| (a, "host_available")),
        (None, false) => None,
    }
}

pub fn decide(
    requested: u64,
    devices: &[Result<GpuDeviceInfo, String>],
    host_available: Option<u64>,
) -> FitsVerdict {
    let best = devices
        .iter()
        .filter_map(|d| d.as_ref().ok())
        .filter_map(|d| budget(d, host_available).map(|b| (d, b)))
        .max_by_key(|(d, (bytes, _))| (*bytes, std::cmp::Reverse(d.index)));
    match best {
        Some((device, (bytes, source))) => FitsVerdict {
            fits: Some(bytes >= requested),
            requested_bytes: requested,
            device_index: Some(device.index),
            device_name: device.name.clone(),
            budget_bytes: Some(bytes),
            budget_source: Some(source),
            headroom_bytes: Some(i128::from(bytes) - i128::from(requested)),
            reason: None,
        },
        None => {
            let reasons: Vec<String> = devices
                .iter()
                .map(|d| match d {
                    Err(e) => e.clone(),
                    Ok(d) => format!(
                        "GPU {}: free memory unknown ({})",
                        d.index,
                        d.unavailable_reason("free_bytes")
                            .unwrap_or("no reason given")
                    ),
                })
                .collect();
            FitsVerdict {
                fits: None,
                requested_bytes: requested,
                device_index: None,
                device_name: None,
                budget_bytes: None,
                budget_source: None,
                headroom_bytes: None,
                reason: Some(if reasons.is_empty() {
                    "no GPU to compare with".to_owned()
                } else {
                    reasons.join("; ")
                }),
            }
        }
    }
}

pub fn verdict_line(verdict: &FitsVerdict, out: &Output) -> String {
    let requested = format_size(verdict.requested_bytes);
    let device = verdict.device_index.map(|i| {
        format!(
            "device {i} [{}]",
            crate::text::Shown(verdict.device_name.as_deref().unwrap_or("unknown GPU"))
        )
    });
    let budget_word = match verdict.budget_source {
        Some("host_available") => "host memory available (unified memory)",
        _ => "free",
    };
    match (
        verdict.fits,
        verdict.budget_bytes,
        verdict.headroom_bytes,
        device,
    ) {
        (Some(true), Some(budget), Some(headroom), Some(device)) => format!(
            "{} — {} {budget_word} >= {requested} requested ({} headroom; {device})",
            out.paint("fits", Tone::Good),
            format_size(budget),
            format_size(u64::try_from(headroom).unwrap_or(0)),
        ),
        (Some(false), Some(budget), Some(headroom), Some(device)) => format!(
            "{} — {} {budget_word} < {requested} requested (short by {}; {device})",
            out.paint("does not fit", Tone::Bad),
            format_size(budget),
            format_size(u64::try_from(-headroom).unwrap_or(0)),
        ),
        _ => format!(
            "fits could not tell whether {requested} fits: {}",
            crate::text::Shown(verdict.reason.as_deref().unwrap_or("no readable GPU"))
        ),
    }
}

pub fn run(probe: &Probe, global: &GlobalArgs, args: &FitsArgs, out: &Output) -> Outcome {
    let indices: Vec<u32> = match global.device {
        Some(index) => vec![index],
        None => match probe.device_count() {
            Ok(count) => (0..count).collect(),
            Err(e) => {
                out.say(&format!("fits failed to list GPUs: {e}"));
                Vec::new()
            }
        },
    };
    let devices: Vec<Result<GpuDeviceInfo, String>> = indices
        .iter()
        .map(|&i| {
            probe
                .device_info(i)
                .map_err(|e| format!("fits failed to query device {i}: {e}"))
        })
        .collect();
    let host_available = if devices
        .iter()
        .any(|d| d.as_ref().is_ok_and(|d| d.unified_memory))
    {
        probe.host_memory().ok().and_then(|h| h.available_bytes)
    } else {
        None
    };
    let verdict = decide(args.size, &devices, host_available);
    if global.json {
        out.json(&verdict);
    }
    out.say(&verdict_line(&verdict, out));
    match verdict.fits {
        Some(true) => Outcome::Success,
        Some(false) => Outcome::No,
        None => Outcome::CouldNotTell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ColorChoice;

    const GIB: u64 = 1 << 30;

    fn device(index: u32, free: Option<u64>, unified: bool) -> GpuDeviceInfo {
        let mut d = GpuDeviceInfo::builder()
            .index(index)
            .name("NVIDIA H100 80GB HBM3")
            .unified_memory(unified)
            .build();
        d.free_bytes = free;
        d
    }

    fn plain() -> Output {
        Output::new(ColorChoice::Never)
    }

    #[test]
    fn fits_with_headroom_on_the_roomiest_device() {
        let devices = vec![
            Ok(device(0, Some(4 * GIB), false)),
            Ok(device(1, Some(20 * GIB), false)),
        ];
        let v = decide(12 * GIB, &devices, None);
        assert_eq!(v.fits, Some(true));
        assert_eq!(v.device_index, Some(1));
        assert_eq!(v.headroom_bytes, Some(i128::from(8 * GIB)));
        assert_eq!(
            verdict_line(&v, &plain()),
            "fits — 20.0 GiB free >= 12.0 GiB requested (8.0 GiB headroom; device 1 [NVIDIA H100 80GB HBM3])"
        );
    }

    #[test]
    fn does_not_fit_says_by_how_much() {
        let v = decide(12 * GIB, &[Ok(device(0, Some(10 * GIB), false))], None);
        assert_eq!(v.fits, Some(false));
        assert_eq!(
            verdict_line(&v, &plain()),
            "does not fit — 10.0 GiB free < 12.0 GiB requested (short by 2.0 GiB; device 0 [NVIDIA H100 80GB HBM3])"
        );
    }

    #[test]
    fn unified_memory_uses_host_available_and_says_so() {
        let v = decide(12 * GIB, &[Ok(device(0, None, true))], Some(100 * GIB));
        assert_eq!(v.fits, Some(true));
        assert_eq!(v.budget_source, Some("host_available"));
        assert!(verdict_line(&v, &plain()).contains("host memory available (unified memory)"));
    }

    #[test]
    fn unknown_free_memory_cannot_tell_and_gives_the_reasons() {
        let d = GpuDeviceInfo::builder()
            .unavailable("free_bytes", "[Insufficient Permissions]")
            .build();
        let v = decide(
            GIB,
            &[Ok(d), Err("fits failed to query device 1: boom".into())],
            None,
        );
        assert_eq!(v.fits, None);
        let reason = v.reason.unwrap();
        assert!(reason.contains("[Insufficient Permissions]"), "{reason}");
        assert!(reason.contains("boom"), "{reason}");
        assert_eq!(
            decide(GIB, &[], None).reason.as_deref(),
            Some("no GPU to compare with")
        );
    }
}
