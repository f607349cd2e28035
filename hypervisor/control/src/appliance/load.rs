//! Loading an appliance file: [`Appliance::load`] and [`Appliance::parse`], and the order
//! of the checks — the file's name and settings, each driver domain and guest (`driver.rs`,
//! `guest.rs`), names unique, backends and dependencies (`backends.rs`), `[[usb]]`
//! (`usb.rs`), sound policies on served cards (`sound.rs`), no dependency cycle. The first
//! mistake found is the error.

use super::backends::parse_defaults;
use super::checks::{check_name, seconds};
use super::files::Files;
use super::model::{Appliance, Domain, Settings};
use super::schema::{toml_error, FileToml, DEFAULT_IMAGE_DIR, DEFAULT_STATE_DIR};
use crate::graph::Graph;
use crate::xlcfg::XlConfig;
use std::collections::BTreeMap;
use std::path::Path;

impl Appliance {
    /// Loads and checks an appliance file.
    pub fn load(path: &Path, files: &dyn Files) -> Result<Appliance, String> {
        let text = files.read(path)?;
        Appliance::parse(&text, path, files)
    }

    /// Checks appliance text (`path` names it in messages and gives the default name).
    pub fn parse(text: &str, path: &Path, files: &dyn Files) -> Result<Appliance, String> {
        let shown = path.display().to_string();
        let file: FileToml = toml::from_str(text).map_err(|e| toml_error(&shown, text, &e))?;
        Loader {
            shown: &shown,
            files,
        }
        .build(file, path)
    }
}

/// A domain before dependencies are resolved.
pub(super) struct Draft {
    /// The domain as far as it is checked.
    pub(super) domain: Domain,
    /// The parsed xl.cfg text it is created from, and its source name for messages.
    pub(super) cfg: XlConfig,
    /// Extra dependencies (`uses`).
    pub(super) uses: Vec<String>,
    /// Where the domain is described, for messages.
    pub(super) what: String,
}

/// What checking one appliance file needs throughout: its name for messages, and the files
/// it refers to.
pub(super) struct Loader<'a> {
    /// The appliance file's path as messages show it.
    pub(super) shown: &'a str,
    /// Where the files it refers to are read.
    pub(super) files: &'a dyn Files,
}

