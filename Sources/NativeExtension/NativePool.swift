// `_native.Pool`: the Python face of `PoolCore`, used by the executor in
// python/subinterpreter_parallelism/executor.py (never by users directly).
@preconcurrency import CPythonShim
import Glibc
import ParallelRuntime

final class NativePool: NativeBacked {
    let core: PoolCore
    /// How `submit` encodes calls; nil once the pool's Python object is gone.
    private var calls: CallEncoder?
    /// The `ResultBuffer` type of the creating interpreter's module; nil once the pool's
    /// Python object is gone.
    private(set) var resultBufferType: OwnedObject?
    /// The completion thread's parker (only that thread calls `deliver`).
    let deliveryParker = Parker()
    /// `_pickle.loads` (borrowed from the module state, which outlives the pool), for the fast
    /// path of a returned value.
    let cLoads: PyObjectPointer?

    init(
        core: PoolCore, encoder: PyObjectPointer, resultBufferType: PyObjectPointer,
        cPickle: (dumps: PyObjectPointer, loads: PyObjectPointer)?
    ) {
        self.core = core
        calls = CallEncoder(encoder: OwnedObject(retaining: encoder), dumps: cPickle?.dumps, core: core)
        self.resultBufferType = OwnedObject(retaining: resultBufferType)
        cLoads = cPickle?.loads
    }

    func releasePythonReferences() {
        core.stopDeadlines()
        calls?.namedFunctions.forget()
        calls = nil
        resultBufferType = nil
        core.tasks.close()
        // Inputs of tasks still queued can be released only once no worker can read them.
        if core.aliveWorkerCount == 0 {
            for task in core.tasks.drain() { task.releaseInputs() }
            for event in core.events.drain() {
                event.task?.releaseInputs()
                if case .lend(let lend)? = event.payload { lend.release() }
            }
        }
    }

    // MARK: - Methods

    /// Pool(workers, sys_path, bootstrap_payload, encoder, thread_names=None, max_tasks_per_worker=0,
    ///      task_timeout=None)
    static let new:
        @convention(c) (
            UnsafeMutablePointer<PyTypeObject>?, PyObjectPointer?, PyObjectPointer?
        ) -> PyObjectPointer? = { type, args, kwargs in
            // Positional only: a keyword (`task_timeout=...`) was once ignored without a word.
            if let kwargs, PyDict_Size(kwargs) > 0 {
                return Py.fail(PyExc_TypeError, "Pool() takes no keyword arguments")
            }
            guard let type, let args, (4...7).contains(PyTuple_Size(args)) else {
                return Py.fail(
                    PyExc_TypeError,
                    "Pool(workers, sys_path, bootstrap_payload, encoder, thread_names=None, max_tasks_per_worker=0, task_timeout=None)"
                )
            }
            guard let workers = Py.int64(sp_Tuple_GET_ITEM(args, 0)) else { return nil }
            guard workers >= 1 && workers <= maxWorkers else {
                return Py.fail(PyExc_ValueError, "workers must be 1..\(maxWorkers)")
            }
            guard let sysPath = NativePool.sysPath(sp_Tuple_GET_ITEM(args, 1)!) else { return nil }
            let payload = sp_Tuple_GET_ITEM(args, 2)!
            var bootstrap: ByteBuffer?
            if payload != sp_None() {
                guard sp_Bytes_Check(payload) != 0 else {
                    return Py.fail(PyExc_TypeError, "bootstrap_payload must be bytes")
                }
                bootstrap = ByteBuffer(copying: Py.contents(ofBytes: payload))
            }
            let encoder = sp_Tuple_GET_ITEM(args, 3)!
            guard PyCallable_Check(encoder) != 0 else { return Py.fail(PyExc_TypeError, "encoder must be callable") }
            var threadNames: [String] = []
            if PyTuple_Size(args) >= 5, let names = sp_Tuple_GET_ITEM(args, 4), names != sp_None() {
                guard sp_List_Check(names) != 0 else {
                    return Py.fail(PyExc_TypeError, "thread_names must be a list of str or None")
                }
                for i in 0..<PyList_Size(names) {
                    guard let name = Py.swiftString(sp_List_GET_ITEM(names, i)) else { return nil }
                    threadNames.append(name)
                }
            }
            var maxTasks: Int64 = 0
            if PyTuple_Size(args) >= 6 {
                guard let value = Py.int64(sp_Tuple_GET_ITEM(args, 5)) else { return nil }
                guard value >= 0 else {
                    return Py.fail(PyExc_ValueError, "max_tasks_per_worker must be >= 0 (0: no limit)")
                }
                maxTasks = value
            }
            var taskTimeout: UInt64?
            if PyTuple_Size(args) == 7, let timeout = sp_Tuple_GET_ITEM(args, 6), timeout != sp_None() {
                guard let seconds = Py.double(timeout) else { return nil }
                guard seconds > 0, seconds.isFinite else {
                    return Py.fail(PyExc_ValueError, "task_timeout must be > 0")
                }
                taskTimeout = UInt64(min(seconds * 1e9, Double(UInt64.max / 4)))
            }
            guard let state = ModuleState.of(type: type), let bufferType = state.pointee.result_buffer_type else {
                return Py.fail(PyExc_RuntimeError, "_native module state is missing")
            }
            let core = PoolCore(
                workerCount: Int(workers), sysPath: sysPath,
                configuration: WorkerConfiguration(
                    bootstrapPayload: bootstrap, stackSize: workerStackSize,
                    threadNames: threadNames, maxTasksPerInterpreter: Int(maxTasks)),
                taskTimeout: taskTimeout)
            let cPickle = ModuleState.cPickle(for: type)
            if cPickle == nil { PyErr_Clear() }  // the fast paths are optional
            let pool = NativePool(core: core, encoder: encoder, resultBufferType: bufferType, cPickle: cPickle)
            guard let instance = Box.wrap(pool, as: type) else {
                pool.releasePythonReferences()  // no Python object will do it: the references it took
                return nil
            }
            _ = core.start()  // a refused thread is reported as a workerFailed event
            return instance
        }

