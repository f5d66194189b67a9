//! `lab watch --header-set`: the groups of requests watched side by side, each with its own headers (`none`,
//! `user-group=canary`, or `stage`: the header sets of the recorded stage's assertions), and the `--header` headers
//! every group carries.

use std::collections::BTreeMap;

use crate::definition::stages::AssertionSpec;
use crate::error::LabError;

/// One `--header-set` as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderSetChoice {
    /// These headers (none for `none`).
    Headers(BTreeMap<String, String>),
    /// One set per distinct header set of the recorded stage's assertions (`stage`).
    Stage,
}

impl HeaderSetChoice {
    /// Parses `--header-set`'s value: `none`, `stage`, or `NAME=VALUE` pairs separated by commas (a header value
    /// with a comma cannot be given here; `--header` takes it). Errors name the flag's forms in a `help:` line.
    pub fn parse(text: &str) -> anyhow::Result<HeaderSetChoice> {
        let help = "help: e.g. `--header-set user-group=canary` (`,` between headers), `--header-set none` for \
                    requests without headers, `--header-set stage` for the recorded stage's assertions";
        match text.trim() {
            "" => anyhow::bail!("a header set cannot be empty\n{help}"),
            "none" => return Ok(HeaderSetChoice::Headers(BTreeMap::new())),
            "stage" => return Ok(HeaderSetChoice::Stage),
            _ => {}
        }
        let mut headers = BTreeMap::new();
        for pair in text.split(',') {
            let Some((name, _)) = pair.split_once('=') else {
                anyhow::bail!("header set \"{text}\": \"{}\" is not `name=value`\n{help}", pair.trim());
            };
            if name.trim().is_empty() {
                anyhow::bail!(
                    "header set \"{text}\": \"{}\" has no header name before `=`\n{help}",
                    pair.trim()
                );
            }
            let (name, value) = crate::traffic::predict::parse_header(pair).map_err(|error| {
                // Its first line says what is wrong; its help names `--header`.
                let reason = format!("{error:#}");
                let reason = reason.lines().next().unwrap_or_default().to_string();
                anyhow::anyhow!("header set \"{text}\": {reason}\n{help}")
            })?;
            if headers.insert(name.to_ascii_lowercase(), value).is_some() {
                anyhow::bail!("header set \"{text}\" names header \"{name}\" twice\n{help}");
            }
        }
        Ok(HeaderSetChoice::Headers(headers))
    }
}

/// One group of requests `lab watch` sends and shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedSet {
    /// The set as `--header-set` writes it: `none` or `user-group=canary` (its own headers, without `--header`'s).
    pub name: String,
    /// Every header its requests carry: its own and `--header`'s.
    pub headers: BTreeMap<String, String>,
}

/// The sets to watch: one per `choices` entry (`stage` expanded to the header sets of `stage_assertions`, the
/// recorded stage's, `None` when no stage is recorded), each with `common` added, duplicates dropped; with no `choices`, one set of
/// `common` alone (`lab watch` without `--header-set`). A header in `common` and in a set is refused: it is not
/// clear which value is meant.
pub fn resolve(
    choices: &[HeaderSetChoice],
    common: &BTreeMap<String, String>,
    stage_assertions: Option<&[AssertionSpec]>,
) -> anyhow::Result<Vec<WatchedSet>> {
    if choices.is_empty() {
        return Ok(vec![WatchedSet {
            name: set_name(common),
            headers: common.clone(),
        }]);
    }
    let mut own_sets: Vec<BTreeMap<String, String>> = Vec::new();
    for choice in choices {
        match choice {
            HeaderSetChoice::Headers(headers) => own_sets.push(headers.clone()),
            HeaderSetChoice::Stage => {
                let Some(assertions) = stage_assertions else {
                    return Err(LabError::not_ready(
                        "`--header-set stage` takes the header sets of the stage `lab up` recorded, and none is recorded",
                        "name the sets, e.g. `--header-set none --header-set user-group=canary`, or run `cargo xtask lab up` first",
                    )
                    .into());
                };
                own_sets.extend(assertions.iter().map(|assertion| lowercase_names(assertion.headers())));
            }
        }
    }
    let common = lowercase_names(common);
    let mut sets: Vec<WatchedSet> = Vec::new();
    for own in own_sets {
        if let Some(name) = own.keys().find(|name| common.contains_key(*name)) {
            anyhow::bail!(
                "header \"{name}\" is given by `--header` and by `--header-set {}`: which value is meant is not clear\nhelp: `--header` adds its headers to every set; give \"{name}\" in one of them only",
                set_name(&own)
            );
        }
        let mut headers = common.clone();
        headers.extend(own.iter().map(|(name, value)| (name.clone(), value.clone())));
        if sets.iter().all(|set| set.headers != headers) {
            sets.push(WatchedSet {
                name: set_name(&own),
                headers,
            });
        }
    }
    Ok(sets)
}

