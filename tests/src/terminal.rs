//! A CLI running on a pseudo-terminal, read as a screen: what it draws is fed to a terminal emulator (`vt100`) as
//! it arrives, so a test can wait until the screen shows something, type keys, and wait for the exit. Like a real
//! terminal it answers the cursor-position query (an inline ratatui viewport starts with one).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::process::Process;

/// The cursor-position query: Device Status Report 6.
const CURSOR_QUERY: &[u8] = b"\x1b[6n";

/// Where each cursor-position query in `bytes` ends.
fn query_ends(bytes: &[u8]) -> Vec<usize> {
    bytes
        .windows(CURSOR_QUERY.len())
        .enumerate()
        .filter(|(_, window)| *window == CURSOR_QUERY)
        .map(|(at, _)| at + CURSOR_QUERY.len())
        .collect()
}

/// A running CLI on a terminal of a given size.
pub struct TerminalSession {
    child: Child,
    keyboard: std::fs::File,
    screen: Arc<Mutex<vt100::Parser>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl TerminalSession {
    /// Spawns `process` (its stdio already on the terminal's follower end) and reads `leader` into a screen of
    /// `(rows, columns)` until the terminal closes.
    pub fn start(process: Process, leader: OwnedFd, (rows, columns): (u16, u16)) -> TerminalSession {
        let child = process.spawn().expect("start lab-cli on a terminal");
        let mut output = std::fs::File::from(leader);
        let keyboard = output.try_clone().expect("a second handle on the terminal");
        let mut answers = output.try_clone().expect("a handle to answer queries on");
        let screen = Arc::new(Mutex::new(vt100::Parser::new(
            rows.try_into().expect("rows > 0"),
            columns.try_into().expect("columns > 0"),
            0,
        )));
        let shared = Arc::clone(&screen);
        // Reads until the child's end closes (Linux then answers EIO), so the child never blocks on a full terminal.
        let reader = std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            // The last bytes of the previous read, so a query split across reads is still seen.
            let mut tail: Vec<u8> = Vec::new();
            while let Ok(count) = output.read(&mut buffer) {
                if count == 0 {
                    break;
                }
                let chunk = &buffer[..count];
                let mut screen = shared.lock().expect("screen");
                let joined = [tail.as_slice(), chunk].concat();
                let mut done = 0;
                for end in query_ends(&joined) {
                    let end = end - tail.len();
                    screen.process(&chunk[done..end]);
                    done = end;
                    // DSR 6 (`CSI 6 n`) is answered with CPR, `CSI row ; column R`, both 1-based
                    // (https://ghostty.org/docs/vt/csi/dsr; xterm's ctlseqs, "Device Status Report").
                    let (row, column) = screen.screen().cursor_position();
                    let _ = write!(answers, "\x1b[{};{}R", row + 1, column + 1);
                }
                screen.process(&chunk[done..]);
                tail = joined[joined.len().saturating_sub(CURSOR_QUERY.len() - 1)..].to_vec();
            }
        });
        TerminalSession {
            child,
            keyboard,
            screen,
            reader: Some(reader),
        }
    }

    /// The screen's text now, one line per row.
    pub fn screen(&self) -> String {
        self.screen.lock().expect("screen").screen().contents()
    }

    /// Waits until `holds` is true of the screen's text, checking every 50 ms; panics with the screen after
    /// `timeout`.
    #[track_caller]
    pub fn wait_for(&self, what: &str, timeout: Duration, holds: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if holds(&screen) {
                return screen;
            }
            assert!(
                started.elapsed() < timeout,
                "the screen did not show {what} within {timeout:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGINT to the CLI, as Ctrl-C on its terminal does (to its foreground process group).
    pub fn interrupt(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: a plain kill(2) of the child this session started and has not reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0, "kill -INT {pid}");
    }

    /// Whether the terminal shows its cursor now.
    pub fn cursor_shown(&self) -> bool {
        !self.screen.lock().expect("screen").screen().hide_cursor()
    }

    /// Types `keys` on the terminal.
    pub fn type_keys(&mut self, keys: &[u8]) {
        self.keyboard.write_all(keys).expect("type on the terminal");
    }

    /// Waits for the exit (at most `timeout`, else kills it and panics); returns the exit code and whether the
    /// terminal was left on its main screen.
    #[track_caller]
    pub fn wait(mut self, timeout: Duration) -> (i32, bool) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for lab-cli") {
                break status;
            }
            if started.elapsed() > timeout {
                let _ = self.child.kill();
                panic!("lab-cli did not exit within {timeout:?}:\n{}", self.screen());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the terminal reader");
        }
        let main_screen = !self.screen.lock().expect("screen").screen().alternate_screen();
        (status.code().unwrap_or(-1), main_screen)
    }
}

impl Drop for TerminalSession {
    fn drop(&mut self) {
        // A test that failed before `wait` leaves no process behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
