//! The harness of the integration tests that drive the real binary (and of the benches
//! that drive the real server, through benches/common): a vault environment ([`Env`]),
//! a running server ([`Server`]) and an HTTP/1.1 client over its socket ([`Client`]);
//! for the tests of the library, the vault in-process ([`vault`]).
// Each test binary compiles this module and uses what it needs.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

pub mod http;
pub mod server;
pub mod vault;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub use http::{Client, Response};
pub use server::Server;

/// The passphrase of an [`Env`]'s vault unless the test names its own.
pub const PASS: &str = "correct horse battery staple";

/// `init` with a KDF cheap enough for tests (unlocking is not what they check).
pub const INIT: &[&str] = &["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"];

/// The binary with no arguments yet, in an environment cleaned of what a developer's
/// shell may hold (passphrase and its file, vault directory, store, key file, token, a
/// new passphrase, the rewrap test pause), with no stdin.
///
/// `PHONEVAULT_BENCH_BIN` names another build of the binary, for benchmarks that
/// compare two builds in one sitting (the figures drift between sittings).
pub fn bare_command() -> Command {
    let bin = std::env::var_os("PHONEVAULT_BENCH_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_phonevault").into());
    let mut c = Command::new(bin);
    c.env_remove("PHONEVAULT_PASSPHRASE")
        .env_remove("PHONEVAULT_PASSPHRASE_FILE")
        .env_remove("PHONEVAULT_DIR")
        .env_remove("PHONEVAULT_STORE")
        .env_remove("PHONEVAULT_KEY_FILE")
        .env_remove("PHONEVAULT_TOKEN")
        .env_remove("PHONEVAULT_NEW_PASSPHRASE")
        .env_remove("PHONEVAULT_TEST_REWRAP_PAUSE_MS")
        .stdin(Stdio::null());
    c
}

