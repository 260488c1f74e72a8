//! Pure parsers for the text the DRM readers find: `/proc/<pid>/fdinfo/<fd>`, amdgpu / xe
//! sysfs files, PCI slot names, the PCI ids database, and `readlink` targets of fds.
//!
//! They take text and return values, never touch the filesystem, never panic, and build on
//! every OS so they are tested everywhere (and fuzzed, see `fuzz/`). Facts they rely on
//! (kernel `Documentation/gpu/drm-usage-stats.rst`, amdgpu's fdinfo history):
//!
//! - fdinfo is one `key: value` per line, split at the first `:`; the whitespace after the
//!   colon is tabs or spaces. Non-DRM lines (`pos`, `flags`, `mnt_id`, `ino`, `pasid`,
//!   `amd-*`) share the file and are ignored.
//! - Memory values are a number with an optional unit: bare means **bytes**, `KiB` and `MiB`
//!   are binary, legacy amdgpu's `kB` means KiB too. Everything is normalised to bytes.
//! - `drm-memory-<region>` is the deprecated alias of `drm-resident-<region>`; current amdgpu
//!   prints both with the same value, so the alias is used only when the resident key is
//!   absent — never added to it.
//! - amdgpu 5.14 – 5.18 printed `pdev:`, `pasid:`, `vram mem: N kB`, `gtt mem:`, `cpu mem:` and
//!   engine lines like `gfx0: 12.5%`, with no `drm-` keys; the `pasid` (one per DRM file) then
//!   stands in for `drm-client-id`.

use std::borrow::Cow;
use std::fmt::Write as _;

/// A region or engine name. The names drivers print are few, so the known ones are borrowed
/// from tables here instead of allocated: a scan parses thousands of fdinfo files, each
/// naming half a dozen regions and engines.
pub(crate) type Name = Cow<'static, str>;

/// `name` as a [`Name`]: borrowed from `known` when listed there, else owned.
fn intern(name: &str, known: &[&'static str]) -> Name {
    match known.iter().find(|k| **k == name) {
        Some(known) => Cow::Borrowed(*known),
        None => Cow::Owned(name.to_owned()),
    }
}

/// Region names of amdgpu, xe, i915 and the generic helpers.
const REGION_NAMES: [&str; 16] = [
    "vram",
    "gtt",
    "cpu",
    "doorbell",
    "memory",
    "system",
    "system0",
    "local0",
    "local1",
    "stolen",
    "stolen-local0",
    "stolen-system0",
    "vram0",
    "vram1",
    "gds",
    "gws",
];

/// Engine names of amdgpu, xe, i915, panfrost and msm.
const ENGINE_NAMES: [&str; 16] = [
    "gfx",
    "compute",
    "dma",
    "enc",
    "dec",
    "jpeg",
    "vpe",
    "render",
    "copy",
    "video",
    "video-enhance",
    "rcs",
    "bcs",
    "vcs",
    "vecs",
    "ccs",
];

/// One memory region's figures from one DRM client, bytes. `None` when the driver did not
/// print that key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RegionStats {
    /// Region name as the driver prints it (`vram`, `gtt`, `system0`, `local0`, `memory`).
    pub(crate) name: Name,
    /// What the region counts towards, from its name.
    pub(crate) class: RegionClass,
    /// `drm-total-<r>`: every buffer created, resident or not.
    pub(crate) total: Option<u64>,
    /// `drm-shared-<r>`: buffers shared with another DRM file.
    pub(crate) shared: Option<u64>,
    /// `drm-resident-<r>`: buffers whose backing store is in the region.
    pub(crate) resident: Option<u64>,
    /// `drm-purgeable-<r>`: resident buffers the driver may drop.
    pub(crate) purgeable: Option<u64>,
    /// `drm-active-<r>`: buffers busy on an engine.
    pub(crate) active: Option<u64>,
    /// `drm-memory-<r>` (deprecated) or legacy amdgpu `<r> mem:`: the same as `resident`.
    pub(crate) legacy_resident: Option<u64>,
}

impl RegionStats {
    /// Resident bytes: `drm-resident-<r>`, else the deprecated alias — never both.
    pub(crate) fn resident_bytes(&self) -> Option<u64> {
        self.resident.or(self.legacy_resident)
    }
}

/// Which part of a process's GPU memory a region counts towards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum RegionClass {
    /// Memory on the device: amdgpu / xe `vram*`, i915 `local*` and `stolen-local*`.
    Device,
    /// GPU buffers in system RAM: amdgpu `gtt` and `cpu`, xe `gtt` and `system`, i915
    /// `system*` and `stolen-system*`, the generic `memory` region (panfrost and friends).
    System,
    /// Anything else (amdgpu `gds`, `gws`, `oa`, `doorbell`, `mmioremap`; xe `stolen`, which is
    /// device or system memory depending on the part): parsed, not counted.
    #[default]
    Other,
}

