//! x86_64: CPU primitives shared by every x86 platform, the PVH and PV platforms, and the
//! dispatch between them.

pub mod cpu;
pub mod descriptors;
pub mod early_console;
pub mod hypercall;
pub mod mem_asm;
pub mod paging;
pub mod platform;
pub mod pv;
pub mod pvh;
pub mod trap;
