// The `_native` extension module: multi-phase initialisation, per-interpreter state, and the
// module-level functions. Loadable in own-GIL sub-interpreters (PEP 684): no static PyObject*,
// every Python object lives in the state of the interpreter that imported the module.
@preconcurrency import CPythonShim
import Glibc
import ParallelRuntime

/// CPython calls this when `subinterpreter_parallelism._native` is imported (must be public:
/// the release build exports only public symbols, and the version script keeps just this one).
@_cdecl("PyInit__native")
public func initializeNativeModule() -> UnsafeMutablePointer<PyObject>? {
    PyModuleDef_Init(NativeModule.definition)
}

enum NativeModule {
    nonisolated(unsafe) static let definition: UnsafeMutablePointer<PyModuleDef> = {
        let slots = UnsafeMutablePointer<PyModuleDef_Slot>.allocate(capacity: 3)
        slots[0] = PyModuleDef_Slot(
            slot: sp_slot_mod_exec, value: unsafeBitCast(exec, to: UnsafeMutableRawPointer.self))
        slots[1] = PyModuleDef_Slot(
            slot: sp_slot_mod_multiple_interpreters, value: sp_MOD_PER_INTERPRETER_GIL_SUPPORTED())
        slots[2] = PyModuleDef_Slot(slot: 0, value: nil)
        let definition = UnsafeMutablePointer<PyModuleDef>.allocate(capacity: 1)
        definition.initialize(
            to: PyModuleDef(
                m_base: sp_ModuleDef_HEAD_INIT(),
                m_name: ("_native" as StaticString).cString,
                m_doc: ("The Swift core of subinterpreter_parallelism: worker pools of own-GIL interpreters, the shared Queue, and native helpers."
                    as StaticString).cString,
                m_size: MemoryLayout<sp_ModuleState>.size,
                m_methods: NativeTables.methods(functions),
                m_slots: slots,
                m_traverse: traverse,
                m_clear: clear,
                m_free: free))
        return definition
    }()

