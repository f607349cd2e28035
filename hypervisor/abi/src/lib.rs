//! Xen public interface (hypercall ABI, event channels, grant tables, xenstore wire format, shared rings) as no_std Rust types.
#![no_std]
