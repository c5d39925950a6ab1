//! The registry of probe kinds: one file each, listed here once. A new kind is a file, a
//! variant of [`Probe`] and one arm in [`Probe::build`] and [`Probe::check`]; `match` tells
//! you what you forgot.

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
            ProbeKind::Tcp { addr } => Probe::Tcp(tcp::TcpProbe::new(addr)),
            ProbeKind::Http(h) => Probe::Http(http::HttpProbe::new(h, &deps.http)),
            ProbeKind::Exec { program, cwd } => Probe::Exec(exec::ExecProbe::new(
                program,
                cwd.clone(),
                deps.reaper.clone(),
            )),
            ProbeKind::Process => Probe::Process(process::ProcessProbe),
            ProbeKind::Memory { max_bytes } => Probe::Memory(memory::MemoryProbe::new(*max_bytes)),
            ProbeKind::Cpu { max_percent } => Probe::Cpu(cpu::CpuProbe::new(*max_percent)),
        }
    }

    /// The host this probe checks over the network: its checks wait their turn at that
    /// host's gate. `None` for checks that do not touch the network.
    pub fn host(cfg: &ProbeConfig) -> Option<String> {
        match &cfg.kind {
            ProbeKind::Tcp { addr } => Some(addr.clone()),
            ProbeKind::Http(h) => Some(http::host_of(&h.url)),
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
