//! The poll loop: tasks, watch-event routing, deadlines, orderly stop and readiness.
//!
//! ```text
//! loop {
//!     read xenstore; hand each queued watch event to the task that owns its token;
//!     poll every task (each checks its own event channels and timers);
//!     if a stop was requested: stop every task, return the reason;
//!     platform.wait(earliest deadline any task asked for)   // SCHEDOP_poll on Xen
//! }
//! ```
//!
//! Tasks are polled on every pass: a pass is cheap (a task checks `take_pending` on its ports)
//! and it keeps the model free of wakeup bookkeeping. `wait` returns at once while a port is
//! pending and untaken or xenstore has unread bytes, so no notification is lost between a
//! poll and the wait, and the loop never spins while idle.
//!
//! # The readiness contract
//! [`Executor::signal_ready`] writes `data/ready` = `"1"` under the domain's home
//! (`/local/domain/<domid>/data/ready`). Call it once every backend task has been spawned:
//! their watches are registered by then, so every device the toolstack adds from that moment
//! on is served. The dom0 control plane waits for this key before it attaches guests'
//! devices to the driver domain.

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use log::{info, warn};

use crate::platform::{DomId, Platform};
use crate::xenstore::{Event, Store, Xenstore, XsError};

/// Xenstore key (under the domain's home) that signals the domain's backends are published.
pub const READY_KEY: &str = "data/ready";

/// Most watch events dispatched per pass; the rest wait for the next pass (which then does
/// not block), so one noisy watch cannot starve ring work.
pub const EVENTS_PER_PASS: usize = 64;

/// Why the loop stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `control/shutdown` = `poweroff` or `halt`: shut down (SCHEDOP_shutdown poweroff).
    Poweroff,
    /// `control/shutdown` = `reboot`: shut down with reason reboot.
    Reboot,
    /// A task asked to stop because of an unrecoverable error: crash the domain.
    Crash,
}

/// Identifies a spawned task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub usize);

/// What a task may use while it runs.
pub struct Ctx<'a, P: Platform> {
    /// The platform (grants, event channels, clock).
    pub platform: &'a P,
    /// The xenstore connection.
    pub xs: &'a mut Xenstore<P::Xs>,
    now_ns: u64,
    pub(crate) wake: &'a mut Option<u64>,
    stop: &'a mut Option<StopReason>,
    task: TaskId,
}

impl<'a, P: Platform> Ctx<'a, P> {
    /// A context outside an executor (for driving a task by hand in tests or during boot).
    pub fn new(
        platform: &'a P,
        xs: &'a mut Xenstore<P::Xs>,
        task: TaskId,
        wake: &'a mut Option<u64>,
        stop: &'a mut Option<StopReason>,
    ) -> Self {
        let now_ns = platform.now_ns();
        Self {
            platform,
            xs,
            now_ns,
            wake,
            stop,
            task,
        }
    }

    /// Time at the start of this pass.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Asks to be polled again no later than `deadline_ns`. Requests are per pass: ask again
    /// on every poll while the deadline is still wanted.
    pub fn wake_at(&mut self, deadline_ns: u64) {
        *self.wake = Some(self.wake.map_or(deadline_ns, |d| d.min(deadline_ns)));
    }

    /// Asks to be polled again right away (more work than one pass should do).
    pub fn wake_now(&mut self) {
        self.wake_at(self.now_ns);
    }

    /// Asks the loop to stop after this pass.
    pub fn request_stop(&mut self, reason: StopReason) {
        self.stop.get_or_insert(reason);
    }

    /// The full watch token for this task's `sub` token.
    pub fn token(&self, sub: &str) -> String {
        format!("t{}/{sub}", self.task.0)
    }

    /// Watches `path`; its events reach this task's [`Task::on_event`] with token `sub`.
    pub fn watch(&mut self, path: &str, sub: &str) -> Result<(), XsError> {
        let token = self.token(sub);
        self.xs.watch(path, &token)
    }

    /// Removes the watch with token `sub`.
    pub fn unwatch(&mut self, sub: &str) -> Result<(), XsError> {
        let token = self.token(sub);
        self.xs.unwatch(&token)
    }

    /// Reborrows with a shorter lifetime.
    pub fn reborrow(&mut self) -> Ctx<'_, P> {
        Ctx {
            platform: self.platform,
            xs: &mut *self.xs,
            now_ns: self.now_ns,
            wake: &mut *self.wake,
            stop: &mut *self.stop,
            task: self.task,
        }
    }
}

