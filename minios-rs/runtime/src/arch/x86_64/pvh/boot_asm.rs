//! The PVH entry point: Xen ELF note, 32-bit protected-mode entry, identity page tables,
//! switch to long mode, the boot stack and the 256 interrupt stubs.
//!
//! This assembly is emitted into the *image* crate by [`crate::entry!`] rather than compiled
//! into this library, so host test binaries (position independent, hosted) never see its
//! 32-bit absolute relocations.
//!
//! Entry state (PVH ABI, `xen/include/public/arch-x86/hvm/start_info.h`): 32-bit protected
//! mode, paging off, flat CS/DS, `%ebx` = physical address of `hvm_start_info`.
//! What the code does, in order:
//! 1. zero `.bss` (page tables and stacks live there);
//! 2. build page tables identity-mapping the low 4 GiB with 2 MiB pages (PML4 → one PDPT →
//!    four page directories), writable and executable;
//! 3. CR4.PAE|OSFXSR|OSXMMEXCPT, CR3, EFER.LME, CR0.PG|MP|PE with EM/TS clear;
//! 4. far jump to 64-bit code, load data segments and the boot stack, `fninit`;
//! 5. call the Rust entry with (start_info physical address, address of the interrupt stubs).
//!
//! The boot stack (128 KiB) sits right above a 4 KiB guard page that the Rust side unmaps
//! (`paging::unmap_guard_page`), so an overflow faults instead of corrupting `.bss`.
//!
//! Interrupt stubs: 256 stubs of 16 bytes each at `minios_rt_idt_stubs + 16 * vector`. Each
//! pushes a dummy error code where the CPU pushes none, then the vector number, and jumps to
//! a common path. Exceptions (vectors 0–31) save all registers and `fxsave` the SSE state,
//! then call the Rust trap handler with a pointer to the frame. Interrupts stay disabled and no
//! upcall vector is configured, so vectors ≥ 32 should never arrive; if one does, the stub
//! clears IF in the interrupted context's saved RFLAGS and returns (no Rust code runs in
//! interrupt context).

/// Emits the PVH boot assembly; `$start` is `extern "C" fn(u64, u64) -> !`, `$trap` is
/// `extern "C" fn(*mut TrapFrame)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __minios_rt_pvh_boot_asm {
    ($start:path, $trap:path) => {
        ::core::arch::global_asm!(
            r#"
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4                 /* namesz: "Xen\0" */
    .long 8                 /* descsz */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .quad minios_rt_pvh_start32
    .balign 4
    .popsection

    .pushsection .data.minios_rt_boot_gdt, "aw"
    .balign 16
minios_rt_boot_gdt:
    .quad 0
    .quad 0x00af9b000000ffff    /* 0x08: 64-bit code, accessed */
    .quad 0x00cf93000000ffff    /* 0x10: flat data, accessed */
minios_rt_boot_gdt_end:
    .balign 8
minios_rt_boot_gdtr:
    .word minios_rt_boot_gdt_end - minios_rt_boot_gdt - 1
    .long minios_rt_boot_gdt
    .long 0
    .popsection

    .pushsection .bss.minios_rt_boot, "aw", @nobits
    .balign 4096
minios_rt_boot_pml4:
    .skip 4096
minios_rt_boot_pdpt:
    .skip 4096
minios_rt_boot_pd:
    .skip 4 * 4096
    .balign 4096
    .globl minios_rt_boot_stack_guard
minios_rt_boot_stack_guard:             /* unmapped at boot: catches stack overflow */
    .skip 4096
minios_rt_boot_stack:
    .skip 131072
minios_rt_boot_stack_top:
    .popsection

    .pushsection .text.minios_rt_boot, "ax"
    .code32
    .globl minios_rt_pvh_start32
    .type minios_rt_pvh_start32, @function
minios_rt_pvh_start32:
    cli
    cld
    mov %ebx, %esi                      /* hvm_start_info, kept in %esi */

    mov $__bss_start, %edi              /* 1. zero .bss */
    mov $__bss_end, %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb

    mov $minios_rt_boot_pd, %edi        /* 2. 2048 PD entries: 4 GiB in 2 MiB pages */
    mov $0x83, %eax                     /* present | writable | page size */
    xor %edx, %edx
    mov $2048, %ecx
1:  mov %eax, (%edi)
    mov %edx, 4(%edi)
    add $0x200000, %eax
    adc $0, %edx
    add $8, %edi
    loop 1b
    mov $minios_rt_boot_pd + 3, %eax    /* four PDPT entries */
    mov %eax, minios_rt_boot_pdpt
    add $0x1000, %eax
    mov %eax, minios_rt_boot_pdpt + 8
    add $0x1000, %eax
    mov %eax, minios_rt_boot_pdpt + 16
    add $0x1000, %eax
    mov %eax, minios_rt_boot_pdpt + 24
    mov $minios_rt_boot_pdpt + 3, %eax  /* one PML4 entry */
    mov %eax, minios_rt_boot_pml4

    mov %cr4, %eax                      /* 3. PAE | OSFXSR | OSXMMEXCPT */
    or $0x620, %eax
    mov %eax, %cr4
    mov $minios_rt_boot_pml4, %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx               /* EFER.LME */
    rdmsr
    or $0x100, %eax
    wrmsr
    lgdt minios_rt_boot_gdtr
    mov %cr0, %eax
    and $~0xc, %eax                     /* clear EM and TS */
    or $0x80000003, %eax                /* PG | MP | PE */
    mov %eax, %cr0
    ljmp $0x08, $minios_rt_pvh_start64  /* 4. */

    .code64
minios_rt_pvh_start64:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    lea minios_rt_boot_stack_top(%rip), %rsp
    fninit
    xor %ebp, %ebp
    mov %esi, %edi                      /* 5. start_info (zero-extended) */
    lea minios_rt_idt_stubs(%rip), %rsi
    call {start}
2:  cli
    hlt
    jmp 2b

    .balign 16
minios_rt_idt_common:
    cmpq $32, (%rsp)
    jae 3f
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi                      /* &TrapFrame */
    mov %rsp, %rbx
    and $-16, %rsp
    sub $512, %rsp
    fxsave64 (%rsp)
    call {trap}
    fxrstor64 (%rsp)
    mov %rbx, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp
    iretq
3:  andq $~0x200, 32(%rsp)              /* spurious interrupt: resume with IF clear */
    add $16, %rsp
    iretq

    /* 256 stubs of exactly 16 bytes, hand-encoded so no instruction is relaxed:
       push $0 (or a 2-byte nop where the CPU pushes an error code), push $vector (imm32),
       jmp rel32, 4 bytes of int3 padding. */
    .balign 16
    .globl minios_rt_idt_stubs
minios_rt_idt_stubs:
    .set minios_rt_vec, 0
    .rept 256
    .if (minios_rt_vec == 8) || ((minios_rt_vec >= 10) && (minios_rt_vec <= 14)) || (minios_rt_vec == 17) || (minios_rt_vec == 21) || (minios_rt_vec == 29) || (minios_rt_vec == 30)
    .byte 0x66, 0x90
    .else
    .byte 0x6a, 0x00
    .endif
    .byte 0x68
    .long minios_rt_vec
    .byte 0xe9
    .long minios_rt_idt_common - . - 4
    .byte 0xcc, 0xcc, 0xcc, 0xcc
    .set minios_rt_vec, minios_rt_vec + 1
    .endr
    .popsection
"#,
            start = sym $start,
            trap = sym $trap,
            options(att_syntax)
        );
    };
}
