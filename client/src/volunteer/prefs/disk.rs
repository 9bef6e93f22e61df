//! How much disk the data directory takes (modules, compiled code, spool).

use std::path::Path;

/// Bytes of the regular files under `dir`, symbolic links not followed; what cannot be read
/// counts as nothing.
pub fn bytes_used(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => bytes_used(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_files_in_subdirectories() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("a/b")).expect("dirs");
        std::fs::write(dir.path().join("one"), [0u8; 100]).expect("file");
        std::fs::write(dir.path().join("a/b/two"), [0u8; 1000]).expect("file");
        assert_eq!(bytes_used(dir.path()), 1100);
        assert_eq!(bytes_used(&dir.path().join("missing")), 0);
    }
}
