// `Pool.stats()`: the pool's counters, step times, worker start-ups and warm imports, as one
// new dict.
@preconcurrency import CPythonShim
import ParallelRuntime

extension NativePool {
    /// `stats()`: a new dict, or nil with an exception set (no half-filled dict: every
    /// partial object is an `OwnedObject`, released on the way out).
    func statsDictionary() -> PyObjectPointer? {
        let snapshot = core.stats.snapshot()
        func stepsDictionary() -> OwnedObject? {
            guard let steps = Py.dict() else { return nil }
            for step in Step.allCases {
                guard let entry = Py.dict(),
                    Py.set(entry, "total_s", OwnedObject(Py.float(Double(snapshot.nanoseconds[step.rawValue]) / 1e9))),
                    Py.set(entry, "count", OwnedObject(Py.int(Int64(snapshot.counts[step.rawValue])))),
                    Py.set(steps, step.name, entry)
                else { return nil }
            }
            return steps
        }
        let counters: [(String, Int64)] = [
            ("workers", Int64(core.workers.count)),
            ("alive_workers", Int64(core.aliveWorkerCount)),
            ("tasks_submitted", Int64(snapshot.tasksSubmitted)),
            ("tasks_completed", Int64(snapshot.tasksCompleted)),
            ("tasks_failed", Int64(snapshot.tasksFailed)),
            ("tasks_cancelled", Int64(snapshot.tasksCancelled)),
            ("tasks_interrupted", Int64(snapshot.tasksInterrupted)),
            ("tasks_queued", Int64(core.tasks.count)),
            // Entries kept for task_timeout deadlines, finished tasks' included until compacted.
            ("timeout_entries", Int64(core.deadlines?.count ?? 0)),
            ("interpreter_creation_retries", Int64(snapshot.creationRetries)),
            // Caller buffers (memoryview arguments) lent to workers and not yet released.
            ("lent_buffers", Int64(core.heldLends.load(ordering: .relaxed))),
        ]
        guard let result = Py.dict() else { return nil }
        for (key, value) in counters {
            guard Py.set(result, key, OwnedObject(Py.int(value))) else { return nil }
        }
        // worker_startup: per worker, its latest interpreter's start-up; None for a worker not up yet.
        guard Py.set(result, "steps", stepsDictionary()), Py.set(result, "worker_startup", startupList(snapshot))
        else { return nil }
        guard addWarming(to: result) else { return nil }
        return result.take()
    }

    /// `preload="auto"` in `stats()`: `warm_modules` (the pool's list), `warmed_modules` (per
    /// worker, those its current interpreter has imported ahead of tasks) and `warm_failures`
    /// (module -> the text of its first failure). False, with an exception set, on failure.
    private func addWarming(to result: borrowing OwnedObject) -> Bool {
        let names = core.warmList.all
        func nameList(_ indices: [Int]) -> OwnedObject? {
            guard let list = Py.list() else { return nil }
            for index in indices where !Py.append(list, OwnedObject(Py.string(names[index]))) { return nil }
            return list
        }
        guard let perWorker = Py.list(),
            Py.set(result, "warm_modules", nameList(Array(names.indices)))
        else { return false }
        for worker in core.workers {
            // A worker may have warmed a module appended after `names` was read: not shown yet.
            let warmed = worker.warmed.withLock { $0 }.filter { $0 < names.count }
            guard Py.append(perWorker, nameList(warmed)) else { return false }
        }
        guard Py.set(result, "warmed_modules", perWorker), let failures = Py.dict() else { return false }
        for (module, text) in core.warmFailures.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            guard Py.set(failures, module, OwnedObject(Py.string(text))) else { return false }
        }
        return Py.set(result, "warm_failures", failures)
    }

    /// `stats()["worker_startup"]`: for each worker, its latest interpreter's start-up as
    /// `{"start_s", "create_s", "bootstrap_s", "ready_s"}`, or None while it is not up. Nil,
    /// with an exception set, if a Python call fails.
    private func startupList(_ snapshot: StepStatistics.Snapshot) -> OwnedObject? {
        guard let list = Py.list() else { return nil }
        for index in 0..<core.workers.count {
            guard Py.append(list, startupEntry(snapshot.startups[index])) else { return nil }
        }
        return list
    }

    private func startupEntry(_ startup: StepStatistics.Startup?) -> OwnedObject? {
        guard let startup else { return OwnedObject(Py.none()) }
        guard let entry = Py.dict() else { return nil }
        let fields: [(String, UInt64)] = [
            ("start_s", startup.startedAfter), ("create_s", startup.create),
            ("bootstrap_s", startup.bootstrap), ("ready_s", startup.readyAfter),
        ]
        for (key, nanoseconds) in fields {
            guard Py.set(entry, key, OwnedObject(Py.float(Double(nanoseconds) / 1e9))) else { return nil }
        }
        return entry
    }
}
