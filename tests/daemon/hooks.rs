//! `POST /hooks/<name>` (SPEC 11) through real HTTP: signed the way GitHub,
//! Stripe and Standard Webhooks senders sign, with signatures computed here
//! from known secrets (RustCrypto's HMAC, not autod's code), and the events
//! run by a real `autod run`.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use crate::helper::{LIMIT, Project, wait_until};
use crate::http::{JSON, Serve, response, serve_command};

const GH_SECRET: &str = "gh-s3cret-value";
const GH_NEXT: &str = "gh-n3xt-value";
const STRIPE_SECRET: &str = "whsec_stripe-test-secret";
/// A Standard Webhooks secret: `whsec_` and base64 of the key.
const STD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn hmac_base64(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// Three hooks, one per scheme, each routed to a handler that records the
/// eventId and eventType it ran.
fn project() -> Project {
    let p = Project::new()
        .open_schema("github.push")
        .open_schema("github.ping")
        .open_schema("stripe.charge.succeeded")
        .open_schema("std.user.created")
        .config(
            r#"
            [webhooks.github]
            event_type = "github.{header.X-GitHub-Event}"
            signature = "github"
            secret_env = ["GH_SECRET", "GH_NEXT"]
            headers = ["X-GitHub-Event", "X-GitHub-Delivery"]
            key = "{body.repository.full_name}"

            [webhooks.stripe]
            event_type = "stripe.{body.type}"
            signature = "stripe"
            secret_env = "STRIPE_SECRET"

            [webhooks.std]
            event_type = "std.{body.type}"
            signature = "standard"
            secret_file = "secrets/std"

            [handlers.worker]
            on = ["github.*", "stripe.**", "std.**"]
            "#,
        )
        .handler(
            "worker",
            r#"echo "$AUTOD_EVENT_ID $AUTOD_EVENT_TYPE" >> ran.txt"#,
        );
    p.write("secrets/std", format!("{STD_SECRET}\n"));
    p
}

fn serve(p: &Project) -> Serve {
    Serve::start_with_env(
        p,
        &["--listen", "127.0.0.1:0"],
        &[
            ("GH_SECRET", GH_SECRET),
            ("GH_NEXT", GH_NEXT),
            ("STRIPE_SECRET", STRIPE_SECRET),
        ],
    )
}

fn push_body(repo: &str) -> String {
    json!({"ref": "refs/heads/main", "repository": {"full_name": repo}}).to_string()
}

/// A GitHub delivery: `signature` is the whole X-Hub-Signature-256 value, or none.
fn github(serve: &Serve, delivery: &str, body: &str, signature: Option<&str>) -> (u16, Value) {
    let mut h = vec![
        ("Content-Type", JSON),
        ("X-GitHub-Event", "push"),
        ("X-GitHub-Delivery", delivery),
    ];
    if let Some(s) = signature {
        h.push(("X-Hub-Signature-256", s));
    }
    serve.request("POST", "/hooks/github", &h, body.as_bytes())
}

fn gh_sig(secret: &str, body: &str) -> String {
    format!("sha256={}", hmac_hex(secret.as_bytes(), body.as_bytes()))
}

#[test]
fn github_signed_delivery_is_queued_with_its_delivery_id_and_headers() {
    let p = project();
    let serve = serve(&p);
    let body = push_body("me/site");
    let (status, answer) = github(&serve, "d-1", &body, Some(&gh_sig(GH_SECRET, &body)));
    assert_eq!((status, answer), (202, json!({"eventIds": ["d-1"]})));
    let queued: Value = serde_json::from_str(&p.read(".autod/inbox/d-1.json")).unwrap();
    assert_eq!(queued["eventType"], "github.push");
    assert_eq!(queued["source"], "webhook:github");
    assert_eq!(queued["key"], "me/site");
    assert_eq!(
        queued["headers"],
        json!({"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1"})
    );
    assert_eq!(
        queued["payload"],
        serde_json::from_str::<Value>(&body).unwrap()
    );
    // Rotation: the second secret of the list is as good as the first.
    let (status, _) = github(&serve, "d-2", &body, Some(&gh_sig(GH_NEXT, &body)));
    assert_eq!(status, 202);
    assert_eq!(p.inbox(), ["d-1.json", "d-2.json"]);
}

#[test]
fn github_bad_signatures_are_401_with_the_reason() {
    let p = project();
    let serve = serve(&p);
    let body = push_body("me/site");
    let good = gh_sig(GH_SECRET, &body);
    let cases = [
        (None, "no X-Hub-Signature-256 header"),
        (
            Some(gh_sig("another-secret", &body)),
            "signature does not match",
        ),
        // The right prefix, a signature of the wrong length.
        (
            Some(good[..good.len() - 2].to_owned()),
            "signature does not match",
        ),
        (
            Some("sha256=abc".to_owned()),
            "is not `sha256=<64 hex digits>`",
        ),
        (Some(good.replace("sha256=", "sha1=")), "is not `sha256="),
    ];
    for (signature, reason) in cases {
        let (status, answer) = github(&serve, "bad-1", &body, signature.as_deref());
        assert_eq!(status, 401, "{signature:?}: {answer}");
        assert_eq!(answer["error"], "unauthorized");
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.starts_with("webhook \"github\": ") && message.contains(reason),
            "{signature:?}: {message}"
        );
    }
    // Signed over another body: the signature is over the raw bytes.
    let (status, _) = github(&serve, "bad-2", &push_body("me/other"), Some(&good));
    assert_eq!(status, 401);
    assert!(p.inbox().is_empty(), "{:?}", p.inbox());
}

