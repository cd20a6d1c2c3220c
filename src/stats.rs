//! Anonymized statistics and partner pseudonyms: pure functions, no I/O.
//!
//! Counts of live records by country and number type, with small groups suppressed
//! (k-anonymity threshold) and optional Laplace noise (differential privacy, one
//! query at a time: repeated queries add up their epsilons).

use std::collections::BTreeMap;

use phonevault_keys::MacKey;
use rand::Rng;

use crate::phone::NumberKind;
use crate::record::RecordId;

/// Domain label of partner pseudonyms.
pub const PARTNER_PSEUDONYM_LABEL: &[u8] = b"phonevault/v1/partner-pseudonym";

/// Why a statistics query was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// The suppression threshold is below 2.
    #[error("--min-group must be at least 2 (groups smaller than it are suppressed)")]
    MinGroup,
    /// Epsilon is not a positive finite number.
    #[error("--epsilon must be a positive number (smaller is more private and noisier)")]
    Epsilon,
    /// No grouping dimension.
    #[error("--by needs at least one of: country, type")]
    NoDimension,
}

/// What to count and how to protect it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StatsQuery {
    /// Group by country (ISO region).
    pub by_country: bool,
    /// Group by number type.
    pub by_type: bool,
    /// Groups with fewer records than this are suppressed (k-anonymity), at least 2.
    pub min_group: u64,
    /// Laplace noise with this privacy budget (per query), if any.
    pub epsilon: Option<f64>,
}

impl StatsQuery {
    /// Checks the parameters.
    ///
    /// # Errors
    /// [`StatsError`] naming the bad parameter.
    pub fn validate(&self) -> Result<(), StatsError> {
        if !self.by_country && !self.by_type {
            return Err(StatsError::NoDimension);
        }
        if self.min_group < 2 {
            return Err(StatsError::MinGroup);
        }
        if let Some(e) = self.epsilon {
            if !(e.is_finite() && e > 0.0) {
                return Err(StatsError::Epsilon);
            }
        }
        Ok(())
    }
}

/// One published group.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Group {
    /// Region (`"GB"`; `"001"` for non-geographic numbers), when grouped by country.
    pub country: Option<String>,
    /// Number type (`"MOBILE"`), when grouped by type.
    #[serde(rename = "type")]
    pub kind: Option<&'static str>,
    /// Count (noisy when epsilon was given), never below the threshold.
    pub count: u64,
}

/// The answer to a statistics query.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// Published groups, largest first.
    pub groups: Vec<Group>,
    /// How many groups were suppressed (their keys are not published).
    pub suppressed_groups: u64,
    /// The threshold applied.
    pub min_group: u64,
    /// The privacy budget spent by this query, if noise was added.
    pub epsilon: Option<f64>,
}

/// One count as a query publishes it: with epsilon, plus Laplace noise of scale
/// 1/epsilon; `None` when the (noisy) count is below the query's threshold.
pub fn publish_count(count: u64, q: &StatsQuery, rng: &mut impl Rng) -> Option<u64> {
    let published = match q.epsilon {
        Some(e) => (count as f64 + laplace(rng, 1.0 / e)).round().max(0.0) as u64,
        None => count,
    };
    (published >= q.min_group).then_some(published)
}

/// Counts records into groups, then publishes them under the query's protections.
#[derive(Debug, Default)]
pub struct Aggregator {
    counts: BTreeMap<(Option<String>, Option<NumberKind>), u64>,
}

impl Aggregator {
    /// Counts one live record.
    pub fn add(&mut self, q: &StatsQuery, region: &str, kind: NumberKind) {
        let country = q.by_country.then(|| {
            if region.is_empty() {
                "001".to_owned()
            } else {
                region.to_owned()
            }
        });
        let kind = q.by_type.then_some(kind);
        *self.counts.entry((country, kind)).or_default() += 1;
    }

