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
///
/// Beside the phase it records who settles the task's outcome (its Python future): a caller
/// that stops the task with `claim: true` (a cancel, an expired `task_timeout`), or else the
/// completion thread when it delivers the task's event (`claimOutcome`). Phase and claim live
/// in one atomic word, so that a cancel that wins the phase also wins the outcome, and the
/// completion thread, which claims only after the worker finished, finds it taken.
public final class TaskLifecycle: Sendable {
    /// The phase in the low bits, `claimedBit` on top.
    private let word = Atomic<UInt8>(TaskPhase.pending.rawValue)
    private static let claimedBit: UInt8 = 0x80

    public init() {}

    public var current: TaskPhase { TaskPhase(rawValue: word.load(ordering: .acquiring) & ~Self.claimedBit)! }

    /// Whether someone has claimed the outcome.
    public var isClaimed: Bool { word.load(ordering: .acquiring) & Self.claimedBit != 0 }

    /// Worker side: pending -> running. False when the task was cancelled first.
    public func start() -> Bool { move(from: .pending, to: .running, claim: false) }

    /// Caller side: pending -> cancelled. False when a worker took it first. With `claim`, the
    /// caller also takes over settling the outcome.
    public func cancelPending(claim: Bool = false) -> Bool { move(from: .pending, to: .cancelled, claim: claim) }

    /// Caller side: running -> interrupting. True exactly once, for the caller that must now
    /// interrupt the worker. With `claim`, the caller also takes over settling the outcome
    /// (a cancel); without, the task's own event settles it (Ctrl-C's interrupt).
    public func requestInterrupt(claim: Bool = false) -> Bool { move(from: .running, to: .interrupting, claim: claim) }

    /// Worker side: the task is over, whatever happened. Returns whether an interrupt had been
    /// requested while it ran.
    @discardableResult
    public func finish() -> Bool {
        var old = word.load(ordering: .relaxed)
        while true {
            let (exchanged, original) = word.compareExchange(
                expected: old, desired: TaskPhase.finished.rawValue | (old & Self.claimedBit),
                ordering: .acquiringAndReleasing)
            if exchanged { return original & ~Self.claimedBit == TaskPhase.interrupting.rawValue }
            old = original
        }
    }

    /// Completion side: takes over settling the outcome unless a caller did first. True once.
    public func claimOutcome() -> Bool {
        word.bitwiseOr(Self.claimedBit, ordering: .acquiringAndReleasing).oldValue & Self.claimedBit == 0
    }

    private func move(from old: TaskPhase, to new: TaskPhase, claim: Bool) -> Bool {
        // An unclaimed task only: a claimed one has been settled (or is being) by its claimer.
        word.compareExchange(
            expected: old.rawValue, desired: new.rawValue | (claim ? Self.claimedBit : 0),
            ordering: .acquiringAndReleasing
        ).exchanged
    }
}
