//! Value parsers for flags: a bad value is a usage error (exit 2) when the command line is parsed, with the reason,
//! never a false verdict later (`--timeout 0` would fail every request and report the stage as failed).

use std::time::Duration;

/// A duration written with its unit, as `30s`, `5m`, `1m30s` or `500ms` (humantime), and more than zero. A bare
/// number is refused: seconds or milliseconds would be a guess.
pub fn duration(text: &str) -> Result<humantime::Duration, String> {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("write the unit: `{text}s`, `{text}ms` or `{text}m`"));
    }
    let parsed =
        humantime::parse_duration(text).map_err(|error| format!("{error} (write e.g. `30s`, `5m`, `500ms`)"))?;
    if parsed == Duration::ZERO {
        return Err("must be more than zero".to_string());
    }
    Ok(parsed.into())
}

/// A pause before an automatic step: `0` (none), or a duration with its unit (`5s`).
pub fn pause(text: &str) -> Result<humantime::Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO.into());
    }
    duration(text)
}

/// A request rate per second for `lab watch`: more than 0, at most 1000 (a view, not a load test).
pub fn rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("\"{text}\" is not a number of requests per second"))?;
    if rate > 0.0 && rate <= 1000.0 {
        Ok(rate)
    } else {
        Err("must be more than 0 and at most 1000 requests per second".to_string())
    }
}

/// A minikube profile name as minikube accepts it: dot-separated DNS labels (letters, digits, inner hyphens), at
/// least two characters (kubernetes/minikube `pkg/minikube/config/profile.go` `ProfileNameValid`). It also names a
/// directory under the state dir, so nothing that could leave it (`..`, `/`) gets through.
pub fn profile(text: &str) -> Result<String, String> {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if text.len() > 1 && text.split('.').all(label_ok) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "\"{text}\" is not a minikube profile name: letters, digits, inner '-' and '.' between parts, at least two characters"
        ))
    }
}

/// A request header, `name=value` or `name: value`, whose name and value HTTP allows.
pub fn header(text: &str) -> Result<(String, String), String> {
    lab::traffic::predict::parse_header(text).map_err(|error| format!("{error:#}"))
}

/// A `lab watch --header-set`: `none`, `stage`, or `name=value` pairs separated by commas.
pub fn header_set(text: &str) -> Result<lab::lifecycle::watch::HeaderSetChoice, String> {
    lab::lifecycle::watch::HeaderSetChoice::parse(text).map_err(|error| format!("{error:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit_and_more_than_zero() {
        assert_eq!(*duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(*duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(*duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(duration("30").unwrap_err().contains("write the unit"));
        assert!(duration("0s").unwrap_err().contains("more than zero"));
        assert!(duration("soon").is_err());
    }

    #[test]
    fn profile_names_are_minikubes() {
        for good in ["minikube", "lab", "lab-2", "my.lab", "a1"] {
            assert!(profile(good).is_ok(), "{good}");
        }
        for bad in ["", "x", "../../escape", "a/b", "-lab", "lab-", "a..b", "lab_1", "la b"] {
            assert!(profile(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pause_may_be_zero_or_a_duration_with_its_unit() {
        assert_eq!(*pause("0").unwrap(), Duration::ZERO);
        assert_eq!(*pause("5s").unwrap(), Duration::from_secs(5));
        assert!(pause("5").is_err());
    }

    #[test]
    fn a_rate_is_positive_and_bounded() {
        assert_eq!(rate("20").unwrap(), 20.0);
        assert_eq!(rate("0.5").unwrap(), 0.5);
        for bad in ["0", "-1", "1001", "fast", "NaN"] {
            assert!(rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_header_is_lab_s_parse_with_its_reason() {
        // The rules are `lab::traffic::predict::parse_header`'s (tested there); here, that clap gets the reason.
        assert_eq!(
            header("user-group=canary").unwrap(),
            ("user-group".into(), "canary".into())
        );
        assert!(
            header("bad header=x")
                .unwrap_err()
                .contains("is not an HTTP header name")
        );
        assert!(header("novalue").is_err());
    }
}
