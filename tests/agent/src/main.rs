//! Testbed agent: runs scenarios in dom0 and marks progress in guests.
fn main() {}
