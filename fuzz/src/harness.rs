//! The backends' host-test harnesses, shared with their crates' tests rather than copied:
//! a driver domain on `minios::host` and frontends played by hand.

/// blkback's harness (`blkback/tests/common`): `Env` (the driver domain), `Front`.
#[path = "../../blkback/tests/common/mod.rs"]
pub mod blk;

/// netback's harness (`netback/tests/common`): `Harness` (the driver domain), `TestFront`.
#[path = "../../netback/tests/common/mod.rs"]
pub mod net;
