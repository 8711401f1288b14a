// One worker: a native thread that owns one own-GIL sub-interpreter at a time: one for its
// whole life, or, with `max_tasks_per_worker`, a fresh one after every N tasks.
//
// The thread-state sequence (see ARCHITECTURE.md):
//   ts0 = PyThreadState_New(main); PyEval_RestoreThread(ts0)
//   Py_NewInterpreterFromConfig(&sub, own GIL)   -- releases the main GIL, holds the new one
//   ... bootstrap, then per task: PyEval_RestoreThread(sub) ... PyEval_SaveThread() ...
//   Py_EndInterpreter(sub); PyEval_RestoreThread(ts0)   -- back on ts0; a recycled worker
//                                                          creates its next interpreter here
//   PyThreadState_Clear(ts0); PyThreadState_DeleteCurrent()
//
// Interrupting (cancel, task_timeout, Ctrl-C, shutdown) only *requests*: `requestInterrupt` sets
// a flag and wakes the worker if it waits in `Queue.get`/`sleep`, then hands the rest to this
// worker's interrupter thread (started by the request, ending once idle), which takes the
// worker's GIL to raise `TaskInterrupted` in it. Taking that GIL waits as long as the task holds
// it inside a C call (`sum(range(10**9))`), so no caller ever waits for it, and one stuck worker
// never delays another's interruption.
@preconcurrency import CPythonShim
import Glibc
import ParallelRuntime
import Synchronization

/// A worker thread and the sub-interpreter it owns.
final class WorkerInterpreter: @unchecked Sendable {
    let index: Int
    /// The worker's own wake-up line, for waits inside tasks (`Queue.get`, `sleep`).
    let parker = Parker()
    /// Set by `requestInterrupt` while a task or the initializer runs; cleared when the next
    /// task starts. Blocking calls (`BlockingCall`) check it.
    let interruptRequested = Atomic<Bool>(false)

    /// What this worker's thread is doing, as far as interrupting and exiting care.
    enum Activity: Int64, Sendable {
        /// Creating its interpreter and running the pool's initializer (interruptible).
        case starting = 0
        /// Waiting for a task.
        case idle = 1
        /// Running a task (interruptible).
        case running = 2
        /// Ending its interpreter.
        case ending = 3
        /// Ending its interpreter, which first waits for threads that its tasks started.
        case endingWithThreads = 4
        /// The thread has ended.
        case ended = 5
        /// Importing a module of `preload="auto"` while no task waits (interruptible, like
        /// the initializer).
        case warming = 6
    }

    /// What an interruption targets: what the worker does besides tasks (the initializer, a
    /// warm import), a warm import alone, or one task.
    private enum Target {
        case initializer
        case warmImport
        case task(Task)

        func matches(_ activity: Activity, _ task: Task?) -> Bool {
            switch self {
            case .initializer: return activity == .starting || activity == .warming
            case .warmImport: return activity == .warming
            case .task(let target): return activity == .running && task === target
            }
        }
    }

    /// What an interrupter must see consistently: guarded by `state`. Nobody waits for any GIL
    /// while holding it, so taking it never waits behind a task stuck in C.
    private struct State: @unchecked Sendable {
        var activity = Activity.starting
        var task: Task?
        var interpreter: OpaquePointer?
        var threadIdent: UInt = 0
        /// The worker interpreter's `TaskInterrupted` class (a reference owned by that
        /// interpreter; used only with its GIL held).
        var interruptType: PyObjectPointer?
        /// Whether `TaskInterrupted` was already raised for the current target (by the
        /// interrupter, or by a blocking call that the request woke).
        var interruptDelivered = false
        /// The interruption the interrupter thread must deliver next.
        var pendingTarget: Target?
        /// The latest interrupter thread; it ends once it finds nothing to deliver.
        var interrupter: NativeThread?
        /// Whether that thread still looks for work (a new request then needs no new thread).
        var interrupterActive = false
        var interrupterStopping = false
    }

    private let state = Mutex(State())
    private var thread: NativeThread?
    /// The pool this worker serves, while its thread runs (for `post_message`).
    private(set) var pool: PoolCore?

    /// Results lent to the caller (`LentBytes`) and not yet handed back. The interpreter may
    /// end only once this is zero.
    private let lentCount = Atomic<Int>(0)
    /// Buffer exports handed back, to be released with this interpreter's GIL.
    private let handedBack = Mutex<[SendableBuffer]>([])
    /// Whether `handedBack` holds anything: lets the idle worker's wait check without the lock.
    private let handedBackPending = Atomic<Bool>(false)
    /// Indices in the pool's `warmList` of the modules this worker's current interpreter has
    /// warmed (imported, or found imported already), in order (`stats()["warmed_modules"]`).
    let warmed = Mutex<[Int]>([])

    private struct SendableBuffer: @unchecked Sendable { let pointer: UnsafeMutablePointer<Py_buffer> }

    // Runner functions: references owned by the worker interpreter, used only on its thread.
    /// The runner module (`_worker`): `decode_call` and `encode_result` are looked up on first
    /// use, since they load pickle, which a worker whose tasks never need it does not import.
    private var runner: PyObjectPointer?
    private var decodeCall: PyObjectPointer?
    private var invoke: PyObjectPointer?
    private var encodeResult: PyObjectPointer?
    private var encodeError: PyObjectPointer?
    /// `_worker.unflushed` and `_worker.flush_unflushed`, for calls made here directly.
    private var unflushed: PyObjectPointer?
    private var flushUnflushedFunction: PyObjectPointer?
    /// This interpreter's `LentBuffer` type (see BufferLend.swift).
    private var lentBufferType: PyObjectPointer?

    init(index: Int) {
        self.index = index
    }

    func start(pool: PoolCore) -> Bool {
        self.pool = pool
        thread = NativeThread(stackSize: pool.configuration.stackSize) {
            self.main(pool)
        }
        return thread != nil
    }