    static let exec: @convention(c) (PyObjectPointer?) -> Int32 = { module in
        guard let module, let state = ModuleState.of(module: module) else { return -1 }
        func addType(
            _ spec: UnsafeMutablePointer<PyType_Spec>,
            _ slot: WritableKeyPath<sp_ModuleState, UnsafeMutablePointer<PyObject>?>
        ) -> Bool {
            guard let type = PyType_FromModuleAndSpec(module, spec, nil) else { return false }
            state.pointee[keyPath: slot] = type
            return PyModule_AddType(module, UnsafeMutableRawPointer(type).assumingMemoryBound(to: PyTypeObject.self))
                == 0
        }
        guard addType(NativePool.spec, \.pool_type),
            addType(SharedQueue.spec, \.queue_type),
            addType(ResultBufferType.spec, \.result_buffer_type),
            addType(LentBufferType.spec, \.lent_buffer_type),
            addType(SharedMapType.spec, \.shared_map_type),
            addType(SharedMapCursor.spec, \.shared_map_iterator_type)
        else { return -1 }

        // `queue` (for Empty and Full) is imported on first use: a worker interpreter's start-up
        // should not pay for it.
        state.pointee.queue_closed = PyErr_NewExceptionWithDoc(
            "subinterpreter_parallelism._native.QueueClosed",
            "Raised by Queue.put/get once the queue is closed (and, for get, drained).",
            PyExc_Exception, nil)
        state.pointee.task_interrupted = PyErr_NewExceptionWithDoc(
            "subinterpreter_parallelism._native.TaskInterrupted",
            "Raised inside a task when it is stopped (cancel, timeout, Ctrl-C, shutdown). A BaseException, so that `except Exception` in task code does not swallow it; the caller sees CancelledError or TimeoutError instead.",
            PyExc_BaseException, nil)
        guard let closedType = state.pointee.queue_closed, let interruptedType = state.pointee.task_interrupted,
            PyModule_AddObjectRef(module, "QueueClosed", closedType) == 0,
            PyModule_AddObjectRef(module, "TaskInterrupted", interruptedType) == 0
        else { return -1 }

        let constants: [(String, Int)] = [
            ("EVENT_COMPLETED", Int(PoolEvent.Kind.completed.rawValue)),
            ("EVENT_SKIPPED", Int(PoolEvent.Kind.skipped.rawValue)),
            ("EVENT_INTERRUPTED", Int(PoolEvent.Kind.interrupted.rawValue)),
            ("EVENT_WORKER_FAILED", Int(PoolEvent.Kind.workerFailed.rawValue)),
            ("EVENT_MESSAGE", Int(PoolEvent.Kind.message.rawValue)),
            ("EVENT_INTERNAL_ERROR", Int(PoolEvent.Kind.internalError.rawValue)),
            ("EVENT_TIMED_OUT", Int(PoolEvent.Kind.timedOut.rawValue)),
            ("EVENT_DELIVERY_FAILED", Int(PoolEvent.Kind.deliveryFailed.rawValue)),
            ("FORK_REFUSED_STATUS", Int(ForkGuard.exitStatus)),
            ("WORKER_STARTING", Int(WorkerInterpreter.Activity.starting.rawValue)),
            ("WORKER_IDLE", Int(WorkerInterpreter.Activity.idle.rawValue)),
            ("WORKER_RUNNING", Int(WorkerInterpreter.Activity.running.rawValue)),
            ("WORKER_ENDING", Int(WorkerInterpreter.Activity.ending.rawValue)),
            ("WORKER_ENDING_WITH_THREADS", Int(WorkerInterpreter.Activity.endingWithThreads.rawValue)),
            ("WORKER_ENDED", Int(WorkerInterpreter.Activity.ended.rawValue)),
            ("WORKER_WARMING", Int(WorkerInterpreter.Activity.warming.rawValue)),
            ("PHASE_PENDING", Int(TaskPhase.pending.rawValue)),
            ("PHASE_RUNNING", Int(TaskPhase.running.rawValue)),
            ("PHASE_INTERRUPTING", Int(TaskPhase.interrupting.rawValue)),
            ("PHASE_CANCELLED", Int(TaskPhase.cancelled.rawValue)),
            ("PHASE_FINISHED", Int(TaskPhase.finished.rawValue)),
            ("WORKER_STACK_SIZE", NativePool.workerStackSize),
            ("OUT_OF_BAND_MIN", WireFormat.outOfBandMinimum),
            ("OUT_OF_BAND_NO", WireFormat.OutOfBand.inBand.rawValue),
            ("OUT_OF_BAND_BYTES", WireFormat.OutOfBand.bytes.rawValue),
            ("OUT_OF_BAND_BYTEARRAY", WireFormat.OutOfBand.byteArray.rawValue),
            ("OUT_OF_BAND_MEMORYVIEW", WireFormat.OutOfBand.memoryView.rawValue),
            ("PICKLE_PROTOCOL", Int(WireFormat.pickleProtocol)),
            ("VALUE_TAG", Int(WireFormat.Value.tag)),
            ("ERROR_TAG", Int(WireFormat.Error.tag)),
            ("SHAREABLE_TAG", Int(WireFormat.Shareable.tag)),
            ("MAX_WORKERS", maxWorkers),
        ]
        for (name, value) in constants where PyModule_AddIntConstant(module, name, value) != 0 { return -1 }
        for tag in MessageTag.allCases where PyModule_AddIntConstant(module, tag.exportedName, Int(tag.rawValue)) != 0 {
            return -1
        }
        guard
            let mainMarker = OwnedObject(
                WireFormat.mainMarker.utf8CString.withUnsafeBytes {
                    Py.bytes(UnsafeRawBufferPointer(rebasing: $0.dropLast()))  // without the NUL
                }),
            PyModule_AddObjectRef(module, "MAIN_MARKER", mainMarker.borrowed) == 0
        else { return -1 }

        // `sleep` lets the stdlib's own `time.sleep` word its refusals; workers replace
        // `time.sleep` later, so it is taken now (`time` is built in and already imported).
        guard let time = Py.importModule("time"), let sleep = Py.attribute(time.borrowed, "sleep") else { return -1 }
        state.pointee.stdlib_sleep = sleep.take()  // the state owns it
        return 0
    }

