//! A guest's `sound` table: what its sound cards on driver domains may do (play, record,
//! the volume streams start at), checked into a [`SoundPolicy`] — the volume in range, and
//! the guest having a `vsnd` card served by a driver domain for it to apply to.

use super::load::{Draft, Loader};
use super::model::Role;
use super::schema::{SoundToml, DEFAULT_PLAY, DEFAULT_RECORD, DEFAULT_VOLUME_DB};
use crate::devices::{is_dom0, DeviceKind};
use crate::vsnd::{SoundPolicy, MAX_MDB, MIN_MDB};

/// Checks a `sound` table (defaults filled in); `at` names the guest in errors.
pub(super) fn sound_policy(t: SoundToml, at: &str) -> Result<SoundPolicy, String> {
    let db = t.volume_db.unwrap_or(DEFAULT_VOLUME_DB);
    let (min, max) = (f64::from(MIN_MDB) / 1000.0, f64::from(MAX_MDB) / 1000.0);
    if !(min..=max).contains(&db) {
        return Err(format!(
            "{at}: sound volume_db = {db} is out of range ({min} to {max} dB)"
        ));
    }
    Ok(SoundPolicy {
        play: t.play.unwrap_or(DEFAULT_PLAY),
        record: t.record.unwrap_or(DEFAULT_RECORD),
        // In range, so the rounded milli-dB fit (and stay in range).
        volume_mdb: (db * 1000.0).round() as i32,
    })
}

