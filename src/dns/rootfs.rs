//! Files inside a container's root filesystem, read as the container sees
//! them and never outside it: the pod's `etc/resolv.conf` and the C
//! library its programs load.
//!
//! A container's files are hostile input. `/proc/PID/root/etc/resolv.conf`
//! opened the ordinary way follows an absolute symlink in the image
//! (`etc/resolv.conf -> /etc/shadow`) to the *host's* file, a FIFO would
//! block the open forever and a device or a huge file would never end. So
//! every path is resolved with `openat2(2)` and `RESOLVE_IN_ROOT` (symlinks
//! and `..` stay inside the container's root, magic links are refused),
//! opened non-blocking, taken only when it is a regular file, and read up to
//! a size cap.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, Mode, SFlag};
use serde::Serialize;

/// Most bytes of a resolv.conf read (a real one is well under 1 KiB).
pub const MAX_RESOLV_CONF: u64 = 64 * 1024;
/// Most directory entries looked at per library directory.
const MAX_DIR_ENTRIES: usize = 4096;
/// Library directories where a dynamic loader or libc is looked for, and
/// whose `*-linux-*` subdirectories (Debian's multiarch) are looked in too.
const LIB_DIRS: &[&str] = &["lib", "lib64", "usr/lib", "usr/lib64", "lib32", "usr/local/lib"];

/// A file read from a container root, or why it was not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum RootFile {
    /// Read whole.
    Read {
        /// Its text (lossy UTF-8).
        text: String,
    },
    /// Larger than the cap: only the first bytes were read.
    Truncated {
        /// The first [`MAX_RESOLV_CONF`] bytes, as text.
        text: String,
        /// Its size.
        size: u64,
    },
    /// There is no such file inside the root (a symlink that leads nowhere
    /// inside it counts: outside is never looked at).
    Missing,
    /// Not used: not a regular file, binary, or could not be opened inside
    /// the root.
    Refused {
        /// Why, in words.
        reason: String,
    },
}

impl RootFile {
    /// The text to parse, when there is any.
    pub fn text(&self) -> Option<&str> {
        match self {
            RootFile::Read { text } | RootFile::Truncated { text, .. } => Some(text),
            RootFile::Missing | RootFile::Refused { .. } => None,
        }
    }
}

/// Opens a container's root directory (`/proc/PID/root`, or a directory
/// that stands for one) to resolve paths in.
pub fn open_root(root: &Path) -> std::io::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    Ok(fd)
}

/// Opens `path` (relative to the root) inside `root` only.
fn open_in_root(root: impl AsFd, path: &str, flags: OFlag) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(root, path.trim_start_matches('/'), how)
}

/// Reads the regular file `path` inside `root`, at most `cap` bytes.
/// Binary content (a NUL byte) is refused: no resolver configuration has
/// one.
pub fn read_file(root: impl AsFd, path: &str, cap: u64) -> RootFile {
    let refused = |reason: String| RootFile::Refused { reason };
    // Why O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
    // writer that never comes.
    let fd = match open_in_root(root, path, OFlag::O_RDONLY | OFlag::O_NONBLOCK) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => return RootFile::Missing,
        Err(nix::errno::Errno::ELOOP) => {
            return refused(format!("{path}: too many symlinks, or a magic link"))
        }
        Err(nix::errno::Errno::EXDEV) => {
            return refused(format!("{path} leads outside the container's root"))
        }
        Err(nix::errno::Errno::ENOSYS) => {
            return refused("openat2(2) is not available (Linux < 5.6): not read, so that a symlink cannot lead outside the container".into())
        }
        Err(e) => return refused(format!("cannot open {path}: {e}")),
    };
    let stat = match fstat(&fd) {
        Ok(stat) => stat,
        Err(e) => return refused(format!("cannot stat {path}: {e}")),
    };
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return refused(format!("{path} is not a regular file"));
    }
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    let mut bytes = Vec::new();
    let mut file = std::fs::File::from(fd);
    if let Err(e) = (&mut file).take(cap).read_to_end(&mut bytes) {
        return refused(format!("cannot read {path}: {e}"));
    }
    if bytes.contains(&0) {
        return refused(format!(
            "{path} is binary (it holds NUL bytes), not a resolver configuration"
        ));
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    // The size may grow while reading; what was read is what counts.
    if size > cap || bytes.len() as u64 >= cap {
        RootFile::Truncated { text, size: size.max(bytes.len() as u64) }
    } else {
        RootFile::Read { text }
    }
}