#[test]
fn a_refusal_is_logged_with_hook_and_reason_and_never_the_secret_or_body() {
    let p = project();
    let serve = serve(&p);
    let body = json!({"repository": {"full_name": "private-marker-body"}}).to_string();
    let (status, _) = github(&serve, "log-1", &body, Some(&gh_sig("wrong", &body)));
    assert_eq!(status, 401);
    let (status, _) = github(&serve, "log-2", &body, None);
    assert_eq!(status, 401);
    wait_until(LIMIT, "the refusals to be logged", || {
        serve
            .stderr()
            .matches("POST /hooks/github: refused")
            .count()
            == 2
    });
    let stderr = serve.stderr();
    assert!(
        stderr.contains("POST /hooks/github: refused: signature does not match"),
        "{stderr}"
    );
    assert!(
        stderr.contains("POST /hooks/github: refused: no X-Hub-Signature-256 header"),
        "{stderr}"
    );
    for secret in [
        GH_SECRET,
        GH_NEXT,
        STRIPE_SECRET,
        STD_SECRET,
        "private-marker-body",
    ] {
        assert!(!stderr.contains(secret), "{secret} in {stderr}");
    }
}

#[test]
fn a_redelivered_github_webhook_runs_once() {
    let p = project();
    let serve = serve(&p);
    let body = push_body("me/site");
    let sig = gh_sig(GH_SECRET, &body);
    assert_eq!(github(&serve, "redo-1", &body, Some(&sig)).0, 202);
    let _daemon = p.start(&[]);
    wait_until(LIMIT, "redo-1 to run", || {
        p.lines("ran.txt") == ["redo-1 github.push"]
    });
    // GitHub's "Redeliver": the same delivery id, the same answer.
    let (status, answer) = github(&serve, "redo-1", &body, Some(&sig));
    assert_eq!((status, answer), (202, json!({"eventIds": ["redo-1"]})));
    wait_until(LIMIT, "the daemon to drain", || p.drained());
    assert_eq!(p.lines("ran.txt"), ["redo-1 github.push"], "ran once");
}

fn stripe(serve: &Serve, body: &str, signature: Option<&str>) -> (u16, Value) {
    let mut h = vec![("Content-Type", JSON)];
    if let Some(s) = signature {
        h.push(("Stripe-Signature", s));
    }
    serve.request("POST", "/hooks/stripe", &h, body.as_bytes())
}

fn stripe_sig(secret: &str, t: i64, body: &str) -> String {
    format!(
        "t={t},v1={}",
        hmac_hex(secret.as_bytes(), format!("{t}.{body}").as_bytes())
    )
}