/// The class of region `name`.
pub(crate) fn region_class(name: &str) -> RegionClass {
    if name.starts_with("vram") || name.starts_with("local") || name.starts_with("stolen-local") {
        RegionClass::Device
    } else if matches!(name, "gtt" | "cpu" | "memory")
        || name.starts_with("system")
        || name.starts_with("stolen-system")
    {
        RegionClass::System
    } else {
        RegionClass::Other
    }
}

/// One engine's figures from one DRM client. Parsed and kept for utilization; memory does not
/// use them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))] // read by the utilization work, not by memory
pub(crate) struct EngineStats {
    /// Engine name (`gfx`, `render`, `rcs`, ...).
    pub(crate) name: Name,
    /// `drm-engine-<e>`: busy time, nanoseconds.
    pub(crate) busy_ns: Option<u64>,
    /// `drm-engine-capacity-<e>`: identical engines grouped under the name (absent = 1).
    pub(crate) capacity: Option<u64>,
    /// `drm-cycles-<e>`: busy cycles.
    pub(crate) cycles: Option<u64>,
    /// `drm-total-cycles-<e>`: GPU timestamp cycles.
    pub(crate) total_cycles: Option<u64>,
    /// `drm-maxfreq-<e>`: maximum frequency, Hz.
    pub(crate) max_freq_hz: Option<u64>,
    /// Legacy amdgpu `gfx0: 12.5%`: the text before `%`, kept as printed (the kernel printed
    /// the fraction without zero padding, so `12.5` may mean 12.05).
    pub(crate) legacy_percent: Option<String>,
}

/// How a client identifies itself, for deduplication across fds and processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ClientId {
    /// `drm-client-id`.
    Drm(u64),
    /// Legacy amdgpu: the VM's `pasid`, one per DRM file.
    Pasid(u64),
}

/// Everything read from one fdinfo file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FdInfo {
    /// `drm-driver` (`amdgpu`, `i915`, `xe`, `panfrost`, ...); `amdgpu` for the legacy form.
    pub(crate) driver: Option<String>,
    /// `drm-pdev` (or legacy `pdev`), normalised to NVML's form `00000000:03:00.0`.
    pub(crate) pdev: Option<String>,
    /// `drm-client-id`.
    pub(crate) client_id: Option<u64>,
    /// `pasid` (amdgpu's VM id; the client id of legacy kernels).
    pub(crate) pasid: Option<u64>,
    /// `drm-client-name`, set by userspace on newer kernels.
    #[cfg_attr(not(test), allow(dead_code))] // shown by a later issue
    pub(crate) client_name: Option<String>,
    /// Memory regions in the order first seen.
    pub(crate) regions: Vec<RegionStats>,
    /// Engines in the order first seen.
    #[cfg_attr(not(test), allow(dead_code))] // read by the utilization work
    pub(crate) engines: Vec<EngineStats>,
    /// Lines that looked like DRM keys but could not be read (bad number, unknown unit, a
    /// line without `:`). Ignored, counted.
    pub(crate) malformed_lines: u32,
    /// Whether the text is a DRM client's at all (`drm-driver`, or the legacy amdgpu keys).
    pub(crate) is_drm: bool,
}

impl FdInfo {
    /// The identity to deduplicate on: `drm-client-id`, else the legacy `pasid`.
    pub(crate) fn client(&self) -> Option<ClientId> {
        self.client_id
            .map(ClientId::Drm)
            .or(self.pasid.map(ClientId::Pasid))
    }

    /// Sum of resident bytes over the regions of `class`; `None` when no region of that class
    /// has a resident (or deprecated alias) figure.
    pub(crate) fn resident(&self, class: RegionClass) -> Option<u64> {
        sum_some(
            self.regions
                .iter()
                .filter(|r| r.class == class)
                .map(RegionStats::resident_bytes),
        )
    }

    /// Sum of `drm-shared-*` over device and system regions; `None` when none is printed.
    pub(crate) fn shared(&self) -> Option<u64> {
        sum_some(
            self.regions
                .iter()
                .filter(|r| r.class != RegionClass::Other)
                .map(|r| r.shared),
        )
    }

    fn region(&mut self, name: &str) -> &mut RegionStats {
        let position = match self.regions.iter().position(|r| r.name == name) {
            Some(position) => position,
            None => {
                if self.regions.is_empty() {
                    // amdgpu prints five regions: one allocation for all of them.
                    self.regions.reserve(6);
                }
                self.regions.push(RegionStats {
                    name: intern(name, &REGION_NAMES),
                    class: region_class(name),
                    ..RegionStats::default()
                });
                self.regions.len() - 1
            }
        };
        // `position` is in range: found above or just pushed.
        &mut self.regions[position]
    }