/// The C library a container's programs use, which decides how its lookups
/// behave: glibc honours `single-request`, `single-request-reopen` and
/// `use-vc`; musl ignores all three (it always sends A and AAAA in
/// parallel, from one unconnected socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Libc {
    /// glibc: `ld-linux*.so.*` or `libc.so.6` found.
    Glibc,
    /// musl: `ld-musl-*.so.1` found.
    Musl,
    /// Both found (an image that ships both; each program uses one).
    Both,
    /// Neither: static binaries (Go's own resolver, distroless static) or an
    /// unusual layout.
    None,
}

impl Libc {
    /// The name used in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Libc::Glibc => "glibc",
            Libc::Musl => "musl",
            Libc::Both => "glibc+musl",
            Libc::None => "none found",
        }
    }
}

/// What the library directories of a root hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LibcEvidence {
    /// The verdict.
    pub libc: Libc,
    /// The files that decided it, relative to the root (at most a few).
    pub files: Vec<String>,
}

/// Names of a directory inside the root, at most [`MAX_DIR_ENTRIES`].
fn list_dir(root: impl AsFd, dir: &str) -> Vec<String> {
    let Ok(fd) = open_in_root(root, dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY) else {
        return Vec::new();
    };
    let Ok(mut listing) = nix::dir::Dir::from_fd(fd) else { return Vec::new() };
    listing
        .iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().ok().map(str::to_string))
        .filter(|name| name != "." && name != "..")
        .take(MAX_DIR_ENTRIES)
        .collect()
}

fn is_musl_loader(name: &str) -> bool {
    name.starts_with("ld-musl-") && name.ends_with(".so.1")
}

fn is_glibc_file(name: &str) -> bool {
    (name.starts_with("ld-linux") && name.contains(".so.")) || name == "libc.so.6"
}

/// Tells musl from glibc by the dynamic loader and C library files in the
/// root's library directories (`lib/ld-musl-x86_64.so.1` vs
/// `lib64/ld-linux-x86-64.so.2`, `lib/x86_64-linux-gnu/libc.so.6`).
pub fn detect_libc(root: impl AsFd) -> LibcEvidence {
    let root = root.as_fd();
    let mut musl = Vec::new();
    let mut glibc = Vec::new();
    let mut dirs: Vec<String> = LIB_DIRS.iter().map(|d| (*d).to_string()).collect();
    for base in ["lib", "usr/lib"] {
        for name in list_dir(root, base) {
            if name.contains("-linux-") {
                dirs.push(format!("{base}/{name}"));
            }
        }
    }
    for dir in &dirs {
        for name in list_dir(root, dir) {
            let path = format!("{dir}/{name}");
            if is_musl_loader(&name) {
                musl.push(path);
            } else if is_glibc_file(&name) {
                glibc.push(path);
            }
        }
    }
    musl.sort();
    glibc.sort();
    let libc = match (musl.is_empty(), glibc.is_empty()) {
        (false, true) => Libc::Musl,
        (true, false) => Libc::Glibc,
        (false, false) => Libc::Both,
        (true, true) => Libc::None,
    };
    let mut files: Vec<String> = musl.into_iter().chain(glibc).collect();
    files.truncate(4);
    LibcEvidence { libc, files }
}

/// Splits `/proc/PID/root/REST` into the container root
/// (`/proc/PID/root`) and `REST`; `None` for any other path.
pub fn split_proc_root(path: &Path) -> Option<(PathBuf, String)> {
    let mut parts = path.strip_prefix("/proc").ok()?.components();
    let pid = parts.next()?.as_os_str().to_str()?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if parts.next()?.as_os_str() != "root" {
        return None;
    }
    let rest = parts.as_path().to_str()?.to_string();
    Some((PathBuf::from(format!("/proc/{pid}/root")), rest))
}

/// Reads the file at `path` with the same guards as [`read_file`]
/// (non-blocking, regular files only, at most `cap` bytes, no magic
/// links). A path under `/proc/PID/root/` is a container's file: it is
/// resolved inside that root, so an absolute symlink in the image cannot
/// lead to the host's file. Any other path is resolved from `/`.
pub fn read_path(path: &Path, cap: u64) -> RootFile {
    let (root, rest) = match split_proc_root(path) {
        Some((root, rest)) => (root, rest),
        None => (PathBuf::from("/"), path.to_string_lossy().into_owned()),
    };
    match open_root(&root) {
        Ok(fd) => read_file(&fd, &rest, cap),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => RootFile::Missing,
        Err(e) => RootFile::Refused { reason: format!("cannot open {}: {e}", root.display()) },
    }
}