    /// Publishes the groups: with epsilon, each count gets Laplace noise of scale
    /// 1/epsilon (one record changes one count by 1) and groups are suppressed on the
    /// noisy count; without, on the true count. Either way no published group is
    /// below the threshold, and suppressed groups are only counted.
    pub fn finish(self, q: &StatsQuery, rng: &mut impl Rng) -> Stats {
        let mut groups = Vec::new();
        let mut suppressed = 0;
        for ((country, kind), count) in self.counts {
            let Some(published) = publish_count(count, q, rng) else {
                suppressed += 1;
                continue;
            };
            groups.push(Group {
                country,
                kind: kind.map(NumberKind::as_str),
                count: published,
            });
        }
        groups.sort_by_key(|g| std::cmp::Reverse(g.count));
        Stats {
            groups,
            suppressed_groups: suppressed,
            min_group: q.min_group,
            epsilon: q.epsilon,
        }
    }
}

/// A sample of the Laplace distribution with mean 0 and scale `b` (inverse CDF).
pub fn laplace(rng: &mut impl Rng, b: f64) -> f64 {
    // u in (-0.5, 0.5), excluding the endpoints where ln(0) would appear.
    let mut u: f64 = rng.gen::<f64>() - 0.5;
    while u.abs() >= 0.5 {
        u = rng.gen::<f64>() - 0.5;
    }
    -b * u.signum() * (1.0 - 2.0 * u.abs()).ln()
}

/// The id a partner sees for a record: keyed by the tenant's record-MAC key and the
/// partner, so record ids never leave the vault and two partners cannot join their
/// files on it.
pub fn partner_pseudonym(mac: &MacKey, partner: &str, id: &RecordId) -> String {
    let tag = mac.tag(&[PARTNER_PSEUDONYM_LABEL, partner.as_bytes(), &id.0]);
    hex::encode(&tag[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn q(min_group: u64, epsilon: Option<f64>) -> StatsQuery {
        StatsQuery {
            by_country: true,
            by_type: true,
            min_group,
            epsilon,
        }
    }

    fn sample(q: &StatsQuery) -> Aggregator {
        let mut a = Aggregator::default();
        for _ in 0..3 {
            a.add(q, "IS", NumberKind::Mobile);
        }
        for _ in 0..50 {
            a.add(q, "GB", NumberKind::Mobile);
        }
        for _ in 0..12 {
            a.add(q, "GB", NumberKind::FixedLine);
        }
        a
    }

    #[test]
    fn small_groups_are_suppressed() {
        let query = q(10, None);
        let s = sample(&query).finish(&query, &mut rand::thread_rng());
        assert_eq!(s.suppressed_groups, 1);
        assert_eq!(s.groups.len(), 2);
        assert!(s.groups.iter().all(|g| g.count >= 10));
        assert!(s.groups.iter().all(|g| g.country.as_deref() != Some("IS")));
        assert_eq!(s.groups[0].count, 50);
        assert_eq!(s.groups[0].kind, Some("MOBILE"));
    }

    #[test]
    fn no_published_group_is_below_k_under_noise() {
        let query = q(10, Some(0.5));
        for seed in 0..500 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let s = sample(&query).finish(&query, &mut rng);
            assert!(s.groups.iter().all(|g| g.count >= 10), "seed {seed}");
            assert_eq!(s.groups.len() as u64 + s.suppressed_groups, 3);
        }
    }

    #[test]
    fn laplace_has_the_right_mean_and_scale() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let n = 200_000;
        let b = 2.0;
        let xs: Vec<f64> = (0..n).map(|_| laplace(&mut rng, b)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let mad = xs.iter().map(|x| x.abs()).sum::<f64>() / n as f64; // E|X| = b
        assert!(mean.abs() < 0.05, "{mean}");
        assert!((mad - b).abs() < 0.05, "{mad}");
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert_eq!(q(1, None).validate(), Err(StatsError::MinGroup));
        assert_eq!(q(10, Some(0.0)).validate(), Err(StatsError::Epsilon));
        assert_eq!(q(10, Some(-1.0)).validate(), Err(StatsError::Epsilon));
        assert_eq!(q(10, Some(f64::NAN)).validate(), Err(StatsError::Epsilon));
        let mut none = q(10, None);
        none.by_country = false;
        none.by_type = false;
        assert_eq!(none.validate(), Err(StatsError::NoDimension));
        assert_eq!(q(2, Some(1.0)).validate(), Ok(()));
    }
}
