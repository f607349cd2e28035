//! Hypercall numbers, their sub-operations and argument structs (`xen.h` and the per-op
//! headers), plus domain ids, virtual IRQs and Xen's errno values.
//!
//! The runtime issues the hypercalls; pointer arguments inside the structs are guest handles,
//! 64-bit guest addresses on x86_64, and appear here as `u64`.

pub mod console_io;
pub mod errno;
pub mod event_channel;
pub mod grant_table;
pub mod hvm;
pub mod memory;
pub mod physdev;
pub mod pv;
pub mod sched;
pub mod vcpu;
pub mod version;

use crate::DomId;

/// `__HYPERVISOR_set_trap_table`.
pub const HYPERVISOR_SET_TRAP_TABLE: u32 = 0;
/// `__HYPERVISOR_mmu_update`.
pub const HYPERVISOR_MMU_UPDATE: u32 = 1;
/// `__HYPERVISOR_set_gdt`.
pub const HYPERVISOR_SET_GDT: u32 = 2;
/// `__HYPERVISOR_stack_switch`.
pub const HYPERVISOR_STACK_SWITCH: u32 = 3;
/// `__HYPERVISOR_set_callbacks`.
pub const HYPERVISOR_SET_CALLBACKS: u32 = 4;
/// `__HYPERVISOR_fpu_taskswitch`.
pub const HYPERVISOR_FPU_TASKSWITCH: u32 = 5;
/// `__HYPERVISOR_sched_op_compat` (superseded by [`HYPERVISOR_SCHED_OP`]).
pub const HYPERVISOR_SCHED_OP_COMPAT: u32 = 6;
/// `__HYPERVISOR_platform_op`.
pub const HYPERVISOR_PLATFORM_OP: u32 = 7;
/// `__HYPERVISOR_set_debugreg`.
pub const HYPERVISOR_SET_DEBUGREG: u32 = 8;
/// `__HYPERVISOR_get_debugreg`.
pub const HYPERVISOR_GET_DEBUGREG: u32 = 9;
/// `__HYPERVISOR_update_descriptor`.
pub const HYPERVISOR_UPDATE_DESCRIPTOR: u32 = 10;
/// `__HYPERVISOR_memory_op`: see [`memory`].
pub const HYPERVISOR_MEMORY_OP: u32 = 12;
/// `__HYPERVISOR_multicall`.
pub const HYPERVISOR_MULTICALL: u32 = 13;
/// `__HYPERVISOR_update_va_mapping`.
pub const HYPERVISOR_UPDATE_VA_MAPPING: u32 = 14;
/// `__HYPERVISOR_set_timer_op`.
pub const HYPERVISOR_SET_TIMER_OP: u32 = 15;
/// `__HYPERVISOR_event_channel_op_compat` (superseded by [`HYPERVISOR_EVENT_CHANNEL_OP`]).
pub const HYPERVISOR_EVENT_CHANNEL_OP_COMPAT: u32 = 16;
/// `__HYPERVISOR_xen_version`: see [`version`].
pub const HYPERVISOR_XEN_VERSION: u32 = 17;
/// `__HYPERVISOR_console_io`: see [`console_io`].
pub const HYPERVISOR_CONSOLE_IO: u32 = 18;
/// `__HYPERVISOR_physdev_op_compat` (superseded by [`HYPERVISOR_PHYSDEV_OP`]).
pub const HYPERVISOR_PHYSDEV_OP_COMPAT: u32 = 19;
/// `__HYPERVISOR_grant_table_op`: see [`grant_table`].
pub const HYPERVISOR_GRANT_TABLE_OP: u32 = 20;
/// `__HYPERVISOR_vm_assist`.
pub const HYPERVISOR_VM_ASSIST: u32 = 21;
/// `__HYPERVISOR_update_va_mapping_otherdomain`.
pub const HYPERVISOR_UPDATE_VA_MAPPING_OTHERDOMAIN: u32 = 22;
/// `__HYPERVISOR_iret` (x86 PV only).
pub const HYPERVISOR_IRET: u32 = 23;
/// `__HYPERVISOR_vcpu_op`: see [`vcpu`].
pub const HYPERVISOR_VCPU_OP: u32 = 24;
/// `__HYPERVISOR_set_segment_base` (x86_64 PV only).
pub const HYPERVISOR_SET_SEGMENT_BASE: u32 = 25;
/// `__HYPERVISOR_mmuext_op`.
pub const HYPERVISOR_MMUEXT_OP: u32 = 26;
/// `__HYPERVISOR_xsm_op`.
pub const HYPERVISOR_XSM_OP: u32 = 27;
/// `__HYPERVISOR_nmi_op`.
pub const HYPERVISOR_NMI_OP: u32 = 28;
/// `__HYPERVISOR_sched_op`: see [`sched`].
pub const HYPERVISOR_SCHED_OP: u32 = 29;
/// `__HYPERVISOR_callback_op`.
pub const HYPERVISOR_CALLBACK_OP: u32 = 30;
/// `__HYPERVISOR_xenoprof_op`.
pub const HYPERVISOR_XENOPROF_OP: u32 = 31;
/// `__HYPERVISOR_event_channel_op`: see [`event_channel`].
pub const HYPERVISOR_EVENT_CHANNEL_OP: u32 = 32;
/// `__HYPERVISOR_physdev_op`.
pub const HYPERVISOR_PHYSDEV_OP: u32 = 33;
/// `__HYPERVISOR_hvm_op`: see [`hvm`].
pub const HYPERVISOR_HVM_OP: u32 = 34;
/// `__HYPERVISOR_sysctl`.
pub const HYPERVISOR_SYSCTL: u32 = 35;
/// `__HYPERVISOR_domctl`.
pub const HYPERVISOR_DOMCTL: u32 = 36;
/// `__HYPERVISOR_kexec_op`.
pub const HYPERVISOR_KEXEC_OP: u32 = 37;
/// `__HYPERVISOR_tmem_op`.
pub const HYPERVISOR_TMEM_OP: u32 = 38;
/// `__HYPERVISOR_argo_op`.
pub const HYPERVISOR_ARGO_OP: u32 = 39;
/// `__HYPERVISOR_xenpmu_op`.
pub const HYPERVISOR_XENPMU_OP: u32 = 40;
/// `__HYPERVISOR_dm_op`.
pub const HYPERVISOR_DM_OP: u32 = 41;
/// `__HYPERVISOR_hypfs_op`.
pub const HYPERVISOR_HYPFS_OP: u32 = 42;

