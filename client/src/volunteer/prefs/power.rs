//! Whether the machine runs on battery, from Linux's power-supply class
//! (`/sys/class/power_supply/*/{type,online}`).

use std::path::Path;

/// True when `dir` lists at least one mains supply (`type` is `Mains`) and none of them is
/// online. A machine without a mains entry (a desktop, a server, a container) is never on
/// battery, and neither is one whose supplies cannot be read.
pub fn on_battery(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut mains = 0;
    for entry in entries.flatten() {
        let supply = entry.path();
        let kind = std::fs::read_to_string(supply.join("type")).unwrap_or_default();
        if kind.trim() != "Mains" {
            continue;
        }
        mains += 1;
        let online = std::fs::read_to_string(supply.join("online")).unwrap_or_default();
        if online.trim() == "1" {
            return false;
        }
    }
    mains > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supply(dir: &Path, name: &str, kind: &str, online: Option<&str>) {
        let path = dir.join(name);
        std::fs::create_dir_all(&path).expect("supply dir");
        std::fs::write(path.join("type"), format!("{kind}\n")).expect("type");
        if let Some(online) = online {
            std::fs::write(path.join("online"), format!("{online}\n")).expect("online");
        }
    }

    #[test]
    fn on_battery_only_when_every_mains_supply_is_offline() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(!on_battery(dir.path()), "no supplies: a desktop");
        assert!(!on_battery(&dir.path().join("missing")));
        supply(dir.path(), "BAT0", "Battery", None);
        assert!(!on_battery(dir.path()), "a battery alone says nothing");
        supply(dir.path(), "AC", "Mains", Some("1"));
        assert!(!on_battery(dir.path()));
        supply(dir.path(), "AC", "Mains", Some("0"));
        assert!(on_battery(dir.path()));
        supply(dir.path(), "USB-C", "Mains", Some("1"));
        assert!(!on_battery(dir.path()), "one mains supply online is enough");
    }
}
