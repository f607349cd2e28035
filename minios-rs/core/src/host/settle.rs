//! Running simulated driver domains until nothing is left to do.

use crate::executor::Executor;

use super::{HostDomain, World};

/// Passes in a row with nothing due that count as settled: a notification one executor
/// sends after another ran is only seen in the next round.
pub const QUIET_ROUNDS: usize = 3;

/// Rounds after which a world that keeps itself busy is a bug in the test or the backend.
pub const MAX_ROUNDS: usize = 2000;

/// Runs one pass of every executor per round until [`QUIET_ROUNDS`] rounds in a row have
/// nothing due now and no unread xenstore bytes (time does not move: only
/// [`World::advance`] or a test moves it). Panics after [`MAX_ROUNDS`] rounds.
pub fn settle(world: &World, execs: &mut [&mut Executor<HostDomain>]) {
    let mut quiet = 0;
    for _ in 0..MAX_ROUNDS {
        let mut busy = false;
        for exec in execs.iter_mut() {
            let deadline = exec.run_once();
            busy |= deadline.is_some_and(|d| d <= world.now_ns())
                || exec.xenstore().transport_mut().pending_bytes() > 0;
        }
        quiet = if busy { 0 } else { quiet + 1 };
        if quiet == QUIET_ROUNDS {
            return;
        }
    }
    panic!("the simulated domains did not settle in {MAX_ROUNDS} rounds");
}
