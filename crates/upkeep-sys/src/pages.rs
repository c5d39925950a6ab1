//! Start-up code out of the page tables.
//!
//! Reading the config, migrating the database, parsing the command line and starting every
//! service run code that an idle daemon never runs again, and the kernel maps code in 64 KiB
//! runs around each page touched (fault-around), so start-up leaves most of the binary's
//! text resident: about 7 MiB of a 15 MiB binary. [`drop_startup_pages`] unmaps the clean,
//! read-only file pages of this process (its code and constants, and those of the libraries
//! it links) once start-up is over. They stay in the page cache; what the daemon runs from
//! then on comes back at the cost of a minor fault, and nothing else does.
//!
//! Only mappings that are read-only, private, backed by a file and hold no anonymous (copied
//! on write) page are touched: for those, `MADV_DONTNEED` cannot lose data, as every page is
//! the page cache's copy of the file. The relocated read-only data (RELRO) holds anonymous pages and
//! is left alone.

use std::io;

/// One mapping line of /proc/self/smaps and the fields we need.
#[derive(Debug, Default)]
struct Mapping {
    start: usize,
    end: usize,
    perms: String,
    path: String,
    rss_kib: u64,
    /// Pages copied on write: this process's own, lost if unmapped. (Dirty pages of the
    /// file itself, a binary just built, live on in the page cache and are not counted.)
    anonymous_kib: u64,
}

impl Mapping {
    fn droppable(&self) -> bool {
        matches!(self.perms.as_str(), "r-xp" | "r--p")
            && self.path.starts_with('/')
            && self.anonymous_kib == 0
            && self.rss_kib > 0
    }
}

fn parse_smaps(text: &str) -> Vec<Mapping> {
    let mut maps: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        let Some(first) = words.next() else { continue };
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            let perms = words.next().unwrap_or_default().to_owned();
            // offset, device, inode, then the path (which may hold spaces).
            let path = words.skip(3).collect::<Vec<_>>().join(" ");
            maps.push(Mapping {
                start,
                end,
                perms,
                path,
                ..Default::default()
            });
            continue;
        }
        let Some(m) = maps.last_mut() else { continue };
        let kib = || {
            words
                .clone()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        match first {
            "Rss:" => m.rss_kib = kib(),
            "Anonymous:" => m.anonymous_kib = kib(),
            _ => {}
        }
    }
    maps
}

/// Unmaps this process's clean read-only file pages (see the module docs). Returns how many
/// bytes were resident in them. Call it when start-up is over; calling it again is harmless.
pub fn drop_startup_pages() -> io::Result<u64> {
    let text = std::fs::read_to_string("/proc/self/smaps")?;
    let mut dropped = 0;
    for m in parse_smaps(&text).iter().filter(|m| m.droppable()) {
        // SAFETY: the range is a whole mapping of this process that is read-only and holds
        // only pages identical to its file (no anonymous page): discarding them loses nothing,
        // and the next access maps the file's page again.
        let rc = unsafe {
            libc::madvise(
                m.start as *mut libc::c_void,
                m.end - m.start,
                libc::MADV_DONTNEED,
            )
        };
        if rc == 0 {
            dropped += m.rss_kib * 1024;
        }
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clean_read_only_file_mappings_are_dropped() {
        let smaps = "\
55d0c0000000-55d0c0200000 r--p 00000000 08:01 123 /usr/bin/upkeep
Rss:                1384 kB
Anonymous:             0 kB
Private_Dirty:         0 kB
55d0c0200000-55d0c0400000 r-xp 00200000 08:01 123 /usr/bin/upkeep
Rss:                5708 kB
Anonymous:             0 kB
55d0c0400000-55d0c0480000 r--p 00400000 08:01 123 /usr/bin/upkeep
Rss:                 516 kB
Anonymous:           516 kB
Private_Dirty:       516 kB
55d0c0480000-55d0c0490000 rw-p 00480000 08:01 123 /usr/bin/upkeep
Rss:                  32 kB
7f0000000000-7f0000008000 rw-s 00000000 08:01 9 /data/upkeep.db-shm
Rss:                  32 kB
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]
Rss:                   4 kB
";
        let maps = parse_smaps(smaps);
        assert_eq!(maps.len(), 6);
        let dropped: Vec<_> = maps.iter().filter(|m| m.droppable()).collect();
        assert_eq!(dropped.len(), 2);
        assert_eq!(dropped[1].perms, "r-xp");
        assert_eq!(dropped[1].end - dropped[1].start, 0x200000);
    }

    #[test]
    fn dropping_lowers_resident_size_and_the_code_still_runs() {
        let resident = || {
            let text = std::fs::read_to_string("/proc/self/smaps").unwrap();
            parse_smaps(&text)
                .iter()
                .filter(|m| m.droppable())
                .map(|m| m.rss_kib * 1024)
                .sum::<u64>()
        };
        let dropped = drop_startup_pages().unwrap();
        assert!(dropped > 0);
        // The code still runs (what it needs faults back in), and a second call is harmless;
        // far from everything comes back.
        drop_startup_pages().unwrap();
        let after = resident();
        assert!(after < dropped, "{after} of {dropped} bytes came back");
    }
}
