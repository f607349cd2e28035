//! `xddctl check`: what `up` would do with an appliance, without starting anything (the
//! appliance is loaded, and its PCI devices claimed by [`crate::passthrough::claim`], first).

use crate::appliance::{Appliance, Role};
use crate::passthrough::shown;
use std::collections::BTreeSet;

/// The report: domains, start waves and stop waves.
pub fn describe(app: &Appliance) -> String {
    let names = |wave: &[usize]| {
        wave.iter()
            .map(|&i| app.domains[i].name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let drivers = app
        .domains
        .iter()
        .filter(|d| d.role == Role::Driver)
        .count();
    let mut out = format!(
        "appliance `{}` ({}): {} driver domain(s), {} guest(s) — ok\n",
        app.name,
        app.path.display(),
        drivers,
        app.domains.len() - drivers
    );
    out.push_str("domains:\n");
    let width = app.domains.iter().map(|d| d.name.len()).max().unwrap_or(0);
    for d in &app.domains {
        let mut parts = vec![format!("{:<6}", d.role.label()), d.origin.clone()];
        if d.generated.is_some() {
            parts.push(format!("created from {}", d.config_path.display()));
        }
        if !d.serves.is_empty() {
            let s: Vec<&str> = d.serves.iter().map(|k| k.key()).collect();
            parts.push(format!("serves {}", s.join(", ")));
        }
        if let Some(r) = &d.ready {
            parts.push(format!(
                "ready when {} = 1 (≤ {} s)",
                r.key,
                r.timeout.as_secs_f64()
            ));
        }
        if !d.owns.is_empty() {
            let owns: Vec<String> = d
                .owns
                .iter()
                .enumerate()
                .map(|(i, s)| match d.pci.get(i) {
                    Some(b) => shown(s, *b),
                    None => s.to_string(),
                })
                .collect();
            parts.push(format!("owns PCI {}", owns.join(", ")));
        }
        let devices: Vec<String> = d
            .devices
            .iter()
            .map(|e| {
                let on = e.backend.as_deref().unwrap_or("dom0");
                format!("{} #{} on {on}", e.kind, e.index)
            })
            .collect();
        if !devices.is_empty() {
            parts.push(format!("devices: {}", devices.join(", ")));
        }
        if let Some(p) = &d.sound {
            parts.push(format!("sound policy \"{}\"", p.value()));
        }
        out.push_str(&format!("  {:<width$}  {}\n", d.name, parts.join("; ")));
    }
    out.push_str("start order (each line in parallel, after the lines above are ready):\n");
    for (n, wave) in app.graph.start_waves().iter().enumerate() {
        out.push_str(&format!("  {}. {}\n", n + 1, names(wave)));
    }
    out.push_str("stop order:\n");
    let all: BTreeSet<usize> = (0..app.domains.len()).collect();
    for (n, wave) in app.stop_waves(&all).iter().enumerate() {
        out.push_str(&format!("  {}. {}\n", n + 1, names(wave)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appliance::tests::{files, load, sound_files, APPLIANCE, SOUND_APPLIANCE};

    #[test]
    fn describes_domains_and_orders() {
        let a = load(APPLIANCE, &files()).unwrap();
        let text = describe(&a);
        assert!(text.starts_with(
            "appliance `appliance` (/etc/xdd/appliance.toml): 2 driver domain(s), 2 guest(s) — ok\n"
        ));
        assert!(text.contains(
            "  netdd  driver; config /etc/xdd/netdd.cfg; serves vif; ready when data/ready = 1 \
             (≤ 20 s)\n"
        ), "{text}");
        assert!(
            text.contains(
                "  web2   guest ; config /etc/xen/web2.cfg; created from /run/xdd/web2.cfg; \
             devices: vif #0 on netdd, vif #1 on 0\n"
            ),
            "{text}"
        );
        assert!(
            text.ends_with(
                "start order (each line in parallel, after the lines above are ready):\n  \
             1. netdd, hello\n  2. web1, web2\nstop order:\n  1. web1, web2\n  2. netdd, hello\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn shows_a_guests_sound_policy() {
        let a = load(SOUND_APPLIANCE, &sound_files()).unwrap();
        let text = describe(&a);
        assert!(
            text.contains(
                "vsnd #2 on 0; sound policy \"play volume_mdb=-6000\"\n  quiet    guest ; \
                 config /etc/xen/quiet.cfg; devices: vsnd #0 on sounddd\n"
            ),
            "{text}"
        );
    }
}