    func join() {
        thread?.join()
    }

    /// The task this worker runs now, if any.
    var currentTask: Task? { state.withLock { $0.task } }

    func isRunning(_ task: Task) -> Bool {
        state.withLock { $0.task === task }
    }

    /// What the worker's thread is doing now.
    var activity: Activity { state.withLock { $0.activity } }

    // MARK: - The worker thread

    private func main(_ pool: PoolCore) {
        WorkerInterpreter.setCurrent(self)
        defer {
            state.withLock { $0.activity = .ended }
            WorkerInterpreter.setCurrent(nil)
            self.pool = nil
            pool.workerExited()
        }
        if index > 0 {
            // Let the first worker create its interpreter alone (see `PoolCore.startGate`).
            pool.startGate.wait(until: MonotonicClock.now() &+ PoolCore.startGateNanoseconds)
        }
        let mainState = PyThreadState_New(PyInterpreterState_Main())
        PyEval_RestoreThread(mainState)
        // One round per interpreter: a worker with a task limit ends its interpreter after that
        // many tasks and starts the next round while tasks remain to be taken.
        while runInterpreter(pool, returningTo: mainState!) {}
        // On the main interpreter's thread state, holding its GIL.
        PyThreadState_Clear(mainState)
        PyThreadState_DeleteCurrent()
    }

    /// Creates an interpreter, bootstraps it, serves tasks in it and ends it. Called and
    /// returns on the main interpreter's thread state with its GIL held. Returns true when the
    /// interpreter reached the task limit and tasks may still come: run another.
    private func runInterpreter(_ pool: PoolCore, returningTo mainState: UnsafeMutablePointer<PyThreadState>) -> Bool {
        let startedAt = MonotonicClock.now()
        ForkGuard.liveInterpreters.add(1, ordering: .acquiringAndReleasing)
        let (created, reason) = createInterpreter(pool.stats)
        let createdAt = MonotonicClock.now()
        guard let subState = created else {
            // Still on the main interpreter's thread state, holding its GIL. The interrupter
            // never takes that GIL (it has no interpreter to visit), so joining it here is safe.
            ForkGuard.liveInterpreters.subtract(1, ordering: .acquiringAndReleasing)
            pool.post(failure("could not create a sub-interpreter (\(WorkerInterpreter.creationAttempts) attempts): \(reason)"))
            stopInterrupter()  // a request for the initializer may have started it
            pool.startGate.open()  // the others try for themselves
            return false
        }
        nonisolated(unsafe) let interpreter = PyThreadState_GetInterpreter(subState)
        let ident = UInt(PyThread_get_thread_ident())
        // From here the initializer can be interrupted (shutdown, Ctrl-C, exit).
        state.withLock {
            $0.interpreter = interpreter
            $0.threadIdent = ident
        }
        let bootError = bootstrap(pool.configuration)
        pool.stats.addStartup(worker: index, start: startedAt, created: createdAt)
        // Ready (or failed, which the others may not): the other workers start theirs now.
        if index == 0 { pool.startGate.open() }
        state.withLock { $0.activity = .idle }  // no interruption targets the initializer now
        let stopped = interruptRequested.load(ordering: .acquiring)
        if stopped {
            // The interrupter may have raised after the initializer returned: drop it.
            PyThreadState_SetAsyncExc(ident, nil)
        }
        _ = PyEval_SaveThread()
        var again = false
        if let bootError {
            // An initializer interrupted on request (the pool is shutting down) is no failure.
            if !stopped { pool.post(failure(bootError)) }
        } else {
            again = serve(pool, subState, limit: pool.configuration.maxTasksPerInterpreter)
        }
        end(subState, returningTo: mainState, pool.stats)
        if again {
            // The next interpreter starts afresh: its initializer is interruptible, and nothing
            // requested for the interpreter that ended carries over to it.
            state.withLock {
                interruptRequested.store(false, ordering: .releasing)
                $0.activity = .starting
                $0.interruptDelivered = false
                $0.interrupterStopping = false
            }
        }
        return again
    }

    /// How many times a worker tries to create an interpreter before it reports a failure.
    /// CPython's creation fails now and then while other interpreters are created at the same
    /// time ("Failed to import encodings module", cpython#128381); a failed attempt leaves
    /// nothing behind (CPython deletes the half-made interpreter and gives the caller its
    /// thread state back), so trying again is safe.
    static let creationAttempts = 4

    /// Test seam (`_native._fail_next_interpreter_creations`): this many coming creations, in
    /// any pool, fail the way CPython's transient failure does, without calling CPython.
    static let injectedCreationFailures = Atomic<Int>(0)

    /// Creates this worker's next interpreter, trying again after a failure. Called and
    /// returns on the main interpreter's thread state with its GIL held; on success the new
    /// interpreter's thread state is current and its GIL held. On failure: nil and the reason.
    private func createInterpreter(_ stats: StepStatistics) -> (UnsafeMutablePointer<PyThreadState>?, String) {
        var config = sp_IsolatedInterpreterConfig()
        var reason = "unknown error"
        for attempt in 1...WorkerInterpreter.creationAttempts {
            if attempt > 1 {
                stats.count { $0.creationRetries += 1 }
                // A request to stop (shutdown, Ctrl-C) ends the tries: nobody waits for them.
                if interruptRequested.load(ordering: .acquiring) { break }
            }
            if WorkerInterpreter.takeInjectedFailure() {
                reason = "Failed to import encodings module (a failure injected by a test)"
                continue
            }
            var sub: UnsafeMutablePointer<PyThreadState>?
            let status = Py_NewInterpreterFromConfig(&sub, &config)
            if PyStatus_Exception(status) == 0, let sub { return (sub, "") }
            reason = status.err_msg.map { String(cString: $0) } ?? "unknown error"
        }
        return (nil, reason)
    }

