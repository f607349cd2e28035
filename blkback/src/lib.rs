//! blkif backend: protocol and request logic, host-testable.
#![no_std]
