//! The primes kernel: a segmented sieve of Eratosthenes over odd numbers.
//!
//! Plain Rust with no dependencies, so that a native benchmark can compile the very same code
//! with `#[path = ".../tasks/primes/src/kernel.rs"] mod kernel;` and compare it with the wasm
//! build of the task.

/// The largest `to` accepted: base primes up to its square root (10^6) stay small.
pub const MAX_TO: u64 = 1_000_000_000_000;

/// Odd numbers per sieve segment: 32 KiB of flags, sized to stay in a typical L1 data cache.
const SEGMENT: usize = 32 * 1024;

/// How many primes lie in `from..=to`, and the largest of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrimeSummary {
    /// Number of primes in the range.
    pub count: u64,
    /// The largest prime in the range, if any.
    pub last: Option<u64>,
}

/// Counts the primes in `from..=to` (both inclusive). An empty range (`from > to`) has none.
///
/// # Panics
/// If `to > MAX_TO`; callers validate their input first.
pub fn count_primes(from: u64, to: u64) -> PrimeSummary {
    assert!(to <= MAX_TO, "to = {to} exceeds MAX_TO = {MAX_TO}");
    let mut summary = PrimeSummary {
        count: 0,
        last: None,
    };
    if from > to || to < 2 {
        return summary;
    }
    if from <= 2 {
        summary.count = 1;
        summary.last = Some(2);
    }
    // First odd number >= max(from, 3).
    let mut start = from.max(3) | 1;
    if start > to {
        return summary;
    }
    let base = odd_primes_up_to(isqrt(to));
    // next[k]: index, in the current segment, of the next odd multiple of base[k] to cross off.
    // Only primes whose square has been reached have one (base[..next.len()]); each carries its
    // offset over from segment to segment, so no division is needed after the first.
    let mut next: Vec<usize> = Vec::with_capacity(base.len());
    // One byte per odd number, 1 = composite: bytes (not bools) so they can be summed 8 at a time.
    let mut composite = vec![0u8; SEGMENT];
    while start <= to {
        // This segment holds start, start + 2, ..., start + 2 * (len - 1) <= to.
        let len = SEGMENT.min(((to - start) / 2 + 1) as usize);
        let end = start + 2 * (len as u64 - 1);
        let flags = &mut composite[..len];
        flags.fill(0);
        while let Some(&p) = base.get(next.len()) {
            let square = p * p;
            if square > end {
                break;
            }
            // First odd multiple of p that is >= start and >= p*p (smaller ones have a smaller
            // prime factor, or are p itself).
            let mut multiple = if square >= start {
                square
            } else {
                start.div_ceil(p) * p
            };
            if multiple % 2 == 0 {
                multiple += p;
            }
            next.push(((multiple - start) / 2) as usize);
        }
        sieve_segment(flags, &base, &mut next);
        if let Some(last) = flags.iter().rposition(|&c| c == 0) {
            summary.count += (len - count_ones(flags)) as u64;
            summary.last = Some(start + 2 * last as u64);
        }
        start = end + 2;
    }
    summary
}

/// Crosses off the multiples of each `base[k]` from `next[k]` on, and moves `next[k]` on to its
/// index in the following segment.
///
/// Kept out of line on purpose: in a small function of its own, the loop variables stay in
/// registers in the sandbox's compiler (Cranelift) too; inlined into `count_primes` (and that
/// into the task's JSON glue) they were spilled to the stack and reloaded on every store.
#[inline(never)]
fn sieve_segment(flags: &mut [u8], base: &[u64], next: &mut [usize]) {
    let len = flags.len();
    for (offset, &p) in next.iter_mut().zip(base) {
        *offset = cross_off(flags, *offset, p as usize) - len;
    }
}

