//! `HYPERVISOR_hvm_op(cmd, arg)` (`hvm/hvm_op.h`, `hvm/params.h`): HVM/PVH parameters.

use crate::DomId;

/// Set an HVM parameter (arg: [`XenHvmParam`]).
pub const HVMOP_SET_PARAM: u32 = 0;
/// Read an HVM parameter (arg: [`XenHvmParam`]).
pub const HVMOP_GET_PARAM: u32 = 1;

/// How event channel upcalls reach vCPU 0 (`HVM_PARAM_CALLBACK_IRQ`); see
/// [`callback_via_vector`].
pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
/// Guest frame of the xenstore ring page (`HVM_PARAM_STORE_PFN`).
pub const HVM_PARAM_STORE_PFN: u32 = 1;
/// Event channel of the xenstore ring (`HVM_PARAM_STORE_EVTCHN`).
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
/// Guest frame of the PV console ring page (`HVM_PARAM_CONSOLE_PFN`).
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
/// Event channel of the PV console ring (`HVM_PARAM_CONSOLE_EVTCHN`).
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;

/// Bits 63:56 of the [`HVM_PARAM_CALLBACK_IRQ`] value give the delivery type
/// (`HVM_PARAM_CALLBACK_IRQ_TYPE_MASK`).
pub const HVM_PARAM_CALLBACK_IRQ_TYPE_MASK: u64 = 0xff00_0000_0000_0000;
/// Deliver through a GSI in bits 55:0 (`HVM_PARAM_CALLBACK_TYPE_GSI`).
pub const HVM_PARAM_CALLBACK_TYPE_GSI: u64 = 0;
/// Deliver through a PCI INTx line (`HVM_PARAM_CALLBACK_TYPE_PCI_INTX`).
pub const HVM_PARAM_CALLBACK_TYPE_PCI_INTX: u64 = 1;
/// Deliver as an x86 vector in bits 7:0 (`HVM_PARAM_CALLBACK_TYPE_VECTOR`); needs
/// `XENFEAT_hvm_callback_vector`.
pub const HVM_PARAM_CALLBACK_TYPE_VECTOR: u64 = 2;

/// The [`HVM_PARAM_CALLBACK_IRQ`] value that delivers upcalls as interrupt `vector`.
pub const fn callback_via_vector(vector: u8) -> u64 {
    (HVM_PARAM_CALLBACK_TYPE_VECTOR << 56) | vector as u64
}

/// `struct xen_hvm_param`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenHvmParam {
    /// IN: the domain ([`DOMID_SELF`](super::DOMID_SELF)).
    pub domid: DomId,
    /// Padding, zero.
    pub pad: u16,
    /// IN: an `HVM_PARAM_*` index.
    pub index: u32,
    /// IN for set, OUT for get.
    pub value: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_callback_encoding() {
        assert_eq!(callback_via_vector(0xf3), 0x0200_0000_0000_00f3);
        assert_eq!(
            callback_via_vector(0xf3) & HVM_PARAM_CALLBACK_IRQ_TYPE_MASK,
            2 << 56
        );
    }
}
