//! A domain's own xl.cfg (guests, and driver domains given by `config`): read and parsed,
//! its `name =` agreeing with the appliance's, and a copy with the name added in the state
//! directory when the file has none.

use super::checks::check_name;
use super::load::Loader;
use super::model::Settings;
use crate::xlcfg::{quote, XlConfig};
use std::path::{Path, PathBuf};

impl Loader<'_> {
    /// Where a domain's own xl.cfg is created from: the file itself, or (when it has no
    /// `name =`) a copy with the name added in the state directory.
    pub(super) fn with_name(
        &self,
        path: &Path,
        cfg: &XlConfig,
        name: &str,
        settings: &Settings,
    ) -> Result<(PathBuf, Option<String>), String> {
        if cfg.get_str("name").is_some() {
            return Ok((path.to_path_buf(), None));
        }
        let text = self.files.read(path)?;
        let text = format!(
            "{text}\n# added by xddctl ({})\nname = {}\n",
            self.shown,
            quote(name)
        );
        Ok((settings.state_dir.join(format!("{name}.cfg")), Some(text)))
    }

    /// Reads and parses a domain's own xl.cfg.
    pub(super) fn read_cfg(&self, path: &Path, what: &str) -> Result<XlConfig, String> {
        let text = self
            .files
            .read(path)
            .map_err(|e| format!("{}: {what}: {e}", self.shown))?;
        XlConfig::parse(&text, &path.display().to_string()).map_err(|e| e.to_string())
    }

    /// The domain name from the appliance and/or its xl.cfg, which must agree.
    pub(super) fn name_of(
        &self,
        given: Option<String>,
        cfg: Option<&XlConfig>,
        what: &str,
    ) -> Result<String, String> {
        let from_cfg = cfg.and_then(|c| c.get_str("name"));
        let name = match (given, from_cfg) {
            (Some(a), Some(b)) if a != b => {
                let c = cfg.expect("cfg has a name");
                return Err(format!(
                    "{}:{}: name = \"{b}\", but the appliance calls this domain `{a}` \
                     ({}); make them equal",
                    c.source,
                    c.line_of("name").unwrap_or(1),
                    self.shown
                ));
            }
            (Some(a), _) => a,
            (None, Some(b)) => b,
            (None, None) => {
                return Err(match cfg {
                    Some(c) => format!(
                        "{}: no `name =` in this xl.cfg and no `name` for it in {}",
                        c.source, self.shown
                    ),
                    None => format!("{}: {what} needs a `name`", self.shown),
                })
            }
        };
        check_name(&name, &format!("{}: {what}", self.shown))?;
        Ok(name)
    }
}
