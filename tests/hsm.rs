//! A key slot held by a PKCS#11 token (SoftHSM2, for real): the root key's slot secret is
//! sealed by a non-extractable AES key in the token; a server given the token's labels and
//! a PIN file unseals itself at start with no human; a removed key, a wrong PIN and an
//! extractable key are refused clearly; the PIN appears in no output, log or process list.
//!
//! Runs where SoftHSM2 is installed (`.ci/run` installs Debian's `softhsm2`); elsewhere every
//! test is reported as ignored with the reason, never as passed. Its own harness
//! (libtest-mimic) makes that possible.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

use common::{Client, PASS};

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

/// The token's user PIN: must never appear in any output.
const PIN: &str = "pin-4417-zebra";
const SO_PIN: &str = "so-9931-walrus";
const KEY: &str = "phonevault-root";

/// Where SoftHSM2 is, and the token directory of this run.
struct Hsm {
    module: PathBuf,
    util: PathBuf,
    _dir: tempfile::TempDir,
}

static HSM: OnceLock<Hsm> = OnceLock::new();

fn hsm() -> &'static Hsm {
    HSM.get().expect("set up in main")
}

/// SoftHSM2's module and tool, or why the tests cannot run.
fn find_softhsm() -> Result<(PathBuf, PathBuf), String> {
    let module = [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .ok_or("SoftHSM2 is not installed (Debian: apt-get install softhsm2)")?;
    let util = ["/usr/bin/softhsm2-util", "/usr/local/bin/softhsm2-util"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or("softhsm2-util is not installed")?;
    Ok((module, util))
}

/// A fresh token with `label`, the test PIN, and (unless `key` is None) an AES key made
/// inside it with the given extractability.
fn token(label: &str, key: Option<bool>) {
    let h = hsm();
    let out = Command::new(&h.util)
        .args(["--init-token", "--free", "--label", label])
        .args(["--so-pin", SO_PIN, "--pin", PIN])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(extractable) = key {
        with_session(label, |s| {
            s.generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(!extractable),
                    Attribute::Extractable(extractable),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::ValueLen(32u64.into()),
                    Attribute::Label(KEY.as_bytes().to_vec()),
                ],
            )
            .unwrap();
        });
    }
}

/// Runs `f` in a logged-in session of token `label`, from this test process. The library
/// is initialized and finalized around each use: SoftHSM2 reads its token list at
/// `C_Initialize`, and the tests make tokens as they go.
fn with_session(label: &str, f: impl FnOnce(&cryptoki::session::Session)) {
    let ctx = Pkcs11::new(&hsm().module).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    {
        let slot = ctx
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == label)
            .unwrap();
        let s = ctx.open_rw_session(slot).unwrap();
        s.login(UserType::User, Some(&AuthPin::from(PIN.to_owned())))
            .unwrap();
        f(&s);
    }
    ctx.finalize().unwrap();
}

fn remove_key(label: &str) {
    with_session(label, |s| {
        for k in s
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(KEY.as_bytes().to_vec()),
            ])
            .unwrap()
        {
            s.destroy_object(k).unwrap();
        }
    });
}

/// The common environment, with the PIN file and the token label of the test.
struct Env {
    env: common::Env,
    token: String,
    pin_file: PathBuf,
}

impl Deref for Env {
    type Target = common::Env;
    fn deref(&self) -> &common::Env {
        &self.env
    }
}

impl Env {
    fn new(token_label: &str) -> Env {
        let env = common::Env::new();
        let pin_file = env.path("pin");
        std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
        let e = Env {
            env,
            token: token_label.to_owned(),
            pin_file,
        };
        e.ok(common::INIT);
        e.ok(&["tenant", "create", "shop", "--purposes", "otp"]);
        e
    }

    fn hsm_args(&self) -> Vec<String> {
        let h = hsm();
        vec![
            "--pkcs11-module".into(),
            h.module.display().to_string(),
            "--pkcs11-token".into(),
            self.token.clone(),
            "--pkcs11-key".into(),
            KEY.into(),
            "--pkcs11-pin-file".into(),
            self.pin_file.display().to_string(),
        ]
    }

