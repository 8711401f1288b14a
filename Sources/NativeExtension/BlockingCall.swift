// How a native call that may block (Queue.get/put, sleep) waits: with the GIL released, parked
// on the calling worker's own parker so that an interrupt request (`WorkerInterrupter`) can wake it, and,
// on the main thread, returning to Python when a signal handler ran (Ctrl-C).
@preconcurrency import CPythonShim
import ParallelRuntime

enum BlockingCall {
    /// Why a wait was abandoned before its operation completed.
    enum Stop {
        /// The task running on this worker was interrupted.
        case interrupted(WorkerInterpreter)
        /// A Python signal handler raised (KeyboardInterrupt); the exception is set.
        case pythonError
    }

    enum Outcome<T> {
        case value(T)
        case failed(QueueFailure)
        case stopped(Stop)
    }

    /// True when this thread's task was already asked to stop: a blocking call must not start.
    static var interruptPending: WorkerInterpreter? {
        guard let worker = WorkerInterpreter.current, worker.interruptRequested else { return nil }
        return worker
    }

    /// Runs `body(parker, keepWaiting)` with the GIL released.
    static func run<T>(
        _ body: (Parker, (WakeReason) -> Bool) throws(QueueFailure) -> T
    ) -> Outcome<T> {
        let worker = WorkerInterpreter.current
        let parker = worker?.parker ?? Parker()
        var stop: Stop?
        let saved = PyEval_SaveThread()
        let keepWaiting: (WakeReason) -> Bool = { reason in
            if let worker, worker.interruptRequested {
                stop = .interrupted(worker)
                return false
            }
            if reason == .signalled {
                PyEval_RestoreThread(saved)
                let raised = PyErr_CheckSignals() != 0
                _ = PyEval_SaveThread()
                if raised {
                    stop = .pythonError
                    return false
                }
            }
            return true
        }
        let outcome: Outcome<T>
        do {
            outcome = .value(try body(parker, keepWaiting))
        } catch .stopped where stop != nil {
            outcome = .stopped(stop!)
        } catch {
            outcome = .failed(error)
        }
        PyEval_RestoreThread(saved)
        return outcome
    }

    /// Sets the Python exception for a stopped wait and returns nil.
    static func raise(_ stop: Stop) -> PyObjectPointer? {
        switch stop {
        case .interrupted(let worker): return worker.raiseInterruption()
        case .pythonError: return nil
        }
    }

    /// `sleep(seconds)` for worker interpreters: like `time.sleep`, but an interrupt ends it.
    static func sleep(seconds: Double) -> PyObjectPointer? {
        if let worker = interruptPending { return worker.raiseInterruption() }
        let deadline = MonotonicClock.deadline(afterSeconds: seconds)
        let outcome: Outcome<Void> = run { parker, keepWaiting throws(QueueFailure) in
            while true {
                let reason = parker.park(until: deadline)
                if reason == .timedOut { return }
                if !keepWaiting(reason) { throw .stopped }
            }
        }
        switch outcome {
        case .value: return Py.none()
        case .stopped(let stop): return raise(stop)
        case .failed: return Py.none()
        }
    }
}