    fn engine(&mut self, name: &str) -> &mut EngineStats {
        let position = match self.engines.iter().position(|e| e.name == name) {
            Some(position) => position,
            None => {
                if self.engines.is_empty() {
                    self.engines.reserve(4);
                }
                self.engines.push(EngineStats {
                    name: intern(name, &ENGINE_NAMES),
                    ..EngineStats::default()
                });
                self.engines.len() - 1
            }
        };
        &mut self.engines[position]
    }
}

/// `Some(sum)` of the `Some` items (saturating), `None` when there are none.
fn sum_some(items: impl Iterator<Item = Option<u64>>) -> Option<u64> {
    items.flatten().fold(None, |acc: Option<u64>, x| {
        Some(acc.unwrap_or(0).saturating_add(x))
    })
}

/// Reads an fdinfo text. Never fails: unreadable lines are counted in `malformed_lines`.
pub(crate) fn parse_fdinfo(text: &str) -> FdInfo {
    let mut info = FdInfo::default();
    let mut legacy_amdgpu = false;
    // A scan parses thousands of these: lines are split at `\n` alone (a `\r` goes with the
    // trimming), the colon is found by a byte loop (keys are short), and trimming is ASCII
    // (the kernel pads with tabs and spaces). A quarter faster than `lines()` + `split_once`
    // + `trim`.
    for line in text.split('\n') {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let Some(colon) = line.bytes().position(|b| b == b':') else {
            info.malformed_lines = info.malformed_lines.saturating_add(1);
            continue;
        };
        let (key, value) = (&line[..colon], &line[colon + 1..]);
        let key = key.trim_ascii();
        let value = value.trim_ascii();
        let ok = match key {
            "drm-driver" => {
                info.is_drm = true;
                set_text(&mut info.driver, value)
            }
            "drm-pdev" | "pdev" => match normalize_pci_slot(value) {
                Some(slot) => {
                    info.pdev = Some(slot);
                    true
                }
                None => false,
            },
            "drm-client-id" => set(&mut info.client_id, parse_plain(value)),
            "drm-client-name" => set_text(&mut info.client_name, value),
            "pasid" => set(&mut info.pasid, parse_plain(value)),
            "vram mem" | "gtt mem" | "cpu mem" => {
                legacy_amdgpu = true;
                let region = key.trim_end_matches(" mem");
                let bytes = parse_size(value);
                set(&mut info.region(region).legacy_resident, bytes)
            }
            _ => match key.strip_prefix("drm-") {
                Some(rest) => parse_drm_key(&mut info, rest, value),
                None => parse_legacy_engine(&mut info, key, value),
            },
        };
        if !ok {
            info.malformed_lines = info.malformed_lines.saturating_add(1);
        }
    }
    if legacy_amdgpu && !info.is_drm {
        info.is_drm = true;
        info.driver.get_or_insert_with(|| "amdgpu".to_owned());
    }
    info
}

/// One `drm-<rest>: value` line; `false` when the value is malformed. Unknown keys are
/// accepted (kernels add keys) and ignored.
fn parse_drm_key(info: &mut FdInfo, rest: &str, value: &str) -> bool {
    // Longest prefixes first: `total-cycles-` before `total-`, `engine-capacity-` before
    // `engine-`.
    if let Some(engine) = nonempty(rest.strip_prefix("total-cycles-")) {
        return set(&mut info.engine(engine).total_cycles, parse_plain(value));
    }
    if let Some(engine) = nonempty(rest.strip_prefix("engine-capacity-")) {
        return set(&mut info.engine(engine).capacity, parse_plain(value));
    }
    if let Some(engine) = nonempty(rest.strip_prefix("engine-")) {
        return set(
            &mut info.engine(engine).busy_ns,
            parse_with_unit(value, &[("ns", 1)]),
        );
    }
    if let Some(engine) = nonempty(rest.strip_prefix("cycles-")) {
        return set(&mut info.engine(engine).cycles, parse_plain(value));
    }
    if let Some(engine) = nonempty(rest.strip_prefix("maxfreq-")) {
        let hz = parse_with_unit(
            value,
            &[
                ("Hz", 1),
                ("KHz", 1_000),
                ("kHz", 1_000),
                ("MHz", 1_000_000),
            ],
        );
        return set(&mut info.engine(engine).max_freq_hz, hz);
    }
    type Field = fn(&mut RegionStats) -> &mut Option<u64>;
    let regions: [(&str, Field); 6] = [
        ("total-", |r| &mut r.total),
        ("shared-", |r| &mut r.shared),
        ("resident-", |r| &mut r.resident),
        ("purgeable-", |r| &mut r.purgeable),
        ("active-", |r| &mut r.active),
        ("memory-", |r| &mut r.legacy_resident),
    ];
    for (prefix, field) in regions {
        if let Some(region) = nonempty(rest.strip_prefix(prefix)) {
            let bytes = parse_size(value);
            return set(field(info.region(region)), bytes);
        }
    }
    true
}