    private static func takeInjectedFailure() -> Bool {
        var left = injectedCreationFailures.load(ordering: .relaxed)
        while left > 0 {
            let (exchanged, original) = injectedCreationFailures.compareExchange(
                expected: left, desired: left - 1, ordering: .relaxed)
            if exchanged { return true }
            left = original
        }
        return false
    }

    /// Ends the worker's interpreter (called without its GIL) and returns on the main
    /// interpreter's thread state, holding its GIL.
    private func end(_ subState: UnsafeMutablePointer<PyThreadState>,
                     returningTo mainState: UnsafeMutablePointer<PyThreadState>, _ stats: StepStatistics) {
        // No interruption may visit the interpreter once it begins to end: stop the interrupter
        // (a visit in progress finishes first; this thread does not hold the GIL it needs).
        stopInterrupter()
        // Lent results point into this interpreter: wait until the caller has copied them.
        while lentCount.load(ordering: .acquiring) > 0 { _ = parker.park(until: nil) }
        PyEval_RestoreThread(subState)
        releaseHandedBack()
        if WorkerInterpreter.hasOtherThreads(subState) {
            // Py_EndInterpreter waits for them: a caller that gives up on exit says why.
            state.withLock { $0.activity = .endingWithThreads }
        }
        let endingAt = MonotonicClock.now()
        releaseRunner()
        Py_EndInterpreter(subState)
        ForkGuard.liveInterpreters.subtract(1, ordering: .acquiringAndReleasing)
        PyEval_RestoreThread(mainState)
        stats.addSince(endingAt, to: .interpreterShutdown)
    }

    /// Ends the interrupter thread, if it was started, and refuses later requests. Called
    /// without this worker's GIL.
    private func stopInterrupter() {
        let interrupter = state.withLock { state -> NativeThread? in
            state.activity = .ending
            state.interpreter = nil
            state.pendingTarget = nil
            state.interrupterStopping = true
            return state.interrupter
        }
        interrupter?.join()
    }

    /// Whether the interpreter of `current` (whose GIL is held) has threads besides this one:
    /// threads that tasks started and that are still running.
    private static func hasOtherThreads(_ current: UnsafeMutablePointer<PyThreadState>) -> Bool {
        var threadState = PyInterpreterState_ThreadHead(PyThreadState_GetInterpreter(current))
        while let each = threadState {
            if each != current { return true }
            threadState = PyThreadState_Next(each)
        }
        return false
    }

    private func failure(_ text: String) -> PoolEvent {
        PoolEvent(kind: .workerFailed, id: Int64(index), task: nil, payload: nil, text: text,
                  worker: index, postedAt: MonotonicClock.now())
    }

    /// Sets `sys.path`, imports the runner and runs the pool's initializer.
    /// Returns nil on success or the error text (with the GIL of the new interpreter held).
    private func bootstrap(_ configuration: WorkerConfiguration) -> String? {
        guard let path = PyList_New(0) else { return takeErrorText("building sys.path") }
        for entry in configuration.sysPath {
            guard let item = Py.string(entry) else { Py_DecRef(path); return takeErrorText("building sys.path") }
            let appended = PyList_Append(path, item)
            Py_DecRef(item)
            if appended != 0 { Py_DecRef(path); return takeErrorText("building sys.path") }
        }
        let setPath = PySys_SetObject("path", path)
        Py_DecRef(path)
        if setPath != 0 { return takeErrorText("setting sys.path") }

        guard let runner = PyImport_ImportModule("subinterpreter_parallelism._worker") else {
            return takeErrorText("importing subinterpreter_parallelism._worker")
        }
        self.runner = runner
        // One lookup at a time: none may run with the previous one's exception still set, and
        // what was found is released when a later one fails.
        var found: [PyObjectPointer] = []
        for name in ["invoke", "encode_error", "unflushed", "flush_unflushed", "TaskInterrupted", "bootstrap"] {
            guard let value = PyObject_GetAttrString(runner, name) else {
                found.forEach { Py_DecRef($0) }
                return takeErrorText("reading the runner")
            }
            found.append(value)
        }
        invoke = found[0]; encodeError = found[1]; unflushed = found[2]; flushUnflushedFunction = found[3]
        // The runner imported `_native`: its state in this interpreter holds the type.
        guard let native = PyImport_ImportModule("subinterpreter_parallelism._native") else {
            found[4...].forEach { Py_DecRef($0) }
            return takeErrorText("importing subinterpreter_parallelism._native")
        }
        lentBufferType = ModuleState.of(module: native)?.pointee.lent_buffer_type
        Py_IncRef(lentBufferType)
        Py_DecRef(native)
        let interruptType = found[4], bootstrap = found[5]
        nonisolated(unsafe) let sharedType = interruptType
        state.withLock { $0.interruptType = sharedType }
        defer { Py_DecRef(bootstrap) }
        // A request that came before the interrupter could raise `TaskInterrupted` (it needs
        // the type set just above) is seen here.
        if interruptRequested.load(ordering: .acquiring) { return "the initializer was interrupted before it started" }

        let payload: PyObjectPointer
        if let buffer = configuration.bootstrapPayload {
            guard let view = Py.bytes(buffer.contents) else { return takeErrorText("bootstrap") }
            payload = view
        } else {
            payload = Py.none()
        }
        defer { Py_DecRef(payload) }
        guard let outcome = PyObject_CallOneArg(bootstrap, payload) else {
            return takeErrorText("running the worker bootstrap")
        }
        defer { Py_DecRef(outcome) }
        if outcome == sp_None() { return nil }
        return Py.swiftString(outcome) ?? takeErrorText("worker bootstrap")
    }

    private func releaseRunner() {
        for object in [runner, decodeCall, invoke, encodeResult, encodeError, unflushed, flushUnflushedFunction,
                       lentBufferType] {
            Py_DecRef(object)
        }
        runner = nil; decodeCall = nil; invoke = nil; encodeResult = nil; encodeError = nil; lentBufferType = nil
        unflushed = nil; flushUnflushedFunction = nil
        let type = state.withLock { state -> PyObjectPointer? in
            defer { state.interruptType = nil }
            return state.interruptType
        }
        Py_DecRef(type)
    }

