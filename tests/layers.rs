//! The layering of `src/` (issue 16): every path from one top-level module
//! into another (`use crate::a::b`, `use crate::{a::b, c}`, `crate::a::f()`
//! inline in code, `super::super::x` climbing out to the crate root, and
//! `ctdiag::a` in `src/main.rs`) must go down the order below, never up or
//! sideways unless the rule names it. A new edge against the rule fails
//! this test with the file and line; the known violations of today sit in
//! `KNOWN`, each with the issue item that removes it, and an entry that no
//! longer occurs fails the test too (the list only shrinks).
//!
//! Only production code counts: `#[cfg(test)]` items and the files they
//! declare (`#[cfg(test)] mod lab_tests;`, `testutil`) may build fixtures
//! from any module (a unit test of `conntrack` may bring up a lab).
//!
//! The source is read by a small lexer (comments, strings and character
//! literals skipped), not by the compiler; on failure the test prints
//! every edge it found, `!!` marking the ones against the rule.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The allowed direction, top to bottom. A module may use the modules of
/// every layer below its own and, in its own layer, the ones `SIDEWAYS`
/// names; nothing above. (The issue writes the flow `cli -> commands`: in
/// imports `commands` reads `cli`'s structs, and `app` ties the two.)
///
/// - `main` (the binary) and `lib` (module declarations, re-exports) stand
///   on `app`, which dispatches; `generate` (completions, man pages) reads
///   the clap definitions beside it.
/// - `commands` (args -> validated config -> report) reads `cli` (clap
///   structs only); nothing below reads either.
/// - `render` draws reports: it may use the modules whose reports it
///   renders (every layer below it), never `cli`, `commands` or `app`.
/// - `doctor`, `stale`, `lab`, `watch`: the commands that combine the core.
///   `doctor` runs the stale scan and `lab run` checks each scenario with
///   `doctor`, hence `doctor -> stale` and `lab -> doctor`; `watch` names
///   clients as `stale` does, hence `watch -> stale`.
/// - `conntrack`, `service`, `dns`: the core, each about one thing. `dns`
///   reads conntrack counters around its probes and `service` reads pod
///   files through `dns::pods` (IPVS), hence `dns -> conntrack` and
///   `service -> dns`; `conntrack` uses neither.
/// - `netfilter`: the nfnetlink socket, attribute walker and nf_tables
///   reader that `conntrack` and `service` both build on.
/// - Leaves anyone may use: `findings`, `netns`, `process`, `kernel`,
///   `interrupt`.
/// - At the bottom: `root` (the crate root's own items: `EXIT_UNKNOWN`) and
///   `error`, because every module returns it. `error` is the
///   crate's top error type and wraps the error types of the layers above
///   (`ConntrackError`, ...): the one upward rule is that `error` may name
///   a module's error type (a name ending in `Error`) and nothing else of it.
const LAYERS: &[&[&str]] = &[
    &["main", "lib"],
    &["app", "generate"],
    &["commands"],
    &["cli"],
    &["render"],
    &["doctor", "stale", "lab", "watch"],
    &["conntrack", "service", "dns"],
    &["netfilter"],
    &["findings", "netns", "process", "kernel", "interrupt"],
    &["root", "error"],
];

/// Edges allowed inside one layer (from, to).
const SIDEWAYS: &[(&str, &str)] = &[
    ("main", "lib"),
    ("doctor", "stale"),
    ("lab", "doctor"),
    ("watch", "stale"),
    ("dns", "conntrack"),
    ("service", "dns"),
];

/// Names the crate root offers (`src/lib.rs`) and the module each comes
/// from (`root`: defined in lib.rs itself); a `crate::X` that is neither a
/// module nor listed here fails the test, so a new one is placed on purpose.
const ROOT_ITEMS: &[(&str, &str)] = &[
    ("Error", "error"),
    ("Result", "error"),
    ("run", "app"),
    ("Outcome", "app"),
    ("EXIT_UNKNOWN", "root"),
];

