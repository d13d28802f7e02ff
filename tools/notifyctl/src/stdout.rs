//! Results on stdout (logs go to stderr).

use std::io::Write;

use anyhow::Context;

/// Writes `text` to stdout and flushes it.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}

/// Writes `text` and a newline.
pub fn line(text: &str) -> anyhow::Result<()> {
    print(&format!("{text}\n"))
}
