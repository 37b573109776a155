//! `autod queue init|status`: the NATS JetStream side of `[queue] backend =
//! "nats"` (SPEC 10). The work is in `queue/nats.rs`; this prints it.

use anyhow::Result;
use serde_json::Value;

use crate::cli::{GlobalArgs, QueueCommand};
use crate::config::QueueConfig;
use crate::exit::Code;
use crate::output;
use crate::project::Project;
use crate::queue::nats::{self, Connection};

pub fn run(project: &Project, g: &GlobalArgs, cmd: &QueueCommand) -> Result<Code> {
    let QueueConfig::Nats(config) = &project.config.queue else {
        anyhow::bail!(
            "this project's queue is the folder .autod/inbox/ (the default), which needs no setting up; for NATS JetStream, set [queue] backend = \"nats\" and url in autod.toml"
        );
    };
    let runtime = super::runtime()?;
    let report = runtime.block_on(async {
        let conn = Connection::open(config).await?;
        match cmd {
            QueueCommand::Init => nats::init(&conn, &project.config).await,
            QueueCommand::Status => nats::status(&conn, &project.config).await,
        }
    });
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{e}");
            // The server refused or could not be reached: autod's side is fine.
            return Ok(Code::Failed);
        }
    };
    if g.json {
        output::json(&report);
        return Ok(Code::Success);
    }
    match cmd {
        QueueCommand::Init => print_init(&report),
        QueueCommand::Status => print_status(&report),
    }
    Ok(Code::Success)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn print_init(r: &Value) {
    output::line(&format!(
        "nats-server {} at {}",
        s(&r["server"]["version"]),
        s(&r["server"]["urls"])
    ));
    let subjects: Vec<String> = r["stream"]["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(s)
        .collect();
    output::line(&format!(
        "stream {:<24} {} (subjects {}, interest retention)",
        s(&r["stream"]["name"]),
        s(&r["stream"]["action"]),
        subjects.join(" ")
    ));
    output::line(&format!(
        "stream {:<24} {} (dead letters)",
        s(&r["deadStream"]["name"]),
        s(&r["deadStream"]["action"])
    ));
    output::line(&format!(
        "consumer {:<22} {} (on {}: brings waiting dead letters back when due)",
        s(&r["retryConsumer"]["name"]),
        s(&r["retryConsumer"]["action"]),
        s(&r["retryConsumer"]["stream"])
    ));
    output::line(&format!(
        "bucket {:<24} {} (done markers)",
        s(&r["doneBucket"]["name"]),
        s(&r["doneBucket"]["action"])
    ));
    output::line(&format!(
        "bucket {:<24} {} (per-key order)",
        s(&r["keysBucket"]["name"]),
        s(&r["keysBucket"]["action"])
    ));
    for c in r["consumers"].as_array().into_iter().flatten() {
        let filters: Vec<String> = c["filterSubjects"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
        let detail = if c["action"] == "removed" {
            "(its handler is no longer in autod.toml)".to_owned()
        } else {
            format!(
                "(filter {}, max ack pending {})",
                filters.join(" "),
                match c["maxAckPending"].as_i64() {
                    Some(n) if n > 0 => n.to_string(),
                    _ => "server default".to_owned(),
                }
            )
        };
        output::line(&format!(
            "consumer {:<22} {} {detail}",
            s(&c["handler"]),
            s(&c["action"])
        ));
    }
}

fn print_status(r: &Value) {
    let st = &r["stream"];
    output::line(&format!(
        "stream {} at {}: {} messages, {} bytes, sequences {}-{}",
        s(&st["name"]),
        s(&r["server"]["urls"]),
        s(&st["messages"]),
        s(&st["bytes"]),
        s(&st["firstSeq"]),
        s(&st["lastSeq"])
    ));
    output::line(&format!(
        "{:<24} {:>8} {:>8} {:>8} {:>12} {:>6}",
        "HANDLER", "LAG", "PENDING", "UNACKED", "REDELIVERED", "DEAD"
    ));
    for h in r["handlers"].as_array().into_iter().flatten() {
        if h["consumer"] == true {
            output::line(&format!(
                "{:<24} {:>8} {:>8} {:>8} {:>12} {:>6}",
                s(&h["handler"]),
                s(&h["lag"]),
                s(&h["pending"]),
                s(&h["ackPending"]),
                s(&h["redelivered"]),
                s(&h["dead"])
            ));
        } else {
            output::line(&format!(
                "{:<24} no consumer: run `autod queue init`",
                s(&h["handler"])
            ));
        }
    }
    output::line(&format!(
        "dead letters: {}; done markers: {}",
        s(&r["dead"]),
        s(&r["done"])
    ));
}
