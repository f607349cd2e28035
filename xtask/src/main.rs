//! cargo xtask: images, testbed, demo, tests and benchmarks.
fn main() {}
