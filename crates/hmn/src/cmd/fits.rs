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
//!
//! `--headroom 5%` (or a size) keeps that much free beyond SIZE on each GPU: a percentage of
//! the GPU's total (of the MIG GPU instance's, on MIG). `--gpus N` needs N places each
//! fitting SIZE, as a data-parallel job does (SIZE replicated, not spread): a GPU, or each GPU
//! instance of a GPU in MIG mode. These are the fleet form's rules too (`cmd::fleet::fits`);
//! this machine is one node, so `--same-node` changes nothing here.

use hypomnesis::{BudgetBasis, Frame, FrameRequest, GpuDeviceInfo, Probe};
use serde::Serialize;

use crate::cli::{FitsArgs, GlobalArgs};
use crate::outcome::Outcome;
use crate::output::{Output, Tone};
use crate::size::format_size;
use crate::values::Headroom;

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
    /// `--gpus N`: how many places must each fit SIZE (1 without it).
    pub gpus: u32,
    /// `--headroom` on the compared device, bytes (0 without it); `null` when a percentage
    /// could not be taken of an unknown total.
    pub keep_free_bytes: Option<u64>,
    /// Every place SIZE fits (with its headroom), most room first: each GPU, or each GPU
    /// instance of a GPU in MIG mode.
    pub fitting: Vec<Fitting>,
}

/// A place SIZE fits on this machine.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Fitting {
    pub device_index: u32,
    /// NVIDIA MIG: the GPU instance; `null` off MIG.
    pub gpu_instance_id: Option<u32>,
    /// What a new allocation can get there.
    pub budget_bytes: u64,
}

/// What was asked: SIZE, on how many GPUs, where, with what kept free (`fits`, local and
/// fleet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub size: u64,
    pub gpus: u32,
    pub same_node: bool,
    pub headroom: Option<Headroom>,
}

impl Request {
    pub fn of(args: &FitsArgs) -> Self {
        Self {
            size: args.size,
            gpus: args.gpus.unwrap_or(1),
            same_node: args.same_node,
            headroom: args.headroom,
        }
    }

    /// SIZE alone: one GPU, nothing kept free.
    #[cfg(test)]
    pub fn size(size: u64) -> Self {
        Self {
            size,
            gpus: 1,
            same_node: false,
            headroom: None,
        }
    }

    /// ` with 5% kept free`, ` with 2.0 GiB kept free`, or nothing.
    pub fn kept_text(&self) -> String {
        match self.headroom {
            None => String::new(),
            Some(Headroom::Bytes(b)) => format!(" with {} kept free", format_size(b)),
            Some(Headroom::Percent { hundredths }) => {
                format!(" with {} kept free", percent_text(hundredths))
            }
        }
    }
}

/// `5%`, `2.5%`, `0.25%`.
pub fn percent_text(hundredths: u32) -> String {
    let (whole, part) = (hundredths / 100, hundredths % 100);
    match part {
        0 => format!("{whole}%"),
        p if p % 10 == 0 => format!("{whole}.{}%", p / 10),
        p => format!("{whole}.{p:02}%"),
    }
}

/// The places of `device` a job can go, each as (GPU instance, room, total): the device's
/// budget, or on MIG each GPU instance's free memory (its compute instances share it).
fn places(device: &GpuDeviceInfo) -> Vec<(Option<u32>, u64, Option<u64>)> {
    if device.mig_instances.is_empty() {
        return device
            .budget_bytes
            .map(|room| (None, room, device.total_bytes))
            .into_iter()
            .collect();
    }
    let mut places: Vec<(Option<u32>, u64, Option<u64>)> = Vec::new();
    for m in &device.mig_instances {
        if let Some(free) = m.free_bytes
            && !places.iter().any(|p| p.0 == m.gpu_instance_id)
        {
            places.push((m.gpu_instance_id, free, m.total_bytes));
        }
    }
    places
}