    /// The runner's `name` (`decode_call`, `encode_result`), looked up the first time it is
    /// needed and kept in `slot`: a borrowed reference, or nil with an exception set.
    private func runnerFunction(_ slot: inout PyObjectPointer?, _ name: String) -> PyObjectPointer? {
        if let function = slot { return function }
        slot = runner.flatMap { PyObject_GetAttrString($0, name) }
        if slot == nil && PyErr_Occurred() == nil { _ = Py.fail(PyExc_RuntimeError, "the runner is missing") }
        return slot
    }

    /// `encode_result(value)` of the runner: a new reference, or nil with an exception set.
    private func encodeWithRunner(_ value: PyObjectPointer) -> PyObjectPointer? {
        guard let encode = runnerFunction(&encodeResult, "encode_result") else { return nil }
        return PyObject_CallOneArg(encode, value)
    }

    /// The text of the pending exception (cleared), prefixed with what we were doing.
    private func takeErrorText(_ doing: String) -> String {
        guard let exception = PyErr_GetRaisedException() else { return "\(doing) failed" }
        defer { Py_DecRef(exception) }
        return "\(doing) failed: \(Py.describe(exception))"
    }

    /// Takes tasks until the task queue is closed and empty, or until `limit` tasks (if > 0)
    /// have run here; returns true in the second case unless the queue is closed and empty
    /// (a closed queue's remaining tasks still need a worker). Runs without the GIL between
    /// tasks. Tasks skipped because they were cancelled do not count.
    private func serve(_ pool: PoolCore, _ subState: UnsafeMutablePointer<PyThreadState>, limit: Int) -> Bool {
        var ran = 0
        // The next module of `pool.warmList` this interpreter has not warmed (a fresh
        // interpreter starts from the first).
        var warmCursor = 0
        warmed.withLock { $0.removeAll() }
        while true {
            if handedBackPending.load(ordering: .acquiring) {
                // Results the caller has copied: release them now rather than at the next task,
                // which may be far off (a 400 MB result would stay alive that long).
                PyEval_RestoreThread(subState)
                releaseHandedBack()
                _ = PyEval_SaveThread()
            }
            let task: Task
            do {
                if warmCursor < pool.warmList.count {
                    // Modules to warm: only when no task waits, and one at a time.
                    guard let waiting = try WorkerInterpreter.taskIfAny(pool) else {
                        warm(pool, subState, warmCursor)
                        warmCursor += 1
                        continue
                    }
                    task = waiting
                } else {
                    task = try pool.tasks.get(parker: parker, spinFor: PoolCore.spinNanoseconds) { [self] _ in
                        // `giveBack` and `PoolCore.warm` unpark this wait.
                        !handedBackPending.load(ordering: .acquiring) && warmCursor >= pool.warmList.count
                    }
                }
            } catch .stopped {
                continue
            } catch {
                return false  // closed and drained
            }
            let takenAt = MonotonicClock.now()
            guard task.lifecycle.start() else {
                pool.post(PoolEvent(kind: .skipped, id: task.id, task: task, payload: nil, text: nil,
                                    worker: index, postedAt: takenAt))
                continue
            }
            pool.stats.add(.queueWait, nanoseconds: takenAt &- task.submittedAt)
            interruptRequested.store(false, ordering: .releasing)
            state.withLock {
                $0.task = task
                $0.activity = .running
                $0.interruptDelivered = false
            }
            PyEval_RestoreThread(subState)
            releaseHandedBack()
            var (payload, failure) = run(task, pool.stats)
            _ = PyEval_SaveThread()
            state.withLock {
                $0.task = nil
                $0.activity = .idle
            }
            let wasInterrupted = task.lifecycle.finish()
            if wasInterrupted {
                // The interrupter may have set the async exception after the task's Python code
                // ended; clear it so that it cannot hit the next task.
                PyEval_RestoreThread(subState)
                PyThreadState_SetAsyncExc(UInt(PyThread_get_thread_ident()), nil)
                _ = PyEval_SaveThread()
            }
            let kind: PoolEvent.Kind
            if wasInterrupted {
                kind = .interrupted
            } else if payload != nil {
                kind = .completed
            } else {
                kind = .internalError
                failure = failure ?? "the task runner failed"
            }
            pool.stats.count {
                switch (kind, payload) {
                case (.completed, .lent?), (.completed, .lentArgument?):
                    $0.tasksCompleted += 1
                case (.completed, .encoded(let buffer)?):
                    if buffer.count > 0 && WireFormat.isValue(buffer.contents[0]) { $0.tasksCompleted += 1 } else { $0.tasksFailed += 1 }
                case (.interrupted, _): $0.tasksInterrupted += 1
                default: $0.tasksFailed += 1
                }
            }
            pool.post(PoolEvent(kind: kind, id: task.id, task: task, payload: payload, text: failure,
                                worker: index, postedAt: MonotonicClock.now()))
            ran += 1
            if limit > 0 && ran >= limit {
                return !(pool.tasks.isClosed && pool.tasks.count == 0)
            }
        }
    }

    /// The next task if one waits, nil if none does. Throws `.closed` once the queue is
    /// closed and drained.
    private static func taskIfAny(_ pool: PoolCore) throws(QueueFailure) -> Task? {
        do {
            return try pool.tasks.get(block: false)
        } catch .empty {
            return nil
        }
    }

