//! The running kernel's release, for explaining counters whose meaning
//! changed between versions. Features themselves are detected by attribute
//! presence (distributions backport); the version only adds context.

use serde::Serialize;

/// The running kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kernel {
    /// `uname -r`, e.g. "6.18.44-fc".
    pub release: String,
    /// (major, minor) when the release parses.
    #[serde(skip)]
    pub version: Option<(u32, u32)>,
}

impl Kernel {
    /// Reads /proc/sys/kernel/osrelease; "unknown" when unreadable.
    pub fn running() -> Self {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".to_string());
        Kernel::from_release(&release)
    }

    /// Parses a release string such as "5.10.0-23-amd64".
    pub fn from_release(release: &str) -> Self {
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        let version = match (
            parts.next().and_then(|m| m.parse().ok()),
            parts.next().and_then(|m| m.parse().ok()),
        ) {
            (Some(major), Some(minor)) => Some((major, minor)),
            _ => None,
        };
        Kernel { release: release.to_string(), version }
    }

    /// True when the kernel is known to be older than `major.minor`.
    pub fn older_than(&self, major: u32, minor: u32) -> bool {
        self.version.is_some_and(|v| v < (major, minor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases() {
        assert_eq!(Kernel::from_release("6.18.44-fc-v595").version, Some((6, 18)));
        assert_eq!(Kernel::from_release("5.10.0-23-amd64").version, Some((5, 10)));
        assert_eq!(Kernel::from_release("garbage").version, None);
        assert!(Kernel::from_release("5.4.0").older_than(5, 6));
        assert!(!Kernel::from_release("6.12.1").older_than(6, 12));
        assert!(!Kernel::from_release("x").older_than(6, 12));
    }
}
