//! Xen PVH/PV runtime for driver-domain unikernels: boot, memory, console, events, grants and
//! the xenstore ring, implementing the [`minios`] platform traits.
//!
//! An image is a `no_std`, `no_main` binary crate that calls [`entry!`] with its main
//! function and links with the runtime's linker script (see the README). The runtime boots
//! the PVH domain, sets up memory, the console (the `log` facade), event channels, the grant
//! table and the xenstore ring, then calls `main` with a [`Runtime`] handle. Returning from
//! `main` powers the domain off; a panic crashes it (after logging the message).
//!
//! Everything that depends on how the domain was booted (PVH or PV; one image does both)
//! lives in [`arch`]; see its platform table.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod arch;
pub mod cmdline;
pub mod console;
pub mod control;
pub mod dma;
pub mod events;
pub mod grants;
pub mod hda;
pub mod irq;
pub mod mm;
pub mod mmio;
pub mod nvme;
pub mod page_ring;
pub mod pci;
pub mod platform;
pub mod selftest;
pub mod selftest_pci;
pub mod shared_info;
pub mod sync;
#[cfg(test)]
mod testutil;
pub mod time;
pub mod virtio;
pub mod xen;
pub mod xenstore;
pub mod xhci;

pub use control::Shutdown;
pub use platform::Runtime;

use minios::xenstore::{parse_uint, Store, Xenstore};

/// Everything after platform boot: start the services, learn our domain id, run `main`,
/// power off when it returns.
fn start(main: fn(Runtime)) -> ! {
    let fail = |what: &str, e: &dyn core::fmt::Debug| -> ! {
        control::fatal(format_args!("{what} failed: {e:?}"))
    };
    events::init().unwrap_or_else(|e| fail("event channel setup", &e));
    grants::init().unwrap_or_else(|e| fail("grant table setup", &e));
    xenstore::init().unwrap_or_else(|e| fail("xenstore ring setup", &e));
    let transport = xenstore::take_transport().unwrap_or_else(|| fail("xenstore transport", &()));
    let mut xs = Xenstore::new(transport);
    let domid = match xs.read("domid").map(|v| parse_uint(&v)) {
        Ok(Some(id)) if id < u64::from(xen_abi::hypercall::DOMID_FIRST_RESERVED) => {
            id as xen_abi::DomId
        }
        other => fail("reading our domid from xenstore", &other),
    };
    log::info!(
        "runtime ready: domid {domid}, {} KiB free, {} us after the clock started",
        mm::free_bytes() / 1024,
        time::now_ns() / 1000
    );
    main(Runtime::new(domid, xs));
    log::info!("main returned: powering off");
    control::shutdown(control::Shutdown::Poweroff)
}

/// Items the [`entry!`] expansion refers to. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::arch::platform::{boot, boot_pv, BootArgs, PvBootArgs};
    pub use crate::arch::x86_64::trap::trap_entry;
    pub use crate::control::panic;
    pub use crate::mm::memmap::Range;
    pub use crate::mm::Allocator;

    /// `_Unwind_Resume`: referenced by liballoc even with `panic = "abort"`, never called.
    pub fn unwind_resume() -> ! {
        crate::control::fatal(format_args!("_Unwind_Resume called"))
    }
}

/// Declares the image's entry points and everything a freestanding image needs: the PVH and
/// PV boot assembly and Xen ELF notes, `memcpy` and friends, the panic handler, the global allocator
/// and the unwinding stubs.
///
/// ```ignore
/// #![no_std]
/// #![no_main]
/// minios_rt::entry!(main);
/// fn main(rt: minios_rt::Runtime) { log::info!("hello"); }
/// ```
///
/// These items live in the image (not in this library) so host test binaries that link the
/// library never get a second panic handler or a second `memcpy`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// The loaded image (`.bss` included) and the stack guard page, from linker and
        /// boot-assembly symbols; both entry points pass them on.
        #[doc(hidden)]
        fn __minios_rt_layout() -> ($crate::__private::Range, u64) {
            extern "C" {
                static __image_start: u8;
                static __image_end: u8;
                static minios_rt_boot_stack_guard: u8;
            }
            let image = $crate::__private::Range::new(
                // SAFETY: linker-script symbols; only their addresses are taken.
                unsafe { ::core::ptr::addr_of!(__image_start) } as u64,
                // SAFETY: as above.
                unsafe { ::core::ptr::addr_of!(__image_end) } as u64,
            );
            // SAFETY: a symbol of the boot assembly; only its address is taken.
            let stack_guard = unsafe { ::core::ptr::addr_of!(minios_rt_boot_stack_guard) } as u64;
            (image, stack_guard)
        }

        #[doc(hidden)]
        extern "C" fn __minios_rt_start(start_info: u64, idt_stubs: u64) -> ! {
            let (image, stack_guard) = __minios_rt_layout();
            let args = $crate::__private::BootArgs {
                start_info,
                idt_stubs,
                image,
                stack_guard,
            };
            // SAFETY: the boot assembly calls this exactly once, on the boot stack.
            unsafe { $crate::__private::boot(args, $main) }
        }

        #[doc(hidden)]
        extern "C" fn __minios_rt_pv_start(
            start_info: u64,
            hypercall_page: u64,
            trap_stubs: u64,
        ) -> ! {
            let (image, stack_guard) = __minios_rt_layout();
            let args = $crate::__private::PvBootArgs {
                start_info,
                hypercall_page,
                trap_stubs,
                image,
                stack_guard,
            };
            // SAFETY: the PV boot assembly calls this exactly once, on the boot stack.
            unsafe { $crate::__private::boot_pv(args, $main) }
        }

        $crate::__minios_rt_pvh_boot_asm!(__minios_rt_start, $crate::__private::trap_entry);
        $crate::__minios_rt_pv_boot_asm!(__minios_rt_pv_start);
        $crate::__minios_rt_mem_asm!();

        const _: () = {
            #[panic_handler]
            fn panic(info: &::core::panic::PanicInfo<'_>) -> ! {
                $crate::__private::panic(info)
            }

            #[global_allocator]
            static ALLOCATOR: $crate::__private::Allocator = $crate::__private::Allocator;

            #[unsafe(no_mangle)]
            extern "C" fn rust_eh_personality() {}

            #[unsafe(no_mangle)]
            extern "C" fn _Unwind_Resume() -> ! {
                $crate::__private::unwind_resume()
            }
        };
    };
}
