//! NVML double. (Being written.)