    static let traverse: @convention(c) (PyObjectPointer?, visitproc?, UnsafeMutableRawPointer?) -> Int32 = {
        module, visit, argument in
        guard let module, let state = ModuleState.of(module: module), let visit else { return 0 }
        let fields = sp_ModuleState_Fields(state)!
        for i in 0..<Int(sp_ModuleState_FieldCount()) {
            if let field = fields[i] {
                let result = visit(field, argument)
                if result != 0 { return result }
            }
        }
        return 0
    }

    static let clear: @convention(c) (PyObjectPointer?) -> Int32 = { module in
        guard let module, let state = ModuleState.of(module: module) else { return 0 }
        let fields = sp_ModuleState_Fields(state)!
        for i in 0..<Int(sp_ModuleState_FieldCount()) { Py.clear(&fields[i]) }
        return 0
    }

    static let free: @convention(c) (UnsafeMutableRawPointer?) -> Void = { module in
        guard let module else { return }
        _ = clear(module.assumingMemoryBound(to: PyObject.self))
    }

    // MARK: - Module functions

    static let functions: [MethodEntry] = [
        .fast(
            "out_of_band_kind",
            "out_of_band_kind($module, value, /)\n--\n\nHow value travels as an argument or result: OUT_OF_BAND_NO (pickled), _BYTES, _BYTEARRAY or _MEMORYVIEW (beside the pickle). The one rule (WireFormat in Wire.swift)."
        ) { _, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("out_of_band_kind", 1...1) else { return nil }
            return Py.int(Int64(WireFormat.outOfBandKind(arguments[0]).rawValue))
        },
        .fast(
            "encode_shareable",
            "encode_shareable($module, value, /)\n--\n\nBytes, or None when value is not made only of None, bool, int (64-bit), float, complex, str and bytes in tuples, frozensets and (3.15+) frozendicts: the pickle-free format of results and queue items (ShareableCodec.swift), whose first byte is SHAREABLE_TAG."
        ) { _, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("encode_shareable", 1...1) else { return nil }
            if let bytes = ShareableCodec.encodeAsBytes(arguments[0]) { return bytes }
            return PyErr_Occurred() == nil ? Py.none() : nil
        },
        .fast(
            "decode_shareable",
            "decode_shareable($module, buffer, /)\n--\n\nThe value that encode_shareable encoded; ValueError if buffer holds anything else."
        ) { _, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("decode_shareable", 1...1) else { return nil }
            var view = Py_buffer()
            guard PyObject_GetBuffer(arguments[0], &view, 0) == 0 else { return nil }
            defer { PyBuffer_Release(&view) }
            return ShareableCodec.decode(UnsafeRawBufferPointer(start: view.buf, count: Int(view.len)))
        },
        .fast(
            "factorial_mod",
            "factorial_mod($module, n, /)\n--\n\nn! mod 1_000_000_007, computed in Swift with the GIL released (the demo's native row)."
        ) { _, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("factorial_mod", 1...1), let value = Py.int64(arguments[0]) else { return nil }
            guard value >= 0 else { return Py.fail(PyExc_ValueError, "factorial_mod() needs n >= 0") }
            let result = Py.withoutGIL { factorialModulo(UInt64(value)) }
            return Py.int(result)
        },
        .fast(
            "sleep",
            "sleep($module, seconds, /)\n--\n\nLike time.sleep (with its errors), but interrupting the task (cancel, timeout, Ctrl-C) ends it at once."
        ) { module, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("sleep", 1...1) else { return nil }
            guard let seconds = sleepLength(arguments[0]) else {
                // Not a length time.sleep takes (NaN, negative, beyond its clock, not a number;
                // an infinite sleep used to last forever here): the stdlib raises its own error.
                guard let state = ModuleState.of(module: module!), let stdlibSleep = state.pointee.stdlib_sleep else {
                    return Py.fail(PyExc_RuntimeError, "_native module state is missing")
                }
                return PyObject_CallOneArg(stdlibSleep, arguments[0])
            }
            return BlockingCall.sleep(seconds: seconds)
        },
        .fast(
            "post_message",
            "post_message($module, tag, data, /)\n--\n\nFrom a task, send bytes to the pool's owner (delivered in order with the task's result)."
        ) { _, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("post_message", 2...2), let tag = Py.int64(arguments[0]) else { return nil }
            guard sp_Bytes_Check(arguments[1]) != 0 else { return Py.fail(PyExc_TypeError, "data must be bytes") }
            guard let worker = WorkerInterpreter.current, let pool = worker.pool else {
                return Py.fail(PyExc_RuntimeError, "post_message() works only inside a pool worker")
            }
            pool.post(
                PoolEvent(
                    kind: .message, id: tag, task: nil,
                    payload: .encoded(ByteBuffer(copying: Py.contents(ofBytes: arguments[1]))), text: nil,
                    worker: worker.index, postedAt: MonotonicClock.now()))
            return Py.none()
        },
        .fast(
            "_install_fork_guard",
            "_install_fork_guard($module, refuse_children, /)\n--\n\nOnce per process, from the main interpreter: a child forked through Python while worker interpreters exist prints why and exits with FORK_REFUSED_STATUS instead of aborting (when refuse_children)."
        ) { _, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("_install_fork_guard", 1...1) else { return nil }
            let truth = PyObject_IsTrue(arguments[0])
            if truth < 0 { return nil }
            ForkGuard.install(refuseChildren: truth == 1)
            return Py.none()
        },
        .noArgs(
            "_before_fork",
            "_before_fork($module, /)\n--\n\nos.register_at_fork(before=...): marks the forking thread for the fork guard."
        ) {
            _, _ in
            ForkGuard.markForking()
            return Py.none()
        },
        .noArgs(
            "_after_fork",
            "_after_fork($module, /)\n--\n\nos.register_at_fork(after_in_parent=..., after_in_child=...): clears the mark."
        ) {
            _, _ in
            ForkGuard.unmarkForking()
            return Py.none()
        },
        .keywords(
            "with_environment_lock",
            "with_environment_lock($module, function, /, *args, **kwargs)\n--\n\nfunction(*args, **kwargs), called holding the process-wide lock under which the environment changes and fallback processes start (EnvironmentLock.swift says why).",
            EnvironmentLock.call),
        .fast(
            "_fail_next_interpreter_creations",
            "_fail_next_interpreter_creations($module, n, /)\n--\n\nFor tests: the next n interpreter creations (in any pool) fail like CPython's transient failure, so the retry can be seen."
        ) { _, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("_fail_next_interpreter_creations", 1...1), let count = Py.int64(arguments[0]) else {
                return nil
            }
            guard count >= 0 else { return Py.fail(PyExc_ValueError, "n must be >= 0") }
            WorkerInterpreter.injectedCreationFailures.store(Int(count), ordering: .relaxed)
            return Py.none()
        },
        .fast(
            "_keep_ctrl_c",
            "_keep_ctrl_c($module, previous, main_thread, unraisable, /)\n--\n\nsys.unraisablehook, through functools.partial, in the main interpreter. A KeyboardInterrupt on the main thread that CPython could only report as unraisable (raised inside a weakref callback or a finalizer: python/cpython#95959) is delivered again, as a new Ctrl-C, instead of being printed and lost; anything else goes to previous. In C, so that no Python instruction runs between the new Ctrl-C and the return to the code it interrupts."
        ) { _, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("_keep_ctrl_c", 3...3), let mainThread = Py.int64(arguments[1]) else { return nil }
            guard let type = Py.attribute(arguments[2], "exc_type") else { return nil }
            if PyErr_GivenExceptionMatches(type.borrowed, PyExc_KeyboardInterrupt) != 0,
                UInt64(PyThread_get_thread_ident()) == UInt64(bitPattern: mainThread)
            {
                _ = PyErr_SetInterruptEx(SIGINT)
                return Py.none()
            }
            return Py.call(arguments[0], arguments[2])?.take()
        },
        .fast(
            "_keep_task_interrupted",
            "_keep_task_interrupted($module, unraisable, /)\n--\n\nsys.unraisablehook in worker interpreters. A TaskInterrupted on a worker's thread that CPython could only report as unraisable (raised inside a weakref callback or a finalizer: python/cpython#95959) is raised again at the task's next instruction, instead of being printed and lost; anything else goes to sys.__unraisablehook__."
        ) { module, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("_keep_task_interrupted", 1...1) else { return nil }
            guard let type = Py.attribute(arguments[0], "exc_type") else { return nil }
            if WorkerInterpreter.current != nil, let state = ModuleState.of(module: module!),
                let interrupted = state.pointee.task_interrupted,
                PyErr_GivenExceptionMatches(type.borrowed, interrupted) != 0
            {
                PyThreadState_SetAsyncExc(UInt(PyThread_get_thread_ident()), interrupted)
                return Py.none()
            }
            guard let fallback = PySys_GetObject("__unraisablehook__") else {
                return Py.fail(PyExc_RuntimeError, "sys.__unraisablehook__ is missing")
            }
            return Py.call(fallback, arguments[0])?.take()
        },
        .noArgs(
            "worker_index",
            "worker_index($module, /)\n--\n\nThe index of the pool worker running this code, or None outside workers."
        ) { _, _ in
            guard let worker = WorkerInterpreter.current else { return Py.none() }
            return Py.int(Int64(worker.index))
        },
        .fast(
            "_encode_for_interpreters",
            "_encode_for_interpreters($module, encode, value, /)\n--\n\nencode(value), run as an encoding for another interpreter of this process: a SharedMap pickled meanwhile travels as its id (not as a file for other processes). Whoever keeps value keeps its handles alive."
        ) { _, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("_encode_for_interpreters", 2...2) else { return nil }
            var pins: QueuePins?  // dropped: whoever keeps `value` keeps its handles
            return QueuePins.collecting(into: &pins) { PyObject_CallOneArg(arguments[0], arguments[1]) }
        },
        .fast(
            "_attach_queue",
            "_attach_queue($module, id, /)\n--\n\nA handle to the live Queue with this id (used by unpickling)."
        ) {
            module, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("_attach_queue", 1...1) else { return nil }
            return SharedQueue.attach(module!, arguments[0])
        },
        .noArgs(
            "build_info",
            "build_info($module, /)\n--\n\nHow this extension was built: Swift compiler, the Python it was compiled for."
        ) { _, _ in
            guard let info = Py.dict() else { return nil }
            let entries: [(String, String)] = [
                ("swift", swiftCompilerVersion),
                ("python_compiled", String(cString: sp_CompiledPythonVersion())),
                ("stdlib", "static"),
            ]
            for (key, value) in entries where !Py.set(info, key, OwnedObject(Py.string(value))) { return nil }
            return info.take()
        },
    ]

