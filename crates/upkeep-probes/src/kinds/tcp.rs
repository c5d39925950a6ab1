//! `tcp`: a connection to `addr` is accepted.

use std::time::Instant;

use upkeep_config::TcpProbeConfig;

use crate::probe::ProbeOutcome;

pub(crate) struct TcpProbe {
    addr: String,
}

impl TcpProbe {
    pub fn new(cfg: &TcpProbeConfig) -> Self {
        Self {
            addr: cfg.addr.clone(),
        }
    }

    pub async fn check(&self) -> ProbeOutcome {
        let start = Instant::now();
        match tokio::net::TcpStream::connect(&self.addr).await {
            Ok(_) => ProbeOutcome::up(format!("connected to {}", self.addr), start.elapsed()),
            Err(e) => ProbeOutcome::down(
                format!("cannot connect to {}: {e}", self.addr),
                start.elapsed(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_and_closed_ports() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cfg = TcpProbeConfig {
            addr: listener.local_addr().unwrap().to_string(),
        };
        assert!(TcpProbe::new(&cfg).check().await.healthy);
        drop(listener);
        let o = TcpProbe::new(&cfg).check().await;
        assert!(!o.healthy && o.reason.contains("refused"), "{}", o.reason);
    }
}
