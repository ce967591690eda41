//! The `ctdiag` binary: install color-eyre, run the library, map the outcome
//! to the exit status (0 clean, 1 problem found, 2 could not tell).

use std::process::ExitCode;

fn main() -> ExitCode {
    // A failure to install the hook only loses pretty error output.
    let _ = color_eyre::install();
    match ctdiag::run() {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            // `{:#}` prints the cause chain on one line, without a backtrace:
            // users get a message, not a stack.
            eprintln!("ctdiag: error: {:#}", color_eyre::Report::new(err));
            ExitCode::from(ctdiag::EXIT_UNKNOWN)
        }
    }
}
