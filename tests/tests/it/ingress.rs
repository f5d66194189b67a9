//! The ingress after `lab up` has ended: `lab stage` and `lab predict` in a later process open their own
//! port-forward, restart a dead `minikube tunnel` or say how to, and `lab down --all` stops the tunnel with an
//! interrupt, as minikube needs to clean up.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::time::Duration;

use canary_lab_tests::assert_contains;
use canary_lab_tests::cli::{Cli, CliOutput};
use canary_lab_tests::envoy::{Envoy, StageRouting};
use canary_lab_tests::fake_kube::FakeKube;
use canary_lab_tests::fake_tools::{FakeTools, Forward, MinikubeCluster, Rule, SignalRecord};
use canary_lab_tests::process::Process;
use canary_lab_tests::tf_serving::TfServing;
use canary_lab_tests::up_args::UpArgs;

const PROFILE: &str = "lab";

/// The fake cluster and tools one test's commands share, with one state directory across processes.
struct Lab {
    kube: FakeKube,
    tools: FakeTools,
    home: tempfile::TempDir,
}

impl Lab {
    /// A lab whose `sudo -n true` works (`passwordless`) or wants a password.
    async fn start(passwordless: bool) -> Lab {
        let kube = FakeKube::start("v1.22.17", "amd64").await;
        let tools = FakeTools::new();
        tools.script_minikube(&MinikubeCluster::healthy(PROFILE));
        tools.script_sudo(passwordless);
        tools.script_istioctl("1.12.7", &kube.url());
        kube.install_istio_when_asked("1.12.7");
        let home = tempfile::tempdir().unwrap();
        kube.write_kubeconfig(&home.path().join("kubeconfig"), PROFILE);
        Lab { kube, tools, home }
    }

    /// The CLI with `args` after the global flags.
    fn cli(&self, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> Cli {
        let home = self.home.path();
        Cli::for_lab(
            PROFILE,
            &home.join("state"),
            &self.tools,
            &home.join("kubeconfig"),
            args,
        )
    }

    /// `lab up --stage stable --no-assert --ingress INGRESS` with short timeouts.
    async fn up(&self, ingress: &str) -> CliOutput {
        let args = UpArgs::new(&self.tools, ingress).stage("stable").no_assert();
        run(self.cli(args.args())).await
    }

    async fn down_all(&self, extra: &[&str]) -> CliOutput {
        let istioctl = self.tools.istioctl_path();
        let mut args = vec!["lab", "down", "--all", "--istioctl", istioctl.to_str().unwrap()];
        args.extend(extra);
        run(self.cli(args)).await
    }

    fn state_file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.home.path().join("state").join(PROFILE).join(name))
            .ok()
            .map(|text| text.trim().to_string())
    }

    fn tunnel_pid(&self) -> u32 {
        self.state_file("tunnel.pid")
            .expect("the tunnel's pid is recorded")
            .parse()
            .unwrap()
    }

    /// Port-forward requests to the ingress gateway's pods so far.
    fn gateway_forwards(&self) -> usize {
        self.kube.gateway_port_forwards(None)
    }

    fn tunnel_starts(&self) -> usize {
        self.tools
            .calls("minikube")
            .iter()
            .filter(|argv| argv.first().map(String::as_str) == Some("tunnel"))
            .count()
    }

    /// Scripts `minikube tunnel` to run until signalled, forwarding `port` on loopback to `gateway` meanwhile
    /// (as the docker driver's `ssh -L` does), after telling the fake API to give the gateway that address.
    fn script_tunnel(&self, port: u16, gateway: SocketAddr, interrupt_cleanup_ms: u64) {
        self.kube.tunnel_gives_address("127.0.0.1", port);
        self.tools.on(
            "minikube",
            &["tunnel"],
            Rule {
                stdout: "Status:\n\tmachine: lab\n\tapiserver: Running\n".into(),
                http_get: Some(format!("{}/fake/tunnel-up", self.kube.url())),
                until_signalled: true,
                interrupt_cleanup_ms,
                forward: Some(Forward {
                    listen: format!("127.0.0.1:{port}"),
                    target: gateway.to_string(),
                }),
                sleep_ms: 120_000,
                ..Rule::default()
            },
        );
    }
}

/// Runs the CLI off the async runtime, failing if it takes more than 180 seconds (the longest run, 270
/// assertions through the fake API's port-forward, takes about 12 s alone; the margin is for a loaded machine).
async fn run(cli: Cli) -> CliOutput {
    tokio::time::timeout(Duration::from_secs(180), cli.run_async())
        .await
        .expect("the CLI did not finish within 180s")
}

