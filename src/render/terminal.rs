//! The last step before text reaches a terminal: every control character
//! is escaped, whoever wrote it.
//!
//! Pods write much of what ctdiag shows (hostnames, resolv.conf words, file
//! names from images; rule comments come from the API). A hostname such as
//! `web\x1b]0;owned\x07` or `\r\x1b[2KDelete these 0 entries? [y/N]`
//! printed as it is would retitle the admin's terminal, move the cursor,
//! or spoof the `stale --flush` prompt. So [`for_terminal`] runs over the
//! whole text of every table, note and prompt ([`super::emit`],
//! [`super::note`], the flush candidates): C0 controls but newline and tab,
//! DEL, C1 controls (U+0080 to U+009F, CSI U+009B among them), the bidi
//! overrides that reorder what is shown, and Unicode tag characters
//! (invisible) are written escaped (`\x1b`, `\u{9b}`). A caller cannot
//! forget it, because it is not the caller's job.
//!
//! ctdiag's own colors must survive that step. They are written as
//! [`paint`] marks: zero-width tag characters carrying a random number
//! drawn once per process, which only [`for_terminal`] turns into an SGR
//! sequence. A pod cannot forge a mark without that number, and its tag
//! characters are escaped like any other control.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::sync::OnceLock;

/// Starts a color mark (LANGUAGE TAG, a zero-width, deprecated character).
const OPEN: char = '\u{E0001}';
/// Ends a color mark (CANCEL TAG, zero width).
const CLOSE: char = '\u{E007F}';

/// The process's secret: 16 hex digits, random per process (std's hasher
/// keys come from the OS's random source).
fn secret() -> &'static str {
    static SECRET: OnceLock<String> = OnceLock::new();
    SECRET.get_or_init(|| {
        let state = std::collections::hash_map::RandomState::new();
        format!("{:016x}", state.hash_one(std::process::id()))
    })
}

/// The tag character that mirrors printable ASCII `byte`.
fn tag(byte: u8) -> char {
    char::from_u32(0xE0000 + u32::from(byte)).unwrap_or(CLOSE)
}

/// The ASCII byte a tag character mirrors.
fn untag(c: char) -> Option<u8> {
    let value = u32::from(c).checked_sub(0xE0000)?;
    u8::try_from(value).ok().filter(|b| (0x20..0x7f).contains(b))
}

/// A zero-width mark for the SGR sequence `ESC [ params m`.
fn mark(params: &str) -> String {
    let mut out = String::new();
    out.push(OPEN);
    out.extend(secret().bytes().map(tag));
    out.extend(params.bytes().map(tag));
    out.push(CLOSE);
    out
}

/// `text` in SGR style `params` (`"33"` yellow, `"1;31"` bold red), as
/// marks that [`for_terminal`] turns into escape sequences. They have no
/// width, so table columns line up as without color.
pub fn paint(params: &str, text: &str) -> String {
    format!("{}{text}{}", mark(params), mark("0"))
}

/// Whether `c` must not reach a terminal as it is.
pub(crate) fn is_hostile(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        || ('\u{E0000}'..='\u{E007F}').contains(&c)
}

fn push_escaped(out: &mut String, c: char) {
    let code = u32::from(c);
    if code < 0x80 {
        let _ = write!(out, "\\x{code:02x}");
    } else {
        let _ = write!(out, "\\u{{{code:x}}}");
    }
}

/// `text` with every hostile character escaped, newlines and tabs too: one
/// value that must stay on its line (a finding's evidence, a label).
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hostile) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_hostile(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The SGR parameters of the mark that starts `rest` (just after
/// [`OPEN`]), and the bytes it takes up to and with [`CLOSE`]; `None`
/// when it is not one of this process's marks.
fn read_mark(rest: &str) -> Option<(String, usize)> {
    let mut chars = rest.char_indices();
    for expected in secret().bytes() {
        let (_, c) = chars.next()?;
        if untag(c)? != expected {
            return None;
        }
    }
    let mut params = String::new();
    for (at, c) in chars {
        if c == CLOSE {
            return Some((params, at + c.len_utf8()));
        }
        let byte = untag(c)?;
        if !(byte.is_ascii_digit() || byte == b';') || params.len() >= 16 {
            return None;
        }
        params.push(char::from(byte));
    }
    None
}

/// The whole text as it may reach a terminal: newlines and tabs kept,
/// this process's [`paint`] marks turned into SGR sequences, every other
/// hostile character escaped.
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    // Fast path (JSON, plain text): printable ASCII, newlines and tabs.
    if text.bytes().all(|b| matches!(b, b'\n' | b'\t' | 0x20..=0x7e)) {
        return Cow::Borrowed(text);
    }
    if !text.chars().any(|c| is_hostile(c) && c != '\n' && c != '\t') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let after = &rest[c.len_utf8()..];
        if c == OPEN {
            if let Some((params, used)) = read_mark(after) {
                let _ = write!(out, "\x1b[{params}m");
                rest = &after[used..];
                continue;
            }
        }
        if is_hostile(c) && c != '\n' && c != '\t' {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
        rest = after;
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Terminal control sequences as terminals read them (ECMA-48; xterm's
    /// OSC title; a C1 CSI; cursor movement and erase), each escaped.
    #[test]
    fn every_control_sequence_is_escaped() {
        for (hostile, shown) in [
            ("web\x1b]0;owned\x07", "web\\x1b]0;owned\\x07"),
            ("a\r\x1b[2Kb", "a\\x0d\\x1b[2Kb"),
            ("x\u{9b}31m", "x\\u{9b}31m"),
            ("bs\x08\x08", "bs\\x08\\x08"),
            ("del\x7f", "del\\x7f"),
            ("rtl\u{202e}txt", "rtl\\u{202e}txt"),
            ("tag\u{e0041}", "tag\\u{e0041}"),
        ] {
            assert_eq!(for_terminal(hostile), shown);
            assert_eq!(escape(hostile), shown);
        }
        assert_eq!(for_terminal("two\nlines\tand tab"), "two\nlines\tand tab");
        assert_eq!(escape("two\nlines"), "two\\x0alines");
        assert!(matches!(for_terminal("plain ünïcode │ table"), Cow::Borrowed(_)));
    }

    #[test]
    fn own_colors_survive_and_forged_marks_do_not() {
        let painted = paint("1;31", "CRITICAL");
        assert_eq!(for_terminal(&painted), "\x1b[1;31mCRITICAL\x1b[0m");
        // A mark with another secret (what a pod would have to guess).
        let mut forged = String::from(OPEN);
        forged.extend("0123456789abcdef".bytes().map(tag));
        forged.extend("31".bytes().map(tag));
        forged.push(CLOSE);
        if !secret().starts_with("0123456789abcdef") {
            let shown = for_terminal(&forged);
            assert!(!shown.contains('\x1b'), "{shown:?}");
            assert!(shown.starts_with("\\u{e0001}"), "{shown:?}");
        }
        // Marks have no width: a painted cell lines up with a plain one.
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::ASCII_FULL).force_no_tty();
        table.add_row(vec![painted.as_str()]).add_row(vec!["CRITICAL"]);
        let text = for_terminal(&table.to_string()).into_owned();
        let widths: Vec<usize> = text
            .lines()
            .map(|l| l.replace("\x1b[1;31m", "").replace("\x1b[0m", "").len())
            .collect();
        assert!(widths.iter().all(|w| *w == widths[0]), "{text}");
    }
}