    static var swiftCompilerVersion: String {
        #if compiler(>=6.4)
            return ">=6.4"
        #elseif compiler(>=6.3)
            return "6.3"
        #elseif compiler(>=6.2)
            return "6.2"
        #elseif compiler(>=6.1)
            return "6.1"
        #else
            return "6.0"
        #endif
    }

    /// The seconds of a valid `time.sleep` argument (a float, or an int or `__index__` object),
    /// or nil (no error set) for anything time.sleep would refuse: NaN, negative, or too long
    /// for its clock (int64 nanoseconds), which includes infinity.
    static func sleepLength(_ object: PyObjectPointer) -> Double? {
        let seconds: Double
        if sp_Float_Check(object) != 0 {
            seconds = PyFloat_AsDouble(object)
        } else {
            guard let index = OwnedObject(PyNumber_Index(object)) else {
                PyErr_Clear()
                return nil
            }
            seconds = PyLong_AsDouble(index.borrowed)
        }
        if PyErr_Occurred() != nil {
            PyErr_Clear()
            return nil
        }
        guard seconds >= 0, seconds * 1e9 < 9.223372036854775807e18 else { return nil }  // false for NaN
        return seconds
    }

    /// `k = 1; for i in range(n, 1, -1): k = k * i % 1_000_000_007`, as the demo's Python.
    static func factorialModulo(_ n: UInt64) -> UInt64 {
        let modulus: UInt64 = 1_000_000_007
        var k: UInt64 = 1
        var i = n
        while i > 1 {
            k = k &* (i % modulus) % modulus
            i -= 1
        }
        return k
    }
}

