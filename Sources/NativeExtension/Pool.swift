// The worker pool: how one task travels.
//
//   caller's interpreter (main)                 worker thread k (its own interpreter and GIL)
//   ───────────────────────────                 ─────────────────────────────────────────────
//   Pool.submit(id, fn, args, kwargs)
//     ShareableCodec by name, else               (a module-level function with shareable
//     encoder(fn, args, kwargs) -> bytes          arguments; else pickle / cloudpickle;
//                                                 timed: encode_call)
//     Task{id, bytes kept alive}  ──► tasks: BlockingQueue<Task> ──►  lifecycle.start()
//                                                                    memoryview over the caller's
//                                                                    bytes (no copy)
//                                                                    decode_call -> invoke ->
//                                                                    encode_result / encode_error
//                                                                    (a shareable call or result:
//                                                                     in Swift, no pickle)
//                                                                    (timed: decode_call, call,
//                                                                     encode_result)
//   completion thread: Pool.deliver(cb) ◄── events: BlockingQueue<PoolEvent> ◄── result bytes
//     cb(kind, id, ResultBuffer, worker)           copied into a Swift-owned ByteBuffer
//     (or on_result(id, value), decoded in Swift)
//     -> unpickle, Future.set_result (timed: result_wait, deliver); the task's bytes released
//
//   Stopping a task (cancel, task_timeout via the pool's DeadlineTimer thread, Ctrl-C) changes
//   its TaskLifecycle and returns at once; the worker's interrupter thread raises
//   TaskInterrupted in it (see WorkerInterpreter.swift).
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

/// One call travelling through the pool.
final class Task: @unchecked Sendable {
    let id: Int64
    let lifecycle = TaskLifecycle()
    /// The pickled call: the contents of `inputObject`.
    let input: UnsafeRawBufferPointer
    /// A `bytes` object owned by the submitting interpreter; released there on delivery.
    let inputObject: PyObjectPointer
    /// Arguments sent out of band, in the order the pickle's `OutOfBand` markers name them.
    let extras: [Extra]
    let submittedAt: UInt64
    /// The queues whose handles the pickled call holds (see `QueuePins`): alive as long as the
    /// task's inputs.
    private(set) var pins: QueuePins?
    /// Whether `releaseInputs` ran. Read and written with the caller's GIL held, as every
    /// call of `releaseInputs` is.
    private var released = false

    /// One out-of-band argument.
    enum Extra {
        /// A large `bytes` (owned like `inputObject`): the worker copies it once, straight from
        /// the caller's memory, instead of through the pickle.
        case bytes(PyObjectPointer)
        /// A `memoryview` lent to the worker: no copy (see BufferLend.swift).
        case lent(BufferLend)
    }

    init(id: Int64, inputObject: PyObjectPointer, extras: [Extra], submittedAt: UInt64,
         pins: QueuePins? = nil) {
        self.id = id
        self.inputObject = inputObject
        self.input = Py.contents(ofBytes: inputObject)
        self.extras = extras
        self.submittedAt = submittedAt
        self.pins = pins
    }

    /// Releases the caller-owned objects (with the caller's GIL held); a lent buffer is
    /// released now or, if the task still holds a view of it, when the worker lets it go.
    /// Once the task is done, or as soon as a cancel wins (no worker reads the inputs of a
    /// task that cannot start); a second call does nothing.
    func releaseInputs() {
        guard !released else { return }
        released = true
        pins = nil
        Py_DecRef(inputObject)
        for extra in extras {
            switch extra {
            case .bytes(let object): Py_DecRef(object)
            case .lent(let lend): lend.callerDone()
            }
        }
    }
}

/// A task's outcome (or a message) on its way to the caller.
enum Payload: Sendable {
    /// Encoded bytes (a pickle, an encoded exception, a message) copied into Swift memory.
    case encoded(ByteBuffer)
    /// A large binary result still owned by the worker's interpreter: the caller copies it
    /// once into its own `bytes` or `bytearray`, then hands it back.
    case lent(LentBytes)
    /// A `lendEnded` event's lend: the caller releases its buffer export.
    case lend(BufferLend)
    /// The task returned the memoryview it was lent, as it was lent: the caller's own
    /// memoryview is the result, no copy (as with threads).
    case lentArgument(BufferLend)
}

