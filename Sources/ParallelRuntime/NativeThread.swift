import Glibc

/// A joinable pthread running a Swift closure with a chosen stack size.
///
/// Worker interpreters must run on threads we own: a thread state is bound to one OS thread,
/// so Swift's cooperative pool (async/await) is not an option.
/// The corresponding C functions are `pthread_create` and `pthread_join`.
public final class NativeThread: @unchecked Sendable {
    private var handle = pthread_t()
    private var joined = false

    /// Starts `body` on a new thread with `stackSize` bytes of stack.
    /// Returns nil when the system refuses a new thread.
    public init?(stackSize: Int, _ body: @escaping @Sendable () -> Void) {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, stackSize)
        let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
        let rc = pthread_create(&handle, &attributes, { raw in
            let body = Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue()
            body.run()
            return nil
        }, box)
        if rc != 0 {
            Unmanaged<ThreadBody>.fromOpaque(box).release()
            return nil
        }
    }

    /// Waits for the thread to end. Safe to call more than once from one thread.
    public func join() {
        guard !joined else { return }
        joined = true
        pthread_join(handle, nil)
    }
}

private final class ThreadBody {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}
