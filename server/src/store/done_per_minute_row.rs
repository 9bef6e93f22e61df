//! The `done_per_minute` meta row: the overview chart's history (units done per minute, last
//! hour), stored so that the chart survives a restart. It is rewritten in the transaction of every
//! commit that completes a unit, so it is binary like the unit rows (docs/operator.md): format
//! byte (1), number of entries, then per entry, oldest first, the minute since the Unix epoch (the
//! first in full, each later one as the gap to the previous) and the units done in it; all
//! unsigned LEB128 varints: a full hour is a couple of hundred bytes.

use super::codec::{Reader, varint};

/// The layout version in the first byte.
const FORMAT: u8 = 1;

/// Append the row for `history`, (minute, units done) pairs with distinct minutes in any order.
pub fn encode(history: &[(u64, u64)], out: &mut Vec<u8>) {
    let mut sorted = history.to_vec();
    sorted.sort_unstable();
    out.push(FORMAT);
    varint(out, sorted.len() as u64);
    let mut previous = 0;
    for (minute, done) in sorted {
        varint(out, minute - previous);
        varint(out, done);
        previous = minute;
    }
}

/// Decode a row written by [`encode`]; the error says what is wrong with it.
pub fn decode(row: &[u8]) -> Result<Vec<(u64, u64)>, String> {
    let mut r = Reader::new(row);
    let format = r.byte()?;
    if format != FORMAT {
        return Err(format!("unknown done_per_minute row format {format}"));
    }
    let n = r.varint()?;
    // Each entry takes at least 2 bytes; refuse counts the row cannot hold before allocating.
    if n > (row.len() / 2) as u64 {
        return Err(format!("entry count {n} exceeds the row"));
    }
    let mut history = Vec::with_capacity(n as usize);
    let mut minute = 0u64;
    for i in 0..n {
        let gap = r.varint()?;
        if i > 0 && gap == 0 {
            return Err("a minute appears twice".into());
        }
        minute = minute.checked_add(gap).ok_or("minute overflows 64 bits")?;
        history.push((minute, r.varint()?));
    }
    if !r.rest().is_empty() {
        return Err(format!("{} bytes after the last entry", r.rest().len()));
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(history: &[(u64, u64)]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(history, &mut out);
        out
    }

    #[test]
    fn a_full_hour_round_trips_oldest_first_in_few_bytes() {
        let now = 1_700_000_000_000 / 60_000;
        // Stored newest first (as a clock that went back could leave them), with gaps and zeros.
        let history: Vec<(u64, u64)> = (0..60)
            .rev()
            .filter(|m| m % 7 != 3)
            .map(|m| (now - m, m * 1000))
            .chain([(now - 3, 0)])
            .collect();
        let encoded = row(&history);
        assert!(encoded.len() < 200, "{} bytes", encoded.len());
        let mut sorted = history.clone();
        sorted.sort_unstable();
        assert_eq!(decode(&encoded).unwrap(), sorted);
        assert_eq!(decode(&row(&[])).unwrap(), vec![]);
        assert_eq!(decode(&row(&[(0, 1)])).unwrap(), vec![(0, 1)]);
        assert_eq!(
            decode(&row(&[(u64::MAX, u64::MAX)])).unwrap(),
            vec![(u64::MAX, u64::MAX)]
        );
    }

    #[test]
    fn truncated_padded_or_foreign_rows_are_errors() {
        let encoded = row(&[(28_000_000, 5), (28_000_001, 300), (28_000_059, 1)]);
        for len in 0..encoded.len() {
            assert!(decode(&encoded[..len]).is_err(), "prefix of {len} bytes");
        }
        let mut padded = encoded.clone();
        padded.push(0);
        assert!(decode(&padded).is_err());
        assert!(decode(b"[[28000000,5]]").is_err());
        // Two entries for one minute (gap 0).
        assert!(decode(&[FORMAT, 2, 10, 1, 0, 1]).is_err());
        // A count the row cannot hold.
        assert!(decode(&[FORMAT, 0xff, 0xff, 0xff, 0x0f]).is_err());
        // Minutes that overflow.
        let mut overflow = row(&[(u64::MAX, 1)]);
        overflow[1] = 2;
        overflow.extend([1, 1]);
        assert!(decode(&overflow).is_err());
    }
}
