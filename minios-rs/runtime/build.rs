//! Publishes the PVH linker script to the image crates (`DEP_MINIOS_RT_LINKER_SCRIPT`).
//!
//! An image's own `build.rs` turns it into `cargo:rustc-link-arg-bins=-Wl,-T,<path>`; this
//! crate never emits link arguments itself, so host test binaries link normally.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = format!("{dir}/link/pvh-x86_64.ld");
    println!("cargo:rerun-if-changed=link/pvh-x86_64.ld");
    println!("cargo:linker_script={script}");
}
