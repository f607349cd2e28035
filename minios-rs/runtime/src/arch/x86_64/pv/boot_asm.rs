//! The PV entry point: the ELF notes Xen's PV domain builder reads, the hypercall page it
//! fills, the 64-bit entry and the exception stubs of the virtual trap table.
//!
//! Like the PVH assembly this is emitted into the image by [`crate::entry!`], so one image
//! boots either way (xl.cfg `type="pvh"` or `type="pv"`). Notes: `GUEST_OS`, `LOADER`
//! "generic" and `XEN_VERSION` "xen-3.0" (the builder refuses images without them),
//! `VIRT_BASE` 0 and `PADDR_OFFSET` 0 (virtual = pseudo-physical: the image is linked at
//! 1 MiB and lands in pseudo-physical frame 256), `ENTRY`, `HYPERCALL_PAGE`.
//!
//! Entry state (`xen.h`, "start of day"): 64-bit mode, ring 3 as a PV kernel, events
//! masked, `%rsi` = virtual address of `start_info`, `%rsp` = the builder's one-page stack.
//! The code moves to the runtime's boot stack (the one the PVH entry uses, `.bss` is already
//! zeroed by the ELF loader) and calls the Rust entry with (start_info, hypercall page,
//! trap stubs).
//!
//! Trap stubs: Xen enters a PV exception handler with `%rcx` and `%r11` pushed on top of the
//! hardware frame. Each 32-byte stub reloads them, drops the two words and jumps to the PVH
//! interrupt stub of the same vector, so the common path and the Rust handler are shared.

/// Emits the PV boot assembly; `$start` is `extern "C" fn(u64, u64, u64) -> !`.
#[doc(hidden)]
#[macro_export]
macro_rules! __minios_rt_pv_boot_asm {
    ($start:path) => {
        ::core::arch::global_asm!(
            r#"
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4, 2f - 1f, 6             /* XEN_ELFNOTE_GUEST_OS */
    .asciz "Xen"
1:  .asciz "minios-rt"
2:  .balign 4
    .long 4, 2f - 1f, 5             /* XEN_ELFNOTE_XEN_VERSION */
    .asciz "Xen"
1:  .asciz "xen-3.0"
2:  .balign 4
    .long 4, 2f - 1f, 8             /* XEN_ELFNOTE_LOADER */
    .asciz "Xen"
1:  .asciz "generic"
2:  .balign 4
    .long 4, 8, 3                   /* XEN_ELFNOTE_VIRT_BASE */
    .asciz "Xen"
    .quad 0
    .long 4, 8, 4                   /* XEN_ELFNOTE_PADDR_OFFSET */
    .asciz "Xen"
    .quad 0
    .long 4, 8, 1                   /* XEN_ELFNOTE_ENTRY */
    .asciz "Xen"
    .quad minios_rt_pv_start
    .long 4, 8, 2                   /* XEN_ELFNOTE_HYPERCALL_PAGE */
    .asciz "Xen"
    .quad minios_rt_pv_hypercall_page
    .popsection

    .pushsection .text.minios_rt_pv, "ax"
    .balign 4096
    .globl minios_rt_pv_hypercall_page
minios_rt_pv_hypercall_page:
    .fill 4096, 1, 0xcc

    .globl minios_rt_pv_start
    .type minios_rt_pv_start, @function
minios_rt_pv_start:
    cld
    lea minios_rt_boot_stack_top(%rip), %rsp
    xor %ebp, %ebp
    mov %rsi, %rdi                  /* start_info */
    lea minios_rt_pv_hypercall_page(%rip), %rsi
    lea minios_rt_pv_trap_stubs(%rip), %rdx
    call {start}
3:  jmp 3b

    .balign 32
minios_rt_pv_trap_stubs:
    .set minios_rt_pv_vec, 0
    .rept 32
    .balign 32
    mov (%rsp), %rcx
    mov 8(%rsp), %r11
    add $16, %rsp
    jmp minios_rt_idt_stubs + 16 * minios_rt_pv_vec
    .set minios_rt_pv_vec, minios_rt_pv_vec + 1
    .endr
    .popsection
"#,
            start = sym $start,
            options(att_syntax)
        );
    };
}
