//! PV sound cards served by a driver domain: the policy dom0 gives audioback for a guest's
//! cards. The appliance file's `sound` table of a `[[guest]]` becomes a [`SoundPolicy`];
//! xddctl writes it as `xdd-policy` into each of the guest's card's backend directory
//! (`backend/vsnd/<guest>/<devid>` in the driver domain) right after `xl create`, again
//! when `run` re-attaches the card to a restarted driver domain, and when `up` finds the
//! guest already running (an edited `sound` table applies without a reboot). audioback reads it when the
//! guest opens a stream; without it the driver domain's default (`audioback.policy=`)
//! applies.

use crate::appliance::Domain;
use crate::devices::{is_dom0, DeviceKind};
use crate::timeline::Timeline;
use crate::toolstack::Toolstack;
use crate::vusb::Node;

pub use xen_abi::xdd_policy::{SoundPolicy, MAX_MDB, MIN_MDB, POLICY_KEY};

/// How dom0 writes and logs a [`SoundPolicy`] (its format: [`xen_abi::xdd_policy`]).
pub trait PolicyNode {
    /// The node to write for card `devid` of guest `fe` on driver domain `be`. It inherits
    /// the permissions of the backend directory libxl made (owned by the driver domain,
    /// readable by the guest).
    fn node(&self, be: u32, fe: u32, devid: u32) -> Node;

    /// The timeline detail for card `devid` on driver domain `dd`:
    /// `vsnd 0 on sounddd: policy play volume_mdb=-6000 (xdd-policy)`.
    fn describe(&self, devid: u32, dd: &str) -> String;
}

impl PolicyNode for SoundPolicy {
    fn node(&self, be: u32, fe: u32, devid: u32) -> Node {
        Node {
            path: policy_path(be, fe, devid),
            value: self.value().to_string(),
            perms: None,
        }
    }

    fn describe(&self, devid: u32, dd: &str) -> String {
        let value = match self.value().to_string() {
            v if v.is_empty() => "\"\" (neither play nor record)".to_string(),
            v => v,
        };
        format!("vsnd {devid} on {dd}: policy {value} ({POLICY_KEY})")
    }
}

/// The backend directory of card `devid` of guest `fe` in driver domain `be`.
pub fn backend_dir(be: u32, fe: u32, devid: u32) -> String {
    format!(
        "/local/domain/{be}/backend/{}/{fe}/{devid}",
        DeviceKind::Vsnd.xenstore_dir()
    )
}

/// Where the policy of card `devid` of guest `fe` in driver domain `be` is written.
pub fn policy_path(be: u32, fe: u32, devid: u32) -> String {
    format!("{}/{POLICY_KEY}", backend_dir(be, fe, devid))
}

/// Writes `guest`'s policy (just created as `domid`) into the backend directory of each of
/// its sound cards served by a driver domain, which must be running; logs each on the
/// timeline. Nothing to do for a guest without a `sound` table.
pub fn write_policies(
    guest: &Domain,
    domid: u32,
    ts: &dyn Toolstack,
    tl: &Timeline,
) -> Result<(), String> {
    write_cards(guest, domid, ts, tl, Cards::All)
}

/// Writes the policy of `guest`, found running as `domid` by `up`, into each of its cards
/// that a running driver domain serves (its backend directory exists), so that an edited
/// `sound` table applies from the guest's next stream open. A card with no backend directory
/// is left alone: there is nothing to write into until the card is attached again, and then
/// `run`'s re-attach writes it. Nothing to do for a guest without a `sound` table.
pub fn rewrite_running_policies(
    guest: &Domain,
    domid: u32,
    ts: &dyn Toolstack,
    tl: &Timeline,
) -> Result<(), String> {
    write_cards(guest, domid, ts, tl, Cards::Attached)
}

/// Which of a guest's cards get the policy.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cards {
    /// Every card served by a driver domain; its driver domain must be running.
    All,
    /// Only the cards whose backend directory exists on a running driver domain.
    Attached,
}

fn write_cards(
    guest: &Domain,
    domid: u32,
    ts: &dyn Toolstack,
    tl: &Timeline,
    which: Cards,
) -> Result<(), String> {
    let Some(policy) = guest.sound else {
        return Ok(());
    };
    let cards = served_cards(guest)?;
    if cards.is_empty() {
        return Ok(());
    }
    let list = ts.list()?;
    for (devid, dd) in cards {
        let be = list
            .iter()
            .find(|d| d.name == dd && d.state.is_alive())
            .map(|d| d.domid);
        let be = match (be, which) {
            (Some(be), Cards::All) => be,
            (None, Cards::All) => {
                return Err(format!(
                    "vsnd {devid} policy: the driver domain `{dd}` is not running"
                ))
            }
            (Some(be), Cards::Attached)
                if ts
                    .read(&format!("{}/frontend-id", backend_dir(be, domid, devid)))
                    .is_some() =>
            {
                be
            }
            (_, Cards::Attached) => continue,
        };
        ts.write_nodes(&[policy.node(be, domid, devid)])
            .map_err(|err| format!("vsnd {devid} on {dd}: writing its {POLICY_KEY}: {err}"))?;
        tl.event(&guest.name, "sound", &policy.describe(devid, dd));
    }
    Ok(())
}

/// `guest`'s sound cards served by driver domains: (devid, driver domain name).
fn served_cards(guest: &Domain) -> Result<Vec<(u32, &str)>, String> {
    guest
        .devices
        .iter()
        .filter(|e| e.kind == DeviceKind::Vsnd)
        .filter_map(|e| match &e.backend {
            Some(dd) if !is_dom0(dd) => Some((e, dd.as_str())),
            _ => None,
        })
        .map(|(e, dd)| {
            e.devid()
                .map(|devid| (devid, dd))
                .ok_or_else(|| format!("vsnd #{} on {dd}: its devid is not a number", e.index))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_and_timeline_lines() {
        let p = |play, record, volume_mdb| SoundPolicy {
            play,
            record,
            volume_mdb,
        };
        assert_eq!(
            policy_path(3, 7, 0),
            "/local/domain/3/backend/vsnd/7/0/xdd-policy"
        );
        assert_eq!(
            p(true, false, -6000).describe(0, "sounddd"),
            "vsnd 0 on sounddd: policy play volume_mdb=-6000 (xdd-policy)"
        );
        assert_eq!(
            p(false, false, 0).describe(1, "sounddd"),
            "vsnd 1 on sounddd: policy \"\" (neither play nor record) (xdd-policy)"
        );
        let n = p(true, false, 0).node(3, 7, 1);
        assert_eq!(
            (n.path.as_str(), n.value.as_str(), n.perms),
            ("/local/domain/3/backend/vsnd/7/1/xdd-policy", "play", None)
        );
    }
}