#[test]
fn stripe_signature_timestamp_and_event_id() {
    let p = project();
    let serve = serve(&p);
    let body =
        json!({"id": "evt_1Nx", "type": "charge.succeeded", "data": {"object": {}}}).to_string();
    let t = now();
    let (status, answer) = stripe(&serve, &body, Some(&stripe_sig(STRIPE_SECRET, t, &body)));
    assert_eq!((status, answer), (202, json!({"eventIds": ["evt_1Nx"]})));
    let queued: Value = serde_json::from_str(&p.read(".autod/inbox/evt_1Nx.json")).unwrap();
    assert_eq!(queued["eventType"], "stripe.charge.succeeded");
    assert_eq!(queued["source"], "webhook:stripe");
    let good = stripe_sig(STRIPE_SECRET, t, &body);
    let cases = [
        (None, "no Stripe-Signature header".to_owned()),
        (
            Some(stripe_sig("whsec_other", t, &body)),
            "signature does not match".into(),
        ),
        // Ten minutes old, or ten minutes ahead: outside the 5-minute window.
        (
            Some(stripe_sig(STRIPE_SECRET, t - 600, &body)),
            "timestamp outside tolerance".into(),
        ),
        (
            Some(stripe_sig(STRIPE_SECRET, t + 600, &body)),
            "timestamp outside tolerance".into(),
        ),
        (
            Some(good[..good.len() - 4].to_owned()),
            "signature does not match".into(),
        ),
        (
            Some(format!("t={t}")),
            "is not `t=<unix seconds>,v1=<hex>`".into(),
        ),
    ];
    for (signature, reason) in cases {
        let (status, answer) = stripe(&serve, &body, signature.as_deref());
        assert_eq!(status, 401, "{signature:?}: {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(&reason), "{signature:?}: {message}");
    }
    assert_eq!(p.inbox(), ["evt_1Nx.json"]);
}

fn standard(serve: &Serve, id: &str, ts: i64, body: &str, signature: Option<&str>) -> (u16, Value) {
    let ts = ts.to_string();
    let mut h = vec![
        ("Content-Type", JSON),
        ("webhook-id", id),
        ("webhook-timestamp", ts.as_str()),
    ];
    if let Some(s) = signature {
        h.push(("webhook-signature", s));
    }
    serve.request("POST", "/hooks/std", &h, body.as_bytes())
}

fn std_sig(id: &str, ts: i64, body: &str) -> String {
    std_sig_by(STD_SECRET, id, ts, body)
}

fn std_sig_by(secret: &str, id: &str, ts: i64, body: &str) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    format!(
        "v1,{}",
        hmac_base64(&key, format!("{id}.{ts}.{body}").as_bytes())
    )
}

#[test]
fn standard_webhooks_signature_and_timestamp() {
    let p = project();
    let serve = serve(&p);
    let body = json!({"type": "user.created", "data": {"id": 7}}).to_string();
    let t = now();
    // Several signatures (the sender rotating its key): one good is enough.
    let sig = format!("v1,AAAA {}", std_sig("msg_1", t, &body));
    let (status, answer) = standard(&serve, "msg_1", t, &body, Some(&sig));
    assert_eq!((status, answer), (202, json!({"eventIds": ["msg_1"]})));
    let good = std_sig("msg_2", t, &body);
    let cases = [
        (t, None, "no webhook-signature header"),
        (
            t,
            Some(std_sig("msg_other", t, &body)),
            "signature does not match",
        ),
        (
            t - 600,
            Some(std_sig("msg_2", t - 600, &body)),
            "timestamp outside tolerance",
        ),
        (
            t + 600,
            Some(std_sig("msg_2", t + 600, &body)),
            "timestamp outside tolerance",
        ),
        (
            t,
            Some(good[..good.len() - 8].to_owned()),
            "signature does not match",
        ),
        (t, Some("v2,abc".to_owned()), "is not `v1,<base64>`"),
    ];
    for (ts, signature, reason) in cases {
        let (status, answer) = standard(&serve, "msg_2", ts, &body, signature.as_deref());
        assert_eq!(status, 401, "{signature:?}: {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(reason), "{signature:?}: {message}");
    }
    assert_eq!(p.inbox(), ["msg_1.json"]);
}

#[test]
fn unknown_hook_is_404_and_a_missing_template_field_is_400() {
    let p = project();
    let serve = serve(&p);
    let (status, answer) = serve.request("POST", "/hooks/gitlab", &[("Content-Type", JSON)], b"{}");
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["error"], "not-found");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("github, std, stripe"),
        "{answer}"
    );
    // Signed, but the body has no `type` for the event_type template.
    let body = json!({"id": "evt_2"}).to_string();
    let (status, answer) = stripe(
        &serve,
        &body,
        Some(&stripe_sig(STRIPE_SECRET, now(), &body)),
    );
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"], "template");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains("event_type template \"stripe.{body.type}\"")
            && message.contains("the body has no field type"),
        "{message}"
    );
    // A value the template fills in that is no eventType.
    let body = json!({"id": "evt_3", "type": "charge succeeded"}).to_string();
    let (status, answer) = stripe(
        &serve,
        &body,
        Some(&stripe_sig(STRIPE_SECRET, now(), &body)),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("which is not an eventType"),
        "{answer}"
    );
    // The payload schema still applies: its errors are /events' errors.
    p.write(
        "schemas/stripe.charge.succeeded.json",
        r#"{"required": ["livemode"]}"#,
    );
    let body = json!({"id": "evt_4", "type": "charge.succeeded"}).to_string();
    wait_until(LIMIT, "the new schema to refuse", || {
        stripe(
            &serve,
            &body,
            Some(&stripe_sig(STRIPE_SECRET, now(), &body)),
        )
        .0 == 400
    });
    let (_, answer) = stripe(
        &serve,
        &body,
        Some(&stripe_sig(STRIPE_SECRET, now(), &body)),
    );
    assert_eq!(answer["errors"][0]["pointer"], "/payload", "{answer}");
    assert!(p.inbox().is_empty(), "{:?}", p.inbox());
}

