//! HANDLERS.md: the table between the markers equals what `autod handlers doc`
//! writes from each handler's `on`, `owner` and `output`; prose around it stays.

use crate::common::{Project, assert_error};

#[test]
fn handlers_md_out_of_date_then_fixed_by_handlers_doc() {
    let p = Project::clean();
    p.write(
        "autod.toml",
        "[handlers.notify]\non = [\"job.*\"]\nowner = \"someone else\"\noutput = \"a line\"\n",
    );
    let f = assert_error(&p.lint(&[]), "handlers-md", "HANDLERS.md");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("autod handlers doc"),
        "{f}"
    );
    let line = f["line"].as_u64().expect("the first line that differs");
    let row = p
        .read("HANDLERS.md")
        .lines()
        .nth(line as usize - 1)
        .unwrap()
        .to_owned();
    assert!(row.contains("`notify`"), "line {line} is {row:?}");
    assert!(
        p.annotation("handlers-md").starts_with(&format!(
            "::error file=HANDLERS.md,line={line},title=autod lint (handlers-md)::"
        )),
        "{}",
        p.annotation("handlers-md")
    );
    assert_eq!(p.autod(&["handlers", "doc", "--check"]).code, 1);
    p.handlers_doc();
    assert_eq!(p.autod(&["handlers", "doc", "--check"]).code, 0);
    let run = p.autod(&["lint", "--strict"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        p.read("HANDLERS.md")
            .contains("| `notify` | `job.*` | someone else | a line |"),
        "{}",
        p.read("HANDLERS.md")
    );
}

#[test]
fn handlers_md_missing() {
    let p = Project::clean();
    p.remove("HANDLERS.md");
    assert_error(&p.lint(&[]), "handlers-md", "HANDLERS.md");
    p.handlers_doc();
    assert_eq!(p.autod(&["lint", "--strict"]).code, 0);
}

#[test]
fn new_handler_needs_a_row() {
    let p = Project::clean();
    p.write("handlers/other.sh", "#!/bin/sh\n");
    p.chmod("handlers/other.sh", 0o755);
    p.config_with(
        "\n[handlers.other]\non = [\"job.done\"]\ncommand = [\"handlers/other.sh\"]\nowner = \"you\"\noutput = \"nothing\"\n",
    );
    assert_error(&p.lint(&[]), "handlers-md", "HANDLERS.md");
    p.handlers_doc();
    assert!(
        p.read("HANDLERS.md")
            .contains("| `other` | `job.done` | you | nothing |"),
        "{}",
        p.read("HANDLERS.md")
    );
    assert_eq!(p.autod(&["lint", "--strict"]).code, 0);
}

#[test]
fn hand_edited_table_is_out_of_date() {
    let p = Project::clean();
    let doc = p.read("HANDLERS.md").replace("| me |", "| me, really |");
    p.write("HANDLERS.md", &doc);
    assert_error(&p.lint(&[]), "handlers-md", "HANDLERS.md");
}

#[test]
fn handlers_doc_keeps_the_prose_around_the_table() {
    let p = Project::clean();
    let doc = p.read("HANDLERS.md");
    let table_start = doc.find("<!-- autod:handlers:begin -->").unwrap();
    let edited = format!(
        "# Our handlers\n\nRead this first.\n\n{}\n\nFooter words.\n",
        doc[table_start..].trim()
    );
    p.write("HANDLERS.md", &edited);
    let run = p.autod(&["lint", "--strict"]);
    assert_eq!(
        run.code, 0,
        "prose is not the table's business:\n{}",
        run.stdout
    );
    p.write(
        "autod.toml",
        "[handlers.notify]\non = [\"job.*\"]\nowner = \"me\"\noutput = \"two lines\"\n",
    );
    p.handlers_doc();
    let after = p.read("HANDLERS.md");
    assert_eq!(
        after,
        edited.replace("| a line |", "| two lines |"),
        "only the table changed"
    );
    assert_eq!(p.autod(&["lint", "--strict"]).code, 0);
}

#[test]
fn handlers_doc_appends_a_table_to_prose_without_one() {
    let p = Project::clean();
    p.write("HANDLERS.md", "# Ours\n\nNo table yet.\n");
    assert_error(&p.lint(&[]), "handlers-md", "HANDLERS.md");
    p.handlers_doc();
    let after = p.read("HANDLERS.md");
    assert!(after.starts_with("# Ours\n\nNo table yet.\n"), "{after}");
    assert!(
        after.contains("| `notify` | `job.*` | me | a line |"),
        "{after}"
    );
    assert_eq!(p.autod(&["lint", "--strict"]).code, 0);
}

