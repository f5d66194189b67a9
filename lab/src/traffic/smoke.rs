//! The smoke prediction of `lab up`: one prediction of the lab's photo through the gateway, which must come back
//! with 1000 scores. Sent and read by [`crate::traffic::tf_serving`].

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::traffic::tf_serving;

/// The body of the smoke prediction: the lab's Grace Hopper photo as the `keras` payload (224×224×3, 'caffe'
/// preprocessing), which `serving_default` of both exported models takes.
pub fn smoke_request_body() -> anyhow::Result<bytes::Bytes> {
    let payload = crate::traffic::payload::build_payload(
        crate::traffic::payload::PayloadKind::Keras,
        crate::traffic::payload::DEFAULT_IMAGE,
    )
    .context("building the smoke prediction's payload")?;
    Ok(payload.body)
}

/// Sends one prediction through the gateway ([`tf_serving::LATEST_PREDICT_PATH`]) and checks it returns 1000 scores
/// (in either of TF Serving's answer forms), retrying refused, 404 or 5xx answers (Envoy takes a moment to receive
/// new routes) until `deadline`.
pub async fn smoke_prediction(url: &str, deadline: Duration) -> anyhow::Result<usize> {
    let endpoint = format!("{url}{}", tf_serving::LATEST_PREDICT_PATH);
    let client = crate::http::client_with_total_timeout(Duration::from_secs(60))?;
    let body = smoke_request_body()?;
    let started = Instant::now();
    let mut last_problem;
    loop {
        let (status, problem) = match tf_serving::predict(&client, &endpoint, &body, &[]).await {
            Ok(answer) if answer.status.is_success() => return smoke_scores(&endpoint, &answer),
            Ok(answer) => {
                let problem = answer.first_scores().err().map(|error| error.to_string());
                (answer.status, problem.unwrap_or_default())
            }
            Err(tf_serving::PredictError::Body { status, error, .. }) if status.is_success() => {
                return Err(anyhow::Error::new(error).context("reading the prediction"));
            }
            Err(tf_serving::PredictError::Body { status, .. }) => (status, format!("HTTP {status}: (body cut off)")),
            // No answer (refused, reset, timed out): asked again like a 5xx.
            Err(error) => (reqwest::StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
        };
        let retry = status.is_server_error() || status == reqwest::StatusCode::NOT_FOUND;
        if !retry {
            anyhow::bail!("the prediction through {endpoint} failed: {problem}");
        }
        last_problem = problem;
        if started.elapsed() >= deadline {
            anyhow::bail!(
                "no prediction through {endpoint} within {}s (last answer: {last_problem})\nhelp: run `cargo xtask lab status`, then `cargo xtask lab up` again",
                deadline.as_secs()
            );
        }
        // Poll again shortly: the deadline above bounds the whole wait.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The number of scores of a successful smoke answer: 1000, or an error that says what came instead.
fn smoke_scores(endpoint: &str, answer: &tf_serving::PredictAnswer) -> anyhow::Result<usize> {
    const HELP: &str = "help: check that the models are ImageNet ResNets (`cargo xtask lab up --models export`)";
    match answer.first_scores() {
        Ok(scores) if scores.len() == 1000 => Ok(scores.len()),
        Ok(scores) => anyhow::bail!(
            "the prediction through {endpoint} returned {} scores, expected 1000\n{HELP}",
            scores.len()
        ),
        Err(error) => {
            anyhow::bail!("the prediction through {endpoint} returned no scores ({error}), expected 1000\n{HELP}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smoke_body_is_one_224_by_224_rgb_image() {
        let body: serde_json::Value = serde_json::from_slice(&smoke_request_body().unwrap()).unwrap();
        let image = &body["instances"][0];
        assert_eq!(image.as_array().unwrap().len(), 224);
        assert_eq!(image[0].as_array().unwrap().len(), 224);
        assert_eq!(image[0][0].as_array().unwrap().len(), 3);
        assert!(image[0][0][0].is_f64(), "keras payloads are floats: {}", image[0][0]);
    }

    fn answer(body: String) -> tf_serving::PredictAnswer {
        tf_serving::PredictAnswer {
            status: reqwest::StatusCode::OK,
            model_version: None,
            body: bytes::Bytes::from(body),
        }
    }

    #[test]
    fn the_smoke_prediction_reads_both_answer_forms() {
        // Before, the smoke prediction read only `predictions` and took a columnar answer for 0 scores.
        let scores = vec![0.001; 1000];
        let rows = answer(serde_json::json!({"predictions": [scores]}).to_string());
        let columns = answer(serde_json::json!({"outputs": [scores]}).to_string());
        assert_eq!(smoke_scores("e", &rows).unwrap(), 1000);
        assert_eq!(smoke_scores("e", &columns).unwrap(), 1000);
        let short = smoke_scores("e", &answer(r#"{"predictions": [[0.5, 0.5]]}"#.into())).unwrap_err();
        assert!(
            short.to_string().contains("returned 2 scores, expected 1000\nhelp:"),
            "{short}"
        );
        let empty = smoke_scores("e", &answer("{}".into())).unwrap_err().to_string();
        assert!(empty.contains("no `predictions` or `outputs`"), "{empty}");
    }
}