/// `none`, or the headers as `--header-set` takes them: `a=1,user-group=canary`.
fn set_name(headers: &BTreeMap<String, String>) -> String {
    if headers.is_empty() {
        return "none".to_string();
    }
    let pairs: Vec<String> = headers.iter().map(|(name, value)| format!("{name}={value}")).collect();
    pairs.join(",")
}

/// HTTP header names are case-insensitive: one spelling, so `User-Group` and `user-group` are one header.
fn lowercase_names(headers: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    fn exact(version: &str, pairs: &[(&str, &str)]) -> AssertionSpec {
        AssertionSpec::Exact {
            version: version.to_string(),
            headers: headers(pairs),
        }
    }

    #[test]
    fn a_spec_is_none_stage_or_pairs() {
        assert_eq!(
            HeaderSetChoice::parse("none").unwrap(),
            HeaderSetChoice::Headers(BTreeMap::new())
        );
        assert_eq!(HeaderSetChoice::parse("stage").unwrap(), HeaderSetChoice::Stage);
        assert_eq!(
            HeaderSetChoice::parse("user-group=canary, X-Debug=1").unwrap(),
            HeaderSetChoice::Headers(headers(&[("user-group", "canary"), ("x-debug", "1")]))
        );
        for (bad, says) in [
            ("", "cannot be empty"),
            ("canary", "\"canary\" is not `name=value`"),
            ("=canary", "has no header name"),
            ("user group=canary", "is not an HTTP header name"),
            ("a=1,A=2", "twice"),
        ] {
            let error = format!("{:#}", HeaderSetChoice::parse(bad).unwrap_err());
            assert!(error.contains(says), "{bad}: {error}");
            assert!(error.contains("help: e.g. `--header-set user-group=canary`"), "{error}");
            assert!(!error.contains("--header user-group"), "{error}");
        }
    }

    #[test]
    fn common_headers_join_every_set_and_duplicates_go() {
        let choices = [
            HeaderSetChoice::Headers(BTreeMap::new()),
            HeaderSetChoice::Stage,
            HeaderSetChoice::Headers(headers(&[("user-group", "canary")])),
        ];
        let assertions = [exact("resnet101", &[("User-Group", "canary")]), exact("resnet50", &[])];
        let sets = resolve(&choices, &headers(&[("x-lab", "1")]), Some(&assertions)).unwrap();
        assert_eq!(
            sets,
            [
                WatchedSet {
                    name: "none".into(),
                    headers: headers(&[("x-lab", "1")]),
                },
                WatchedSet {
                    name: "user-group=canary".into(),
                    headers: headers(&[("user-group", "canary"), ("x-lab", "1")]),
                },
            ]
        );
    }

    #[test]
    fn without_sets_the_common_headers_are_the_one_set() {
        let sets = resolve(&[], &headers(&[("user-group", "canary")]), None).unwrap();
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].name, "user-group=canary");
    }

    #[test]
    fn a_header_in_both_flags_and_stage_without_a_record_are_refused() {
        let choices = [HeaderSetChoice::Headers(headers(&[("user-group", "canary")]))];
        let error = format!(
            "{:#}",
            resolve(&choices, &headers(&[("User-Group", "x")]), None).unwrap_err()
        );
        assert!(error.contains("header \"user-group\" is given by `--header` and by `--header-set user-group=canary`"));
        let error = format!(
            "{:#}",
            resolve(&[HeaderSetChoice::Stage], &BTreeMap::new(), None).unwrap_err()
        );
        assert!(error.contains("none is recorded"), "{error}");
    }
}
