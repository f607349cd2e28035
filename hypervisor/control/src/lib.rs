//! dom0 side of xdd: the control plane that starts driver domains before the guests that
//! need them, and the xenstore client it (and the testbed agent) use.

pub mod xenstore;
