//! CPU time of processes, read from Linux's /proc (user + system time, all threads).

use std::collections::HashMap;
use std::process::Command;

/// Clock ticks per second of /proc's time fields (`getconf CLK_TCK`; 100 on Linux nearly always).
pub fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The fields of `/proc/<pid>/stat` this bench reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcStat {
    pub parent: u32,
    /// utime + stime of the process itself (every thread), in clock ticks.
    pub own_ticks: u64,
    /// cutime + cstime: the CPU of children it has waited for, in clock ticks.
    pub waited_children_ticks: u64,
}

/// Parses one `/proc/<pid>/stat` line. The command name (field 2) may hold spaces and
/// parentheses, so the fields are counted from its last `)`.
pub fn parse_stat(line: &str) -> Option<ProcStat> {
    let after_name = &line[line.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state (field 3) is index 0, so field k is index k - 3.
    let field = |k: usize| -> Option<u64> { fields.get(k - 3)?.parse().ok() };
    Some(ProcStat {
        parent: u32::try_from(field(4)?).ok()?,
        own_ticks: field(14)? + field(15)?,
        waited_children_ticks: field(16)? + field(17)?,
    })
}

/// The stat of one process, or None once it is gone.
pub fn stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU of this process's waited-for children so far (the CLI commands the bench ran), in ticks.
pub fn waited_children_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|line| parse_stat(&line))
        .map_or(0, |stat| stat.waited_children_ticks)
}

/// CPU of the given processes so far, in ticks (a process already gone counts 0).
pub fn ticks_of(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|&pid| stat(pid))
        .map(|s| s.own_ticks)
        .sum()
}

/// Every live descendant of `ancestor` (children, grandchildren, ...), not `ancestor` itself.
pub fn descendants(ancestor: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: HashMap<u32, u32> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?.parent)))
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![ancestor];
    while let Some(parent) = frontier.pop() {
        for (&pid, &pid_parent) in &parents {
            if pid_parent == parent {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

/// The command line of a process, its arguments joined by spaces ("" once it is gone).
pub fn command_line(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{ProcStat, parse_stat};

    #[test]
    fn stat_line_with_parentheses_and_spaces_in_the_name() {
        // In /proc's layout, with a process name holding ") (" and spaces.
        let line = "4242 (celery) (pool 1) S 4240 4240 17 0 -1 4194560 2213 0 0 0 \
                    151 37 9 4 20 0 1 0 12345 49999872 6071 18446744073709551615 1 1 0 0 0 0 0 \
                    16781312 16386 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                parent: 4240,
                own_ticks: 151 + 37,
                waited_children_ticks: 9 + 4,
            })
        );
    }

    #[test]
    fn truncated_stat_line_is_none() {
        assert_eq!(parse_stat("4242 (celery) S 4240 4240"), None);
        assert_eq!(parse_stat("no name here"), None);
    }
}
