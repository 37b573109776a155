//! Writing data to stdout. A closed stdout (`autod log | head`) ends the output
//! quietly, as ripgrep does, instead of panicking.

use std::io::{self, Write};

/// Prints one line to stdout; `false` once the reader has gone away.
pub fn line(text: &str) -> bool {
    // Handed over whole with its newline: stdout's LineWriter writes a text
    // of several lines, then a separate newline, in two write(2)s.
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend_from_slice(text.as_bytes());
    bytes.push(b'\n');
    let mut out = io::stdout().lock();
    match out.write_all(&bytes).and_then(|()| out.flush()) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => false,
        Err(_) => false,
    }
}

/// Prints a value as one line of JSON.
pub fn json(value: &impl serde::Serialize) -> bool {
    line(&serde_json::to_string(value).expect("output values serialize"))
}