/// Sets `flags[first]`, `flags[first + step]`, ... to 1 and returns the first index past the
/// end that the pattern would reach.
///
/// Written for few loop trips, since a sandbox meters fuel and checks its deadline on every loop
/// back-edge: sixteen stores per trip, then the at most fifteen that remain as blocks of 8, 4, 2
/// and 1 with no loop at all. Native code does not mind either way.
#[inline(always)]
fn cross_off(flags: &mut [u8], first: usize, step: usize) -> usize {
    // Steps are base primes, at most MAX_TO's square root (10^6). Saying so lets the compiler
    // see that `i + k * step` cannot wrap, so each block below needs one bounds check, not one
    // per store.
    assert!(step < 1 << 27, "step {step} is larger than any base prime");
    let mut i = first;
    let len = flags.len();
    while i + 15 * step < len {
        // One bounds check for the block; the sixteen stores inside need none.
        let block = &mut flags[i..=i + 15 * step];
        for k in 0..16 {
            block[k * step] = 1;
        }
        i += 16 * step;
    }
    if i + 7 * step < len {
        let block = &mut flags[i..=i + 7 * step];
        for k in 0..8 {
            block[k * step] = 1;
        }
        i += 8 * step;
    }
    if i + 3 * step < len {
        let block = &mut flags[i..=i + 3 * step];
        for k in 0..4 {
            block[k * step] = 1;
        }
        i += 4 * step;
    }
    if i + step < len {
        flags[i] = 1;
        flags[i + step] = 1;
        i += 2 * step;
    }
    if i < len {
        flags[i] = 1;
        i += step;
    }
    i
}

/// Number of 1 bytes in `flags` (every byte is 0 or 1), sixty-four bytes per step.
fn count_ones(flags: &[u8]) -> usize {
    let (blocks, rest) = flags.as_chunks::<64>();
    let mut total = 0;
    for block in blocks {
        let (words, _) = block.as_chunks::<8>();
        // Byte sums of eight words fit in a byte each (at most 8): add first, then fold once.
        let sum = words
            .iter()
            .fold(0u64, |acc, word| acc + u64::from_le_bytes(*word));
        // Multiplying by 0x0101.. adds all eight bytes into the top byte (at most 64: no carry).
        total += (sum.wrapping_mul(0x0101_0101_0101_0101) >> 56) as usize;
    }
    total + rest.iter().map(|&b| usize::from(b)).sum::<usize>()
}

/// Odd primes up to `limit` (inclusive), by a plain sieve; `limit` is at most 10^6 here.
fn odd_primes_up_to(limit: u64) -> Vec<u64> {
    let limit = limit as usize;
    let mut composite = vec![false; limit + 1];
    let mut primes = Vec::new();
    let mut n = 3;
    while n <= limit {
        if !composite[n] {
            primes.push(n as u64);
            // n * n overflows a 32-bit usize (wasm32, ARMv7) once n > 65,535; such an n has no
            // multiples left to cross off below `limit` anyway.
            if n > limit / n {
                n += 2;
                continue;
            }
            let mut m = n * n;
            while m <= limit {
                composite[m] = true;
                m += 2 * n;
            }
        }
        n += 2;
    }
    primes
}