/// Form and raw bodies from unsigned hooks on loopback (a local script).
#[test]
fn form_and_raw_bodies() {
    let p = Project::new()
        .open_schema("local.form")
        .open_schema("local.raw")
        .config(
            r#"
            [webhooks.form]
            event_type = "local.form"
            event_id = "form-{body.n}"

            [webhooks.raw]
            event_type = "local.raw"

            [webhooks.ghform]
            event_type = "github.{header.X-GitHub-Event}"
            signature = "github"
            secret_env = "GH_SECRET"

            [handlers.worker]
            on = ["local.*", "github.*"]
            "#,
        )
        .open_schema("github.ping")
        .handler("worker", "true");
    let serve = Serve::start_with_env(
        &p,
        &["--listen", "127.0.0.1:0"],
        &[("GH_SECRET", GH_SECRET)],
    );
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let (status, answer) = serve.request(
        "POST",
        "/hooks/form",
        &form,
        b"n=1&text=two+words%21&tag=a&tag=b",
    );
    assert_eq!((status, answer), (202, json!({"eventIds": ["form-1"]})));
    let queued: Value = serde_json::from_str(&p.read(".autod/inbox/form-1.json")).unwrap();
    assert_eq!(
        queued["payload"],
        json!({"n": "1", "text": "two words!", "tag": ["a", "b"]})
    );
    assert_eq!(queued["source"], "webhook:form");
    let (status, answer) = serve.request(
        "POST",
        "/hooks/raw",
        &[("Content-Type", "text/plain")],
        b"disk 91% full",
    );
    assert_eq!(status, 202, "{answer}");
    let id = answer["eventIds"][0].as_str().unwrap();
    let queued: Value = serde_json::from_str(&p.read(&format!(".autod/inbox/{id}.json"))).unwrap();
    assert_eq!(queued["payload"], json!({"raw": "disk 91% full"}));
    let (status, answer) = serve.request("POST", "/hooks/raw", &[], &[0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(status, 202, "{answer}");
    let id = answer["eventIds"][0].as_str().unwrap();
    let queued: Value = serde_json::from_str(&p.read(&format!(".autod/inbox/{id}.json"))).unwrap();
    assert_eq!(queued["payload"], json!({"rawBase64": "3q2+7w=="}));
    // JSON declared but not JSON: the sender's fault.
    let (status, answer) = serve.request("POST", "/hooks/raw", &[("Content-Type", JSON)], b"{");
    assert_eq!(
        (status, &answer["error"]),
        (400, &json!("body")),
        "{answer}"
    );
    // GitHub's form content type: the signature over the form bytes, the
    // payload the JSON of its `payload` field.
    let body = "payload=%7B%22zen%22%3A%22Keep+it+logically+awesome.%22%7D";
    let (status, answer) = serve.request(
        "POST",
        "/hooks/ghform",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-GitHub-Event", "ping"),
            ("X-GitHub-Delivery", "ping-1"),
            ("X-Hub-Signature-256", &gh_sig(GH_SECRET, body)),
        ],
        body.as_bytes(),
    );
    assert_eq!((status, answer), (202, json!({"eventIds": ["ping-1"]})));
    let queued: Value = serde_json::from_str(&p.read(".autod/inbox/ping-1.json")).unwrap();
    assert_eq!(
        queued["payload"],
        json!({"zen": "Keep it logically awesome."})
    );
}

#[test]
fn an_oversized_hook_body_is_refused_before_it_is_read() {
    let p = project().config(
        r#"
        [validation]
        max_event_bytes = 1000
        [webhooks.github]
        event_type = "github.{header.X-GitHub-Event}"
        signature = "github"
        secret_env = "GH_SECRET"
        [handlers.worker]
        on = ["github.*"]
        "#,
    );
    let serve = serve(&p);
    let mut s = serve.connect();
    s.write_all(
        b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{\"ref\":",
    )
    .unwrap();
    let (status, answer) = response(&mut s);
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["errors"][0]["keyword"], "maxEventBytes");
}

/// `[webhooks.x] concurrency`: a flood to one hook waits for that hook's
/// slots, not for the server's: another hook (and /events) are answered.
#[test]
fn a_busy_hook_does_not_take_the_other_hooks_slots() {
    let p = Project::new()
        .open_schema("local.a")
        .open_schema("local.b")
        .config(
            r#"
            [serve]
            max_concurrent = 2
            [webhooks.a]
            event_type = "local.a"
            concurrency = 1
            [webhooks.b]
            event_type = "local.b"
            [handlers.worker]
            on = ["local.*"]
            "#,
        )
        .handler("worker", "true");
    // `-v`: the server says when a request holds its slots (it reads its body).
    let serve = Serve::start(&p, &["--listen", "127.0.0.1:0", "-v"]);
    let reading = |hook: &str| {
        serve
            .stderr()
            .matches(&format!("POST /hooks/{hook}: reading the body"))
            .count()
    };
    let slow = |rest_len: usize| {
        let mut s = serve.connect();
        write!(
            s,
            "POST /hooks/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\nab",
            rest_len + 2
        )
        .unwrap();
        s
    };
    let mut first = slow(2);
    wait_until(LIMIT, "the first request to hold a's slot", || {
        reading("a") == 1
    });
    let mut second = slow(2);
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    // Hook b (and /events) still get one of the two server slots.
    let (status, _) = serve.request("POST", "/hooks/b", &[("Content-Type", "text/plain")], b"x");
    assert_eq!(status, 202);
    let (status, _) = serve.request("POST", "/hooks/b", &[("Content-Type", "text/plain")], b"y");
    assert_eq!(status, 202);
    let mut byte = [0u8; 1];
    let waited = second.read(&mut byte);
    assert!(
        waited.as_ref().is_err_and(|e| matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )),
        "the second request to a was answered while a's slot was held: {waited:?}"
    );
    assert_eq!(reading("a"), 1, "{}", serve.stderr());
    first.write_all(b"cd").unwrap();
    assert_eq!(response(&mut first).0, 202);
    second.write_all(b"cd").unwrap();
    second.set_read_timeout(Some(LIMIT)).unwrap();
    assert_eq!(response(&mut second).0, 202);
    assert_eq!(p.inbox().len(), 4);
}

