//! A model of istiod feeding the ingress gateway: the Envoy harness ([`Envoy`]) whose routes, clusters and endpoints
//! follow what the fake Kubernetes API holds, pushed late the way istiod pushes them.
//!
//! [`IstioGateway::start`] starts the harness with nothing to route and a task that reads the lab's VirtualService,
//! DestinationRule and pods from the [`FakeKube`] every few milliseconds and pushes what istiod would make of them
//! ([`StageRouting::xds`]: Istio's naming, weights, header matches, response headers, default retries) with
//! [`Envoy::serve`]. What makes it a model of a real gateway rather than of the lab:
//! - **Config lags the API.** A change is pushed only once it has been stable for the debounce time (istiod's
//!   `PILOT_DEBOUNCE_AFTER`, 100 ms by default: pilot/pkg/features/pilot.go at 1.12.7), and Envoy applies it a
//!   moment later, so requests sent right after an apply still take the previous routes.
//! - **Endpoints lag readiness.** A pod's address reaches its subset's cluster only `eds_lag` after the pod became
//!   Ready (the EndpointSlice controller, then istiod's EDS push: pilot/pkg/serviceregistry/kube/controller/
//!   endpointslice.go), and leaves it as soon as the pod is Terminating or gone. A cluster without endpoints answers
//!   `503 no healthy upstream`, as a real gateway does right after a rollout.
//! - **Nothing bound, nothing served.** Before the lab applies a VirtualService the gateway has no routes and
//!   answers 404, like a gateway no VirtualService is bound to.
//!
//! The stand-ins behind it play the pods by their `version` label: `backends["resnet50"]` is every Ready pod
//! labelled `version: resnet50`. The gateway pod's ports 8080 and 15000 reach the harness through the fake API's
//! port-forwards ([`Envoy::behind_gateway_pods_of`]).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lab::definition::routing::VirtualServiceSpec;

use crate::envoy::{Envoy, StageRouting};
use crate::fake_kube::{FakeKube, FakeKubeView};

/// The lab's namespace, where the VirtualService, DestinationRule and pods live.
const NAMESPACE: &str = "tf-serving";

/// How often the model looks at the fake API.
const POLL: Duration = Duration::from_millis(10);

/// How late config and endpoints reach the gateway.
#[derive(Debug, Clone, Copy)]
pub struct PushTiming {
    /// A change is pushed once it has been stable this long (istiod's debounce).
    pub debounce: Duration,
    /// A Ready pod's endpoint reaches the gateway this long after the model first saw it Ready.
    pub eds_lag: Duration,
}

impl Default for PushTiming {
    /// istiod's default debounce (100 ms) and an endpoint lag of 300 ms.
    fn default() -> PushTiming {
        PushTiming {
            debounce: Duration::from_millis(100),
            eds_lag: Duration::from_millis(300),
        }
    }
}

/// A running gateway that follows the fake API; Envoy is killed and the follower stopped when dropped.
pub struct IstioGateway {
    envoy: Arc<Envoy>,
    follower: tokio::task::JoinHandle<()>,
    pushes: Arc<AtomicU64>,
}

impl IstioGateway {
    /// Starts the harness behind `kube`'s gateway pods and the task that keeps its config in line with `kube`'s
    /// objects, `backends` (pod label `version` → stand-in address) playing the pods.
    pub async fn start(kube: &FakeKube, backends: BTreeMap<String, SocketAddr>, timing: PushTiming) -> IstioGateway {
        let envoy = Arc::new(Envoy::start(&nothing_bound(), &BTreeMap::new()).await);
        envoy.behind_gateway_pods_of(kube);
        let pushes = Arc::new(AtomicU64::new(0));
        let follower = tokio::spawn(follow(kube.view(), envoy.clone(), backends, timing, pushes.clone()));
        IstioGateway {
            envoy,
            follower,
            pushes,
        }
    }

    /// `http://127.0.0.1:PORT`: the gateway's HTTP port (what a tunnel or `--ingress URL` reaches).
    pub fn url(&self) -> String {
        self.envoy.url()
    }

    /// How many times new config has been pushed.
    pub fn pushes(&self) -> u64 {
        self.pushes.load(Ordering::SeqCst)
    }
}

