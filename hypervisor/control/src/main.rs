//! dom0 control plane: starts driver domains before the guests that need them.
fn main() {}