#[test]
fn the_server_refuses_to_start_without_its_secrets_or_with_an_unsigned_hook_beyond_loopback() {
    let p = project();
    // GH_SECRET and the others unset.
    let out = serve_command(&p, &["--listen", "127.0.0.1:0"], &[])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("webhooks.github.secret_env: environment variable GH_SECRET is not set"),
        "{stderr}"
    );
    let p = Project::new().open_schema("local.a").config(
        r#"
        [serve]
        token_env = "TOKEN"
        [webhooks.a]
        event_type = "local.a"
        [handlers.worker]
        on = ["local.*"]
        "#,
    );
    let out = serve_command(&p, &["--listen", "0.0.0.0:0"], &[("TOKEN", "t")])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("webhook \"a\" has no signature") && stderr.contains("beyond loopback"),
        "{stderr}"
    );
}

/// `signature = "hmac-sha256"`: a plain HMAC of the body, hex or `sha256=hex`,
/// in the header the hook names.
#[test]
fn a_generic_hmac_hook_checks_its_own_header() {
    let p = Project::new()
        .open_schema("shop.order")
        .config(
            r#"
            [webhooks.shop]
            event_type = "shop.order"
            event_id = "order-{body.id}"
            signature = "hmac-sha256"
            signature_header = "X-Shop-Hmac"
            secret_env = "SHOP_SECRET"

            [handlers.worker]
            on = ["shop.*"]
            "#,
        )
        .handler("worker", "true");
    let serve = Serve::start_with_env(&p, &["--listen", "127.0.0.1:0"], &[("SHOP_SECRET", "sh0p")]);
    let body = r#"{"id":41}"#;
    let hex = hmac_hex(b"sh0p", body.as_bytes());
    let post = |header: &str, value: &str| {
        serve.request(
            "POST",
            "/hooks/shop",
            &[("Content-Type", JSON), (header, value)],
            body.as_bytes(),
        )
    };
    assert_eq!(
        post("X-Shop-Hmac", &hex),
        (202, json!({"eventIds": ["order-41"]}))
    );
    assert_eq!(post("x-shop-hmac", &format!("sha256={hex}")).0, 202);
    let (status, answer) = post("X-Signature", &hex);
    assert_eq!(status, 401);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("no X-Shop-Hmac header"),
        "{answer}"
    );
    assert_eq!(post("X-Shop-Hmac", &hex[..40]).0, 401);
    assert_eq!(p.inbox(), ["order-41.json"]);
}

