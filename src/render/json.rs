//! JSON output: the report structs, serialized as they are.
//!
//! serde escapes C0 controls (`\u001b`) but writes DEL, C1 controls (CSI
//! U+009B), bidi overrides and tag characters as they are; [`escaped`]
//! writes those as `\uXXXX` too, so JSON on a terminal carries no control
//! character, and every value parses back unchanged.

use std::fmt::Write as _;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::render::terminal::is_hostile;

/// `json` with every hostile character left by serde written as a JSON
/// `\uXXXX` escape (UTF-16, as JSON requires). Such characters can only
/// be inside strings, so the document means the same.
fn escaped(json: String) -> String {
    // Why C0 is left out: serde already escapes it inside strings, and a
    // raw newline is the pretty printer's own layout.
    let left_by_serde = |c: char| is_hostile(c) && u32::from(c) >= 0x20;
    // Fast path (most reports): ASCII JSON can only hold DEL of those.
    if json.is_ascii() && !json.contains('\u{7f}') {
        return json;
    }
    if !json.chars().any(left_by_serde) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if left_by_serde(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One pretty-printed JSON document.
pub fn document<T: Serialize + ?Sized>(report: &T) -> Result<String> {
    serde_json::to_string_pretty(report)
        .map(escaped)
        .map_err(|e| Error::Runtime(format!("cannot serialize report: {e}")))
}

/// One compact JSON line (for JSON Lines streams such as `stats --watch`).
pub fn line<T: Serialize + ?Sized>(report: &T) -> Result<String> {
    serde_json::to_string(report)
        .map(escaped)
        .map_err(|e| Error::Runtime(format!("cannot serialize report: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_back_unchanged_and_no_control_is_raw() {
        let hostile = "pod\x1b]0;t\x07\u{9b}2J\x7f\u{202e}\u{e0041}\r\n";
        let text = document(&serde_json::json!({ "hostname": hostile })).unwrap();
        assert!(!text.chars().any(|c| is_hostile(c) && c != '\n'), "{text:?}");
        assert!(text.contains("\\u009b") && text.contains("\\udb40\\udc41"), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["hostname"], hostile);
        let line = line(&serde_json::json!([hostile])).unwrap();
        assert_eq!(serde_json::from_str::<serde_json::Value>(&line).unwrap()[0], hostile);
    }
}
