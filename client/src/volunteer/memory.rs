//! How much memory one task may have on this machine: the volunteer's `--max-task-memory`, or by
//! default an even share of three quarters of the memory this process may use, so that every
//! slot can run a task at its limit and the machine still has a quarter for itself.
//!
//! The server sends a host only work whose memory limit fits; [`apps_too_big`] says which of
//! the project's apps that leaves out, so a limit no app fits is not a silent wait.

use std::collections::BTreeMap;
use std::path::Path;

use musketeer_protocol::AppList;

/// An app none of whose published versions fits this host's task memory limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppTooBig {
    /// The app's name.
    pub app: String,
    /// The smallest memory limit among its versions, bytes.
    pub needs_bytes: u64,
}

/// The apps in `apps` that no version of fits within `max_task_memory` bytes, by name, and
/// whether any app fits at all (`false` also when nothing is published yet).
pub fn apps_too_big(apps: &AppList, max_task_memory: u64) -> (Vec<AppTooBig>, bool) {
    let mut smallest: BTreeMap<&str, u64> = BTreeMap::new();
    for version in &apps.versions {
        let needs = version.limits.memory_bytes;
        smallest
            .entry(version.app.as_str())
            .and_modify(|least| *least = (*least).min(needs))
            .or_insert(needs);
    }
    let too_big: Vec<AppTooBig> = smallest
        .iter()
        .filter(|&(_, &needs)| needs > max_task_memory)
        .map(|(&app, &needs)| AppTooBig {
            app: app.to_owned(),
            needs_bytes: needs,
        })
        .collect();
    let any_fits = too_big.len() < smallest.len();
    (too_big, any_fits)
}

/// The default limit for `slots` tasks at once, if the machine's memory can be read.
pub fn default_task_memory(slots: usize) -> Option<u64> {
    let total = usable_memory(Path::new("/"))?;
    Some(total / 4 * 3 / slots.max(1) as u64)
}

/// Physical memory, or less when a cgroup (a container's `--memory`) limits this process.
/// `root` is the filesystem root the files are read under (tests use a fake one).
fn usable_memory(root: &Path) -> Option<u64> {
    let meminfo = std::fs::read_to_string(root.join("proc/meminfo")).ok()?;
    let physical = meminfo.lines().find_map(|line| {
        let kib = line.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?;
        kib.trim().parse::<u64>().ok()?.checked_mul(1024)
    })?;
    let cgroup_limits = [
        "sys/fs/cgroup/memory.max",                   // cgroup v2
        "sys/fs/cgroup/memory/memory.limit_in_bytes", // cgroup v1
    ];
    let limited = cgroup_limits
        .iter()
        .filter_map(|file| std::fs::read_to_string(root.join(file)).ok())
        // "max" (v2) or a huge number (v1) mean no limit; both leave `physical` as the minimum.
        .filter_map(|text| text.trim().parse::<u64>().ok())
        .fold(physical, u64::min);
    Some(limited)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_root(files: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        root
    }

    fn version(app: &str, version: &str, memory_mib: u64) -> musketeer_protocol::AppVersionInfo {
        musketeer_protocol::AppVersionInfo {
            app: app.into(),
            version: version.parse().unwrap(),
            key_id: "ed25519:0000000000000000".into(),
            module_sha256: "0".repeat(64),
            module_size: 1,
            http_allow: vec![],
            limits: musketeer_protocol::Limits {
                fuel: 1,
                memory_bytes: memory_mib << 20,
                wall_time_ms: 1,
                output_bytes: 1,
            },
            published_ms: 0,
            input: None,
        }
    }

    #[test]
    fn an_app_is_too_big_when_none_of_its_versions_fits() {
        let apps = AppList {
            versions: vec![
                version("big", "1.0.0", 512),
                version("big", "2.0.0", 256),
                version("small", "1.0.0", 32),
            ],
        };
        let (too_big, any_fits) = apps_too_big(&apps, 64 << 20);
        assert_eq!(
            too_big,
            vec![AppTooBig {
                app: "big".into(),
                needs_bytes: 256 << 20
            }]
        );
        assert!(any_fits);
        let (too_big, any_fits) = apps_too_big(&apps, 16 << 20);
        assert_eq!(too_big.len(), 2);
        assert!(!any_fits);
        assert_eq!(apps_too_big(&apps, 256 << 20), (vec![], true));
        assert_eq!(
            apps_too_big(&AppList { versions: vec![] }, 1),
            (vec![], false)
        );
    }

    const MEMINFO: &str = "MemTotal:        1024000 kB\nMemFree:          500000 kB\n";

    #[test]
    fn physical_memory_unless_a_cgroup_allows_less() {
        let bare = fake_root(&[("proc/meminfo", MEMINFO)]);
        assert_eq!(usable_memory(bare.path()), Some(1_048_576_000));
        let unlimited = fake_root(&[
            ("proc/meminfo", MEMINFO),
            ("sys/fs/cgroup/memory.max", "max\n"),
        ]);
        assert_eq!(usable_memory(unlimited.path()), Some(1_048_576_000));
        let container = fake_root(&[
            ("proc/meminfo", MEMINFO),
            ("sys/fs/cgroup/memory.max", "536870912\n"),
        ]);
        assert_eq!(usable_memory(container.path()), Some(536_870_912));
        let v1 = fake_root(&[
            ("proc/meminfo", MEMINFO),
            (
                "sys/fs/cgroup/memory/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
        ]);
        assert_eq!(usable_memory(v1.path()), Some(1_048_576_000));
        assert_eq!(usable_memory(fake_root(&[]).path()), None);
        assert_eq!(
            usable_memory(fake_root(&[("proc/meminfo", "garbage")]).path()),
            None
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_default_shares_three_quarters_among_the_slots() {
        let one = default_task_memory(1).expect("/proc/meminfo on Linux");
        let four = default_task_memory(4).unwrap();
        assert!(one > 64 << 20, "{one}");
        assert!(four <= one / 4 && four + 4 >= one / 4, "{four} vs {one}");
    }
}