    /// The command, with the passphrase (unless `hsm_only`) and the HSM flags.
    fn cmd(&self, args: &[&str], with_hsm: bool, hsm_only: bool) -> Command {
        let mut all: Vec<String> = Vec::new();
        if with_hsm {
            all.extend(self.hsm_args());
        }
        all.extend(args.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut c = self.env.cmd(&all);
        if hsm_only {
            c.env_remove("PHONEVAULT_PASSPHRASE");
        }
        c.env_remove("PHONEVAULT_PKCS11_PIN");
        c
    }

    fn run_with(&self, args: &[&str], with_hsm: bool, hsm_only: bool) -> Output {
        let out = common::run(self.cmd(args, with_hsm, hsm_only));
        no_pin(&String::from_utf8_lossy(&out.stderr));
        no_pin(&String::from_utf8_lossy(&out.stdout));
        out
    }

    fn ok_with(&self, args: &[&str], with_hsm: bool, hsm_only: bool) -> String {
        let out = self.run_with(args, with_hsm, hsm_only);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, false, false)
    }

    /// `serve` with the HSM flags and no passphrase; not waited for.
    fn serve_hsm_only(&self) -> Child {
        let log = self.path("serve.log");
        self.cmd(&["serve"], true, true)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("serve.log")).unwrap_or_default()
    }
}

fn no_pin(text: &str) {
    assert!(!text.contains(PIN), "the PIN was printed: {text}");
}

fn health(socket: &Path) -> Option<Value> {
    let (_, v) = Client::new(socket)
        .try_call("GET", "/v1/sys/health", None, b"")
        .ok()?;
    Some(v)
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn a_server_unseals_itself_from_the_hsm_alone() {
    token("pv-serve", Some(false));
    let e = Env::new("pv-serve");
    let id: Value = serde_json::from_str(&e.ok(&[
        "--json",
        "add",
        "--tenant",
        "shop",
        "--phone",
        "+447400123456",
        "--consent",
        "otp",
    ]))
    .unwrap();
    let id = id["id"].as_str().unwrap().to_owned();

    // The PKCS#11 slot is added while the vault is unlocked by its passphrase.
    let added: Value =
        serde_json::from_str(&e.ok_with(&["--json", "keyslot", "add"], true, false)).unwrap();
    assert_eq!(added["kind"], "pkcs11", "{added}");
    let slots: Value = serde_json::from_str(&e.ok(&["--json", "keyslot", "list"])).unwrap();
    let hsm_slot = slots
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "pkcs11")
        .unwrap();
    assert_eq!(hsm_slot["pkcs11_token"], "pv-serve");
    assert_eq!(hsm_slot["pkcs11_key"], KEY);
    // The keyring stores labels and the sealed secret, never the PIN.
    let ring = std::fs::read(e.vault.join("keyring")).unwrap();
    assert!(!ring.windows(PIN.len()).any(|w| w == PIN.as_bytes()));

    // No passphrase anywhere: the server unseals itself through the HSM.
    let child = e.serve_hsm_only();
    let start = Instant::now();
    let mut sealed = None;
    while start.elapsed() < Duration::from_secs(30) {
        if let Some(h) = health(&e.socket()) {
            sealed = h["sealed"].as_bool();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Neither the command line nor the environment of the server holds the PIN.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap();
    let environ = std::fs::read(format!("/proc/{}/environ", child.id())).unwrap();
    stop(child);
    eprint!("{}", e.log());
    no_pin(&e.log());
    assert_eq!(sealed, Some(false), "server log: {}", e.log());
    for bytes in [&cmdline, &environ] {
        assert!(!bytes.windows(PIN.len()).any(|w| w == PIN.as_bytes()));
    }

    // A CLI command unlocks the same way, with no passphrase.
    let got: Value = serde_json::from_str(&e.ok_with(
        &["--json", "get", "--tenant", "shop", &id, "--purpose", "otp"],
        true,
        true,
    ))
    .unwrap();
    assert_eq!(got["id"], id.as_str());

    // rekey through the HSM slot rewraps it too; both credentials still open the vault.
    let pass_file = e.path("pass");
    std::fs::write(&pass_file, PASS).unwrap();
    e.ok_with(
        &[
            "rekey",
            "--other-passphrase-file",
            pass_file.to_str().unwrap(),
        ],
        true,
        true,
    );
    e.ok_with(&["keyslot", "list"], true, true);
    e.ok(&["keyslot", "list"]);
}

fn a_removed_key_a_wrong_pin_and_an_extractable_key_are_refused_clearly() {
    token("pv-refuse", Some(false));
    let e = Env::new("pv-refuse");
    e.ok_with(&["keyslot", "add"], true, false);

    // A wrong PIN.
    std::fs::write(&e.pin_file, "pin-0000-wrong\n").unwrap();
    let out = e.run_with(&["keyslot", "list"], true, true);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused the PIN"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&e.pin_file, format!("{PIN}\n")).unwrap();

    // The key removed from the token: the server refuses to start, saying so.
    remove_key("pv-refuse");
    let mut child = e.serve_hsm_only();
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "server kept running"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = e.log();
    eprint!("{log}");
    assert!(!status.success());
    assert!(log.contains("has no AES secret key labelled"), "{log}");
    no_pin(&log);
    // The passphrase slot still opens the vault.
    e.ok(&["keyslot", "list"]);

    // An extractable key is refused: a copy of it would open the slot anywhere.
    token("pv-extractable", Some(true));
    let e = Env::new("pv-extractable");
    let out = e.run_with(&["keyslot", "add"], true, false);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("extractable"));
    let slots: Value = serde_json::from_str(&e.ok(&["--json", "keyslot", "list"])).unwrap();
    assert_eq!(slots.as_array().unwrap().len(), 1, "no slot was added");

    // A missing PIN is named, never read from an argument.
    let out = e
        .cmd(&["keyslot", "add"], false, false)
        .args(["--pkcs11-module", hsm().module.to_str().unwrap()])
        .args(["--pkcs11-token", "pv-extractable", "--pkcs11-key", KEY])
        .env_remove("PHONEVAULT_PKCS11_PIN_FILE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no PKCS#11 PIN"));
}

