//! Process hardening and file permissions, as the OS sees them: core dumps off, memory
//! locked where permitted, every file the binary creates private, and a vault whose
//! key material others can read refused (with a real chmod).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

use common::{Env, Server};

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use phonevault::harden::{self, MemoryLock};

const PASS: &str = "a hardened passphrase for tests";

/// The umask the binary must override. Every test of this file sets the same value,
/// so the process-wide setting cannot race between them.
fn loose_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// An environment whose commands keep memory locking on.
fn env() -> Env {
    loose_umask();
    Env::with_pass(PASS).without_env(harden::NO_MLOCK_ENV)
}

impl Env {
    fn with_tenant(&self) {
        self.init_tenant("shop", "otp");
    }
}

/// Every file below `dir` is 0600 or stricter, every directory 0700 or stricter.
fn assert_private_tree(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        let m = mode(&p);
        assert_eq!(m & 0o077, 0, "{} has mode {m:o}", p.display());
        if p.is_dir() {
            assert_private_tree(&p);
        }
    }
}

#[test]
fn every_file_the_binary_creates_is_private_whatever_the_umask() {
    let e = env();
    e.with_tenant();
    assert_eq!(mode(&e.vault), 0o700);
    assert_eq!(mode(&e.vault.join("keyring")), 0o600);
    // sled creates its directory with the umask's mode unless told otherwise.
    assert_eq!(mode(&e.vault.join("store")), 0o700);
    let csv = e.path("in.csv");
    std::fs::write(&csv, "phone\n+447400123958\nnot a number\n").unwrap();
    e.ok(&[
        "import",
        "--tenant",
        "shop",
        "--consent",
        "otp",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(mode(&e.path("in.csv.rejects.csv")), 0o600);
    // An export over an existing, world-readable file leaves it private.
    let out = e.path("out.csv");
    std::fs::write(&out, "old").unwrap();
    chmod(&out, 0o644);
    e.ok(&[
        "export",
        "--tenant",
        "shop",
        "--purpose",
        "otp",
        "--reveal",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(mode(&out), 0o600);
    e.ok(&["compact"]);
    assert_eq!(mode(&e.vault.join("store")), 0o700);
    assert_private_tree(&e.vault);
}

#[test]
fn a_vault_others_can_read_is_refused_with_the_fix() {
    let e = env();
    e.with_tenant();
    for (path, loose) in [
        (e.vault.join("store"), 0o755),
        (e.vault.clone(), 0o750),
        (e.vault.join("keyring"), 0o640),
    ] {
        let strict = mode(&path);
        chmod(&path, loose);
        let o = e.run(&["tenant", "list"]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{} at {loose:o} accepted",
            path.display()
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("accessible by other users"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(
            err.contains("chmod 700") && err.contains("chmod 600"),
            "{err}"
        );
        chmod(&path, strict);
        e.ok(&["tenant", "list"]);
    }
}

#[test]
fn a_running_server_has_no_core_dumps_and_locked_memory_where_permitted() {
    let e = env();
    e.with_tenant();
    let mut serve = e.cmd(&["serve"]);
    serve.env_remove("PHONEVAULT_PASSPHRASE");
    let s = Server::spawn(serve, e.socket(), e.path("serve.log"));
    let pid = s.pid();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    // SIGKILL; its log goes into the captured test output.
    s.kill();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{core}");
    let locked_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    // The same rule the binary applies, judged from this (same-user) process.
    let limit = rustix::process::getrlimit(rustix::process::Resource::Memlock).current;
    let cap = rustix::thread::capabilities(None)
        .map(|c| {
            c.effective
                .contains(rustix::thread::CapabilitySet::IPC_LOCK)
        })
        .unwrap_or(false);
    let server_log = std::fs::read_to_string(e.path("serve.log")).unwrap();
    if harden::may_lock_all(limit, cap) {
        assert!(locked_kib > 0, "memory not locked although permitted");
    } else {
        assert_eq!(locked_kib, 0);
        if harden::swap_active() {
            assert_eq!(
                server_log.matches("warning: memory is not locked").count(),
                1
            );
        }
    }
}

#[test]
fn hardening_in_process_disables_core_dumps_and_sets_a_private_umask() {
    // Run in a child copy of this test binary, so the umask and limits it sets stay
    // out of the other tests of this file.
    if std::env::var_os("PV_HARDEN_CHILD").is_none() {
        let exe = std::env::current_exe().unwrap();
        let o = Command::new(exe)
            .args([
                "--exact",
                "hardening_in_process_disables_core_dumps_and_sets_a_private_umask",
                "--nocapture",
            ])
            .env("PV_HARDEN_CHILD", "1")
            .output()
            .unwrap();
        // Its output only on failure: the child's own "test result" line would count
        // as one more test binary in CI's summary.
        assert!(
            o.status.success(),
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        return;
    }
    let report = harden::harden_process();
    assert!(report.core_limit_zero && report.not_dumpable, "{report:?}");
    let core = rustix::process::getrlimit(rustix::process::Resource::Core);
    assert_eq!((core.current, core.maximum), (Some(0), Some(0)));
    assert_eq!(
        rustix::process::dumpable_behavior().unwrap(),
        rustix::process::DumpableBehavior::NotDumpable
    );
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, b"x").unwrap();
    assert_eq!(mode(&f), 0o600);
    let d = dir.path().join("d");
    std::fs::create_dir(&d).unwrap();
    assert_eq!(mode(&d), 0o700);
    assert!(
        matches!(
            report.memory,
            MemoryLock::Locked | MemoryLock::NotPermitted { .. }
        ),
        "{:?}",
        report.memory
    );
}
