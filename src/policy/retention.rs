//! The retention rule, once: a record lives for the tenant's retention period after
//! its latest activity (a consent or a verification, [`RecordBody::last_activity`]),
//! and an expired record is never returned, counted or shared, purged or not.

use crate::record::RecordBody;

/// Seconds in a retention day.
pub const SECONDS_PER_DAY: u64 = 86_400;

/// Whether a record whose latest activity was at `last_activity` has expired at `now`
/// under a retention of `days` (`None`: kept until erased).
pub fn expired_at(last_activity: u64, days: Option<u32>, now: u64) -> bool {
    days.is_some_and(|d| {
        last_activity.saturating_add(u64::from(d).saturating_mul(SECONDS_PER_DAY)) <= now
    })
}

/// Whether `body` has expired at `now` under a retention of `days`.
pub fn expired(body: &RecordBody, days: Option<u32>, now: u64) -> bool {
    expired_at(body.last_activity(), days, now)
}

/// The latest activity time at which a record has expired at `now` under `days`
/// (the end of a purge's range); `None` while nothing can have expired yet.
pub fn expiry_cutoff(days: u32, now: u64) -> Option<u64> {
    now.checked_sub(u64::from(days).saturating_mul(SECONDS_PER_DAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = SECONDS_PER_DAY;

    #[test]
    fn a_record_expires_exactly_its_retention_after_its_last_activity() {
        let last = 1_000 * DAY;
        assert!(!expired_at(last, Some(30), last + 30 * DAY - 1));
        assert!(expired_at(last, Some(30), last + 30 * DAY));
        assert!(!expired_at(last, None, u64::MAX));
        assert!(expired_at(last, Some(0), last));
        // No overflow at the far end.
        assert!(!expired_at(u64::MAX - 1, Some(u32::MAX), u64::MAX - 1));
    }

    #[test]
    fn the_cutoff_agrees_with_the_rule() {
        let now = 5_000 * DAY + 17;
        let cutoff = expiry_cutoff(30, now).unwrap();
        assert!(expired_at(cutoff, Some(30), now));
        assert!(!expired_at(cutoff + 1, Some(30), now));
        assert_eq!(expiry_cutoff(30, 29 * DAY), None);
    }
}