impl Loader<'_> {
    /// Checks the parsed file into an appliance.
    fn build(&self, file: FileToml, path: &Path) -> Result<Appliance, String> {
        let shown = self.shown;
        let name = match file.name {
            Some(n) => n,
            None => path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("appliance")
                .to_string(),
        };
        check_name(&name, &format!("{shown}: name"))?;
        let st = file.settings;
        let ready_timeout = seconds(st.ready_timeout_s, 30.0, "ready_timeout_s", shown)?;
        let settings = Settings {
            image_dir: st.image_dir.unwrap_or_else(|| DEFAULT_IMAGE_DIR.into()),
            state_dir: st.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
            shutdown_timeout: seconds(st.shutdown_timeout_s, 30.0, "shutdown_timeout_s", shown)?,
            reconnect_timeout: seconds(st.reconnect_timeout_s, 30.0, "reconnect_timeout_s", shown)?,
        };
        let defaults = parse_defaults(shown, file.defaults)?;

        let mut drafts = Vec::new();
        for (i, d) in file.driver_domains.into_iter().enumerate() {
            drafts.push(self.driver(d, i, &settings, ready_timeout)?);
        }
        for (i, g) in file.guests.into_iter().enumerate() {
            drafts.push(self.guest(g, i, &settings)?);
        }

        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for d in &drafts {
            if let Some(first) = seen.insert(d.domain.name.clone(), d.what.clone()) {
                return Err(format!(
                    "{shown}: two domains are called `{}`: {first} and {}",
                    d.domain.name, d.what
                ));
            }
        }

        self.resolve_backends(&mut drafts, &defaults, &settings.state_dir)?;
        self.assign_usb(&mut drafts, file.usb)?;
        self.check_sound(&drafts)?;

        let nodes: Vec<(String, Vec<String>)> = drafts
            .iter()
            .map(|d| (d.domain.name.clone(), d.domain.needs.clone()))
            .collect();
        let graph = Graph::new(&nodes).map_err(|e| format!("{shown}: {e}"))?;
        if let Some(cycle) = graph.find_cycle() {
            return Err(format!(
                "{shown}: dependency cycle: {} (each needs the next one ready before it starts)",
                cycle.join(" → ")
            ));
        }
        Ok(Appliance {
            name,
            path: path.to_path_buf(),
            settings,
            domains: drafts.into_iter().map(|d| d.domain).collect(),
            graph,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::appliance::fixtures::{err, err_with, files, load, APPLIANCE};
    use crate::appliance::{Appliance, Readiness, Role};
    use crate::devices::device_entries;
    use crate::xlcfg::XlConfig;
    use std::path::Path;
    use std::time::Duration;

    #[test]
    fn loads_driver_domains_and_guests() {
        let a = load(APPLIANCE, &files()).unwrap();
        assert_eq!(a.name, "appliance");
        let names: Vec<&str> = a.domains.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["netdd", "hello", "web1", "web2"]);
        let netdd = a.domain("netdd").unwrap();
        assert_eq!(netdd.role, Role::Driver);
        assert_eq!(netdd.config_path, Path::new("/etc/xdd/netdd.cfg"));
        assert_eq!(netdd.generated, None);
        assert_eq!(
            netdd.ready,
            Some(Readiness {
                key: "data/ready".into(),
                timeout: Duration::from_secs(20)
            })
        );
        let hello = a.domain("hello").unwrap();
        assert_eq!(hello.config_path, Path::new("/run/xdd/hello.cfg"));
        let text = hello.generated.as_deref().unwrap();
        for line in [
            "name = \"hello\"",
            "type = \"pvh\"",
            "kernel = \"/boot/xdd/hello.elf\"",
            "memory = 16",
            "cmdline = \"hello.greeting=1\"",
            "on_crash = \"destroy\"",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
        assert_eq!(
            hello.ready.as_ref().unwrap().timeout,
            Duration::from_secs(5)
        );
        assert_eq!(
            hello.ready.as_ref().unwrap().path(7),
            "/local/domain/7/data/ready"
        );

        let web1 = a.domain("web1").unwrap();
        assert_eq!(web1.needs, ["netdd"]);
        assert_eq!(web1.generated, None);
        assert_eq!(web1.config_path, Path::new("/etc/xen/web1.cfg"));
        // web2's first vif had no backend: the default applies, written into a copy.
        let web2 = a.domain("web2").unwrap();
        assert_eq!(web2.needs, ["netdd"]);
        assert_eq!(web2.config_path, Path::new("/run/xdd/web2.cfg"));
        let amended = web2.generated.as_deref().unwrap();
        assert!(amended.ends_with(
            "vif = [ \"mac=00:16:3e:00:01:11,backend=netdd\", \"bridge=xenbr0,backend=0\" ]\n"
        ));
        let reparsed = XlConfig::parse(amended, "web2").unwrap();
        let devs = device_entries(&reparsed).unwrap();
        assert_eq!(devs[0].backend.as_deref(), Some("netdd"));
        assert_eq!(devs[1].backend.as_deref(), Some("0"));

        let waves: Vec<Vec<&str>> = a
            .graph
            .start_waves()
            .into_iter()
            .map(|w| w.into_iter().map(|i| a.domains[i].name.as_str()).collect())
            .collect();
        assert_eq!(waves, [vec!["netdd", "hello"], vec!["web1", "web2"]]);
        assert_eq!(a.stop_flag(), Path::new("/run/xdd/appliance.stopping"));
    }

    #[test]
    fn one_clear_error_for_each_mistake() {
        assert_eq!(
            err(&APPLIANCE.replace("image = \"hello\"", "image = \"netback\"")),
            "/etc/xdd/appliance.toml: driver domain `hello`: unknown image `netback`: \
             /boot/xdd/netback.elf does not exist (install it with `xddctl install --images \
             DIR`, or set settings.image_dir)"
        );
        assert_eq!(
            err_with(
                APPLIANCE,
                "/etc/xen/web1.cfg",
                "name='web1'\n\nvif=['backend=netd']"
            ),
            "/etc/xen/web1.cfg:3: vif backend `netd` is not a driver domain of this appliance \
             (driver domains: hello, netdd; /etc/xdd/appliance.toml)"
        );
        assert_eq!(
            err_with(
                APPLIANCE,
                "/etc/xen/web1.cfg",
                "name='web1'\nvif=['backend=hello']"
            ),
            "/etc/xen/web1.cfg:2: vif backend `hello` does not serve vif (it serves nothing; \
             see its `serves` in /etc/xdd/appliance.toml)"
        );
        assert_eq!(
            err_with(APPLIANCE, "/etc/xen/web2.cfg", "name = 'web1'"),
            "/etc/xdd/appliance.toml: two domains are called `web1`: guest (config \
             /etc/xen/web1.cfg) and guest (config /etc/xen/web2.cfg)"
        );
        assert_eq!(
            err_with(APPLIANCE, "/etc/xen/web2.cfg", "name = 'web2'\nvif = [ 'a',\nmemory = 3"),
            "/etc/xen/web2.cfg:3: expected a value or `]` in the list of `vif` (opened on line 2), \
             found `memory`"
        );
        assert_eq!(
            err_with(APPLIANCE, "/etc/xen/web2.cfg", "name = 'Domain-0'"),
            "/etc/xdd/appliance.toml: guest #2: `Domain-0` is not a usable domain name \
             (letters, digits, '-', '_', '.'; not dom0)"
        );
        assert_eq!(
            err(&APPLIANCE.replace(
                "config = \"/etc/xen/web2.cfg\"",
                "config = \"/etc/xen/web2.cfg\"\nname = \"db\""
            )),
            "/etc/xen/web2.cfg:1: name = \"web2\", but the appliance calls this domain `db` \
             (/etc/xdd/appliance.toml); make them equal"
        );
        assert_eq!(
            err_with(APPLIANCE, "/etc/xen/web2.cfg", "memory = 3"),
            "/etc/xen/web2.cfg: no `name =` in this xl.cfg and no `name` for it in \
             /etc/xdd/appliance.toml"
        );
        assert_eq!(
            err(&APPLIANCE.replace("/etc/xen/web2.cfg", "/etc/xen/nope.cfg")),
            "/etc/xdd/appliance.toml: guest #2: cannot read /etc/xen/nope.cfg: No such file or \
             directory"
        );
        assert_eq!(
            err(&APPLIANCE.replace("[defaults]", "[defaults]\nvfi = \"netdd\"")),
            "/etc/xdd/appliance.toml: [defaults] `vfi` is not a device type (vif, disk, \
             usbctrl, vsnd)"
        );
        assert_eq!(
            err(&APPLIANCE.replace("vif = \"netdd\"", "vif = \"hello\"")),
            "/etc/xdd/appliance.toml: [defaults] vif = \"hello\", but `hello` does not serve \
             vif (add \"vif\" to its `serves`)"
        );
        assert_eq!(
            err(&APPLIANCE.replace("image = \"hello\"", "image = \"hello\"\nconfig = \"/x\"")),
            "/etc/xdd/appliance.toml: driver domain #2 `hello`: give either `image` (a \
             unikernel in /boot/xdd) or `config` (an xl.cfg file)"
        );
        assert_eq!(
            err(&APPLIANCE.replace("serves = [\"vif\"]", "serves = [\"vif\"]\nmemory = 64")),
            "/etc/xdd/appliance.toml: driver domain #1: `memory` comes from its xl.cfg \
             (/etc/xdd/netdd.cfg); set it there"
        );
        assert_eq!(
            err(&APPLIANCE.replace(
                "serves = [\"vif\"]",
                "serves = [\"vif\"]\nuses = [\"web1\"]"
            )),
            "/etc/xdd/appliance.toml: driver domain (config /etc/xdd/netdd.cfg): uses `web1`, \
             which is not a driver domain of this appliance (driver domains: hello, netdd)"
        );
        assert_eq!(
            err(&APPLIANCE.replace("ready_timeout_s = 5", "ready_key = \"/data/ready\"")),
            "/etc/xdd/appliance.toml: driver domain #2 `hello`: ready_key `/data/ready` must be \
             a relative xenstore path (like data/ready)"
        );
        assert_eq!(
            err(&APPLIANCE.replace("serves = [\"vif\"]", "serves = [\"net\"]")),
            "/etc/xdd/appliance.toml:12:11: unknown variant `net`, expected one of `vif`, \
             `disk`, `usbctrl`, `vsnd`"
        );
        assert_eq!(
            err(&APPLIANCE.replace("memory = 16", "memroy = 16")),
            "/etc/xdd/appliance.toml:17:1: unknown field `memroy`, expected one of `name`, \
             `image`, `config`, `type`, `memory`, `vcpus`, `devices`, `pci`, `serves`, `uses`, \
             `cmdline`, `xl_extra`, `ready_key`, `ready_timeout_s`, `restart`"
        );
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let mut f = files();
        for p in [
            "/usr/lib/xen/boot/netback.elf",
            "/usr/lib/xen/boot/blkback.elf",
        ] {
            f.0.insert(p.into(), "\x7fELF".into());
        }
        f.0.insert(
            "/etc/xdd/usbdd.cfg".into(),
            "name = 'usbdd'\ntype = 'pv'\nmemory = 128\ndriver_domain = 1\n".into(),
        );
        f.0.insert(
            "/etc/xen/web.cfg".into(),
            "name = 'web'\nvif = [ 'mac=00:16:3e:00:00:10' ]\nusbctrl = [ 'version=2,backend=usbdd' ]\n"
                .into(),
        );
        f.0.insert(
            "/etc/xen/db.cfg".into(),
            "name = 'db'\nvif = [ '' ]\ndisk = [ 'vdev=xvda, target=/srv/db.img' ]\n".into(),
        );
        let text = include_str!("../../dist/appliance.toml");
        let a = Appliance::parse(text, Path::new("/etc/xdd/appliance.toml"), &f).unwrap();
        assert_eq!(a.domain("blkdd").unwrap().needs, ["netdd"]);
        assert_eq!(a.domain("web").unwrap().needs, ["netdd", "usbdd"]);
        assert_eq!(a.domain("db").unwrap().needs, ["blkdd", "netdd"]);
        let order: Vec<Vec<&str>> = a
            .graph
            .start_waves()
            .into_iter()
            .map(|w| w.into_iter().map(|i| a.domains[i].name.as_str()).collect())
            .collect();
        assert_eq!(
            order,
            [vec!["netdd", "usbdd"], vec!["blkdd", "web"], vec!["db"]]
        );
    }

    #[test]
    fn names_a_dependency_cycle() {
        let text = r#"
[[driver_domain]]
name = "stordd"
image = "hello"
serves = ["disk"]
xl_extra = "vif = [ 'backend=netdd' ]"
[[driver_domain]]
name = "netdd"
image = "hello"
serves = ["vif"]
uses = ["stordd"]
[settings]
image_dir = "/boot/xdd"
"#;
        assert_eq!(
            err(text),
            "/etc/xdd/appliance.toml: dependency cycle: stordd → netdd → stordd (each needs \
             the next one ready before it starts)"
        );
        let selfish = r#"
[[driver_domain]]
name = "netdd"
image = "/boot/xdd/hello.elf"
serves = ["vif"]
xl_extra = "vif = [ 'backend=netdd' ]"
"#;
        assert_eq!(
            err(selfish),
            "/etc/xdd/appliance.toml (driver domain `netdd`, generated):13: vif backend `netdd` \
             is this domain itself"
        );
    }
}
