//! The lab's state directory: the ingress URL, the active stage, the tunnel's pid and log, and the lock that stops
//! two `lab up` at once.
//!
//! Every file is small text written to a temporary name and renamed into place, so an interrupted command never
//! leaves half a file. The lock records its holder's pid; a lock whose process is gone (killed mid-way) is stale
//! and taken over.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::Settings;

/// `<state_dir>/ingress-url`: the URL of the Istio ingress gateway, as `lab up` resolved it.
pub const INGRESS_URL_FILE: &str = "ingress-url";
/// `<state_dir>/models-host-dir`: with the `none` driver, the host directory the Deployments mount.
pub const MODELS_HOST_DIR_FILE: &str = "models-host-dir";
/// `<state_dir>/ingress-kind`: how the ingress URL is reached ([`IngressKind`]'s text: `tunnel`, `url`, or
/// `port-forward`, which only lived while the `lab up` that opened it ran).
pub const INGRESS_KIND_FILE: &str = "ingress-kind";
/// `<state_dir>/active-stage`: the stage last applied.
pub const ACTIVE_STAGE_FILE: &str = "active-stage";
/// `<state_dir>/tunnel.pid`: the pid of the `minikube tunnel` that `lab up` started.
pub const TUNNEL_PID_FILE: &str = "tunnel.pid";
/// `<state_dir>/tunnel.log`: what `minikube tunnel` printed.
pub const TUNNEL_LOG_FILE: &str = "tunnel.log";
/// `<state_dir>/lock`: held while a command changes the lab.
pub const LOCK_FILE: &str = "lock";

/// The state directory of `settings`, per minikube profile (created when missing).
pub fn state_dir(settings: &Settings) -> anyhow::Result<PathBuf> {
    let dir = profile_dir(settings);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating the state directory {}", dir.display()))?;
    Ok(dir)
}

/// The ingress URL `lab up` recorded, if any.
pub fn read_ingress_url(settings: &Settings) -> anyhow::Result<Option<String>> {
    read_value(settings, INGRESS_URL_FILE)
}

/// Records the ingress URL.
pub fn write_ingress_url(settings: &Settings, url: &str) -> anyhow::Result<()> {
    write_value(settings, INGRESS_URL_FILE, url)
}

/// How the ingress URL is reached; its text (`tunnel`, `port-forward`, `url`) is what the `ingress-kind` file,
/// `lab status` and `lab up`'s JSON hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IngressKind {
    /// `minikube tunnel`, supervised in the background; outlives the command that started it.
    Tunnel,
    /// A port-forward to a gateway pod, held by the command that opened it.
    PortForward,
    /// A URL the user gave (`lab up --ingress http://…`).
    Url,
}

impl IngressKind {
    /// The text recorded in the `ingress-kind` file.
    pub fn as_str(self) -> &'static str {
        match self {
            IngressKind::Tunnel => "tunnel",
            IngressKind::PortForward => "port-forward",
            IngressKind::Url => "url",
        }
    }

    /// The kind whose text is `text`, if any.
    pub fn parse(text: &str) -> Option<IngressKind> {
        [IngressKind::Tunnel, IngressKind::PortForward, IngressKind::Url]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

impl std::fmt::Display for IngressKind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// How the recorded ingress URL is reached, if recorded (a text that names no kind counts as none, as a state
/// directory written before the kind was recorded).
pub fn read_ingress_kind(settings: &Settings) -> anyhow::Result<Option<IngressKind>> {
    Ok(read_value(settings, INGRESS_KIND_FILE)?.and_then(|text| IngressKind::parse(&text)))
}

/// Records how the ingress URL is reached.
pub fn write_ingress_kind(settings: &Settings, kind: IngressKind) -> anyhow::Result<()> {
    write_value(settings, INGRESS_KIND_FILE, kind.as_str())
}

/// The stage last applied, if any.
pub fn read_active_stage(settings: &Settings) -> anyhow::Result<Option<String>> {
    read_value(settings, ACTIVE_STAGE_FILE)
}

/// Records the stage last applied.
pub fn write_active_stage(settings: &Settings, stage: &str) -> anyhow::Result<()> {
    write_value(settings, ACTIVE_STAGE_FILE, stage)
}

/// Forgets a recorded value (after `lab down`).
pub fn forget(settings: &Settings, file: &str) -> anyhow::Result<()> {
    let path = profile_dir(settings).join(file);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("removing {}", path.display())),
    }
}

