//! The doctor report: one row per check with its status, evidence and
//! remedy, every finding with the check it came from, and the verdict.

use serde::Serialize;

use crate::findings::{Finding, Outcome, Severity};

use super::datapath::NodeDatapath;

/// A check's state in the verdict table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Does not apply to this node: it looks at netfilter's Service DNAT
    /// (kube-proxy's rules, the entries they make) and the node has no
    /// kube-proxy rules. The evidence says why. Neither passed nor unknown.
    #[serde(rename = "not-applicable")]
    NotApplicable,
    /// Ran; nothing at warning or above.
    Ok,
    /// Could not run, failed, or did not finish in its share of the budget.
    Unknown,
    /// Ran; found something wrong.
    Warning,
    /// Ran; DNS lookups are failing or will fail.
    Critical,
}

impl Status {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NotApplicable => "not-applicable",
            Status::Ok => "ok",
            Status::Unknown => "unknown",
            Status::Warning => "warning",
            Status::Critical => "critical",
        }
    }

    /// The status that findings of `severity` give a check.
    pub fn of(findings: &[Finding]) -> Status {
        match findings.iter().map(|f| f.severity).max() {
            Some(Severity::Critical) => Status::Critical,
            Some(Severity::Warning) => Status::Warning,
            _ => Status::Ok,
        }
    }
}

/// One row of the verdict table.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The check's name (`conntrack`, `kube-dns`, ...).
    pub check: String,
    /// ok, warning, critical, unknown or not-applicable.
    pub status: Status,
    /// What was seen, or why it could not be seen.
    pub evidence: String,
    /// What to do ("-" when nothing).
    pub remedy: String,
    /// How long it took, seconds.
    pub duration_s: f64,
    /// The check's own data (null when unknown).
    pub data: serde_json::Value,
}

/// A finding with the check it came from.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorFinding {
    /// The check.
    pub check: String,
    /// The finding.
    #[serde(flatten)]
    pub finding: Finding,
}

/// What `ctdiag doctor` reports.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    /// critical or warning when a check found a problem; else unknown when
    /// a check could not run or none applied; else ok (checks that do not
    /// apply are not counted as passed).
    pub verdict: Status,
    /// One line naming the worst finding (or the check that could not run).
    pub summary: String,
    /// The node namespace, as given.
    pub netns: Option<String>,
    /// The budget, seconds.
    pub budget_s: f64,
    /// Wall time of the run, seconds.
    pub duration_s: f64,
    /// One per check, in table order.
    pub checks: Vec<CheckReport>,
    /// When the node has no kube-proxy Service rules: what carries its
    /// Services instead, as far as doctor could see (null when the rules
    /// are there, or the DNS Service was given by flags).
    pub service_datapath: Option<NodeDatapath>,
    /// Every finding, most severe first.
    pub findings: Vec<DoctorFinding>,
}

impl DoctorReport {
    /// Exit status for a person or a script: 1 when a check found a
    /// problem; 2 when no check could run, or when the node has no
    /// kube-proxy rules and no sign of another Service datapath (nothing
    /// can say its Services work: kube-proxy may be broken); else 0.
    pub fn outcome(&self) -> Outcome {
        let applied = self.checks.iter().filter(|c| c.status != Status::NotApplicable);
        if matches!(self.verdict, Status::Critical | Status::Warning) {
            Outcome::Problem
        } else if self.service_datapath.as_ref().is_some_and(NodeDatapath::undecided)
            || (!self.checks.is_empty() && applied.clone().all(|c| c.status == Status::Unknown))
        {
            Outcome::Unknown
        } else {
            Outcome::Clean
        }
    }

    /// Exit status for node-problem-detector: NonOK (1) on a problem,
    /// Unknown (2) when no problem was found but a check could not run
    /// (OK must mean every check that applies to the node ran), else OK
    /// (0).
    pub fn npd_outcome(&self) -> Outcome {
        match self.verdict {
            Status::Critical | Status::Warning => Outcome::Problem,
            Status::Unknown => Outcome::Unknown,
            // A run where nothing applied never says OK.
            Status::NotApplicable => Outcome::Unknown,
            Status::Ok => Outcome::Clean,
        }
    }

    /// The findings of one check.
    pub fn findings_of<'a>(&'a self, check: &'a str) -> impl Iterator<Item = &'a Finding> + 'a {
        self.findings.iter().filter(move |f| f.check == check).map(|f| &f.finding)
    }
}
