// Interrupting a worker (cancel, task_timeout, Ctrl-C, shutdown) only *requests*: `request`
// sets a flag and wakes the worker if it waits in `Queue.get`/`sleep`, then hands the rest to
// this worker's interrupter thread (started by the request, ending once idle), which takes the
// worker's GIL to raise `TaskInterrupted` in it. Taking that GIL waits as long as the task holds
// it inside a C call (`sum(range(10**9))`), so no caller ever waits for it, and one stuck worker
// never delays another's interruption.
@preconcurrency import CPythonShim
import Glibc
import ParallelRuntime
import Synchronization

/// What one worker does, as interrupting and exiting see it, and its interrupter thread: the
/// one owner of that state (`WorkerInterpreter` reports its steps here).
final class WorkerInterrupter: @unchecked Sendable {
    /// What an interruption targets: what the worker does besides tasks (the initializer, a
    /// warm import), a warm import alone, or one task.
    enum Target {
        case initializer
        case warmImport
        case task(Task)

        func matches(_ activity: WorkerInterpreter.Activity, _ task: Task?) -> Bool {
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
        var activity = WorkerInterpreter.Activity.starting
        var task: Task?
        var interpreter: OpaquePointer?
        var threadIdent: UInt = 0
        /// The worker interpreter's `TaskInterrupted` class, borrowed from its `TaskRunner`
        /// (set while that runner lives; used only with the worker's GIL held).
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
    /// Set by `request` while a task or the initializer runs; cleared when the next task
    /// starts. Blocking calls (`BlockingCall`) check it.
    let requested = Atomic<Bool>(false)
    private let index: Int
    /// The worker's own wake-up line: a request wakes a blocking call in the task.
    private let parker: Parker

    init(index: Int, parker: Parker) {
        self.index = index
        self.parker = parker
    }

    // MARK: - The worker's steps

    /// What the worker's thread is doing now.
    var activity: WorkerInterpreter.Activity { state.withLock { $0.activity } }

    /// The task the worker runs now, if any.
    var task: Task? { state.withLock { $0.task } }

    func setActivity(_ activity: WorkerInterpreter.Activity) {
        state.withLock { $0.activity = activity }
    }

    /// The worker's interpreter exists: from here the initializer can be interrupted.
    func interpreterCreated(_ interpreter: OpaquePointer, thread ident: UInt) {
        nonisolated(unsafe) let interpreter = interpreter
        state.withLock {
            $0.interpreter = interpreter
            $0.threadIdent = ident
        }
    }

    /// The worker interpreter's `TaskInterrupted` class (borrowed from its runner, which
    /// outlives this: `stop` forgets it before the runner goes).
    func setInterruptType(_ type: PyObjectPointer) {
        nonisolated(unsafe) let type = type
        state.withLock { $0.interruptType = type }
    }

    /// The worker starts `task` (`.running`) or a warm import (`.warming`, task nil). The flag
    /// is cleared before the activity says what a request targets, so that it never leaks
    /// into a later task.
    func begin(_ activity: WorkerInterpreter.Activity, task: Task? = nil) {
        requested.store(false, ordering: .releasing)
        state.withLock {
            $0.task = task
            $0.activity = activity
            $0.interruptDelivered = false
        }
    }

    /// The task (or warm import) is over: the worker is idle.
    func end() {
        state.withLock {
            $0.task = nil
            $0.activity = .idle
        }
    }

    /// The next interpreter starts afresh: its initializer is interruptible, and nothing
    /// requested for the interpreter that ended carries over to it.
    func restart() {
        state.withLock {
            requested.store(false, ordering: .releasing)
            $0.activity = .starting
            $0.interruptDelivered = false
            $0.interrupterStopping = false
        }
    }

    /// Ends the interrupter thread, if it was started, and refuses later requests. Called
    /// without this worker's GIL (a visit in progress finishes first).
    func stop() {
        let interrupter = state.withLock { state -> NativeThread? in
            state.activity = .ending
            state.interpreter = nil
            state.interruptType = nil
            state.pendingTarget = nil
            state.interrupterStopping = true
            return state.interrupter
        }
        interrupter?.join()
    }

    /// Drops an asynchronous exception the interrupter may have raised after what it targeted
    /// ended (the worker's GIL held), so that it cannot hit what comes next.
    static func clearPendingInterrupt() {
        PyThreadState_SetAsyncExc(UInt(PyThread_get_thread_ident()), nil)
    }

    // MARK: - Requests (any thread)

    /// Asks for `TaskInterrupted` in `target` if the worker runs it (or, for the initializer,
    /// has not started it: then it is skipped). Returns at once.
    func request(_ target: Target) -> Bool {
        let requested = state.withLock { state -> Bool in
            guard !state.interrupterStopping, target.matches(state.activity, state.task) else { return false }
            // Set under the lock: a worker that starts its next task clears the flag before it
            // records that task here, so the flag never leaks into a later task.
            self.requested.store(true, ordering: .releasing)
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
    /// ends (so that an idle pool keeps no extra thread); `stop` joins the last one.
    private func runInterrupter() {
        while true {
            let next = state.withLock { state -> (Target, OpaquePointer)? in
                guard !state.interrupterStopping, let target = state.pendingTarget,
                    let interpreter = state.interpreter
                else {
                    // No interpreter yet: the bootstrap sees `requested` instead.
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
        // `stop` joins this thread before the interpreter goes, so `interpreter` is alive here.
        let visitor = PyThreadState_New(interpreter)
        PyEval_RestoreThread(visitor)  // waits while the worker holds its GIL
        state.withLock { state in
            // Holding the worker's GIL, this thread sees the target either still running (or
            // about to start) or over. A task that ended just now clears what is raised here
            // (its lifecycle says it was interrupted); the initializer's end does the same.
            guard target.matches(state.activity, state.task), !state.interruptDelivered,
                let interruptType = state.interruptType
            else { return }
            PyThreadState_SetAsyncExc(state.threadIdent, interruptType)
            state.interruptDelivered = true
        }
        PyThreadState_Clear(visitor)
        PyThreadState_DeleteCurrent()
    }

    /// With the worker's GIL held, on its thread, after a wait ended because of a request:
    /// drops the pending asynchronous exception and raises `TaskInterrupted` now instead.
    /// Returns nil.
    func raiseInterruption() -> PyObjectPointer? {
        WorkerInterrupter.clearPendingInterrupt()
        let type = state.withLock { state -> PyObjectPointer? in
            state.interruptDelivered = true  // the interrupter need not raise it again
            return state.interruptType
        }
        PyErr_SetString(type ?? PyExc_KeyboardInterrupt, "the task was interrupted")
        return nil
    }
}
