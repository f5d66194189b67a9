//! Which model version answered a prediction: the `x-model-version` response header, or else the fingerprint of
//! the predictions themselves.
//!
//! The fingerprint works because the two models answer the same payload differently: given each version's reference
//! prediction for the payload (fetched from each version directly), a response is attributed to the nearest
//! reference, but only when that one is clearly nearer than the others and close in absolute terms. Anything else
//! is unattributed, which an exact assertion counts as a failure.

use std::collections::BTreeMap;

/// The first instance's scores of a successful predict answer, in any of TF Serving's forms (the one parser,
/// [`crate::traffic::tf_serving::parse_predict_response`]).
pub use crate::traffic::tf_serving::first_scores;

/// A response is attributed to the nearest reference only when it lies within this Euclidean distance of it
/// (scores are softmax probabilities; the same model on the same input differs by far less).
pub const MATCH_DISTANCE: f64 = 0.05;
/// …and only when the nearest reference is at most this fraction of the distance to the second nearest.
pub const AMBIGUITY_RATIO: f64 = 0.25;

/// Each version's reference prediction (the first instance's scores) for the payload being sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct References {
    /// Version → scores.
    pub scores: BTreeMap<String, Vec<f64>>,
}

/// Who answered, as far as the response says.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribution {
    /// This version answered.
    Version(String),
    /// The response does not say, or its predictions are as near to one reference as to another.
    Unattributed,
}

impl References {
    /// References from version → scores.
    pub fn new(scores: BTreeMap<String, Vec<f64>>) -> References {
        References { scores }
    }

    /// Whether there is nothing to compare with.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// The version whose reference is clearly nearest to `scores`, or unattributed.
    pub fn nearest(&self, scores: &[f64]) -> Attribution {
        let mut distances: Vec<(f64, &str)> = Vec::with_capacity(self.scores.len());
        for (version, reference) in &self.scores {
            if reference.len() != scores.len() {
                continue;
            }
            let squared: f64 = reference.iter().zip(scores).map(|(a, b)| (a - b) * (a - b)).sum();
            distances.push((squared.sqrt(), version));
        }
        distances.sort_by(|a, b| a.0.total_cmp(&b.0));
        let Some(&(nearest, version)) = distances.first() else {
            return Attribution::Unattributed;
        };
        let runner_up = distances.get(1).map(|(distance, _)| *distance).unwrap_or(f64::INFINITY);
        let clearly_nearest = nearest <= MATCH_DISTANCE && nearest < AMBIGUITY_RATIO * runner_up;
        if clearly_nearest {
            Attribution::Version(version.to_string())
        } else {
            Attribution::Unattributed
        }
    }
}

/// The version a response's `x-model-version` header names, if it names one (an empty header names none).
pub fn header_version(version_header: Option<&str>) -> Option<&str> {
    version_header.filter(|version| !version.is_empty())
}

/// Attributes a successful response: the version header when it names one, else the fingerprint of `body` (read
/// only when there are references to compare it with).
pub fn attribute(version_header: Option<&str>, body: Option<&[u8]>, references: &References) -> Attribution {
    if let Some(version) = header_version(version_header) {
        return Attribution::Version(version.to_string());
    }
    match body.and_then(first_scores) {
        Some(scores) => references.nearest(&scores),
        None => Attribution::Unattributed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn references() -> References {
        References::new(BTreeMap::from([
            ("resnet50".to_string(), vec![0.7, 0.2, 0.1]),
            ("resnet101".to_string(), vec![0.1, 0.2, 0.7]),
        ]))
    }

    #[test]
    fn the_header_wins() {
        let attribution = attribute(
            Some("resnet101"),
            Some(br#"{"predictions":[[0.7,0.2,0.1]]}"#),
            &references(),
        );
        assert_eq!(attribution, Attribution::Version("resnet101".into()));
    }

    #[test]
    fn the_nearest_reference_wins_when_clearly_nearest() {
        let body = br#"{"predictions":[[0.6999,0.2001,0.1]]}"#;
        assert_eq!(
            attribute(None, Some(body), &references()),
            Attribution::Version("resnet50".into())
        );
        let columnar = br#"{"outputs":{"predictions":[[0.1,0.2,0.7]]}}"#;
        assert_eq!(
            attribute(None, Some(columnar), &references()),
            Attribution::Version("resnet101".into())
        );
    }

    #[test]
    fn ambiguous_far_or_malformed_responses_are_unattributed() {
        for body in [
            &br#"{"predictions":[[0.4,0.2,0.4]]}"#[..],
            br#"{"predictions":[[0.0,1.0,0.0]]}"#,
            br#"{"predictions":[[0.7,0.2]]}"#,
            br#"{"error":"x"}"#,
            b"not json",
        ] {
            assert_eq!(attribute(None, Some(body), &references()), Attribution::Unattributed);
        }
        assert_eq!(attribute(None, None, &references()), Attribution::Unattributed);
        let identical = References::new(BTreeMap::from([
            ("a".to_string(), vec![0.5, 0.5]),
            ("b".to_string(), vec![0.5, 0.5]),
        ]));
        assert_eq!(identical.nearest(&[0.5, 0.5]), Attribution::Unattributed);
    }
}
