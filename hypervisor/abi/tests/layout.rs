//! ABI layout test: every `#[repr(C)]` type and every numeric constant of `xen-abi` against
//! Xen's public headers.
//!
//! The test generates a C program that includes the headers from `/usr/include/xen`
//! (libxen-dev) and prints `sizeof`, `_Alignof`, `offsetof` and member sizes of each struct and
//! the value of each constant; it compiles that with the system `cc`, runs it, and compares
//! every line with the Rust side. A missing header directory or compiler fails the test.
//!
//! Every Rust field must be listed (a destructuring pattern without `..` enforces it), and a
//! scan of `src/` checks that every `#[repr(C)]` struct of the crate is listed here.
//!
//! The layouts are those of x86_64, the only architecture this test builds for.
#![cfg(target_arch = "x86_64")]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::mem::{align_of, offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use xen_abi::blkif::*;
use xen_abi::console::*;
use xen_abi::evtchn::*;
use xen_abi::grant::*;
use xen_abi::hypercall::event_channel::*;
use xen_abi::hypercall::grant_table::*;
use xen_abi::hypercall::hvm::*;
use xen_abi::hypercall::memory::*;
use xen_abi::hypercall::physdev::*;
use xen_abi::hypercall::pv::*;
use xen_abi::hypercall::sched::*;
use xen_abi::hypercall::vcpu::*;
use xen_abi::hypercall::version::*;
use xen_abi::hypercall::*;
use xen_abi::netif::*;
use xen_abi::pciif::*;
use xen_abi::ring::*;
use xen_abi::shared_info::*;
use xen_abi::sndif::*;
use xen_abi::start_info::*;
use xen_abi::usbif::*;
use xen_abi::xs_wire::*;
use xen_abi::{XenErrno, XEN_PAGE_SIZE};

/// Where libxen-dev installs the headers; `XEN_INCLUDE_DIR` may name another `.../xen`.
const XEN_INCLUDE: &str = "/usr/include/xen";

fn xen_include_dir() -> PathBuf {
    std::env::var_os("XEN_INCLUDE_DIR").map_or_else(|| PathBuf::from(XEN_INCLUDE), PathBuf::from)
}

const C_PRELUDE: &str = r#"
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <errno.h> /* makes xs_wire.h define xsd_errors[] */
#define __XEN_INTERFACE_VERSION__ __XEN_LATEST_INTERFACE_VERSION__
#include <xen/xen.h>
#include <xen/elfnote.h>
#include <xen/errno.h>
#include <xen/event_channel.h>
#include <xen/grant_table.h>
#include <xen/memory.h>
#include <xen/physdev.h>
#include <xen/sched.h>
#include <xen/vcpu.h>
#include <xen/version.h>
#include <xen/features.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/arch-x86/hvm/start_info.h>
#include <xen/io/ring.h>
#include <xen/io/xs_wire.h>
#include <xen/io/xenbus.h>
#include <xen/io/console.h>
#include <xen/io/netif.h>
#include <xen/io/blkif.h>
#include <xen/io/usbif.h>
#include <xen/io/sndif.h>
#include <xen/io/pciif.h>

/* XENMEM_memory_map entries: the BIOS E820 format, Xen's (private) struct e820entry. */
struct e820entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
} __attribute__((packed));