    /// The strings of `list`, a `sys.path` (a list of str), or nil with TypeError set.
    static func sysPath(_ list: PyObjectPointer) -> [String]? {
        guard sp_List_Check(list) != 0 else {
            PyErr_SetString(PyExc_TypeError, "sys_path must be a list of str")
            return nil
        }
        var entries: [String] = []
        for i in 0..<PyList_Size(list) {
            guard let entry = Py.swiftString(sp_List_GET_ITEM(list, i)) else { return nil }
            entries.append(entry)
        }
        return entries
    }

    /// Worker threads get 32 MiB of stack (only touched pages cost memory), so that deep
    /// C recursion hits Python's recursion limit long before the end of the stack.
    static let workerStackSize = 32 << 20

    static let methods: [MethodEntry] = [
        .fast("submit", "submit($self, task_id, fn, args, kwargs, /)\n--\n\nEncode the call and queue it.") {
            me, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("submit", 4...4) else { return nil }
            return Box.unwrap(me, as: NativePool.self).submit(arguments)
        },
        .fast(
            "cancel",
            "cancel($self, task_id, interrupt=True, /)\n--\n\n0 (too late: the completion thread or another stop settles the future), 1 (cancelled before it started), 2 (running task interrupted); 1 and 2 hand the settling of the future to the caller"
        ) { me, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("cancel", 1...2), let id = Py.int64(arguments[0]) else { return nil }
            var interrupt = true
            if let flag = arguments.optional(1) {
                let truth = PyObject_IsTrue(flag)
                if truth < 0 { return nil }
                interrupt = truth == 1
            }
            return Py.int(Int64(Box.unwrap(me, as: NativePool.self).cancel(id, interrupt: interrupt)))
        },
        .fast("phase", "phase($self, task_id, /)\n--\n\nThe TaskPhase value, or -1 once delivered") { me, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("phase", 1...1), let id = Py.int64(arguments[0]) else { return nil }
            let task = Box.unwrap(me, as: NativePool.self).core.task(withID: id)
            return Py.int(Int64(task.map { Int($0.lifecycle.current.rawValue) } ?? -1))
        },
        .noArgs(
            "interrupt_all",
            "interrupt_all($self, /)\n--\n\nInterrupt every running task and initializer; returns how many. Only requests: returns at once."
        ) { me, _ in
            Py.int(Int64(Box.unwrap(me, as: NativePool.self).interruptAll()))
        },
        .noArgs(
            "interrupt_initializers",
            "interrupt_initializers($self, /)\n--\n\nInterrupt the initializers still running (or not started); returns how many. Only requests: returns at once."
        ) { me, _ in
            Py.int(
                Int64(
                    Box.unwrap(me, as: NativePool.self).core.workers.filter { $0.requestInitializerInterrupt() }.count))
        },
        .noArgs(
            "interrupt_warm_imports",
            "interrupt_warm_imports($self, /)\n--\n\nInterrupt the warm imports of preload=\"auto\" that workers run now (no task needs them); returns how many. Only requests: returns at once."
        ) { me, _ in
            Py.int(
                Int64(
                    Box.unwrap(me, as: NativePool.self).core.workers.filter { $0.requestWarmImportInterrupt() }.count))
        },
        .noArgs(
            "worker_activities",
            "worker_activities($self, /)\n--\n\nWhat each worker thread does now: a list of WORKER_* values, by worker index."
        ) {
            me, _ in
            let pool = Box.unwrap(me, as: NativePool.self)
            guard let list = Py.list() else { return nil }
            for worker in pool.core.workers {
                guard Py.append(list, OwnedObject(Py.int(worker.activity.rawValue))) else { return nil }
            }
            return list.take()
        },
        .fast(
            "deliver",
            "deliver($self, futures, settle, on_event, /)\n--\n\nWait for events; for each returned value, pop the task's future from the dict futures (id -> future) and call settle(future, value) (nothing when it is not there); call on_event(kind, id, payload, worker) for anything else; False once the pool has ended."
        ) { me, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("deliver", 3...3) else { return nil }
            guard sp_Dict_Check(arguments[0]) != 0 else {
                return Py.fail(PyExc_TypeError, "deliver(): futures must be a dict")
            }
            let values = ValueDelivery(futures: arguments[0], settle: arguments[1])
            return Box.unwrap(me, as: NativePool.self).deliver(values, onEvent: arguments[2])
        },
        .noArgs(
            "close",
            "close($self, /)\n--\n\nRefuse new tasks; workers finish the queued ones and end their interpreters."
        ) { me, _ in
            Box.unwrap(me, as: NativePool.self).core.close()
            return Py.none()
        },
        .noArgs(
            "state",
            "state($self, /)\n--\n\nThe pool's state: \"running\", \"shutting down\" (closed, workers still ending), \"shut down\" or \"broken\"."
        ) { me, _ in
            switch Box.unwrap(me, as: NativePool.self).core.lifecycle.state {
            case .running: Py.string("running")
            case .shuttingDown: Py.string("shutting down")
            case .shutDown: Py.string("shut down")
            case .broken: Py.string("broken")
            }
        },
        .noArgs(
            "broken_reason", "broken_reason($self, /)\n--\n\nWhy the pool is broken (str), or None while it is not."
        ) { me, _ in
            Box.unwrap(me, as: NativePool.self).core.lifecycle.brokenBecause.map { Py.string($0) } ?? Py.none()
        },
        .fast(
            "mark_broken",
            "mark_broken($self, reason, /)\n--\n\nThe pool is broken from now on (it refuses tasks; close() ends it); True for the first call, whose reason is kept. Takes no lock, so a forked child may call it."
        ) { me, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("mark_broken", 1...1), let reason = Py.swiftString(arguments[0]) else { return nil }
            return Py.bool(Box.unwrap(me, as: NativePool.self).core.lifecycle.breakDown(reason: reason))
        },
        .noArgs(
            "join",
            "join($self, /)\n--\n\nWait (GIL released) until every worker thread has ended; returns the ids of queued tasks that never ran."
        ) { me, _ in
            let pool = Box.unwrap(me, as: NativePool.self)
            Py.withoutGIL {
                pool.core.joinWorkers()
                pool.core.stopDeadlines()
            }
            return pool.releaseUnrunTasks()
        },
        .noArgs("alive_workers", "alive_workers($self, /)\n--\n\nWorker threads that have not ended yet.") { me, _ in
            Py.int(Int64(Box.unwrap(me, as: NativePool.self).core.aliveWorkerCount))
        },
        .fast(
            "warm",
            "warm($self, module, /)\n--\n\npreload=\"auto\": add module (a str) to the modules that idle workers import ahead of the tasks that need them (once per pool)."
        ) { me, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("warm", 1...1), let module = Py.swiftString(arguments[0]) else { return nil }
            guard !module.isEmpty else { return Py.fail(PyExc_ValueError, "module must be a non-empty str") }
            Box.unwrap(me, as: NativePool.self).core.warm(module)
            return Py.none()
        },
        .fast(
            "set_sys_path",
            "set_sys_path($self, sys_path, /)\n--\n\nThe caller's sys.path (a list of str) changed; each worker interpreter follows it before its next task."
        ) { me, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("set_sys_path", 1...1), let path = NativePool.sysPath(arguments[0]) else {
                return nil
            }
            Box.unwrap(me, as: NativePool.self).core.callerPath.set(path)
            return Py.none()
        },
        .noArgs("queued", "queued($self, /)\n--\n\nTasks waiting for a worker.") { me, _ in
            Py.int(Int64(Box.unwrap(me, as: NativePool.self).core.tasks.count))
        },
        .noArgs("stats", "stats($self, /)\n--\n\nCounters and per-step times measured by the runtime.") { me, _ in
            Box.unwrap(me, as: NativePool.self).statsDictionary()
        },
        .fast(
            "_fast_forward_deadlines",
            "_fast_forward_deadlines($self, seconds, /)\n--\n\nFor tests: the task_timeout deadlines of the tasks submitted so far come `seconds` earlier, as if that much time had passed for them (those it reaches expire now); returns how many were waiting."
        ) { me, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("_fast_forward_deadlines", 1...1), let seconds = Py.double(arguments[0]) else {
                return nil
            }
            guard seconds >= 0, seconds.isFinite else {
                return Py.fail(PyExc_ValueError, "seconds must be finite and >= 0")
            }
            let nanoseconds = UInt64(min(seconds * 1e9, Double(UInt64.max / 4)))
            let pool = Box.unwrap(me, as: NativePool.self)
            return Py.int(Int64(pool.core.deadlines?.fastForward(byNanoseconds: nanoseconds) ?? 0))
        },
    ]

