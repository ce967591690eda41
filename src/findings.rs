//! Findings: what a check concluded, with the evidence and what to do.

use serde::Serialize;

/// How bad a finding is. Anything at `Warning` or above makes the command
/// exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Context worth knowing; nothing is wrong.
    Info,
    /// Something is wrong or about to be.
    Warning,
    /// DNS lookups are failing or will fail.
    Critical,
}

impl Severity {
    /// The lowercase name used in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One conclusion of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// A stable machine-readable identifier, e.g. `insert-failed-rising`.
    pub code: String,
    /// One line saying what is going on.
    pub summary: String,
    /// The numbers that show it.
    pub evidence: String,
    /// What to do about it.
    pub remedy: String,
}

impl Finding {
    /// Builds a finding.
    pub fn new(
        severity: Severity,
        code: &str,
        summary: impl Into<String>,
        evidence: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Self {
        Finding {
            severity,
            code: code.to_string(),
            summary: summary.into(),
            evidence: evidence.into(),
            remedy: remedy.into(),
        }
    }
}

/// True when any finding is a warning or worse (exit status 1).
pub fn has_problem(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity >= Severity::Warning)
}
