import Glibc

/// Nanoseconds on the monotonic clock (`clock_gettime(CLOCK_MONOTONIC)`), the one time base
/// for deadlines and step timings in the runtime.
public enum MonotonicClock {
    /// Now, in nanoseconds since an arbitrary fixed point.
    @inline(__always)
    public static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// The deadline `seconds` from now; `nil` (wait forever) for `nil` or infinite input.
    public static func deadline(afterSeconds seconds: Double?) -> UInt64? {
        guard let seconds, seconds.isFinite else { return nil }
        if seconds <= 0 { return now() }
        let ns = min(seconds * 1e9, Double(UInt64.max / 4))
        return now() &+ UInt64(ns)
    }
}
