// One worker: a native thread that owns one own-GIL sub-interpreter at a time: one for its
// whole life, or, with `max_tasks_per_worker`, a fresh one after every N tasks. This file is
// the thread and its loop: it handles thread states and the interpreter's life, and holds no
// Python object; what runs in the interpreter is the `TaskRunner`'s (TaskRunner.swift), the
// results it lends are `ResultLending`'s, and interrupting is `WorkerInterrupter`'s.
//
// The thread-state sequence:
//   ts0 = PyThreadState_New(main); PyEval_RestoreThread(ts0)
//   Py_NewInterpreterFromConfig(&sub, own GIL)   -- releases the main GIL, holds the new one
//   ... bootstrap, then per task: PyEval_RestoreThread(sub) ... PyEval_SaveThread() ...
//   Py_EndInterpreter(sub); PyEval_RestoreThread(ts0)   -- back on ts0; a recycled worker
//                                                          creates its next interpreter here
//   PyThreadState_Clear(ts0); PyThreadState_DeleteCurrent()
@preconcurrency import CPythonShim
import Glibc
import ParallelRuntime
import Synchronization

/// A worker thread and the sub-interpreter it owns.
final class WorkerInterpreter: @unchecked Sendable {
    let index: Int
    /// The worker's own wake-up line, for waits inside tasks (`Queue.get`, `sleep`).
    let parker = Parker()
    /// What the worker does, as interrupting sees it, and its interrupter thread.
    let interrupter: WorkerInterrupter
    /// The results this worker's interpreter lends to the caller.
    let lending: ResultLending

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

    private var thread: NativeThread?
    /// The pool this worker serves, while its thread runs (for `post_message`).
    private(set) var pool: PoolCore?
    /// Indices in the pool's `warmList` of the modules this worker's current interpreter has
    /// warmed (imported, or found imported already), in order (`stats()["warmed_modules"]`).
    let warmed = Mutex<[Int]>([])
    /// The version of `PoolCore.callerPath` that this worker's current interpreter's `sys.path`
    /// follows (used only on the worker's thread).
    private var pathVersion = 0

