//! Writing data to stdout. A closed stdout (`autod log | head`) ends the output
//! quietly, as ripgrep does, instead of panicking.

use std::io::{self, Write};

/// Prints one line to stdout; `false` once the reader has gone away.
pub fn line(text: &str) -> bool {
    let mut out = io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => false,
        Err(_) => false,
    }
}

/// Prints a value as one line of JSON.
pub fn json(value: &impl serde::Serialize) -> bool {
    line(&serde_json::to_string(value).expect("output values serialize"))
}