    nonisolated(unsafe) static let spec = NativeTables.boxedTypeSpec(
        name: "subinterpreter_parallelism._native.Pool",
        doc:
            "Pool(workers, sys_path, bootstrap_payload, encoder, thread_names=None, max_tasks_per_worker=0, task_timeout=None, /)\n--\n\nWorker threads that each own an own-GIL interpreter (thread_names: their OS names, by index).",
        methods: methods,
        extraSlots: [PyType_Slot(slot: sp_slot_tp_new, pfunc: unsafeBitCast(new, to: UnsafeMutableRawPointer.self))])

    private func submit(_ arguments: Arguments) -> PyObjectPointer? {
        guard let id = Py.int64(arguments[0]) else { return nil }
        // Broken too: the executor turns this into BrokenInterpreterPool (see `state()`).
        guard core.lifecycle.acceptsTasks, let calls else {
            return Py.fail(PyExc_RuntimeError, "cannot schedule new futures after shutdown")
        }
        let start = MonotonicClock.now()
        var pins: QueuePins?
        guard let call = QueuePins.collecting(into: &pins, { calls.encode(arguments[1], arguments[2], arguments[3]) })
        else { return nil }
        let task = Task(call, id: id, submittedAt: MonotonicClock.now(), pins: pins)
        core.stats.add(.encodeCall, nanoseconds: task.submittedAt &- start)
        core.register(task)
        do {
            try core.tasks.put(task)
        } catch {
            core.forget(task)
            task.releaseInputs()
            return Py.fail(PyExc_RuntimeError, "cannot schedule new futures after shutdown")
        }
        core.startDeadline(of: task)
        core.stats.count { $0.tasksSubmitted += 1 }
        return Py.none()
    }

