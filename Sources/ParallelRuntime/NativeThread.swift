import Glibc

/// A joinable pthread running a Swift closure with a chosen stack size.
///
/// Worker interpreters must run on threads we own: a thread state is bound to one OS thread,
/// so Swift's cooperative pool (async/await) is not an option.
/// The corresponding C functions are `pthread_create` and `pthread_join`. As swift-nio's
/// `NIOLock` does, every pthread result is checked: a refused thread is a runtime failure
/// (`init` returns nil), anything else (an invalid attribute, joining a thread twice) is a
/// programmer error and traps.
public final class NativeThread: @unchecked Sendable {
    private var handle = pthread_t()
    private var joined = false

    /// Linux keeps at most this many bytes of a thread's name (16 with the terminating NUL).
    public static let maxNameBytes = 15

    /// Starts `body` on a new thread with `stackSize` bytes of stack.
    /// Returns nil when the system refuses a new thread.
    ///
    /// `name` (default: the one given to `naming(_:_:)` around this call, if any) becomes the
    /// OS thread name (`/proc/self/task/*/comm`, `top -H`, gdb), cut to `maxNameBytes` bytes
    /// at a character boundary. It is set before `init` returns.
    public init?(stackSize: Int, name: String? = nil, _ body: @escaping @Sendable () -> Void) {
        var attributes = pthread_attr_t()
        NativeThread.check(pthread_attr_init(&attributes), "pthread_attr_init")
        defer { NativeThread.check(pthread_attr_destroy(&attributes), "pthread_attr_destroy") }
        // EINVAL: below PTHREAD_STACK_MIN, which no caller asks for.
        NativeThread.check(pthread_attr_setstacksize(&attributes, stackSize), "pthread_attr_setstacksize")
        let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
        let rc = pthread_create(
            &handle, &attributes,
            { raw in
                let body = Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue()
                body.run()
                return nil
            }, box)
        if rc != 0 {
            Unmanaged<ThreadBody>.fromOpaque(box).release()
            return nil
        }
        if let name = name ?? NativeThread.scopedName {
            // Best effort: it fails only for a name over 15 bytes, which truncatedName rules out;
            // a thread without it keeps the name it inherited.
            if let setName = NativeThread.setName {
                _ = NativeThread.truncatedName(name).withCString { setName(handle, $0) }
            }
        }
    }

    /// Waits for the thread to end. Safe to call more than once from one thread.
    public func join() {
        guard !joined else { return }
        joined = true
        // EDEADLK (joining itself), EINVAL, ESRCH: a broken invariant, not a runtime failure.
        NativeThread.check(pthread_join(handle, nil), "pthread_join")
    }

    /// Runs `body`; every `NativeThread` that the calling thread starts inside it without a
    /// `name` of its own is named `name`. For starting threads through code that does not
    /// pass names along (nested calls restore the outer name on return).
    public static func naming<R>(_ name: String?, _ body: () throws -> R) rethrows -> R {
        let previous = pthread_getspecific(nameKey)
        let boxed = name.map { Unmanaged.passRetained(NameBox($0)).toOpaque() }
        check(pthread_setspecific(nameKey, boxed), "pthread_setspecific")
        defer {
            check(pthread_setspecific(nameKey, previous), "pthread_setspecific")
            if let boxed { Unmanaged<NameBox>.fromOpaque(boxed).release() }
        }
        return try body()
    }

    /// `name` cut to at most `maxNameBytes` UTF-8 bytes, without splitting a character;
    /// a NUL ends it (the kernel reads a C string).
    public static func truncatedName(_ name: String) -> String {
        var kept = String.UnicodeScalarView()
        var bytes = 0
        for scalar in name.unicodeScalars {
            bytes += UTF8.width(scalar)
            if scalar == "\0" || bytes > maxNameBytes { break }
            kept.append(scalar)
        }
        return String(kept)
    }

    /// The name given to the innermost `naming(_:_:)` running on this thread, if any.
    private static var scopedName: String? {
        pthread_getspecific(nameKey).map { Unmanaged<NameBox>.fromOpaque($0).takeUnretainedValue().name }
    }

    /// glibc's `pthread_setname_np`, looked up at run time: Swift's Glibc module leaves out
    /// the GNU extensions (`_GNU_SOURCE`). Nil where the C library lacks it.
    private static let setName: (@convention(c) (pthread_t, UnsafePointer<CChar>) -> Int32)? = {
        guard let symbol = dlsym(nil, "pthread_setname_np") else { return nil }  // nil: RTLD_DEFAULT
        return unsafeBitCast(symbol, to: (@convention(c) (pthread_t, UnsafePointer<CChar>) -> Int32).self)
    }()

    /// Traps unless a pthread call returned 0 (its result is the error number).
    private static func check(_ result: Int32, _ call: StaticString) {
        precondition(result == 0, "\(call) failed: \(String(cString: strerror(result)))")
    }

    /// Thread-specific slot for `naming(_:_:)` (created once, never deleted).
    private static let nameKey: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
        return key
    }()
}

private final class ThreadBody {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

private final class NameBox {
    let name: String
    init(_ name: String) { self.name = name }
}
