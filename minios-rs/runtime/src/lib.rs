//! Xen PVH runtime for driver-domain unikernels: boot, memory, console, events, grants, xenstore ring.
#![no_std]
