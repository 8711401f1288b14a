// The worker pool: how one task travels.
//
//   caller's interpreter (main)                 worker thread k (its own interpreter and GIL)
//   ───────────────────────────                 ─────────────────────────────────────────────
//   Pool.submit(id, fn, args, kwargs)
//     a Call (Wire.swift, _wire.py): by name       (a module-level function with shareable
//     (CallsByName.swift), else pickled            arguments; else the C pickle; else
//     (CallEncoder.swift)                          _wire.encode_call: cloudpickle, out of band;
//                                                  timed: encode_call)
//     Task{id, bytes kept alive}  ──► tasks: BlockingQueue<Task> ──►  lifecycle.start()
//                                                                    TaskRunner.run, one Python
//                                                                    call: the Call decoded from
//                                                                    the caller's bytes (no copy),
//                                                                    the function called, what it
//                                                                    returned encoded (Shareable,
//                                                                    Value; else _wire: Lent,
//                                                                    Error, ...) (timed:
//                                                                    decode_call, call,
//                                                                    encode_result)
//   completion thread:                          ◄── events: BlockingQueue<PoolEvent> ◄── outcome
//   Pool.deliver(futures, settle, on_event)          copied into a Swift-owned ByteBuffer, or a
//     a returned value: decoded in Swift (no         large binary result lent (ResultLending)
//     pickle, or _pickle.loads) and handed to
//     settle(future, value), the future popped
//     from `futures` in Swift (PoolDelivery.swift);
//     anything else: on_event(kind, id, ResultBuffer, worker), decoded in Python
//     (_wire.decode_outcome)
//     (timed: result_wait, deliver); the task's bytes released
//
//   Stopping a task (cancel, task_timeout via the pool's DeadlineTimer thread, Ctrl-C) changes
//   its TaskLifecycle and returns at once; the worker's interrupter thread raises
//   TaskInterrupted in it (see WorkerInterrupter.swift).
//
// Only bytes and Swift values cross between interpreters; a PyObject pointer never does
// (the caller's bytes are read by the worker through a raw pointer while the caller keeps them
// alive, and they are released by the caller's interpreter on delivery). A memoryview argument
// is the one exception to "read only": its memory is lent to the task, which may write to it;
// the caller holds its buffer export until the worker's last view is gone (BufferLend.swift).
// Every submitted task yields exactly one event, so nothing is lost and nothing is leaked:
// completed, skipped (cancelled before it started) or interrupted.
// Exactly one party settles a task's future, decided by its TaskLifecycle: a cancel or an
// expired task_timeout that stops the task claims it; otherwise the completion thread claims it
// when it delivers the task's event (and drops the event of a task claimed by someone else).
@preconcurrency import CPythonShim
import ParallelRuntime
import Synchronization

/// What every worker of a pool needs to start.
struct WorkerConfiguration: Sendable {
    /// The runner's `bootstrap` argument, a `_wire.Bootstrap` encoded (the pool's steps and
    /// initializer: marshalled by name when that is possible, else pickled), or nil.
    let bootstrapPayload: ByteBuffer?
    /// Stack size of worker threads: deep enough that Python's recursion limit trips first.
    let stackSize: Int
    /// OS names of the worker threads, by worker index (Linux keeps 15 bytes); a worker
    /// without one keeps the name it inherits.
    var threadNames: [String] = []
    /// Tasks one interpreter runs before its worker ends it and starts a fresh one
    /// (`max_tasks_per_worker`); 0: no limit, one interpreter for the worker's whole life.
    var maxTasksPerInterpreter = 0
}

/// The most workers one pool may have (`_native.MAX_WORKERS`): far beyond any machine, low
/// enough that a mistyped count fails at once instead of exhausting memory and threads.
let maxWorkers = 4096

/// The Python-independent heart of a pool: queues, workers, statistics.
final class PoolCore: @unchecked Sendable {
    /// How long a worker or the completion thread watches for the next item before parking.
    /// A few tens of microseconds covers the gap between tiny tasks, where a futex wake-up per
    /// task would otherwise cost more than the task.
    static let spinNanoseconds: UInt64 = 50_000

    let tasks = BlockingQueue<Task>()
    let events = BlockingQueue<PoolEvent>()
    let stats = StepStatistics()
    /// The pool's state (running, shutting down, shut down, broken): its one owner, which the
    /// Python layer reads (`Pool.state()`) instead of keeping flags of its own.
    let lifecycle = PoolLifecycle()
    let configuration: WorkerConfiguration
    /// The caller's `sys.path` as of its latest submit (`Pool.set_sys_path`, called when it
    /// changed): each interpreter starts with it and follows its changes before its next task.
    let callerPath: Versioned<[String]>
    private(set) var workers: [WorkerInterpreter] = []
    private let liveWorkers: Atomic<Int>
    private let running = Mutex<[Int64: Task]>([:])
    /// Caller buffers lent to workers and not yet released (`stats()["lent_buffers"]`).
    let heldLends = Atomic<Int>(0)
    /// Nanoseconds a task may take from its submission (`task_timeout`), if limited.
    let taskTimeout: UInt64?
    /// Expires tasks that pass `taskTimeout` (its thread starts with the first task).
    private(set) var deadlines: DeadlineTimer<Task>?
    /// Workers after the first wait here until the first one's interpreter is ready (see
    /// `StartGate`): the first result comes after one interpreter's start-up, not after N
    /// concurrent ones, and the others come up while it runs.
    let startGate = StartGate()
    /// How long the other workers wait for the first one at most: far longer than one
    /// interpreter's start-up (10 to 20 ms on an idle machine), short enough that an
    /// initializer that waits for the other workers only delays them.
    static let startGateNanoseconds: UInt64 = 250_000_000
    /// `preload="auto"`: the modules of the functions submitted so far, in the order first
    /// seen. Each worker imports, when no task waits, the names past the cursor it keeps for
    /// its interpreter (see `WorkerInterpreter.serve`): one at a time, looking for a task
    /// between two, so that tasks keep priority.
    let warmList = AppendOnlyList<String>()
    /// The first failure of each module that could not be warmed: its text, by module name
    /// (`stats()["warm_failures"]`).
    let warmFailures = Mutex<[String: String]>([:])

