//! autod.toml: unknown keys, handler commands, routes, schedules, watches.

use crate::common::{Project, SCHEMA, assert_error, assert_warning};

#[test]
fn config_unknown_key_names_key_and_line() {
    let p = Project::clean();
    p.config_with("tiemout = \"3s\"\n");
    let f = assert_error(&p.lint(&[]), "config", "autod.toml");
    assert_eq!(f["line"], 5, "{f}");
    assert!(f["message"].as_str().unwrap().contains("tiemout"), "{f}");
    assert!(
        p.annotation("config")
            .starts_with("::error file=autod.toml,line=5,title=autod lint (config)::"),
        "{}",
        p.annotation("config")
    );
}

#[test]
fn config_unknown_table_names_its_line() {
    let p = Project::clean();
    p.config_with("\n[bogus]\nx = 1\n");
    let f = assert_error(&p.lint(&[]), "config", "autod.toml");
    assert_eq!(f["line"], 6, "{f}");
    assert!(f["message"].as_str().unwrap().contains("bogus"), "{f}");
}

#[test]
fn config_unknown_key_in_a_watch_names_its_line() {
    let p = Project::clean();
    p.config_with("\n[[watches]]\nname = \"drop\"\npath = \".\"\nevnt_type = \"job.done\"\n");
    let run = p.lint(&[]);
    assert_error(&run, "config", "autod.toml");
    let at = |needle: &str| {
        run.findings()
            .into_iter()
            .find(|f| f["message"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no finding about {needle}: {}", run.stdout))["line"]
            .clone()
    };
    assert_eq!(at("unknown field `evnt_type`"), 9, "{}", run.stdout);
    // The misspelled key is also a missing one, said at its table.
    assert_eq!(at("missing field `event_type`"), 6, "{}", run.stdout);
}

/// Was one finding per lint run: the loader stopped at the first unknown key.
#[test]
fn every_unknown_key_is_a_finding() {
    let p = Project::clean();
    p.config_with("tiemout = \"3s\"\n[routing]\nunrouted = \"ignore\"\ntypo = 1\n");
    let run = p.lint(&[]);
    assert_error(&run, "config", "autod.toml");
    let found = run.located("config");
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].0, 5, "{found:?}");
    assert!(
        found[0]
            .1
            .starts_with("unknown field `tiemout`, expected one of"),
        "{found:?}"
    );
    assert_eq!(found[1].0, 8, "{found:?}");
    assert!(
        found[1]
            .1
            .starts_with("unknown field `typo`, expected `unrouted`"),
        "{found:?}"
    );
}

#[test]
fn config_that_is_not_toml() {
    let p = Project::clean();
    p.config_with("on = [\n");
    let f = assert_error(&p.lint(&[]), "config", "autod.toml");
    assert!(f["line"].as_u64().is_some(), "{f}");
}

/// Was no finding: the config loader reads a missing autod.toml as an empty
/// config, and a dangling symlink looked missing, so lint went on with no handlers.
#[test]
fn unreadable_config_is_a_finding() {
    let p = Project::clean();
    p.dangling("autod.toml");
    let run = p.lint(&[]);
    let f = assert_error(&run, "unreadable", "autod.toml");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("no-such-file, which does not exist; fix the link"),
        "{f}"
    );
}

#[test]
fn handler_command_missing() {
    let p = Project::clean();
    p.config_with("command = [\"handlers/nope.sh\"]\n");
    let f = assert_error(&p.lint(&[]), "handler-command", "autod.toml");
    // Named as written, relative to the project: the same on every machine.
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("command handlers/nope.sh does not exist"),
        "{f}"
    );
    assert_eq!(f["line"], 1, "{f}");
    assert!(
        p.annotation("handler-command").starts_with(
            "::error file=autod.toml,line=1,title=autod lint (handler-command)::handler \"notify\""
        ),
        "{}",
        p.annotation("handler-command")
    );
}

#[test]
fn handler_command_not_on_path() {
    let p = Project::clean();
    p.config_with("command = [\"no-such-program-anywhere\"]\n");
    let f = assert_error(&p.lint(&[]), "handler-command", "autod.toml");
    assert!(f["message"].as_str().unwrap().contains("PATH"), "{f}");
}

#[test]
fn handler_not_executable() {
    let p = Project::clean();
    p.chmod("handlers/notify/main.sh", 0o644);
    let f = assert_error(&p.lint(&[]), "handler-command", "autod.toml");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("command handlers/notify/main.sh is not executable (chmod +x it)"),
        "{f}"
    );
}