/// Legacy amdgpu engine lines (`gfx0: 12.5%`); any other non-DRM line is ignored.
fn parse_legacy_engine(info: &mut FdInfo, key: &str, value: &str) -> bool {
    let Some(percent) = value.strip_suffix('%') else {
        return true;
    };
    let looks_like_engine = key.ends_with(|c: char| c.is_ascii_digit())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !looks_like_engine {
        return true;
    }
    let valid = !percent.is_empty()
        && percent.chars().all(|c| c.is_ascii_digit() || c == '.')
        && percent.chars().filter(|&c| c == '.').count() <= 1;
    if valid {
        info.engine(key).legacy_percent = Some(percent.to_owned());
    }
    valid
}

fn nonempty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// Stores `value`; `false` (malformed) when it is `None`.
fn set(slot: &mut Option<u64>, value: Option<u64>) -> bool {
    match value {
        Some(v) => {
            *slot = Some(v);
            true
        }
        None => false,
    }
}

fn set_text(slot: &mut Option<String>, value: &str) -> bool {
    if value.is_empty() {
        return false;
    }
    *slot = Some(value.to_owned());
    true
}

/// A plain decimal integer.
fn parse_plain(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// A number followed by an optional unit from `units` (name, multiplier); bare = × 1.
fn parse_with_unit(value: &str, units: &[(&str, u64)]) -> Option<u64> {
    let digits_end = value
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits_end);
    let number = parse_plain(number)?;
    let unit = unit.trim_ascii();
    if unit.is_empty() {
        return Some(number);
    }
    let (_, multiplier) = units.iter().find(|(name, _)| *name == unit)?;
    number.checked_mul(*multiplier)
}

/// A memory size: bare bytes, or `KiB` / `MiB` / `GiB`, or legacy amdgpu's `kB` (= KiB).
/// `None` for anything else, and on overflow.
pub(crate) fn parse_size(value: &str) -> Option<u64> {
    const KIB: u64 = 1024;
    parse_with_unit(
        value,
        &[
            ("B", 1),
            ("KiB", KIB),
            ("kB", KIB),
            ("KB", KIB),
            ("MiB", KIB * KIB),
            ("GiB", KIB * KIB * KIB),
        ],
    )
}

/// A sysfs number file (`mem_info_vram_total`: `17163091968\n`).
pub(crate) fn parse_sysfs_u64(text: &str) -> Option<u64> {
    parse_plain(text.trim())
}

/// A sysfs PCI id file (`vendor`: `0x1002\n`).
pub(crate) fn parse_pci_id(text: &str) -> Option<u16> {
    let hex = text.trim();
    let hex = hex
        .strip_prefix("0x")
        .or_else(|| hex.strip_prefix("0X"))
        .unwrap_or(hex);
    if hex.is_empty() || hex.len() > 4 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(hex, 16).ok()
}

/// A PCI slot (`0000:03:00.0`, `00000000:03:00.0`, any case) in NVML's form: 8-digit domain,
/// upper-case hex (`00000000:03:00.0`). `None` when `slot` is not a PCI slot (a platform
/// device such as `fb000000.gpu`).
pub(crate) fn normalize_pci_slot(slot: &str) -> Option<String> {
    let (domain_bus_dev, function) = slot.trim().rsplit_once('.')?;
    let mut parts = domain_bus_dev.split(':');
    let (domain, bus, device) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let hex = |s: &str, max: usize| -> Option<u32> {
        if s.is_empty() || s.len() > max || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(s, 16).ok()
    };
    let domain = hex(domain, 8)?;
    let bus = hex(bus, 2)?;
    let device = hex(device, 2)?;
    let function = hex(function, 1)?;
    if device > 0x1f || function > 7 {
        return None;
    }
    let mut out = String::with_capacity(16);
    // Writing to a String cannot fail.
    let _ = write!(out, "{domain:08X}:{bus:02X}:{device:02X}.{function:X}");
    Some(out)
}

/// The PCI bus number of a normalised slot (`00000000:03:00.0` → 3).
pub(crate) fn pci_bus(normalized: &str) -> Option<u8> {
    let bus = normalized.split(':').nth(1)?;
    u8::from_str_radix(bus, 16).ok()
}

