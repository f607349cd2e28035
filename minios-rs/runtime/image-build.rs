//! Build script of every unikernel image crate (their `build = ` points here): links the
//! binary as a freestanding PVH ELF with the runtime's linker script. Only when the image's
//! `unikernel` feature is on, and only for binaries (`rustc-link-arg-bins`), so no host build
//! (tests, build scripts, proc macros) sees the arguments.

fn main() {
    if std::env::var_os("CARGO_FEATURE_UNIKERNEL").is_none() {
        return;
    }
    let script = std::env::var("DEP_MINIOS_RT_LINKER_SCRIPT")
        .expect("minios-rt publishes its linker script (links = \"minios_rt\")");
    println!("cargo:rerun-if-changed={script}");
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--build-id=none",
        "-Wl,-z,norelro",
        "-Wl,--gc-sections",
        &format!("-Wl,-T,{script}"),
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
