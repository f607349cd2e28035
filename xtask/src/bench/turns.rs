//! The `report` lines of a benchmark scenario whose dom0 driver gives setups their turns
//! round by round: `turn round=R setup=S key=value …` lines (a `fail` value is NaN) and other
//! lines, kept as words (`memory DD MiB`, `status DD KEY VALUE`, …).

use crate::results::ScenarioResult;
use crate::util::Result;
use std::collections::BTreeMap;

/// One setup's turn in one round: figure key → value (NaN for a failed measurement).
#[derive(Debug, Default)]
pub struct Turn {
    /// The round, from 1.
    pub round: u32,
    /// The setup's name.
    pub setup: String,
    /// The figures measured in the turn.
    pub values: BTreeMap<String, f64>,
}

/// Parses a `turn round=R setup=S key=value …` line (`fail` values become NaN).
pub fn parse_turn(line: &str) -> Option<Turn> {
    let rest = line.strip_prefix("turn ")?;
    let mut t = Turn::default();
    for word in rest.split_whitespace() {
        let (k, v) = word.split_once('=')?;
        match k {
            "round" => t.round = v.parse().ok()?,
            "setup" => t.setup = v.to_string(),
            _ => {
                t.values
                    .insert(k.to_string(), v.parse().unwrap_or(f64::NAN));
            }
        }
    }
    (!t.setup.is_empty()).then_some(t)
}

/// What the scenario reported: turns and the other lines as words.
pub struct Report {
    /// Every turn line, in the order reported.
    pub turns: Vec<Turn>,
    /// Every other line, split into words.
    pub other: Vec<Vec<String>>,
}

/// Runs benchmark scenario `name` (tests/bench/), reads its `name` section's turns, adds
/// the derived figures, prints the rendering, and fails when a turn lacks one of the
/// `required` measurements (printed as `fail`).
pub fn run_and_print(
    name: &str,
    derive: fn(&mut Report),
    render: fn(&Report) -> String,
    required: &[&str],
) -> Result {
    let r = super::run_bench_scenario(name)?;
    let mut report = Report::of_section(&r, name)?;
    derive(&mut report);
    print!("{}", render(&report));
    let failed = report.missing(required);
    if failed > 0 {
        return Err(format!(
            "{name} benchmark: {failed} measurements failed (see `fail` above)"
        ));
    }
    Ok(())
}

impl Report {
    /// How many of the `keys` measurements are missing or failed (NaN) over all turns.
    pub fn missing(&self, keys: &[&str]) -> usize {
        self.turns
            .iter()
            .flat_map(|t| keys.iter().map(|k| t.values.get(*k).copied()))
            .filter(|v| v.is_none_or(f64::is_nan))
            .count()
    }

    /// Sorts report lines into turns and others.
    pub fn parse<'a>(lines: impl Iterator<Item = &'a str>) -> Report {
        let mut turns = Vec::new();
        let mut other = Vec::new();
        for l in lines {
            match parse_turn(l) {
                Some(t) => turns.push(t),
                None => other.push(l.split_whitespace().map(String::from).collect()),
            }
        }
        Report { turns, other }
    }

    /// The lines of report section `section` of a scenario result; an error without turns.
    pub fn of_section(r: &ScenarioResult, section: &str) -> Result<Report> {
        let report = Report::parse(
            r.reports
                .iter()
                .filter(|(s, _)| s == section)
                .map(|(_, line)| line.as_str()),
        );
        if report.turns.is_empty() {
            return Err(format!(
                "{section} benchmark: the scenario reported no turns"
            ));
        }
        Ok(report)
    }

    /// The number of rounds (the highest round of a turn).
    pub fn rounds(&self) -> u32 {
        self.turns.iter().map(|t| t.round).max().unwrap_or(0)
    }

    /// A figure of one setup, round by round (NaN where missing or failed).
    pub fn series(&self, setup: &str, key: &str) -> Vec<f64> {
        let mut turns: Vec<&Turn> = self.turns.iter().filter(|t| t.setup == setup).collect();
        turns.sort_by_key(|t| t.round);
        turns
            .iter()
            .map(|t| t.values.get(key).copied().unwrap_or(f64::NAN))
            .collect()
    }

    /// Word `i` (after the first two) of the line `<kind> <name> …`, as a number.
    pub fn word(&self, kind: &str, name: &str, i: usize) -> f64 {
        self.other
            .iter()
            .find(|w| w.len() > 1 && w[0] == kind && w[1] == name)
            .and_then(|w| w.get(2 + i))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    }

    /// The value of the line `<kind> <name> <key> <value>`, as a number (NaN if none).
    pub fn keyed(&self, kind: &str, name: &str, key: &str) -> f64 {
        self.other
            .iter()
            .find(|w| w.len() == 4 && w[0] == kind && w[1] == name && w[2] == key)
            .and_then(|w| w[3].parse().ok())
            .unwrap_or(f64::NAN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_turns_from_other_lines() {
        let rep = Report::parse(
            "turn round=2 setup=a x=2\nturn round=1 setup=a x=fail\nmemory a 16 7\nstatus a passes 12"
                .lines(),
        );
        assert_eq!(rep.rounds(), 2);
        let s = rep.series("a", "x");
        assert!(s[0].is_nan());
        assert_eq!(s[1], 2.0);
        assert!(rep.series("a", "y")[1].is_nan());
        assert_eq!(rep.word("memory", "a", 1), 7.0);
        assert!(rep.word("memory", "b", 0).is_nan());
        assert_eq!(rep.keyed("status", "a", "passes"), 12.0);
        assert!(rep.keyed("status", "a", "direct").is_nan());
    }

    #[test]
    fn rejects_lines_that_are_not_turns() {
        assert!(parse_turn("memory netdd 16").is_none());
        assert!(parse_turn("turn round=x setup=netdd").is_none());
        assert!(parse_turn("turn round=1").is_none());
    }
}
