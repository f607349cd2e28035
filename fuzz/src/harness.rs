//! The backends' host-test harnesses, shared with their crates' tests rather than copied:
//! a driver domain on `minios::host` and frontends played by hand.

/// blkback's harness (`blkback/tests/common`): `Env` (the driver domain), `Front`.
#[path = "../../blkback/tests/common/mod.rs"]
pub mod blk;

/// netback's harness (`netback/tests/common`): `Harness` (the driver domain), `TestFront`.
#[path = "../../netback/tests/common/mod.rs"]
pub mod net;

/// usbback's harness (`usbback/tests/common`): `Env` (the driver domain and the fake USB
/// bus), `Front` (a xen-hcd).
#[path = "../../usbback/tests/common/mod.rs"]
#[allow(clippy::new_without_default)]
pub mod usb;

/// audioback's harness (`audioback/tests/common`): `Env` (the driver domain, the mixer and a
/// recording card), `Front` (an snd_xen_front), `Player`.
#[path = "../../audioback/tests/common/mod.rs"]
#[allow(clippy::new_without_default)]
pub mod snd;