#[test]
fn pattern_matching_no_event_type_is_a_warning_and_strict_fails() {
    let p = Project::clean();
    p.write(
        "autod.toml",
        "[handlers.notify]\non = [\"job.*\", \"nothing.here\"]\nowner = \"me\"\noutput = \"a line\"\n",
    );
    p.handlers_doc();
    let f = assert_warning(&p, "route-unknown", "autod.toml");
    assert_eq!(f["line"], 1, "{f}");
    assert!(
        f["message"].as_str().unwrap().contains("nothing.here"),
        "{f}"
    );
    assert!(
        p.annotation("route-unknown")
            .starts_with("::warning file=autod.toml,line=1,title=autod lint (route-unknown)::"),
        "{}",
        p.annotation("route-unknown")
    );
}

#[test]
fn schema_without_handler_is_a_warning() {
    let p = Project::clean();
    p.write("schemas/orphan.ev.json", SCHEMA);
    let f = assert_warning(&p, "unhandled", "schemas/orphan.ev.json");
    assert!(f["message"].as_str().unwrap().contains("orphan.ev"), "{f}");
}

const NIGHTLY: &str = "\n[[schedules]]\nname = \"nightly\"\n";

#[test]
fn bad_cron_expression() {
    let p = Project::clean();
    p.config_with(&format!(
        "{NIGHTLY}cron = \"0 25 * * *\"\nevent_type = \"job.done\"\n"
    ));
    let f = assert_error(&p.lint(&[]), "config", "autod.toml");
    assert!(f["message"].as_str().unwrap().contains("nightly"), "{f}");
    assert_eq!(f["line"], 7, "{f}");
}

/// The message names the field and its range in crontab's terms.
#[test]
fn bad_cron_names_the_field_and_its_range() {
    let p = Project::clean();
    p.config_with(&format!(
        "{NIGHTLY}cron = \"0 25 * * *\"\nevent_type = \"job.done\"\n"
    ));
    let f = assert_error(&p.lint(&[]), "config", "autod.toml");
    let m = f["message"].as_str().unwrap();
    assert!(m.contains("hour \"25\": 25 is out of range (0-23)"), "{m}");
}

/// A day that no month has would leave the schedule silent forever.
#[test]
fn cron_that_never_fires() {
    let p = Project::clean();
    p.config_with(&format!(
        "{NIGHTLY}cron = \"0 0 30 2 *\"\nevent_type = \"job.done\"\n"
    ));
    let f = assert_error(&p.lint(&[]), "config", "autod.toml");
    assert!(
        f["message"].as_str().unwrap().contains("never fires"),
        "{f}"
    );
}