/// Access to the per-interpreter module state.
enum ModuleState {
    static func of(module: PyObjectPointer) -> UnsafeMutablePointer<sp_ModuleState>? {
        PyModule_GetState(module)?.assumingMemoryBound(to: sp_ModuleState.self)
    }

    static func of(type: UnsafeMutablePointer<PyTypeObject>) -> UnsafeMutablePointer<sp_ModuleState>? {
        PyType_GetModuleState(type)?.assumingMemoryBound(to: sp_ModuleState.self)
    }

    static func of(instance: PyObjectPointer) -> UnsafeMutablePointer<sp_ModuleState>? {
        of(type: Py_TYPE(instance))
    }

    /// Fills two state fields with attributes of `module` (imported now) unless both are set.
    /// Returns false with an exception set if the import or a look-up fails.
    static func load(
        _ state: UnsafeMutablePointer<sp_ModuleState>, from module: String,
        _ first: (String, WritableKeyPath<sp_ModuleState, UnsafeMutablePointer<PyObject>?>),
        _ second: (String, WritableKeyPath<sp_ModuleState, UnsafeMutablePointer<PyObject>?>)
    ) -> Bool {
        if state.pointee[keyPath: first.1] != nil && state.pointee[keyPath: second.1] != nil { return true }
        guard let imported = Py.importModule(module), let a = Py.attribute(imported.borrowed, first.0),
            let b = Py.attribute(imported.borrowed, second.0)
        else { return false }
        Py.clear(&state.pointee[keyPath: first.1])
        Py.clear(&state.pointee[keyPath: second.1])
        state.pointee[keyPath: first.1] = a.take()  // the state owns them
        state.pointee[keyPath: second.1] = b.take()
        return true
    }

