//! DNS: queries and answers with hickory-proto, the probe engine, resolv.conf.

pub mod compare;
pub mod engine;
pub mod histogram;
pub mod pods;
pub mod probe;
pub mod resolv;
pub mod rootfs;
pub mod route;
pub mod wire;
