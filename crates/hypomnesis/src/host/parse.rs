//! Pure parsers for `/proc/meminfo`, PSI and cgroup files. (Stub: being written.)
