//! The hardened systemd unit in `contrib/` starts the real binary: every flag of its
//! `ExecStart` is one the binary accepts, and the hardening it promises is in the file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

use std::process::Command;

const UNIT: &str = include_str!("../contrib/phonevault.service");

fn directive(name: &str) -> Vec<&'static str> {
    UNIT.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix('='))
        .collect()
}

#[test]
fn exec_start_flags_are_accepted_by_the_binary() {
    let exec = directive("ExecStart");
    assert_eq!(exec.len(), 1, "one ExecStart");
    let mut args: Vec<String> = exec[0]
        .split_whitespace()
        .skip(1)
        .map(|a| a.replace("%d", "/run/credentials/phonevault.service"))
        .collect();
    assert!(args.iter().any(|a| a == "serve"), "{args:?}");
    // clap reads every flag before it acts on --help: an unknown flag fails the command.
    args.push("--help".into());
    let out = Command::new(env!("CARGO_BIN_EXE_phonevault"))
        .args(&args)
        .env_remove("PHONEVAULT_PASSPHRASE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_unit_is_hardened_as_documented() {
    for (name, want) in [
        ("User", "phonevault"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "yes"),
        ("LimitMEMLOCK", "infinity"),
        ("LimitCORE", "0"),
        ("RuntimeDirectory", "phonevault"),
        ("StateDirectoryMode", "0700"),
        ("UMask", "0077"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(directive(name), vec![want], "{name}");
    }
    // The passphrase reaches the service as a credential, never in the unit or environment.
    assert!(directive("Environment").is_empty());
    assert!(directive("ExecStart")[0].contains("--passphrase-file %d/passphrase"));
    // The socket is in the runtime directory the unit asks for.
    assert!(directive("ExecStart")[0].contains("--socket /run/phonevault/"));
}
