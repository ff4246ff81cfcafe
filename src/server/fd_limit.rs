//! The open-files limit. Each proxied stream holds two descriptors (the client's and the
//! upstream's), and most systems start processes with a soft limit of 1,024: at startup the soft
//! limit is raised to the hard one, as far as the process may.

/// Raises the soft limit to the hard limit; returns (before, now), or `None` if it cannot be read.
pub fn raise() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct passed to them.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Some((before, before));
        }
    }
    Some((before, lim.rlim_cur))
}
