//! What no mapping read: every such key of a unit becomes a note, grouped by the kind of
//! setting it is (sandboxing, process limits, logging, folders, conditions...), each kind with
//! why upkeep does not carry it.

use std::collections::BTreeMap;

use super::unit::{Assignment, Unit};
use crate::import::Service;

/// Keys that change nothing upkeep does, or are read through another key.
const SILENT: &[&str] = &[
    "Description",
    "Documentation",
    "DefaultDependencies",
    "RuntimeDirectoryPreserve",
    "SourcePath",
];

/// Notes for every key of `unit` that `used` says no mapping read, grouped by kind.
pub(super) fn note(unit: &Unit, used: impl Fn(&Assignment) -> bool, svc: &mut Service) {
    let mut groups: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for a in &unit.assignments {
        if a.section == "Install" || used(a) || SILENT.contains(&a.key.as_str()) {
            continue;
        }
        let why = reason_for(&a.section, &a.key);
        let entry = groups.entry(why).or_default();
        let shown = format!("{}={}", a.key, a.value);
        if !entry.contains(&shown) {
            entry.push(shown);
        }
    }
    for (why, keys) in groups {
        svc.note(keys.join(", "), why);
    }
}

/// Why a key is not carried over, by what kind of setting it is.
fn reason_for(section: &str, key: &str) -> &'static str {
    const SANDBOX: &[&str] = &[
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "PrivateNetwork",
        "PrivateIPC",
        "PrivateUsers",
        "PrivateMounts",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectClock",
        "ProtectHostname",
        "ProtectProc",
        "ProcSubset",
        "NoNewPrivileges",
        "CapabilityBoundingSet",
        "AmbientCapabilities",
        "SystemCallFilter",
        "SystemCallArchitectures",
        "SystemCallErrorNumber",
        "SystemCallLog",
        "RestrictAddressFamilies",
        "RestrictNamespaces",
        "RestrictRealtime",
        "RestrictSUIDSGID",
        "RestrictFileSystems",
        "LockPersonality",
        "MemoryDenyWriteExecute",
        "ReadOnlyPaths",
        "ReadWritePaths",
        "InaccessiblePaths",
        "ExecPaths",
        "NoExecPaths",
        "TemporaryFileSystem",
        "BindPaths",
        "BindReadOnlyPaths",
        "RootDirectory",
        "RootImage",
        "MountAPIVFS",
        "DynamicUser",
        "RemoveIPC",
        "KeyringMode",
        "DevicePolicy",
        "DeviceAllow",
        "IPAddressAllow",
        "IPAddressDeny",
        "SecureBits",
        "SELinuxContext",
        "AppArmorProfile",
        "SmackProcessLabel",
        "NetworkNamespacePath",
    ];
    const LOGGING: &[&str] = &[
        "StandardInput",
        "StandardOutput",
        "StandardError",
        "SyslogIdentifier",
        "SyslogFacility",
        "SyslogLevel",
        "SyslogLevelPrefix",
        "LogLevelMax",
        "LogExtraFields",
        "LogRateLimitIntervalSec",
        "LogRateLimitBurst",
        "LogNamespace",
        "TTYPath",
    ];
    const DIRECTORIES: &[&str] = &[
        "StateDirectory",
        "CacheDirectory",
        "LogsDirectory",
        "ConfigurationDirectory",
        "StateDirectoryMode",
        "CacheDirectoryMode",
        "LogsDirectoryMode",
        "ConfigurationDirectoryMode",
    ];
    match key {
        k if SANDBOX.contains(&k) => {
            "sandboxing: upkeep does not sandbox services (run them under a user of their own)"
        }
        "SupplementaryGroups" => "upkeep runs a service with its user's primary group only",
        k if k.starts_with("Limit")
            || matches!(
                k,
                "UMask"
                    | "Nice"
                    | "OOMScoreAdjust"
                    | "CPUAffinity"
                    | "CPUQuota"
                    | "CPUWeight"
                    | "IOWeight"
                    | "TasksMax"
                    | "MemoryHigh"
                    | "MemoryLow"
                    | "MemorySwapMax"
            )
            || k.starts_with("IOScheduling")
            || k.starts_with("CPUScheduling") =>
        {
            "process limits and priorities: upkeep does not set them (wrap the command with prlimit or nice)"
        }
        k if LOGGING.contains(&k) => {
            "upkeep captures output itself, into <data_dir>/logs/NAME.{out,err}.log"
        }
        k if DIRECTORIES.contains(&k) => {
            "upkeep does not make or own folders for its services: create them beforehand"
        }
        k if k.starts_with("Condition") || k.starts_with("Assert") => {
            "upkeep starts the service whatever these conditions say"
        }
        "ExecStartPost" | "ExecStopPost" | "ExecCondition" => {
            "upkeep runs no commands after a start or a stop"
        }
        "Before"
        | "Conflicts"
        | "OnFailure"
        | "OnSuccess"
        | "PropagatesReloadTo"
        | "ReloadPropagatedFrom"
        | "JoinsNamespaceOf" => "relations between systemd units have no upkeep equivalent",
        "RuntimeMaxSec" | "TimeoutAbortSec" => {
            "upkeep has no run-time limit, and ends a stop with SIGKILL after stop_timeout"
        }
        "SuccessExitStatus" | "RestartPreventExitStatus" | "RestartForceExitStatus" => {
            "upkeep counts every exit but 0 as a failure"
        }
        "SendSIGKILL" | "SendSIGHUP" | "FinalKillSignal" | "RestartKillSignal" | "KillMode" => {
            "upkeep stops with stop_signal, then SIGKILL after stop_timeout"
        }
        _ if section == "Unit" || section == "Service" => "not a setting upkeep can take",
        _ => "a section upkeep does not read",
    }
}
