//! Discovery: the devices the toolstack creates, changes and removes under our
//! `backend/<type>` directory, each probed into a [`DeviceEntry`].

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use log::{info, warn};

use xen_abi::xs_wire::validate_path;

use super::super::{DeviceCtx, DeviceError, DeviceId, XenbusState};
use super::state::switch;
use super::state_limit::StateLimit;
use super::{
    dev_token, parse_id, Backend, BackendDevice, BackendDriver, DeviceEntry, Removal, Thinned,
};
use crate::executor::Ctx;
use crate::platform::{DomId, Platform};
use crate::xenstore::{parse_uint, Store};

impl<P: Platform, D: BackendDriver<P>> Backend<P, D> {
    pub(super) fn rescan(&mut self, cx: &mut Ctx<'_, P>, only_fe: Option<DomId>) {
        let mut present = Vec::new();
        let fes: Vec<DomId> = match only_fe {
            Some(fe) => alloc::vec![fe],
            None => match cx.xs.directory_opt(&self.root) {
                Ok(names) => names.iter().filter_map(|n| parse_id(n)).collect(),
                Err(e) => {
                    warn!("{}: cannot list: {e}", self.root);
                    return;
                }
            },
        };
        for fe in fes {
            match cx.xs.directory_opt(&format!("{}/{fe}", self.root)) {
                Ok(names) => {
                    present.extend(names.iter().filter_map(|n| parse_id(n)).map(|d| (fe, d)))
                }
                Err(e) => warn!("{}/{fe}: cannot list: {e}", self.root),
            }
        }
        let known: Vec<(DomId, u32)> = self
            .slots
            .keys()
            .copied()
            .filter(|(fe, _)| only_fe.is_none_or(|o| o == *fe))
            .collect();
        for key in known.into_iter().chain(present) {
            self.sync(cx, key);
        }
    }

    /// Routes an event on our backend directory.
    pub(super) fn backend_event(&mut self, cx: &mut Ctx<'_, P>, path: &str) {
        let Some(rel) = path
            .strip_prefix(&self.root)
            .and_then(|r| r.strip_prefix('/'))
        else {
            // The root itself (initial fire, removal) or an ancestor: look at everything.
            self.rescan(cx, None);
            return;
        };
        let mut parts = rel.splitn(3, '/');
        let Some(fe) = parts.next().and_then(parse_id::<DomId>) else {
            return;
        };
        let Some(devid) = parts.next() else {
            self.rescan(cx, Some(fe));
            return;
        };
        let Some(devid) = parse_id::<u32>(devid) else {
            return;
        };
        match parts.next() {
            None | Some("state") | Some("online") => self.sync(cx, (fe, devid)),
            Some(key) => {
                let key = String::from(key);
                self.with_device(cx, (fe, devid), |dev, ctx| dev.backend_changed(ctx, &key));
            }
        }
    }

    /// Brings our view of one device in line with its backend directory.
    pub(super) fn sync(&mut self, cx: &mut Ctx<'_, P>, key: (DomId, u32)) {
        let be = format!("{}/{}/{}", self.root, key.0, key.1);
        let state = match cx.xs.read_opt(&format!("{be}/state")) {
            Ok(s) => s,
            Err(e) => {
                warn!("{be}: cannot read state: {e}");
                return;
            }
        };
        let Some(state) = state else {
            if let Some(slot) = self.slots.remove(&key) {
                self.drop_device(cx, slot, "backend directory removed by the toolstack");
            }
            return;
        };
        let offline = matches!(cx.xs.read_opt(&format!("{be}/online")), Ok(Some(v)) if v == b"0");
        let closing = matches!(
            XenbusState::parse(&state),
            Ok(XenbusState::Closing | XenbusState::Closed)
        );
        let removing = self.slots.get(&key).map(|s| s.removal != Removal::None);
        match removing {
            None => self.add(cx, key, be, offline && closing),
            Some(false) if offline && closing => self.begin_removal(cx, key),
            Some(true) if !offline && state == XenbusState::Initialising.as_str().as_bytes() => {
                // The toolstack re-created the device while we were removing the old one:
                // forget the old instance (its directory is the new one's now) and start over.
                if let Some(old) = self.slots.remove(&key) {
                    self.drop_device(cx, old, "replaced by a new instance");
                }
                self.add(cx, key, be, false);
            }
            Some(_) => {}
        }
    }

    pub(super) fn add(
        &mut self,
        cx: &mut Ctx<'_, P>,
        key: (DomId, u32),
        be: String,
        removing: bool,
    ) {
        let (fe, devid) = key;
        let frontend = match cx.xs.read_opt(&format!("{be}/frontend")) {
            Ok(Some(v)) => v,
            Ok(None) => return, // not written yet
            Err(e) => {
                warn!("{be}: cannot read frontend: {e}");
                return;
            }
        };
        let frontend_id = cx.xs.read_opt(&format!("{be}/frontend-id")).ok().flatten();
        let frontend = String::from_utf8(frontend).unwrap_or_default();
        let home = format!("/local/domain/{fe}/");
        if frontend_id.as_deref().and_then(parse_uint) != Some(u64::from(fe))
            || validate_path(&frontend).is_err()
            || !frontend.starts_with(&home)
        {
            warn!("{be}: refusing device: frontend {frontend:?} / frontend-id do not match domain {fe}");
            return;
        }
        let id = DeviceId {
            kind: String::from(self.driver.kind()),
            frontend_id: fe,
            devid,
            backend_path: be,
            frontend_path: frontend,
        };
        info!("{id}: new device, frontend {}", id.frontend_path);
        let mut slot = DeviceEntry {
            id,
            dev: None,
            state: XenbusState::Initialising,
            connected: false,
            failed: false,
            fail_log: Thinned::default(),
            last_fe: None,
            removal: Removal::None,
            state_limit: StateLimit::new(),
            flood_log: Thinned::default(),
        };
        if removing {
            // A leftover the toolstack is already removing: just finish that.
            self.slots.insert(key, slot);
            self.begin_removal(cx, key);
            return;
        }
        let mut publish = Vec::new();
        let probed = {
            let mut wake = None;
            let mut ctx = DeviceCtx::new(cx.platform, cx.xs, &slot.id, &mut wake, &mut publish);
            self.driver
                .probe(&mut ctx)
                .and_then(|mut dev| dev.features(&mut ctx).map(|()| dev))
        };
        match probed {
            Ok(dev) => {
                slot.dev = Some(dev);
                if let Err(e) = switch(cx, &mut slot, XenbusState::InitWait, &publish) {
                    self.fail(cx, &mut slot, e.into());
                }
            }
            Err(e) => self.fail(cx, &mut slot, e.context("probe")),
        }
        // Watched even after a failure: the frontend restarting is how the device recovers.
        if let Err(e) = cx.watch(&slot.id.frontend_path, &dev_token(fe, devid)) {
            self.fail(
                cx,
                &mut slot,
                DeviceError::from(e).context("watch frontend"),
            );
        }
        self.slots.insert(key, slot);
    }
}