    /// Imports the module at `position` of `pool.warmList` in this worker's interpreter (called
    /// and returns without its GIL): `preload="auto"`. A failure is recorded (and its first
    /// one per module told to the caller), never raised: the task that needs the module gets
    /// its own error. Interruptible like the initializer (shutdown, Ctrl-C, exit).
    private func warm(_ pool: PoolCore, _ subState: UnsafeMutablePointer<PyThreadState>, _ position: Int) {
        let module = pool.warmList[position]
        // As for a task: the flag is cleared before the activity says what a request targets.
        interruptRequested.store(false, ordering: .releasing)
        state.withLock {
            $0.activity = .warming
            $0.interruptDelivered = false
        }
        // A pool closed meanwhile starts no import: its interruption (`interrupt_initializers`
        // follows `close`) could have come before the activity above and found nothing to stop.
        if pool.tasks.isClosed {
            state.withLock { $0.activity = .idle }
            return
        }
        PyEval_RestoreThread(subState)
        let failure = importForWarming(module)
        state.withLock { $0.activity = .idle }  // no interruption targets the import from here
        let stopped = interruptRequested.load(ordering: .acquiring)
        if stopped {
            // The interrupter may have raised after the import returned: drop it.
            PyThreadState_SetAsyncExc(UInt(PyThread_get_thread_ident()), nil)
        }
        _ = PyEval_SaveThread()
        if stopped { return }  // stopped on request: not a failure of the module
        guard let failure else {
            warmed.withLock { $0.append(position) }
            return
        }
        if pool.recordWarmFailure(module, failure) {
            let text = Array((module + "\n" + failure).utf8)
            let payload = text.withUnsafeBytes { ByteBuffer(copying: $0) }
            pool.post(PoolEvent(kind: .message, id: PoolCore.warmFailedTag, task: nil, payload: .encoded(payload),
                                text: nil, worker: index, postedAt: MonotonicClock.now()))
        }
    }

    /// Runs `preload.warm_module(module)` (this worker's GIL held): nil on success, else the
    /// failure's text.
    private func importForWarming(_ module: String) -> String? {
        guard let preload = PyImport_ImportModule("subinterpreter_parallelism.preload") else {
            return takeErrorText("importing subinterpreter_parallelism.preload")
        }
        defer { Py_DecRef(preload) }
        guard let warmModule = PyObject_GetAttrString(preload, "warm_module") else {
            return takeErrorText("reading preload.warm_module")
        }
        defer { Py_DecRef(warmModule) }
        guard let name = Py.string(module) else { return takeErrorText("warming \(module)") }
        defer { Py_DecRef(name) }
        guard let outcome = PyObject_CallOneArg(warmModule, name) else { return takeErrorText("warming \(module)") }
        defer { Py_DecRef(outcome) }
        if outcome == sp_None() { return nil }
        return Py.swiftString(outcome) ?? takeErrorText("warming \(module)")
    }

    /// Decodes, calls and encodes one task in this worker's interpreter (GIL held).
    /// Returns the encoded outcome, or nil and the text of an internal failure.
    private func run(_ task: Task, _ stats: StepStatistics) -> (Payload?, String?) {
        if ShareableCodec.holds(task.input) { return runShareableCall(task, stats) }
        guard let view = WorkerInterpreter.view(of: task.input) else { return (nil, takeErrorText("wrapping the task")) }
        // Views of the caller's `bytes` (released after decoding, which copies them) and of
        // lent memoryviews (handed to the task itself: see BufferLend.swift).
        var extraViews: [PyObjectPointer] = []
        var lentViews: [PyObjectPointer] = []
        var allViews: [PyObjectPointer] = []
        func dropViews() {
            extraViews.forEach(releaseView)
            lentViews.forEach { Py_DecRef($0) }
        }
        for extra in task.extras {
            let made: PyObjectPointer?
            switch extra {
            case .bytes(let object):
                made = WorkerInterpreter.view(of: Py.contents(ofBytes: object))
                if let made { extraViews.append(made) }
            case .lent(let lend):
                made = lentBufferType.flatMap {
                    lend.view(as: UnsafeMutableRawPointer($0).assumingMemoryBound(to: PyTypeObject.self))
                }
                if let made { lentViews.append(made) }
            }
            guard let made else {
                if PyErr_Occurred() == nil { PyErr_SetString(PyExc_RuntimeError, "LentBuffer type missing") }
                dropViews()
                releaseView(view)
                return (nil, takeErrorText("wrapping the task"))
            }
            allViews.append(made)
        }
        guard let extras = WorkerInterpreter.list(allViews) else {
            dropViews()
            releaseView(view)
            return (nil, takeErrorText("wrapping the task"))
        }
        let t0 = MonotonicClock.now()
        var encoded: PyObjectPointer?
        var pins: QueuePins?
        var decodeArguments: [PyObjectPointer?] = [view, extras]
        let decoded = runnerFunction(&decodeCall, "decode_call").flatMap { decode in
            decodeArguments.withUnsafeMutableBufferPointer { PyObject_Vectorcall(decode, $0.baseAddress, 2, nil) }
        }
        // The caller's large bytes are copied by now; their views must not outlive the call.
        // Lent views live on in the call's arguments, as long as the task keeps them.
        Py_DecRef(extras)
        dropViews()
        if let call = decoded {
            let t1 = stats.addSince(t0, to: .decodeCall)
            let result = PyObject_CallOneArg(invoke, call)
            Py_DecRef(call)
            let t2 = stats.addSince(t1, to: .call)
            if let result, let buffer = WorkerInterpreter.shareableValue(result) {
                Py_DecRef(result)
                stats.addSince(t2, to: .encodeResult)
                releaseView(view)
                return (.encoded(buffer), nil)
            }
            (encoded, pins) = QueuePins.collecting { () -> PyObjectPointer? in
                guard let result else { return encodeRaisedException() }
                defer { Py_DecRef(result) }
                return encodeWithRunner(result)
            }
            stats.addSince(t2, to: .encodeResult)
        } else {
            stats.addSince(t0, to: .decodeCall)
            (encoded, pins) = QueuePins.collecting { () -> PyObjectPointer? in encodeRaisedException() }
        }
        // The view points into the caller's bytes; release it before the caller may free them.
        releaseView(view)
        return payload(of: encoded, pins, task)
    }