/// A loopback port below the ephemeral range (Linux hands out 32768–60999 by default, macOS 49152–65535), free
/// now, and never handed to another test of this binary. The fake tunnel binds it again when restarted; a port the
/// kernel never gives to another socket's `bind(0)` or `connect` cannot be taken meanwhile — but two tests running
/// at once could each find the same port free before either tunnel bound it, and a dead tunnel's address would then
/// be answered by the other test's tunnel. So each port is handed out once per process.
fn port_below_the_ephemeral_range() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap();
    let seed = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64;
    let port = (0..2000u64)
        .map(|step| 20_000 + ((seed + step * 7_919) % 12_000) as u16)
        .find(|port| !handed_out.contains(port) && std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port in 20000..32000");
    handed_out.push(port);
    port
}

/// True while `pid` runs: the lab's own judgement, which a test must share (a zombie, which no parent reaped, has
/// stopped; a thread-group leader that exited before its other threads has not).
fn running(pid: u32) -> bool {
    lab::lifecycle::state::process_alive(pid)
}

/// Kills `pid` (SIGKILL: no cleanup, as when a laptop sleeps through the tunnel or it crashes) and waits, at most
/// 10 seconds, until it has stopped.
async fn kill_hard(pid: u32) {
    // The test kills the tunnel as a crash would.
    let killed = Process::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    assert!(killed.success());
    until_stopped(pid).await;
}

