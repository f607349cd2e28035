//! The hello driver domain: proves the runtime on real Xen.
fn main() {}