/// Integer square root (floor), exact for every u64 (f64 gives the first guess).
fn isqrt(n: u64) -> u64 {
    let mut r = (n as f64).sqrt() as u64;
    while r.checked_mul(r).is_none_or(|sq| sq > n) {
        r -= 1;
    }
    while (r + 1).checked_mul(r + 1).is_some_and(|sq| sq <= n) {
        r += 1;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_prime(n: u64) -> bool {
        n >= 2
            && (2..)
                .take_while(|d| d * d <= n)
                .all(|d| !n.is_multiple_of(d))
    }

    fn brute(from: u64, to: u64) -> PrimeSummary {
        let primes: Vec<u64> = (from..=to).filter(|&n| is_prime(n)).collect();
        PrimeSummary {
            count: primes.len() as u64,
            last: primes.last().copied(),
        }
    }

    #[test]
    fn small_ranges() {
        assert_eq!(
            count_primes(1, 100),
            PrimeSummary {
                count: 25,
                last: Some(97)
            }
        );
        assert_eq!(
            count_primes(0, 1),
            PrimeSummary {
                count: 0,
                last: None
            }
        );
        assert_eq!(
            count_primes(2, 2),
            PrimeSummary {
                count: 1,
                last: Some(2)
            }
        );
        assert_eq!(
            count_primes(3, 3),
            PrimeSummary {
                count: 1,
                last: Some(3)
            }
        );
        assert_eq!(
            count_primes(4, 4),
            PrimeSummary {
                count: 0,
                last: None
            }
        );
        assert_eq!(
            count_primes(10, 9),
            PrimeSummary {
                count: 0,
                last: None
            }
        );
        assert_eq!(
            count_primes(24, 28),
            PrimeSummary {
                count: 0,
                last: None
            }
        );
    }

    #[test]
    fn known_prime_counts() {
        assert_eq!(
            count_primes(0, 1_000_000),
            PrimeSummary {
                count: 78_498,
                last: Some(999_983)
            }
        );
        assert_eq!(count_primes(1, 10_000_000).count, 664_579);
    }

    #[test]
    fn matches_trial_division_on_windows_across_segments() {
        // Windows straddling segment edges (2 * SEGMENT integers per segment) and square numbers.
        let seg = 2 * SEGMENT as u64;
        for (from, to) in [
            (0, 3 * seg + 17),
            (seg - 50, seg + 50),
            (999_990_000, 1_000_010_000),
            (1_018_081 - 100, 1_018_081 + 100), // 1009^2
            (MAX_TO - 500, MAX_TO),
        ] {
            assert_eq!(count_primes(from, to), brute(from, to), "{from}..={to}");
        }
    }

    /// Primes in `from..=to` by a plain (unsegmented) sieve of everything up to `to`.
    fn plain_sieve(from: u64, to: u64) -> PrimeSummary {
        let to = to as usize;
        let mut composite = vec![false; to + 1];
        let mut summary = PrimeSummary {
            count: 0,
            last: None,
        };
        for n in 2..=to {
            if composite[n] {
                continue;
            }
            if n as u64 >= from {
                summary.count += 1;
                summary.last = Some(n as u64);
            }
            for m in (n * n..=to).step_by(n) {
                composite[m] = true;
            }
        }
        summary
    }

    #[test]
    fn matches_a_plain_sieve_over_many_segments() {
        // Offsets carried from segment to segment: windows of up to 40 segments, starting at
        // odd and even numbers, below and above the squares of the base primes they need.
        let seg = 2 * SEGMENT as u64;
        for (from, to) in [
            (0, 40 * seg),
            (1, 7 * seg + 3),
            (12_345, 12_345 + 9 * seg),
            (2_000_000, 2_000_000 + 13 * seg + 1),
            (3 * seg + 1, 5 * seg - 1),
        ] {
            assert_eq!(
                count_primes(from, to),
                plain_sieve(from, to),
                "{from}..={to}"
            );
        }
        // Above SEGMENT^2 (2^30), base primes exceed a segment's length (their next multiple lies
        // segments ahead): one range must agree with itself cut in two at an unaligned point.
        let from = 3_000_000_001;
        let (cut, to) = (from + 2 * seg + 777, from + 6 * seg);
        let (whole, left, right) = (
            count_primes(from, to),
            count_primes(from, cut),
            count_primes(cut + 1, to),
        );
        assert_eq!(whole.count, left.count + right.count);
        assert_eq!(whole.last, right.last);
    }

    #[test]
    fn isqrt_is_exact() {
        for n in [0, 1, 3, 4, 15, 16, 17, MAX_TO, u64::MAX, (1 << 52) + 1] {
            let r = isqrt(n);
            assert!(
                r * r <= n && (r + 1).checked_mul(r + 1).is_none_or(|s| s > n),
                "{n}"
            );
        }
    }
}
