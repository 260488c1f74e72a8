//! Test helpers. (Being written.)
