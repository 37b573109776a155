//! The backoff policy of dead letters: exponential, capped, with jitter.
//!
//! After the n-th failed attempt the next one is due after
//! `min(max, initial * 2^(n-1))`, scaled by a random factor in [0.5, 1.0] so that
//! many events failing together (a flaky API) do not all retry in the same second.

use std::time::Duration;

use crate::config::RetryConfig;

/// The undelayed, unjittered wait after `attempts` failures (attempts ≥ 1).
pub fn base_delay(retry: &RetryConfig, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(62);
    let factor = 1u64 << exp;
    let initial = retry.initial.0;
    initial
        .checked_mul(u32::try_from(factor).unwrap_or(u32::MAX))
        .unwrap_or(Duration::MAX)
        .min(retry.max.0)
}

/// The wait after `attempts` failures, jittered into [base/2, base].
pub fn delay(retry: &RetryConfig, attempts: u32) -> Duration {
    jittered(base_delay(retry, attempts), fastrand::f64())
}

fn jittered(base: Duration, unit: f64) -> Duration {
    base.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;

    fn cfg(initial: u64, max: u64) -> RetryConfig {
        RetryConfig {
            max_attempts: 5,
            initial: HumanDuration(Duration::from_secs(initial)),
            max: HumanDuration(Duration::from_secs(max)),
        }
    }

    #[test]
    fn doubles_then_caps() {
        let c = cfg(10, 60);
        let secs: Vec<u64> = (1..=6).map(|n| base_delay(&c, n).as_secs()).collect();
        assert_eq!(secs, vec![10, 20, 40, 60, 60, 60]);
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let c = cfg(10, 3600);
        assert_eq!(base_delay(&c, u32::MAX), Duration::from_secs(3600));
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        let base = Duration::from_secs(100);
        assert_eq!(jittered(base, 0.0), Duration::from_secs(50));
        assert_eq!(jittered(base, 1.0), base);
        for _ in 0..1000 {
            let d = delay(&cfg(10, 3600), 3);
            assert!(
                d >= Duration::from_secs(20) && d <= Duration::from_secs(40),
                "{d:?}"
            );
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn delay_stays_between_half_and_full_base(initial in 1u64..600, max in 1u64..86_400, n in 1u32..200) {
                let c = cfg(initial.min(max), max);
                let base = base_delay(&c, n);
                let d = delay(&c, n);
                prop_assert!(base <= Duration::from_secs(max));
                prop_assert!(d <= base && d >= base / 2, "{:?} not in [{:?}/2, {:?}]", d, base, base);
            }

            #[test]
            fn base_never_shrinks(initial in 1u64..600, max in 600u64..86_400, n in 1u32..100) {
                let c = cfg(initial, max);
                prop_assert!(base_delay(&c, n + 1) >= base_delay(&c, n));
            }
        }
    }
}