impl Drop for IstioGateway {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

/// A gateway with no VirtualService bound to it: no routes, no clusters.
fn nothing_bound() -> StageRouting {
    StageRouting {
        virtual_service: VirtualServiceSpec {
            hosts: Vec::new(),
            gateways: Vec::new(),
            http: Vec::new(),
        },
        subsets: BTreeMap::new(),
    }
}

/// What the gateway should hold: the routing and the stand-ins of the versions with live endpoints.
#[derive(Debug, Clone, PartialEq)]
struct Wanted {
    virtual_service: VirtualServiceSpec,
    subsets: BTreeMap<String, BTreeMap<String, String>>,
    endpoints: BTreeMap<String, SocketAddr>,
}

/// The follower: every [`POLL`], what the API holds now → what the gateway should hold; pushed once it has been
/// stable for the debounce time.
async fn follow(
    kube: FakeKubeView,
    envoy: Arc<Envoy>,
    backends: BTreeMap<String, SocketAddr>,
    timing: PushTiming,
    pushes: Arc<AtomicU64>,
) {
    let mut ready_since: HashMap<String, Instant> = HashMap::new();
    let mut pushed = Wanted {
        virtual_service: nothing_bound().virtual_service,
        subsets: BTreeMap::new(),
        endpoints: BTreeMap::new(),
    };
    let mut pending: Option<(Wanted, Instant)> = None;
    loop {
        let live = live_versions(&kube, &mut ready_since, timing.eds_lag);
        let wanted = wanted(&kube, &backends, &live);
        if wanted == pushed {
            pending = None;
        } else {
            let since = match &pending {
                Some((candidate, since)) if *candidate == wanted => *since,
                _ => Instant::now(),
            };
            if since.elapsed() >= timing.debounce {
                let routing = StageRouting {
                    virtual_service: wanted.virtual_service.clone(),
                    subsets: wanted.subsets.clone(),
                };
                envoy.serve(&routing, &wanted.endpoints).await;
                pushes.fetch_add(1, Ordering::SeqCst);
                pushed = wanted;
                pending = None;
            } else {
                pending = Some((wanted, since));
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The `version` labels with at least one pod that has been Ready, and not Terminating, for `eds_lag`.
fn live_versions(kube: &FakeKubeView, ready_since: &mut HashMap<String, Instant>, eds_lag: Duration) -> Vec<String> {
    let mut live = Vec::new();
    let mut seen = Vec::new();
    for pod in kube.objects("pods", NAMESPACE) {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let terminating = !pod["metadata"]["deletionTimestamp"].is_null();
        let ready = pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|condition| condition["type"] == "Ready" && condition["status"] == "True");
        if !ready || terminating {
            continue;
        }
        seen.push(name.clone());
        let since = *ready_since.entry(name).or_insert_with(Instant::now);
        if since.elapsed() >= eds_lag
            && let Some(version) = pod["metadata"]["labels"]["version"].as_str()
        {
            live.push(version.to_string());
        }
    }
    ready_since.retain(|name, _| seen.contains(name));
    live
}

/// `object` without its routes' `corsPolicy`, which this model does not translate because it cannot change an
/// answer to the lab's requests: istiod turns it into the route's CORS policy for Envoy's CORS filter
/// (pilot/pkg/networking/core/v1alpha3/route/route.go, `translateCORSPolicy`, at 1.12.7), and that filter acts only
/// on requests that carry an `Origin` header (envoy docs: configuration/http/http_filters/cors_filter), which the
/// lab and the learners' `curl` never send.
fn without_cors_policy(object: &serde_json::Value) -> serde_json::Value {
    let mut object = object.clone();
    for route in object["spec"]["http"].as_array_mut().into_iter().flatten() {
        if let Some(route) = route.as_object_mut() {
            route.remove("corsPolicy");
        }
    }
    object
}

/// What the gateway should hold for the lab's VirtualService and DestinationRule as the API holds them, with the
/// stand-ins of the `live` versions as endpoints.
fn wanted(kube: &FakeKubeView, backends: &BTreeMap<String, SocketAddr>, live: &[String]) -> Wanted {
    let endpoints: BTreeMap<String, SocketAddr> = backends
        .iter()
        .filter(|(version, _)| live.contains(version))
        .map(|(version, address)| (version.clone(), *address))
        .collect();
    // istiod skips a VirtualService it cannot translate (the API server's validation would have refused it).
    let virtual_service = kube
        .objects("virtualservices", NAMESPACE)
        .first()
        .and_then(|object| VirtualServiceSpec::from_object(&without_cors_policy(object)).ok())
        .unwrap_or_else(|| nothing_bound().virtual_service);
    let mut subsets = BTreeMap::new();
    for rule in kube.objects("destinationrules", NAMESPACE) {
        for subset in rule["spec"]["subsets"].as_array().into_iter().flatten() {
            let (Some(name), Ok(labels)) = (
                subset["name"].as_str(),
                serde_json::from_value::<BTreeMap<String, String>>(subset["labels"].clone()),
            ) else {
                continue;
            };
            subsets.insert(name.to_string(), labels);
        }
    }
    // A subset the DestinationRule lacks selects no pod here: its cluster has no endpoint and answers 503 (istiod
    // routes to a cluster it never builds, which Envoy answers with 503 too).
    for route in &virtual_service.http {
        for destination in &route.route {
            if let Some(subset) = &destination.destination.subset {
                subsets
                    .entry(subset.clone())
                    .or_insert_with(|| BTreeMap::from([("version".to_string(), format!("(no subset {subset})"))]));
            }
        }
    }
    Wanted {
        virtual_service,
        subsets,
        endpoints,
    }
}
