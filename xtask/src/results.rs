//! Parses the agent's `@@XDD` result lines from the serial log and prints the summary table.

use std::collections::BTreeMap;

/// One `@@XDD kind k=v … detail=…` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The kind word (check, timing, metric, scenario-start, scenario-end, done, …).
    pub kind: String,
    /// Key/value fields; `detail` holds the rest of the line.
    pub fields: BTreeMap<String, String>,
}

impl Record {
    /// Parses a serial line; `None` if it carries no record.
    pub fn parse(line: &str) -> Option<Record> {
        let rest = &line[line.find("@@XDD ")? + 6..];
        let (kind, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let mut fields = BTreeMap::new();
        while !rest.is_empty() {
            rest = rest.trim_start();
            if let Some(detail) = rest.strip_prefix("detail=") {
                fields.insert("detail".to_string(), detail.to_string());
                break;
            }
            let (word, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if let Some((k, v)) = word.split_once('=') {
                fields.insert(k.to_string(), v.to_string());
            }
            rest = tail;
        }
        Some(Record {
            kind: kind.to_string(),
            fields,
        })
    }

    /// A field, or "" if absent.
    pub fn get(&self, k: &str) -> &str {
        self.fields.get(k).map(String::as_str).unwrap_or("")
    }
}

/// What happened to one scenario.
#[derive(Debug, Default, Clone)]
pub struct ScenarioResult {
    /// Scenario name.
    pub name: String,
    /// True once the agent reported the scenario's end.
    pub finished: bool,
    /// The agent's verdict.
    pub passed: bool,
    /// Checks as (name, passed, detail).
    pub checks: Vec<(String, bool, String)>,
    /// Timings as (name, milliseconds or None when an event never happened).
    pub timings: Vec<(String, Option<f64>)>,
    /// Metrics as (name, value, unit).
    pub metrics: Vec<(String, String, String)>,
    /// Report lines for people as (section, text), in order.
    pub reports: Vec<(String, String)>,
    /// Duration of the scenario in seconds.
    pub seconds: f64,
}

/// Collects results for `names` from the serial lines (scenarios without results fail).
pub fn collect(names: &[String], lines: &[String]) -> Vec<ScenarioResult> {
    let mut by_name: BTreeMap<String, ScenarioResult> = names
        .iter()
        .map(|n| {
            (
                n.clone(),
                ScenarioResult {
                    name: n.clone(),
                    ..Default::default()
                },
            )
        })
        .collect();
    for r in lines.iter().filter_map(|l| Record::parse(l)) {
        let scenario = if r.kind.starts_with("scenario") {
            r.get("name")
        } else {
            r.get("scenario")
        };
        let Some(s) = by_name.get_mut(scenario) else {
            continue;
        };
        match r.kind.as_str() {
            "check" => s.checks.push((
                r.get("name").to_string(),
                r.get("status") == "pass",
                r.get("detail").to_string(),
            )),
            "timing" => s
                .timings
                .push((r.get("name").to_string(), r.get("ms").parse().ok())),
            "report" => s
                .reports
                // The agent writes spaces in fields as underscores.
                .push((
                    r.get("section").replace('_', " "),
                    r.get("detail").to_string(),
                )),
            "metric" => s.metrics.push((
                r.get("name").to_string(),
                r.get("value").to_string(),
                r.get("unit").to_string(),
            )),
            "scenario-end" => {
                s.finished = true;
                s.passed = r.get("status") == "pass";
                s.seconds = r.get("ms").parse::<f64>().unwrap_or(0.0) / 1000.0;
            }
            _ => {}
        }
    }
    names.iter().filter_map(|n| by_name.remove(n)).collect()
}

impl ScenarioResult {
    /// `text` with every `{t:NAME}` replaced by that timing (`12.34 s`, or `—` when its events
    /// never happened) and `{m:NAME}` by that metric (value and unit).
    pub fn fill(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let tail = &rest[start..];
            let Some(end) = tail.find('}') else { break };
            let key = &tail[1..end];
            let value = if let Some(name) = key.strip_prefix("t:") {
                self.timings
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, ms)| match ms {
                        Some(ms) => format!("{:.2} s", ms / 1000.0),
                        None => "—".to_string(),
                    })
            } else if let Some(name) = key.strip_prefix("m:") {
                self.metrics
                    .iter()
                    .find(|(n, _, _)| n == name)
                    .map(|(_, v, u)| {
                        if u.is_empty() {
                            v.clone()
                        } else {
                            format!("{v} {u}")
                        }
                    })
            } else {
                None
            };
            match value {
                Some(v) => out.push_str(&v),
                None => out.push_str(&tail[..=end]),
            }
            rest = &tail[end + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// Renders the summary table.
pub fn table(results: &[ScenarioResult]) -> String {
    let mut rows: Vec<[String; 5]> = vec![[
        "scenario".into(),
        "result".into(),
        "checks".into(),
        "time".into(),
        "timings / metrics".into(),
    ]];
    for r in results {
        let verdict = match (r.finished, r.passed) {
            (false, _) => "UNFINISHED",
            (true, true) => "pass",
            (true, false) => "FAIL",
        };
        let passed = r.checks.iter().filter(|c| c.1).count();
        let mut extra: Vec<String> = r
            .timings
            .iter()
            .map(|(n, ms)| match ms {
                Some(ms) => format!("{n}={:.2}s", ms / 1000.0),
                None => format!("{n}=never"),
            })
            .collect();
        extra.extend(r.metrics.iter().map(|(n, v, u)| format!("{n}={v}{u}")));
        rows.push([
            r.name.clone(),
            verdict.into(),
            format!("{passed}/{}", r.checks.len()),
            format!("{:.1}s", r.seconds),
            extra.join(" "),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        for (i, w) in widths.iter().enumerate() {
            out.push_str(&format!("{:<w$}  ", row[i], w = w));
        }
        out.push_str(&row[4]);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_collected_and_filled_with_timings_and_metrics() {
        let lines: Vec<String> = [
            "@@XDD scenario-start name=s",
            "@@XDD timing scenario=s name=up ms=1234.5",
            "@@XDD timing scenario=s name=never status=missing",
            "@@XDD metric scenario=s name=mem value=16 unit=MiB",
            "@@XDD report scenario=s section=the_guests detail=web1 got it in {t:up} ({m:mem}, {t:never}, {x})",
            "@@XDD scenario-end name=s status=pass ms=10",
        ]
        .iter()
        .map(|l| l.to_string())
        .collect();
        let r = &collect(&["s".to_string()], &lines)[0];
        assert_eq!(r.reports.len(), 1);
        assert_eq!(r.reports[0].0, "the guests");
        assert_eq!(
            r.fill(&r.reports[0].1),
            "web1 got it in 1.23 s (16 MiB, —, {x})"
        );
    }

    #[test]
    fn parses_records_and_builds_results() {
        let lines: Vec<String> = [
            "noise",
            "@@XDD scenario-start name=a",
            "@@XDD check scenario=a name=ping status=pass ms=1200 detail=",
            "@@XDD check scenario=a name=disk status=fail ms=10 detail=exit 1: cmp: EOF on -",
            "@@XDD timing scenario=a name=connected ms=4512.5",
            "@@XDD timing scenario=a name=never status=missing",
            "@@XDD metric scenario=a name=mem value=96 unit=MiB",
            "@@XDD scenario-end name=a status=fail ms=30500",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let r = collect(&["a".into(), "b".into()], &lines);
        assert_eq!(r.len(), 2);
        assert!(r[0].finished && !r[0].passed);
        assert_eq!(
            r[0].checks[1],
            ("disk".into(), false, "exit 1: cmp: EOF on -".into())
        );
        assert_eq!(
            r[0].timings,
            vec![("connected".into(), Some(4512.5)), ("never".into(), None)]
        );
        assert!(!r[1].finished);
        let t = table(&r);
        assert!(t.contains("FAIL") && t.contains("UNFINISHED") && t.contains("connected=4.51s"));
        assert!(t.contains("mem=96MiB") && t.contains("1/2"));
    }
}
