//! DNS: queries and answers with hickory-proto, the probe engine, resolv.conf.