/// A unit of work the executor polls: a backend, the shutdown watcher, a timer-driven job.
pub trait Task<P: Platform> {
    /// Called once when spawned: register watches here. Default: a task without watches.
    fn start(&mut self, _cx: &mut Ctx<'_, P>) -> Result<(), XsError> {
        Ok(())
    }

    /// A watch event (or overflow notice) for one of this task's tokens; `sub` is the token
    /// as given to [`Ctx::watch`]. Default: none expected, ignored.
    fn on_event(&mut self, _cx: &mut Ctx<'_, P>, _sub: &str, _event: &Event) {}

    /// Called on every pass: check event channels, timers, do bounded work.
    fn poll(&mut self, cx: &mut Ctx<'_, P>);

    /// Called once when the loop stops: release what should be released in order.
    fn stop(&mut self, _cx: &mut Ctx<'_, P>) {}
}

/// Shares a task: the executor polls one clone while the caller inspects another.
impl<P: Platform, T: Task<P>> Task<P> for Rc<RefCell<T>> {
    fn start(&mut self, cx: &mut Ctx<'_, P>) -> Result<(), XsError> {
        self.borrow_mut().start(cx)
    }
    fn on_event(&mut self, cx: &mut Ctx<'_, P>, sub: &str, event: &Event) {
        self.borrow_mut().on_event(cx, sub, event)
    }
    fn poll(&mut self, cx: &mut Ctx<'_, P>) {
        self.borrow_mut().poll(cx)
    }
    fn stop(&mut self, cx: &mut Ctx<'_, P>) {
        self.borrow_mut().stop(cx)
    }
}

/// The poll loop over a set of tasks.
pub struct Executor<P: Platform> {
    platform: P,
    xs: Xenstore<P::Xs>,
    tasks: Vec<Box<dyn Task<P>>>,
    stop: Option<StopReason>,
}

/// Splits a routed token `t<id>/<sub>` into its task index and sub-token.
fn route(token: &str) -> Option<(usize, &str)> {
    let rest = token.strip_prefix('t')?;
    let (id, sub) = rest.split_once('/')?;
    Some((id.parse().ok()?, sub))
}

impl<P: Platform> Executor<P> {
    /// An executor with no tasks.
    pub fn new(platform: P, xs: Xenstore<P::Xs>) -> Self {
        Self {
            platform,
            xs,
            tasks: Vec::new(),
            stop: None,
        }
    }

    /// The platform.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// The xenstore connection.
    pub fn xenstore(&mut self) -> &mut Xenstore<P::Xs> {
        &mut self.xs
    }

    /// Adds a task and starts it (registering its watches).
    pub fn spawn(&mut self, task: impl Task<P> + 'static) -> Result<TaskId, XsError> {
        let id = TaskId(self.tasks.len());
        let mut task: Box<dyn Task<P>> = Box::new(task);
        let mut wake = None;
        task.start(&mut Ctx::new(
            &self.platform,
            &mut self.xs,
            id,
            &mut wake,
            &mut self.stop,
        ))?;
        self.tasks.push(task);
        Ok(id)
    }

    /// Writes the readiness key ([`READY_KEY`]); see the module documentation.
    pub fn signal_ready(&mut self) -> Result<(), XsError> {
        signal_ready(&mut self.xs, self.platform.domid())
    }

    /// Asks the loop to stop.
    pub fn request_stop(&mut self, reason: StopReason) {
        self.stop.get_or_insert(reason);
    }

    /// The stop reason, once one was requested.
    pub fn stop_requested(&self) -> Option<StopReason> {
        self.stop
    }

    /// One pass without blocking: dispatch up to [`EVENTS_PER_PASS`] watch events, poll every
    /// task. Returns the deadline to wait for (`Some(now)` when work is left over).
    pub fn run_once(&mut self) -> Option<u64> {
        let mut wake = None;
        if let Err(e) = self.xs.poll() {
            warn!("xenstore: {e}");
        }
        let now = self.platform.now_ns();
        for _ in 0..EVENTS_PER_PASS {
            let Some(event) = self.xs.next_event() else {
                break;
            };
            let Some((idx, sub)) = route(event.token()) else {
                continue;
            };
            let sub = String::from(sub);
            if let Some(task) = self.tasks.get_mut(idx) {
                let mut cx = Ctx::new(
                    &self.platform,
                    &mut self.xs,
                    TaskId(idx),
                    &mut wake,
                    &mut self.stop,
                );
                task.on_event(&mut cx, &sub, &event);
            }
        }
        for (idx, task) in self.tasks.iter_mut().enumerate() {
            let mut cx = Ctx::new(
                &self.platform,
                &mut self.xs,
                TaskId(idx),
                &mut wake,
                &mut self.stop,
            );
            task.poll(&mut cx);
        }
        // Requests made during the pass may have read watch events into the client's buffer:
        // take them now, so the wait below cannot sleep on bytes already consumed.
        if let Err(e) = self.xs.poll() {
            warn!("xenstore: {e}");
        }
        if self.xs.has_events() {
            wake = Some(now);
        }
        wake
    }

    /// Runs until a stop is requested, blocking in [`Platform::wait`] when idle; then stops
    /// every task (in reverse spawn order) and returns the reason. The caller then shuts the
    /// domain down accordingly.
    pub fn run(&mut self) -> StopReason {
        loop {
            let deadline = self.run_once();
            if let Some(reason) = self.stop {
                self.stop_tasks();
                info!("stopping: {reason:?}");
                return reason;
            }
            self.platform.wait(deadline);
        }
    }

    /// Calls every task's [`Task::stop`], last spawned first.
    pub fn stop_tasks(&mut self) {
        let mut wake = None;
        for (idx, task) in self.tasks.iter_mut().enumerate().rev() {
            let mut cx = Ctx::new(
                &self.platform,
                &mut self.xs,
                TaskId(idx),
                &mut wake,
                &mut self.stop,
            );
            task.stop(&mut cx);
        }
    }
}

/// Writes `/local/domain/<domid>/data/ready` = `"1"`: the documented signal that this
/// domain's backends are published (see the module documentation).
pub fn signal_ready<S: Store + ?Sized>(xs: &mut S, domid: DomId) -> Result<(), XsError> {
    let path = format!("/local/domain/{domid}/{READY_KEY}");
    xs.write(&path, b"1")?;
    info!("ready: {path} = 1");
    Ok(())
}

/// Watches `control/shutdown` of this domain and turns `poweroff`, `halt` and `reboot` into
/// an orderly stop, clearing the node as Linux does. Other requests (`suspend`, `sysrq`) are
/// left in place and ignored. Also advertises `control/feature-poweroff` and
/// `feature-reboot`.
#[derive(Debug, Default)]
pub struct ShutdownWatch {
    path: String,
}

impl ShutdownWatch {
    /// A watcher (the path is resolved at start from the platform's domid).
    pub fn new() -> Self {
        Self::default()
    }
}

impl<P: Platform> Task<P> for ShutdownWatch {
    fn start(&mut self, cx: &mut Ctx<'_, P>) -> Result<(), XsError> {
        let control = format!("/local/domain/{}/control", cx.platform.domid());
        for feature in ["feature-poweroff", "feature-reboot"] {
            if let Err(e) = cx.xs.write(&format!("{control}/{feature}"), b"1") {
                warn!("control: cannot advertise {feature}: {e}");
            }
        }
        self.path = format!("{control}/shutdown");
        cx.watch(&self.path.clone(), "shutdown")
    }

    fn on_event(&mut self, cx: &mut Ctx<'_, P>, _sub: &str, _event: &Event) {
        let path = self.path.clone();
        let request = cx.xs.transaction(|tx| {
            let value = tx.read_opt(&path)?.unwrap_or_default();
            let reason = match &value[..] {
                b"poweroff" | b"halt" => Some(StopReason::Poweroff),
                b"reboot" => Some(StopReason::Reboot),
                _ => None,
            };
            if reason.is_some() {
                tx.write(&path, b"")?;
            }
            Ok((reason, value))
        });
        match request {
            Ok((Some(reason), _)) => {
                info!("control/shutdown: {reason:?} requested");
                cx.request_stop(reason);
            }
            Ok((None, value)) if !value.is_empty() => {
                warn!(
                    "control/shutdown: ignoring request {:?}",
                    String::from_utf8_lossy(&value)
                );
            }
            Ok((None, _)) => {}
            Err(e) => warn!("control/shutdown: {e}"),
        }
    }

    fn poll(&mut self, _cx: &mut Ctx<'_, P>) {}
}