/// The root directory of process `pid` as its container sees it.
pub fn proc_root(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rootfs").join(name)
    }

    #[test]
    fn glibc_and_musl_roots() {
        let glibc = open_root(&fixture("glibc")).unwrap();
        let found = detect_libc(&glibc);
        assert_eq!(found.libc, Libc::Glibc, "{found:?}");
        assert!(found.files.iter().any(|f| f.ends_with("libc.so.6")), "{found:?}");
        let musl = open_root(&fixture("musl")).unwrap();
        let found = detect_libc(&musl);
        assert_eq!(found.libc, Libc::Musl, "{found:?}");
        assert_eq!(found.files, ["lib/ld-musl-x86_64.so.1"]);
        let text = read_file(&musl, "/etc/resolv.conf", MAX_RESOLV_CONF);
        assert!(text.text().unwrap().contains("single-request"), "{text:?}");
        let none = open_root(&fixture("static")).unwrap();
        assert_eq!(detect_libc(&none).libc, Libc::None);
    }

    #[test]
    fn a_symlink_never_leads_out_of_the_root() {
        // etc/resolv.conf -> /etc/hostname and etc/hosts -> ../../../../etc/hostname:
        // both would read the host's file if followed outside the root.
        let root = open_root(&fixture("escape")).unwrap();
        for path in ["etc/resolv.conf", "etc/hosts"] {
            let read = read_file(&root, path, MAX_RESOLV_CONF);
            assert_eq!(read, RootFile::Missing, "{path}: read outside the root");
        }
    }

    #[test]
    fn huge_binary_and_special_files_are_bounded_or_refused() {
        let dir = std::env::temp_dir().join(format!("ctdiag-rootfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        let huge = "nameserver 198.18.0.53\n".repeat(100_000);
        std::fs::write(dir.join("etc/huge.conf"), &huge).unwrap();
        std::fs::write(dir.join("etc/binary.conf"), b"nameserver 198.18.0.53\n\0\x7fELF\xff")
            .unwrap();
        nix::unistd::mkfifo(&dir.join("etc/fifo.conf"), Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
        std::fs::create_dir_all(dir.join("etc/dir.conf")).unwrap();
        let root = open_root(&dir).unwrap();
        match read_file(&root, "etc/huge.conf", MAX_RESOLV_CONF) {
            RootFile::Truncated { text, size } => {
                assert!(text.starts_with("nameserver 198.18.0.53\n"));
                assert_eq!(size, huge.len() as u64);
                assert_eq!(text.len() as u64, MAX_RESOLV_CONF);
            }
            other => panic!("{other:?}"),
        }
        for (name, why) in [
            ("etc/binary.conf", "binary"),
            ("etc/fifo.conf", "not a regular file"),
            ("etc/dir.conf", "not a regular file"),
        ] {
            match read_file(&root, name, MAX_RESOLV_CONF) {
                RootFile::Refused { reason } => assert!(reason.contains(why), "{name}: {reason}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(read_file(&root, "etc/missing.conf", MAX_RESOLV_CONF), RootFile::Missing);
        // The same guards for a path given whole.
        match read_path(&dir.join("etc/fifo.conf"), MAX_RESOLV_CONF) {
            RootFile::Refused { reason } => {
                assert!(reason.contains("not a regular file"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        match read_path(Path::new("/dev/zero"), MAX_RESOLV_CONF) {
            RootFile::Refused { reason } => {
                assert!(reason.contains("not a regular file"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn proc_root_paths_are_split_at_the_root() {
        assert_eq!(
            split_proc_root(Path::new("/proc/42/root/etc/resolv.conf")),
            Some((PathBuf::from("/proc/42/root"), "etc/resolv.conf".to_string()))
        );
        for other in [
            "/proc/self/root/etc/resolv.conf",
            "/proc/42/cwd/x",
            "/etc/resolv.conf",
            "/proc/4a/root/x",
        ] {
            assert_eq!(split_proc_root(Path::new(other)), None, "{other}");
        }
    }

    /// This process's own /proc/PID/root is `/`: a file read through it is
    /// the same file (the hostile roots are in tests/hostile.rs).
    #[test]
    fn a_proc_root_path_is_read_inside_its_root() {
        let pid = std::process::id();
        let read = read_path(Path::new(&format!("/proc/{pid}/root/etc/hostname")), 256);
        let direct = std::fs::read_to_string("/etc/hostname").ok();
        assert_eq!(read.text().map(str::to_string), direct, "{read:?}");
    }
}
