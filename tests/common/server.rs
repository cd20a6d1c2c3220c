//! A running `phonevault serve`: started from a command, ready once its socket
//! accepts, stopped with SIGTERM; its log goes into the captured test output when it
//! is dropped (CI greps that output for secrets, .ci/secret-grep).

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::http::Client;

/// How long a server may take to open its socket, or to exit on SIGTERM.
const PATIENCE: Duration = Duration::from_secs(30);

pub struct Server {
    child: Child,
    client: Client,
    log: PathBuf,
    exited: bool,
}

impl Server {
    /// Spawns `cmd` (stdout to nowhere, stderr into `log`) and waits until `socket`
    /// accepts connections; panics with the log when it does not.
    pub fn spawn(mut cmd: Command, socket: PathBuf, log: PathBuf) -> Server {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create the server log"))
            .spawn()
            .expect("spawn the server");
        let mut s = Server {
            child,
            client: Client::new(socket),
            log,
            exited: false,
        };
        s.wait_ready();
        s
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        while self.client.connect().is_err() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.exited = true;
                panic!("server exited with {st}: {}", self.log_text());
            }
            assert!(
                start.elapsed() < PATIENCE,
                "server did not start: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A client of this server, to hand to another thread.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub fn socket(&self) -> &Path {
        self.client.socket()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server wrote to stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill SIG PID` (`sig` as `-TERM`, `-INT`, `-HUP`).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill {sig} failed");
    }

    /// Waits for the process to exit; `None` when it is still running after `PATIENCE`.
    pub fn wait_exit(&mut self) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) => {
                    self.exited = true;
                    return Some(st);
                }
                Ok(None) => {}
                Err(_) => return None,
            }
            if start.elapsed() >= PATIENCE {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM, asserts a clean exit, and returns the log.
    pub fn stop(mut self) -> String {
        self.signal("-TERM");
        let st = self.wait_exit().expect("no exit on SIGTERM");
        assert!(st.success(), "server exited with {st}");
        self.log_text()
    }

    /// SIGKILL: a crash, no shutdown.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.exited = true;
    }
}

impl Deref for Server {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl Drop for Server {
    /// SIGTERM (SIGKILL if that is not enough) when still running, then the log into
    /// the captured test output.
    fn drop(&mut self) {
        if !self.exited {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            if self.wait_exit().is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        eprint!("{}", self.log_text());
    }
}
