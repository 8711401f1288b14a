import Synchronization

/// The steps of a task's path, timed by the runtime (see the picture in NativeExtension/PoolCore.swift).
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
        /// Interpreter creations tried again after a failed attempt (see `WorkerInterpreter`).
        public var creationRetries = 0
        /// Sum of nanoseconds per step, indexed by `Step.rawValue`.
        public var nanoseconds = [UInt64](repeating: 0, count: Step.allCases.count)
        /// How many times each step was timed.
        public var counts = [Int](repeating: 0, count: Step.allCases.count)
        /// The start-up of each worker's latest interpreter, by worker index.
        public var startups: [Int: Startup] = [:]
    }

    /// How one worker's interpreter came up (nanoseconds).
    public struct Startup: Sendable, Equatable {
        /// From the statistics' creation (the pool's) until the worker began creating it.
        public var startedAfter: UInt64
        /// Creating the interpreter (`Py_NewInterpreterFromConfig`).
        public var create: UInt64
        /// Importing the runner and running the bootstrap (forwarding, preload, initializer).
        public var bootstrap: UInt64
        /// From the statistics' creation (the pool's) until the interpreter was ready.
        public var readyAfter: UInt64

        public init(startedAfter: UInt64, create: UInt64, bootstrap: UInt64, readyAfter: UInt64) {
            self.startedAfter = startedAfter
            self.create = create
            self.bootstrap = bootstrap
            self.readyAfter = readyAfter
        }
    }

    private let totals = Mutex(Snapshot())
    /// When these statistics (their pool) were created.
    public let createdAt = MonotonicClock.now()

    public init() {}

    /// Records worker `worker`'s interpreter start-up: begun at `start`, created at `created`,
    /// ready now. Also adds it to the `interpreterStartup` step.
    public func addStartup(worker: Int, start: UInt64, created: UInt64) {
        let now = MonotonicClock.now()
        let startup = Startup(
            startedAfter: start &- createdAt, create: created &- start, bootstrap: now &- created,
            readyAfter: now &- createdAt)
        totals.withLock {
            $0.nanoseconds[Step.interpreterStartup.rawValue] &+= now &- start
            $0.counts[Step.interpreterStartup.rawValue] += 1
            $0.startups[worker] = startup
        }
    }

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