    /// A call in `ShareableCodec`'s format (`WireFormat.ShareableCall`): decoded, resolved and
    /// called here, without a Python frame of the runner and without pickle.
    private func runShareableCall(_ task: Task, _ stats: StepStatistics) -> (Payload?, String?) {
        let t0 = MonotonicClock.now()
        var result: PyObjectPointer?
        if let call = ShareableCodec.decode(task.input) {
            defer { Py_DecRef(call) }
            let target = resolve(call)
            let t1 = stats.addSince(t0, to: .decodeCall)
            if let (function, keywords) = target {
                result = callResolved(function, sp_Tuple_GET_ITEM(call, 2)!, keywords)
                Py_DecRef(function)
                Py_DecRef(keywords)
            }
            let t2 = stats.addSince(t1, to: .call)
            if let result, let buffer = WorkerInterpreter.shareableValue(result) {
                Py_DecRef(result)
                stats.addSince(t2, to: .encodeResult)
                return (.encoded(buffer), nil)
            }
        } else {
            stats.addSince(t0, to: .decodeCall)
        }
        let t2 = MonotonicClock.now()
        let (encoded, pins) = QueuePins.collecting { () -> PyObjectPointer? in
            guard let result else { return encodeRaisedException() }
            defer { Py_DecRef(result) }
            return encodeWithRunner(result)
        }
        stats.addSince(t2, to: .encodeResult)
        return payload(of: encoded, pins, task)
    }

    /// A returned value in `ShareableCodec`'s format, unless it is one that travels out of
    /// band (large `bytes`: lent, one copy) or one the format cannot hold (pickled instead).
    private static func shareableValue(_ value: PyObjectPointer) -> ByteBuffer? {
        guard WireFormat.outOfBandKind(value) == .inBand else { return nil }
        return ShareableCodec.encode(value)
    }

    /// The function and keyword arguments (a dict, or NULL) of a decoded shareable call, as new
    /// references; nil with an exception set when the function cannot be found (the task fails
    /// with that error, as an unpickling error would fail it) or the call is malformed.
    ///
    /// Resolved by name on every call, as unpickling the function would: the module from
    /// `sys.modules` (imported when missing), then the attributes of the qualified name. So a
    /// name rebound in this interpreter (by a task, an initializer) is honoured; nothing cached
    /// here can go stale.
    private func resolve(_ call: PyObjectPointer) -> (PyObjectPointer, PyObjectPointer?)? {
        guard sp_Tuple_CheckExact(call) != 0, sp_Tuple_GET_SIZE(call) == WireFormat.ShareableCall.fieldCount,
              let moduleName = sp_Tuple_GET_ITEM(call, 0), let qualname = sp_Tuple_GET_ITEM(call, 1),
              sp_Unicode_CheckExact(moduleName) != 0, sp_Unicode_CheckExact(qualname) != 0,
              sp_Tuple_CheckExact(sp_Tuple_GET_ITEM(call, 2)) != 0
        else {
            _ = Py.fail(PyExc_RuntimeError, "a malformed shareable call")
            return nil
        }
        var keywords: PyObjectPointer?
        let flat = sp_Tuple_GET_ITEM(call, 3)!
        if flat != sp_None() {
            guard sp_Tuple_CheckExact(flat) != 0, let dict = PyDict_New() else {
                if PyErr_Occurred() == nil { _ = Py.fail(PyExc_RuntimeError, "a malformed shareable call") }
                return nil
            }
            keywords = dict
            var i: Py_ssize_t = 0
            while i + 1 < sp_Tuple_GET_SIZE(flat) {
                if PyDict_SetItem(dict, sp_Tuple_GET_ITEM(flat, i), sp_Tuple_GET_ITEM(flat, i + 1)) != 0 {
                    Py_DecRef(dict)
                    return nil
                }
                i += 2
            }
        }
        var target = PyImport_GetModule(moduleName)
        if target == nil && PyErr_Occurred() == nil { target = PyImport_Import(moduleName) }
        guard var found = target else {
            Py_DecRef(keywords)
            return nil
        }
        let length = PyUnicode_GetLength(qualname)
        if PyUnicode_FindChar(qualname, 0x2E /* . */, 0, length, 1) == -1 {
            let function = PyObject_GetAttr(found, qualname)
            Py_DecRef(found)
            guard let function else { Py_DecRef(keywords); return nil }
            return (function, keywords)
        }
        guard let dot = PyUnicode_FromString("."), let parts = PyUnicode_Split(qualname, dot, -1) else {
            Py_DecRef(found)
            Py_DecRef(keywords)
            return nil
        }
        Py_DecRef(dot)
        defer { Py_DecRef(parts) }
        for i in 0..<PyList_Size(parts) {
            guard let next = PyObject_GetAttr(found, sp_List_GET_ITEM(parts, i)) else {
                Py_DecRef(found)
                Py_DecRef(keywords)
                return nil
            }
            Py_DecRef(found)
            found = next
        }
        return (found, keywords)
    }

    /// Calls a resolved function: a Python function or a class directly, a builtin through the
    /// runner's `invoke`, since builtins such as `eval`, `globals` or `vars` read the calling
    /// Python frame, which a call from here would not have (as with pickle, they see the
    /// runner's). A new reference, or nil with an exception set.
    private func callResolved(_ function: PyObjectPointer, _ args: PyObjectPointer, _ keywords: PyObjectPointer?) -> PyObjectPointer? {
        if sp_CFunction_Check(function) == 0 {
            let result = PyObject_Call(function, args, keywords)
            flushUnflushed()
            return result
        }
        guard let dict = keywords.map({ object -> PyObjectPointer in
            Py_IncRef(object)
            return object
        }) ?? PyDict_New() else { return nil }
        defer { Py_DecRef(dict) }
        guard let call = Py.tuple([function, args, dict]) else { return nil }
        defer { Py_DecRef(call) }
        return PyObject_CallOneArg(invoke, call)
    }