/// Vendor and device names from the text of a `pci.ids` database: `(vendor, device)`, the
/// device `None` when only the vendor is listed. Lines are `vvvv  Vendor name`, then
/// `\tdddd  Device name` (and `\t\t` subsystem lines) until the next vendor; `#` starts a
/// comment. Stops at the vendor's block, so the cost is a scan up to it.
pub(crate) fn pci_ids_lookup(
    text: &str,
    vendor: u16,
    device: u16,
) -> Option<(String, Option<String>)> {
    let vendor_hex = format!("{vendor:04x}");
    let device_hex = format!("{device:04x}");
    let mut lines = text.lines();
    let vendor_name = lines.by_ref().find_map(|line| {
        let (id, name) = split_id_line(line)?;
        id.eq_ignore_ascii_case(&vendor_hex)
            .then(|| name.to_owned())
    })?;
    for line in lines {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if line.starts_with("\t\t") {
            continue;
        }
        let Some(rest) = line.strip_prefix('\t') else {
            // The next vendor: the device is not listed.
            break;
        };
        if let Some((id, name)) = split_id_line(rest)
            && id.eq_ignore_ascii_case(&device_hex)
        {
            return Some((vendor_name, Some(name.to_owned())));
        }
    }
    Some((vendor_name, None))
}

/// `1002  Advanced Micro Devices` → (`1002`, `Advanced Micro Devices`).
fn split_id_line(line: &str) -> Option<(&str, &str)> {
    let id = line.get(..4)?;
    if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let name = line.get(4..)?.trim();
    (!name.is_empty()).then_some((id, name))
}

/// What the target of an fd symlink (`readlink /proc/<pid>/fd/<n>`) says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FdTarget<'a> {
    /// A DRM or accel node; the node's name (`renderD128`, `card0`, `accel0`).
    Drm(&'a str),
    /// Some other path under `/dev/` that might be a DRM node under another name (a container
    /// that remaps `/dev`): worth a `stat` for the character-device major.
    MaybeDevice,
    /// Not a DRM node (a socket, pipe, regular file, `/dev/null`, a terminal).
    NotDrm,
}

/// Classifies an fd's link target by its text alone. Cheap: no system call.
pub(crate) fn classify_fd_target(target: &str) -> FdTarget<'_> {
    // Sockets, pipes and anonymous inodes (`socket:[40112]`): most fds, never a node.
    if !target.starts_with('/') {
        return FdTarget::NotDrm;
    }
    for prefix in ["/dev/dri/", "/dev/accel/"] {
        if let Some(node) = target.strip_prefix(prefix) {
            return match node_name(node) {
                Some(node) => FdTarget::Drm(node),
                None => FdTarget::NotDrm,
            };
        }
    }
    // A `/dev` mounted elsewhere (containers) still names the node `…/dri/renderD128`. (A
    // byte search: `rsplit_once` builds a substring searcher per call, and most fds get here.)
    if let Some(at) = target.as_bytes().windows(5).rposition(|w| w == b"/dri/")
        && let Some(node) = target.get(at + 5..).and_then(node_name)
    {
        return FdTarget::Drm(node);
    }
    let Some(dev) = target.strip_prefix("/dev/") else {
        return FdTarget::NotDrm;
    };
    const NOT_DRM: [&str; 16] = [
        "null", "zero", "full", "random", "urandom", "ptmx", "console", "kvm", "fuse", "tty",
        "pts/", "shm/", "input/", "snd/", "nvidia", "net/",
    ];
    if NOT_DRM.iter().any(|p| dev.starts_with(p)) {
        FdTarget::NotDrm
    } else {
        FdTarget::MaybeDevice
    }
}

/// `renderD128` / `card0` / `accel0` (with a trailing ` (deleted)` removed); `None` for other
/// names (`by-path/...`).
fn node_name(node: &str) -> Option<&str> {
    let node = node.strip_suffix(" (deleted)").unwrap_or(node);
    let number = node
        .strip_prefix("renderD")
        .or_else(|| node.strip_prefix("card"))
        .or_else(|| node.strip_prefix("accel"))?;
    (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())).then_some(node)
}

/// Character-device majors of DRM (`/dev/dri`) and compute-accelerator (`/dev/accel`) nodes.
pub(crate) const DRM_MAJOR: u32 = 226;
/// See [`DRM_MAJOR`].
pub(crate) const ACCEL_MAJOR: u32 = 261;