    /// `_pickling.dumps`/`loads` of the instance's interpreter (borrowed), imported on first use
    /// so that importing `_native` never imports the rest of the package.
    static func pickling(for instance: PyObjectPointer, _ name: String) -> PyObjectPointer? {
        guard let state = of(instance: instance) else {
            return Py.fail(PyExc_RuntimeError, "_native module state is missing")
        }
        guard load(state, from: "subinterpreter_parallelism._pickling", ("dumps", \.dumps), ("loads", \.loads))
        else { return nil }
        return name == "dumps" ? state.pointee.dumps : state.pointee.loads
    }

    /// `_pickle.dumps` and `_pickle.loads` of the interpreter owning `type` (borrowed), imported
    /// on first use; nil with an exception set if that fails.
    static func cPickle(for type: UnsafeMutablePointer<PyTypeObject>) -> (
        dumps: PyObjectPointer, loads: PyObjectPointer
    )? {
        guard let state = of(type: type) else { return nil }
        return cPickle(in: state)
    }

    /// The same for the interpreter of the `_native` module `module`.
    static func cPickle(module: PyObjectPointer) -> (dumps: PyObjectPointer, loads: PyObjectPointer)? {
        guard let state = of(module: module) else { return nil }
        return cPickle(in: state)
    }

    private static func cPickle(in state: UnsafeMutablePointer<sp_ModuleState>) -> (
        dumps: PyObjectPointer, loads: PyObjectPointer
    )? {
        guard load(state, from: "_pickle", ("dumps", \.c_dumps), ("loads", \.c_loads)) else { return nil }
        return (state.pointee.c_dumps!, state.pointee.c_loads!)
    }

    /// `Empty`, `Full` or `QueueClosed` of the instance's interpreter (borrowed); `queue` is
    /// imported on first use (a worker's start-up should not pay for it).
    static func exception(for instance: PyObjectPointer, _ name: String) -> PyObjectPointer? {
        guard let state = of(instance: instance),
            load(state, from: "queue", ("Empty", \.queue_empty), ("Full", \.queue_full))
        else { return nil }
        switch name {
        case "Empty": return state.pointee.queue_empty
        case "Full": return state.pointee.queue_full
        default: return state.pointee.queue_closed
        }
    }

    /// A module-level function of the instance's `_native` module (new reference).
    static func function(for instance: PyObjectPointer, _ name: String) -> OwnedObject? {
        guard let module = PyType_GetModule(Py_TYPE(instance)) else { return nil }
        return Py.attribute(module, name)
    }
}
