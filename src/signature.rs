//! Webhook signatures (SPEC 11): is this body, with these headers, signed by
//! one of our secrets?
//!
//! Pure functions over the raw body and the request's headers; no I/O, no
//! clock (the caller passes `now`), no logging. Every scheme is HMAC-SHA256
//! over the bytes exactly as they arrived, and every secret of a rotation
//! list is tried against every signature the sender gave, all of them, so
//! the time taken does not tell which secret (or whether any) matched; each
//! comparison is `hmac`'s constant-time `verify_slice`.
//!
//! A [`Refusal`] says why, in words fit for the sender and the log: never a
//! secret, never the body, never the signature we expected.

use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// `signature = "…"` of a `[webhooks.<name>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// `X-Hub-Signature-256: sha256=<hex>` over the body.
    Github,
    /// `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]` over `"{t}.{body}"`.
    Stripe,
    /// Standard Webhooks: `webhook-signature: v1,<base64> [v1,<base64> …]`
    /// over `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed by the
    /// base64 after `whsec_`.
    Standard,
    /// A header (default `X-Signature`) holding `<hex>` or `sha256=<hex>`
    /// over the body; no timestamp.
    HmacSha256,
}

/// The default `[webhooks.*] tolerance`: Stripe's and Standard Webhooks' own.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

impl Scheme {
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Github => "github",
            Scheme::Stripe => "stripe",
            Scheme::Standard => "standard",
            Scheme::HmacSha256 => "hmac-sha256",
        }
    }

    /// The header that carries the signature (for `hmac-sha256`, the default
    /// of `signature_header`).
    pub fn header(self) -> &'static str {
        match self {
            Scheme::Github => "X-Hub-Signature-256",
            Scheme::Stripe => "Stripe-Signature",
            Scheme::Standard => "webhook-signature",
            Scheme::HmacSha256 => "X-Signature",
        }
    }

    /// Where the sender puts its delivery id, the same on a redelivery: the
    /// default `event_id` template.
    pub fn delivery_id(self) -> Option<&'static str> {
        match self {
            Scheme::Github => Some("{header.X-GitHub-Delivery}"),
            Scheme::Stripe => Some("{body.id}"),
            Scheme::Standard => Some("{header.webhook-id}"),
            Scheme::HmacSha256 => None,
        }
    }

    /// Whether the scheme signs a timestamp (so `tolerance` applies).
    pub fn has_timestamp(self) -> bool {
        matches!(self, Scheme::Stripe | Scheme::Standard)
    }

    /// The HMAC key a secret stands for. Standard Webhooks secrets are
    /// `whsec_<base64>` and the key is the decoded bytes; Stripe's
    /// `whsec_…` is used as written (as Stripe's libraries do); the others
    /// are the secret's bytes.
    pub fn key(self, secret: &str) -> Result<Vec<u8>, String> {
        if self != Scheme::Standard {
            return Ok(secret.as_bytes().to_vec());
        }
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| {
                format!(
                    "a Standard Webhooks secret is `whsec_` and base64 ({e}); copy it whole from the sender's settings"
                )
            })
    }
}

/// Why a request's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no {0} header")]
    Missing(String),
    #[error("{header} is not {form}")]
    Malformed { header: String, form: &'static str },
    #[error("timestamp outside tolerance")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
}

/// What a request is checked against.
pub struct Check<'a> {
    pub scheme: Scheme,
    /// The signature header (`signature_header` for `hmac-sha256`).
    pub header: &'a str,
    /// HMAC keys, from [`Scheme::key`], in rotation order.
    pub keys: &'a [Vec<u8>],
    pub tolerance: Duration,
    /// Seconds since the Unix epoch.
    pub now: i64,
}

