//! The config loader on arbitrary text: nothing may panic, and a config that
//! loads keeps the promises the rest of autod computes with (every duration
//! within its bound, so no deadline or next-attempt time overflows).
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use autod::config::{self, Config};
use libfuzzer_sys::fuzz_target;

fn root() -> &'static std::path::Path {
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    ROOT.get_or_init(|| tempfile::tempdir().expect("temp dir")).path()
}

fn fits(d: Duration, max: Duration) {
    assert!(d <= max, "{d:?} over its bound {max:?}");
    assert!(Instant::now().checked_add(d).is_some());
    let at = autod::time::add(autod::time::now(), d);
    assert!(autod::time::parse(&autod::time::format(at)).is_some());
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let root = root();
    let Ok(c) = Config::parse(root, &root.join("autod.toml"), text) else {
        return;
    };
    for h in &c.handlers {
        assert!(config::valid_handler_name(&h.name));
        assert!(!h.timeout.is_zero());
        fits(h.timeout, config::MAX_TIMEOUT);
        fits(h.kill_grace, config::MAX_KILL_GRACE);
        fits(h.retry.initial.0, config::MAX_RETRY_DELAY);
        fits(h.retry.max.0, config::MAX_RETRY_DELAY);
        assert!(h.retry.max_attempts >= 1);
        for n in [1, 2, 40, u32::MAX] {
            fits(autod::retry::delay(&h.retry, n), config::MAX_RETRY_DELAY);
        }
    }
    for w in &c.watches {
        if let Some(d) = w.debounce {
            fits(d.0, config::MAX_DEBOUNCE);
        }
    }
    for s in &c.schedules {
        let expr = autod::cron::CronExpr::parse(&s.cron).expect("a loaded schedule parses");
        let zone = autod::zone::Zone::parse(s.timezone.as_deref()).expect("a loaded zone parses");
        let _ = expr.next_after(&zone.rules(), autod::time::now());
    }
});
