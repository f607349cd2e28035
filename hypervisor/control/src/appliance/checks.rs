//! Checks the appliance file makes in several places, with their error texts: a usable
//! domain name, and a timeout in seconds.

use crate::devices::is_dom0;
use std::time::Duration;

/// A timeout in seconds (`default` when unset), refused outside 0..=3600; `what` names the
/// key and `shown` where it is.
pub(super) fn seconds(
    v: Option<f64>,
    default: f64,
    what: &str,
    shown: &str,
) -> Result<Duration, String> {
    let s = v.unwrap_or(default);
    if !(0.0..=3600.0).contains(&s) || s.is_nan() {
        return Err(format!(
            "{shown}: {what} must be between 0 and 3600 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(s))
}

/// Refuses a name xl cannot use for a domain (or dom0's); `what` says where it is.
pub(super) fn check_name(name: &str, what: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || is_dom0(name)
    {
        return Err(format!(
            "{what}: `{name}` is not a usable domain name (letters, digits, '-', '_', '.'; \
             not dom0)"
        ));
    }
    Ok(())
}