int main(void)
{
"#;

/// The checks: a key, the C expression printing its value, and the Rust value.
#[derive(Default)]
struct Checks {
    c_body: String,
    expected: BTreeMap<String, String>,
    structs: BTreeSet<&'static str>,
}

impl Checks {
    fn int(&mut self, key: String, c_expr: &str, rust: u64) {
        writeln!(
            self.c_body,
            "    printf(\"%s\\t%llu\\n\", \"{key}\", (unsigned long long)({c_expr}));"
        )
        .unwrap();
        assert!(
            self.expected
                .insert(key.clone(), rust.to_string())
                .is_none(),
            "duplicate {key}"
        );
    }

    fn string(&mut self, key: String, c_expr: &str, rust: &str) {
        writeln!(
            self.c_body,
            "    printf(\"%s\\t%s\\n\", \"{key}\", {c_expr});"
        )
        .unwrap();
        assert!(
            self.expected
                .insert(key.clone(), rust.to_string())
                .is_none(),
            "duplicate {key}"
        );
    }

    fn struct_size(
        &mut self,
        rust: &'static str,
        c_ty: &str,
        c_size: &str,
        size: usize,
        align: usize,
    ) {
        self.structs.insert(rust);
        self.int(format!("{rust}: size"), c_size, size as u64);
        self.int(
            format!("{rust}: align"),
            &format!("_Alignof({c_ty})"),
            align as u64,
        );
    }

    fn field(
        &mut self,
        rust: &str,
        c_ty: &str,
        rust_field: &str,
        c_field: &str,
        offset: usize,
        size: usize,
    ) {
        self.int(
            format!("{rust}.{rust_field}: offset"),
            &format!("offsetof({c_ty}, {c_field})"),
            offset as u64,
        );
        self.int(
            format!("{rust}.{rust_field}: size"),
            &format!("sizeof((({c_ty} *)0)->{c_field})"),
            size as u64,
        );
    }
}

/// Size of a field, from a closure reading it (works for packed structs too).
fn field_size<T, F>(_read: fn(&T) -> F) -> usize {
    size_of::<F>()
}

/// Widens a constant the way C's `(unsigned long long)` cast does (sign-extending).
fn widen(v: i128) -> u64 {
    v as u64
}

macro_rules! c_field {
    ($rf:ident) => {
        stringify!($rf)
    };
    ($rf:ident $cf:literal) => {
        $cf
    };
}

/// `st!(checks, RustType = "C type" [size "C expr"] { rust_field [= "c_field"], ... })`
macro_rules! st {
    ($c:ident, $T:ident = $cty:literal $(size $csize:literal)? { $($rf:ident $(= $cf:literal)?),* $(,)? }) => {{
        // Fails to compile if a field of the Rust struct is not listed.
        let _all_fields_listed = |v: $T| {
            let $T { $($rf: _),* } = v;
        };
        let c_size = [$($csize,)? concat!("sizeof(", $cty, ")")][0];
        $c.struct_size(stringify!($T), $cty, c_size, size_of::<$T>(), align_of::<$T>());
        $(
            $c.field(
                stringify!($T),
                $cty,
                stringify!($rf),
                c_field!($rf $($cf)?),
                offset_of!($T, $rf),
                field_size(|v: &$T| v.$rf),
            );
        )*
    }};
}

/// `k!(checks; C_NAME => rust_value, ...)`
macro_rules! k {
    ($c:ident; $($cname:ident => $v:expr),* $(,)?) => {
        $( $c.int(format!("const {}", stringify!($cname)), stringify!($cname), widen(($v) as i128)); )*
    };
}

/// `s!(checks; C_NAME => rust_str, ...)`
macro_rules! s {
    ($c:ident; $($cname:ident => $v:expr),* $(,)?) => {
        $( $c.string(format!("const {}", stringify!($cname)), stringify!($cname), $v); )*
    };
}

fn struct_checks(c: &mut Checks) {
    // hypercall::sched
    st!(c, SchedShutdown = "struct sched_shutdown" { reason });
    st!(c, SchedPoll = "struct sched_poll" { ports, nr_ports, timeout });
    st!(c, MulticallEntry = "struct multicall_entry" { op, result, args });
    // hypercall::pv
    st!(c, MmuUpdate = "struct mmu_update" { ptr, val });
    st!(c, TrapInfo = "struct trap_info" { vector, flags, cs, address });
    // hypercall::physdev
    st!(c, PhysdevEoi = "struct physdev_eoi" { irq });
    st!(c, PhysdevIrqStatusQuery = "struct physdev_irq_status_query" { irq, flags });
    // pciif
    st!(c, XenMsixEntry = "struct xen_msix_entry" { vector, entry });
    st!(c, XenPciOp = "struct xen_pci_op" {
        cmd, err, domain, bus, devfn, offset, size, value, info, msix_entries
    });
    st!(c, XenPcieAerOp = "struct xen_pcie_aer_op" { cmd, err, domain, bus, devfn });
    st!(c, XenPciSharedInfo = "struct xen_pci_sharedinfo" { flags, op, aer_op });
    // hypercall::event_channel
    st!(c, EvtchnAllocUnbound = "struct evtchn_alloc_unbound" { dom, remote_dom, port });
    st!(c, EvtchnBindInterdomain = "struct evtchn_bind_interdomain" { remote_dom, remote_port, local_port });
    st!(c, EvtchnBindVirq = "struct evtchn_bind_virq" { virq, vcpu, port });
    st!(c, EvtchnBindPirq = "struct evtchn_bind_pirq" { pirq, flags, port });
    st!(c, EvtchnBindIpi = "struct evtchn_bind_ipi" { vcpu, port });
    st!(c, EvtchnClose = "struct evtchn_close" { port });
    st!(c, EvtchnSend = "struct evtchn_send" { port });
    st!(c, EvtchnStatus = "struct evtchn_status" { dom, port, status, vcpu, u });
    st!(c, EvtchnBindVcpu = "struct evtchn_bind_vcpu" { port, vcpu });
    st!(c, EvtchnUnmask = "struct evtchn_unmask" { port });
    // hypercall::grant_table
    st!(c, GnttabMapGrantRef = "struct gnttab_map_grant_ref" {
        host_addr, flags, gref = "ref", dom, status, handle, dev_bus_addr
    });
    st!(c, GnttabUnmapGrantRef = "struct gnttab_unmap_grant_ref" { host_addr, dev_bus_addr, handle, status });
    st!(c, GnttabSetupTable = "struct gnttab_setup_table" { dom, nr_frames, status, frame_list });
    st!(c, GnttabCopyPtr = "struct gnttab_copy_ptr" { u, domid, offset });
    st!(c, GnttabCopy = "struct gnttab_copy" { source, dest, len, flags, status });
    st!(c, GnttabQuerySize = "struct gnttab_query_size" { dom, nr_frames, max_nr_frames, status });
    st!(c, GnttabSetVersion = "struct gnttab_set_version" { version });
    // hypercall::memory
    st!(c, XenMemoryReservation = "struct xen_memory_reservation" {
        extent_start, nr_extents, extent_order, mem_flags, domid
    });
    st!(c, XenMemoryExchange = "struct xen_memory_exchange" { input = "in", output = "out", nr_exchanged });
    st!(c, XenMemoryDomain = "struct xen_memory_domain" { domid });
    st!(c, XenAddToPhysmap = "struct xen_add_to_physmap" { domid, size, space, idx, gpfn });
    st!(c, XenRemoveFromPhysmap = "struct xen_remove_from_physmap" { domid, gpfn });
    st!(c, XenMemoryMap = "struct xen_memory_map" { nr_entries, buffer });
    st!(c, E820Entry = "struct e820entry" { addr, size, type_ = "type" });
    // hypercall::hvm, vcpu, version
    st!(c, XenHvmParam = "struct xen_hvm_param" { domid, pad, index, value });
    st!(c, VcpuSetPeriodicTimer = "struct vcpu_set_periodic_timer" { period_ns });
    st!(c, VcpuSetSingleshotTimer = "struct vcpu_set_singleshot_timer" { timeout_abs_ns, flags });
    st!(c, VcpuRegisterVcpuInfo = "struct vcpu_register_vcpu_info" { mfn, offset, rsvd });
    st!(c, XenFeatureInfo = "struct xen_feature_info" { submap_idx, submap });
    // shared_info
    st!(c, VcpuTimeInfo = "struct vcpu_time_info" {
        version, pad0, tsc_timestamp, system_time, tsc_to_system_mul, tsc_shift, flags, pad1
    });
    st!(c, ArchVcpuInfo = "struct arch_vcpu_info" { cr2, pad });
    st!(c, VcpuInfo = "struct vcpu_info" {
        evtchn_upcall_pending, evtchn_upcall_mask, evtchn_pending_sel, arch, time
    });
    st!(c, ArchSharedInfo = "struct arch_shared_info" {
        max_pfn, pfn_to_mfn_frame_list_list, nmi_reason, p2m_cr3, p2m_vaddr, p2m_generation
    });
    st!(c, SharedInfo = "struct shared_info" {
        vcpu_info, evtchn_pending, evtchn_mask, wc_version, wc_sec, wc_nsec, wc_sec_hi, arch
    });
    // start_info
    st!(c, HvmStartInfo = "struct hvm_start_info" {
        magic, version, flags, nr_modules, modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr,
        memmap_entries, reserved
    });
    st!(c, HvmModlistEntry = "struct hvm_modlist_entry" { paddr, size, cmdline_paddr, reserved });
    st!(c, HvmMemmapTableEntry = "struct hvm_memmap_table_entry" { addr, size, type_ = "type", reserved });
    st!(c, StartInfo = "struct start_info" {
        magic, nr_pages, shared_info, flags, store_mfn, store_evtchn, console, pt_base, nr_pt_frames,
        mfn_list, mod_start, mod_len, cmd_line, first_p2m_pfn, nr_p2m_frames
    });
    // grant
    st!(c, GrantEntryV1 = "struct grant_entry_v1" { flags, domid, frame });
    // ring: the fixed header of every sring (netif_tx's stands for all).
    st!(c, SringHeader = "struct netif_tx_sring" size "offsetof(struct netif_tx_sring, ring)" {
        req_prod, req_event, rsp_prod, rsp_event, pvt, pad = "__pad"
    });
    // xs_wire
    st!(c, XsdSockmsg = "struct xsd_sockmsg" { type_ = "type", req_id, tx_id, len });
    st!(c, XenstoreDomainInterface = "struct xenstore_domain_interface" {
        req, rsp, req_cons, req_prod, rsp_cons, rsp_prod, server_features, connection, error
    });
    // netif
    st!(c, NetifTxRequest = "struct netif_tx_request" { gref, offset, flags, id, size });
    st!(c, NetifTxResponse = "struct netif_tx_response" { id, status });
    st!(c, NetifRxRequest = "struct netif_rx_request" { id, pad, gref });
    st!(c, NetifRxResponse = "struct netif_rx_response" { id, offset, flags, status });
    st!(c, NetifExtraInfo = "struct netif_extra_info" { type_ = "type", flags, u });
    st!(c, NetifCtrlRequest = "struct xen_netif_ctrl_request" { id, type_ = "type", data });
    st!(c, NetifCtrlResponse = "struct xen_netif_ctrl_response" { id, type_ = "type", status, data });
    st!(c, NetifGref = "struct xen_netif_gref" { gref = "ref", flags, status });
    // blkif
    st!(c, BlkifRequestSegment = "struct blkif_request_segment" { gref, first_sect, last_sect });
    st!(c, BlkifRequest = "struct blkif_request" { operation, nr_segments, handle, id, sector_number, seg });
    st!(c, BlkifRequestDiscard = "struct blkif_request_discard" {
        operation, flag, handle, id, sector_number, nr_sectors
    });
    st!(c, BlkifRequestIndirect = "struct blkif_request_indirect" {
        operation, indirect_op, nr_segments, id, sector_number, handle, indirect_grefs
    });
    st!(c, BlkifResponse = "struct blkif_response" { id, operation, status });
    // usbif
    st!(c, UsbifRequestSegment = "struct usbif_request_segment" { gref, offset, length });
    st!(c, UsbifUrbRequest = "struct usbif_urb_request" {
        id, nr_buffer_segs, pipe, transfer_flags, buffer_length, u, seg
    });
    st!(c, UsbifUrbResponse = "struct usbif_urb_response" { id, start_frame, status, actual_length, error_count });
    st!(c, UsbifConnRequest = "struct usbif_conn_request" { id });
    st!(c, UsbifConnResponse = "struct usbif_conn_response" { id, portnum, speed });
    // sndif
    st!(c, XensndOpenReq = "struct xensnd_open_req" {
        pcm_rate, pcm_format, pcm_channels, reserved, buffer_sz, gref_directory, period_sz
    });
    st!(c, XensndPageDirectory = "struct xensnd_page_directory" { gref_dir_next_page, gref });
    st!(c, XensndRwReq = "struct xensnd_rw_req" { offset, length });
    st!(c, XensndTriggerReq = "struct xensnd_trigger_req" { type_ = "type" });
    st!(c, XensndRange = "__typeof__(((struct xensnd_query_hw_param *)0)->rates)" { min, max });
    st!(c, XensndQueryHwParam = "struct xensnd_query_hw_param" { formats, rates, channels, buffer, period });
    st!(c, XensndCurPosEvt = "struct xensnd_cur_pos_evt" { position });
    st!(c, XensndReq = "struct xensnd_req" { id, operation, reserved, op });
    st!(c, XensndResp = "struct xensnd_resp" { id, operation, reserved, status, resp });
    st!(c, XensndEvt = "struct xensnd_evt" { id, type_ = "type", reserved, op });
    st!(c, XensndEventPage = "struct xensnd_event_page" { in_cons, in_prod, reserved });
    // console
    st!(c, XenconsInterface = "struct xencons_interface" { in_ = "in", out, in_cons, in_prod, out_cons, out_prod });
}

fn ring_checks(c: &mut Checks) {
    let rings: [(&str, &str, usize, u32); 7] = [
        ("netif_tx", "4096", NET_TX_ENTRY_SIZE, NET_TX_RING_SIZE),
        ("netif_rx", "4096", NET_RX_ENTRY_SIZE, NET_RX_RING_SIZE),
        (
            "xen_netif_ctrl",
            "4096",
            NET_CTRL_ENTRY_SIZE,
            NET_CTRL_RING_SIZE,
        ),
        ("blkif", "4096", BLKIF_ENTRY_SIZE, BLKIF_RING_SIZE),
        (
            "usbif_urb",
            "USBIF_RING_SIZE",
            USB_URB_ENTRY_SIZE,
            USB_URB_RING_SIZE,
        ),
        (
            "usbif_conn",
            "USBIF_RING_SIZE",
            USB_CONN_ENTRY_SIZE,
            USB_CONN_RING_SIZE,
        ),
        ("xen_sndif", "4096", XENSND_ENTRY_SIZE, XENSND_RING_SIZE),
    ];
    for (name, bytes, entry, nr) in rings {
        c.int(
            format!("ring {name}: entry size"),
            &format!("sizeof(union {name}_sring_entry)"),
            entry as u64,
        );
        c.int(
            format!("ring {name}: entries"),
            &format!("__CONST_RING_SIZE({name}, {bytes})"),
            u64::from(nr),
        );
        c.int(
            format!("ring {name}: header"),
            &format!("offsetof(struct {name}_sring, ring)"),
            SRING_HEADER_SIZE as u64,
        );
    }
    for order in 0..4u32 {
        c.int(
            format!("ring blkif order {order}: entries"),
            &format!("__CONST_RING_SIZE(blkif, 4096 << {order})"),
            u64::from(blkif_ring_size(order)),
        );
    }
    c.int(
        "usbif USB_URB_RING_SIZE".into(),
        "USB_URB_RING_SIZE",
        u64::from(USB_URB_RING_SIZE),
    );
    c.int(
        "usbif USB_CONN_RING_SIZE".into(),
        "USB_CONN_RING_SIZE",
        u64::from(USB_CONN_RING_SIZE),
    );
}

fn xsd_error_checks(c: &mut Checks) {
    c.int(
        "xsd_errors: count".into(),
        "sizeof(xsd_errors) / sizeof(xsd_errors[0])",
        XSD_ERRORS.len() as u64,
    );
    for (i, errno) in XSD_ERRORS.iter().enumerate() {
        c.string(
            format!("xsd_errors[{i}]: name"),
            &format!("xsd_errors[{i}].errstring"),
            errno.name().unwrap(),
        );
        c.int(
            format!("xsd_errors[{i}]: errnum"),
            &format!("xsd_errors[{i}].errnum"),
            errno.0 as u64,
        );
    }
}

fn errno_checks(c: &mut Checks) {
    k!(c;
        XEN_EPERM => XenErrno::EPERM.0, XEN_ENOENT => XenErrno::ENOENT.0, XEN_ESRCH => XenErrno::ESRCH.0,
        XEN_EIO => XenErrno::EIO.0, XEN_ENXIO => XenErrno::ENXIO.0, XEN_E2BIG => XenErrno::E2BIG.0,
        XEN_ENOEXEC => XenErrno::ENOEXEC.0, XEN_EBADF => XenErrno::EBADF.0, XEN_ECHILD => XenErrno::ECHILD.0,
        XEN_EAGAIN => XenErrno::EAGAIN.0, XEN_EWOULDBLOCK => XenErrno::EWOULDBLOCK.0,
        XEN_ENOMEM => XenErrno::ENOMEM.0, XEN_EACCES => XenErrno::EACCES.0, XEN_EFAULT => XenErrno::EFAULT.0,
        XEN_EBUSY => XenErrno::EBUSY.0, XEN_EEXIST => XenErrno::EEXIST.0, XEN_EXDEV => XenErrno::EXDEV.0,
        XEN_ENODEV => XenErrno::ENODEV.0, XEN_ENOTDIR => XenErrno::ENOTDIR.0, XEN_EISDIR => XenErrno::EISDIR.0,
        XEN_EINVAL => XenErrno::EINVAL.0, XEN_ENFILE => XenErrno::ENFILE.0, XEN_EMFILE => XenErrno::EMFILE.0,
        XEN_ENOSPC => XenErrno::ENOSPC.0, XEN_EROFS => XenErrno::EROFS.0, XEN_EMLINK => XenErrno::EMLINK.0,
        XEN_EDOM => XenErrno::EDOM.0, XEN_ERANGE => XenErrno::ERANGE.0, XEN_EDEADLK => XenErrno::EDEADLK.0,
        XEN_EDEADLOCK => XenErrno::EDEADLOCK.0, XEN_ENAMETOOLONG => XenErrno::ENAMETOOLONG.0,
        XEN_ENOLCK => XenErrno::ENOLCK.0, XEN_ENOSYS => XenErrno::ENOSYS.0,
        XEN_ENOTEMPTY => XenErrno::ENOTEMPTY.0, XEN_ENODATA => XenErrno::ENODATA.0,
        XEN_ETIME => XenErrno::ETIME.0, XEN_EBADMSG => XenErrno::EBADMSG.0,
        XEN_EOVERFLOW => XenErrno::EOVERFLOW.0, XEN_EILSEQ => XenErrno::EILSEQ.0,
        XEN_ENOTSOCK => XenErrno::ENOTSOCK.0, XEN_EMSGSIZE => XenErrno::EMSGSIZE.0,
        XEN_EOPNOTSUPP => XenErrno::EOPNOTSUPP.0, XEN_EADDRINUSE => XenErrno::EADDRINUSE.0,
        XEN_EADDRNOTAVAIL => XenErrno::EADDRNOTAVAIL.0, XEN_ENOBUFS => XenErrno::ENOBUFS.0,
        XEN_EISCONN => XenErrno::EISCONN.0, XEN_ENOTCONN => XenErrno::ENOTCONN.0,
        XEN_ETIMEDOUT => XenErrno::ETIMEDOUT.0, XEN_ECONNREFUSED => XenErrno::ECONNREFUSED.0,
    );
}

fn hypercall_const_checks(c: &mut Checks) {
    k!(c;
        MMU_NORMAL_PT_UPDATE => MMU_NORMAL_PT_UPDATE,
        MMU_MACHPHYS_UPDATE => MMU_MACHPHYS_UPDATE,
        PHYSDEVOP_eoi => PHYSDEVOP_EOI, PHYSDEVOP_irq_status_query => PHYSDEVOP_IRQ_STATUS_QUERY,
        PHYSDEVOP_map_pirq => PHYSDEVOP_MAP_PIRQ, PHYSDEVOP_unmap_pirq => PHYSDEVOP_UNMAP_PIRQ,
        XENIRQSTAT_needs_eoi => XENIRQSTAT_NEEDS_EOI, XENIRQSTAT_shared => XENIRQSTAT_SHARED,
        _XEN_PCIF_active => XEN_PCIF_ACTIVE_BIT, XEN_PCIF_active => XEN_PCIF_ACTIVE,
        XEN_PCIB_AERHANDLER => XEN_PCIB_AERHANDLER, XEN_PCIB_active => XEN_PCIB_ACTIVE,
        XEN_PCI_OP_conf_read => XEN_PCI_OP_CONF_READ, XEN_PCI_OP_conf_write => XEN_PCI_OP_CONF_WRITE,
        XEN_PCI_OP_enable_msi => XEN_PCI_OP_ENABLE_MSI, XEN_PCI_OP_disable_msi => XEN_PCI_OP_DISABLE_MSI,
        XEN_PCI_OP_enable_msix => XEN_PCI_OP_ENABLE_MSIX,
        XEN_PCI_OP_disable_msix => XEN_PCI_OP_DISABLE_MSIX,
        XEN_PCI_OP_aer_detected => XEN_PCI_OP_AER_DETECTED, XEN_PCI_OP_aer_resume => XEN_PCI_OP_AER_RESUME,
        XEN_PCI_OP_aer_mmio => XEN_PCI_OP_AER_MMIO, XEN_PCI_OP_aer_slotreset => XEN_PCI_OP_AER_SLOTRESET,
        XEN_PCI_OP_enable_multi_msi => XEN_PCI_OP_ENABLE_MULTI_MSI,
        XEN_PCI_ERR_success => XEN_PCI_ERR_SUCCESS, XEN_PCI_ERR_dev_not_found => XEN_PCI_ERR_DEV_NOT_FOUND,
        XEN_PCI_ERR_invalid_offset => XEN_PCI_ERR_INVALID_OFFSET,
        XEN_PCI_ERR_access_denied => XEN_PCI_ERR_ACCESS_DENIED,
        XEN_PCI_ERR_not_implemented => XEN_PCI_ERR_NOT_IMPLEMENTED,
        XEN_PCI_ERR_op_failed => XEN_PCI_ERR_OP_FAILED, SH_INFO_MAX_VEC => SH_INFO_MAX_VEC,
        UVMF_NONE => UVMF_NONE,
        UVMF_TLB_FLUSH => UVMF_TLB_FLUSH,
        UVMF_INVLPG => UVMF_INVLPG,
        MACH2PHYS_VIRT_START => MACH2PHYS_VIRT_START,
        FLAT_KERNEL_CS64 => FLAT_KERNEL_CS64,
        XEN_ELFNOTE_ENTRY => XEN_ELFNOTE_ENTRY,
        XEN_ELFNOTE_HYPERCALL_PAGE => XEN_ELFNOTE_HYPERCALL_PAGE,
        XEN_ELFNOTE_VIRT_BASE => XEN_ELFNOTE_VIRT_BASE,
        XEN_ELFNOTE_PADDR_OFFSET => XEN_ELFNOTE_PADDR_OFFSET,
        XEN_ELFNOTE_XEN_VERSION => XEN_ELFNOTE_XEN_VERSION,
        XEN_ELFNOTE_GUEST_OS => XEN_ELFNOTE_GUEST_OS,
        XEN_ELFNOTE_LOADER => XEN_ELFNOTE_LOADER,
        XEN_ELFNOTE_PHYS32_ENTRY => XEN_ELFNOTE_PHYS32_ENTRY,
        __HYPERVISOR_set_trap_table => HYPERVISOR_SET_TRAP_TABLE,
        __HYPERVISOR_mmu_update => HYPERVISOR_MMU_UPDATE,
        __HYPERVISOR_set_gdt => HYPERVISOR_SET_GDT,
        __HYPERVISOR_stack_switch => HYPERVISOR_STACK_SWITCH,
        __HYPERVISOR_set_callbacks => HYPERVISOR_SET_CALLBACKS,
        __HYPERVISOR_fpu_taskswitch => HYPERVISOR_FPU_TASKSWITCH,
        __HYPERVISOR_sched_op_compat => HYPERVISOR_SCHED_OP_COMPAT,
        __HYPERVISOR_platform_op => HYPERVISOR_PLATFORM_OP,
        __HYPERVISOR_set_debugreg => HYPERVISOR_SET_DEBUGREG,
        __HYPERVISOR_get_debugreg => HYPERVISOR_GET_DEBUGREG,
        __HYPERVISOR_update_descriptor => HYPERVISOR_UPDATE_DESCRIPTOR,
        __HYPERVISOR_memory_op => HYPERVISOR_MEMORY_OP,
        __HYPERVISOR_multicall => HYPERVISOR_MULTICALL,
        __HYPERVISOR_update_va_mapping => HYPERVISOR_UPDATE_VA_MAPPING,
        __HYPERVISOR_set_timer_op => HYPERVISOR_SET_TIMER_OP,
        __HYPERVISOR_event_channel_op_compat => HYPERVISOR_EVENT_CHANNEL_OP_COMPAT,
        __HYPERVISOR_xen_version => HYPERVISOR_XEN_VERSION,
        __HYPERVISOR_console_io => HYPERVISOR_CONSOLE_IO,
        __HYPERVISOR_physdev_op_compat => HYPERVISOR_PHYSDEV_OP_COMPAT,
        __HYPERVISOR_grant_table_op => HYPERVISOR_GRANT_TABLE_OP,
        __HYPERVISOR_vm_assist => HYPERVISOR_VM_ASSIST,
        __HYPERVISOR_update_va_mapping_otherdomain => HYPERVISOR_UPDATE_VA_MAPPING_OTHERDOMAIN,
        __HYPERVISOR_iret => HYPERVISOR_IRET,
        __HYPERVISOR_vcpu_op => HYPERVISOR_VCPU_OP,
        __HYPERVISOR_set_segment_base => HYPERVISOR_SET_SEGMENT_BASE,
        __HYPERVISOR_mmuext_op => HYPERVISOR_MMUEXT_OP,
        __HYPERVISOR_xsm_op => HYPERVISOR_XSM_OP,
        __HYPERVISOR_nmi_op => HYPERVISOR_NMI_OP,
        __HYPERVISOR_sched_op => HYPERVISOR_SCHED_OP,
        __HYPERVISOR_callback_op => HYPERVISOR_CALLBACK_OP,
        __HYPERVISOR_xenoprof_op => HYPERVISOR_XENOPROF_OP,
        __HYPERVISOR_event_channel_op => HYPERVISOR_EVENT_CHANNEL_OP,
        __HYPERVISOR_physdev_op => HYPERVISOR_PHYSDEV_OP,
        __HYPERVISOR_hvm_op => HYPERVISOR_HVM_OP,
        __HYPERVISOR_sysctl => HYPERVISOR_SYSCTL,
        __HYPERVISOR_domctl => HYPERVISOR_DOMCTL,
        __HYPERVISOR_kexec_op => HYPERVISOR_KEXEC_OP,
        __HYPERVISOR_tmem_op => HYPERVISOR_TMEM_OP,
        __HYPERVISOR_argo_op => HYPERVISOR_ARGO_OP,
        __HYPERVISOR_xenpmu_op => HYPERVISOR_XENPMU_OP,
        __HYPERVISOR_dm_op => HYPERVISOR_DM_OP,
        __HYPERVISOR_hypfs_op => HYPERVISOR_HYPFS_OP,
        DOMID_FIRST_RESERVED => DOMID_FIRST_RESERVED, DOMID_SELF => DOMID_SELF, DOMID_IO => DOMID_IO,
        DOMID_XEN => DOMID_XEN, DOMID_COW => DOMID_COW, DOMID_INVALID => DOMID_INVALID,
        DOMID_IDLE => DOMID_IDLE, DOMID_MASK => DOMID_MASK,
        VIRQ_TIMER => VIRQ_TIMER, VIRQ_DEBUG => VIRQ_DEBUG, VIRQ_CONSOLE => VIRQ_CONSOLE,
        VIRQ_DOM_EXC => VIRQ_DOM_EXC, VIRQ_TBUF => VIRQ_TBUF, VIRQ_DEBUGGER => VIRQ_DEBUGGER,
        VIRQ_XENOPROF => VIRQ_XENOPROF, VIRQ_CON_RING => VIRQ_CON_RING,
        VIRQ_PCPU_STATE => VIRQ_PCPU_STATE, VIRQ_MEM_EVENT => VIRQ_MEM_EVENT, VIRQ_ARGO => VIRQ_ARGO,
        VIRQ_ENOMEM => VIRQ_ENOMEM, VIRQ_XENPMU => VIRQ_XENPMU, VIRQ_ARCH_0 => VIRQ_ARCH_0,
        NR_VIRQS => NR_VIRQS,
        // sched
        SCHEDOP_yield => SCHEDOP_YIELD, SCHEDOP_block => SCHEDOP_BLOCK,
        SCHEDOP_shutdown => SCHEDOP_SHUTDOWN, SCHEDOP_poll => SCHEDOP_POLL,
        SCHEDOP_remote_shutdown => SCHEDOP_REMOTE_SHUTDOWN, SCHEDOP_shutdown_code => SCHEDOP_SHUTDOWN_CODE,
        SCHEDOP_watchdog => SCHEDOP_WATCHDOG, SCHEDOP_pin_override => SCHEDOP_PIN_OVERRIDE,
        SHUTDOWN_poweroff => SHUTDOWN_POWEROFF, SHUTDOWN_reboot => SHUTDOWN_REBOOT,
        SHUTDOWN_suspend => SHUTDOWN_SUSPEND, SHUTDOWN_crash => SHUTDOWN_CRASH,
        SHUTDOWN_watchdog => SHUTDOWN_WATCHDOG, SHUTDOWN_soft_reset => SHUTDOWN_SOFT_RESET,
        // event channels
        EVTCHNOP_bind_interdomain => EVTCHNOP_BIND_INTERDOMAIN, EVTCHNOP_bind_virq => EVTCHNOP_BIND_VIRQ,
        EVTCHNOP_bind_pirq => EVTCHNOP_BIND_PIRQ, EVTCHNOP_close => EVTCHNOP_CLOSE,
        EVTCHNOP_send => EVTCHNOP_SEND, EVTCHNOP_status => EVTCHNOP_STATUS,
        EVTCHNOP_alloc_unbound => EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_bind_ipi => EVTCHNOP_BIND_IPI,
        EVTCHNOP_bind_vcpu => EVTCHNOP_BIND_VCPU, EVTCHNOP_unmask => EVTCHNOP_UNMASK,
        EVTCHNOP_reset => EVTCHNOP_RESET, EVTCHNOP_init_control => EVTCHNOP_INIT_CONTROL,
        EVTCHNOP_expand_array => EVTCHNOP_EXPAND_ARRAY, EVTCHNOP_set_priority => EVTCHNOP_SET_PRIORITY,
        EVTCHNSTAT_closed => EVTCHNSTAT_CLOSED, EVTCHNSTAT_unbound => EVTCHNSTAT_UNBOUND,
        EVTCHNSTAT_interdomain => EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_pirq => EVTCHNSTAT_PIRQ,
        EVTCHNSTAT_virq => EVTCHNSTAT_VIRQ, EVTCHNSTAT_ipi => EVTCHNSTAT_IPI,
        BIND_PIRQ__WILL_SHARE => BIND_PIRQ_WILL_SHARE,
        EVTCHN_2L_NR_CHANNELS => EVTCHN_2L_NR_CHANNELS,
        // grant table ops
        GNTTABOP_map_grant_ref => GNTTABOP_MAP_GRANT_REF, GNTTABOP_unmap_grant_ref => GNTTABOP_UNMAP_GRANT_REF,
        GNTTABOP_setup_table => GNTTABOP_SETUP_TABLE, GNTTABOP_dump_table => GNTTABOP_DUMP_TABLE,
        GNTTABOP_transfer => GNTTABOP_TRANSFER, GNTTABOP_copy => GNTTABOP_COPY,
        GNTTABOP_query_size => GNTTABOP_QUERY_SIZE, GNTTABOP_unmap_and_replace => GNTTABOP_UNMAP_AND_REPLACE,
        GNTTABOP_set_version => GNTTABOP_SET_VERSION, GNTTABOP_get_status_frames => GNTTABOP_GET_STATUS_FRAMES,
        GNTTABOP_get_version => GNTTABOP_GET_VERSION, GNTTABOP_swap_grant_ref => GNTTABOP_SWAP_GRANT_REF,
        GNTTABOP_cache_flush => GNTTABOP_CACHE_FLUSH,
        GNTMAP_device_map => GNTMAP_DEVICE_MAP, GNTMAP_host_map => GNTMAP_HOST_MAP,
        GNTMAP_readonly => GNTMAP_READONLY, GNTMAP_application_map => GNTMAP_APPLICATION_MAP,
        GNTMAP_contains_pte => GNTMAP_CONTAINS_PTE, GNTMAP_guest_avail_mask => GNTMAP_GUEST_AVAIL_MASK,
        GNTCOPY_source_gref => GNTCOPY_SOURCE_GREF, GNTCOPY_dest_gref => GNTCOPY_DEST_GREF,
        GNTST_okay => GNTST_OKAY, GNTST_general_error => GNTST_GENERAL_ERROR,
        GNTST_bad_domain => GNTST_BAD_DOMAIN, GNTST_bad_gntref => GNTST_BAD_GNTREF,
        GNTST_bad_handle => GNTST_BAD_HANDLE, GNTST_bad_virt_addr => GNTST_BAD_VIRT_ADDR,
        GNTST_bad_dev_addr => GNTST_BAD_DEV_ADDR, GNTST_no_device_space => GNTST_NO_DEVICE_SPACE,
        GNTST_permission_denied => GNTST_PERMISSION_DENIED, GNTST_bad_page => GNTST_BAD_PAGE,
        GNTST_bad_copy_arg => GNTST_BAD_COPY_ARG, GNTST_address_too_big => GNTST_ADDRESS_TOO_BIG,
        GNTST_eagain => GNTST_EAGAIN, GNTST_no_space => GNTST_NO_SPACE,
        // memory
        XENMEM_increase_reservation => XENMEM_INCREASE_RESERVATION,
        XENMEM_decrease_reservation => XENMEM_DECREASE_RESERVATION,
        XENMEM_maximum_ram_page => XENMEM_MAXIMUM_RAM_PAGE,
        XENMEM_current_reservation => XENMEM_CURRENT_RESERVATION,
        XENMEM_maximum_reservation => XENMEM_MAXIMUM_RESERVATION,
        XENMEM_populate_physmap => XENMEM_POPULATE_PHYSMAP,
        XENMEM_add_to_physmap => XENMEM_ADD_TO_PHYSMAP,
        XENMEM_memory_map => XENMEM_MEMORY_MAP,
        XENMEM_machine_memory_map => XENMEM_MACHINE_MEMORY_MAP,
        XENMEM_exchange => XENMEM_EXCHANGE,
        XENMEM_maximum_gpfn => XENMEM_MAXIMUM_GPFN,
        XENMEM_remove_from_physmap => XENMEM_REMOVE_FROM_PHYSMAP,
        XENMAPSPACE_shared_info => XENMAPSPACE_SHARED_INFO, XENMAPSPACE_grant_table => XENMAPSPACE_GRANT_TABLE,
        XENMAPSPACE_gmfn => XENMAPSPACE_GMFN, XENMAPSPACE_gmfn_range => XENMAPSPACE_GMFN_RANGE,
        XENMAPSPACE_gmfn_foreign => XENMAPSPACE_GMFN_FOREIGN, XENMAPSPACE_dev_mmio => XENMAPSPACE_DEV_MMIO,
        XENMAPIDX_grant_table_status => XENMAPIDX_GRANT_TABLE_STATUS,
        XENMEMF_populate_on_demand => XENMEMF_POPULATE_ON_DEMAND,
        // hvm
        HVMOP_set_param => HVMOP_SET_PARAM, HVMOP_get_param => HVMOP_GET_PARAM,
        HVM_PARAM_CALLBACK_IRQ => HVM_PARAM_CALLBACK_IRQ, HVM_PARAM_STORE_PFN => HVM_PARAM_STORE_PFN,
        HVM_PARAM_STORE_EVTCHN => HVM_PARAM_STORE_EVTCHN, HVM_PARAM_CONSOLE_PFN => HVM_PARAM_CONSOLE_PFN,
        HVM_PARAM_CONSOLE_EVTCHN => HVM_PARAM_CONSOLE_EVTCHN,
        HVM_PARAM_CALLBACK_IRQ_TYPE_MASK => HVM_PARAM_CALLBACK_IRQ_TYPE_MASK,
        HVM_PARAM_CALLBACK_TYPE_GSI => HVM_PARAM_CALLBACK_TYPE_GSI,
        HVM_PARAM_CALLBACK_TYPE_PCI_INTX => HVM_PARAM_CALLBACK_TYPE_PCI_INTX,
        HVM_PARAM_CALLBACK_TYPE_VECTOR => HVM_PARAM_CALLBACK_TYPE_VECTOR,
        // vcpu
        VCPUOP_initialise => VCPUOP_INITIALISE, VCPUOP_up => VCPUOP_UP, VCPUOP_down => VCPUOP_DOWN,
        VCPUOP_is_up => VCPUOP_IS_UP, VCPUOP_get_runstate_info => VCPUOP_GET_RUNSTATE_INFO,
        VCPUOP_register_runstate_memory_area => VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA,
        VCPUOP_set_periodic_timer => VCPUOP_SET_PERIODIC_TIMER,
        VCPUOP_stop_periodic_timer => VCPUOP_STOP_PERIODIC_TIMER,
        VCPUOP_set_singleshot_timer => VCPUOP_SET_SINGLESHOT_TIMER,
        VCPUOP_stop_singleshot_timer => VCPUOP_STOP_SINGLESHOT_TIMER,
        VCPUOP_register_vcpu_info => VCPUOP_REGISTER_VCPU_INFO, VCPUOP_send_nmi => VCPUOP_SEND_NMI,
        VCPUOP_get_physid => VCPUOP_GET_PHYSID,
        VCPUOP_register_vcpu_time_memory_area => VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA,
        VCPU_SSHOTTMR_future => VCPU_SSHOTTMR_FUTURE,
        // console_io, version, features
        CONSOLEIO_write => xen_abi::hypercall::console_io::CONSOLEIO_WRITE,
        CONSOLEIO_read => xen_abi::hypercall::console_io::CONSOLEIO_READ,
        XENVER_version => XENVER_VERSION, XENVER_extraversion => XENVER_EXTRAVERSION,
        XENVER_compile_info => XENVER_COMPILE_INFO, XENVER_capabilities => XENVER_CAPABILITIES,
        XENVER_changeset => XENVER_CHANGESET, XENVER_platform_parameters => XENVER_PLATFORM_PARAMETERS,
        XENVER_get_features => XENVER_GET_FEATURES, XENVER_pagesize => XENVER_PAGESIZE,
        XENVER_guest_handle => XENVER_GUEST_HANDLE, XENVER_commandline => XENVER_COMMANDLINE,
        XENVER_build_id => XENVER_BUILD_ID, XEN_EXTRAVERSION_LEN => XEN_EXTRAVERSION_LEN,
        XENFEAT_NR_SUBMAPS => XENFEAT_NR_SUBMAPS,
        XENFEAT_writable_page_tables => XENFEAT_WRITABLE_PAGE_TABLES,
        XENFEAT_writable_descriptor_tables => XENFEAT_WRITABLE_DESCRIPTOR_TABLES,
        XENFEAT_auto_translated_physmap => XENFEAT_AUTO_TRANSLATED_PHYSMAP,
        XENFEAT_supervisor_mode_kernel => XENFEAT_SUPERVISOR_MODE_KERNEL,
        XENFEAT_pae_pgdir_above_4gb => XENFEAT_PAE_PGDIR_ABOVE_4GB,
        XENFEAT_mmu_pt_update_preserve_ad => XENFEAT_MMU_PT_UPDATE_PRESERVE_AD,
        XENFEAT_highmem_assist => XENFEAT_HIGHMEM_ASSIST,
        XENFEAT_gnttab_map_avail_bits => XENFEAT_GNTTAB_MAP_AVAIL_BITS,
        XENFEAT_hvm_callback_vector => XENFEAT_HVM_CALLBACK_VECTOR,
        XENFEAT_hvm_safe_pvclock => XENFEAT_HVM_SAFE_PVCLOCK,
        XENFEAT_hvm_pirqs => XENFEAT_HVM_PIRQS, XENFEAT_dom0 => XENFEAT_DOM0,
        XENFEAT_memory_op_vnode_supported => XENFEAT_MEMORY_OP_VNODE_SUPPORTED,
        XENFEAT_ARM_SMCCC_supported => XENFEAT_ARM_SMCCC_SUPPORTED,
        XENFEAT_linux_rsdp_unrestricted => XENFEAT_LINUX_RSDP_UNRESTRICTED,
        XENFEAT_not_direct_mapped => XENFEAT_NOT_DIRECT_MAPPED,
        XENFEAT_direct_mapped => XENFEAT_DIRECT_MAPPED,
    );
}

fn data_const_checks(c: &mut Checks) {
    k!(c;
        // shared info, start info
        XEN_LEGACY_MAX_VCPUS => XEN_LEGACY_MAX_VCPUS,
        XEN_PVCLOCK_TSC_STABLE_BIT => XEN_PVCLOCK_TSC_STABLE_BIT,
        XEN_PVCLOCK_GUEST_STOPPED => XEN_PVCLOCK_GUEST_STOPPED,
        XEN_HVM_START_MAGIC_VALUE => XEN_HVM_START_MAGIC_VALUE,
        XEN_HVM_MEMMAP_TYPE_RAM => XEN_HVM_MEMMAP_TYPE_RAM,
        XEN_HVM_MEMMAP_TYPE_RESERVED => XEN_HVM_MEMMAP_TYPE_RESERVED,
        XEN_HVM_MEMMAP_TYPE_ACPI => XEN_HVM_MEMMAP_TYPE_ACPI,
        XEN_HVM_MEMMAP_TYPE_NVS => XEN_HVM_MEMMAP_TYPE_NVS,
        XEN_HVM_MEMMAP_TYPE_UNUSABLE => XEN_HVM_MEMMAP_TYPE_UNUSABLE,
        XEN_HVM_MEMMAP_TYPE_DISABLED => XEN_HVM_MEMMAP_TYPE_DISABLED,
        XEN_HVM_MEMMAP_TYPE_PMEM => XEN_HVM_MEMMAP_TYPE_PMEM,
        SIF_PRIVILEGED => SIF_PRIVILEGED, SIF_INITDOMAIN => SIF_INITDOMAIN,
        SIF_MULTIBOOT_MOD => SIF_MULTIBOOT_MOD, SIF_MOD_START_PFN => SIF_MOD_START_PFN,
        SIF_VIRT_P2M_4TOOLS => SIF_VIRT_P2M_4TOOLS, MAX_GUEST_CMDLINE => MAX_GUEST_CMDLINE,
        // grant entries
        GNTTAB_NR_RESERVED_ENTRIES => GNTTAB_NR_RESERVED_ENTRIES,
        GNTTAB_RESERVED_CONSOLE => GNTTAB_RESERVED_CONSOLE,
        GNTTAB_RESERVED_XENSTORE => GNTTAB_RESERVED_XENSTORE,
        GTF_invalid => GTF_INVALID, GTF_permit_access => GTF_PERMIT_ACCESS,
        GTF_accept_transfer => GTF_ACCEPT_TRANSFER, GTF_transitive => GTF_TRANSITIVE,
        GTF_type_mask => GTF_TYPE_MASK, GTF_readonly => GTF_READONLY, GTF_reading => GTF_READING,
        GTF_writing => GTF_WRITING, GTF_PWT => GTF_PWT, GTF_PCD => GTF_PCD, GTF_PAT => GTF_PAT,
        GTF_sub_page => GTF_SUB_PAGE, GTF_transfer_committed => GTF_TRANSFER_COMMITTED,
        GTF_transfer_completed => GTF_TRANSFER_COMPLETED,
        // xs_wire
        XS_CONTROL => XsMsgType::Control as u32, XS_DEBUG => XsMsgType::DEBUG as u32,
        XS_DIRECTORY => XsMsgType::Directory as u32, XS_READ => XsMsgType::Read as u32,
        XS_GET_PERMS => XsMsgType::GetPerms as u32, XS_WATCH => XsMsgType::Watch as u32,
        XS_UNWATCH => XsMsgType::Unwatch as u32,
        XS_TRANSACTION_START => XsMsgType::TransactionStart as u32,
        XS_TRANSACTION_END => XsMsgType::TransactionEnd as u32,
        XS_INTRODUCE => XsMsgType::Introduce as u32, XS_RELEASE => XsMsgType::Release as u32,
        XS_GET_DOMAIN_PATH => XsMsgType::GetDomainPath as u32, XS_WRITE => XsMsgType::Write as u32,
        XS_MKDIR => XsMsgType::Mkdir as u32, XS_RM => XsMsgType::Rm as u32,
        XS_SET_PERMS => XsMsgType::SetPerms as u32, XS_WATCH_EVENT => XsMsgType::WatchEvent as u32,
        XS_ERROR => XsMsgType::Error as u32,
        XS_IS_DOMAIN_INTRODUCED => XsMsgType::IsDomainIntroduced as u32,
        XS_RESUME => XsMsgType::Resume as u32, XS_SET_TARGET => XsMsgType::SetTarget as u32,
        XS_RESET_WATCHES => XsMsgType::ResetWatches as u32,
        XS_DIRECTORY_PART => XsMsgType::DirectoryPart as u32,
        XS_TYPE_COUNT => XS_TYPE_COUNT, XS_INVALID => XS_INVALID,
        XS_WATCH_PATH => XS_WATCH_PATH, XS_WATCH_TOKEN => XS_WATCH_TOKEN,
        XENSTORE_RING_SIZE => XENSTORE_RING_SIZE, XENSTORE_PAYLOAD_MAX => XENSTORE_PAYLOAD_MAX,
        XENSTORE_ABS_PATH_MAX => XENSTORE_ABS_PATH_MAX, XENSTORE_REL_PATH_MAX => XENSTORE_REL_PATH_MAX,
        XENSTORE_SERVER_FEATURE_RECONNECTION => XENSTORE_SERVER_FEATURE_RECONNECTION,
        XENSTORE_SERVER_FEATURE_ERROR => XENSTORE_SERVER_FEATURE_ERROR,
        XENSTORE_CONNECTED => XENSTORE_CONNECTED, XENSTORE_RECONNECT => XENSTORE_RECONNECT,
        XENSTORE_ERROR_NONE => XENSTORE_ERROR_NONE, XENSTORE_ERROR_COMM => XENSTORE_ERROR_COMM,
        XENSTORE_ERROR_RINGIDX => XENSTORE_ERROR_RINGIDX, XENSTORE_ERROR_PROTO => XENSTORE_ERROR_PROTO,
        // xenbus
        XenbusStateUnknown => xen_abi::xenbus::XenbusState::Unknown as u8,
        XenbusStateInitialising => xen_abi::xenbus::XenbusState::Initialising as u8,
        XenbusStateInitWait => xen_abi::xenbus::XenbusState::InitWait as u8,
        XenbusStateInitialised => xen_abi::xenbus::XenbusState::Initialised as u8,
        XenbusStateConnected => xen_abi::xenbus::XenbusState::Connected as u8,
        XenbusStateClosing => xen_abi::xenbus::XenbusState::Closing as u8,
        XenbusStateClosed => xen_abi::xenbus::XenbusState::Closed as u8,
        XenbusStateReconfiguring => xen_abi::xenbus::XenbusState::Reconfiguring as u8,
        XenbusStateReconfigured => xen_abi::xenbus::XenbusState::Reconfigured as u8,
        XEN_PAGE_SHIFT => xen_abi::XEN_PAGE_SHIFT,
    );
    c.int(
        "const XEN_PAGE_SIZE".into(),
        "1 << XEN_PAGE_SHIFT",
        XEN_PAGE_SIZE as u64,
    );
}

fn device_const_checks(c: &mut Checks) {
    k!(c;
        // netif
        XEN_NETIF_NR_SLOTS_MIN => XEN_NETIF_NR_SLOTS_MIN, XEN_NETIF_MAX_TX_SIZE => XEN_NETIF_MAX_TX_SIZE,
        NETTXF_csum_blank => NETTXF_CSUM_BLANK, NETTXF_data_validated => NETTXF_DATA_VALIDATED,
        NETTXF_more_data => NETTXF_MORE_DATA, NETTXF_extra_info => NETTXF_EXTRA_INFO,
        NETRXF_data_validated => NETRXF_DATA_VALIDATED, NETRXF_csum_blank => NETRXF_CSUM_BLANK,
        NETRXF_more_data => NETRXF_MORE_DATA, NETRXF_extra_info => NETRXF_EXTRA_INFO,
        NETRXF_gso_prefix => NETRXF_GSO_PREFIX,
        XEN_NETIF_EXTRA_TYPE_NONE => XEN_NETIF_EXTRA_TYPE_NONE,
        XEN_NETIF_EXTRA_TYPE_GSO => XEN_NETIF_EXTRA_TYPE_GSO,
        XEN_NETIF_EXTRA_TYPE_MCAST_ADD => XEN_NETIF_EXTRA_TYPE_MCAST_ADD,
        XEN_NETIF_EXTRA_TYPE_MCAST_DEL => XEN_NETIF_EXTRA_TYPE_MCAST_DEL,
        XEN_NETIF_EXTRA_TYPE_HASH => XEN_NETIF_EXTRA_TYPE_HASH,
        XEN_NETIF_EXTRA_TYPE_MAX => XEN_NETIF_EXTRA_TYPE_MAX,
        XEN_NETIF_EXTRA_FLAG_MORE => XEN_NETIF_EXTRA_FLAG_MORE,
        XEN_NETIF_GSO_TYPE_NONE => XEN_NETIF_GSO_TYPE_NONE,
        XEN_NETIF_GSO_TYPE_TCPV4 => XEN_NETIF_GSO_TYPE_TCPV4,
        XEN_NETIF_GSO_TYPE_TCPV6 => XEN_NETIF_GSO_TYPE_TCPV6,
        NETIF_RSP_DROPPED => NETIF_RSP_DROPPED, NETIF_RSP_ERROR => NETIF_RSP_ERROR,
        NETIF_RSP_OKAY => NETIF_RSP_OKAY, NETIF_RSP_NULL => NETIF_RSP_NULL,
        XEN_NETIF_CTRL_HASH_TYPE_IPV4 => XEN_NETIF_CTRL_HASH_TYPE_IPV4,
        XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP => XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP,
        XEN_NETIF_CTRL_HASH_TYPE_IPV6 => XEN_NETIF_CTRL_HASH_TYPE_IPV6,
        XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP => XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP,
        XEN_NETIF_CTRL_HASH_ALGORITHM_NONE => XEN_NETIF_CTRL_HASH_ALGORITHM_NONE,
        XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ => XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ,
        XEN_NETIF_CTRL_TYPE_INVALID => XEN_NETIF_CTRL_TYPE_INVALID,
        XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS => XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS,
        XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS => XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS,
        XEN_NETIF_CTRL_TYPE_SET_HASH_KEY => XEN_NETIF_CTRL_TYPE_SET_HASH_KEY,
        XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE => XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE,
        XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE => XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE,
        XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING => XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING,
        XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM => XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM,
        XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE => XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE,
        XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING => XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING,
        XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING => XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING,
        XEN_NETIF_CTRL_STATUS_SUCCESS => XEN_NETIF_CTRL_STATUS_SUCCESS,
        XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED => XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED,
        XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER => XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER,
        XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW => XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW,
        XEN_NETIF_CTRLF_GREF_readonly => XEN_NETIF_CTRLF_GREF_READONLY,
        // blkif
        BLKIF_OP_READ => BLKIF_OP_READ, BLKIF_OP_WRITE => BLKIF_OP_WRITE,
        BLKIF_OP_WRITE_BARRIER => BLKIF_OP_WRITE_BARRIER, BLKIF_OP_FLUSH_DISKCACHE => BLKIF_OP_FLUSH_DISKCACHE,
        BLKIF_OP_RESERVED_1 => BLKIF_OP_RESERVED_1, BLKIF_OP_DISCARD => BLKIF_OP_DISCARD,
        BLKIF_OP_INDIRECT => BLKIF_OP_INDIRECT,
        BLKIF_MAX_SEGMENTS_PER_REQUEST => BLKIF_MAX_SEGMENTS_PER_REQUEST,
        BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST => BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST,
        BLKIF_DISCARD_SECURE => BLKIF_DISCARD_SECURE,
        BLKIF_RSP_EOPNOTSUPP => BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR => BLKIF_RSP_ERROR,
        BLKIF_RSP_OKAY => BLKIF_RSP_OKAY,
        VDISK_CDROM => VDISK_CDROM, VDISK_REMOVABLE => VDISK_REMOVABLE, VDISK_READONLY => VDISK_READONLY,
        // usbif
        USB_VER_UNKNOWN => USB_VER_UNKNOWN, USB_VER_USB11 => USB_VER_USB11,
        USB_VER_USB20 => USB_VER_USB20, USB_VER_USB30 => USB_VER_USB30,
        USBIF_PIPE_PORT_MASK => USBIF_PIPE_PORT_MASK, USBIF_PIPE_UNLINK => USBIF_PIPE_UNLINK,
        USBIF_PIPE_DIR => USBIF_PIPE_DIR, USBIF_PIPE_DEV_MASK => USBIF_PIPE_DEV_MASK,
        USBIF_PIPE_DEV_SHIFT => USBIF_PIPE_DEV_SHIFT, USBIF_PIPE_EP_MASK => USBIF_PIPE_EP_MASK,
        USBIF_PIPE_EP_SHIFT => USBIF_PIPE_EP_SHIFT, USBIF_PIPE_TYPE_MASK => USBIF_PIPE_TYPE_MASK,
        USBIF_PIPE_TYPE_SHIFT => USBIF_PIPE_TYPE_SHIFT, USBIF_PIPE_TYPE_ISOC => USBIF_PIPE_TYPE_ISOC,
        USBIF_PIPE_TYPE_INT => USBIF_PIPE_TYPE_INT, USBIF_PIPE_TYPE_CTRL => USBIF_PIPE_TYPE_CTRL,
        USBIF_PIPE_TYPE_BULK => USBIF_PIPE_TYPE_BULK,
        USBIF_MAX_SEGMENTS_PER_REQUEST => USBIF_MAX_SEGMENTS_PER_REQUEST,
        USBIF_MAX_PORTNR => USBIF_MAX_PORTNR, USBIF_RING_SIZE => USBIF_RING_SIZE,
        USBIF_SHORT_NOT_OK => USBIF_SHORT_NOT_OK,
        USBIF_STATUS_OK => USBIF_STATUS_OK, USBIF_STATUS_NODEV => USBIF_STATUS_NODEV,
        USBIF_STATUS_INVAL => USBIF_STATUS_INVAL, USBIF_STATUS_STALL => USBIF_STATUS_STALL,
        USBIF_STATUS_IOERROR => USBIF_STATUS_IOERROR, USBIF_STATUS_BABBLE => USBIF_STATUS_BABBLE,
        USBIF_STATUS_SHUTDOWN => USBIF_STATUS_SHUTDOWN,
        USBIF_SPEED_NONE => USBIF_SPEED_NONE, USBIF_SPEED_LOW => USBIF_SPEED_LOW,
        USBIF_SPEED_FULL => USBIF_SPEED_FULL, USBIF_SPEED_HIGH => USBIF_SPEED_HIGH,
        // sndif
        XENSND_PROTOCOL_VERSION => XENSND_PROTOCOL_VERSION,
        XENSND_OP_OPEN => XENSND_OP_OPEN, XENSND_OP_CLOSE => XENSND_OP_CLOSE,
        XENSND_OP_READ => XENSND_OP_READ, XENSND_OP_WRITE => XENSND_OP_WRITE,
        XENSND_OP_SET_VOLUME => XENSND_OP_SET_VOLUME, XENSND_OP_GET_VOLUME => XENSND_OP_GET_VOLUME,
        XENSND_OP_MUTE => XENSND_OP_MUTE, XENSND_OP_UNMUTE => XENSND_OP_UNMUTE,
        XENSND_OP_TRIGGER => XENSND_OP_TRIGGER, XENSND_OP_HW_PARAM_QUERY => XENSND_OP_HW_PARAM_QUERY,
        XENSND_OP_TRIGGER_START => XENSND_OP_TRIGGER_START,
        XENSND_OP_TRIGGER_PAUSE => XENSND_OP_TRIGGER_PAUSE,
        XENSND_OP_TRIGGER_STOP => XENSND_OP_TRIGGER_STOP,
        XENSND_OP_TRIGGER_RESUME => XENSND_OP_TRIGGER_RESUME,
        XENSND_EVT_CUR_POS => XENSND_EVT_CUR_POS,
        XENSND_SAMPLE_RATE_MAX_LEN => XENSND_SAMPLE_RATE_MAX_LEN,
        XENSND_SAMPLE_FORMAT_MAX_LEN => XENSND_SAMPLE_FORMAT_MAX_LEN,
        XENSND_EVENT_PAGE_SIZE => XENSND_EVENT_PAGE_SIZE, XENSND_IN_RING_OFFS => XENSND_IN_RING_OFFS,
        XENSND_IN_RING_SIZE => XENSND_IN_RING_SIZE, XENSND_IN_RING_LEN => XENSND_IN_RING_LEN,
    );
    s!(c; XEN_PCI_MAGIC => XEN_PCI_MAGIC);
    s!(c;
        XENSND_DRIVER_NAME => XENSND_DRIVER_NAME, XENSND_LIST_SEPARATOR => XENSND_LIST_SEPARATOR,
        XENSND_FIELD_BE_VERSIONS => XENSND_FIELD_BE_VERSIONS, XENSND_FIELD_FE_VERSION => XENSND_FIELD_FE_VERSION,
        XENSND_FIELD_VCARD_SHORT_NAME => XENSND_FIELD_VCARD_SHORT_NAME,
        XENSND_FIELD_VCARD_LONG_NAME => XENSND_FIELD_VCARD_LONG_NAME,
        XENSND_FIELD_RING_REF => XENSND_FIELD_RING_REF, XENSND_FIELD_EVT_CHNL => XENSND_FIELD_EVT_CHNL,
        XENSND_FIELD_EVT_RING_REF => XENSND_FIELD_EVT_RING_REF,
        XENSND_FIELD_EVT_EVT_CHNL => XENSND_FIELD_EVT_EVT_CHNL,
        XENSND_FIELD_DEVICE_NAME => XENSND_FIELD_DEVICE_NAME, XENSND_FIELD_TYPE => XENSND_FIELD_TYPE,
        XENSND_FIELD_STREAM_UNIQUE_ID => XENSND_FIELD_STREAM_UNIQUE_ID,
        XENSND_FIELD_CHANNELS_MIN => XENSND_FIELD_CHANNELS_MIN,
        XENSND_FIELD_CHANNELS_MAX => XENSND_FIELD_CHANNELS_MAX,
        XENSND_FIELD_SAMPLE_RATES => XENSND_FIELD_SAMPLE_RATES,
        XENSND_FIELD_SAMPLE_FORMATS => XENSND_FIELD_SAMPLE_FORMATS,
        XENSND_FIELD_BUFFER_SIZE => XENSND_FIELD_BUFFER_SIZE,
        XENSND_STREAM_TYPE_PLAYBACK => XENSND_STREAM_TYPE_PLAYBACK,
        XENSND_STREAM_TYPE_CAPTURE => XENSND_STREAM_TYPE_CAPTURE,
    );
    // The PCM format table: value of XENSND_PCM_FORMAT_<X> and its string XENSND_PCM_FORMAT_<X>_STR.
    const PCM_FORMAT_MACROS: [&str; 25] = [
        "S8",
        "U8",
        "S16_LE",
        "S16_BE",
        "U16_LE",
        "U16_BE",
        "S24_LE",
        "S24_BE",
        "U24_LE",
        "U24_BE",
        "S32_LE",
        "S32_BE",
        "U32_LE",
        "U32_BE",
        "F32_LE",
        "F32_BE",
        "F64_LE",
        "F64_BE",
        "IEC958_SUBFRAME_LE",
        "IEC958_SUBFRAME_BE",
        "MU_LAW",
        "A_LAW",
        "IMA_ADPCM",
        "MPEG",
        "GSM",
    ];
    for (suffix, (value, name)) in PCM_FORMAT_MACROS.iter().zip(XENSND_PCM_FORMATS) {
        c.int(
            format!("const XENSND_PCM_FORMAT_{suffix}"),
            &format!("XENSND_PCM_FORMAT_{suffix}"),
            u64::from(value),
        );
        c.string(
            format!("const XENSND_PCM_FORMAT_{suffix}_STR"),
            &format!("XENSND_PCM_FORMAT_{suffix}_STR"),
            name,
        );
    }
    c.int(
        "const XENSND_PCM_FORMAT_S16_LE (named)".into(),
        "XENSND_PCM_FORMAT_S16_LE",
        u64::from(XENSND_PCM_FORMAT_S16_LE),
    );
    // Sizes that are not struct sizes.
    c.int(
        "const GRANT_ENTRIES_PER_PAGE".into(),
        "4096 / sizeof(grant_entry_v1_t)",
        GRANT_ENTRIES_PER_PAGE as u64,
    );
    c.int(
        "const SEGS_PER_INDIRECT_FRAME".into(),
        "4096 / sizeof(struct blkif_request_segment)",
        SEGS_PER_INDIRECT_FRAME as u64,
    );
    c.int(
        "const XENSND_GREFS_PER_DIR_PAGE".into(),
        "(4096 - offsetof(struct xensnd_page_directory, gref)) / sizeof(grant_ref_t)",
        XENSND_GREFS_PER_DIR_PAGE as u64,
    );
    c.int(
        "const XENCONS_IN_SIZE".into(),
        "sizeof(((struct xencons_interface *)0)->in)",
        XENCONS_IN_SIZE as u64,
    );
    c.int(
        "const XENCONS_OUT_SIZE".into(),
        "sizeof(((struct xencons_interface *)0)->out)",
        XENCONS_OUT_SIZE as u64,
    );
    c.int(
        "const GNTTABOP_error_msgs count".into(),
        "sizeof((const char *[])GNTTABOP_error_msgs) / sizeof(const char *)",
        GNTTABOP_ERROR_MSGS.len() as u64,
    );
    for (i, msg) in GNTTABOP_ERROR_MSGS.iter().enumerate() {
        c.string(
            format!("GNTTABOP_error_msgs[{i}]"),
            &format!("((const char *[])GNTTABOP_error_msgs)[{i}]"),
            msg,
        );
    }
}

/// Names of the `#[repr(C)]` structs declared in the crate's sources (outside test modules).
fn repr_c_structs_in_source(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            repr_c_structs_in_source(&path, out);
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        let mut in_repr_c = false;
        for line in code.lines().map(str::trim) {
            if line.starts_with("#[repr(C") {
                in_repr_c = true;
            } else if let Some(rest) = line.strip_prefix("pub struct ") {
                if in_repr_c {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    out.insert(name);
                }
                in_repr_c = false;
            } else if !line.starts_with("#[") && !line.starts_with("///") {
                in_repr_c = false;
            }
        }
    }
}