    init(workerCount: Int, sysPath: [String], configuration: WorkerConfiguration, taskTimeout: UInt64? = nil) {
        self.configuration = configuration
        callerPath = Versioned(sysPath)
        self.taskTimeout = taskTimeout
        liveWorkers = Atomic(workerCount)
        workers = (0..<workerCount).map { WorkerInterpreter(index: $0) }
        if taskTimeout != nil {
            deadlines = DeadlineTimer(name: "sp-timeouts") { [weak self] task in self?.expire(task) }
        }
    }

    /// Starts counting `task`'s `task_timeout`, if the pool has one.
    func startDeadline(of task: Task) {
        guard let taskTimeout, let deadlines else { return }
        deadlines.add(task, deadline: task.submittedAt &+ taskTimeout)
    }

    /// `task_timeout` passed: cancel the task or interrupt it, and tell the caller first (its
    /// future fails with TimeoutError now, even if the task holds its GIL in C for a while).
    private func expire(_ task: Task) {
        // Claiming: the timedOut event settles the future; the task's own event finds it taken.
        if task.lifecycle.cancelPending(claim: true) {
            stats.count { $0.tasksCancelled += 1 }
        } else if !task.lifecycle.requestInterrupt(claim: true) {
            return  // finished, or already cancelled or interrupted
        }
        post(
            PoolEvent(
                kind: .timedOut, id: task.id, task: nil, payload: nil, text: nil,
                worker: -1, postedAt: MonotonicClock.now()))
        _ = worker(running: task)?.requestInterrupt(task)
    }

    /// Stops the `task_timeout` thread (once no task can need it).
    func stopDeadlines() {
        deadlines?.stop()
    }

    /// Starts the worker threads. Returns false if the system refused a thread; the workers that
    /// could not start count as exited.
    func start() -> Bool {
        var ok = true
        for worker in workers where !startNamed(worker) {
            ok = false
            if worker.index == 0 { startGate.open() }  // the others must not wait for it
            post(
                PoolEvent(
                    kind: .workerFailed, id: Int64(worker.index), task: nil, payload: nil,
                    text: "RuntimeError: could not start worker thread \(worker.index)",
                    worker: worker.index, postedAt: MonotonicClock.now()))
            workerExited()
        }
        return ok
    }

    /// Starts `worker`'s thread under its name from the configuration, if it has one.
    private func startNamed(_ worker: WorkerInterpreter) -> Bool {
        let names = configuration.threadNames
        let name = worker.index < names.count ? names[worker.index] : nil
        return NativeThread.naming(name) { worker.start(pool: self) }
    }

    /// Adds `module` to the modules to warm (once) and wakes the idle workers to import it.
    func warm(_ module: String) {
        guard warmList.appendIfAbsent(module) else { return }
        // A worker busy now looks at the list before it waits for its next task (it reads the
        // count after marking itself idle, so it cannot miss this append).
        for worker in workers where worker.activity == .idle { worker.parker.unpark() }
    }

    /// Records that `module` could not be warmed; true for its first failure in this pool.
    func recordWarmFailure(_ module: String, _ text: String) -> Bool {
        warmFailures.withLock { failures in
            guard failures[module] == nil else { return false }
            failures[module] = text
            return true
        }
    }

    /// Refuses new tasks (`shutdown()`): workers finish the queued ones, then end.
    func close() {
        lifecycle.close()
        tasks.close()
        startGate.open()  // workers still waiting for the first one end now
    }

    func register(_ task: Task) {
        running.withLock { $0[task.id] = task }
    }

    func task(withID id: Int64) -> Task? {
        running.withLock { $0[id] }
    }

    func forget(_ task: Task) {
        _ = running.withLock { $0.removeValue(forKey: task.id) }
    }

    func post(_ event: PoolEvent) {
        // The event queue is unbounded and closed only after the last worker exits.
        try? events.put(event)
    }

    /// Called by each worker thread as its very last step; the last one closes the event queue
    /// so that the completion thread drains it and stops.
    func workerExited() {
        if liveWorkers.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
            lifecycle.workersEnded()
            events.close()
        }
    }

    var aliveWorkerCount: Int { liveWorkers.load(ordering: .acquiring) }

    /// The worker running `task` now, if any.
    func worker(running task: Task) -> WorkerInterpreter? {
        workers.first { $0.isRunning(task) }
    }

    func joinWorkers() {
        for worker in workers { worker.join() }
    }
}