/// Reads one trimmed value from the state directory; `None` when the file is missing or empty.
pub fn read_value(settings: &Settings, file: &str) -> anyhow::Result<Option<String>> {
    let path = profile_dir(settings).join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().is_empty() => Ok(None),
        Ok(text) => Ok(Some(text.trim().to_string())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// The pid of the `minikube tunnel` that `lab up` recorded, if any (a value that is not a pid counts as none).
pub fn read_tunnel_pid(settings: &Settings) -> anyhow::Result<Option<u32>> {
    Ok(read_value(settings, TUNNEL_PID_FILE)?.and_then(|pid| pid.parse::<u32>().ok()))
}

/// Writes one value atomically (temporary file, then rename).
pub fn write_value(settings: &Settings, file: &str, value: &str) -> anyhow::Result<()> {
    let path = state_dir(settings)?.join(file);
    // Private to the user (0600), as the temporary file is created.
    crate::fs_atomic::write_atomically(&path, format!("{value}\n").as_bytes(), None)
        .with_context(|| format!("writing {}", path.display()))
}

/// `<state_dir>/<profile>`, without creating it.
fn profile_dir(settings: &Settings) -> PathBuf {
    settings.state_dir.join(&settings.profile)
}

/// True when a process with `pid` runs: on Linux, some thread of it (`/proc/PID/task/*/stat`) is not a zombie (a
/// process that exited and that no parent reaped yet — a tunnel whose `lab up` ended is reaped by whatever adopted
/// it, which in a container may be never — while a main thread that exited before the others is not the process
/// exiting); elsewhere `kill -0 PID` (macOS, which has no `/proc`: there a `/proc`
/// check would call every process dead, so a held lock would look stale and a running tunnel would never be found).
pub fn process_alive(pid: u32) -> bool {
    if Path::new("/proc/self").exists() {
        // Every thread counts: a main thread that exited shows `Z` while the others still run and hold the
        // process's sockets (SIGKILL takes a multi-threaded process down thread by thread).
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return false;
        };
        tasks.flatten().any(|task| {
            std::fs::read_to_string(task.path().join("stat"))
                .is_ok_and(|stat| !matches!(proc_state(&stat), Some('Z' | 'X')))
        })
    } else {
        signal_zero_reaches(pid)
    }
}

/// The state letter of a `/proc/PID/stat` line (`pid (comm) S …`; `comm` may hold spaces and parentheses, so the
/// state follows the last `)`, as proc(5) says).
fn proc_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// `kill -0 PID` exits 0 when the process exists (and is ours to signal, as the lab's own processes are).
fn signal_zero_reaches(pid: u32) -> bool {
    crate::tool::ToolCommand::new(
        "check whether a process is running",
        Path::new("kill"),
        &["-0", &pid.to_string()],
    )
    .timeout(std::time::Duration::from_secs(10))
    .output()
    .is_ok_and(|output| output.code == Some(0))
}

/// The lock held while a command changes the lab; released when dropped.
#[must_use = "the lock is released when dropped"]
#[derive(Debug)]
pub struct LabLock {
    path: PathBuf,
}

/// Another command holds the lock.
#[derive(Debug, thiserror::Error)]
#[error(
    "another canary-lab command (pid {pid}, `{command}`) is changing the lab of profile \"{profile}\"\nhelp: wait for it to finish, or stop it with `kill {pid}`"
)]
pub struct LockHeld {
    /// The holder's pid.
    pub pid: u32,
    /// What it runs.
    pub command: String,
    /// The minikube profile.
    pub profile: String,
}

impl LabLock {
    /// Takes the lock for `command` (e.g. `lab up`); a lock left by a process that no longer runs is taken over.
    pub fn acquire(settings: &Settings, command: &str) -> anyhow::Result<LabLock> {
        let path = state_dir(settings)?.join(LOCK_FILE);
        // Two rounds: the second follows the removal of a stale lock.
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    writeln!(file, "{}\n{command}", std::process::id())
                        .with_context(|| format!("writing the lock {}", path.display()))?;
                    return Ok(LabLock { path });
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let mut lines = text.lines();
                    let pid: Option<u32> = lines.next().and_then(|line| line.trim().parse().ok());
                    let holder = lines.next().unwrap_or("?").to_string();
                    match pid {
                        Some(pid) if pid != std::process::id() && process_alive(pid) => {
                            return Err(LockHeld {
                                pid,
                                command: holder,
                                profile: settings.profile.clone(),
                            }
                            .into());
                        }
                        _ => {
                            tracing::info!(lock = %path.display(), "taking over a stale lock");
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(error) => return Err(error).with_context(|| format!("creating the lock {}", path.display())),
            }
        }
        anyhow::bail!("could not take the lock {}", path.display())
    }
}