fn run_c(source: &str) -> String {
    let include = xen_include_dir();
    assert!(
        include.join("xen.h").is_file() && include.join("io/xs_wire.h").is_file(),
        "Xen public headers not found in {}: the ABI layout test needs them. \
         Install libxen-dev (apt-get install libxen-dev).",
        include.display()
    );
    // The program includes <xen/...>, so the search path is the directory above `xen`.
    let include_root = include.parent().expect("include dir has a parent");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("xen-abi-layout");
    std::fs::create_dir_all(&dir).unwrap();
    let c_file = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&c_file, source).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-std=gnu11", "-Wall", "-I"])
        .arg(include_root)
        .arg("-o")
        .arg(&exe)
        .arg(&c_file)
        .status()
        .unwrap_or_else(|e| panic!("cannot run C compiler `{cc}` ({e}); install gcc or set CC"));
    assert!(
        status.success(),
        "compiling {} against the Xen headers failed",
        c_file.display()
    );
    let output = Command::new(&exe).output().expect("run layout program");
    assert!(output.status.success(), "layout program failed");
    String::from_utf8(output.stdout).expect("utf-8 output")
}

#[test]
fn abi_matches_xen_headers() {
    let mut checks = Checks::default();
    struct_checks(&mut checks);
    ring_checks(&mut checks);
    xsd_error_checks(&mut checks);
    errno_checks(&mut checks);
    hypercall_const_checks(&mut checks);
    data_const_checks(&mut checks);
    device_const_checks(&mut checks);

    let source = format!("{C_PRELUDE}{}    return 0;\n}}\n", checks.c_body);
    let output = run_c(&source);
    let actual: BTreeMap<&str, &str> = output.lines().filter_map(|l| l.split_once('\t')).collect();

    let mut mismatches = Vec::new();
    for (key, rust) in &checks.expected {
        match actual.get(key.as_str()) {
            Some(c) if *c == rust => {}
            Some(c) => mismatches.push(format!("{key}: C {c}, Rust {rust}")),
            None => mismatches.push(format!("{key}: no output from the C program")),
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} ABI mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert_eq!(actual.len(), checks.expected.len());
    eprintln!(
        "checked {} values against {}",
        checks.expected.len(),
        xen_include_dir().display()
    );
}

#[test]
fn every_repr_c_struct_is_checked() {
    let mut declared = BTreeSet::new();
    repr_c_structs_in_source(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut declared,
    );
    let mut checks = Checks::default();
    struct_checks(&mut checks);
    let checked: BTreeSet<String> = checks.structs.iter().map(|s| s.to_string()).collect();
    let missing: Vec<_> = declared.difference(&checked).collect();
    assert!(
        missing.is_empty(),
        "repr(C) structs without a layout check: {missing:?}"
    );
    assert!(
        declared.len() >= 60,
        "source scan found only {} structs",
        declared.len()
    );
}