/// The cron parser's message spans three lines (the expression, a caret, the
/// reason); a text finding is one `path:line: error: message [rule]` line.
#[test]
fn bad_cron_is_one_text_line() {
    let p = Project::clean();
    p.config_with(&format!(
        "{NIGHTLY}cron = \"0 25 * * *\"\nevent_type = \"job.done\"\n"
    ));
    let run = p.autod(&["lint"]);
    assert_eq!(run.code, 1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    assert!(
        lines[0].starts_with("autod.toml:7: error: schedule \"nightly\""),
        "{}",
        lines[0]
    );
    assert!(lines[0].ends_with(" [config]"), "{}", lines[0]);
    assert!(lines[0].contains("25"), "{}", lines[0]);
}

#[test]
fn cron_with_the_wrong_number_of_fields() {
    let p = Project::clean();
    p.config_with(&format!(
        "{NIGHTLY}cron = \"daily\"\nevent_type = \"job.done\"\n"
    ));
    let f = assert_error(&p.lint(&[]), "config", "autod.toml");
    assert_eq!(f["line"], 7, "{f}");
}

#[test]
fn unknown_schedule_timezone() {
    let p = Project::clean();
    p.config_with(&format!(
        "{NIGHTLY}cron = \"0 2 * * *\"\ntimezone = \"Mars/Olympus\"\nevent_type = \"job.done\"\n"
    ));
    let f = assert_error(&p.lint(&[]), "config", "autod.toml");
    assert!(
        f["message"].as_str().unwrap().contains("Mars/Olympus"),
        "{f}"
    );
}

#[test]
fn good_schedule_is_clean() {
    let p = Project::clean();
    p.config_with(&format!(
        "{NIGHTLY}cron = \"0 2 * * *\"\ntimezone = \"Europe/Berlin\"\nevent_type = \"job.done\"\n"
    ));
    let run = p.autod(&["lint", "--strict"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

#[test]
fn schedule_for_an_event_type_without_schema_is_a_warning() {
    let p = Project::clean();
    p.config_with(&format!(
        "{NIGHTLY}cron = \"0 2 * * *\"\nevent_type = \"job.gone\"\n"
    ));
    let f = assert_warning(&p, "schedule-type", "autod.toml");
    assert_eq!(f["line"], 7, "{f}");
}

#[test]
fn watch_folder_missing_is_a_warning() {
    let p = Project::clean();
    // A type whose schema takes the watch payload (checked by watches.rs).
    p.write("schemas/job.seen.json", "{}");
    p.config_with(
        "\n[[watches]]\nname = \"drop\"\npath = \"no-such-folder\"\nevent_type = \"job.seen\"\n",
    );
    let f = assert_warning(&p, "watch-path", "autod.toml");
    assert_eq!(f["line"], 7, "{f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("folder no-such-folder does not exist"),
        "{f}"
    );
    assert!(
        p.annotation("watch-path").starts_with(
            "::warning file=autod.toml,line=7,title=autod lint (watch-path)::watch \"drop\""
        ),
        "{}",
        p.annotation("watch-path")
    );
}

#[test]
fn watch_folder_that_exists_is_clean() {
    let p = Project::clean();
    // A type whose schema takes the watch payload (checked by watches.rs).
    p.write("schemas/job.seen.json", "{}");
    std::fs::create_dir(p.path("inbox-drop")).unwrap();
    p.config_with(
        "\n[[watches]]\nname = \"drop\"\npath = \"inbox-drop\"\nevent_type = \"job.seen\"\n",
    );
    let run = p.autod(&["lint", "--strict"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

/// Was one finding per fix: an unknown key stopped lint before the handler
/// and watch checks, so each fix showed the next mistake.
#[test]
fn unknown_keys_do_not_hide_the_other_checks() {
    let p = Project::clean();
    // A type whose schema takes the watch payload (checked by watches.rs).
    p.write("schemas/job.seen.json", "{}");
    p.chmod("handlers/notify/main.sh", 0o644);
    p.config_with(concat!(
        "tiemout = \"3s\"\n",
        "\n[[watches]]\nname = \"drop\"\npath = \"no-such-folder\"\nevent_type = \"job.seen\"\n",
        "\n[routing]\ntypo = 1\n",
    ));
    let run = p.lint(&[]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let config = run.messages("config");
    assert_eq!(config.len(), 2, "{config:?}");
    assert!(config[0].contains("tiemout") || config[1].contains("tiemout"));
    assert!(config.iter().any(|m| m.contains("typo")), "{config:?}");
    let command = run.messages("handler-command");
    assert_eq!(command.len(), 1, "{}", run.stdout);
    assert!(
        command[0].contains("not executable (chmod +x it)"),
        "{command:?}"
    );
    let watch = run.messages("watch-path");
    assert_eq!(watch.len(), 1, "{}", run.stdout);
    assert!(watch[0].contains("no-such-folder"), "{watch:?}");

    // The same in the text format, in line order as a compiler lists them.
    let text = p.autod(&["lint"]);
    assert_eq!(text.code, 1);
    let rules: Vec<&str> = text
        .stdout
        .lines()
        .filter_map(|l| l.rsplit_once(" [").map(|(_, r)| r.trim_end_matches(']')))
        .collect();
    assert_eq!(
        rules,
        ["handler-command", "config", "watch-path", "config"],
        "{}",
        text.stdout
    );
}

/// A config problem that is also about a handler's command (two main files)
/// is said once, not again as a `handler-command` finding.
#[test]
fn a_config_problem_is_not_repeated_as_a_command_finding() {
    let p = Project::clean();
    p.write("handlers/notify/main.py", "#!/usr/bin/env python3\n");
    p.chmod("handlers/notify/main.py", 0o755);
    let run = p.lint(&[]);
    let config = run.messages("config");
    assert_eq!(config.len(), 1, "{}", run.stdout);
    assert!(config[0].contains("several executable main files"));
    assert!(run.messages("handler-command").is_empty(), "{}", run.stdout);
}