impl Drop for LabLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ingress_kind_reads_back_as_the_text_it_was_recorded_with() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path());
        assert_eq!(read_ingress_kind(&settings).unwrap(), None);
        for (kind, text) in [
            (IngressKind::Tunnel, "tunnel"),
            (IngressKind::PortForward, "port-forward"),
            (IngressKind::Url, "url"),
        ] {
            write_ingress_kind(&settings, kind).unwrap();
            assert_eq!(read_value(&settings, INGRESS_KIND_FILE).unwrap().as_deref(), Some(text));
            assert_eq!(read_ingress_kind(&settings).unwrap(), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), text);
        }
        // A state directory from before the enum holds the same text, written by hand here.
        write_value(&settings, INGRESS_KIND_FILE, "port-forward").unwrap();
        assert_eq!(read_ingress_kind(&settings).unwrap(), Some(IngressKind::PortForward));
        write_value(&settings, INGRESS_KIND_FILE, "carrier-pigeon").unwrap();
        assert_eq!(read_ingress_kind(&settings).unwrap(), None);
    }

    fn settings(dir: &Path) -> Settings {
        let mut settings = Settings::with_defaults("p").unwrap();
        settings.state_dir = dir.to_path_buf();
        settings
    }

    #[test]
    fn values_round_trip_and_missing_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path());
        assert_eq!(read_ingress_url(&settings).unwrap(), None);
        write_ingress_url(&settings, "http://127.0.0.1:8080").unwrap();
        assert_eq!(
            read_ingress_url(&settings).unwrap().as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert!(dir.path().join("p").join(INGRESS_URL_FILE).is_file());
        forget(&settings, INGRESS_URL_FILE).unwrap();
        assert_eq!(read_ingress_url(&settings).unwrap(), None);
    }

    #[test]
    fn both_ways_of_telling_a_process_alive_agree() {
        let finished = {
            // A process that has exited and been reaped: its pid names no process (until the system reuses it).
            #[allow(clippy::disallowed_methods)] // The test needs the pid of a process it saw exit.
            let mut child = std::process::Command::new("true").spawn().unwrap();
            child.wait().unwrap();
            child.id()
        };
        assert!(process_alive(std::process::id()));
        assert!(signal_zero_reaches(std::process::id()));
        assert!(!process_alive(finished));
        assert!(!signal_zero_reaches(finished));
    }

    #[test]
    fn a_zombie_is_not_alive() {
        assert_eq!(proc_state("42 (minikube) S 1 42 42 0"), Some('S'));
        assert_eq!(proc_state("42 (a) b (c)) Z 1 42 42 0"), Some('Z'));
        // A child that exited and that this test has not reaped yet.
        #[allow(clippy::disallowed_methods)] // The test needs a zombie of its own.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let became_zombie = std::time::Instant::now();
        while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| proc_state(&stat) != Some('Z')) {
            assert!(became_zombie.elapsed() < std::time::Duration::from_secs(10));
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(Path::new(&format!("/proc/{pid}")).exists(), "not reaped yet");
        assert!(!process_alive(pid));
        child.wait().unwrap();
    }

    #[test]
    fn a_tunnel_pid_that_is_not_a_number_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path());
        assert_eq!(read_tunnel_pid(&settings).unwrap(), None);
        write_value(&settings, TUNNEL_PID_FILE, "4242").unwrap();
        assert_eq!(read_tunnel_pid(&settings).unwrap(), Some(4242));
        write_value(&settings, TUNNEL_PID_FILE, "not a pid").unwrap();
        assert_eq!(read_tunnel_pid(&settings).unwrap(), None);
    }

    #[test]
    fn a_held_lock_refuses_and_a_stale_one_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path());
        let lock_path = dir.path().join("p").join(LOCK_FILE);
        std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
        // pid 1 always runs.
        std::fs::write(&lock_path, "1\nlab up\n").unwrap();
        let error = LabLock::acquire(&settings, "lab up").unwrap_err();
        let held = error.downcast_ref::<LockHeld>().expect("LockHeld");
        assert_eq!(held.pid, 1);
        // A pid that cannot exist.
        std::fs::write(&lock_path, "4194305\nlab up\n").unwrap();
        let lock = LabLock::acquire(&settings, "lab up").unwrap();
        assert!(lock_path.is_file());
        drop(lock);
        assert!(!lock_path.exists());
    }
}
