//! The `ctdiag` binary: run the library, map the outcome to the exit status
//! (0 clean, 1 problem found, 2 could not tell), report errors with
//! color-eyre.

use std::process::ExitCode;

fn main() -> ExitCode {
    match ctdiag::run() {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            // Why here and not first thing: installing color-eyre costs about
            // 0.3 ms, a quarter of a whole `ctdiag stats` run, and only the
            // error path uses it.
            let _ = color_eyre::install();
            // `{:#}` prints the cause chain on one line, without a backtrace:
            // users get a message, not a stack. Escaped like all terminal
            // text: an error may quote what a pod wrote.
            let message = format!("{:#}", color_eyre::Report::new(err));
            eprintln!("ctdiag: error: {}", ctdiag::render::terminal::for_terminal(&message));
            ExitCode::from(ctdiag::EXIT_UNKNOWN)
        }
    }
}
