//! Process hardening, applied first thing in `main`, before any key or number is in
//! memory: keys and plaintext numbers should reach neither core dumps nor swap, and
//! every file the process creates should be private to its owner.
//!
//! | measure | how | where not permitted |
//! |---|---|---|
//! | no core dumps | `setrlimit(RLIMIT_CORE, 0)` and `prctl(PR_SET_DUMPABLE, 0)` (the latter also stops other processes of the same user from ptrace-attaching or reading `/proc/PID/mem`) | a warning |
//! | no swap | `mlockall(MCL_CURRENT \| MCL_FUTURE \| MCL_ONFAULT)` | one warning, unless no swap is active |
//! | private files | `umask(077)`: files the process creates are 0600, directories 0700 | always permitted |
//!
//! Why every page and not just the key pages: locking one allocation (`mlock` of the
//! pages holding a key) needs a raw pointer, which no safe wrapper offers, and keys are
//! not the only secret: plaintext numbers pass through request buffers, CSV readers
//! and the HTTP layer. `mlockall` covers all of them. It is attempted only where it
//! cannot break allocation: with `MCL_FUTURE`, every later mapping must fit under
//! `RLIMIT_MEMLOCK`, and a small limit (8 MiB by default on Linux) would make `malloc`
//! fail once the process outgrows it. So it is used only when the limit is unlimited
//! or the process holds `CAP_IPC_LOCK` (which lifts the limit); `MCL_ONFAULT` locks
//! pages as they are touched rather than populating every reserved mapping up front.
//! `PHONEVAULT_NO_MLOCK=1` turns it off (e.g. on a host that runs many instances).
//!
//! All system calls go through `rustix`'s safe wrappers: `unsafe_code` stays
//! forbidden.

use rustix::process::{Resource, Rlimit};

/// Environment variable that turns memory locking off.
pub const NO_MLOCK_ENV: &str = "PHONEVAULT_NO_MLOCK";

/// What [`harden_process`] achieved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// `RLIMIT_CORE` is 0 (soft and hard).
    pub core_limit_zero: bool,
    /// The process is marked not dumpable.
    pub not_dumpable: bool,
    /// Whether memory is locked, and if not, why.
    pub memory: MemoryLock,
}

/// Outcome of the attempt to keep the process's memory out of swap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemoryLock {
    /// Every current and future page is locked.
    Locked,
    /// Turned off with `PHONEVAULT_NO_MLOCK`.
    Disabled,
    /// Not permitted: `RLIMIT_MEMLOCK` is finite (this many bytes) and the process
    /// lacks `CAP_IPC_LOCK`. Locking anyway would make later allocations fail.
    NotPermitted {
        /// The soft limit in bytes.
        limit: u64,
    },
    /// `mlockall` was permitted by the checks above but the kernel refused it.
    Failed(String),
}

impl Report {
    /// The one warning to print, if any: `None` when every measure took effect, or
    /// when memory could not be locked but no swap is active (nothing to leak to).
    pub fn warning(&self, swap_active: bool) -> Option<String> {
        let mut missing = Vec::new();
        if !self.core_limit_zero || !self.not_dumpable {
            missing.push("core dumps could not be disabled (run it with `ulimit -c 0`)".to_owned());
        }
        let hint = "raise the limit (`ulimit -l unlimited`, systemd LimitMEMLOCK=infinity) \
                    or use encrypted swap";
        match &self.memory {
            MemoryLock::Locked | MemoryLock::Disabled => {}
            MemoryLock::NotPermitted { .. } | MemoryLock::Failed(_) if !swap_active => {}
            MemoryLock::NotPermitted { limit } => missing.push(format!(
                "memory is not locked (RLIMIT_MEMLOCK is {} KiB and the process lacks \
                 CAP_IPC_LOCK), so keys and numbers may be swapped out: {hint}, or set \
                 {NO_MLOCK_ENV}=1 to accept that",
                limit / 1024
            )),
            MemoryLock::Failed(e) => missing.push(format!(
                "memory is not locked (mlockall: {e}), so keys and numbers may be swapped \
                 out: {hint}, or set {NO_MLOCK_ENV}=1 to accept that"
            )),
        }
        if missing.is_empty() {
            None
        } else {
            Some(format!("warning: {}", missing.join("; ")))
        }
    }
}

