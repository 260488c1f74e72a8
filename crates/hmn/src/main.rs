//! hmn. (Being written.)
fn main() {}
