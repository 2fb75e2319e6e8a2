//! Random bytes from the kernel, for keys, nonces, unique identifiers and request cookies.
//!
//! `unsafe`: one `getrandom(2)` call into a live slice.

/// Fills `buf` with random bytes from the kernel (`getrandom(2)`; it blocks only before the
/// kernel's pool is first seeded at boot).
///
/// # Panics
/// If the kernel refuses (every kernel this runs on has `getrandom`): keys and nonces must never
/// come from a weaker source.
pub fn fill(buf: &mut [u8]) {
    let mut at = 0;
    while at < buf.len() {
        // SAFETY: writes at most `buf.len() - at` bytes into the live slice from `at`.
        let n = unsafe { libc::getrandom(buf[at..].as_mut_ptr().cast(), buf.len() - at, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            assert!(
                e.kind() == std::io::ErrorKind::Interrupted,
                "getrandom: {e}"
            );
            continue;
        }
        at += n as usize;
    }
}

/// `N` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    fill(&mut b);
    b
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_draws_differ_and_fill_everything() {
        let (a, b) = (super::bytes::<32>(), super::bytes::<32>());
        assert_ne!(a, b);
        let mut big = vec![0u8; 100_000];
        super::fill(&mut big);
        // 100,000 random bytes with no zero run of 64: a fill that stopped short would leave one.
        assert!(!big.windows(64).any(|w| w.iter().all(|&x| x == 0)));
    }
}
