//! Shell completions and man pages, generated from `cli.rs`. A test
//! regenerates them and compares with the committed files.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// Every generated file: (path relative to the repository root, contents).
pub fn generated_files() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::Elvish, Shell::PowerShell] {
        let mut cmd = Cli::command();
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, "ctdiag", &mut buf);
        let name = match shell {
            Shell::Bash => "ctdiag.bash".to_string(),
            Shell::Zsh => "_ctdiag".to_string(),
            Shell::Fish => "ctdiag.fish".to_string(),
            Shell::Elvish => "ctdiag.elv".to_string(),
            Shell::PowerShell => "_ctdiag.ps1".to_string(),
            other => format!("ctdiag.{other}"),
        };
        files.push((format!("completions/{name}"), buf));
    }
    let mut cmd = Cli::command();
    cmd.build();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    files.push(("man/ctdiag.1".to_string(), buf));
    add_subcommand_pages(&cmd, "ctdiag", &mut files)?;
    Ok(files)
}

/// One page per subcommand, nested ones included (`ctdiag-lab-up.1`).
fn add_subcommand_pages(
    parent: &clap::Command,
    prefix: &str,
    files: &mut Vec<(String, Vec<u8>)>,
) -> std::io::Result<()> {
    for sub in parent.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        let name = format!("{prefix}-{}", sub.get_name());
        let page = sub
            .clone()
            .name(name.clone())
            .bin_name(name.replace('-', " "))
            .version(env!("CARGO_PKG_VERSION"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(page).render(&mut buf)?;
        files.push((format!("man/{name}.1"), buf));
        add_subcommand_pages(sub, &name, files)?;
    }
    Ok(())
}

/// Writes every generated file under `root`.
pub fn write_all(root: &Path) -> std::io::Result<()> {
    for (rel, contents) in generated_files()? {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, contents)?;
    }
    Ok(())
}