    private func cancel(_ id: Int64, interrupt: Bool) -> Int {
        guard let task = core.task(withID: id) else { return 0 }
        // Claiming: the caller settles the future; the completion thread drops the task's event.
        if task.lifecycle.cancelPending(claim: true) {
            core.stats.count { $0.tasksCancelled += 1 }
            // No worker will read them: released now, not when a worker reaches the task,
            // which a busy pool may do much later (its `skipped` event releases nothing more).
            task.releaseInputs()
            return 1
        }
        guard interrupt, task.lifecycle.requestInterrupt(claim: true) else { return 0 }
        // Only a request: the worker's interrupter raises TaskInterrupted in it. The worker may
        // finish at any moment; then there is nothing left to stop, and the finished task
        // reports itself as interrupted with its outcome attached.
        _ = core.worker(running: task)?.requestInterrupt(task)
        return 2
    }

    /// After the workers have ended: releases the inputs of tasks left in the queue (no worker
    /// can read them any more) and returns their ids as a list.
    private func releaseUnrunTasks() -> PyObjectPointer? {
        guard let ids = Py.list() else { return nil }
        guard core.aliveWorkerCount == 0 else { return ids.take() }
        core.tasks.close()
        var failed = false
        for task in core.tasks.drain() {
            core.forget(task)
            task.releaseInputs()
            // A task a caller cancelled meanwhile is that caller's to settle.
            guard !failed, task.lifecycle.cancelPending(claim: true) else { continue }
            failed = !Py.append(ids, OwnedObject(Py.int(task.id)))
        }
        return failed ? nil : ids.take()
    }

    private func interruptAll() -> Int {
        var count = 0
        for worker in core.workers {
            if worker.requestInitializerInterrupt() {
                count += 1
                continue
            }
            guard let task = worker.currentTask, task.lifecycle.requestInterrupt() else { continue }
            if worker.requestInterrupt(task) { count += 1 }
        }
        return count
    }
}
