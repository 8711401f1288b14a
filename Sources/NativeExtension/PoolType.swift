// `_native.Pool`: the Python face of `PoolCore`, used by the executor in
// python/subinterpreter_parallelism/executor.py (never by users directly).
@preconcurrency import CPythonShim
import Glibc
import ParallelRuntime

final class NativePool: NativeBacked {
    let core: PoolCore
    /// `encoder(fn, args, kwargs) -> bytes`, in the creating interpreter.
    private var encoder: PyObjectPointer?
    /// The `ResultBuffer` type of the creating interpreter's module.
    private var resultBufferType: UnsafeMutablePointer<PyTypeObject>?
    /// The completion thread's parker (only that thread calls `deliver`).
    private let deliveryParker = Parker()
    /// `_pickle.dumps`/`loads` (borrowed from the module state, which outlives the pool), for
    /// the fast paths: a call that plain pickle handles without `__main__`, and a returned value.
    private let cPickle: (dumps: PyObjectPointer, loads: PyObjectPointer)?

    init(core: PoolCore, encoder: PyObjectPointer, resultBufferType: UnsafeMutablePointer<PyTypeObject>,
         cPickle: (dumps: PyObjectPointer, loads: PyObjectPointer)?) {
        self.core = core
        self.encoder = encoder
        self.resultBufferType = resultBufferType
        self.cPickle = cPickle
        Py_IncRef(encoder)
        Py_IncRef(UnsafeMutableRawPointer(resultBufferType).assumingMemoryBound(to: PyObject.self))
    }

