//! The length-prefixed byte encoding signed by manifests and rotation statements.
//!
//! Integers are 8-byte big-endian; byte strings are their length (as such an integer) followed by
//! the bytes. Every message starts with a domain string so that a signature made for one kind of
//! message can never verify as another.

use base64::Engine as _;
use ed25519_dalek::Signature;

/// Builds a canonical message field by field.
pub(crate) struct Encoder(Vec<u8>);

impl Encoder {
    /// Starts a message with its domain-separation string.
    pub(crate) fn new(domain: &str) -> Encoder {
        let mut encoder = Encoder(Vec::with_capacity(256));
        encoder.bytes(domain.as_bytes());
        encoder
    }

    pub(crate) fn u64(&mut self, value: u64) -> &mut Encoder {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn bytes(&mut self, value: &[u8]) -> &mut Encoder {
        // usize -> u64 never truncates on supported targets (at most 64-bit).
        self.u64(value.len() as u64);
        self.0.extend_from_slice(value);
        self
    }

    pub(crate) fn str(&mut self, value: &str) -> &mut Encoder {
        self.bytes(value.as_bytes())
    }

    pub(crate) fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

/// Encodes a signature in the text form used in manifests and statements.
pub(crate) fn signature_to_text(signature: &Signature) -> String {
    base64::engine::general_purpose::STANDARD.encode(signature.to_bytes())
}

/// Decodes a signature from base64 of exactly 64 bytes; `None` if malformed.
pub(crate) fn signature_from_text(text: &str) -> Option<Signature> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    let bytes: [u8; 64] = bytes.try_into().ok()?;
    Some(Signature::from_bytes(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_length_prefixed_after_the_domain() {
        let bytes = Encoder::new("d").str("ab").u64(258).finish();
        assert_eq!(
            bytes,
            [
                0, 0, 0, 0, 0, 0, 0, 1, b'd', //
                0, 0, 0, 0, 0, 0, 0, 2, b'a', b'b', //
                0, 0, 0, 0, 0, 0, 1, 2,
            ]
        );
    }

    #[test]
    fn signature_text_requires_exactly_64_bytes() {
        let signature = Signature::from_bytes(&[7; 64]);
        let text = signature_to_text(&signature);
        assert_eq!(signature_from_text(&text), Some(signature));
        let short = base64::engine::general_purpose::STANDARD.encode([7; 63]);
        assert_eq!(signature_from_text(&short), None);
        assert_eq!(signature_from_text("not base64!"), None);
        assert_eq!(signature_from_text(""), None);
    }
}
