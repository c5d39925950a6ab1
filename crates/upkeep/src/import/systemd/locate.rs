//! Finding a unit: by path, or by name where systemd looks for system units ([`SEARCH`], the
//! first wins; an alias symlink leads to its unit, under its unit's name; an instance falls
//! back to its template), with its drop-ins (`NAME.service.d/*.conf`, and the template's); and
//! the host's facts that specifiers name (`%H`, `%m`, `%v`...).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::super::ImportError;
use super::unit::Unit;

/// Where system units are, highest priority first (systemd.unit(5)).
const SEARCH: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];

/// A unit file and its name (`getty@tty1.service`, whose file may be `getty@.service`).
#[derive(Debug)]
pub(super) struct Found {
    pub name: String,
    pub path: PathBuf,
}

fn not_found(message: String) -> ImportError {
    ImportError::Invalid(message)
}

/// Finds the unit `arg` names: a path, or a name looked up in [`SEARCH`].
pub(super) fn locate(arg: &str) -> Result<Found, ImportError> {
    if arg.contains('/') {
        let path = std::path::absolute(arg).unwrap_or_else(|_| arg.into());
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        check_type(&name)?;
        check_instance(&name)?;
        return Ok(Found { name, path });
    }
    let name = if arg.contains('.') {
        arg.to_owned()
    } else {
        format!("{arg}.service")
    };
    check_type(&name)?;
    check_instance(&name)?;
    let template = name
        .split_once('@')
        .filter(|(_, rest)| !rest.starts_with('.'))
        .map(|(prefix, _)| format!("{prefix}@.service"));
    for file in std::iter::once(&name).chain(template.as_ref()) {
        if let Some(path) = SEARCH
            .iter()
            .map(|d| Path::new(d).join(file))
            .find(|p| p.exists())
        {
            return resolve_alias(&name, file, path);
        }
    }
    Err(not_found(format!(
        "no unit {name} in {} (name a unit file by its path instead)",
        SEARCH.join(", ")
    )))
}

/// An alias (`sshd.service` → `ssh.service`) is its target, under the target's name; a link
/// to /dev/null is a masked unit.
fn resolve_alias(name: &str, file: &str, path: PathBuf) -> Result<Found, ImportError> {
    let real = std::fs::canonicalize(&path).map_err(|source| ImportError::Read {
        path: path.clone(),
        source,
    })?;
    if real == Path::new("/dev/null") {
        return Err(not_found(format!(
            "{name} is masked ({} links to /dev/null)",
            path.display()
        )));
    }
    let real_file = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Only a unit's own file renames it; an instance keeps its name on its template.
    let name = if real_file != file && file == name {
        real_file
    } else {
        name.to_owned()
    };
    Ok(Found { name, path: real })
}

fn check_type(name: &str) -> Result<(), ImportError> {
    if name.ends_with(".service") {
        return Ok(());
    }
    Err(not_found(format!(
        "{name} is not a .service unit: upkeep imports services (a .socket or .timer unit starts one; import that service)"
    )))
}

/// A template (`e2scrub@.service`) is no service until an instance names what `%i` is:
/// systemd refuses to start one too.
fn check_instance(name: &str) -> Result<(), ImportError> {
    let Some(prefix) = name.strip_suffix("@.service") else {
        return Ok(());
    };
    Err(not_found(format!(
        "{name} is a template: name an instance, e.g. `upkeep import systemd {prefix}@sda1` (what follows @ is %i)"
    )))
}

/// Reads the unit file, then its drop-ins, sorted by file name (one in a higher-priority
/// folder hides one of the same name lower down). Their bad lines go to `problems`; a file
/// that cannot be read is the error.
pub(super) fn load(found: &Found, problems: &mut Vec<ImportError>) -> Result<Unit, ImportError> {
    let mut unit = Unit::default();
    add_file(&mut unit, &found.path, problems)?;
    let mut dirs = vec![format!("{}.d", found.name)];
    if let Some((prefix, _)) = found.name.split_once('@') {
        dirs.insert(0, format!("{prefix}@.service.d"));
    }
    let mut drop_ins: BTreeMap<String, PathBuf> = BTreeMap::new();
    for base in SEARCH.iter().rev() {
        for d in &dirs {
            let Ok(entries) = std::fs::read_dir(Path::new(base).join(d)) else {
                continue;
            };
            for e in entries.flatten() {
                let file = e.file_name().to_string_lossy().into_owned();
                if file.ends_with(".conf") {
                    drop_ins.insert(file, e.path());
                }
            }
        }
    }
    for path in drop_ins.values() {
        add_file(&mut unit, path, problems)?;
    }
    Ok(unit)
}

fn add_file(
    unit: &mut Unit,
    path: &Path,
    problems: &mut Vec<ImportError>,
) -> Result<(), ImportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: path.to_owned(),
        source,
    })?;
    if let Err(errors) = unit.add(path, &text) {
        problems.extend(errors.into_iter().map(|e| ImportError::Syntax {
            path: e.file,
            line: e.line,
            message: e.message,
        }));
    }
    Ok(())
}

/// The host's specifier values: `%H`, `%l`, `%m`, `%b`, `%v`, `%a` and os-release's.
pub(super) fn host_facts() -> Vec<(char, String)> {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    let mut facts = Vec::new();
    if let Ok(h) = nix::unistd::gethostname() {
        let h = h.to_string_lossy().into_owned();
        facts.push(('l', h.split('.').next().unwrap_or_default().to_owned()));
        facts.push(('H', h));
    }
    for (c, path) in [
        ('m', "/etc/machine-id"),
        ('v', "/proc/sys/kernel/osrelease"),
    ] {
        facts.extend(read(path).map(|v| (c, v)));
    }
    facts.extend(read("/proc/sys/kernel/random/boot_id").map(|b| ('b', b.replace('-', ""))));
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x86-64",
        "aarch64" => "arm64",
        other => other,
    };
    facts.push(('a', arch.to_owned()));
    let os = read("/etc/os-release").unwrap_or_default();
    for (c, key) in [
        ('o', "ID"),
        ('w', "VERSION_ID"),
        ('W', "VARIANT_ID"),
        ('B', "BUILD_ID"),
        ('M', "IMAGE_ID"),
        ('A', "IMAGE_VERSION"),
    ] {
        let value = os
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='));
        if let Some(v) = value {
            facts.push((c, v.trim_matches(['"', '\'']).to_owned()));
        }
    }
    facts
}
