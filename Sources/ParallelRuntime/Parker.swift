import Glibc
import Synchronization

/// Why a parked thread woke up.
public enum WakeReason: Sendable, Equatable {
    /// Another thread called `unpark()` (a hand-off, a close, or an interrupt).
    case unparked
    /// The deadline passed.
    case timedOut
    /// A signal handler ran on this thread (`sem_timedwait` returned `EINTR`); the caller
    /// decides whether to keep waiting. This is how Ctrl-C reaches a blocked main thread.
    case signalled
}

/// One blocked thread's private wake-up line: a POSIX semaphore.
///
/// Each waiter parks on its own semaphore, so a hand-off wakes exactly the thread it is for
/// (no thundering herd, no polling), and a signal interrupts the wait (`sem_timedwait` is
/// never restarted after a signal handler), unlike `pthread_cond_wait`.
/// The corresponding C functions are `sem_init`, `sem_post` and `sem_timedwait`; every result
/// is checked, as swift-nio's `NIOLock` checks its pthread calls.
public final class Parker: @unchecked Sendable {
    private let semaphore: UnsafeMutablePointer<sem_t>

    public init() {
        semaphore = .allocate(capacity: 1)
        if sem_init(semaphore, 0, 0) != 0 { Parker.unexpected(errno, in: "sem_init") }
    }

    deinit {
        if sem_destroy(semaphore) != 0 { Parker.unexpected(errno, in: "sem_destroy") }
        semaphore.deallocate()
    }

    /// Wakes the parked thread, or makes its next `park` return at once.
    public func unpark() {
        guard sem_post(semaphore) != 0 else { return }
        let error = errno
        // EOVERFLOW: the count is at its maximum, so the next `park` returns at once anyway;
        // nothing is lost.
        if error != EOVERFLOW { Parker.unexpected(error, in: "sem_post") }
    }

    /// An errno the semaphore calls cannot give for a valid semaphore and time (EINVAL: the
    /// semaphore's memory is corrupt). Retrying would spin a core at 100% for ever, and
    /// returning would tell the waiter something that did not happen: stop with the reason.
    private static func unexpected(_ error: Int32, in call: String) -> Never {
        fatalError("Parker: \(call) failed with errno \(error) (\(String(cString: strerror(error))))")
    }

    /// Blocks until `unpark()`, the monotonic `deadline` (nil: none) or a signal.
    public func park(until deadline: UInt64?) -> WakeReason {
        guard let deadline else {
            if sem_wait(semaphore) == 0 { return .unparked }
            let error = errno
            if error == EINTR { return .signalled }
            Parker.unexpected(error, in: "sem_wait")
        }
        while true {
            let now = MonotonicClock.now()
            if now >= deadline {
                // A post may have raced with the deadline: take it rather than lose it.
                if sem_trywait(semaphore) == 0 { return .unparked }
                let error = errno
                if error == EAGAIN { return .timedOut }
                Parker.unexpected(error, in: "sem_trywait")
            }
            // sem_timedwait takes CLOCK_REALTIME; translate the remaining monotonic time.
            var wall = timespec()
            clock_gettime(CLOCK_REALTIME, &wall)
            let remaining = deadline - now
            var total = UInt64(wall.tv_nsec) + remaining % 1_000_000_000
            var seconds = UInt64(wall.tv_sec) + remaining / 1_000_000_000
            if total >= 1_000_000_000 {
                seconds += 1
                total -= 1_000_000_000
            }
            var absolute = timespec(tv_sec: Int(seconds), tv_nsec: Int(total))
            if sem_timedwait(semaphore, &absolute) == 0 { return .unparked }
            let error = errno
            switch error {
            case EINTR: return .signalled
            case ETIMEDOUT: continue  // re-check against the monotonic deadline
            default: Parker.unexpected(error, in: "sem_timedwait")
            }
        }
    }
}
