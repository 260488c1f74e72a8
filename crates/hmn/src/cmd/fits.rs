//! `hmn fits SIZE`: will a model of SIZE bytes fit in a GPU's memory right now?
//!
//! The budget is the library's ([`GpuDeviceInfo::budget_bytes`]), decided once for every
//! view: a discrete GPU's free memory; on a unified-memory or carve-out device (GB10, APUs,
//! Apple) the host memory it really allocates from, bounded by the GPU's own system-memory
//! limit (GTT), the host's available memory and the cgroup — and the verdict says which
//! bound. Without `--device`, every readable GPU is considered and the one with the most
//! room answers. On a GPU in MIG mode an allocation cannot cross a GPU instance, so the
//! budget is the free memory of the instance with the most room, and the verdict names it.
//! A size fits when the budget is at least the size. Exit 0 fits, 1 does not,
//! 2 cannot tell. The devices and their budgets come from one [`Frame`] (devices and host).

use hypomnesis::{BudgetBasis, Frame, FrameRequest, GpuDeviceInfo, Probe};
use serde::Serialize;

use crate::cli::{FitsArgs, GlobalArgs};
use crate::outcome::Outcome;
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
    /// What bounded the budget: `device_free`, or on a unified-memory device
    /// `gpu_system_limit`, `host_available` or `cgroup_limit`.
    pub budget_source: Option<&'static str>,
    /// NVIDIA MIG: the GPU instance whose free memory is the budget (an allocation cannot
    /// cross instances); `null` off MIG.
    pub gpu_instance_id: Option<u32>,
    /// Budget minus request: negative when short.
    pub headroom_bytes: Option<i128>,
    /// Why `fits` is `null`.
    pub reason: Option<String>,
}

/// A device's budget and what bounded it (the library decides both).
fn budget(device: &GpuDeviceInfo) -> Option<(u64, &'static str)> {
    device
        .budget_bytes
        .zip(device.budget_basis.map(BudgetBasis::as_str))
}