/// [`decide`] for a whole [`Request`]: the places that fit SIZE and its headroom, and whether
/// there are `gpus` of them. The verdict's device is the one with the most room that fits
/// (else the one with the most room).
pub fn decide_request(request: &Request, devices: &[Result<GpuDeviceInfo, String>]) -> FitsVerdict {
    let readable: Vec<&GpuDeviceInfo> = devices.iter().filter_map(|d| d.as_ref().ok()).collect();
    let mut fitting: Vec<(Fitting, u64)> = Vec::new();
    for d in &readable {
        for (gpu_instance_id, room, total) in places(d) {
            let keep = request.headroom.map_or(Some(0), |h| h.on(total));
            if let Some(keep) = keep
                && room >= request.size.saturating_add(keep)
            {
                fitting.push((
                    Fitting {
                        device_index: d.index,
                        gpu_instance_id,
                        budget_bytes: room,
                    },
                    keep,
                ));
            }
        }
    }
    fitting.sort_by(|(a, _), (b, _)| {
        b.budget_bytes.cmp(&a.budget_bytes).then_with(|| {
            (a.device_index, a.gpu_instance_id).cmp(&(b.device_index, b.gpu_instance_id))
        })
    });
    let chosen: Vec<Result<GpuDeviceInfo, String>> = match fitting.first() {
        Some((best, _)) => readable
            .iter()
            .filter(|d| d.index == best.device_index)
            .map(|d| Ok((*d).clone()))
            .collect(),
        None => devices.to_vec(),
    };
    let mut verdict = decide(request.size, &chosen);
    let keep = match fitting.first() {
        Some((_, keep)) => Some(*keep),
        None => {
            let device = readable
                .iter()
                .find(|d| Some(d.index) == verdict.device_index);
            let total = device.and_then(|d| match verdict.gpu_instance_id {
                Some(gi) => d
                    .mig_instances
                    .iter()
                    .find(|m| m.gpu_instance_id == Some(gi))
                    .and_then(|m| m.total_bytes),
                None => d.total_bytes,
            });
            request.headroom.map_or(Some(0), |h| h.on(total))
        }
    };
    if verdict.fits.is_some() {
        let wanted = usize::try_from(request.gpus).unwrap_or(usize::MAX);
        verdict.fits = Some(fitting.len() >= wanted);
    }
    verdict.gpus = request.gpus;
    verdict.keep_free_bytes = keep;
    verdict.fitting = fitting.into_iter().map(|(f, _)| f).collect();
    verdict
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
            gpus: 1,
            keep_free_bytes: Some(0),
            fitting: Vec::new(),
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
                gpus: 1,
                keep_free_bytes: Some(0),
                fitting: Vec::new(),
            }
        }
    }
}

pub fn verdict_line(verdict: &FitsVerdict, out: &Output) -> String {
    let requested = format_size(verdict.requested_bytes);
    if verdict.gpus > 1 && verdict.fits.is_some() {
        return gpus_line(verdict, out);
    }
    let kept = verdict.keep_free_bytes.filter(|&k| k > 0);
    let requested = match kept {
        Some(k) => format!("{requested} requested + {} kept free", format_size(k)),
        None => format!("{requested} requested"),
    };
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
            "{} — {} {budget_word} >= {requested} ({} headroom; {device})",
            out.paint("fits", Tone::Good),
            format_size(budget),
            format_size(u64::try_from(headroom - i128::from(kept.unwrap_or(0))).unwrap_or(0)),
        ),
        (Some(false), Some(budget), Some(headroom), Some(device)) => format!(
            "{} — {} {budget_word} < {requested} (short by {}; {device})",
            out.paint("does not fit", Tone::Bad),
            format_size(budget),
            format_size(u64::try_from(i128::from(kept.unwrap_or(0)) - headroom).unwrap_or(0)),
        ),
        _ => format!(
            "fits could not tell whether {} fits: {}",
            format_size(verdict.requested_bytes),
            crate::text::Shown(verdict.reason.as_deref().unwrap_or("no readable GPU"))
        ),
    }
}

/// `--gpus N`'s verdict: how many places fit and which.
fn gpus_line(verdict: &FitsVerdict, out: &Output) -> String {
    let each = format!(
        "{} GPUs with {} free each{}",
        verdict.gpus,
        format_size(verdict.requested_bytes),
        match verdict.keep_free_bytes {
            Some(k) if k > 0 => format!(" (+ {} kept free)", format_size(k)),
            _ => String::new(),
        }
    );
    let places: Vec<String> = verdict
        .fitting
        .iter()
        .map(|f| match f.gpu_instance_id {
            Some(gi) => format!("{} gi {gi}", f.device_index),
            None => f.device_index.to_string(),
        })
        .collect();
    let found = match places.len() {
        0 => "none fits".to_owned(),
        n => format!("{n} fit (devices {})", places.join(", ")),
    };
    let word = if verdict.fits == Some(true) {
        out.paint("fits", Tone::Good)
    } else {
        out.paint("does not fit", Tone::Bad)
    };
    format!("{word} — {each}: {found}")
}