/// Whether `mlockall(MCL_FUTURE)` is safe to call: only when no `RLIMIT_MEMLOCK`
/// applies, so that no later allocation can fail because of it.
pub fn may_lock_all(memlock_soft_limit: Option<u64>, has_ipc_lock: bool) -> bool {
    has_ipc_lock || memlock_soft_limit.is_none()
}

/// Applies every measure (see the module documentation) to the current process.
/// Never fails: what could not be done is in the [`Report`].
pub fn harden_process() -> Report {
    // Before anything creates a file: 0600 files and 0700 directories by default.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let core_limit_zero = rustix::process::setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .is_ok();
    let not_dumpable =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
            .is_ok();
    Report {
        core_limit_zero,
        not_dumpable,
        memory: lock_memory(),
    }
}

fn lock_memory() -> MemoryLock {
    if std::env::var_os(NO_MLOCK_ENV).is_some_and(|v| !v.is_empty() && v != "0") {
        return MemoryLock::Disabled;
    }
    let limit = rustix::process::getrlimit(Resource::Memlock).current;
    let has_ipc_lock = rustix::thread::capabilities(None)
        .map(|c| {
            c.effective
                .contains(rustix::thread::CapabilitySet::IPC_LOCK)
        })
        .unwrap_or(false);
    if !may_lock_all(limit, has_ipc_lock) {
        return MemoryLock::NotPermitted {
            limit: limit.unwrap_or(0),
        };
    }
    use rustix::mm::MlockAllFlags;
    match rustix::mm::mlockall(
        MlockAllFlags::CURRENT | MlockAllFlags::FUTURE | MlockAllFlags::ONFAULT,
    ) {
        Ok(()) => MemoryLock::Locked,
        Err(e) => MemoryLock::Failed(e.to_string()),
    }
}

/// Whether any swap area is active (`/proc/swaps` lists one after its header).
/// Unknown counts as active, so the warning errs on the side of being shown.
pub fn swap_active() -> bool {
    match std::fs::read_to_string("/proc/swaps") {
        Ok(s) => s.lines().skip(1).any(|l| !l.trim().is_empty()),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_only_without_a_limit_that_allocation_could_hit() {
        assert!(may_lock_all(None, false));
        assert!(may_lock_all(Some(8 << 20), true));
        assert!(may_lock_all(None, true));
        // The case that would make malloc fail later: a finite limit, no capability.
        assert!(!may_lock_all(Some(8 << 20), false));
        assert!(!may_lock_all(Some(0), false));
    }

    #[test]
    fn one_warning_naming_what_is_missing_and_what_to_do() {
        let all = Report {
            core_limit_zero: true,
            not_dumpable: true,
            memory: MemoryLock::Locked,
        };
        assert_eq!(all.warning(true), None);
        let unlocked = Report {
            memory: MemoryLock::NotPermitted { limit: 8 << 20 },
            ..all.clone()
        };
        let w = unlocked.warning(true).unwrap_or_default();
        assert!(w.starts_with("warning: memory is not locked"), "{w}");
        assert!(
            w.contains("8192 KiB") && w.contains("ulimit -l unlimited"),
            "{w}"
        );
        assert!(w.contains(NO_MLOCK_ENV), "{w}");
        assert_eq!(w.lines().count(), 1);
        // Without swap there is nowhere for unlocked pages to go.
        assert_eq!(unlocked.warning(false), None);
        let no_core = Report {
            core_limit_zero: false,
            ..unlocked
        };
        let w = no_core.warning(false).unwrap_or_default();
        assert!(w.contains("core dumps could not be disabled"), "{w}");
        let disabled = Report {
            memory: MemoryLock::Disabled,
            ..all
        };
        assert_eq!(disabled.warning(true), None);
    }
}