impl Check<'_> {
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), Refusal> {
        let value = header(headers, self.header)?;
        let malformed = |form| Refusal::Malformed {
            header: self.header.to_owned(),
            form,
        };
        let matched = match self.scheme {
            Scheme::Github => {
                let form = "`sha256=<64 hex digits>`";
                let hex = value.strip_prefix("sha256=").ok_or(malformed(form))?;
                let given = decode_hex(hex).ok_or(malformed(form))?;
                self.any_matches(&[body], &[given])
            }
            Scheme::HmacSha256 => {
                let form = "`<64 hex digits>` or `sha256=<64 hex digits>`";
                let hex = value.strip_prefix("sha256=").unwrap_or(value);
                let given = decode_hex(hex).ok_or(malformed(form))?;
                self.any_matches(&[body], &[given])
            }
            Scheme::Stripe => {
                let form = "`t=<unix seconds>,v1=<hex>`";
                let mut t = None;
                let mut given = Vec::new();
                for item in value.split(',') {
                    match item.trim().split_once('=') {
                        Some(("t", ts)) => t = Some(ts),
                        // An undecodable v1 is one that cannot match; the others may.
                        Some(("v1", hex)) => given.extend(decode_hex(hex)),
                        _ => {}
                    }
                }
                let t = t.ok_or(malformed(form))?;
                if given.is_empty() {
                    return Err(malformed(form));
                }
                self.fresh(t.parse().map_err(|_| malformed(form))?)?;
                self.any_matches(&[t.as_bytes(), b".", body], &given)
            }
            Scheme::Standard => {
                let id = header(headers, "webhook-id")?;
                let ts = header(headers, "webhook-timestamp")?;
                let ts_number = ts.parse().map_err(|_| Refusal::Malformed {
                    header: "webhook-timestamp".into(),
                    form: "unix seconds",
                })?;
                let form = "`v1,<base64>` (several separated by spaces)";
                // Other versions (`v1a`, asymmetric) are skipped, as the
                // specification says a verifier does with what it does not know.
                let given: Vec<Vec<u8>> = value
                    .split(' ')
                    .filter_map(|s| s.strip_prefix("v1,"))
                    .filter_map(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .collect();
                if given.is_empty() {
                    return Err(malformed(form));
                }
                self.fresh(ts_number)?;
                self.any_matches(&[id.as_bytes(), b".", ts.as_bytes(), b".", body], &given)
            }
        };
        if matched {
            Ok(())
        } else {
            Err(Refusal::Mismatch)
        }
    }

    /// The sender's timestamp within `tolerance` of now, either way: an old
    /// one is a replay, a far-future one would be replayable until then.
    fn fresh(&self, ts: i64) -> Result<(), Refusal> {
        match self.now.checked_sub(ts) {
            Some(d) if d.unsigned_abs() <= self.tolerance.as_secs() => Ok(()),
            _ => Err(Refusal::Stale),
        }
    }

    /// Every key against every given signature, without stopping at the
    /// first match.
    fn any_matches(&self, message: &[&[u8]], given: &[Vec<u8>]) -> bool {
        let mut matched = false;
        for key in self.keys {
            let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
            for part in message {
                mac.update(part);
            }
            for g in given {
                // verify_slice: constant time, and a wrong length is a plain `Err`.
                matched |= mac.clone().verify_slice(g).is_ok();
            }
        }
        matched
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, Refusal> {
    let value = headers
        .get(name)
        .ok_or_else(|| Refusal::Missing(name.to_owned()))?;
    value
        .to_str()
        .map(str::trim)
        .map_err(|_| Refusal::Malformed {
            header: name.to_owned(),
            form: "text",
        })
}

/// Lower- or uppercase hex; `None` for anything else (an odd length too).
fn decode_hex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// `HMAC-SHA256(key, message)` in lowercase hex: what a sender computes,
/// for `autod`'s own tests and the README's recipes.
pub fn sign_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::test_headers as headers;

    const NOW: i64 = 1_614_265_330;

    fn check(scheme: Scheme, keys: &[Vec<u8>]) -> Check<'_> {
        Check {
            scheme,
            header: scheme.header(),
            keys,
            tolerance: DEFAULT_TOLERANCE,
            now: NOW,
        }
    }

    /// GitHub's own example (docs: "Validating webhook deliveries").
    #[test]
    fn github_documented_vector() {
        let keys = [b"It's a Secret to Everybody".to_vec()];
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let c = check(Scheme::Github, &keys);
        let ok = headers(&[("X-Hub-Signature-256", sig)]);
        assert_eq!(c.verify(&ok, b"Hello, World!"), Ok(()));
        assert_eq!(c.verify(&ok, b"Hello, World?"), Err(Refusal::Mismatch));
        let upper = headers(&[(
            "X-Hub-Signature-256",
            &sig.to_uppercase().replace("SHA256", "sha256"),
        )]);
        assert_eq!(c.verify(&upper, b"Hello, World!"), Ok(()));
        assert_eq!(
            c.verify(&HeaderMap::new(), b"Hello, World!")
                .unwrap_err()
                .to_string(),
            "no X-Hub-Signature-256 header"
        );
        // The right prefix, too short, odd, or not hex: refused, no panic.
        for bad in [
            "sha256=7571",
            "sha256=757",
            "sha256=zz",
            "sha256=",
            "757107",
        ] {
            let r = c.verify(&headers(&[("X-Hub-Signature-256", bad)]), b"Hello, World!");
            assert!(r.is_err(), "{bad}");
        }
        assert!(matches!(
            c.verify(&headers(&[("X-Hub-Signature-256", "sha1=ab")]), b""),
            Err(Refusal::Malformed { .. })
        ));
    }

    /// The Standard Webhooks reference libraries' test vector.
    #[test]
    fn standard_webhooks_reference_vector() {
        let keys = [Scheme::Standard
            .key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap()];
        let body = br#"{"test": 2432232314}"#;
        let h = |sig: &str, ts: &str| {
            headers(&[
                ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
                ("webhook-timestamp", ts),
                ("webhook-signature", sig),
            ])
        };
        let good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let c = check(Scheme::Standard, &keys);
        assert_eq!(c.verify(&h(good, "1614265330"), body), Ok(()));
        // Several signatures, the good one last; unknown versions skipped.
        let many = format!("v1a,xyz v1,AAAA {good}");
        assert_eq!(c.verify(&h(&many, "1614265330"), body), Ok(()));
        assert_eq!(
            c.verify(&h("v1,AAAA", "1614265330"), body),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            c.verify(&h(good, "1614265330"), b"{}"),
            Err(Refusal::Mismatch)
        );
        // Stale and far-future, by one second past the tolerance.
        for ts in [NOW - 301, NOW + 301] {
            assert_eq!(
                c.verify(&h(good, &ts.to_string()), body),
                Err(Refusal::Stale)
            );
        }
        assert!(Scheme::Standard.key("whsec_not*base64").is_err());
        let no_id = headers(&[("webhook-signature", good), ("webhook-timestamp", "1")]);
        assert_eq!(
            c.verify(&no_id, body),
            Err(Refusal::Missing("webhook-id".into()))
        );
    }

    #[test]
    fn stripe_signs_timestamp_and_body() {
        let keys = [b"whsec_old".to_vec(), b"whsec_new".to_vec()];
        let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
        let signed =
            |key: &[u8], t: i64| sign_hex(key, &[t.to_string().as_bytes(), b".", body].concat());
        let c = check(Scheme::Stripe, &keys);
        let h = |v: String| headers(&[("Stripe-Signature", &v)]);
        // The second secret of the list (rotation), after a v0 and a bad v1.
        let v = format!("t={NOW},v0=abc,v1=00,v1={}", signed(b"whsec_new", NOW));
        assert_eq!(c.verify(&h(v), body), Ok(()));
        let v = format!("t={NOW},v1={}", signed(b"whsec_other", NOW));
        assert_eq!(c.verify(&h(v), body), Err(Refusal::Mismatch));
        // The signature is over the timestamp: another t does not match.
        let v = format!("t={},v1={}", NOW - 1, signed(b"whsec_old", NOW));
        assert_eq!(c.verify(&h(v), body), Err(Refusal::Mismatch));
        for t in [NOW - 301, NOW + 301, i64::MIN] {
            let v = format!("t={t},v1={}", signed(b"whsec_old", t));
            assert_eq!(c.verify(&h(v), body), Err(Refusal::Stale), "{t}");
        }
        for bad in ["v1=00", &format!("t={NOW}"), "t=soon,v1=00"] {
            assert!(
                matches!(
                    c.verify(&h(bad.to_owned()), body),
                    Err(Refusal::Malformed { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn generic_hmac_takes_bare_or_prefixed_hex_in_its_header() {
        let keys = [b"k".to_vec()];
        let sig = sign_hex(b"k", b"body");
        let c = Check {
            header: "X-Hook-Sig",
            ..check(Scheme::HmacSha256, &keys)
        };
        for v in [sig.clone(), format!("sha256={sig}")] {
            assert_eq!(c.verify(&headers(&[("x-hook-sig", &v)]), b"body"), Ok(()));
        }
        assert_eq!(
            c.verify(&headers(&[("X-Signature", &sig)]), b"body"),
            Err(Refusal::Missing("X-Hook-Sig".into()))
        );
        assert_eq!(
            c.verify(&headers(&[("X-Hook-Sig", &sig[..62])]), b"body"),
            Err(Refusal::Mismatch)
        );
    }

    #[test]
    fn no_key_matches_nothing() {
        let c = check(Scheme::HmacSha256, &[]);
        let sig = sign_hex(b"", b"x");
        assert_eq!(
            c.verify(&headers(&[("X-Signature", &sig)]), b"x"),
            Err(Refusal::Mismatch)
        );
    }

    #[test]
    fn hex() {
        assert_eq!(decode_hex("00fFa0"), Some(vec![0, 255, 160]));
        assert_eq!(decode_hex(""), Some(vec![]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("0g"), None);
        assert_eq!(decode_hex("é1"), None);
    }
}
