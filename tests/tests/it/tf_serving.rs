//! The stand-in TF Serving server speaks the REST API the lab uses, and its fault knobs do what they say.

use canary_lab_tests::http_client;
use canary_lab_tests::tf_serving::{TfServing, TfServingConfig, top1};
use serde_json::{Value, json};

async fn post(url: &str, body: &Value) -> (u16, Value) {
    let response = http_client().post(url).json(body).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

#[tokio::test]
async fn predictions_status_metadata_and_errors_follow_tf_serving() {
    let resnet50 = TfServing::start("resnet50").await;
    let resnet101 = TfServing::start_with(TfServingConfig::new("resnet101").with_bytes_signature()).await;
    let instance = json!([[[1, 2, 3], [4, 5, 6]]]);
    let body = json!({"instances": [instance]});
    let path = "/v1/models/image_classifier/versions/1:predict";
    let (status, answer50) = post(&format!("{}{path}", resnet50.url()), &body).await;
    assert_eq!(status, 200, "{answer50}");
    let (_, answer101) = post(&format!("{}{path}", resnet101.url()), &body).await;
    let scores = |answer: &Value, key: &str| -> Vec<f64> {
        answer[key][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|score| score.as_f64().unwrap())
            .collect()
    };
    assert_eq!(scores(&answer50, "predictions").len(), 1000);
    assert_ne!(
        top1(&scores(&answer50, "predictions")),
        top1(&scores(&answer101, "predictions"))
    );
    // The columnar form answers with `outputs`, the same scores.
    let (status, columnar) = post(
        &format!("{}/v1/models/image_classifier:predict", resnet50.url()),
        &json!({"inputs": [instance]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(scores(&columnar, "outputs"), scores(&answer50, "predictions"));

    let bytes_body = json!({"signature_name": "serving_bytes", "instances": [{"b64": "aGVsbG8="}]});
    assert_eq!(post(&format!("{}{path}", resnet101.url()), &bytes_body).await.0, 200);
    let (status, refused) = post(&format!("{}{path}", resnet50.url()), &bytes_body).await;
    assert_eq!(
        (status, refused["error"].as_str().unwrap().contains("serving_bytes")),
        (400, true)
    );
    let (status, bad) = post(&format!("{}{path}", resnet50.url()), &json!({"instance": []})).await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (400, Some("Missing 'inputs' or 'instances' key"))
    );
    let (status, unknown) = post(&format!("{}/v1/models/nope:predict", resnet50.url()), &body).await;
    assert_eq!(
        (status, unknown["error"].as_str()),
        (404, Some("Servable not found for request: Latest(nope)"))
    );

    let client = http_client();
    let get = |url: String| {
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let predictions = resnet50.predictions();
    let status = get(format!("{}/v1/models/image_classifier", resnet50.url())).await;
    // TF Serving 2.5.1's GetModelStatusResponse as JSON (`ProcessModelStatusRequest`): every field printed.
    assert_eq!(
        status,
        json!({"model_version_status": [{
            "version": "1",
            "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}
        }]})
    );
    // A status request is no prediction: counted apart, as `--probe auto` tests count them.
    assert_eq!((resnet50.predictions(), resnet50.status_requests()), (predictions, 1));
    let metadata = get(format!(
        "{}/v1/models/image_classifier/versions/1/metadata",
        resnet101.url()
    ))
    .await;
    let signatures = &metadata["metadata"]["signature_def"]["signature_def"];
    assert!(signatures.get("serving_bytes").is_some() && signatures.get("serving_default").is_some());
    let metadata = get(format!("{}/v1/models/image_classifier/metadata", resnet50.url())).await;
    assert!(
        metadata["metadata"]["signature_def"]["signature_def"]
            .get("serving_bytes")
            .is_none()
    );
}

#[tokio::test]
async fn fault_knobs_fail_requests_as_configured() {
    let server = TfServing::start("resnet50").await;
    let url = format!("{}/v1/models/image_classifier:predict", server.url());
    let body = json!({"instances": [[[[0, 0, 0]]]]});
    server.set_error_rate(0.25);
    let mut unavailable = 0;
    for _ in 0..20 {
        if post(&url, &body).await.0 == 503 {
            unavailable += 1;
        }
    }
    assert_eq!(unavailable, 5, "an even spread of 25% over 20 requests");
    server.set_error_rate(0.0);
    server.set_reset(true);
    let reset = http_client().post(&url).json(&body).send().await;
    assert!(reset.is_err(), "{reset:?}");
    server.set_reset(false);
    assert_eq!(post(&url, &body).await.0, 200);
    server.shut_down();
    let refused = http_client().post(&url).json(&body).send().await;
    assert!(refused.is_err_and(|error| error.is_connect() || error.is_request()));
}