/// Every file under `dir`, recursively.
#[allow(dead_code)] // not every test binary scans a directory
pub fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            files_under(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// `phonevault --vault VAULT ARGS...` unlocking with `pass`, in a clean environment
/// ([`bare_command`]). Callers add what their test needs.
pub fn phonevault(vault: &Path, pass: &str, args: &[&str]) -> Command {
    let mut c = bare_command();
    c.arg("--vault")
        .arg(vault)
        .args(args)
        .env("PHONEVAULT_PASSPHRASE", pass);
    c
}

/// Runs `cmd`; its stderr goes into the captured test output, which CI greps for
/// secrets (.ci/secret-grep).
pub fn run(mut cmd: Command) -> Output {
    let out = cmd.output().expect("run phonevault");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Fails the test, with `out`'s stderr, unless the command succeeded (for a command
/// whose whole [`Output`] the test goes on to read).
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// [`run`], which must succeed; its stdout.
pub fn ok(cmd: Command, what: &dyn std::fmt::Debug) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{what:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// [`run`], which must fail; its stderr.
pub fn fails(cmd: Command, what: &dyn std::fmt::Debug) -> String {
    let out = run(cmd);
    assert!(!out.status.success(), "{what:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A vault directory `vault` inside a temporary directory `dir` (removed on drop),
/// and the passphrase that unlocks it. Nothing is created until a command does.
pub struct Env {
    /// `None` for a vault beside another one ([`Env::beside`]), which owns `dir`.
    tmp: Option<tempfile::TempDir>,
    /// The temporary directory: the place for the test's other files.
    pub dir: PathBuf,
    pub vault: PathBuf,
    pub pass: String,
    /// Variables removed from every command's environment besides [`bare_command`]'s.
    unset: Vec<String>,
    /// Variables set in every command's environment, with their values.
    set: Vec<(String, String)>,
}

impl Env {
    /// An environment with [`PASS`].
    pub fn new() -> Env {
        Env::with_pass(PASS)
    }

    pub fn with_pass(pass: &str) -> Env {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let dir = tmp.path().to_owned();
        Env {
            vault: dir.join("vault"),
            dir,
            tmp: Some(tmp),
            pass: pass.to_owned(),
            unset: Vec::new(),
            set: Vec::new(),
        }
    }

    /// A second vault `dir/name` with the same passphrase, in this one's directory
    /// (which goes when this one is dropped).
    pub fn beside(&self, name: &str) -> Env {
        Env {
            tmp: None,
            dir: self.dir.clone(),
            vault: self.path(name),
            pass: self.pass.clone(),
            unset: self.unset.clone(),
            set: self.set.clone(),
        }
    }

    /// This environment, with `var` removed from every command's environment.
    pub fn without_env(mut self, var: &str) -> Env {
        self.unset.push(var.to_owned());
        self
    }

    /// This environment, with `var` set to `value` in every command's environment.
    pub fn with_env(mut self, var: &str, value: &str) -> Env {
        self.set.push((var.to_owned(), value.to_owned()));
        self
    }

    /// `init` with a cheap KDF ([`INIT`]).
    pub fn init(&self) {
        self.ok(INIT);
    }

    /// [`Env::init`], then `tenant create TENANT --purposes PURPOSES`.
    pub fn init_tenant(&self, tenant: &str, purposes: &str) {
        self.init();
        self.ok(&["tenant", "create", tenant, "--purposes", purposes]);
    }

    /// `dir/name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The command on this vault, see [`phonevault`].
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = phonevault(&self.vault, &self.pass, args);
        for var in &self.unset {
            c.env_remove(var);
        }
        for (var, value) in &self.set {
            c.env(var, value);
        }
        c
    }

    /// See [`run`].
    pub fn run(&self, args: &[&str]) -> Output {
        run(self.cmd(args))
    }

    /// A command that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        ok(self.cmd(args), &args)
    }

    /// A command that must exit with `code`; its stderr.
    pub fn fails_with_code(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `--json ARGS`, which must succeed; its output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let a = [&["--json"][..], args].concat();
        serde_json::from_str(&self.ok(&a)).expect("JSON output")
    }

    /// A command that must fail; its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        fails(self.cmd(args), &args)
    }

    /// A command that must fail with `hint` on stderr; its stderr.
    pub fn fails_with(&self, args: &[&str], hint: &str) -> String {
        let err = self.fails(args);
        assert!(err.contains(hint), "{args:?}: {err}");
        err
    }

    /// `token create ARGS`; the secret.
    pub fn token(&self, args: &[&str]) -> String {
        self.token_json(args)["token"]
            .as_str()
            .expect("a token")
            .to_owned()
    }

    /// `--json token create ARGS`; the whole answer (`id`, `token`, ...), whose id has
    /// the 16 characters of every token id.
    pub fn token_json(&self, args: &[&str]) -> serde_json::Value {
        let a = [&["--json", "token", "create"][..], args].concat();
        let v: serde_json::Value =
            serde_json::from_str(&self.ok(&a)).expect("token create prints JSON");
        assert_eq!(v["id"].as_str().map(str::len), Some(16), "a token id: {v}");
        v
    }

    /// The server's default socket.
    pub fn socket(&self) -> PathBuf {
        self.vault.join("phonevault.sock")
    }

    /// Starts `serve EXTRA` sealed (no unlock source) and waits for the socket.
    pub fn serve_sealed(&self, extra: &[&str]) -> Server {
        let mut c = self.cmd(&["serve"]);
        c.args(extra).env_remove("PHONEVAULT_PASSPHRASE");
        Server::spawn(c, self.socket(), self.path("serve.log"))
    }

    /// Starts `serve EXTRA` unsealed at start by a passphrase file, and waits for the
    /// socket.
    pub fn serve_unsealed(&self, extra: &[&str]) -> Server {
        let pass = self.path("pass");
        std::fs::write(&pass, &self.pass).expect("write the passphrase file");
        let mut c = self.cmd(&[
            "--passphrase-file",
            pass.to_str().expect("a UTF-8 path"),
            "serve",
        ]);
        c.args(extra).env_remove("PHONEVAULT_PASSPHRASE");
        Server::spawn(c, self.socket(), self.path("serve.log"))
    }
}

impl Default for Env {
    fn default() -> Env {
        Env::new()
    }
}
