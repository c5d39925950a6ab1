//! The registry of probe kinds: one file each, listed here once. A new kind is a file, a
//! variant of [`Probe`] and one arm in [`Probe::build`] and [`Probe::check`]; `match` tells
//! you what you forgot. Its config (keys, checks, `*ProbeConfig`) is one file too, in
//! `upkeep-config/src/validate/probes/`, whose `mod.rs` lists the steps.

mod cpu;
mod exec;
mod http;
mod memory;
mod process;
mod tcp;

use upkeep_config::{ProbeConfig, ProbeKind};

pub use http::HttpClients;

use crate::probe::{ProbeOutcome, Target};
use crate::runner::ProbeDeps;

pub(crate) enum Probe {
    Tcp(tcp::TcpProbe),
    Http(http::HttpProbe),
    Exec(exec::ExecProbe),
    Process(process::ProcessProbe),
    Memory(memory::MemoryProbe),
    Cpu(cpu::CpuProbe),
}

impl Probe {
    pub fn build(cfg: &ProbeConfig, deps: &ProbeDeps) -> Probe {
        match &cfg.kind {
            ProbeKind::Tcp(c) => Probe::Tcp(tcp::TcpProbe::new(c)),
            ProbeKind::Http(c) => Probe::Http(http::HttpProbe::new(c, &deps.http)),
            ProbeKind::Exec(c) => Probe::Exec(exec::ExecProbe::new(c, deps.reaper.clone())),
            ProbeKind::Process(_) => Probe::Process(process::ProcessProbe),
            ProbeKind::Memory(c) => Probe::Memory(memory::MemoryProbe::new(c)),
            ProbeKind::Cpu(c) => Probe::Cpu(cpu::CpuProbe::new(c)),
        }
    }

    /// The host this probe checks over the network: its checks wait their turn at that
    /// host's gate. `None` for checks that do not touch the network.
    pub fn host(cfg: &ProbeConfig) -> Option<String> {
        match &cfg.kind {
            ProbeKind::Tcp(c) => Some(c.addr.clone()),
            ProbeKind::Http(c) => Some(http::host_of(&c.url)),
            _ => None,
        }
    }

    /// One check. `None`: nothing to say this round (a process probe with no process).
    pub async fn check(&self, target: &Target) -> Option<ProbeOutcome> {
        match self {
            Probe::Tcp(p) => Some(p.check().await),
            Probe::Http(p) => Some(p.check().await),
            Probe::Exec(p) => Some(p.check().await),
            Probe::Process(p) => p.check(target),
            Probe::Memory(p) => p.check(target),
            Probe::Cpu(p) => p.check(target),
        }
    }
}