/// Today's violations (from, to, the issue 16 item that removes it). The
/// test fails on any edge against the rule not listed here, and on an
/// entry here that no longer occurs: remove it when its item lands. The
/// list only shrinks.
const KNOWN: &[(&str, &str, &str)] = &[];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Open(char),
    Close(char),
    Comma,
    Semi,
    Pound,
    Bang,
    Other,
}

/// A token with its 1-based line.
#[derive(Debug, Clone)]
struct T {
    tok: Tok,
    line: usize,
}

fn lex(src: &str) -> Vec<T> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let count_lines = |s: &[char]| s.iter().filter(|&&ch| ch == '\n').count();
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            // Block comments nest in Rust.
            let start = i;
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            line += count_lines(&c[start..i.min(c.len())]);
        } else if ch == '"' {
            let start = i;
            i = skip_string(&c, i + 1);
            line += count_lines(&c[start..i]);
        } else if ch == '\'' {
            // A character literal ('a', '\n', '\u{1F600}') or a lifetime
            // ('a): a lifetime has no closing quote after its first char.
            if next == Some('\\') {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            // Raw strings (r"..", r#".."#, br".."), byte strings and bytes.
            let raw =
                (word == "r" || word == "br") && matches!(c.get(i), Some('"') | Some('#')) && {
                    let mut j = i;
                    while c.get(j) == Some(&'#') {
                        j += 1;
                    }
                    c.get(j) == Some(&'"')
                };
            if raw {
                let mut hashes = 0;
                while c[i] == '#' {
                    hashes += 1;
                    i += 1;
                }
                i += 1;
                let body = i;
                loop {
                    if i >= c.len() {
                        break;
                    }
                    if c[i] == '"' && (0..hashes).all(|k| c.get(i + 1 + k) == Some(&'#')) {
                        i += 1 + hashes;
                        break;
                    }
                    i += 1;
                }
                line += count_lines(&c[body..i.min(c.len())]);
            } else if word == "b" && c.get(i) == Some(&'"') {
                let start = i;
                i = skip_string(&c, i + 1);
                line += count_lines(&c[start..i]);
            } else if word == "b" && c.get(i) == Some(&'\'') {
                i += 1;
                while i < c.len() && c[i] != '\'' {
                    if c[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            } else {
                out.push(T { tok: Tok::Ident(word), line });
            }
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
        } else {
            let tok = match ch {
                ':' if next == Some(':') => {
                    i += 1;
                    Tok::PathSep
                }
                '{' | '(' | '[' => Tok::Open(ch),
                '}' | ')' | ']' => Tok::Close(ch),
                ',' => Tok::Comma,
                ';' => Tok::Semi,
                '#' => Tok::Pound,
                '!' => Tok::Bang,
                _ => Tok::Other,
            };
            i += 1;
            out.push(T { tok, line });
        }
    }
    out
}

/// The index after the closing quote of a string whose body starts at `i`.
fn skip_string(c: &[char], mut i: usize) -> usize {
    while i < c.len() && c[i] != '"' {
        if c[i] == '\\' {
            i += 1;
        }
        i += 1;
    }
    (i + 1).min(c.len())
}

fn ident(t: Option<&T>) -> Option<&str> {
    match t.map(|t| &t.tok) {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

/// One path that leaves its file's top-level module.
#[derive(Debug, Clone)]
struct Edge {
    from: String,
    to: String,
    /// The names the path ends in (`crate::conntrack::ConntrackError` ->
    /// `ConntrackError`).
    item: Vec<String>,
    file: String,
    line: usize,
}

/// A source file and where it sits.
struct SrcFile {
    /// Relative to the crate root, e.g. `src/conntrack/stale/mod.rs`.
    rel: String,
    /// Its module path: `src/conntrack/stale/mod.rs` -> [conntrack, stale];
    /// `src/lib.rs`, `src/main.rs` -> [].
    module: Vec<String>,
    /// Its top-level module (`conntrack`; `lib`, `main` for the roots).
    top: String,
}

fn source_files(root: &Path) -> Vec<SrcFile> {
    let mut files = Vec::new();
    let mut stack = vec![root.join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).unwrap();
                let mut module: Vec<String> = rel
                    .iter()
                    .skip(1)
                    .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
                    .collect();
                if module.last().is_some_and(|s| s == "mod") {
                    module.pop();
                }
                if module.len() == 1 && (module[0] == "lib" || module[0] == "main") {
                    let top = module.pop().unwrap();
                    files.push(SrcFile { rel: rel.to_string_lossy().into(), module, top });
                    continue;
                }
                let top = module[0].clone();
                files.push(SrcFile { rel: rel.to_string_lossy().into(), module, top });
            }
        }
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    files
}

/// Skip the item starting at `i` (after its attributes): up to its `;` or
/// its closing brace at depth 0. Returns the index after it.
fn skip_item(toks: &[T], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < toks.len() {
        match toks[i].tok {
            Tok::Open(_) => depth += 1,
            Tok::Close(_) => {
                depth = depth.saturating_sub(1);
                if depth == 0 && toks[i].tok == Tok::Close('}') {
                    return i + 1;
                }
            }
            Tok::Semi if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// `#[cfg(...)]` starting at `i` whose condition holds under `test` only
/// (names `test`, not under `not`). Returns the index after the attribute.
fn cfg_test_attr(toks: &[T], i: usize) -> Option<(usize, bool)> {
    if toks.get(i)?.tok != Tok::Pound || toks.get(i + 1)?.tok != Tok::Open('[') {
        return None;
    }
    let end = skip_balanced(toks, i + 1);
    let words: Vec<&str> = toks[i + 2..end].iter().filter_map(|t| ident(Some(t))).collect();
    let test_only =
        words.first() == Some(&"cfg") && words.contains(&"test") && !words.contains(&"not");
    Some((end, test_only))
}

/// Index after the group opened at `i`.
fn skip_balanced(toks: &[T], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < toks.len() {
        match toks[i].tok {
            Tok::Open(_) => depth += 1,
            Tok::Close(_) => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// The index of the first segment of every path in the `{..}` group
/// opened at `i`.
fn group_heads(toks: &[T], i: usize) -> Vec<usize> {
    let end = skip_balanced(toks, i);
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut at_item_start = true;
    for (k, t) in toks.iter().enumerate().take(end).skip(i) {
        match &t.tok {
            Tok::Open(_) => depth += 1,
            Tok::Close(_) => depth -= 1,
            Tok::Comma if depth == 1 => at_item_start = true,
            Tok::Ident(_) if depth == 1 && at_item_start => {
                heads.push(k);
                at_item_start = false;
            }
            _ => {}
        }
    }
    heads
}

/// The names a path starting at `i` ends in: `a::b::C` -> [C];
/// `a::{B, c::D}` -> [B, D] (one level of grouping: enough for `use`).
fn last_segment(toks: &[T], mut i: usize) -> Vec<String> {
    while ident(toks.get(i)).is_some() && toks.get(i + 1).is_some_and(|t| t.tok == Tok::PathSep) {
        i += 2;
    }
    match toks.get(i) {
        Some(T { tok: Tok::Ident(s), .. }) => vec![s.clone()],
        Some(T { tok: Tok::Open('{'), .. }) => {
            group_heads(toks, i).into_iter().flat_map(|at| last_segment(toks, at)).collect()
        }
        _ => Vec::new(),
    }
}

struct Scan {
    edges: Vec<Edge>,
    /// `crate::X` where X is neither a module nor a known root item.
    unknown: Vec<String>,
    /// Files declared by `#[cfg(test)] mod x;` (paths without `.rs`).
    test_mods: Vec<PathBuf>,
}

fn scan_file(file: &SrcFile, src: &str, tops: &BTreeSet<String>, scan: &mut Scan) {
    let toks = lex(src);
    let root_items: BTreeMap<&str, &str> = ROOT_ITEMS.iter().copied().collect();
    // Inline `mod x { .. }` blocks: (name, brace depth inside the block).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let dir_of_file = {
        let p = Path::new(&file.rel);
        let stem = p.file_stem().unwrap().to_string_lossy();
        if ["mod", "lib", "main"].contains(&stem.as_ref()) {
            p.parent().unwrap().to_path_buf()
        } else {
            p.with_extension("")
        }
    };
    // `at`: the index of the path's first segment after `crate::`.
    let resolve = |at: usize, scan: &mut Scan| {
        let (name, line) = match &toks[at] {
            T { tok: Tok::Ident(name), line } => (name.as_str(), *line),
            _ => return,
        };
        let to = if tops.contains(name) {
            name.to_string()
        } else if let Some(m) = root_items.get(name) {
            m.to_string()
        } else if name == "self" || name == "super" || name == "crate" {
            return;
        } else {
            scan.unknown.push(format!("{}:{line}: crate::{name}", file.rel));
            return;
        };
        if to != file.top {
            let item = last_segment(&toks, at);
            scan.edges.push(Edge {
                from: file.top.clone(),
                to,
                item,
                file: file.rel.clone(),
                line,
            });
        }
    };
    while i < toks.len() {
        if let Some((after, test_only)) = cfg_test_attr(&toks, i) {
            if test_only {
                // Skip further attributes, then the item.
                let mut j = after;
                while let Some((a, _)) = cfg_test_attr(&toks, j) {
                    j = a;
                }
                while toks.get(j).is_some_and(|t| t.tok == Tok::Pound) {
                    j = skip_balanced(&toks, j + 1);
                }
                // `#[cfg(test)] (pub(crate)) mod x;` declares a test-only
                // file.
                let end = skip_item(&toks, j);
                if let [.., T { tok: Tok::Ident(m), .. }, T { tok: Tok::Ident(name), .. }, T { tok: Tok::Semi, .. }] =
                    &toks[j..end]
                {
                    if m == "mod" {
                        let mut dir = dir_of_file.clone();
                        for (m, _) in &inline {
                            dir.push(m);
                        }
                        scan.test_mods.push(dir.join(name));
                    }
                }
                i = skip_item(&toks, j);
                continue;
            }
            i = after;
            continue;
        }
        match &toks[i].tok {
            Tok::Open('{') => depth += 1,
            Tok::Close('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Open(_) => depth += 1,
            Tok::Close(_) => depth = depth.saturating_sub(1),
            Tok::Ident(w) if w == "mod" => {
                if let (Some(name), Some(T { tok: Tok::Open('{'), .. })) =
                    (ident(toks.get(i + 1)), toks.get(i + 2))
                {
                    inline.push((name.to_string(), depth + 1));
                }
            }
            Tok::Ident(w)
                if (w == "crate" || (w == "ctdiag" && file.top == "main"))
                    && toks.get(i + 1).is_some_and(|t| t.tok == Tok::PathSep) =>
            {
                // Not the tail of a longer path (`a::crate` is no path).
                if i == 0 || toks[i - 1].tok != Tok::PathSep {
                    match toks.get(i + 2) {
                        Some(T { tok: Tok::Ident(_), .. }) => resolve(i + 2, scan),
                        Some(T { tok: Tok::Open('{'), .. }) => {
                            for at in group_heads(&toks, i + 2) {
                                resolve(at, scan);
                            }
                        }
                        _ => {}
                    }
                }
                i += 2;
                continue;
            }
            // In lib.rs and main.rs a path may start at a module: `app::run`.
            Tok::Ident(w)
                if file.module.is_empty()
                    && tops.contains(w)
                    && toks.get(i + 1).is_some_and(|t| t.tok == Tok::PathSep)
                    && (i == 0 || toks[i - 1].tok != Tok::PathSep) =>
            {
                resolve(i, scan);
            }
            Tok::Ident(w) if w == "super" && (i == 0 || toks[i - 1].tok != Tok::PathSep) => {
                // Climb: the file's module path, then its inline modules.
                let mut path: Vec<String> = file.module.clone();
                path.extend(inline.iter().map(|(m, _)| m.clone()));
                let mut j = i;
                while ident(toks.get(j)) == Some("super")
                    && toks.get(j + 1).is_some_and(|t| t.tok == Tok::PathSep)
                {
                    path.pop();
                    j += 2;
                }
                if j > i && path.is_empty() {
                    match toks.get(j) {
                        Some(T { tok: Tok::Ident(_), .. }) => resolve(j, scan),
                        Some(T { tok: Tok::Open('{'), .. }) => {
                            for at in group_heads(&toks, j) {
                                resolve(at, scan);
                            }
                        }
                        _ => {}
                    }
                }
                i = j.max(i + 1);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
}

fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files of the production crate: all of src/ but the ones declared
/// under `#[cfg(test)]` (and the folders below them).
fn production_files() -> Vec<SrcFile> {
    let root = crate_root();
    let files = source_files(&root);
    let tops: BTreeSet<String> = files.iter().map(|f| f.top.clone()).collect();
    let mut scan = Scan { edges: Vec::new(), unknown: Vec::new(), test_mods: Vec::new() };
    for f in &files {
        let src = std::fs::read_to_string(root.join(&f.rel)).unwrap();
        scan_file(f, &src, &tops, &mut scan);
    }
    let test_mods = scan.test_mods;
    files
        .into_iter()
        .filter(|f| {
            let p = Path::new(&f.rel);
            !test_mods.iter().any(|m| p == m.with_extension("rs") || p.starts_with(m))
        })
        .collect()
}

/// Every production edge between top-level modules, and the `crate::X`
/// paths to unknown names.
fn scan_crate() -> (Vec<Edge>, Vec<String>) {
    let root = crate_root();
    let files = production_files();
    let tops: BTreeSet<String> = files.iter().map(|f| f.top.clone()).collect();
    let mut scan = Scan { edges: Vec::new(), unknown: Vec::new(), test_mods: Vec::new() };
    for f in &files {
        let src = std::fs::read_to_string(root.join(&f.rel)).unwrap();
        scan_file(f, &src, &tops, &mut scan);
    }
    (scan.edges, scan.unknown)
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Whether the rule allows this edge (ignoring `KNOWN`).
fn allowed(e: &Edge) -> bool {
    let (from, to) = (e.from.as_str(), e.to.as_str());
    match (layer_of(from), layer_of(to)) {
        (Some(a), Some(b)) if a < b => true,
        (Some(a), Some(b)) if a == b => SIDEWAYS.contains(&(from, to)),
        _ => from == "error" && !e.item.is_empty() && e.item.iter().all(|n| n.ends_with("Error")),
    }
}

#[test]
fn every_module_has_a_layer() {
    let tops: BTreeSet<String> = production_files().into_iter().map(|f| f.top).collect();
    let missing: Vec<&String> = tops.iter().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        missing.is_empty(),
        "top-level modules without a place in tests/layers.rs LAYERS: {missing:?}; \
         add each to the layer it belongs to"
    );
}

#[test]
fn the_rule_itself_has_no_cycle() {
    // Within a layer only SIDEWAYS edges are allowed: they must form no
    // cycle, or the order would allow one.
    for &(a, b) in SIDEWAYS {
        assert_eq!(
            layer_of(a),
            layer_of(b),
            "SIDEWAYS {a} -> {b} crosses layers: it needs no entry"
        );
        assert!(!SIDEWAYS.contains(&(b, a)), "SIDEWAYS allows both {a} -> {b} and {b} -> {a}");
    }
    let mut reach: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for &(a, b) in SIDEWAYS {
        reach.entry(a).or_default().insert(b);
    }
    loop {
        let mut grew = false;
        for a in reach.keys().copied().collect::<Vec<_>>() {
            let via: Vec<&str> =
                reach[a].iter().flat_map(|b| reach.get(b).into_iter().flatten().copied()).collect();
            for c in via {
                grew |= reach.get_mut(a).unwrap().insert(c);
            }
        }
        if !grew {
            break;
        }
    }
    for (a, to) in &reach {
        assert!(!to.contains(a), "SIDEWAYS closes a cycle through {a}");
    }
}

#[test]
fn imports_go_down_the_layers() {
    let (edges, unknown) = scan_crate();
    // Shown by cargo when the test fails: every edge, `!!` against the rule.
    let mut by_pair: BTreeMap<(&str, &str), (Vec<String>, bool)> = BTreeMap::new();
    for e in &edges {
        let pair = by_pair.entry((&e.from, &e.to)).or_default();
        pair.0.push(format!("{}:{}", e.file, e.line));
        pair.1 |= !allowed(e);
    }
    for ((from, to), (at, against)) in &by_pair {
        let mark = if *against { "!!" } else { "  " };
        println!("{mark} {from} -> {to}  ({} places, first {})", at.len(), at[0]);
    }
    assert!(
        unknown.is_empty(),
        "paths to crate-root names that are neither a module nor in ROOT_ITEMS:\n  {}",
        unknown.join("\n  ")
    );
    let mut known_seen = BTreeSet::new();
    let mut new = String::new();
    for e in &edges {
        if allowed(e) {
            continue;
        }
        if let Some(k) = KNOWN.iter().find(|(f, t, _)| *f == e.from && *t == e.to) {
            known_seen.insert((k.0, k.1));
            continue;
        }
        writeln!(new, "  {} -> {}  ({}:{})", e.from, e.to, e.file, e.line).unwrap();
    }
    let stale: Vec<String> = KNOWN
        .iter()
        .filter(|(f, t, _)| !known_seen.contains(&(*f, *t)))
        .map(|(f, t, item)| format!("  {f} -> {t}  ({item})"))
        .collect();
    assert!(
        new.is_empty(),
        "imports against the layering (tests/layers.rs LAYERS; README \"Development\"):\n{new}\
         use a module of a lower layer instead, or move the item down"
    );
    assert!(
        stale.is_empty(),
        "KNOWN violations that no longer occur: remove them from tests/layers.rs KNOWN\n{}",
        stale.join("\n")
    );
}

#[test]
fn the_scanner_finds_every_form() {
    // A made-up file of `conntrack` with one path of each form, and the
    // look-alikes that are no path out of it.
    let src = r##"
//! Docs may say crate::lab without an edge.
use crate::service::Protocol;
use crate::{dns::wire, error::{Error, Result}, conntrack::Entry};
use super::super::render;
pub(crate) fn f() {
    let s = "crate::doctor in a string";
    let r = r#"crate::stale in a raw "string""#;
    let c = '"';
    /* crate::commands /* nested */ crate::cli */
    crate::netns::enter();
    let x: &'static str = crate::Error::msg;
}
mod inner {
    use super::super::super::findings::Finding;
    use super::super::Sibling;
}
#[cfg(test)]
mod tests {
    use crate::lab::Lab;
}
#[cfg(test)]
mod lab_tests;
"##;
    let file = SrcFile {
        rel: "src/conntrack/stale/mod.rs".into(),
        module: vec!["conntrack".into(), "stale".into()],
        top: "conntrack".into(),
    };
    let tops: BTreeSet<String> =
        ["conntrack", "service", "dns", "error", "render", "netns", "findings", "lab"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let mut scan = Scan { edges: Vec::new(), unknown: Vec::new(), test_mods: Vec::new() };
    scan_file(&file, src, &tops, &mut scan);
    let found: Vec<(String, usize)> = scan.edges.iter().map(|e| (e.to.clone(), e.line)).collect();
    let expected: Vec<(String, usize)> = [
        ("service", 3),
        ("dns", 4),
        ("error", 4),
        ("render", 5),
        ("netns", 11),
        ("error", 12),
        ("findings", 15),
    ]
    .iter()
    .map(|(m, l)| (m.to_string(), *l))
    .collect();
    assert_eq!(found, expected);
    assert!(scan.unknown.is_empty(), "{:?}", scan.unknown);
    assert_eq!(scan.test_mods, vec![PathBuf::from("src/conntrack/stale/lab_tests")]);
}
