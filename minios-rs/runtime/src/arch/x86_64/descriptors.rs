//! GDT, TSS and IDT: every one of the 256 vectors runs on an interrupt stack (IST).
//!
//! Why every vector: Rust code on this target may use the 128-byte red zone below `%rsp`
//! (precompiled libcore does). An interrupt or exception taken on the current stack would
//! overwrite it; with an IST entry the CPU always switches to a known stack first.
//! Vectors 0–31 use IST1, except #DF (8) on IST2 and NMI (2) / #MC (18) on IST3, so a fault
//! inside an exception handler still lands on a fresh stack.

use core::arch::asm;
use core::mem::size_of;
use core::ptr::addr_of;

/// Kernel code segment selector (matches the boot GDT).
pub const KERNEL_CS: u16 = 0x08;
/// Kernel data segment selector.
pub const KERNEL_DS: u16 = 0x10;
/// TSS selector.
const TSS_SEL: u16 = 0x18;
/// Bytes per interrupt stub in the boot assembly.
const STUB_SIZE: u64 = 16;
/// Size of each interrupt stack.
const IST_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack([u8; IST_SIZE]);

/// 64-bit task state segment (Intel SDM vol. 3, 8.7).
#[repr(C, packed(4))]
struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct IdtEntry {
    offset_lo: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_hi: u32,
    reserved: u32,
}

#[repr(C, packed(2))]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

static mut IST_STACKS: [Stack; 3] = [const { Stack([0; IST_SIZE]) }; 3];
static mut TSS: Tss = Tss {
    reserved0: 0,
    rsp: [0; 3],
    reserved1: 0,
    ist: [0; 7],
    reserved2: 0,
    reserved3: 0,
    iomap_base: size_of::<Tss>() as u16,
};
static mut GDT: [u64; 5] = [
    0,
    0x00af_9b00_0000_ffff, // 0x08: 64-bit code
    0x00cf_9300_0000_ffff, // 0x10: data
    0,                     // 0x18: TSS (low), filled in at runtime
    0,                     // 0x20: TSS (high)
];
static mut IDT: [IdtEntry; 256] = [const {
    IdtEntry {
        offset_lo: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_hi: 0,
        reserved: 0,
    }
}; 256];

/// The IST slot (1-based) a vector runs on.
fn ist_for(vector: usize) -> u8 {
    match vector {
        8 => 2,
        2 | 18 => 3,
        _ => 1,
    }
}

/// Loads our GDT (with a TSS holding the interrupt stacks) and an IDT whose 256 entries point
/// at the boot assembly's stubs (`stubs` = address of stub 0), all on IST stacks.
///
/// # Safety
/// Call once, early, with interrupts disabled, from the boot path; `stubs` must be the
/// address of the stub table emitted by the boot assembly.
pub unsafe fn init(stubs: u64) {
    // SAFETY: single-threaded early boot with interrupts off: nothing else touches these
    // statics, and they live for the whole run as the CPU requires.
    unsafe {
        let stacks = &raw mut IST_STACKS;
        let tss = &raw mut TSS;
        for i in 0..3 {
            let top = (&raw mut (*stacks)[i]) as u64 + IST_SIZE as u64;
            (*tss).ist[i] = top;
        }
        let base = tss as u64;
        let limit = (size_of::<Tss>() - 1) as u64;
        let gdt = &raw mut GDT;
        (*gdt)[3] = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (0x89 << 40) // present, 64-bit available TSS
            | (((limit >> 16) & 0xf) << 48)
            | (((base >> 24) & 0xff) << 56);
        (*gdt)[4] = base >> 32;

        let idt = &raw mut IDT;
        for v in 0..256 {
            let handler = stubs + v as u64 * STUB_SIZE;
            (*idt)[v] = IdtEntry {
                offset_lo: handler as u16,
                selector: KERNEL_CS,
                ist: ist_for(v),
                type_attr: 0x8e, // present, DPL 0, 64-bit interrupt gate (clears IF)
                offset_mid: (handler >> 16) as u16,
                offset_hi: (handler >> 32) as u32,
                reserved: 0,
            };
        }

        let gdtr = DescriptorPointer {
            limit: (size_of::<[u64; 5]>() - 1) as u16,
            base: gdt as u64,
        };
        let idtr = DescriptorPointer {
            limit: (size_of::<[IdtEntry; 256]>() - 1) as u16,
            base: idt as u64,
        };
        asm!(
            "lgdt [{gdtr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {ds:e}",
            "mov es, {ds:e}",
            "mov ss, {ds:e}",
            "ltr {tss:x}",
            "lidt [{idtr}]",
            gdtr = in(reg) addr_of!(gdtr),
            idtr = in(reg) addr_of!(idtr),
            cs = in(reg) u64::from(KERNEL_CS),
            ds = in(reg) u32::from(KERNEL_DS),
            tss = in(reg) TSS_SEL,
            tmp = out(reg) _,
        );
    }
}
