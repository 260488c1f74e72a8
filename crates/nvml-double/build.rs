//! Gives the library the soname of NVIDIA's, so it loads as `libnvidia-ml.so.1` through
//! `LD_LIBRARY_PATH` (pynvml and most tools open that name).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // The target's OS, not the build host's (clippy runs for Windows and macOS targets too).
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnvidia-ml.so.1");
    }
}
