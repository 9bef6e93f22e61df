//! Reading a manifest file from disk: its size is checked before a byte of it is read, so a huge
//! file (or a device that never ends) costs nothing.

use std::fs::File;
use std::io::Read as _;
use std::path::Path;

use crate::error::ManifestError;
use crate::manifest::SignedManifest;

/// Reads and parses a manifest file (see [`SignedManifest::from_json`]), refusing a file larger
/// than [`SignedManifest::MAX_JSON_BYTES`] from its metadata, and never reading past that size.
pub fn read_manifest_file(path: &Path) -> Result<SignedManifest, ManifestError> {
    SignedManifest::from_json(&read_manifest_text(path)?)
}

/// The text of a manifest file, unparsed, with the same size checks as [`read_manifest_file`].
pub fn read_manifest_text(path: &Path) -> Result<String, ManifestError> {
    let read_error = |source| ManifestError::Read {
        path: path.to_owned(),
        source,
    };
    let max = SignedManifest::MAX_JSON_BYTES;
    let too_large = |size: u64| ManifestError::TooLarge {
        size: usize::try_from(size).unwrap_or(usize::MAX),
        max,
    };
    let file = File::open(path).map_err(read_error)?;
    let size = file.metadata().map_err(read_error)?.len();
    if size > max as u64 {
        return Err(too_large(size));
    }
    // The file may grow after the check, or be a pipe whose metadata says 0: `take` still holds
    // the read to one byte past the limit.
    let mut text = String::new();
    file.take(max as u64 + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() > max {
        return Err(too_large(text.len() as u64));
    }
    Ok(text)
}
