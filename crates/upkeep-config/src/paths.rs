//! Where things are when the user does not say: the config file and the data dir.

use std::path::PathBuf;

/// The config file to use when no `-c` is given: `$UPKEEP_CONFIG`, `./upkeep.toml`,
/// `$XDG_CONFIG_HOME/upkeep/upkeep.toml` (or `~/.config/...`), `/etc/upkeep/upkeep.toml`; the
/// first that exists, else `./upkeep.toml` (so the error names a sensible file).
pub fn default_config_path() -> PathBuf {
    if let Some(p) = std::env::var_os("UPKEEP_CONFIG").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let mut candidates = vec![PathBuf::from("upkeep.toml")];
    if let Some(dir) = config_home() {
        candidates.push(dir.join("upkeep/upkeep.toml"));
    }
    candidates.push(PathBuf::from("/etc/upkeep/upkeep.toml"));
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| candidates.remove(0))
}

/// The data dir when the config does not name one: `/var/lib/upkeep` for root, else
/// `$XDG_STATE_HOME/upkeep` (or `~/.local/state/upkeep`).
pub fn default_data_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/upkeep");
    }
    if let Some(p) = std::env::var_os("XDG_STATE_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("upkeep");
    }
    home()
        .map(|h| h.join(".local/state/upkeep"))
        .unwrap_or_else(|| PathBuf::from(".upkeep"))
}

fn config_home() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".config")))
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}