pub fn decide(requested: u64, devices: &[Result<GpuDeviceInfo, String>]) -> FitsVerdict {
    let best = devices
        .iter()
        .filter_map(|d| d.as_ref().ok())
        .filter_map(|d| budget(d).map(|b| (d, b)))
        .max_by_key(|(d, (bytes, _))| (*bytes, std::cmp::Reverse(d.index)));
    match best {
        Some((device, (bytes, source))) => FitsVerdict {
            fits: Some(bytes >= requested),
            requested_bytes: requested,
            device_index: Some(device.index),
            device_name: device.name.clone(),
            budget_bytes: Some(bytes),
            budget_source: Some(source),
            gpu_instance_id: (source == BudgetBasis::MigInstanceFree.as_str())
                .then(|| {
                    device
                        .roomiest_mig_instance()
                        .and_then(|m| m.gpu_instance_id)
                })
                .flatten(),
            headroom_bytes: Some(i128::from(bytes) - i128::from(requested)),
            reason: None,
        },
        None => {
            let reasons: Vec<String> = devices
                .iter()
                .map(|d| match d {
                    Err(e) => e.clone(),
                    Ok(d) => format!(
                        "GPU {}: {}",
                        d.index,
                        d.unavailable_reason(hypomnesis::DeviceField::BudgetBytes)
                            .map_or_else(|| "no budget reported".to_owned(), str::to_owned)
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
                gpu_instance_id: None,
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
        let mut device = format!(
            "device {i} [{}]",
            crate::text::Shown(verdict.device_name.as_deref().unwrap_or("unknown GPU"))
        );
        if let Some(gi) = verdict.gpu_instance_id {
            device.push_str(&format!(", MIG GPU instance {gi}"));
        }
        device
    });
    let budget_word = match verdict.budget_source {
        Some("host_available") => "host memory available (unified memory)",
        Some("gpu_system_limit") => "free under the GPU's system-memory limit (unified memory)",
        Some("cgroup_limit") => "free under the cgroup limit (unified memory)",
        Some("mig_instance_free") => "free in the roomiest MIG GPU instance",
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
    let frame = probe.frame(FrameRequest::DEVICES);
    let verdict = decide(args.size, &candidates(&frame, global.device, out));
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

/// The devices of `frame` to compare with (all, or `only`); one that is not there is an
/// `Err` naming why, and a frame without devices because no GPU source answered is said on
/// stderr.
fn candidates(
    frame: &Frame,
    only: Option<u32>,
    out: &Output,
) -> Vec<Result<GpuDeviceInfo, String>> {
    match only {
        Some(index) => vec![
            frame
                .device(index)
                .map(|d| d.device.clone())
                .ok_or_else(|| {
                    let why = super::missing_device(frame, index);
                    format!("fits failed to query device {index}: {why}")
                }),
        ],
        None => {
            if let Some(e) = &frame.gpu_error {
                out.say(&format!("fits failed to list GPUs: {e}"));
            }
            frame.devices.iter().map(|d| Ok(d.device.clone())).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ColorChoice;

    const GIB: u64 = 1 << 30;

    /// A discrete device whose budget is its free memory, as the library decides it.
    fn device(index: u32, free: Option<u64>) -> GpuDeviceInfo {
        let mut d = GpuDeviceInfo::builder()
            .index(index)
            .name("NVIDIA H100 80GB HBM3")
            .build();
        d.free_bytes = free;
        d.budget_bytes = free;
        d.budget_basis = free.map(|_| BudgetBasis::DeviceFree);
        d
    }

    fn plain() -> Output {
        Output::new(ColorChoice::Never)
    }

    #[test]
    fn fits_with_headroom_on_the_roomiest_device() {
        let devices = vec![Ok(device(0, Some(4 * GIB))), Ok(device(1, Some(20 * GIB)))];
        let v = decide(12 * GIB, &devices);
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
        let v = decide(12 * GIB, &[Ok(device(0, Some(10 * GIB)))]);
        assert_eq!(v.fits, Some(false));
        assert_eq!(
            verdict_line(&v, &plain()),
            "does not fit — 10.0 GiB free < 12.0 GiB requested (short by 2.0 GiB; device 0 [NVIDIA H100 80GB HBM3])"
        );
    }

    #[test]
    fn unified_memory_uses_the_librarys_budget_and_says_which_bound() {
        let unified = |bytes: u64, basis: BudgetBasis| {
            GpuDeviceInfo::builder()
                .name("AMD Radeon 890M")
                .unified_memory(true)
                .free_bytes(212 << 20)
                .budget_bytes(bytes)
                .budget_basis(basis)
                .build()
        };
        let v = decide(
            12 * GIB,
            &[Ok(unified(100 * GIB, BudgetBasis::HostAvailable))],
        );
        assert_eq!(v.fits, Some(true));
        assert_eq!(v.budget_source, Some("host_available"));
        assert!(verdict_line(&v, &plain()).contains("host memory available (unified memory)"));
        let v = decide(
            12 * GIB,
            &[Ok(unified(36 * GIB, BudgetBasis::GpuSystemLimit))],
        );
        assert_eq!(v.fits, Some(true), "not the 212 MiB carve-out");
        assert!(
            verdict_line(&v, &plain()).contains("system-memory limit"),
            "{}",
            verdict_line(&v, &plain())
        );
    }

    #[test]
    fn exactly_the_budget_fits_with_no_headroom() {
        let v = decide(10 * GIB, &[Ok(device(0, Some(10 * GIB)))]);
        assert_eq!(v.fits, Some(true));
        assert_eq!(v.headroom_bytes, Some(0));
        let v = decide(10 * GIB + 1, &[Ok(device(0, Some(10 * GIB)))]);
        assert_eq!(v.fits, Some(false));
    }

    #[test]
    fn unknown_free_memory_cannot_tell_and_gives_the_reasons() {
        let d = GpuDeviceInfo::builder()
            .unavailable(
                hypomnesis::DeviceField::BudgetBytes,
                "free memory unknown ([Insufficient Permissions])",
            )
            .build();
        let v = decide(
            GIB,
            &[Ok(d), Err("fits failed to query device 1: boom".into())],
        );
        assert_eq!(v.fits, None);
        let reason = v.reason.unwrap();
        assert!(reason.contains("[Insufficient Permissions]"), "{reason}");
        assert!(reason.contains("boom"), "{reason}");
        assert_eq!(
            decide(GIB, &[]).reason.as_deref(),
            Some("no GPU to compare with")
        );
    }
}
