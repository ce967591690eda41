//! Root-only tests against the running kernel (filled in below).
