//! x86_64: CPU primitives shared by every x86 platform, and the PVH platform.

pub mod cpu;
pub mod descriptors;
pub mod early_console;
pub mod hypercall;
pub mod mem_asm;
pub mod paging;
pub mod pvh;
pub mod trap;