/// A hook's events are counted with `/events`' (`intake="http"`), its
/// refusals under its route pattern, never its raw path.
#[test]
fn hook_requests_are_in_the_metrics() {
    let p = project();
    let serve = serve(&p);
    let body = push_body("me/site");
    assert_eq!(
        github(&serve, "m-1", &body, Some(&gh_sig(GH_SECRET, &body))).0,
        202
    );
    assert_eq!(github(&serve, "m-2", &body, None).0, 401);
    let stripe_body = json!({"id": "evt_m"}).to_string();
    let signed = stripe_sig(STRIPE_SECRET, now(), &stripe_body);
    assert_eq!(stripe(&serve, &stripe_body, Some(&signed)).0, 400);
    let (status, text) = serve.request_text("GET", "/metrics", &[], b"");
    assert_eq!(status, 200);
    for line in [
        r#"autod_events_accepted_total{event_type="github.push",intake="http"} 1"#,
        r#"autod_events_rejected_total{event_type="(unknown)",reason="envelope"} 1"#,
        r#"autod_http_requests_total{route="/hooks/{name}",status="202"} 1"#,
        r#"autod_http_requests_total{route="/hooks/{name}",status="401"} 1"#,
        r#"autod_http_requests_total{route="/hooks/{name}",status="400"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
}

#[test]
fn sighup_reads_the_hooks_and_their_secrets_again() {
    let p = project();
    let serve = serve(&p);
    let body = json!({"type": "user.created"}).to_string();
    let t = now();
    let (status, _) = standard(&serve, "r1", t, &body, Some(&std_sig("r1", t, &body)));
    assert_eq!(status, 202);
    assert_eq!(serve.request("POST", "/hooks/plain", &[], b"{}").0, 404);
    // The secret file rotated in place, and a hook added, then SIGHUP.
    let rotated = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(b"a rotated key of 24 bytes")
    );
    p.write("secrets/std", format!("{rotated}\n"));
    let config = p.read("autod.toml");
    p.set_config(&format!(
        "{config}\n[webhooks.plain]\nevent_type = \"std.user.created\"\n"
    ));
    let pid = rustix::process::Pid::from_raw(i32::try_from(serve.child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    wait_until(LIMIT, "the webhooks to be read again", || {
        serve
            .stderr()
            .contains("webhooks and their secrets read again")
    });
    let (old, _) = standard(&serve, "r2", t, &body, Some(&std_sig("r2", t, &body)));
    assert_eq!(old, 401, "the old secret no longer signs");
    let sig = std_sig_by(&rotated, "r3", t, &body);
    assert_eq!(standard(&serve, "r3", t, &body, Some(&sig)).0, 202);
    let (status, body) = serve.request("POST", "/hooks/plain", &[("Content-Type", JSON)], b"{}");
    assert_eq!(status, 202, "{body}");
    let mut inbox = p.inbox();
    inbox.retain(|name| name != "r1.json" && name != "r3.json");
    assert_eq!(
        inbox.len(),
        1,
        "r1, r3 and the plain hook's event: {:?}",
        p.inbox()
    );
}
