//! Manifest files: size checked before reading; the parser never panics on any text.

use std::io::Write as _;

use musketeer_signing_keys::{ManifestError, SignedManifest, read_manifest_file};
use proptest::prelude::*;

use crate::fixtures::signed;

/// The process's peak resident memory, bytes (Linux).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[test]
fn an_oversized_manifest_file_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.json");
    // Sparse: 300 MiB on paper, nothing on disk.
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(300 << 20).unwrap();
    let before = peak_rss();
    let error = read_manifest_file(&path).unwrap_err();
    assert!(
        matches!(error, ManifestError::TooLarge { size, max } if size == 300 << 20 && max == SignedManifest::MAX_JSON_BYTES),
        "{error}"
    );
    assert!(error.to_string().contains("too large"), "{error}");
    if let (Some(before), Some(after)) = (before, peak_rss()) {
        // Reading it whole would have raised the peak by 300 MiB.
        assert!(after < before + (64 << 20), "peak RSS {before} -> {after}");
    }
}

#[test]
fn a_manifest_file_is_read_back_and_bad_files_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let (_, manifest, _) = signed();
    let good = dir.path().join("good.json");
    std::fs::write(&good, manifest.to_json()).unwrap();
    assert_eq!(read_manifest_file(&good).unwrap(), manifest);

    let missing = dir.path().join("missing.json");
    let error = read_manifest_file(&missing).unwrap_err();
    assert!(matches!(error, ManifestError::Read { .. }), "{error}");
    assert!(error.to_string().contains("missing.json"), "{error}");

    let binary = dir.path().join("binary.json");
    std::fs::File::create(&binary)
        .unwrap()
        .write_all(&[0xff, 0xfe, 0x00])
        .unwrap();
    assert!(matches!(
        read_manifest_file(&binary),
        Err(ManifestError::Read { .. })
    ));

    // Just over the limit is refused by size, just as the text parser would.
    let over = dir.path().join("over.json");
    std::fs::write(&over, vec![b' '; SignedManifest::MAX_JSON_BYTES + 1]).unwrap();
    assert!(matches!(
        read_manifest_file(&over),
        Err(ManifestError::TooLarge { .. })
    ));
}

proptest! {

    /// Any text at all: an error or a manifest, never a panic.
    #[test]
    fn the_parser_never_panics_on_arbitrary_text(text in ".{0,400}") {
        let _ = SignedManifest::from_json(&text);
    }

    /// A real manifest with one byte changed, cut short or with bytes spliced in: an error or a
    /// manifest that serializes back to valid JSON, never a panic.
    #[test]
    fn the_parser_never_panics_on_a_mangled_manifest(
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<bool>(),
        splice in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let (_, manifest, _) = signed();
        let mut bytes = manifest.to_json().into_bytes();
        let at = at.index(bytes.len());
        if cut {
            bytes.truncate(at);
        } else {
            bytes[at] = byte;
        }
        bytes.splice(at.min(bytes.len())..at.min(bytes.len()), splice);
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(parsed) = SignedManifest::from_json(&text) {
            prop_assert!(SignedManifest::from_json(&parsed.to_json()).is_ok());
        }
    }

    /// Deeply nested or huge JSON in a field: refused with an error.
    #[test]
    fn nesting_in_any_field_is_an_error(depth in 1usize..400) {
        let (_, manifest, _) = signed();
        let nested = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let text = manifest.to_json().replacen("\"stock-day\"", &nested, 1);
        prop_assert!(SignedManifest::from_json(&text).is_err());
    }
}
