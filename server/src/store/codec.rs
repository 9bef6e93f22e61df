//! The primitives of the store's binary rows: unsigned LEB128 varints and length-prefixed byte
//! strings, and a reader that says what is wrong with a row instead of panicking.

/// Append `value` as an unsigned LEB128 varint.
pub(super) fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Append a varint length and the bytes.
pub(super) fn bytes(out: &mut Vec<u8>, data: &[u8]) {
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// Reads a row front to back; every error is a description of the problem.
pub(super) struct Reader<'a> {
    row: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Start at the first byte of `row`.
    pub(super) fn new(row: &'a [u8]) -> Self {
        Reader { row, pos: 0 }
    }

    /// The bytes not read yet.
    pub(super) fn rest(&self) -> &'a [u8] {
        &self.row[self.pos..]
    }

    pub(super) fn byte(&mut self) -> Result<u8, String> {
        let b = *self.row.get(self.pos).ok_or("row ends early")?;
        self.pos += 1;
        Ok(b)
    }

    pub(super) fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 64 bits".into())
    }

    pub(super) fn u32(&mut self) -> Result<u32, String> {
        let v = self.varint()?;
        u32::try_from(v).map_err(|_| format!("{v} does not fit in 32 bits"))
    }

    pub(super) fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = self.varint()?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| self.pos.checked_add(len))
            .filter(|&end| end <= self.row.len())
            .ok_or("byte string runs past the row")?;
        let data = &self.row[self.pos..end];
        self.pos = end;
        Ok(data)
    }

    pub(super) fn string(&mut self) -> Result<String, String> {
        let data = self.bytes()?;
        String::from_utf8(data.to_vec()).map_err(|_| "text is not UTF-8".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip(value in any::<u64>()) {
            let mut out = Vec::new();
            varint(&mut out, value);
            let mut r = Reader::new(&out);
            prop_assert_eq!(r.varint().unwrap(), value);
            prop_assert!(r.rest().is_empty());
        }
    }
}
