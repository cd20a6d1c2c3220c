//! `serve` flags that take values are refused with a hint, never a panic or an echo.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

#[test]
fn purge_every_refuses_what_is_not_a_duration_without_echoing_it() {
    let env = common::Env::with_pass("unused-passphrase");
    for bad in ["5é", "+447400123456", "1y", "-1h", "xh", ""] {
        let flag = format!("--purge-every={bad}");
        let out = env.run(&["serve", &flag]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {err}");
        assert!(err.contains("use a duration such as 1h"), "{bad:?}: {err}");
        if !bad.is_empty() {
            assert!(!err.contains(bad), "{bad:?} echoed: {err}");
        }
    }
}