/// A buffer export of a worker interpreter's object (a `bytes`, a `bytearray` no one else
/// holds, a contiguous `memoryview`), lent to the caller until it has copied it.
final class LentBytes: @unchecked Sendable {
    let contents: UnsafeRawBufferPointer
    /// The caller makes a `bytearray` of it (the task returned one).
    let asByteArray: Bool
    private let buffer: UnsafeMutablePointer<Py_buffer>
    private let owner: WorkerInterpreter

    /// Takes over `buffer` (filled by PyObject_GetBuffer in `owner`'s interpreter).
    init(_ buffer: UnsafeMutablePointer<Py_buffer>, owner: WorkerInterpreter, asByteArray: Bool) {
        self.buffer = buffer
        self.owner = owner
        self.asByteArray = asByteArray
        contents = UnsafeRawBufferPointer(start: buffer.pointee.buf, count: Int(buffer.pointee.len))
        owner.lend()
    }

    deinit { owner.giveBack(buffer) }
}

/// Something a worker tells the submitting interpreter.
struct PoolEvent: Sendable {
    /// The kinds, as the Python layer sees them (`kind` argument of the delivery callback).
    enum Kind: Int64, Sendable {
        /// The task ran; the payload is the pickled outcome.
        case completed = 0
        /// The task was cancelled before a worker started it.
        case skipped = 1
        /// The task was interrupted while it ran.
        case interrupted = 2
        /// A worker could not start (interpreter, imports or initializer); payload is text.
        case workerFailed = 3
        /// A message a task posted with `_native.post_message`; `id` is its tag.
        case message = 4
        /// The runner itself failed for a task; payload is text.
        case internalError = 5
        /// The task's `task_timeout` expired; it was cancelled or is being interrupted (its
        /// own event follows). No payload.
        case timedOut = 6
        /// A task's views of a lent `memoryview` are all gone, after its outcome was delivered:
        /// the caller releases the buffer (payload `.lend`). Handled by the pool itself.
        case lendEnded = 7
        /// Made by the completion thread, never posted: the caller could not take the task's
        /// outcome (memory ran out building it); the payload is the exception to fail it with.
        case deliveryFailed = 8
    }

    let kind: Kind
    let id: Int64
    let task: Task?
    let payload: Payload?
    let text: String?
    let worker: Int
    let postedAt: UInt64
}

/// A byte buffer owned by Swift, handed between interpreters.
final class ByteBuffer: @unchecked Sendable {
    let bytes: UnsafeMutableRawBufferPointer
    /// The queues whose handles the bytes hold (see `QueuePins`): alive as long as the bytes.
    let pins: QueuePins?

    init(copying source: UnsafeRawBufferPointer, pins: QueuePins? = nil) {
        bytes = .allocate(byteCount: max(source.count, 1), alignment: 16)
        if let base = source.baseAddress, source.count > 0 {
            bytes.baseAddress!.copyMemory(from: base, byteCount: source.count)
        }
        count = source.count
        self.pins = pins
    }

    /// `count` bytes written by `fill`, which gets the start of the (uninitialized) memory.
    init(count: Int, filling fill: (UnsafeMutableRawPointer) -> Void) {
        bytes = .allocate(byteCount: max(count, 1), alignment: 16)
        fill(bytes.baseAddress!)
        self.count = count
        pins = nil
    }

    let count: Int

    var contents: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: bytes.baseAddress, count: count) }

    deinit { bytes.deallocate() }
}

/// What every worker of a pool needs to start.
struct WorkerConfiguration: Sendable {
    /// Pickled `(initializer, initargs, options)` for the runner's `bootstrap`, or nil.
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
    /// The message tag of a warm import's failure (the caller logs it once per module; see
    /// preload.py's `TAG_WARM_FAILED`).
    static let warmFailedTag: Int64 = 0x4657_0006

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
        post(PoolEvent(kind: .timedOut, id: task.id, task: nil, payload: nil, text: nil,
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
            post(PoolEvent(kind: .workerFailed, id: Int64(worker.index), task: nil, payload: nil,
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
