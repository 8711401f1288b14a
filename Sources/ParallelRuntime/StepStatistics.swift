import Synchronization

/// The steps of a task's path, timed by the runtime (see the picture in NativeExtension/Pool.swift).
public enum Step: Int, CaseIterable, Sendable {
    /// Creating a worker's interpreter and importing its runner (once per worker).
    case interpreterStartup
    /// Pickling the call in the caller's interpreter.
    case encodeCall
    /// From submit until a worker takes the task.
    case queueWait
    /// Unpickling the call in the worker.
    case decodeCall
    /// Running the function.
    case call
    /// Pickling the result or the exception in the worker.
    case encodeResult
    /// From the worker finishing until the caller's interpreter picks the result up.
    case resultWait
    /// Unpickling the result and completing the future in the caller's interpreter.
    case deliver
    /// Ending a worker's interpreter (once per worker).
    case interpreterShutdown

    /// The name used in `pool.stats()`.
    public var name: String {
        switch self {
        case .interpreterStartup: "interpreter_startup"
        case .encodeCall: "encode_call"
        case .queueWait: "queue_wait"
        case .decodeCall: "decode_call"
        case .call: "call"
        case .encodeResult: "encode_result"
        case .resultWait: "result_wait"
        case .deliver: "deliver"
        case .interpreterShutdown: "interpreter_shutdown"
        }
    }
}

/// Counters and summed step times of one pool. Every writer adds under a lock that is held for
/// a few nanoseconds; readers take a consistent snapshot.
public final class StepStatistics: Sendable {
    /// A consistent copy of the totals.
    public struct Snapshot: Sendable {
        public var tasksSubmitted = 0
        public var tasksCompleted = 0
        public var tasksFailed = 0
        public var tasksCancelled = 0
        public var tasksInterrupted = 0
        /// Sum of nanoseconds per step, indexed by `Step.rawValue`.
        public var nanoseconds = [UInt64](repeating: 0, count: Step.allCases.count)
        /// How many times each step was timed.
        public var counts = [Int](repeating: 0, count: Step.allCases.count)
    }

    private let totals = Mutex(Snapshot())

    public init() {}

    public func add(_ step: Step, nanoseconds: UInt64) {
        totals.withLock {
            $0.nanoseconds[step.rawValue] &+= nanoseconds
            $0.counts[step.rawValue] += 1
        }
    }

    /// Adds the time from `start` until now to `step`, and returns now.
    @discardableResult
    public func addSince(_ start: UInt64, to step: Step) -> UInt64 {
        let now = MonotonicClock.now()
        add(step, nanoseconds: now &- start)
        return now
    }

    public func count(_ update: (inout Snapshot) -> Void) {
        totals.withLock { update(&$0) }
    }

    public func snapshot() -> Snapshot { totals.withLock { $0 } }
}