pub fn run(probe: &Probe, global: &GlobalArgs, args: &FitsArgs, out: &Output) -> Outcome {
    let frame = probe.frame(FrameRequest::DEVICES);
    let verdict = decide_request(&Request::of(args), &candidates(&frame, global.device, out));
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

    #[test]
    fn headroom_is_kept_free_beyond_size_on_the_compared_gpu() {
        let mut d = device(0, Some(45 * GIB));
        d.total_bytes = Some(80 * GIB);
        let ask = |h| Request {
            headroom: Some(h),
            ..Request::size(40 * GIB)
        };
        let v = decide_request(
            &ask(Headroom::Percent { hundredths: 500 }),
            &[Ok(d.clone())],
        );
        assert_eq!((v.fits, v.keep_free_bytes), (Some(true), Some(4 * GIB)));
        assert_eq!(
            verdict_line(&v, &plain()),
            "fits — 45.0 GiB free >= 40.0 GiB requested + 4.0 GiB kept free (1.0 GiB headroom; device 0 [NVIDIA H100 80GB HBM3])"
        );
        let v = decide_request(
            &ask(Headroom::Percent { hundredths: 1000 }),
            &[Ok(d.clone())],
        );
        assert_eq!(v.fits, Some(false));
        assert!(
            verdict_line(&v, &plain()).contains("short by 3.0 GiB"),
            "{}",
            verdict_line(&v, &plain())
        );
        d.total_bytes = None;
        let v = decide_request(
            &ask(Headroom::Percent { hundredths: 500 }),
            &[Ok(d.clone())],
        );
        assert_eq!(
            v.fits,
            Some(false),
            "a percentage of an unknown total is never room"
        );
        assert_eq!(v.keep_free_bytes, None);
        let v = decide_request(&ask(Headroom::Bytes(5 * GIB)), &[Ok(d)]);
        assert_eq!(v.fits, Some(true), "bytes need no total");
    }

    #[test]
    fn gpus_n_needs_n_gpus_each_with_size_free() {
        let devices = vec![
            Ok(device(0, Some(20 * GIB))),
            Ok(device(1, Some(4 * GIB))),
            Ok(device(2, Some(13 * GIB))),
        ];
        let ask = |gpus| Request {
            gpus,
            ..Request::size(12 * GIB)
        };
        let v = decide_request(&ask(2), &devices);
        assert_eq!(v.fits, Some(true));
        assert_eq!(
            v.fitting.iter().map(|f| f.device_index).collect::<Vec<_>>(),
            [0, 2]
        );
        assert_eq!(
            verdict_line(&v, &plain()),
            "fits — 2 GPUs with 12.0 GiB free each: 2 fit (devices 0, 2)"
        );
        let v = decide_request(&ask(3), &devices);
        assert_eq!(v.fits, Some(false), "SIZE on each, not SIZE spread over 3");
        assert_eq!(v.device_index, Some(0));
    }

    #[test]
    fn on_mig_each_gpu_instance_is_a_place() {
        let mut d = device(0, Some(30 * GIB));
        d.mig_instances = [(1, 0), (2, 0), (2, 1)]
            .into_iter()
            .map(|(gi, ci)| {
                let free = if gi == 1 { 10 * GIB } else { 11 * GIB };
                hypomnesis::MigInstance::for_test(gi, ci, Some((20 * GIB, free, 20 * GIB - free)))
            })
            .collect();
        let v = decide_request(
            &Request {
                gpus: 2,
                ..Request::size(10 * GIB)
            },
            &[Ok(d.clone())],
        );
        assert_eq!(
            v.fits,
            Some(true),
            "two GPU instances, not three compute instances"
        );
        assert_eq!(v.fitting.len(), 2);
        let v = decide_request(
            &Request {
                gpus: 2,
                ..Request::size(11 * GIB)
            },
            &[Ok(d)],
        );
        assert_eq!(v.fits, Some(false));
    }
}