fn main() -> std::process::ExitCode {
    let mut args = Arguments::from_args();
    // softhsm2-util --init-token --free takes the first free slot: one test at a time.
    args.test_threads = Some(1);
    let missing = match find_softhsm() {
        Ok((module, util)) => {
            let dir = tempfile::tempdir().unwrap();
            let tokens = dir.path().join("tokens");
            std::fs::create_dir(&tokens).unwrap();
            let conf = dir.path().join("softhsm2.conf");
            std::fs::write(
                &conf,
                format!(
                    "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                    tokens.display()
                ),
            )
            .unwrap();
            // Read by SoftHSM2 in this process and in every binary the tests start.
            std::env::set_var("SOFTHSM2_CONF", &conf);
            let _ = HSM.set(Hsm {
                module,
                util,
                _dir: dir,
            });
            None
        }
        Err(why) => Some(why),
    };
    if let Some(why) = &missing {
        if std::env::var("PHONEVAULT_REQUIRE_HSM").is_ok_and(|v| v == "1") {
            eprintln!("tests/hsm.rs: PHONEVAULT_REQUIRE_HSM=1 but {why}");
            return std::process::ExitCode::FAILURE;
        }
        eprintln!("tests/hsm.rs: the SoftHSM2 tests are ignored: {why}");
    }
    let all: [(&'static str, fn()); 2] = [
        (
            "a_server_unseals_itself_from_the_hsm_alone",
            a_server_unseals_itself_from_the_hsm_alone,
        ),
        (
            "a_removed_key_a_wrong_pin_and_an_extractable_key_are_refused_clearly",
            a_removed_key_a_wrong_pin_and_an_extractable_key_are_refused_clearly,
        ),
    ];
    let tests = all
        .into_iter()
        .map(|(name, f)| {
            Trial::test(name, move || {
                f();
                Ok::<(), Failed>(())
            })
            .with_ignored_flag(missing.is_some())
        })
        .collect();
    libtest_mimic::run(&args, tests).exit_code()
}