/// Size in bytes of one hypercall-page stub: hypercall `n` is called at `page + n * 32`.
pub const HYPERCALL_STUB_SIZE: usize = 32;

/// First domain id reserved for special purposes (`DOMID_FIRST_RESERVED`).
pub const DOMID_FIRST_RESERVED: DomId = 0x7ff0;
/// The calling domain (`DOMID_SELF`).
pub const DOMID_SELF: DomId = 0x7ff0;
/// Owner of I/O memory mappings (`DOMID_IO`).
pub const DOMID_IO: DomId = 0x7ff1;
/// Xen itself (`DOMID_XEN`).
pub const DOMID_XEN: DomId = 0x7ff2;
/// Owner of sharable pages (`DOMID_COW`).
pub const DOMID_COW: DomId = 0x7ff3;
/// An unknown or invalid owner (`DOMID_INVALID`).
pub const DOMID_INVALID: DomId = 0x7ff4;
/// The idle domain (`DOMID_IDLE`).
pub const DOMID_IDLE: DomId = 0x7fff;
/// Mask of valid domain id bits (`DOMID_MASK`).
pub const DOMID_MASK: DomId = 0x7fff;

/// Whether `domid` names an ordinary domain (below [`DOMID_FIRST_RESERVED`]).
pub const fn is_ordinary_domid(domid: DomId) -> bool {
    domid < DOMID_FIRST_RESERVED
}

/// Per-vCPU timer: timebase update or requested timeout (`VIRQ_TIMER`).
pub const VIRQ_TIMER: u32 = 0;
/// Per-vCPU request to dump debug info (`VIRQ_DEBUG`).
pub const VIRQ_DEBUG: u32 = 1;
/// Global (dom0): bytes received on the emergency console (`VIRQ_CONSOLE`).
pub const VIRQ_CONSOLE: u32 = 2;
/// Global (dom0): exceptional event for some domain (`VIRQ_DOM_EXC`).
pub const VIRQ_DOM_EXC: u32 = 3;
/// Global (dom0): trace buffer has records (`VIRQ_TBUF`).
pub const VIRQ_TBUF: u32 = 4;
/// Global (dom0): a domain paused for debugging (`VIRQ_DEBUGGER`).
pub const VIRQ_DEBUGGER: u32 = 6;
/// Per-vCPU: new Xenoprof sample (`VIRQ_XENOPROF`).
pub const VIRQ_XENOPROF: u32 = 7;
/// Global (dom0): bytes received on the console ring (`VIRQ_CON_RING`).
pub const VIRQ_CON_RING: u32 = 8;
/// Global (dom0): physical CPU state changed (`VIRQ_PCPU_STATE`).
pub const VIRQ_PCPU_STATE: u32 = 9;
/// Global (dom0): a memory event occurred (`VIRQ_MEM_EVENT`).
pub const VIRQ_MEM_EVENT: u32 = 10;
/// Global: Argo message notification (`VIRQ_ARGO`).
pub const VIRQ_ARGO: u32 = 11;
/// Global (dom0): Xen is low on heap memory (`VIRQ_ENOMEM`).
pub const VIRQ_ENOMEM: u32 = 12;
/// Per-vCPU: PMC interrupt (`VIRQ_XENPMU`).
pub const VIRQ_XENPMU: u32 = 13;
/// First architecture-specific virtual IRQ (`VIRQ_ARCH_0`); they run to `VIRQ_ARCH_7` = 23.
pub const VIRQ_ARCH_0: u32 = 16;
/// Number of virtual IRQs (`NR_VIRQS`).
pub const NR_VIRQS: u32 = 24;

/// `struct multicall_entry` (x86_64): one hypercall of a [`HYPERVISOR_MULTICALL`] batch. Xen
/// runs the entries in order and stores each one's return value in `result`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MulticallEntry {
    /// IN: the hypercall number (`HYPERVISOR_*`).
    pub op: u64,
    /// OUT: the hypercall's return value (`-errno` on failure).
    pub result: u64,
    /// IN: its arguments.
    pub args: [u64; 6],
}
