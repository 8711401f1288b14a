import Synchronization

/// Where a task is in its life. The same names appear in the Python layer.
public enum TaskPhase: UInt8, Sendable {
    /// Queued, not yet taken by a worker.
    case pending = 0
    /// A worker is running it.
    case running = 1
    /// A worker is running it and an interrupt was requested.
    case interrupting = 2
    /// Cancelled before a worker took it; workers skip it.
    case cancelled = 3
    /// The worker finished with it (a result, an error, or the interruption).
    case finished = 4
}

/// A task's phase, changed only by compare-and-swap so that a cancel and a worker taking the
/// task can race safely: exactly one of them wins.
public final class TaskLifecycle: Sendable {
    private let phase = Atomic<UInt8>(TaskPhase.pending.rawValue)

    public init() {}

    public var current: TaskPhase { TaskPhase(rawValue: phase.load(ordering: .acquiring))! }

    /// Worker side: pending -> running. False when the task was cancelled first.
    public func start() -> Bool { move(from: .pending, to: .running) }

    /// Caller side: pending -> cancelled. False when a worker took it first.
    public func cancelPending() -> Bool { move(from: .pending, to: .cancelled) }

    /// Caller side: running -> interrupting. True exactly once, for the caller that must now
    /// interrupt the worker.
    public func requestInterrupt() -> Bool { move(from: .running, to: .interrupting) }

    /// Worker side: the task is over, whatever happened. Returns whether an interrupt had been
    /// requested while it ran.
    @discardableResult
    public func finish() -> Bool {
        let old = phase.exchange(TaskPhase.finished.rawValue, ordering: .acquiringAndReleasing)
        return old == TaskPhase.interrupting.rawValue
    }

    private func move(from old: TaskPhase, to new: TaskPhase) -> Bool {
        phase.compareExchange(
            expected: old.rawValue, desired: new.rawValue, ordering: .acquiringAndReleasing
        ).exchanged
    }
}