/// Exercises every parser of this module on arbitrary bytes (fuzz targets and property tests).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn exercise_all(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let info = parse_fdinfo(&text);
    let _ = (
        info.client(),
        info.resident(RegionClass::Device),
        info.resident(RegionClass::System),
        info.shared(),
    );
    let _ = parse_size(&text);
    let _ = parse_sysfs_u64(&text);
    let _ = parse_pci_id(&text);
    if let Some(slot) = normalize_pci_slot(&text) {
        let _ = pci_bus(&slot);
    }
    let _ = pci_ids_lookup(&text, 0x1002, 0x744c);
    let _ = classify_fd_target(&text);
    let (vendor, device) = match data {
        [a, b, c, d, ..] => (u16::from_le_bytes([*a, *b]), u16::from_le_bytes([*c, *d])),
        _ => (0, 0),
    };
    let _ = pci_ids_lookup(&text, vendor, device);
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;

    /// amdgpu on a 6.x kernel, legacy memory keys only (amdgpu_top#87, reference/drm.md).
    const AMDGPU_6X: &str = "pos:\t0\nflags:\t02104002\nmnt_id:\t24\nino:\t614\npasid:\t32784\n\
        drm-driver:\tamdgpu\ndrm-pdev:\t0000:08:00.0\ndrm-client-id:\t217\n\
        drm-memory-vram:\t2068 KiB\ndrm-memory-gtt: \t8192 KiB\ndrm-memory-cpu:\t0 KiB\n\
        drm-engine-gfx:\t107322799 ns\n";

    /// xe discrete (kernel `xe_drm_client.c` DOC comment, trimmed).
    const XE: &str = "drm-driver:\txe\ndrm-client-id:\t3\ndrm-pdev:\t0000:03:00.0\n\
        drm-total-system:\t0\ndrm-total-gtt:\t192 KiB\ndrm-resident-gtt:\t192 KiB\n\
        drm-total-vram0:\t23992 KiB\ndrm-shared-vram0:\t16 MiB\ndrm-active-vram0:\t0\n\
        drm-resident-vram0:\t23992 KiB\ndrm-cycles-rcs:\t28257900\n\
        drm-total-cycles-rcs:\t7655183225\ndrm-engine-capacity-vcs:\t2\n\
        drm-engine-capacity-ccs:\t4\n";

    #[test]
    fn amdgpu_legacy_alias_is_the_resident_figure() {
        let info = parse_fdinfo(AMDGPU_6X);
        assert!(info.is_drm);
        assert_eq!(info.driver.as_deref(), Some("amdgpu"));
        assert_eq!(info.pdev.as_deref(), Some("00000000:08:00.0"));
        assert_eq!(info.client(), Some(ClientId::Drm(217)));
        assert_eq!(info.pasid, Some(32784));
        assert_eq!(info.resident(RegionClass::Device), Some(2068 * KIB));
        assert_eq!(info.resident(RegionClass::System), Some(8192 * KIB));
        assert_eq!(info.shared(), None);
        assert_eq!(info.engines[0].busy_ns, Some(107_322_799));
        assert_eq!(info.malformed_lines, 0);
    }

    #[test]
    fn the_deprecated_alias_is_never_added_to_the_resident_figure() {
        let text = "drm-driver: amdgpu\ndrm-client-id: 9\ndrm-pdev: 0000:03:00.0\n\
            drm-total-vram: 300 MiB\ndrm-shared-vram: 10 MiB\ndrm-resident-vram: 200 MiB\n\
            drm-purgeable-vram: 0\ndrm-resident-gtt: 4 MiB\ndrm-memory-vram: 200 MiB\n\
            drm-memory-gtt: 4 MiB\ndrm-memory-cpu: 0 KiB\namd-evicted-vram: 0 KiB\n";
        let info = parse_fdinfo(text);
        assert_eq!(info.resident(RegionClass::Device), Some(200 * MIB));
        // gtt (4 MiB) + cpu (alias only, 0): the cpu alias counts because cpu has no
        // drm-resident-cpu line.
        assert_eq!(info.resident(RegionClass::System), Some(4 * MIB));
        assert_eq!(info.shared(), Some(10 * MIB));
        let vram = &info.regions[0];
        assert_eq!(vram.total, Some(300 * MIB));
        assert_eq!(vram.purgeable, Some(0));
    }

    #[test]
    fn xe_discrete_splits_vram_and_gtt_and_keeps_engines() {
        let info = parse_fdinfo(XE);
        assert_eq!(info.driver.as_deref(), Some("xe"));
        assert_eq!(info.resident(RegionClass::Device), Some(23992 * KIB));
        assert_eq!(info.resident(RegionClass::System), Some(192 * KIB));
        assert_eq!(info.shared(), Some(16 * MIB));
        let rcs = info.engines.iter().find(|e| e.name == "rcs").unwrap();
        assert_eq!(rcs.cycles, Some(28_257_900));
        assert_eq!(rcs.total_cycles, Some(7_655_183_225));
        let ccs = info.engines.iter().find(|e| e.name == "ccs").unwrap();
        assert_eq!(ccs.capacity, Some(4));
        assert_eq!(info.malformed_lines, 0);
    }

    #[test]
    fn legacy_amdgpu_uses_kb_as_kib_and_pasid_as_the_client() {
        let text = "pos:\t0\nflags:\t02100002\nmnt_id:\t23\npdev:\t0000:0c:00.0\npasid:\t32770\n\
            vram mem:\t145620 kB\ngtt mem:\t11656 kB\ncpu mem:\t0 kB\ngfx0:\t1.5%\ndma0:\t0.0%\n";
        let info = parse_fdinfo(text);
        assert!(info.is_drm);
        assert_eq!(info.driver.as_deref(), Some("amdgpu"));
        assert_eq!(info.pdev.as_deref(), Some("00000000:0C:00.0"));
        assert_eq!(info.client(), Some(ClientId::Pasid(32770)));
        assert_eq!(info.resident(RegionClass::Device), Some(145_620 * KIB));
        assert_eq!(info.resident(RegionClass::System), Some(11_656 * KIB));
        let gfx = info.engines.iter().find(|e| e.name == "gfx0").unwrap();
        assert_eq!(gfx.legacy_percent.as_deref(), Some("1.5"));
        assert_eq!(info.malformed_lines, 0);
    }

    #[test]
    fn i915_integrated_holds_system_memory_only() {
        let text = "drm-driver:\ti915\ndrm-client-id:\t39\ndrm-pdev:\t0000:00:02.0\n\
            drm-total-system0:\t6044 KiB\ndrm-shared-system0:\t0\ndrm-active-system0:\t0\n\
            drm-resident-system0:\t6044 KiB\ndrm-purgeable-system0:\t1688 KiB\n\
            drm-total-stolen-system0:\t0\ndrm-engine-render:\t346249 ns\n\
            drm-engine-capacity-video:\t2\n";
        let info = parse_fdinfo(text);
        assert_eq!(info.resident(RegionClass::Device), None);
        assert_eq!(info.resident(RegionClass::System), Some(6044 * KIB));
        assert_eq!(info.shared(), Some(0));
        let render = info.engines.iter().find(|e| e.name == "render").unwrap();
        assert_eq!(render.busy_ns, Some(346_249));
    }

    #[test]
    fn units_are_normalised_to_bytes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("4 KiB"), Some(4096));
        assert_eq!(parse_size("4 kB"), Some(4096));
        assert_eq!(parse_size("4KiB"), Some(4096));
        assert_eq!(parse_size("3 MiB"), Some(3 * MIB));
        assert_eq!(parse_size("2 GiB"), Some(2 * 1024 * MIB));
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("4 TiB"), None);
        assert_eq!(parse_size("-4 KiB"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("18446744073709551615 KiB"), None, "overflow");
    }

    #[test]
    fn malformed_lines_are_counted_and_ignored() {
        let text = "drm-driver: amdgpu\ndrm-client-id: x\ndrm-resident-vram: 12 parsecs\n\
            no colon here\ndrm-resident-gtt: 1 KiB\ndrm-pdev: nonsense\ngfx0: abc%\n\n";
        let info = parse_fdinfo(text);
        assert_eq!(info.malformed_lines, 5);
        assert_eq!(info.client(), None);
        assert_eq!(info.resident(RegionClass::Device), None);
        assert_eq!(info.resident(RegionClass::System), Some(1024));
    }

    #[test]
    fn a_non_drm_fdinfo_is_not_a_client() {
        let info = parse_fdinfo("pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t3\n");
        assert!(!info.is_drm);
        assert_eq!(info.malformed_lines, 0);
    }

    #[test]
    fn region_classes() {
        for device in ["vram", "vram0", "vram1", "local0", "stolen-local0"] {
            assert_eq!(region_class(device), RegionClass::Device, "{device}");
        }
        for system in [
            "gtt",
            "cpu",
            "system",
            "system0",
            "stolen-system0",
            "memory",
        ] {
            assert_eq!(region_class(system), RegionClass::System, "{system}");
        }
        for other in ["gds", "gws", "oa", "doorbell", "mmioremap", "stolen"] {
            assert_eq!(region_class(other), RegionClass::Other, "{other}");
        }
    }

    #[test]
    fn pci_slots_are_normalised_to_nvml_form() {
        assert_eq!(
            normalize_pci_slot("0000:03:00.0").as_deref(),
            Some("00000000:03:00.0")
        );
        assert_eq!(
            normalize_pci_slot("00000000:0a:1f.7").as_deref(),
            Some("00000000:0A:1F.7")
        );
        assert_eq!(
            normalize_pci_slot("10000:c4:00.0").as_deref(),
            Some("00010000:C4:00.0")
        );
        assert_eq!(normalize_pci_slot("fb000000.gpu"), None);
        assert_eq!(normalize_pci_slot("0000:03:00"), None);
        assert_eq!(normalize_pci_slot("0000:03:20.0"), None);
        assert_eq!(normalize_pci_slot("0000:03:00.8"), None);
        assert_eq!(pci_bus("00000000:C4:00.0"), Some(0xc4));
    }

    #[test]
    fn sysfs_files() {
        assert_eq!(parse_sysfs_u64("17163091968\n"), Some(17_163_091_968));
        assert_eq!(parse_sysfs_u64(" 0 \n"), Some(0));
        assert_eq!(parse_sysfs_u64("0x10\n"), None);
        assert_eq!(parse_pci_id("0x1002\n"), Some(0x1002));
        assert_eq!(parse_pci_id("0x744C"), Some(0x744c));
        assert_eq!(parse_pci_id("0x10020"), None);
        assert_eq!(parse_pci_id("amd"), None);
    }

    const PCI_IDS: &str = "# comment\n#\t0001 not a device\n\
        10de  NVIDIA Corporation\n\t2204  GA102 [GeForce RTX 3090]\n\
        1002  Advanced Micro Devices, Inc. [AMD/ATI]\n\
        \t1586  Strix Halo [Radeon Graphics / Radeon 8050S / 8060S]\n\
        \t744c  Navi 31 [Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M]\n\
        \t\t1002 0e3b  Radeon RX 7900 GRE\n\
        1003  ULSI Systems\n\t0201  US201\n";

    #[test]
    fn pci_ids_names_are_found_under_their_vendor_only() {
        assert_eq!(
            pci_ids_lookup(PCI_IDS, 0x1002, 0x744c),
            Some((
                "Advanced Micro Devices, Inc. [AMD/ATI]".to_owned(),
                Some("Navi 31 [Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M]".to_owned())
            ))
        );
        assert_eq!(
            pci_ids_lookup(PCI_IDS, 0x1002, 0x0201),
            Some(("Advanced Micro Devices, Inc. [AMD/ATI]".to_owned(), None)),
            "0201 belongs to the next vendor"
        );
        assert_eq!(pci_ids_lookup(PCI_IDS, 0x8086, 0x56a0), None);
    }

    #[test]
    fn fd_targets_are_classified_without_system_calls() {
        assert_eq!(
            classify_fd_target("/dev/dri/renderD128"),
            FdTarget::Drm("renderD128")
        );
        assert_eq!(classify_fd_target("/dev/dri/card1"), FdTarget::Drm("card1"));
        assert_eq!(
            classify_fd_target("/dev/accel/accel0"),
            FdTarget::Drm("accel0")
        );
        assert_eq!(
            classify_fd_target("/var/lib/ctr/dev/dri/renderD129"),
            FdTarget::Drm("renderD129")
        );
        assert_eq!(
            classify_fd_target("/dev/dri/renderD128 (deleted)"),
            FdTarget::Drm("renderD128")
        );
        assert_eq!(classify_fd_target("/dev/dri/by-path"), FdTarget::NotDrm);
        assert_eq!(classify_fd_target("socket:[12345]"), FdTarget::NotDrm);
        assert_eq!(classify_fd_target("anon_inode:[eventfd]"), FdTarget::NotDrm);
        assert_eq!(classify_fd_target("/dev/null"), FdTarget::NotDrm);
        assert_eq!(classify_fd_target("/dev/pts/3"), FdTarget::NotDrm);
        assert_eq!(classify_fd_target("/dev/nvidia0"), FdTarget::NotDrm);
        assert_eq!(classify_fd_target("/dev/gpu-render"), FdTarget::MaybeDevice);
        assert_eq!(classify_fd_target("/home/a/model.gguf"), FdTarget::NotDrm);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn no_parser_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
                exercise_all(&data);
            }

            #[test]
            fn fdinfo_never_panics_on_drm_shaped_lines(
                lines in proptest::collection::vec(
                    (
                        prop_oneof![
                            Just("drm-driver"), Just("drm-pdev"), Just("drm-client-id"),
                            Just("drm-resident-vram"), Just("drm-memory-gtt"),
                            Just("drm-shared-vram0"), Just("drm-total-cycles-rcs"),
                            Just("drm-engine-gfx"), Just("drm-engine-capacity-vcs"),
                            Just("drm-maxfreq-rcs"), Just("vram mem"), Just("pasid"),
                            Just("gfx0"), Just("pdev"), Just("drm-"), Just("drm-total-"),
                        ],
                        "[ \t]{0,2}[0-9]{0,22}[ \t]{0,2}(KiB|MiB|GiB|kB|ns|Hz|MHz|%|x|)",
                    ),
                    0..24,
                )
            ) {
                let text: String = lines.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
                let info = parse_fdinfo(&text);
                prop_assert!(info.malformed_lines as usize <= lines.len());
                let _ = (info.resident(RegionClass::Device), info.shared());
            }

            #[test]
            fn sizes_round_trip(n in 0_u64..(1 << 40)) {
                prop_assert_eq!(parse_size(&n.to_string()), Some(n));
                prop_assert_eq!(parse_size(&format!("{n} KiB")), Some(n * 1024));
                prop_assert_eq!(parse_size(&format!("{n} kB")), Some(n * 1024));
            }

            #[test]
            fn normalised_slots_are_fixed_point(d in 0_u32..0x1_0000, b in 0_u32..256, s in 0_u32..32, f in 0_u32..8) {
                let slot = format!("{d:04x}:{b:02x}:{s:02x}.{f}");
                let once = normalize_pci_slot(&slot).unwrap();
                prop_assert_eq!(normalize_pci_slot(&once), Some(once.clone()));
                prop_assert_eq!(once.len(), 16);
            }
        }
    }
}
