//! `HYPERVISOR_hvm_op`: HVM parameters (console and xenstore rings).

use super::{addr, addr_mut, op2};
use xen_abi::hypercall::hvm::{XenHvmParam, HVMOP_GET_PARAM, HVMOP_SET_PARAM};
use xen_abi::hypercall::{DOMID_SELF, HYPERVISOR_HVM_OP};
use xen_abi::XenErrno;

/// Reads HVM parameter `index` (`HVM_PARAM_*`) of this domain.
pub fn get_param(index: u32) -> Result<u64, XenErrno> {
    let mut arg = XenHvmParam {
        domid: DOMID_SELF,
        pad: 0,
        index,
        value: 0,
    };
    // SAFETY: HVMOP_get_param reads and writes one `xen_hvm_param` at the pointer.
    unsafe {
        op2(
            HYPERVISOR_HVM_OP,
            HVMOP_GET_PARAM.into(),
            addr_mut(&mut arg),
        )
    }?;
    Ok(arg.value)
}

/// Sets HVM parameter `index` of this domain.
pub fn set_param(index: u32, value: u64) -> Result<(), XenErrno> {
    let arg = XenHvmParam {
        domid: DOMID_SELF,
        pad: 0,
        index,
        value,
    };
    // SAFETY: HVMOP_set_param reads one `xen_hvm_param` at the pointer.
    unsafe { op2(HYPERVISOR_HVM_OP, HVMOP_SET_PARAM.into(), addr(&arg)) }.map(drop)
}
