//! `xddctl status`: one row per domain (the appliance's, then the others running): role,
//! state, readiness, memory, uptime, the PCI devices it holds, and the backends it serves (or
//! uses) with their xenbus states.

use crate::appliance::{Appliance, Role};
use crate::devices::DeviceKind;
use crate::passthrough::holders;
use crate::pci::Bdf;
use crate::toolstack::{DomainInfo, Toolstack};
use std::collections::BTreeMap;
use xen_abi::xenbus::XenbusState;

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Domain name.
    pub domain: String,
    /// driver, guest, dom0 or other.
    pub role: String,
    /// Domain id, or "-".
    pub id: String,
    /// running, paused, shutdown, crashed, dying or stopped.
    pub state: String,
    /// yes / no (key value) for driver domains, "-" otherwise.
    pub ready: String,
    /// Backends served (driver domains) or used (guests), with xenbus states.
    pub backends: String,
    /// Memory in MiB, or "-".
    pub memory: String,
    /// Uptime h:mm:ss, or "-".
    pub uptime: String,
    /// PCI functions it holds (`xl pci-list`), or "-".
    pub pci: String,
}

/// A xenbus state node value as a word (`4` → Connected).
pub fn state_name(value: Option<&str>) -> String {
    match value {
        None => "gone".into(),
        Some(v) => match XenbusState::parse(v.as_bytes()) {
            Ok(s) => format!("{s:?}"),
            Err(_) => format!("`{v}`?"),
        },
    }
}

