//! CPU priority of the work: like BOINC, a volunteer's tasks run only when nothing else on the
//! machine wants the CPU, so lending it costs the volunteer no responsiveness.

/// The lowest priority (`nice 19`), the default of `musketeer join`.
pub const LOWEST: u8 = 19;

/// Raises the calling thread's nice value to at least `nice` (0-19; never lowers it, which would
/// need privileges) and returns the value now in effect.
///
/// On Linux a nice value belongs to a thread and is inherited by the threads it creates: call
/// this before the async runtime starts its workers, so that they (and the tasks they run) all
/// get it.
#[cfg(unix)]
pub fn lower_cpu_priority(nice: u8) -> std::io::Result<i32> {
    let current = current_nice()?;
    let wanted = i32::from(nice.min(LOWEST)).max(current);
    if wanted != current {
        // SAFETY: plain system call on the calling thread; no memory is passed.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, wanted) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    current_nice()
}

/// Not supported off Unix: the priority is left as it is.
#[cfg(not(unix))]
pub fn lower_cpu_priority(_nice: u8) -> std::io::Result<i32> {
    Ok(0)
}

/// The calling thread's nice value.
#[cfg(unix)]
pub fn current_nice() -> std::io::Result<i32> {
    // getpriority can return -1 legitimately: errno tells an error from the value.
    // SAFETY: errno is thread-local; resetting it is what the man page prescribes.
    unsafe { *errno_location() = 0 };
    // SAFETY: plain system call; no memory is passed.
    let value = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if value == -1 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error().is_some_and(|code| code != 0) {
            return Err(error);
        }
    }
    Ok(value)
}

#[cfg(all(unix, any(target_os = "linux", target_os = "android")))]
unsafe fn errno_location() -> *mut libc::c_int {
    // SAFETY: always valid for the calling thread.
    unsafe { libc::__errno_location() }
}

#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
unsafe fn errno_location() -> *mut libc::c_int {
    // SAFETY: always valid for the calling thread.
    unsafe { libc::__error() }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_thread_and_the_threads_it_starts_run_at_the_asked_priority() {
        // In a thread of its own: the test harness's threads keep their priority.
        std::thread::spawn(|| {
            let before = current_nice().unwrap();
            assert!(before < 10, "the test already runs at nice {before}");
            assert_eq!(lower_cpu_priority(10).unwrap(), 10);
            let child = std::thread::spawn(|| current_nice().unwrap());
            assert_eq!(child.join().unwrap(), 10, "a new thread inherits it");
            // Asking for less than is in effect changes nothing (and needs no privilege).
            assert_eq!(lower_cpu_priority(5).unwrap(), 10);
            assert_eq!(lower_cpu_priority(LOWEST).unwrap(), 19);
            assert_eq!(
                lower_cpu_priority(200).unwrap(),
                19,
                "clamped to the lowest"
            );
        })
        .join()
        .unwrap();
    }
}