    /// What the runner's `invoke` does after a call: output a call left without a newline goes
    /// to the caller before the result (`_worker.unflushed`). A raised exception stays set.
    private func flushUnflushed() {
        guard let unflushed, PyList_Size(unflushed) > 0, let flush = flushUnflushedFunction else { return }
        let raised = PyErr_GetRaisedException()
        if let done = PyObject_CallNoArgs(flush) { Py_DecRef(done) } else { PyErr_Clear() }
        if let raised { PyErr_SetRaisedException(raised) }
    }

    /// The outcome the runner encoded (`bytes`, or a binary result to lend), as the payload
    /// the caller receives; nil and the text of an internal failure when encoding failed.
    private func payload(of encoded: PyObjectPointer?, _ pins: QueuePins?, _ task: Task) -> (Payload?, String?) {
        guard let encoded else { return (nil, takeErrorText("encoding the outcome")) }
        defer { Py_DecRef(encoded) }
        if sp_Bytes_Check(encoded) != 0 {
            return (.encoded(ByteBuffer(copying: Py.contents(ofBytes: encoded), pins: pins)), nil)
        }
        // `(value,)` or `(value, True)`: a binary result (`bytes`, a C-contiguous memoryview,
        // a bytearray), lent to the caller, which copies it once, instead of pickled; with
        // True, the caller makes it a bytearray.
        let size = sp_Tuple_Check(encoded) != 0 ? PyTuple_Size(encoded) : 0
        if size == 1 || size == 2, let value = sp_Tuple_GET_ITEM(encoded, 0) {
            let asByteArray = size == 2 && sp_Tuple_GET_ITEM(encoded, 1) == sp_True()
            if let lend = returnedLend(value, of: task) { return (.lentArgument(lend), nil) }
            guard let buffer = lendable(value) else { return (nil, takeErrorText("lending the result")) }
            return (.lent(LentBytes(buffer, owner: self, asByteArray: asByteArray)), nil)
        }
        return (nil, "the runner returned an outcome that is neither bytes nor a (value,) or (value, True) tuple")
    }

    /// The lend of `task` whose view `value` is, if `value` is a memoryview of it with the
    /// same memory, layout and read-only flag: then the caller's own view is the result.
    private func returnedLend(_ value: PyObjectPointer, of task: Task) -> BufferLend? {
        guard sp_MemoryView_Check(value) != 0, let type = lentBufferType,
              let view = sp_MemoryView_GET_BUFFER(value)?.pointee,
              let exporter = view.obj, UnsafeMutableRawPointer(Py_TYPE(exporter)) == UnsafeMutableRawPointer(type)
        else { return nil }
        let lend = Box.unwrap(exporter, as: BufferLend.self)
        guard task.extras.contains(where: { if case .lent(let each) = $0 { return each === lend } else { return false } })
        else { return nil }
        return lend.isPresented(as: view) ? lend : nil
    }

    /// A buffer export of a binary result (this interpreter's GIL held), or nil with an
    /// exception set. A `bytearray` that something besides the outcome tuple still references
    /// (a global, a thread) could change or be resized while the caller copies it: a snapshot
    /// of it is lent instead. One that only the tuple holds is lent as it is: no copy here.
    private func lendable(_ value: PyObjectPointer) -> UnsafeMutablePointer<Py_buffer>? {
        var source = value
        if sp_ByteArray_CheckExact(value) != 0 && sp_REFCNT(value) > 1 {
            guard let snapshot = PyBytes_FromObject(value) else { return nil }
            source = snapshot
        }
        defer { if source != value { Py_DecRef(source) } }
        let buffer = UnsafeMutablePointer<Py_buffer>.allocate(capacity: 1)
        // PyBUF_SIMPLE: C-contiguous bytes, whatever the format (the export holds `source`).
        guard PyObject_GetBuffer(source, buffer, 0) == 0 else {
            buffer.deallocate()
            return nil
        }
        return buffer
    }

    /// A new list of `items` (new references to them), None when there are none, or nil with
    /// an exception set.
    private static func list(_ items: [PyObjectPointer]) -> PyObjectPointer? {
        if items.isEmpty { return Py.none() }
        guard let list = PyList_New(0) else { return nil }
        for item in items where PyList_Append(list, item) != 0 {
            Py_DecRef(list)
            return nil
        }
        return list
    }

    /// A read-only memoryview over memory this interpreter does not own.
    private static func view(of buffer: UnsafeRawBufferPointer) -> PyObjectPointer? {
        // An empty buffer may have no address; any valid pointer does for zero bytes.
        let start = buffer.baseAddress ?? UnsafeRawPointer(emptyByte)
        return PyMemoryView_FromMemory(
            UnsafeMutablePointer(mutating: start.assumingMemoryBound(to: CChar.self)),
            Py_ssize_t(buffer.count), PyBUF_READ)
    }

    nonisolated(unsafe) private static let emptyByte = UnsafeMutablePointer<CChar>.allocate(capacity: 1)

    // MARK: - Lending results

    /// A result of this interpreter was lent to the caller (see `LentBytes`).
    func lend() {
        lentCount.add(1, ordering: .acquiringAndReleasing)
    }

    /// The caller is done with a lent object: queue it for release by this interpreter.
    /// Any thread may call this; the worker releases it at once when it waits for a task (the
    /// unpark wakes that wait), else when its current task ends or before it ends.
    func giveBack(_ buffer: UnsafeMutablePointer<Py_buffer>) {
        handedBack.withLock {
            $0.append(SendableBuffer(pointer: buffer))
            handedBackPending.store(true, ordering: .releasing)
        }
        lentCount.subtract(1, ordering: .acquiringAndReleasing)
        parker.unpark()
    }