    init(index: Int) {
        self.index = index
        interrupter = WorkerInterrupter(index: index, parker: parker)
        lending = ResultLending(parker: parker)
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
    var currentTask: Task? { interrupter.task }

    func isRunning(_ task: Task) -> Bool { interrupter.task === task }

    /// What the worker's thread is doing now.
    var activity: Activity { interrupter.activity }

    /// Whether the task or initializer that runs now was asked to stop (blocking calls check).
    var interruptRequested: Bool { interrupter.requested.load(ordering: .acquiring) }

    /// Asks for `TaskInterrupted` in `task` if this worker runs it, and returns at once: a
    /// blocking call (`Queue.get`, `sleep`) in the task ends now; Python code sees it at its
    /// next instruction, once this worker's interrupter has taken the worker's GIL (up to a
    /// switch interval, or until a C call that holds the GIL returns).
    @discardableResult
    func requestInterrupt(_ task: Task) -> Bool { interrupter.request(.task(task)) }

    /// Asks the pool's initializer to stop, if this worker still runs it (or has not started
    /// it: then it is skipped), or the warm import it runs (`preload="auto"`). Returns at once.
    @discardableResult
    func requestInitializerInterrupt() -> Bool { interrupter.request(.initializer) }

    /// Asks the warm import this worker runs (`preload="auto"`), if any, to stop; unlike
    /// `requestInitializerInterrupt`, an initializer that a queued task may need goes on.
    /// Returns at once.
    @discardableResult
    func requestWarmImportInterrupt() -> Bool { interrupter.request(.warmImport) }

    /// With this worker's GIL held, after a wait ended because of an interrupt request: raises
    /// `TaskInterrupted` now. Returns nil.
    func raiseInterruption() -> PyObjectPointer? { interrupter.raiseInterruption() }

    // MARK: - The worker thread

    private func main(_ pool: PoolCore) {
        WorkerInterpreter.setCurrent(self)
        defer {
            interrupter.setActivity(.ended)
            WorkerInterpreter.setCurrent(nil)
            self.pool = nil
            pool.workerExited()
        }
        if index > 0 {
            // Let the first worker create its interpreter alone (see `PoolCore.startGate`).
            pool.startGate.wait(until: MonotonicClock.now() &+ PoolCore.startGateNanoseconds)
        }
        let mainState = PyThreadState_New(PyInterpreterState_Main())!
        PyEval_RestoreThread(mainState)
        // One round per interpreter: a worker with a task limit ends its interpreter after that
        // many tasks and starts the next round while tasks remain to be taken.
        while runInterpreter(pool, returningTo: mainState) {}
        // On the main interpreter's thread state, holding its GIL.
        PyThreadState_Clear(mainState)
        PyThreadState_DeleteCurrent()
    }

    /// Creates an interpreter, bootstraps it, serves tasks in it and ends it. Called and
    /// returns on the main interpreter's thread state with its GIL held. Returns true when the
    /// interpreter reached the task limit and tasks may still come: run another.
    private func runInterpreter(
        _ pool: PoolCore, returningTo mainState: UnsafeMutablePointer<PyThreadState>
    ) -> Bool {
        let startedAt = MonotonicClock.now()
        ForkGuard.liveInterpreters.add(1, ordering: .acquiringAndReleasing)
        let (created, reason) = createInterpreter(pool.stats)
        let createdAt = MonotonicClock.now()
        guard let subState = created else {
            // Still on the main interpreter's thread state, holding its GIL. The interrupter
            // never takes that GIL (it has no interpreter to visit), so joining it here is safe.
            ForkGuard.liveInterpreters.subtract(1, ordering: .acquiringAndReleasing)
            let attempts = WorkerInterpreter.creationAttempts
            pool.post(failure("could not create a sub-interpreter (\(attempts) attempts): \(reason)"))
            interrupter.stop()  // a request for the initializer may have started it
            pool.startGate.open()  // the others try for themselves
            return false
        }
        // From here the initializer can be interrupted (shutdown, Ctrl-C, exit).
        interrupter.interpreterCreated(
            PyThreadState_GetInterpreter(subState), thread: UInt(PyThread_get_thread_ident()))
        var runner: TaskRunner?
        let bootError = bootstrap(pool.configuration, pool.callerPath.read(), &runner)
        pool.stats.addStartup(worker: index, start: startedAt, created: createdAt)
        // Ready (or failed, which the others may not): the other workers start theirs now.
        if index == 0 { pool.startGate.open() }
        interrupter.setActivity(.idle)  // no interruption targets the initializer now
        let stopped = interruptRequested
        if stopped {
            // The interrupter may have raised after the initializer returned: drop it.
            WorkerInterrupter.clearPendingInterrupt()
        }
        _ = PyEval_SaveThread()
        var again = false
        if let bootError {
            // An initializer interrupted on request (the pool is shutting down) is no failure.
            if !stopped { pool.post(failure(bootError)) }
        } else if var bound = runner.take() {
            again = serve(pool, subState, &bound, limit: pool.configuration.maxTasksPerInterpreter)
            runner = consume bound
        }
        end(subState, releasing: runner.take(), returningTo: mainState, pool.stats)
        if again { interrupter.restart() }
        return again
    }

    /// Binds the runner in the new interpreter (its GIL held), with `sys.path` the caller's as
    /// of its latest submit, and runs the pool's bootstrap with it: nil on success, else the
    /// text of the failure. `runner` is set once bound.
    private func bootstrap(
        _ configuration: WorkerConfiguration, _ path: (version: Int, value: [String]), _ runner: inout TaskRunner?
    ) -> String? {
        let bound: TaskRunner
        do {
            bound = try TaskRunner(sysPath: path.value, interrupter: interrupter)
        } catch {
            return error.text
        }
        pathVersion = path.version
        // A request that came before the interrupter could raise `TaskInterrupted` (it needs
        // the type the runner has just given it) is seen here.
        let outcome =
            interruptRequested
            ? "the initializer was interrupted before it started" : bound.bootstrap(configuration.bootstrapPayload)
        runner = consume bound
        return outcome
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
                if interruptRequested { break }
            }
            if WorkerInterpreter.takeInjectedFailure() {
                reason = "Failed to import encodings module (a failure injected by a test)"
                continue
            }
            var sub: UnsafeMutablePointer<PyThreadState>?
            // Its posix module copies the C environment (EnvironmentLock.swift says why the lock).
            let status = EnvironmentLock.whileHeld { Py_NewInterpreterFromConfig(&sub, &config) }
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

    /// Ends the worker's interpreter (called without its GIL), releasing its runner first, and
    /// returns on the main interpreter's thread state, holding its GIL.
    private func end(
        _ subState: UnsafeMutablePointer<PyThreadState>, releasing runner: consuming TaskRunner?,
        returningTo mainState: UnsafeMutablePointer<PyThreadState>, _ stats: StepStatistics
    ) {
        // No interruption may visit the interpreter once it begins to end: stop the interrupter
        // (a visit in progress finishes first; this thread does not hold the GIL it needs).
        interrupter.stop()
        // Lent results point into this interpreter: wait until the caller has copied them.
        lending.waitUntilAllHandedBack()
        PyEval_RestoreThread(subState)
        lending.releaseHandedBack()
        if WorkerInterpreter.hasOtherThreads(subState) {
            // Py_EndInterpreter waits for them: a caller that gives up on exit says why.
            interrupter.setActivity(.endingWithThreads)
        }
        let endingAt = MonotonicClock.now()
        _ = consume runner  // its references go with this interpreter's GIL held
        Py_EndInterpreter(subState)
        ForkGuard.liveInterpreters.subtract(1, ordering: .acquiringAndReleasing)
        PyEval_RestoreThread(mainState)
        stats.addSince(endingAt, to: .interpreterShutdown)
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
        PoolEvent(
            kind: .workerFailed, id: Int64(index), task: nil, payload: nil, text: text,
            worker: index, postedAt: MonotonicClock.now())
    }

    // MARK: - Serving tasks

    /// Takes tasks until the task queue is closed and empty, or until `limit` tasks (if > 0)
    /// have run here; returns true in the second case unless the queue is closed and empty
    /// (a closed queue's remaining tasks still need a worker). Runs without the GIL between
    /// tasks. Tasks skipped because they were cancelled do not count.
    private func serve(
        _ pool: PoolCore, _ subState: UnsafeMutablePointer<PyThreadState>, _ runner: inout TaskRunner, limit: Int
    ) -> Bool {
        var ran = 0
        // The next module of `pool.warmList` this interpreter has not warmed (a fresh
        // interpreter starts from the first).
        var warmCursor = 0
        warmed.withLock { $0.removeAll() }
        while true {
            if lending.hasHandedBack {
                // Results the caller has copied: release them now rather than at the next task,
                // which may be far off (a 400 MB result would stay alive that long).
                PyEval_RestoreThread(subState)
                lending.releaseHandedBack()
                _ = PyEval_SaveThread()
            }
            let task: Task
            do {
                if warmCursor < pool.warmList.count {
                    // Modules to warm: only when no task waits, and one at a time.
                    guard let waiting = try WorkerInterpreter.taskIfAny(pool) else {
                        followCallerPath(pool, subState, runner)  // the module may come from a new entry
                        warm(pool, subState, runner, warmCursor)
                        warmCursor += 1
                        continue
                    }
                    task = waiting
                } else {
                    task = try pool.tasks.get(parker: parker, spinFor: PoolCore.spinNanoseconds) { [self] _ in
                        // `giveBack` and `PoolCore.warm` unpark this wait.
                        !lending.hasHandedBack && warmCursor >= pool.warmList.count
                    }
                }
            } catch .stopped {
                continue
            } catch {
                return false  // closed and drained
            }
            let takenAt = MonotonicClock.now()
            // The task was submitted after the caller's sys.path changed: it finds the change.
            followCallerPath(pool, subState, runner)
            guard task.lifecycle.start() else {
                pool.post(
                    PoolEvent(
                        kind: .skipped, id: task.id, task: task, payload: nil, text: nil,
                        worker: index, postedAt: takenAt))
                continue
            }
            pool.stats.add(.queueWait, nanoseconds: takenAt &- task.submittedAt)
            interrupter.begin(.running, task: task)
            PyEval_RestoreThread(subState)
            lending.releaseHandedBack()
            var (payload, failure) = runner.run(task, pool.stats, lending: lending)
            _ = PyEval_SaveThread()
            interrupter.end()
            let wasInterrupted = task.lifecycle.finish()
            if wasInterrupted {
                // The interrupter may have set the async exception after the task's Python code
                // ended; clear it so that it cannot hit the next task.
                PyEval_RestoreThread(subState)
                WorkerInterrupter.clearPendingInterrupt()
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
            WorkerInterpreter.count(kind, payload, in: pool.stats)
            pool.post(
                PoolEvent(
                    kind: kind, id: task.id, task: task, payload: payload, text: failure,
                    worker: index, postedAt: MonotonicClock.now()))
            ran += 1
            if limit > 0 && ran >= limit {
                return !(pool.tasks.isClosed && pool.tasks.count == 0)
            }
        }
    }

    /// Brings this interpreter's `sys.path` up to the caller's when the caller's changed since
    /// (`_worker.follow_sys_path`). Called without the GIL, while the worker is idle (no
    /// interruption targets it); when nothing changed, one atomic load. A failure is tried
    /// again before the next task.
    private func followCallerPath(
        _ pool: PoolCore, _ subState: UnsafeMutablePointer<PyThreadState>, _ runner: borrowing TaskRunner
    ) {
        guard pool.callerPath.version != pathVersion else { return }
        let (version, entries) = pool.callerPath.read()
        PyEval_RestoreThread(subState)
        let followed = runner.follow(sysPath: entries)
        _ = PyEval_SaveThread()
        if followed { pathVersion = version }
    }

    /// Counts a finished task as completed, failed or interrupted.
    private static func count(_ kind: PoolEvent.Kind, _ payload: Payload?, in stats: StepStatistics) {
        stats.count {
            switch (kind, payload) {
            case (.completed, .lent?), (.completed, .lentArgument?):
                $0.tasksCompleted += 1
            case (.completed, .encoded(let buffer)?):
                if buffer.count > 0 && WireFormat.isValue(buffer.contents[0]) {
                    $0.tasksCompleted += 1
                } else {
                    $0.tasksFailed += 1
                }
            case (.interrupted, _): $0.tasksInterrupted += 1
            default: $0.tasksFailed += 1
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
    private func warm(
        _ pool: PoolCore, _ subState: UnsafeMutablePointer<PyThreadState>, _ runner: borrowing TaskRunner,
        _ position: Int
    ) {
        let module = pool.warmList[position]
        interrupter.begin(.warming)
        // A pool closed meanwhile starts no import: its interruption (`interrupt_initializers`
        // follows `close`) could have come before the activity above and found nothing to stop.
        if pool.tasks.isClosed {
            interrupter.setActivity(.idle)
            return
        }
        PyEval_RestoreThread(subState)
        let failure = runner.warm(module)
        interrupter.setActivity(.idle)  // no interruption targets the import from here
        let stopped = interruptRequested
        if stopped {
            // The interrupter may have raised after the import returned: drop it.
            WorkerInterrupter.clearPendingInterrupt()
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
            pool.post(
                PoolEvent(
                    kind: .message, id: MessageTag.warmFailed.rawValue, task: nil, payload: .encoded(payload),
                    text: nil, worker: index, postedAt: MonotonicClock.now()))
        }
    }

    // MARK: - The current worker of this thread

    private static let currentKey: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
        return key
    }()

    /// The worker whose thread is calling, or nil on any other thread.
    static var current: WorkerInterpreter? {
        guard let raw = pthread_getspecific(currentKey) else { return nil }
        return Unmanaged<WorkerInterpreter>.fromOpaque(raw).takeUnretainedValue()
    }

    private static func setCurrent(_ worker: WorkerInterpreter?) {
        let raw = worker.map { Unmanaged.passUnretained($0).toOpaque() }
        precondition(pthread_setspecific(currentKey, raw) == 0, "pthread_setspecific failed")
    }
}