    func releasePythonReferences() {
        core.stopDeadlines()
        forgetNamedFunctions()
        Py_DecRef(encoder)
        encoder = nil
        Py_DecRef(resultBufferType.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: PyObject.self) })
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
    static let new: @convention(c) (
        UnsafeMutablePointer<PyTypeObject>?, PyObjectPointer?, PyObjectPointer?
    ) -> PyObjectPointer? = { type, args, kwargs in
        guard let type, let args, (4...7).contains(PyTuple_Size(args)) else {
            return Py.fail(PyExc_TypeError,
                           "Pool(workers, sys_path, bootstrap_payload, encoder, thread_names=None, max_tasks_per_worker=0, task_timeout=None)")
        }
        guard let workers = Py.int64(sp_Tuple_GET_ITEM(args, 0)) else { return nil }
        guard workers >= 1 && workers <= maxWorkers else { return Py.fail(PyExc_ValueError, "workers must be 1..\(maxWorkers)") }
        let pathList = sp_Tuple_GET_ITEM(args, 1)!
        guard sp_List_Check(pathList) != 0 else { return Py.fail(PyExc_TypeError, "sys_path must be a list of str") }
        var sysPath: [String] = []
        for i in 0..<PyList_Size(pathList) {
            guard let entry = Py.swiftString(sp_List_GET_ITEM(pathList, i)) else { return nil }
            sysPath.append(entry)
        }
        let payload = sp_Tuple_GET_ITEM(args, 2)!
        var bootstrap: ByteBuffer?
        if payload != sp_None() {
            guard sp_Bytes_Check(payload) != 0 else { return Py.fail(PyExc_TypeError, "bootstrap_payload must be bytes") }
            bootstrap = ByteBuffer(copying: Py.contents(ofBytes: payload))
        }
        let encoder = sp_Tuple_GET_ITEM(args, 3)!
        guard PyCallable_Check(encoder) != 0 else { return Py.fail(PyExc_TypeError, "encoder must be callable") }
        var threadNames: [String] = []
        if PyTuple_Size(args) >= 5, let names = sp_Tuple_GET_ITEM(args, 4), names != sp_None() {
            guard sp_List_Check(names) != 0 else { return Py.fail(PyExc_TypeError, "thread_names must be a list of str or None") }
            for i in 0..<PyList_Size(names) {
                guard let name = Py.swiftString(sp_List_GET_ITEM(names, i)) else { return nil }
                threadNames.append(name)
            }
        }
        var maxTasks: Int64 = 0
        if PyTuple_Size(args) >= 6 {
            guard let value = Py.int64(sp_Tuple_GET_ITEM(args, 5)) else { return nil }
            guard value >= 0 else { return Py.fail(PyExc_ValueError, "max_tasks_per_worker must be >= 0 (0: no limit)") }
            maxTasks = value
        }
        var taskTimeout: UInt64?
        if PyTuple_Size(args) == 7, let timeout = sp_Tuple_GET_ITEM(args, 6), timeout != sp_None() {
            guard let seconds = Py.double(timeout) else { return nil }
            guard seconds > 0, seconds.isFinite else { return Py.fail(PyExc_ValueError, "task_timeout must be > 0") }
            taskTimeout = UInt64(min(seconds * 1e9, Double(UInt64.max / 4)))
        }
        guard let state = ModuleState.of(type: type), let bufferType = state.pointee.result_buffer_type else {
            return Py.fail(PyExc_RuntimeError, "_native module state is missing")
        }
        let core = PoolCore(
            workerCount: Int(workers),
            configuration: WorkerConfiguration(sysPath: sysPath, bootstrapPayload: bootstrap, stackSize: workerStackSize,
                                               threadNames: threadNames, maxTasksPerInterpreter: Int(maxTasks)),
            taskTimeout: taskTimeout)
        let cPickle = ModuleState.cPickle(for: type)
        if cPickle == nil { PyErr_Clear() }  // the fast paths are optional
        let pool = NativePool(
            core: core, encoder: encoder,
            resultBufferType: UnsafeMutableRawPointer(bufferType).assumingMemoryBound(to: PyTypeObject.self),
            cPickle: cPickle)
        guard let instance = Box.wrap(pool, as: type) else {
            pool.releasePythonReferences()  // no Python object will do it: the references it took
            return nil
        }
        _ = core.start()  // a refused thread is reported as a workerFailed event
        return instance
    }

    /// Worker threads get 32 MiB of stack (only touched pages cost memory), so that deep
    /// C recursion hits Python's recursion limit long before the end of the stack.
    static let workerStackSize = 32 << 20

    static let methods: [MethodEntry] = [
        .fast("submit", "submit(task_id, fn, args, kwargs): encode the call and queue it.") { me, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("submit", 4...4) else { return nil }
            return Box.unwrap(me, as: NativePool.self).submit(arguments)
        },
.fast("cancel", "cancel(task_id, interrupt=True) -> 0 (too late: the completion thread or another stop settles the future), 1 (cancelled before it started), 2 (running task interrupted); 1 and 2 hand the settling of the future to the caller") { me, args, n in
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
        .fast("phase", "phase(task_id) -> the TaskPhase value, or -1 once delivered") { me, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("phase", 1...1), let id = Py.int64(arguments[0]) else { return nil }
            let task = Box.unwrap(me, as: NativePool.self).core.task(withID: id)
            return Py.int(Int64(task.map { Int($0.lifecycle.current.rawValue) } ?? -1))
        },
        .noArgs("interrupt_all", "Interrupt every running task and initializer; returns how many. Only requests: returns at once.") { me, _ in
            Py.int(Int64(Box.unwrap(me, as: NativePool.self).interruptAll()))
        },
        .noArgs("interrupt_initializers", "Interrupt the initializers still running (or not started); returns how many. Only requests: returns at once.") { me, _ in
            Py.int(Int64(Box.unwrap(me, as: NativePool.self).core.workers.filter { $0.requestInitializerInterrupt() }.count))
        },
        .noArgs("interrupt_warm_imports", "Interrupt the warm imports of preload=\"auto\" that workers run now (no task needs them); returns how many. Only requests: returns at once.") { me, _ in
            Py.int(Int64(Box.unwrap(me, as: NativePool.self).core.workers.filter { $0.requestWarmImportInterrupt() }.count))
        },
        .noArgs("worker_activities", "What each worker thread does now: a list of WORKER_* values, by worker index.") { me, _ in
            let pool = Box.unwrap(me, as: NativePool.self)
            guard let list = Py.list() else { return nil }
            for worker in pool.core.workers {
                guard Py.append(list, OwnedObject(Py.int(worker.activity.rawValue))) else { return nil }
            }
            return list.take()
        },
        .fast("deliver", "deliver(futures, settle, on_event) -> bool: wait for events; for each returned value, pop the task's future from the dict futures (id -> future) and call settle(future, value) (nothing when it is not there); call on_event(kind, id, payload, worker) for anything else; False once the pool has ended.") { me, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("deliver", 3...3) else { return nil }
            guard sp_Dict_Check(arguments[0]) != 0 else { return Py.fail(PyExc_TypeError, "deliver(): futures must be a dict") }
            let values = ValueDelivery(futures: arguments[0], settle: arguments[1])
            return Box.unwrap(me, as: NativePool.self).deliver(values, onEvent: arguments[2])
        },
        .noArgs("close", "Refuse new tasks; workers finish the queued ones and end their interpreters.") { me, _ in
            Box.unwrap(me, as: NativePool.self).core.close()
            return Py.none()
        },
        .noArgs("state", "The pool's state: \"running\", \"shutting down\" (closed, workers still ending), \"shut down\" or \"broken\".") { me, _ in
            switch Box.unwrap(me, as: NativePool.self).core.lifecycle.state {
            case .running: Py.string("running")
            case .shuttingDown: Py.string("shutting down")
            case .shutDown: Py.string("shut down")
            case .broken: Py.string("broken")
            }
        },
        .noArgs("broken_reason", "Why the pool is broken (str), or None while it is not.") { me, _ in
            Box.unwrap(me, as: NativePool.self).core.lifecycle.brokenBecause.map { Py.string($0) } ?? Py.none()
        },
        .fast("mark_broken", "mark_broken(reason) -> bool: the pool is broken from now on (it refuses tasks; close() ends it); True for the first call, whose reason is kept. Takes no lock, so a forked child may call it.") { me, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("mark_broken", 1...1), let reason = Py.swiftString(arguments[0]) else { return nil }
            return Py.bool(Box.unwrap(me, as: NativePool.self).core.lifecycle.breakDown(reason: reason))
        },
        .noArgs("join", "Wait (GIL released) until every worker thread has ended; returns the ids of queued tasks that never ran.") { me, _ in
            let pool = Box.unwrap(me, as: NativePool.self)
            Py.withoutGIL {
                pool.core.joinWorkers()
                pool.core.stopDeadlines()
            }
            return pool.releaseUnrunTasks()
        },
        .noArgs("alive_workers", "Worker threads that have not ended yet.") { me, _ in
            Py.int(Int64(Box.unwrap(me, as: NativePool.self).core.aliveWorkerCount))
        },
        .fast("warm", "warm(module): preload=\"auto\": add module (a str) to the modules that idle workers import ahead of the tasks that need them (once per pool).") { me, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("warm", 1...1), let module = Py.swiftString(arguments[0]) else { return nil }
            guard !module.isEmpty else { return Py.fail(PyExc_ValueError, "module must be a non-empty str") }
            Box.unwrap(me, as: NativePool.self).core.warm(module)
            return Py.none()
        },
        .noArgs("queued", "Tasks waiting for a worker.") { me, _ in
            Py.int(Int64(Box.unwrap(me, as: NativePool.self).core.tasks.count))
        },
        .noArgs("stats", "Counters and per-step times measured by the runtime.") { me, _ in
            Box.unwrap(me, as: NativePool.self).statsDictionary()
        },
    ]

    nonisolated(unsafe) static let spec = NativeTables.boxedTypeSpec(
        name: "subinterpreter_parallelism._native.Pool",
        doc: "Pool(workers, sys_path, bootstrap_payload, encoder, thread_names=None): worker threads that each own an own-GIL interpreter (thread_names: their OS names, by index).",
        methods: methods,
        extraSlots: [PyType_Slot(slot: sp_slot_tp_new, pfunc: unsafeBitCast(new, to: UnsafeMutableRawPointer.self))])

    private func submit(_ arguments: Arguments) -> PyObjectPointer? {
        guard let id = Py.int64(arguments[0]) else { return nil }
        // Broken too: the executor turns this into BrokenInterpreterPool (see `state()`).
        guard core.lifecycle.acceptsTasks else { return Py.fail(PyExc_RuntimeError, "cannot schedule new futures after shutdown") }
        let start = MonotonicClock.now()
        let (encodedCall, pins) = QueuePins.collecting { () -> PyObjectPointer? in
            shareableCall(arguments[1], arguments[2], arguments[3])
                ?? quickEncode(arguments[1], arguments[2], arguments[3]) ?? {
                var callArguments: [PyObjectPointer?] = [arguments[1], arguments[2], arguments[3]]
                return callArguments.withUnsafeMutableBufferPointer {
                    PyObject_Vectorcall(encoder, $0.baseAddress, 3, nil)
                }
            }()
        }
        guard let encoded = encodedCall else { return nil }
        guard let (payload, extras) = split(encoded) else {
            Py_DecRef(encoded)
            if PyErr_Occurred() != nil { return nil }  // a memoryview that cannot be lent
            return Py.fail(PyExc_TypeError, "the encoder must return bytes or (bytes, [bytes or memoryview, ...])")
        }
        Py_DecRef(encoded)
        let task = Task(id: id, inputObject: payload, extras: extras, submittedAt: MonotonicClock.now(), pins: pins)
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

    /// `_pickle.dumps((fn, args, kwargs), 5)` when that works and mentions no `__main__`
    /// (which the worker could not resolve); else nil, and the Python encoder takes over
    /// (cloudpickle, and a note naming what cannot be pickled).
    private func quickEncode(_ fn: PyObjectPointer, _ args: PyObjectPointer, _ kwargs: PyObjectPointer) -> PyObjectPointer? {
        // Arguments that go out of band: the Python encoder handles them.
        if NativePool.hasOutOfBand(args, kwargs) { return nil }
        guard let dumps = cPickle?.dumps, let call = Py.tuple([fn, args, kwargs]) else {
            PyErr_Clear()
            return nil
        }
        defer { Py_DecRef(call) }
        return Pickling.quickDumps(call, with: dumps)
    }

    // MARK: - Calls by name

    /// A function that pickle sends by reference: its `__module__` and `__qualname__`, which
    /// resolve back to it (checked the first time it is seen). Holds references to all three.
    private struct NamedFunction {
        let function: PyObjectPointer
        let module: PyObjectPointer
        let qualname: PyObjectPointer
    }

    /// The functions seen by `submit` that pickle would send by reference, by identity (each
    /// entry holds its function, so the address cannot be reused meanwhile). Read and changed
    /// only with the creating interpreter's GIL held, never across a Python call.
    private var namedFunctions: [UnsafeMutableRawPointer: NamedFunction] = [:]
    /// Past this many entries the table starts afresh (functions made at run time, e.g. by a
    /// decorator factory, must not accumulate).
    private static let namedFunctionLimit = 1024

    /// The call in `ShareableCodec`'s format (`WireFormat.ShareableCall`): when `fn` is one
    /// that pickle would send by reference, not from `__main__`, and every argument is
    /// shareable (and none travels out of band). Else nil, no exception set: pickle takes it.
    private func shareableCall(_ fn: PyObjectPointer, _ args: PyObjectPointer, _ kwargs: PyObjectPointer) -> PyObjectPointer? {
        guard sp_ByReferenceCallable(fn) != 0, sp_Tuple_CheckExact(args) != 0, sp_Dict_CheckExact(kwargs) != 0,
              let named = namedFunction(fn), !NativePool.hasOutOfBand(args, kwargs) else { return nil }
        var flatKeywords = Py.none()
        defer { Py_DecRef(flatKeywords) }
        let keywordCount = PyDict_Size(kwargs)
        if keywordCount > 0 {
            guard let flat = PyTuple_New(2 * keywordCount) else { PyErr_Clear(); return nil }
            Py_DecRef(flatKeywords)
            flatKeywords = flat
            var position: Py_ssize_t = 0, index: Py_ssize_t = 0
            var key: PyObjectPointer?
            var value: PyObjectPointer?
            while PyDict_Next(kwargs, &position, &key, &value) != 0 {
                Py_IncRef(key)
                Py_IncRef(value)
                sp_Tuple_SET_ITEM(flat, index, key)
                sp_Tuple_SET_ITEM(flat, index + 1, value)
                index += 2
            }
        }
        guard let call = Py.tuple([named.module, named.qualname, args, flatKeywords]) else { PyErr_Clear(); return nil }
        defer { Py_DecRef(call) }
        let encoded = ShareableCodec.encodeAsBytes(call)
        if encoded == nil { PyErr_Clear() }
        return encoded
    }

    /// `fn`'s names if pickle would send it by reference now: its module is imported and the
    /// qualified name, looked up there, is `fn` itself. The names are kept per function, the
    /// lookup is repeated on every call (a module attribute rebound since then makes pickle
    /// send the function by value, and so does this). Nil, no exception set, otherwise.
    private func namedFunction(_ fn: PyObjectPointer) -> NamedFunction? {
        let key = UnsafeMutableRawPointer(fn)
        if let known = namedFunctions[key] {
            return NativePool.resolves(known) ? known : nil
        }
        guard let module = PyObject_GetAttrString(fn, "__module__") else { PyErr_Clear(); return nil }
        guard let qualname = PyObject_GetAttrString(fn, "__qualname__") else {
            Py_DecRef(module)
            PyErr_Clear()
            return nil
        }
        Py_IncRef(fn)
        let named = NamedFunction(function: fn, module: module, qualname: qualname)
        // Exact str names only (what the worker can be sent); `__main__` is the Python
        // encoder's (cloudpickle, once per function); `<lambda>`, `f.<locals>.g` never resolve.
        guard sp_Unicode_CheckExact(module) != 0, sp_Unicode_CheckExact(qualname) != 0,
              PyUnicode_CompareWithASCIIString(module, WireFormat.mainMarker) != 0,
              PyUnicode_FindChar(qualname, 0x3C /* < */, 0, PyUnicode_GetLength(qualname), 1) == -1,
              NativePool.resolves(named)
        else {
            PyErr_Clear()
            NativePool.release(named)
            return nil
        }
        // Python code may have run above (a module's `__getattr__`): the table is read afresh.
        if namedFunctions.count >= NativePool.namedFunctionLimit { forgetNamedFunctions() }
        if let previous = namedFunctions.updateValue(named, forKey: key) { NativePool.release(previous) }
        return named
    }

    /// Whether `named.qualname`, looked up in the imported module `named.module`, is
    /// `named.function` (pickle's check). No exception is left set.
    private static func resolves(_ named: NamedFunction) -> Bool {
        guard let modules = PyImport_GetModuleDict(),
              var target = PyDict_GetItemWithError(modules, named.module).map({ object -> PyObjectPointer in
                  Py_IncRef(object)
                  return object
              })
        else {
            PyErr_Clear()
            return false
        }
        defer { Py_DecRef(target) }
        let length = PyUnicode_GetLength(named.qualname)
        if PyUnicode_FindChar(named.qualname, 0x2E /* . */, 0, length, 1) == -1 {
            // The common case, a module-level name: one lookup.
            guard let found = PyObject_GetAttr(target, named.qualname) else { PyErr_Clear(); return false }
            Py_DecRef(found)
            return found == named.function
        }
        guard let dot = PyUnicode_FromString("."), let parts = PyUnicode_Split(named.qualname, dot, -1) else {
            PyErr_Clear()
            return false
        }
        Py_DecRef(dot)
        defer { Py_DecRef(parts) }
        for i in 0..<PyList_Size(parts) {
            guard let next = PyObject_GetAttr(target, sp_List_GET_ITEM(parts, i)) else { PyErr_Clear(); return false }
            Py_DecRef(target)
            target = next
        }
        return target == named.function
    }

    private static func release(_ named: NamedFunction) {
        Py_DecRef(named.function)
        Py_DecRef(named.module)
        Py_DecRef(named.qualname)
    }

    private func forgetNamedFunctions() {
        let entries = namedFunctions
        namedFunctions = [:]
        for named in entries.values { NativePool.release(named) }
    }

    /// Whether a top-level argument travels out of band (`WireFormat.outOfBandKind`).
    private static func hasOutOfBand(_ args: PyObjectPointer, _ kwargs: PyObjectPointer) -> Bool {
        func large(_ object: PyObjectPointer?) -> Bool {
            guard let object else { return false }
            return WireFormat.outOfBandKind(object) != .inBand
        }
        if sp_Tuple_Check(args) != 0 {
            for i in 0..<PyTuple_Size(args) where large(sp_Tuple_GET_ITEM(args, i)) { return true }
        }
        if sp_Dict_Check(kwargs) != 0 {
            var position: Py_ssize_t = 0
            var key: PyObjectPointer?
            var value: PyObjectPointer?
            while PyDict_Next(kwargs, &position, &key, &value) != 0 {
                if large(value) { return true }
            }
        }
        return false
    }

    /// The encoder's output: `bytes`, or `(bytes, [bytes or memoryview, ...])` with
    /// out-of-band arguments; a memoryview is lent (its buffer export taken here). Returns new
    /// references, or nil when the shape is wrong (no error set) or a memoryview cannot be
    /// lent (error set).
    private func split(_ encoded: PyObjectPointer) -> (PyObjectPointer, [Task.Extra])? {
        if sp_Bytes_Check(encoded) != 0 {
            Py_IncRef(encoded)
            return (encoded, [])
        }
        guard sp_Tuple_Check(encoded) != 0, PyTuple_Size(encoded) == 2,
              let payload = sp_Tuple_GET_ITEM(encoded, 0), sp_Bytes_Check(payload) != 0,
              let list = sp_List_Check(sp_Tuple_GET_ITEM(encoded, 1)) != 0 ? sp_Tuple_GET_ITEM(encoded, 1) : nil,
              (0..<PyList_Size(list)).allSatisfy({
                  sp_Bytes_Check(sp_List_GET_ITEM(list, $0)) != 0 || sp_MemoryView_Check(sp_List_GET_ITEM(list, $0)) != 0
              })
        else { return nil }
        var extras: [Task.Extra] = []
        for i in 0..<PyList_Size(list) {
            let item = sp_List_GET_ITEM(list, i)!
            if sp_Bytes_Check(item) != 0 {
                Py_IncRef(item)
                extras.append(.bytes(item))
            } else if let lend = BufferLend.take(item, for: core) {
                extras.append(.lent(lend))
            } else {
                // Nothing was queued: give back what was taken so far.
                for extra in extras {
                    switch extra {
                    case .bytes(let object): Py_DecRef(object)
                    case .lent(let lend): lend.callerDone()
                    }
                }
                return nil
            }
        }
        Py_IncRef(payload)
        return (payload, extras)
    }

    /// What the fast path of delivery did with an event.
    private enum FastDelivery: ~Copyable {
        /// Handed to its future (or the failure to do so reported as unraisable).
        case delivered
        /// Not a plain returned value, or one to unpickle in Python: the general path takes it.
        case general
        /// The value could not be built here (memory ran out): the exception to fail the task with.
        case failed(OwnedObject)
    }

    /// The fast path of delivery: a task that returned a value, unpickled here and handed to
    /// its future (`ValueDelivery`). No exception is left set, whatever it returns.
    private func deliverValue(_ event: PoolEvent, to values: ValueDelivery) -> FastDelivery {
        guard event.kind == .completed, let payload = event.payload else { return .general }
        let built: OwnedObject?
        switch payload {
        case .lent(let lent):
            // The one copy; `lent` goes back to the worker after this.
            built = OwnedObject(lent.asByteArray ? Py.byteArray(lent.contents) : Py.bytes(lent.contents))
            guard built != nil else { return NativePool.failure() }
        case .lend:
            return .general
        case .lentArgument(let lend):
            built = OwnedObject(lend.callerView())
            guard built != nil else { return NativePool.failure() }
        case .encoded(let buffer) where ShareableCodec.holds(buffer):
            // A value in the shareable format: built here, no pickle.
            built = OwnedObject(ShareableCodec.decode(buffer))
            guard built != nil else { return NativePool.failure() }
        case .encoded(let buffer):
            guard buffer.count > 0, buffer.contents[0] == WireFormat.valueTag, let loads = cPickle?.loads else { return .general }
            built = OwnedObject(Pickling.loads(buffer, with: loads))
            guard built != nil else {
                PyErr_Clear()  // the general path reports why it cannot be unpickled here
                return .general
            }
        }
        guard let value = built else { return .general }
        guard let id = OwnedObject(Py.int(event.id)) else { return NativePool.failure() }
        return values.settle(id.borrowed, with: value.borrowed) ? .delivered : NativePool.failure()
    }

    /// `.failed` with the exception now set (taken), or `.general` if none is.
    private static func failure() -> FastDelivery {
        if let exception = raised() { return .failed(exception) }
        return .general
    }

    /// The exception now set, taken (owned), or nil if none is.
    private static func raised() -> OwnedObject? { OwnedObject(PyErr_GetRaisedException()) }

    private func cancel(_ id: Int64, interrupt: Bool) -> Int {
        guard let task = core.task(withID: id) else { return 0 }
        // Claiming: the caller settles the future; the completion thread drops the task's event.
        if task.lifecycle.cancelPending(claim: true) {
            core.stats.count { $0.tasksCancelled += 1 }
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

    private func deliver(_ values: ValueDelivery, onEvent callback: PyObjectPointer) -> PyObjectPointer? {
        let parker = deliveryParker
        let batch = Py.withoutGIL { try? core.events.getAll(parker: parker, spinFor: PoolCore.spinNanoseconds) }
        guard let batch else { return Py.bool(false) }
        for event in batch {
            if case .lend(let lend)? = event.payload {
                lend.release()  // a task's last view of a lent memoryview is gone
                continue
            }
            guard let task = event.task else {
                deliverOne(event, values, onEvent: callback)
                continue
            }
            let start = MonotonicClock.now()
            core.stats.add(.resultWait, nanoseconds: start &- event.postedAt)
            // A cancel or an expired task_timeout claimed the task: its future is theirs to
            // settle (and already out of the executor's table), so its event is dropped.
            if task.lifecycle.claimOutcome() { deliverOne(event, values, onEvent: callback) }
            core.forget(task)
            task.releaseInputs()
            core.stats.addSince(start, to: .deliver)
        }
        return Py.bool(true)
    }

    /// Hands one event to Python: a returned value unpickled here to its future, else `onEvent`.
    private func deliverOne(_ event: PoolEvent, _ values: ValueDelivery, onEvent callback: PyObjectPointer) {
        let fast = deliverValue(event, to: values)
        switch consume fast {
        case .delivered:
            return
        case .failed(let exception):
            call(callback, kind: .deliveryFailed, event, payload: exception)
        case .general:
            call(callback, kind: event.kind, event, payload: eventPayload(event))
        }
    }

    /// The payload `on_event` gets for `event`: its encoded bytes (a `ResultBuffer` over them,
    /// no copy), its text, or None. Nil, with an exception set, when memory ran out.
    private func eventPayload(_ event: PoolEvent) -> OwnedObject? {
        if case .encoded(let buffer)? = event.payload, let type = resultBufferType {
            return OwnedObject(Box.wrap(buffer, as: type))
        }
        if let text = event.text { return OwnedObject(Py.string(text)) }
        return OwnedObject(Py.none())
    }

    /// `on_event(kind, id, payload, worker)`. When the arguments cannot be built (memory ran
    /// out), a task's event becomes `deliveryFailed` with that exception, so that its future
    /// fails instead of waiting forever; what cannot be delivered even so is reported as
    /// unraisable.
    private func call(_ callback: PyObjectPointer, kind: PoolEvent.Kind, _ event: PoolEvent, payload: consuming OwnedObject?) {
        var delivered = false
        if let payload, let kindObject = OwnedObject(Py.int(kind.rawValue)), let id = OwnedObject(Py.int(event.id)),
           let worker = OwnedObject(Py.int(Int64(event.worker))) {
            var arguments: [PyObjectPointer?] = [kindObject.borrowed, id.borrowed, payload.borrowed, worker.borrowed]
            if let result = arguments.withUnsafeMutableBufferPointer({ PyObject_Vectorcall(callback, $0.baseAddress, 4, nil) }) {
                Py_DecRef(result)
                delivered = true
            }
        } else if kind != .deliveryFailed, event.task != nil || event.kind == .timedOut, let exception = NativePool.raised() {
            call(callback, kind: .deliveryFailed, event, payload: exception)
            return
        }
        if !delivered { PyErr_WriteUnraisable(callback) }
    }

    /// `stats()`: a new dict, or nil with an exception set (no half-filled dict: every
    /// partial object is an `OwnedObject`, released on the way out).
    private func statsDictionary() -> PyObjectPointer? {
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
              Py.set(result, "warm_modules", nameList(Array(names.indices))) else { return false }
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
        let fields: [(String, UInt64)] = [("start_s", startup.startedAfter), ("create_s", startup.create),
                                          ("bootstrap_s", startup.bootstrap), ("ready_s", startup.readyAfter)]
        for (key, nanoseconds) in fields {
            guard Py.set(entry, key, OwnedObject(Py.float(Double(nanoseconds) / 1e9))) else { return nil }
        }
        return entry
    }
}

// MARK: - ResultBuffer

extension ByteBuffer: NativeBacked {}

/// `_native.ResultBuffer`: a read-only buffer over a worker's encoded outcome, so that the
/// caller unpickles it without another copy.
enum ResultBufferType {
    static let getBuffer: @convention(c) (PyObjectPointer?, UnsafeMutablePointer<Py_buffer>?, Int32) -> Int32 = {
        instance, view, flags in
        let buffer = Box.unwrap(instance, as: ByteBuffer.self)
        return PyBuffer_FillInfo(view, instance, buffer.bytes.baseAddress, Py_ssize_t(buffer.count), 1, flags)
    }

    static let length: @convention(c) (PyObjectPointer?) -> Py_ssize_t = { instance in
        Py_ssize_t(Box.unwrap(instance, as: ByteBuffer.self).count)
    }

    nonisolated(unsafe) static let spec = NativeTables.boxedTypeSpec(
        name: "subinterpreter_parallelism._native.ResultBuffer",
        doc: "Read-only bytes of a task's encoded outcome (supports the buffer protocol).",
        methods: [],
        extraSlots: [
            PyType_Slot(slot: sp_slot_bf_getbuffer, pfunc: unsafeBitCast(getBuffer, to: UnsafeMutableRawPointer.self)),
            PyType_Slot(slot: sp_slot_sq_length, pfunc: unsafeBitCast(length, to: UnsafeMutableRawPointer.self)),
        ])
}

/// Where `deliver` puts a returned value: the executor's id -> future dict and its
/// `settle(future, value)` (the future's `set_result`). Swift pops the future itself, so that
/// the common outcome costs the completion thread one Python frame, `settle`'s, and no
/// look-up or call in Python (issue 15).
private struct ValueDelivery {
    /// The executor's `dict` of task id -> future (borrowed: the caller's arguments).
    let futures: PyObjectPointer
    let settle: PyObjectPointer

    /// Pops the future of task `id` and settles it with `value`; a future not there any more
    /// (failed by the pool's end meanwhile) is skipped, and what `settle` raises is reported
    /// as unraisable, as a done-callback's error would be. False, with the exception set, only
    /// when the look-up itself failed (a key whose hash or comparison raised: memory ran out).
    func settle(_ id: PyObjectPointer, with value: PyObjectPointer) -> Bool {
        guard let future = PyDict_GetItemWithError(futures, id) else { return PyErr_Occurred() == nil }
        Py_IncRef(future)  // the dict's reference goes with the item
        defer { Py_DecRef(future) }
        guard PyDict_DelItem(futures, id) == 0 else { return false }
        var arguments: [PyObjectPointer?] = [future, value]
        let result = arguments.withUnsafeMutableBufferPointer { PyObject_Vectorcall(settle, $0.baseAddress, 2, nil) }
        if let result { Py_DecRef(result) } else { PyErr_WriteUnraisable(settle) }
        return true
    }
}