fn hms(secs: u64) -> String {
    let (d, rest) = (secs / 86_400, secs % 86_400);
    let hms = format!("{}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
    if d > 0 {
        format!("{d}d {hms}")
    } else {
        hms
    }
}

/// What a driver domain serves: `vif web1/0 Connected, …`.
fn served(ts: &dyn Toolstack, domid: u32, names: &BTreeMap<u32, String>) -> String {
    let base = format!("/local/domain/{domid}/backend");
    let mut out = Vec::new();
    // Consoles are served by xenconsoled through their own page; their state says nothing.
    for kind in ts.directory(&base).into_iter().filter(|k| k != "console") {
        let shown = DeviceKind::from_xenstore_dir(&kind)
            .map(|k| k.key().to_string())
            .unwrap_or(kind.clone());
        for fe in ts.directory(&format!("{base}/{kind}")) {
            let fe_name = fe
                .parse::<u32>()
                .ok()
                .and_then(|id| names.get(&id).cloned())
                // A frontend domain that no longer exists: its backend directory outlived
                // it (e.g. dom0's pciback after a driver domain's destroy).
                .unwrap_or_else(|| format!("domid {fe} (gone)"));
            for devid in ts.directory(&format!("{base}/{kind}/{fe}")) {
                let st = ts.read(&format!("{base}/{kind}/{fe}/{devid}/state"));
                let n: u32 = devid.parse().unwrap_or(u32::MAX);
                let mut text = format!("{shown} {fe_name}/{devid} {}", state_name(st.as_deref()));
                if kind == "vusb" {
                    text.push_str(&usb_ports(ts, &format!("{base}/{kind}/{fe}/{devid}")));
                }
                if kind == "vsnd" {
                    let data = format!("/local/domain/{domid}/data/vsnd/{fe}/{devid}");
                    text.push_str(&sound_counters(ts, &data));
                }
                out.push(((shown.clone(), fe_name.clone(), n), text));
            }
        }
    }
    // By type, frontend name and devid: stable however domids were handed out.
    out.sort();
    out.into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A PVUSB controller's ports with a device: ` (port 1: 1-9)`, or ` (4 ports, no device)`.
fn usb_ports(ts: &dyn Toolstack, dir: &str) -> String {
    let ports = crate::vusb::read_ports(ts, dir);
    let used: Vec<String> = ports
        .iter()
        .filter(|(_, d)| !d.is_empty())
        .map(|(n, d)| format!("port {n}: {d}"))
        .collect();
    if used.is_empty() {
        format!(" ({} ports, no device)", ports.len())
    } else {
        format!(" ({})", used.join("; "))
    }
}

/// A sound card's counters and streams (audioback's `data/vsnd/…`): ` (played 1.4 MiB,
/// recorded 0 KiB, 0 underruns; stream 0 playback running 48000 Hz s16_le 2 ch, 0
/// underruns; stream 1 capture closed, 0 underruns)`, or nothing before the first
/// publication.
fn sound_counters(ts: &dyn Toolstack, data: &str) -> String {
    let read = |k: &str| {
        ts.read(&format!("{data}/{k}"))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let counters = [
        read("bytes_played"),
        read("bytes_recorded"),
        read("underruns"),
    ];
    let streams = sound_streams(ts, &format!("{data}/stream"));
    if counters.iter().all(Option::is_none) && streams.is_empty() {
        return String::new();
    }
    // Counters are published when they change: one not there yet is still 0.
    let [played, recorded, underruns] = counters.map(|c| c.unwrap_or(0));
    let size = |b: u64| {
        if b >= 1 << 20 {
            format!("{:.1} MiB", b as f64 / f64::from(1 << 20))
        } else {
            format!("{} KiB", b / 1024)
        }
    };
    let mut parts = vec![format!(
        "played {}, recorded {}, {underruns} underruns",
        size(played),
        size(recorded)
    )];
    parts.extend(streams);
    format!(" ({})", parts.join("; "))
}

/// Longest stream line shown (what a driver domain wrote, cut).
const MAX_STREAM_LINE: usize = 80;

/// A card's streams in their order: `stream 0 playback running 48000 Hz s16_le 2 ch, 0
/// underruns`. The lines come from the driver domain: only printable ASCII is shown, cut
/// to [`MAX_STREAM_LINE`].
fn sound_streams(ts: &dyn Toolstack, dir: &str) -> Vec<String> {
    let mut index: Vec<u32> = ts
        .directory(dir)
        .iter()
        .filter_map(|i| i.parse().ok())
        .collect();
    index.sort_unstable();
    index
        .into_iter()
        .filter_map(|i| {
            let line = ts.read(&format!("{dir}/{i}"))?;
            let shown: String = line
                .chars()
                .filter(|c| c.is_ascii_graphic() || *c == ' ')
                .take(MAX_STREAM_LINE)
                .collect();
            Some(format!("stream {i} {shown}"))
        })
        .collect()
}

/// What a domain uses from driver domains: `vif/0 on netdd Connected, …` (dom0 backends are
/// left out).
fn used(ts: &dyn Toolstack, domid: u32, names: &BTreeMap<u32, String>) -> String {
    let base = format!("/local/domain/{domid}/device");
    let mut out = Vec::new();
    for dir in ts.directory(&base) {
        let Some(kind) = DeviceKind::from_xenstore_dir(&dir) else {
            continue;
        };
        for devid in ts.directory(&format!("{base}/{dir}")) {
            let node = format!("{base}/{dir}/{devid}");
            let Some(bid) = ts
                .read(&format!("{node}/backend-id"))
                .and_then(|b| b.parse::<u32>().ok())
            else {
                continue;
            };
            if bid == 0 {
                continue;
            }
            let bname = names
                .get(&bid)
                .cloned()
                .unwrap_or_else(|| format!("domid {bid} (gone)"));
            let st = ts.read(&format!("{node}/state"));
            out.push(format!(
                "{kind}/{devid} on {bname} {}",
                state_name(st.as_deref())
            ));
        }
    }
    out.join(", ")
}

/// Gathers the rows (the appliance's domains first, in its order; then the others).
pub fn gather(app: Option<&Appliance>, ts: &dyn Toolstack) -> Result<Vec<Row>, String> {
    let list = ts.list()?;
    let uptimes = ts.uptimes().unwrap_or_default();
    let names: BTreeMap<u32, String> = list.iter().map(|d| (d.domid, d.name.clone())).collect();
    let by_name: BTreeMap<&str, &DomainInfo> = list.iter().map(|d| (d.name.as_str(), d)).collect();
    let mut pci: BTreeMap<u32, Vec<Bdf>> = BTreeMap::new();
    for (bdf, h) in holders(ts).unwrap_or_default() {
        pci.entry(h.domid).or_default().push(bdf);
    }
    let mut rows = Vec::new();
    let mut listed = Vec::new();
    let dash = || "-".to_string();
    if let Some(app) = app {
        for d in &app.domains {
            listed.push(d.name.clone());
            let Some(info) = by_name.get(d.name.as_str()) else {
                rows.push(Row {
                    domain: d.name.clone(),
                    role: d.role.label().into(),
                    id: dash(),
                    state: "stopped".into(),
                    ready: if d.role == Role::Driver {
                        "no".into()
                    } else {
                        dash()
                    },
                    backends: dash(),
                    memory: dash(),
                    uptime: dash(),
                    pci: dash(),
                });
                continue;
            };
            let ready = match &d.ready {
                Some(r) => match ts.read(&r.path(info.domid)).as_deref() {
                    Some("1") => "yes".into(),
                    Some(v) => format!("no ({}={v})", r.key),
                    None => format!("no (no {})", r.key),
                },
                None => dash(),
            };
            let backends = match d.role {
                Role::Driver => served(ts, info.domid, &names),
                Role::Guest => used(ts, info.domid, &names),
            };
            rows.push(row(info, d.role.label(), ready, backends, &uptimes, &pci));
        }
    }
    for info in &list {
        if listed.contains(&info.name) {
            continue;
        }
        let role = if info.domid == 0 { "dom0" } else { "other" };
        let mut b = served(ts, info.domid, &names);
        let u = used(ts, info.domid, &names);
        if !u.is_empty() {
            if !b.is_empty() {
                b.push_str("; ");
            }
            b.push_str(&u);
        }
        rows.push(row(info, role, dash(), b, &uptimes, &pci));
    }
    Ok(rows)
}

fn row(
    info: &DomainInfo,
    role: &str,
    ready: String,
    backends: String,
    uptimes: &BTreeMap<String, u64>,
    pci: &BTreeMap<u32, Vec<Bdf>>,
) -> Row {
    let held: Vec<String> = pci
        .get(&info.domid)
        .map(|l| l.iter().map(Bdf::to_string).collect())
        .unwrap_or_default();
    Row {
        domain: info.name.clone(),
        role: role.into(),
        id: info.domid.to_string(),
        state: info.state.label().into(),
        ready,
        backends: if backends.is_empty() {
            "-".into()
        } else {
            backends
        },
        memory: format!("{} MiB", info.memory_mib),
        uptime: uptimes
            .get(&info.name)
            .map(|&s| hms(s))
            .unwrap_or_else(|| "-".into()),
        pci: if held.is_empty() {
            "-".into()
        } else {
            held.join(",")
        },
    }
}

/// The rows as an aligned table with a header.
pub fn render(rows: &[Row]) -> String {
    let header = [
        "DOMAIN", "ROLE", "ID", "STATE", "READY", "MEMORY", "UPTIME", "PCI", "BACKENDS",
    ];
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                r.domain.clone(),
                r.role.clone(),
                r.id.clone(),
                r.state.clone(),
                r.ready.clone(),
                r.memory.clone(),
                r.uptime.clone(),
                r.pci.clone(),
                r.backends.clone(),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for c in &cells {
        for (w, v) in width.iter_mut().zip(c.iter()) {
            *w = (*w).max(v.chars().count());
        }
    }
    let line = |c: &[String]| {
        let mut s = String::new();
        for (i, v) in c.iter().enumerate() {
            if i + 1 == c.len() {
                s.push_str(v);
            } else {
                s.push_str(&format!("{v:<w$}  ", w = width[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&header.map(String::from));
    for c in &cells {
        out.push_str(&line(c));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appliance::tests::{files, load, APPLIANCE};
    use crate::fake::Fake;

    #[test]
    fn shows_roles_readiness_and_xenbus_states() {
        let a = load(APPLIANCE, &files()).unwrap();
        let fake = Fake::new();
        let netdd = fake.add_running("netdd");
        let web1 = fake.add_running("web1");
        fake.add_running("stray");
        {
            let mut s = fake.state();
            s.xs.insert(format!("/local/domain/{netdd}/data/ready"), "1".into());
            s.xs.insert(
                format!("/local/domain/{netdd}/backend/vif/{web1}/0/state"),
                "4".into(),
            );
            s.xs.insert(
                format!("/local/domain/{web1}/device/vif/0/backend-id"),
                netdd.to_string(),
            );
            s.xs.insert(
                format!("/local/domain/{web1}/device/vif/0/state"),
                "4".into(),
            );
            s.xs.insert(
                format!("/local/domain/{web1}/device/vbd/51712/backend-id"),
                "0".into(),
            );
        }
        // A frontend with a smaller domid but a later name is listed after web1.
        let zed = 0;
        fake.state().xs.insert(
            format!("/local/domain/{netdd}/backend/vif/{zed}/3/state"),
            "2".into(),
        );
        // netdd owns a NIC.
        fake.hold_pci("netdd", &["0000:00:10.0", "0000:00:11.0"]);
        // pciback's directory of a domain that is gone.
        fake.state()
            .xs
            .insert("/local/domain/0/backend/pci/9/0/state".into(), "6".into());
        let rows = gather(Some(&a), &fake).unwrap();
        let table = render(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines,
            [
                "DOMAIN    ROLE    ID  STATE    READY  MEMORY  UPTIME   PCI                        \
                 BACKENDS",
                "netdd     driver  1   running  yes    64 MiB  0:00:42  0000:00:10.0,0000:00:11.0  \
                 vif Domain-0/3 InitWait, vif web1/0 Connected",
                "hello     driver  -   stopped  no     -       -        -                          -",
                "web1      guest   2   running  -      64 MiB  0:00:42  -                          \
                 vif/0 on netdd Connected",
                "web2      guest   -   stopped  -      -       -        -                          -",
                // dom0's pciback serves netdd's PCI devices.
                "Domain-0  dom0    0   running  -      64 MiB  0:00:42  -                          \
                 pci domid 9 (gone)/0 Closed, pci netdd/0 Initialised",
                "stray     other   3   running  -      64 MiB  0:00:42  -                          -",
            ]
        );
        // A PVUSB controller shows the devices on its ports.
        let usb = format!("/local/domain/{netdd}/backend/vusb/{web1}/0");
        for (k, v) in [
            ("state", "4"),
            ("num-ports", "2"),
            ("port/1", ""),
            ("port/2", "1-9"),
        ] {
            fake.state().xs.insert(format!("{usb}/{k}"), v.into());
        }
        let rows = gather(Some(&a), &fake).unwrap();
        assert_eq!(
            rows[0].backends,
            "usbctrl web1/0 Connected (port 2: 1-9), vif Domain-0/3 InitWait, vif web1/0 \
             Connected"
        );
        fake.state()
            .xs
            .insert(format!("{usb}/port/2"), String::new());
        let rows = gather(Some(&a), &fake).unwrap();
        assert!(rows[0]
            .backends
            .starts_with("usbctrl web1/0 Connected (2 ports, no device), "));
        // A sound card shows what it played and recorded, and its underruns (a counter not
        // published yet is 0).
        let snd = format!("/local/domain/{netdd}/backend/vsnd/{web1}/0/state");
        fake.state().xs.insert(snd, "4".into());
        for (k, v) in [("bytes_played", "1468006"), ("underruns", "3")] {
            let path = format!("/local/domain/{netdd}/data/vsnd/{web1}/0/{k}");
            fake.state().xs.insert(path, v.into());
        }
        let rows = gather(Some(&a), &fake).unwrap();
        assert!(
            rows[0]
                .backends
                .ends_with(", vsnd web1/0 Connected (played 1.4 MiB, recorded 0 KiB, 3 underruns)"),
            "{}",
            rows[0].backends
        );
        // Its streams follow in their order, as the driver domain wrote them (printable
        // text only).
        let streams = format!("/local/domain/{netdd}/data/vsnd/{web1}/0/stream");
        for (i, line) in [
            ("10", "capture closed, 0 underruns"),
            (
                "2",
                "playback running 48000 Hz s16_le 2 ch, 3 underruns\x1b[2J",
            ),
        ] {
            fake.state()
                .xs
                .insert(format!("{streams}/{i}"), line.into());
        }
        let rows = gather(Some(&a), &fake).unwrap();
        assert!(
            rows[0].backends.ends_with(
                ", vsnd web1/0 Connected (played 1.4 MiB, recorded 0 KiB, 3 underruns; stream 2 \
                 playback running 48000 Hz s16_le 2 ch, 3 underruns[2J; stream 10 capture \
                 closed, 0 underruns)"
            ),
            "{}",
            rows[0].backends
        );
        assert_eq!(state_name(Some("2")), "InitWait");
        assert_eq!(state_name(Some("x")), "`x`?");
        assert_eq!(hms(90_061), "1d 1:01:01");
    }
}
