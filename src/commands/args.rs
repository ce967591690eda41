//! Parsers for flag values that several commands share.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::cli::ServiceArgs;
use crate::dns::probe::MAX_RUN;
use crate::error::{Error, Result};
use crate::service::select::{ManualService, Selector, ServiceSpec};

/// The Service selection the flags ask for: `--cluster-ip`/`--endpoints`
/// (named by `--service` when both are given), `--all`, `--service SPEC`,
/// else kube-dns.
pub fn selector(args: &ServiceArgs, all: bool) -> Result<Selector> {
    let spec = args.service.as_deref().map(ServiceSpec::parse).transpose()?;
    if all && (spec.is_some() || args.cluster_ip.is_some()) {
        return Err(Error::Usage(
            "--all takes every Service in the rules: leave out --service and --cluster-ip".into(),
        ));
    }
    if let Some(cluster_ip) = &args.cluster_ip {
        return Ok(Selector::Manual(ManualService::parse(cluster_ip, &args.endpoints, spec)?));
    }
    if !args.endpoints.is_empty() {
        return Err(Error::Usage("--endpoints needs --cluster-ip".into()));
    }
    Ok(match (all, spec) {
        (true, _) => Selector::All,
        (false, Some(spec)) => Selector::Spec(spec),
        (false, None) => Selector::Spec(ServiceSpec::kube_dns()),
    })
}

/// Parses `IP`, `IP:PORT`, `[IPv6]:PORT` or a bare IPv6 address.
pub fn parse_server(text: &str) -> Result<SocketAddr> {
    let bad = || {
        Error::Usage(format!(
            "--server {text:?}: not an IP address or IP:PORT (e.g. 198.19.0.10, 198.19.0.10:53, [2001:db8::53]:53); host names are not resolved"
        ))
    };
    let address = if let Ok(ip) = text.parse::<IpAddr>() {
        SocketAddr::new(ip, 53)
    } else if let Ok(address) = text.parse::<SocketAddr>() {
        address
    } else {
        // A port that does not fit u16 makes SocketAddr fail: say so.
        if let Some((host, port)) = text.rsplit_once(':') {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.parse::<IpAddr>().is_ok() && port.parse::<u64>().is_ok() {
                return Err(Error::Usage(format!(
                    "--server {text}: port {port} is out of range (1 to 65535)"
                )));
            }
        }
        return Err(bad());
    };
    if address.port() == 0 {
        return Err(Error::Usage(format!("--server {text}: port 0 is not a port (1 to 65535)")));
    }
    if address.ip().is_unspecified() || address.ip().is_multicast() {
        return Err(Error::Usage(format!(
            "--server {text}: {} cannot be a DNS server address",
            address.ip()
        )));
    }
    Ok(address)
}

/// Parses `500ms`, `30s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration> {
    parse_duration_of("--duration", text)
}

/// [`parse_duration`] for the flag `flag` (named in errors).
pub fn parse_duration_of(flag: &str, text: &str) -> Result<Duration> {
    let bad =
        || Error::Usage(format!("{flag} {text:?}: give a duration such as 500ms, 30s, 2m or 1h"));
    let text_trim = text.trim();
    let split =
        text_trim.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text_trim.len());
    let (number, unit) = text_trim.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(bad()),
    };
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(Error::Usage(format!("{flag} {text}: must be longer than zero")));
    }
    if seconds > MAX_RUN.as_secs_f64() {
        return Err(Error::Usage(format!(
            "{flag} {text}: at most {} s (one hour) per run",
            MAX_RUN.as_secs()
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}
