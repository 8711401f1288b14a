import Synchronization

/// A value that one side replaces now and then and other threads check often: the check
/// (`version`) is one atomic load, and only a reader that finds a new version takes the lock.
///
/// A pool's copy of the caller's `sys.path` is one: the caller replaces it when its `sys.path`
/// changed since its last submit, and each worker, before its next task, compares the version
/// with the one its interpreter follows and reads the value only when they differ.
public final class Versioned<Value: Sendable>: Sendable {
    private struct State: @unchecked Sendable {
        var version = 0
        var value: Value
    }

    private let state: Mutex<State>
    /// `state.version`, published after the value is in place.
    private let published = Atomic<Int>(0)

    /// Starts at version 0 with `value`.
    public init(_ value: Value) {
        state = Mutex(State(value: value))
    }

    /// The current version, without the lock: it grows by one with each `set`.
    public var version: Int { published.load(ordering: .acquiring) }

    /// Replaces the value; returns its version.
    @discardableResult
    public func set(_ value: Value) -> Int {
        state.withLock { state in
            state.version += 1
            state.value = value
            published.store(state.version, ordering: .releasing)
            return state.version
        }
    }

    /// The value and its version, read together.
    public func read() -> (version: Int, value: Value) {
        state.withLock { ($0.version, $0.value) }
    }
}