impl Loader<'_> {
    /// Refuses a `sound` table on a guest none of whose `vsnd` cards is served by a driver
    /// domain (backends resolved): there is no audioback to give the policy to.
    pub(super) fn check_sound(&self, drafts: &[Draft]) -> Result<(), String> {
        let guests = drafts.iter().filter(|d| d.domain.role == Role::Guest);
        for (i, d) in guests.enumerate() {
            if d.domain.sound.is_none() {
                continue;
            }
            let served = d.domain.devices.iter().any(|e| {
                e.kind == DeviceKind::Vsnd && e.backend.as_deref().is_some_and(|b| !is_dom0(b))
            });
            if !served {
                return Err(format!(
                    "{}: guest #{} `{}`: `sound` is for vsnd cards served by a driver domain, \
                     and it has none (add one to its xl.cfg: vsnd = [ [ 'CARD, \
                     backend=<driver domain>', 'PCM, …', 'STREAM, …' ] ]; or remove `sound`)",
                    self.shown,
                    i + 1,
                    d.domain.name
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::appliance::fixtures::{load, sound_files, SOUND_APPLIANCE};
    use crate::appliance::Appliance;
    use crate::vsnd::SoundPolicy;

    /// [`SOUND_APPLIANCE`] with radio's `sound` table replaced by `table`.
    fn with(table: &str) -> Result<Appliance, String> {
        let text = SOUND_APPLIANCE.replace("sound = { volume_db = -6.0 }", table);
        load(&text, &sound_files())
    }

    fn policy(table: &str) -> Option<SoundPolicy> {
        with(table).unwrap().domain("radio").unwrap().sound
    }

    fn p(play: bool, record: bool, volume_mdb: i32) -> Option<SoundPolicy> {
        Some(SoundPolicy {
            play,
            record,
            volume_mdb,
        })
    }

    #[test]
    fn defaults_play_without_recording_at_0_db() {
        assert_eq!(policy("sound = {}"), p(true, false, 0));
        assert_eq!(policy("sound = {}").unwrap().value().to_string(), "play");
        // No table: no policy (the driver domain's default applies).
        assert_eq!(policy(""), None);
        let a = load(SOUND_APPLIANCE, &sound_files()).unwrap();
        assert_eq!(a.domain("radio").unwrap().sound, p(true, false, -6000));
        assert_eq!(a.domain("quiet").unwrap().sound, None);
        assert_eq!(a.domain("sounddd").unwrap().sound, None);
    }

    #[test]
    fn explicit_values_become_milli_db() {
        assert_eq!(
            policy("sound = { play = false, record = true, volume_db = -6.5 }"),
            p(false, true, -6500)
        );
        assert_eq!(
            policy("sound = { play = false, record = true, volume_db = -6.5 }")
                .unwrap()
                .value()
                .to_string(),
            "record volume_mdb=-6500"
        );
        assert_eq!(policy("sound = { volume_db = 12 }"), p(true, false, 12_000));
        assert_eq!(
            policy("sound = { volume_db = -100.0 }"),
            p(true, false, -100_000)
        );
        assert_eq!(
            policy("sound = { volume_db = -0.0126 }"),
            p(true, false, -13)
        );
        assert_eq!(
            policy("sound = { play = false }")
                .unwrap()
                .value()
                .to_string(),
            "",
            "neither play nor record"
        );
        // The table form works too.
        let text = SOUND_APPLIANCE.replace(
            "sound = { volume_db = -6.0 }",
            "[guest.sound]\nrecord = true",
        );
        let a = load(&text, &sound_files()).unwrap();
        assert_eq!(a.domain("radio").unwrap().sound, p(true, true, 0));
    }

    #[test]
    fn a_volume_out_of_range_is_one_line_naming_the_guest() {
        for (v, shown) in [("12.5", "12.5"), ("-100.001", "-100.001"), ("nan", "NaN")] {
            assert_eq!(
                with(&format!("sound = {{ volume_db = {v} }}")).unwrap_err(),
                format!(
                    "/etc/xdd/appliance.toml: guest #1 `radio`: sound volume_db = {shown} is \
                     out of range (-100 to 12 dB)"
                )
            );
        }
        assert_eq!(
            with("sound = { loud = true }").unwrap_err(),
            "/etc/xdd/appliance.toml:12:11: unknown field `loud`, expected one of `play`, \
             `record`, `volume_db`"
        );
    }

    #[test]
    fn a_sound_table_needs_a_card_served_by_a_driver_domain() {
        let want = |n: usize, guest: &str| {
            format!(
                "/etc/xdd/appliance.toml: guest #{n} `{guest}`: `sound` is for vsnd cards served \
                 by a driver domain, and it has none (add one to its xl.cfg: vsnd = [ [ 'CARD, \
                 backend=<driver domain>', 'PCM, …', 'STREAM, …' ] ]; or remove `sound`)"
            )
        };
        // quiet's card on dom0 only.
        let mut f = sound_files();
        f.0.insert(
            "/etc/xen/quiet.cfg".into(),
            "name = 'quiet'\nvsnd = [ [ 'CARD, backend=Domain-0', 'PCM, name=dev0' ] ]\n".into(),
        );
        let text = format!("{SOUND_APPLIANCE}sound = {{ play = true }}\n");
        assert_eq!(load(&text, &f).unwrap_err(), want(2, "quiet"));
        // No card at all.
        f.0.insert("/etc/xen/quiet.cfg".into(), "name = 'quiet'\n".into());
        assert_eq!(load(&text, &f).unwrap_err(), want(2, "quiet"));
        // A card with no backend and no [defaults] vsnd: dom0's.
        f.0.insert(
            "/etc/xen/quiet.cfg".into(),
            "name = 'quiet'\nvsnd = [ [ 'CARD', 'PCM, name=dev0' ] ]\n".into(),
        );
        assert_eq!(load(&text, &f).unwrap_err(), want(2, "quiet"));
        // … but with [defaults] vsnd = "sounddd" it is sounddd's.
        let defaults = text.replace(
            "[[driver_domain]]",
            "[defaults]\nvsnd = \"sounddd\"\n\n[[driver_domain]]",
        );
        let a = load(&defaults, &f).unwrap();
        assert_eq!(a.domain("quiet").unwrap().sound, p(true, false, 0));
    }
}
