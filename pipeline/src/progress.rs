//! Progress bars for long commands (replay, verify, retention, case export), drawn on
//! stderr only when it is a terminal: piped or logged output stays plain.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// A bar of `total` steps drawn with `template` (indicatif's), hidden off a terminal.
pub fn bar(total: u64, template: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

/// The (done, total) callback that moves `bar`, for a verification's progress.
pub fn follow(bar: &ProgressBar) -> impl Fn(u64, u64) + '_ {
    |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    }
}

/// A bar that counts windows for `what` (`verify`, `export` …).
pub fn windows(what: &str, total: u64) -> ProgressBar {
    bar(
        total,
        &format!("{what} [{{bar:30}}] {{pos}}/{{len}} windows ({{eta}})"),
    )
}