#[test]
fn handler_without_owner() {
    let p = Project::clean();
    p.write(
        "autod.toml",
        "[handlers.notify]\non = [\"job.*\"]\noutput = \"a line\"\n",
    );
    p.handlers_doc();
    let f = assert_error(&p.lint(&[]), "handler-doc", "autod.toml");
    assert!(f["message"].as_str().unwrap().contains("owner"), "{f}");
    assert_eq!(f["line"], 1, "{f}");
    assert!(
        p.annotation("handler-doc")
            .starts_with("::error file=autod.toml,line=1,title=autod lint (handler-doc)::handler \"notify\" has no `owner`"),
        "{}",
        p.annotation("handler-doc")
    );
}

#[test]
fn handler_without_output() {
    let p = Project::clean();
    p.write(
        "autod.toml",
        "[handlers.notify]\non = [\"job.*\"]\nowner = \"me\"\n",
    );
    p.handlers_doc();
    let f = assert_error(&p.lint(&[]), "handler-doc", "autod.toml");
    assert!(f["message"].as_str().unwrap().contains("output"), "{f}");
}

#[test]
fn handler_with_an_empty_owner() {
    let p = Project::clean();
    p.write(
        "autod.toml",
        "[handlers.notify]\non = [\"job.*\"]\nowner = \"\"\noutput = \"a line\"\n",
    );
    p.handlers_doc();
    assert_error(&p.lint(&[]), "handler-doc", "autod.toml");
}

/// Was a new table appended on every `handlers doc` run (and lint never clean):
/// prose naming the end marker before the table made the end come "before" the
/// begin.
#[test]
fn prose_that_mentions_the_markers_is_not_the_table() {
    let p = Project::clean();
    let doc = p.read("HANDLERS.md");
    let table_start = doc.find("<!-- autod:handlers:begin -->").unwrap();
    let prose = "# Handlers\n\nThe table between `<!-- autod:handlers:begin -->` and \
                 `<!-- autod:handlers:end -->` is generated.\n\n";
    p.write("HANDLERS.md", &format!("{prose}{}", &doc[table_start..]));
    let run = p.autod(&["lint", "--strict"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    p.write(
        "autod.toml",
        "[handlers.notify]\non = [\"job.*\"]\nowner = \"me\"\noutput = \"two lines\"\n",
    );
    p.handlers_doc();
    let once = p.read("HANDLERS.md");
    p.handlers_doc();
    assert_eq!(p.read("HANDLERS.md"), once, "handlers doc is idempotent");
    assert!(once.starts_with(prose), "{once}");
    assert_eq!(once.matches("| `notify` |").count(), 1, "{once}");
    assert!(once.contains("| two lines |"), "{once}");
    assert_eq!(p.autod(&["lint", "--strict"]).code, 0);
}

#[test]
fn stray_end_marker_before_a_table_is_not_the_table() {
    let p = Project::clean();
    p.write(
        "HANDLERS.md",
        "# Handlers\n\n<!-- autod:handlers:end -->\n\nWords.\n",
    );
    p.handlers_doc();
    let once = p.read("HANDLERS.md");
    p.handlers_doc();
    assert_eq!(p.read("HANDLERS.md"), once, "handlers doc is idempotent");
    assert!(once.contains("Words."), "{once}");
    assert_eq!(p.autod(&["lint", "--strict"]).code, 0, "{once}");
}

#[test]
fn handlers_md_saved_with_crlf_still_matches() {
    let p = Project::clean();
    let crlf = p.read("HANDLERS.md").replace('\n', "\r\n");
    p.write("HANDLERS.md", &crlf);
    let run = p.autod(&["lint", "--strict"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(p.autod(&["handlers", "doc", "--check"]).code, 0);
    // A change is still caught, and the rewrite keeps the file's line endings.
    p.write(
        "autod.toml",
        "[handlers.notify]\non = [\"job.*\"]\nowner = \"someone else\"\noutput = \"a line\"\n",
    );
    assert_error(&p.lint(&[]), "handlers-md", "HANDLERS.md");
    p.handlers_doc();
    let text = p.read("HANDLERS.md");
    assert!(
        text.contains("| `notify` | `job.*` | someone else | a line |\r\n"),
        "{text:?}"
    );
    assert!(!text.replace("\r\n", "").contains('\n'), "{text:?}");
    assert_eq!(p.autod(&["lint", "--strict"]).code, 0);
}
