//! A global cell for the runtime's singletons.
//!
//! The runtime runs on one vCPU with interrupts disabled, and no Rust code runs in interrupt
//! context (exception handlers only use [`Global::try_with`] or never return). So a global
//! only needs protection against re-entrancy, which [`Global::with`] turns into a clear panic
//! instead of aliasing `&mut`.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// A value with exclusive, non-reentrant access.
pub struct Global<T> {
    busy: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: access goes through `with`/`try_with`, which hand out one `&mut T` at a time
// (the atomic `busy` flag refuses a second, re-entrant borrow). One vCPU and no threads, so
// no parallelism, and a value never moves to another thread: `T` need not be `Send` (the
// xenstore client may hold a wait hook over `Rc`s).
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    /// A cell holding `value`.
    pub const fn new(value: T) -> Self {
        Self {
            busy: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `f` with exclusive access. Panics if called re-entrantly (from inside `f`).
    #[track_caller]
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        match self.try_with(f) {
            Some(r) => r,
            None => panic!("re-entrant access to a runtime global"),
        }
    }

    /// Runs `f` with exclusive access, or returns `None` if the value is already in use
    /// further up the stack (for the panic and exception paths).
    pub fn try_with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        if self.busy.swap(true, Ordering::Acquire) {
            return None;
        }
        struct Release<'a>(&'a AtomicBool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _release = Release(&self.busy);
        // SAFETY: `busy` was false and is now true until `_release` drops, so this is the
        // only reference to the value.
        Some(f(unsafe { &mut *self.value.get() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_and_reentrancy_detected() {
        let g = Global::new(1u32);
        g.with(|v| *v += 1);
        assert_eq!(g.with(|v| *v), 2);
        let nested = g.with(|_| g.try_with(|_| ()));
        assert_eq!(nested, None);
        assert_eq!(
            g.try_with(|v| *v),
            Some(2),
            "released after the outer borrow"
        );
    }
}
