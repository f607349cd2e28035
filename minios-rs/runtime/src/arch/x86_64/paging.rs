//! Small changes to the boot page tables (which identity-map 4 GiB with 2 MiB pages).

use core::arch::asm;

#[repr(C, align(4096))]
struct PageTable([u64; 512]);

/// The 4 KiB page table that replaces the 2 MiB mapping around the stack guard page.
static mut GUARD_TABLE: PageTable = PageTable([0; 512]);

const PRESENT: u64 = 1;
const WRITABLE: u64 = 1 << 1;
const HUGE: u64 = 1 << 7;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Unmaps the 4 KiB page at `guard` (page aligned, below 4 GiB) by splitting its 2 MiB
/// mapping into 4 KiB pages, so that touching it (a stack overflow) page-faults.
///
/// # Safety
/// Once, at boot, with the boot page tables loaded; nothing may use the guard page.
pub unsafe fn unmap_guard_page(guard: u64) {
    let cr3: u64;
    // SAFETY: reading CR3 has no side effects (ring 0).
    unsafe { asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack)) };
    let pml4 = (cr3 & ADDR_MASK) as *const u64;
    // SAFETY: the boot page tables are identity-mapped statics laid out as the boot
    // assembly built them (PML4 → PDPT → 4 PDs of 2 MiB pages); `guard` < 4 GiB.
    unsafe {
        let pdpt = (*pml4 & ADDR_MASK) as *const u64;
        let pd = (*pdpt.add((guard >> 30) as usize & 511) & ADDR_MASK) as *mut u64;
        let pde = pd.add((guard >> 21) as usize & 511);
        if *pde & HUGE == 0 {
            return; // already split
        }
        let base = *pde & ADDR_MASK & !0x1f_ffff;
        let table = &raw mut GUARD_TABLE;
        for (i, e) in (*table).0.iter_mut().enumerate() {
            *e = (base + i as u64 * 4096) | PRESENT | WRITABLE;
        }
        (*table).0[(guard >> 12) as usize & 511] = 0;
        *pde = (table as u64) | PRESENT | WRITABLE;
        asm!("mov cr3, {}", in(reg) cr3, options(nostack));
    }
}
