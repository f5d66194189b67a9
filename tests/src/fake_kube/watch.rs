//! `?watch=true` streams as a 1.24 API server's watch cache serves them: events after the asked resource version,
//! the initial state as ADDED events when none is asked, BOOKMARK events when asked for, the stream closed after
//! `timeoutSeconds`, and a 410 Gone ERROR event for a resource version older than the fake's compacted window.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{Value, json};

use super::controllers::make_deployment_available;
use super::{Key, ResourcePath, Scenario, SharedState, api_version_of, selected};

/// Opens a watch on `resource` (a collection, possibly namespaced) with the list `query`.
pub(super) async fn watch_stream(
    shared: SharedState,
    resource: ResourcePath,
    query: HashMap<String, String>,
) -> Response {
    // A watch opened on a Deployment whose scenario is AvailableOnWatch makes it available: the readiness the
    // client sees then can only have come through this watch.
    if resource.kind.plural == "deployments" {
        let mut locked = shared.0.lock().expect("lock");
        let pending: Vec<Key> = locked
            .objects
            .iter()
            .filter(|((plural, namespace, name), _)| {
                plural == "deployments"
                    && *namespace == resource.namespace
                    && locked.scenarios.get(name) == Some(&Scenario::AvailableOnWatch)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for (_, namespace, name) in pending {
            make_deployment_available(&mut locked, &namespace, &name);
        }
        drop(locked);
        shared.1.notify_waiters();
    }
    let plural = resource.kind.plural.to_string();
    let namespace = resource.namespace.clone();
    let bookmark_kind = json!({"apiVersion": api_version_of(resource.kind), "kind": resource.kind.kind});
    let asked: Option<u64> = query
        .get("resourceVersion")
        .filter(|value| !value.is_empty() && *value != "0")
        .and_then(|value| value.parse().ok());
    let matches = {
        let plural = plural.clone();
        let namespace = namespace.clone();
        let query = query.clone();
        move |event_plural: &str, event_namespace: &str, object: &Value| {
            event_plural == plural && (namespace.is_empty() || event_namespace == namespace) && selected(object, &query)
        }
    };
    let (start, initial, watch_epoch, bookmark_every) = {
        let mut locked = shared.0.lock().expect("lock");
        let current = locked.resource_version;
        let bookmark_every = locked.timing.bookmark_every;
        let watch_epoch = locked.watch_epoch;
        match asked {
            // The watch cache keeps a window of events; an older resource version is gone (kubernetes v1.24
            // staging/src/k8s.io/apiserver/pkg/storage/cacher/watch_cache.go `getAllEventsSinceLocked`: "too old
            // resource version"), answered as an ERROR event on a 200 stream (cacher.go `newErrWatcher`).
            Some(rv) if rv < locked.compacted_to => {
                locked.gone_served += 1;
                let message = format!("too old resource version: {rv} ({})", locked.compacted_to);
                let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                    "message": message, "reason": "Expired", "code": 410});
                let line = json!({"type": "ERROR", "object": status}).to_string() + "\n";
                return Response::builder()
                    .header("content-type", "application/json")
                    .body(Body::from(line))
                    .expect("watch response");
            }
            Some(rv) => (rv, Vec::new(), watch_epoch, bookmark_every),
            // No resource version: the current state as ADDED events, then what follows (the API concepts'
            // "Get State and Start at Most Recent").
            None => {
                let initial: Vec<String> = locked
                    .objects
                    .iter()
                    .filter(|((object_plural, object_namespace, _), object)| {
                        matches(object_plural, object_namespace, object)
                    })
                    .map(|(_, object)| json!({"type": "ADDED", "object": object}).to_string() + "\n")
                    .collect();
                (current, initial, watch_epoch, bookmark_every)
            }
        }
    };
    let bookmarks = query.get("allowWatchBookmarks").is_some_and(|value| value == "true");
    // The server ends a watch after `timeoutSeconds` (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/get.go
    // `ListResource`: the timeout is the request's, else a random 1–2× minRequestTimeout).
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|value| value.parse::<u64>().ok())
        .map(Duration::from_secs);
    let deadline = timeout.map(|timeout| tokio::time::Instant::now() + timeout);
    let initial = futures::stream::iter(
        initial
            .into_iter()
            .map(|line| Ok::<_, std::io::Error>(Bytes::from(line))),
    );
    let following = futures::stream::unfold(start, move |cursor| {
        let shared = shared.clone();
        let matches = matches.clone();
        let bookmark_kind = bookmark_kind.clone();
        async move {
            loop {
                let notified = shared.1.notified();
                let (next, current, closed) = {
                    let locked = shared.0.lock().expect("lock");
                    let next = locked
                        .events
                        .iter()
                        .find(|event| {
                            event.resource_version > cursor && matches(&event.plural, &event.namespace, &event.object)
                        })
                        .cloned();
                    (next, locked.resource_version, locked.watch_epoch != watch_epoch)
                };
                if closed {
                    return None;
                }
                if let Some(event) = next {
                    let line = json!({"type": event.event_type, "object": event.object}).to_string() + "\n";
                    return Some((Ok::<_, std::io::Error>(Bytes::from(line)), event.resource_version));
                }
                let until_deadline =
                    deadline.map(|deadline| deadline.saturating_duration_since(tokio::time::Instant::now()));
                if until_deadline == Some(Duration::ZERO) {
                    return None;
                }
                let wait = match (bookmarks, until_deadline) {
                    (true, Some(left)) => left.min(bookmark_every),
                    (true, None) => bookmark_every,
                    (false, Some(left)) => left,
                    (false, None) => Duration::from_secs(3600),
                };
                let woken = tokio::time::timeout(wait, notified).await.is_ok();
                let timed_out = deadline.is_some_and(|deadline| tokio::time::Instant::now() >= deadline);
                if !woken && bookmarks && !timed_out {
                    // A bookmark: only the resource version the client has caught up to (cacher.go
                    // `newBookmarkEvent`, sent to watches that set allowWatchBookmarks).
                    let mut object = bookmark_kind.clone();
                    object["metadata"] = json!({"resourceVersion": current.to_string()});
                    let line = json!({"type": "BOOKMARK", "object": object}).to_string() + "\n";
                    return Some((Ok(Bytes::from(line)), current.max(cursor)));
                }
            }
        }
    });
    use futures::StreamExt;
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(initial.chain(following)))
        .expect("watch response")
}