async fn until_stopped(pid: u32) {
    let stopped = async {
        while running(pid) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .unwrap_or_else(|_| panic!("process {pid} still runs after 10s"));
}

fn socket_addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_port_forward_up_stage_and_predict_forward_again_for_their_own_lifetime() {
    let lab = Lab::start(false).await;
    // With the `serving_bytes` signature the body is the JPEG itself, small enough for many requests through the
    // fake API's websocket port-forward.
    let models = canary_lab_tests::traffic::Models::start_with_bytes_signature().await;
    let gateway = Envoy::start(&StageRouting::of_stage("stable"), &models.stable_only()).await;
    lab.kube.port_forward_to(socket_addr(&gateway.url()));
    let up = lab.up("auto").await;
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert_contains!(up.stderr, "via port-forward (open while this command runs)");
    assert_eq!(lab.state_file("ingress-kind").as_deref(), Some("port-forward"));
    let recorded = lab.state_file("ingress-url").unwrap();
    let forwards_by_up = lab.gateway_forwards();

    // The recorded URL died with `lab up`: a later command forwards a port of its own.
    let predict = run(lab.cli(["lab", "predict"])).await;
    assert_eq!(predict.code, 0, "{}\n{}", predict.stdout, predict.stderr);
    assert_contains!(predict.stdout, "served by resnet50");
    assert!(
        !predict.stdout.starts_with(&recorded),
        "not the dead URL:\n{}",
        predict.stdout
    );
    let forwards_by_predict = lab.gateway_forwards();
    assert!(forwards_by_predict > forwards_by_up, "{:#?}", lab.kube.requests());

    let stage = run(lab.cli(["lab", "stage", "stable"])).await;
    assert_eq!(stage.code, 0, "{}\n{}", stage.stdout, stage.stderr);
    assert_contains!(stage.stdout, "stage stable: pass");
    assert!(lab.gateway_forwards() > forwards_by_predict);
    // Nothing records the short-lived URLs of these forwards.
    assert_eq!(lab.state_file("ingress-url"), Some(recorded));
}

#[tokio::test]
async fn a_dead_tunnel_is_reported_with_how_to_restart_it_when_sudo_wants_a_password() {
    let lab = Lab::start(false).await;
    let gateway = TfServing::start("resnet50").await;
    let port = port_below_the_ephemeral_range();
    lab.script_tunnel(port, gateway.addr(), 0);
    let up = lab.up("tunnel").await;
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert_contains!(up.stderr, &format!("http://127.0.0.1:{port} via tunnel"));
    let pid = lab.tunnel_pid();
    kill_hard(pid).await;

    let predict = run(lab.cli(["lab", "predict"])).await;
    assert_eq!(predict.code, 1, "{}\n{}", predict.stdout, predict.stderr);
    for words in [
        &format!("the `minikube tunnel` that `lab up` started (pid {pid}) is no longer running"),
        &format!("http://127.0.0.1:{port}"),
        "sudo -v",
        "minikube tunnel -p lab",
    ] {
        assert_contains!(predict.stderr, words);
    }
    assert_eq!(lab.tunnel_starts(), 1, "no restart without password-less sudo");

    // `lab stage` says the same before it changes anything.
    lab.kube.clear_requests();
    let stage = run(lab.cli(["lab", "stage", "stable"])).await;
    assert_eq!(stage.code, 1, "{}\n{}", stage.stdout, stage.stderr);
    assert_contains!(stage.stderr, "minikube tunnel -p lab");
    assert!(lab.kube.writes().is_empty(), "{:#?}", lab.kube.writes());
}

#[tokio::test]
async fn a_dead_tunnel_is_restarted_and_down_all_interrupts_it() {
    let lab = Lab::start(true).await;
    let gateway = TfServing::start("resnet50").await;
    let port = port_below_the_ephemeral_range();
    lab.script_tunnel(port, gateway.addr(), 0);
    let up = lab.up("tunnel").await;
    assert_eq!(up.code, 0, "{}", up.stderr);
    let first = lab.tunnel_pid();
    kill_hard(first).await;

    let predict = run(lab.cli(["lab", "predict"])).await;
    assert_eq!(predict.code, 0, "{}\n{}", predict.stdout, predict.stderr);
    assert_contains!(
        predict.stdout,
        &format!("http://127.0.0.1:{port} with the keras payload")
    );
    assert_contains!(
        predict.stderr,
        &format!("note: restarted `minikube tunnel` (pid {first} was no longer running)")
    );
    assert_eq!(gateway.predictions(), 2, "the smoke prediction and this one");
    assert_eq!(lab.tunnel_starts(), 2);
    let second = lab.tunnel_pid();
    assert_ne!(second, first);
    assert!(running(second), "the restarted tunnel outlives `lab predict`");

    let down = lab.down_all(&[]).await;
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert_contains!(down.stdout, &format!("minikube tunnel (pid {second}) stopped"));
    until_stopped(second).await;
    assert_eq!(
        lab.tools.signals("minikube"),
        [SignalRecord {
            signal: "SIGINT".into(),
            cleaned_up: true
        }],
        "an interrupt, so the tunnel removed its route and the gateway's external IP"
    );
    assert_eq!(lab.state_file("tunnel.pid"), None);
}

#[tokio::test]
async fn a_tunnel_that_does_not_stop_on_an_interrupt_is_terminated_with_a_warning() {
    let lab = Lab::start(true).await;
    let gateway = TfServing::start("resnet50").await;
    let port = port_below_the_ephemeral_range();
    // Its cleanup hangs (e.g. on an API server that does not answer) for longer than `lab down` waits.
    lab.script_tunnel(port, gateway.addr(), 60_000);
    let up = lab.up("tunnel").await;
    assert_eq!(up.code, 0, "{}", up.stderr);
    let pid = lab.tunnel_pid();

    let down = lab.down_all(&["--tunnel-timeout", "1s"]).await;
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert_contains!(down.stdout, &format!("minikube tunnel (pid {pid}) stopped"));
    assert_contains!(
        down.stderr,
        &format!("warning: `minikube tunnel` (pid {pid}) did not stop within 1s of an interrupt")
    );
    assert_contains!(down.stderr, "minikube tunnel -p lab");
    until_stopped(pid).await;
    assert_eq!(
        lab.tools.signals("minikube"),
        [
            SignalRecord {
                signal: "SIGINT".into(),
                cleaned_up: false
            },
            SignalRecord {
                signal: "SIGTERM".into(),
                cleaned_up: false
            }
        ]
    );
}

#[tokio::test]
async fn down_all_interrupts_the_tunnel_so_that_it_cleans_up() {
    let lab = Lab::start(true).await;
    let gateway = TfServing::start("resnet50").await;
    let port = port_below_the_ephemeral_range();
    lab.script_tunnel(port, gateway.addr(), 0);
    let up = lab.up("auto").await;
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert_contains!(up.stderr, "via tunnel");
    let pid = lab.tunnel_pid();

    let down = lab.down_all(&[]).await;
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert_contains!(down.stdout, &format!("minikube tunnel (pid {pid}) stopped"));
    assert!(!down.stderr.contains("warning"), "{}", down.stderr);
    until_stopped(pid).await;
    assert_eq!(
        lab.tools.signals("minikube"),
        [SignalRecord {
            signal: "SIGINT".into(),
            cleaned_up: true
        }],
        "minikube removes its route and the gateway's external IP only on an interrupt"
    );
}

#[tokio::test]
async fn a_process_whose_main_thread_exited_still_runs_while_its_threads_do() {
    // The flake of a_dead_tunnel_is_reported_…: SIGKILL takes a multi-threaded tunnel down thread by thread, and its
    // main thread shows `Z` in /proc/PID/stat while the others still hold its listening socket, which still takes
    // connections. `process_alive` read only the main thread, so `lab predict` saw a dead tunnel whose address
    // answered, took it for one started by hand, and then met a refused connection. Here a Python process ends its
    // main thread (pthread_exit) while another thread waits on stdin.
    let script = "import ctypes, sys, threading\n\
                  threading.Thread(target=sys.stdin.read).start()\n\
                  ctypes.CDLL('libc.so.6').pthread_exit(None)\n";
    let mut child = Process::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (installed by `cargo xtask test`)");
    let pid = child.id();
    let leader_state = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next())
            })
    };
    let waited = std::time::Instant::now();
    while leader_state() != Some('Z') {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "the main thread never exited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        running(pid),
        "a process with a live thread runs, though its main thread is a zombie"
    );
    drop(child.stdin.take());
    child.wait().unwrap();
    assert!(!running(pid));
}
