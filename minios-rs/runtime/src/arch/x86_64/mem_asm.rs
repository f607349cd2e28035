//! `memcpy`, `memmove`, `memset`, `memcmp`, `bcmp` and `strlen` for freestanding images.
//!
//! Written in assembly (`rep movsq`/`movsb`, `stosq`/`stosb`, `cmpsb`) so LLVM cannot turn
//! their loops back into calls to themselves. Copies and fills move 8 bytes per iteration and
//! finish the tail bytewise: under QEMU's software emulation every `rep` iteration costs the
//! same, so quadwords are several times faster there, and no slower on hardware. Emitted into the image crate by [`crate::entry!`]: a hosted test
//! binary must keep using its libc's versions.

/// Emits the memory and string functions the compiler's generated code calls.
#[doc(hidden)]
#[macro_export]
macro_rules! __minios_rt_mem_asm {
    () => {
        ::core::arch::global_asm!(
            r#"
    .pushsection .text.minios_rt_mem, "ax"

    .globl memcpy
    .type memcpy, @function
memcpy:
    mov %rdi, %rax
    mov %rdx, %rcx
    shr $3, %rcx
    rep movsq
    mov %rdx, %rcx
    and $7, %rcx
    rep movsb
    ret

    .globl memmove
    .type memmove, @function
memmove:
    mov %rdi, %rax
    mov %rdx, %rcx
    cmp %rsi, %rdi
    jbe 1f                          /* dst <= src: a forward copy is safe */
    lea -1(%rsi, %rcx), %rsi
    lea -1(%rdi, %rcx), %rdi
    std
    rep movsb
    cld
    ret
1:  shr $3, %rcx
    rep movsq
    mov %rdx, %rcx
    and $7, %rcx
    rep movsb
    ret

    .globl memset
    .type memset, @function
memset:
    mov %rdi, %r9
    movzbl %sil, %eax
    movabs $0x0101010101010101, %r8
    imul %r8, %rax
    mov %rdx, %rcx
    shr $3, %rcx
    rep stosq
    mov %rdx, %rcx
    and $7, %rcx
    rep stosb
    mov %r9, %rax
    ret

    .globl memcmp
    .type memcmp, @function
    .globl bcmp
    .type bcmp, @function
memcmp:
bcmp:
    xor %eax, %eax
    mov %rdx, %rcx
    test %rcx, %rcx
    jz 2f
    repe cmpsb
    je 2f
    movzbl -1(%rdi), %eax
    movzbl -1(%rsi), %ecx
    sub %ecx, %eax
2:  ret

    .globl strlen
    .type strlen, @function
strlen:
    mov %rdi, %rax
3:  cmpb $0, (%rax)
    je 4f
    inc %rax
    jmp 3b
4:  sub %rdi, %rax
    ret

    .popsection
"#,
            options(att_syntax)
        );
    };
}
