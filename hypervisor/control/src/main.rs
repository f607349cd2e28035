//! xddctl: the dom0 control plane of xdd (driver domains first, guests after).

fn main() {
    eprintln!("xddctl: not implemented yet");
    std::process::exit(2);
}