    /// Releases the objects handed back (this worker's GIL held).
    private func releaseHandedBack() {
        let buffers = handedBack.withLock { list -> [SendableBuffer] in
            defer {
                list.removeAll()
                handedBackPending.store(false, ordering: .releasing)
            }
            return list
        }
        for buffer in buffers {
            PyBuffer_Release(buffer.pointer)
            buffer.pointer.deallocate()
        }
    }

    private func encodeRaisedException() -> PyObjectPointer? {
        guard let exception = PyErr_GetRaisedException() else { return nil }
        defer { Py_DecRef(exception) }
        return PyObject_CallOneArg(encodeError, exception)
    }

    /// Releases a memoryview made over foreign memory. If Python code kept the view (or a
    /// buffer exported from it), `release()` fails and the view stays usable, which would let
    /// it outlive the memory; we do not hand the view to user code, so this does not happen.
    private func releaseView(_ view: PyObjectPointer) {
        if let release = PyObject_GetAttrString(view, "release"), let done = PyObject_CallNoArgs(release) {
            Py_DecRef(done)
            Py_DecRef(release)
        } else {
            PyErr_Clear()
        }
        Py_DecRef(view)
    }

    // MARK: - Interrupting

    /// Asks for `TaskInterrupted` in `task` if this worker runs it, and returns at once: a
    /// blocking call (`Queue.get`, `sleep`) in the task ends now; Python code sees it at its
    /// next instruction, once this worker's interrupter has taken the worker's GIL (up to a
    /// switch interval, or until a C call that holds the GIL returns).
    @discardableResult
    func requestInterrupt(_ task: Task) -> Bool { request(.task(task)) }

    /// Asks the pool's initializer to stop, if this worker still runs it (or has not started
    /// it: then it is skipped), or the warm import it runs (`preload="auto"`). Returns at once.
    @discardableResult
    func requestInitializerInterrupt() -> Bool { request(.initializer) }

    /// Asks the warm import this worker runs (`preload="auto"`), if any, to stop; unlike
    /// `requestInitializerInterrupt`, an initializer that a queued task may need goes on.
    /// Returns at once.
    @discardableResult
    func requestWarmImportInterrupt() -> Bool { request(.warmImport) }

    private func request(_ target: Target) -> Bool {
        let requested = state.withLock { state -> Bool in
            guard !state.interrupterStopping, target.matches(state.activity, state.task) else { return false }
            // Set under the lock: a worker that starts its next task clears the flag before it
            // records that task here, so the flag never leaks into a later task.
            interruptRequested.store(true, ordering: .releasing)
            state.pendingTarget = target
            if !state.interrupterActive {
                // The previous interrupter has left its loop (it set `interrupterActive` false
                // under this lock) and only returns now: joining it takes no time.
                state.interrupter?.join()
                state.interrupter = NativeThread(stackSize: 256 << 10, name: "sp-interrupt-\(index)") { [self] in
                    runInterrupter()
                }
                state.interrupterActive = state.interrupter != nil
            }
            return true
        }
        guard requested else { return false }
        parker.unpark()  // a blocking call returns now
        return true
    }

    /// The interrupter thread: started by a request, it delivers until nothing is pending and
    /// ends (so that an idle pool keeps no extra thread); `end` joins the last one.
    private func runInterrupter() {
        while true {
            let next = state.withLock { state -> (Target, OpaquePointer)? in
                guard !state.interrupterStopping, let target = state.pendingTarget,
                      let interpreter = state.interpreter else {
                    // No interpreter yet: the bootstrap sees `interruptRequested` instead.
                    state.pendingTarget = nil
                    state.interrupterActive = false
                    return nil
                }
                state.pendingTarget = nil
                return (target, interpreter)
            }
            guard let (target, interpreter) = next else { return }
            nonisolated(unsafe) let worker = interpreter
            deliver(target, in: worker)
        }
    }

    /// Raises `TaskInterrupted` in the worker's thread if it still runs `target`.
    private func deliver(_ target: Target, in interpreter: OpaquePointer) {
        // `end` joins this thread before the interpreter goes, so `interpreter` is alive here.
        let visitor = PyThreadState_New(interpreter)
        PyEval_RestoreThread(visitor)  // waits while the worker holds its GIL
        state.withLock { state in
            // Holding the worker's GIL, this thread sees the target either still running (or
            // about to start) or over. A task that ended just now clears what is raised here
            // (its lifecycle says it was interrupted); the initializer's end does the same.
            guard target.matches(state.activity, state.task), !state.interruptDelivered,
                  let interruptType = state.interruptType else { return }
            PyThreadState_SetAsyncExc(state.threadIdent, interruptType)
            state.interruptDelivered = true
        }
        PyThreadState_Clear(visitor)
        PyThreadState_DeleteCurrent()
    }

    // MARK: - The current worker of this thread

    private static let currentKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// The worker whose thread is calling, or nil on any other thread.
    static var current: WorkerInterpreter? {
        guard let raw = pthread_getspecific(currentKey) else { return nil }
        return Unmanaged<WorkerInterpreter>.fromOpaque(raw).takeUnretainedValue()
    }

    private static func setCurrent(_ worker: WorkerInterpreter?) {
        pthread_setspecific(currentKey, worker.map { Unmanaged.passUnretained($0).toOpaque() })
    }

    /// With this worker's GIL held, after a wait ended because of `interrupt`: drops the pending
    /// asynchronous exception and raises `TaskInterrupted` now instead. Returns nil.
    func raiseInterruption() -> PyObjectPointer? {
        PyThreadState_SetAsyncExc(UInt(PyThread_get_thread_ident()), nil)
        let type = state.withLock { state -> PyObjectPointer? in
            state.interruptDelivered = true  // the interrupter need not raise it again
            return state.interruptType
        }
        PyErr_SetString(type ?? PyExc_KeyboardInterrupt, "the task was interrupted")
        return nil
    }
}
