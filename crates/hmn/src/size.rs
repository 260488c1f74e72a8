//! Sizes as people read them: `512 MiB` below 1 GiB, `1.5 GiB` above, always binary (as GPU
//! memory is sold and as `nvidia-smi` counts). Sizes as people type them are parsed in
//! [`crate::values`].

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// `12 B`, `4 KiB`, `512 MiB`, `1.5 GiB`.
pub fn format_size(bytes: u64) -> String {
    if bytes < KIB {
        format!("{bytes} B")
    } else if bytes < MIB {
        format!("{} KiB", bytes / KIB)
    } else if bytes < GIB {
        format!("{} MiB", bytes / MIB)
    } else {
        // One decimal, rounded half up, from integers.
        let tenths = (u128::from(bytes) * 10 + u128::from(GIB) / 2) / u128::from(GIB);
        format!("{}.{} GiB", tenths / 10, tenths % 10)
    }
}

/// `format_size` for a known figure, `n/a` for an unknown one.
pub fn format_optional(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "n/a".to_owned(), format_size)
}

/// Whole MiB, as `nvidia-smi` prints them.
pub fn mib(bytes: u64) -> u64 {
    bytes / MIB
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_in_the_largest_sensible_binary_unit() {
        assert_eq!(format_size(12), "12 B");
        assert_eq!(format_size(4096), "4 KiB");
        assert_eq!(format_size(512 << 20), "512 MiB");
        assert_eq!(format_size(1_610_612_736), "1.5 GiB");
        assert_eq!(format_size(80 << 30), "80.0 GiB");
        assert_eq!(format_optional(None), "n/a");
    }
}
