//! Integration tests of the public API: signing, verification, tampering and rotation.

mod fixtures;
mod manifest_file;
mod rotation;
mod round_trip;
mod tamper;
