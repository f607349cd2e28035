//! Platform-independent unikernel runtime: platform traits, xenstore client, xenbus framework, executor.
#![no_std]
