//! `ctdiag probe`.

use crate::app::Outcome;
use crate::error::{Error, Result};
use crate::render::Context;

/// Validates the arguments, runs, renders.
pub fn execute(_args: crate::cli::ProbeArgs, _ctx: &Context) -> Result<Outcome> {
    Err(Error::Runtime("not implemented yet".into()))
}
