//! `kind = "tcp"`: a connection to `addr` is accepted.
//!
//! Owns the tcp probe's key (`addr`), its check (a host and a port that can be connected to)
//! and [`TcpProbeConfig`]. It does not connect: `upkeep-probes/src/kinds/tcp.rs` does. Input:
//! the probe's own keys, sorted out by `mod.rs`; output: `ProbeKind::Tcp`, or problems.

use serde::Deserialize;

use super::{ProbeKind, ProbeSite, RawKind, Validator};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTcpProbe {
    addr: Option<String>,
}

/// Connect to `addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpProbeConfig {
    /// host:port, with a host free of spaces and control characters and a port from 1 to
    /// 65535.
    pub addr: String,
}

const EXAMPLE: &str = "addr = \"127.0.0.1:5432\"";

impl RawKind for RawTcpProbe {
    const NAME: &'static str = "tcp";

    fn validate(self, v: &mut Validator<'_>, at: &ProbeSite<'_>) -> Option<ProbeKind> {
        let addr = at.needs(v, "addr", self.addr, EXAMPLE)?;
        // Port 0 can never be connected to.
        let valid = addr.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty()
                && !host.contains(|c: char| c.is_whitespace() || c.is_control())
                && port.parse::<u16>().is_ok_and(|p| p != 0)
        });
        if !valid {
            v.problem(
                &at.key("addr"),
                format!(
                    "addr `{}` is not host:port (a host name or address, and a port from 1 to 65535)",
                    addr.escape_debug()
                ),
                Some(format!("e.g. {EXAMPLE}")),
            );
            return None;
        }
        Some(ProbeKind::Tcp(TcpProbeConfig { addr }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{kind_of, probe, refused};
    use super::*;

    #[test]
    fn takes_a_host_and_port() {
        for addr in ["127.0.0.1:5432", "localhost:9", "[::1]:80"] {
            assert_eq!(
                kind_of(&probe(&format!("kind = \"tcp\"\naddr = \"{addr}\""))),
                ProbeKind::Tcp(TcpProbeConfig { addr: addr.into() })
            );
        }
    }

    #[test]
    fn refuses_port_zero_a_bad_host_and_no_addr() {
        // Port 0 can never answer.
        for addr in ["127.0.0.1:0", "bad host:80", "nocolon", ":80"] {
            let (p, text) = refused(&format!("kind = \"tcp\"\naddr = \"{addr}\""), "addr", 5, 8);
            assert!(p.message.contains("is not host:port"), "{text}");
        }
        let (p, text) = refused("kind = \"tcp\"", "kind", 4, 8);
        assert!(p.message.contains("a tcp probe needs `addr`"), "{text}");
    }

    #[test]
    fn refuses_keys_of_other_kinds() {
        let (p, text) = refused(
            "kind = \"tcp\"\naddr = \"127.0.0.1:1\"\nurl = \"http://x/\"",
            "url",
            6,
            7,
        );
        assert_eq!(p.message, "`url` does not apply to a tcp probe");
        assert!(
            text.contains("hint: `url` is a key of http probes"),
            "{text}"
        );
    }
}
