//! completions/ and man/ are generated from src/cli.rs; this test fails when
//! the committed files are out of date. Regenerate with
//! `CTDIAG_BLESS=1 cargo test --test generated`.

use std::collections::BTreeSet;
use std::path::Path;

/// CI's strict mode, the one rule shared with every test.
#[path = "common/ci.rs"]
mod ci;

#[test]
fn completions_and_man_pages_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = ctdiag::generate::generated_files().expect("generate");
    if std::env::var_os("CTDIAG_BLESS").is_some() {
        // CI checks the committed files; it must never rewrite them and pass.
        assert!(
            !ci::is_ci(),
            "CTDIAG_BLESS is refused when CI is set ({:?}): regenerate locally and commit the files",
            ci::ci_value()
        );
        for dir in ["completions", "man"] {
            let _ = std::fs::remove_dir_all(root.join(dir));
        }
        ctdiag::generate::write_all(root).expect("write generated files");
    }
    let mut stale = Vec::new();
    let mut expected = BTreeSet::new();
    for (rel, contents) in &files {
        expected.insert(rel.clone());
        match std::fs::read(root.join(rel)) {
            Ok(committed) if &committed == contents => {}
            Ok(_) => stale.push(format!("{rel} differs")),
            Err(_) => stale.push(format!("{rel} is missing")),
        }
    }
    for dir in ["completions", "man"] {
        for entry in std::fs::read_dir(root.join(dir)).into_iter().flatten().flatten() {
            let rel = format!("{dir}/{}", entry.file_name().to_string_lossy());
            if !expected.contains(&rel) {
                stale.push(format!("{rel} is no longer generated"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "generated files are out of date: {stale:?}\nrun `CTDIAG_BLESS=1 cargo test --test generated` and commit"
    );
    // The subcommand pages exist, one per command.
    for page in ["man/ctdiag.1", "man/ctdiag-stats.1", "man/ctdiag-probe.1", "man/ctdiag-lab.1"] {
        assert!(expected.contains(page), "{page} not generated");
    }
}
