//! Pure parsers for `/proc/<pid>/{statm,status,smaps_rollup}` text. (Stub: being written.)
