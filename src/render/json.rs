//! JSON output: the report structs, serialized as they are.

use serde::Serialize;

use crate::error::{Error, Result};

/// One pretty-printed JSON document.
pub fn document<T: Serialize>(report: &T) -> Result<String> {
    serde_json::to_string_pretty(report)
        .map_err(|e| Error::Runtime(format!("cannot serialize report: {e}")))
}

/// One compact JSON line (for JSON Lines streams such as `stats --watch`).
pub fn line<T: Serialize>(report: &T) -> Result<String> {
    serde_json::to_string(report)
        .map_err(|e| Error::Runtime(format!("cannot serialize report: {e}")))
}
