import Synchronization

/// A one-way gate: threads wait until it opens, or until their deadline passes.
///
/// A pool's first worker opens it once its interpreter is ready, so that the other workers
/// create their interpreters while the first task already runs, instead of all at once
/// beside it (concurrent creations slow each other down, and the first result waits for
/// the first of them). The deadline keeps a first worker that never gets ready (an
/// initializer that waits for the others) from holding the rest back for good.
public final class StartGate: Sendable {
    private struct State: @unchecked Sendable {
        var open = false
        var waiters: [Parker] = []
    }

    private let state = Mutex(State())

    public init() {}

    public var isOpen: Bool { state.withLock { $0.open } }

    /// Opens the gate and wakes every waiter; later calls do nothing.
    public func open() {
        let waiters = state.withLock { state -> [Parker] in
            if state.open { return [] }
            state.open = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for parker in waiters { parker.unpark() }
    }

    /// Blocks until the gate is open or the monotonic `deadline` passes (nil: no deadline).
    /// Returns true if the gate opened.
    @discardableResult
    public func wait(until deadline: UInt64?) -> Bool {
        // A parker of its own: a wake-up meant for this wait cannot reach a later one.
        let parker = Parker()
        let registered = state.withLock { state -> Bool in
            if state.open { return false }
            state.waiters.append(parker)
            return true
        }
        if !registered { return true }
        while true {
            if parker.park(until: deadline) == .timedOut {
                return state.withLock { state -> Bool in
                    state.waiters.removeAll { $0 === parker }
                    return state.open
                }
            }
            if isOpen { return true }  // else a signal woke it: wait on
        }
    }
}
