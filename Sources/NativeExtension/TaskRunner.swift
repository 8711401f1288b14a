// The Python half of a worker, bound once per interpreter: the runner module
// (python/subinterpreter_parallelism/_worker.py), its functions bound by name, and how a task
// is run with them. A pickled call goes through the runner (`decode_call`, `invoke`,
// `encode_result` or `encode_error`, each timed); a call in the shareable format is resolved
// and called here (TaskRunner+ShareableCall.swift). Every method runs on the worker's thread
// with its interpreter's GIL held, and the runner is dropped (its references released) before
// that interpreter ends.
@preconcurrency import CPythonShim
import ParallelRuntime

/// Why a runner could not be bound or a step of the bootstrap failed: the text the pool's
/// caller gets (`workerFailed`).
struct RunnerFailure: Error {
    let text: String
}

/// The runner of one worker interpreter: references owned by that interpreter.
struct TaskRunner: ~Copyable {
    /// The runner module, `_worker`.
    private let module: OwnedObject
    /// `invoke(call)`: runs one decoded call (and flushes output left without a newline).
    let invoke: OwnedObject
    /// `encode_error(exception)`: the outcome of a call that raised.
    private let encodeError: OwnedObject
    /// `unflushed` and `flush_unflushed`, for the calls made here directly.
    let unflushed: OwnedObject
    let flushUnflushed: OwnedObject
    /// `bootstrap(payload)`: the pool's steps and initializer.
    private let bootstrapFunction: OwnedObject
    /// `follow_sys_path(entries)`: makes `sys.path` the caller's again, after it changed.
    private let followSysPath: OwnedObject
    /// `TaskInterrupted` (the worker's interrupter raises it, borrowing it from here).
    private let interruptType: OwnedObject
    /// This interpreter's `LentBuffer` type (see BufferLend.swift).
    let lentBufferType: OwnedObject
    /// `decode_call` and `encode_result`, looked up on first use: they load pickle, which a
    /// worker whose tasks never need it does not import.
    private var decodeCall: OwnedObject?
    private var encodeResult: OwnedObject?

    /// Sets `sys.path`, imports the runner and binds its functions by name; the interrupter
    /// learns this interpreter's `TaskInterrupted`. Throws the text of what failed.
    init(sysPath: [String], interrupter: WorkerInterrupter) throws(RunnerFailure) {
        guard let path = Py.list() else { throw TaskRunner.failure("building sys.path") }
        for entry in sysPath where !Py.append(path, OwnedObject(Py.string(entry))) {
            throw TaskRunner.failure("building sys.path")
        }
        guard PySys_SetObject("path", path.borrowed) == 0 else { throw TaskRunner.failure("setting sys.path") }
        guard let module = Py.importModule("subinterpreter_parallelism._worker") else {
            throw TaskRunner.failure("importing subinterpreter_parallelism._worker")
        }
        // One lookup at a time: none runs with the previous one's exception still set.
        func bind(_ name: String) throws(RunnerFailure) -> OwnedObject {
            guard let function = Py.attribute(module.borrowed, name) else {
                throw TaskRunner.failure("reading the runner's \(name)")
            }
            return function
        }
        let invoke = try bind("invoke")
        let encodeError = try bind("encode_error")
        let unflushed = try bind("unflushed")
        let flushUnflushed = try bind("flush_unflushed")
        let bootstrap = try bind("bootstrap")
        let followSysPath = try bind("follow_sys_path")
        let interruptType = try bind("TaskInterrupted")
        // The runner imported `_native`: its state in this interpreter holds the type.
        guard let native = Py.importModule("subinterpreter_parallelism._native") else {
            throw TaskRunner.failure("importing subinterpreter_parallelism._native")
        }
        guard let type = ModuleState.of(module: native.borrowed)?.pointee.lent_buffer_type else {
            throw RunnerFailure(text: "the LentBuffer type of _native is missing")
        }
        interrupter.setInterruptType(interruptType.borrowed)
        self.module = module
        self.invoke = invoke
        self.encodeError = encodeError
        self.unflushed = unflushed
        self.flushUnflushed = flushUnflushed
        self.bootstrapFunction = bootstrap
        self.followSysPath = followSysPath
        self.interruptType = interruptType
        self.lentBufferType = OwnedObject(retaining: type)
        decodeCall = nil
        encodeResult = nil
    }

    /// Runs the runner's `bootstrap(payload)` (`configuration.bootstrapPayload`, see
    /// `_worker.encode_bootstrap`): nil on success, else the text of the failure.
    func bootstrap(_ payload: ByteBuffer?) -> String? {
        let argument = payload.map { OwnedObject(Py.bytes($0.contents)) } ?? OwnedObject(Py.none())
        guard let argument else { return TaskRunner.errorText("bootstrap") }
        guard let outcome = OwnedObject(PyObject_CallOneArg(bootstrapFunction.borrowed, argument.borrowed)) else {
            return TaskRunner.errorText("running the worker bootstrap")
        }
        if outcome.borrowed == sp_None() { return nil }
        return Py.swiftString(outcome.borrowed) ?? TaskRunner.errorText("worker bootstrap")
    }

    /// Runs `follow_sys_path(entries)`: false (the failure reported as unraisable) when it
    /// failed, which only running out of memory can do.
    func follow(sysPath entries: [String]) -> Bool {
        guard let list = Py.list() else {
            PyErr_WriteUnraisable(followSysPath.borrowed)
            return false
        }
        for entry in entries where !Py.append(list, OwnedObject(Py.string(entry))) {
            PyErr_WriteUnraisable(followSysPath.borrowed)
            return false
        }
        guard OwnedObject(PyObject_CallOneArg(followSysPath.borrowed, list.borrowed)) != nil else {
            PyErr_WriteUnraisable(followSysPath.borrowed)
            return false
        }
        return true
    }

    /// Runs `preload.warm_module(module)`: nil on success, else the failure's text.
    func warm(_ module: String) -> String? {
        guard let preload = Py.importModule("subinterpreter_parallelism.preload") else {
            return TaskRunner.errorText("importing subinterpreter_parallelism.preload")
        }
        guard let warmModule = Py.attribute(preload.borrowed, "warm_module") else {
            return TaskRunner.errorText("reading preload.warm_module")
        }
        guard let name = OwnedObject(Py.string(module)),
            let outcome = OwnedObject(PyObject_CallOneArg(warmModule.borrowed, name.borrowed))
        else { return TaskRunner.errorText("warming \(module)") }
        if outcome.borrowed == sp_None() { return nil }
        return Py.swiftString(outcome.borrowed) ?? TaskRunner.errorText("warming \(module)")
    }

    // MARK: - Running a task

    /// Decodes, calls and encodes one task. Returns the payload for the caller, or nil and the
    /// text of an internal failure.
    mutating func run(_ task: Task, _ stats: StepStatistics, lending: ResultLending) -> (Payload?, String?) {
        if ShareableCodec.holds(task.input) { return runShareableCall(task, stats, lending: lending) }
        // The view points into the caller's bytes: released (as it is dropped, at the end)
        // before the caller may free them.
        guard let input = ForeignView(task.input), let extras = extraViews(of: task) else {
            return (nil, TaskRunner.errorText("wrapping the task"))
        }
        let t0 = MonotonicClock.now()
        let decoded = decode(input, extras, task)
        guard let call = decoded else {
            stats.addSince(t0, to: .decodeCall)
            return outcome(encoding: nil, stats: stats, since: nil, task, lending)
        }
        let t1 = stats.addSince(t0, to: .decodeCall)
        let result = OwnedObject(PyObject_CallOneArg(invoke.borrowed, call.borrowed))
        let t2 = stats.addSince(t1, to: .call)
        return outcome(encoding: result, stats: stats, since: t2, task, lending)
    }

    /// The views of a task's out-of-band arguments, as `decode_call` takes them (None when
    /// there are none), or nil with an exception set: views of the caller's large `bytes`
    /// (copied by `decode_call`) and of lent memoryviews (handed to the task itself, which may
    /// keep them: see BufferLend.swift).
    private func extraViews(of task: Task) -> OwnedObject? {
        if task.extras.isEmpty { return OwnedObject(Py.none()) }
        guard let views = Py.list() else { return nil }
        for extra in task.extras {
            let view: OwnedObject?
            switch extra {
            case .bytes(let object):
                view = ForeignView.make(Py.contents(ofBytes: object.object))
            case .lent(let lend):
                let type = UnsafeMutableRawPointer(lentBufferType.borrowed).assumingMemoryBound(to: PyTypeObject.self)
                view = lend.view(as: type)
            }
            guard Py.append(views, view) else {
                TaskRunner.releaseCopiedViews(views.borrowed, of: task)
                return nil
            }
        }
        return views
    }

    /// The decoded call `(fn, args, kwargs)` of a pickled task, or nil with an exception set.
    private mutating func decode(_ input: borrowing ForeignView, _ extras: borrowing OwnedObject, _ task: Task)
        -> OwnedObject?
    {
        defer { TaskRunner.releaseCopiedViews(extras.borrowed, of: task) }
        guard let decode = decodeCallFunction() else { return nil }
        return Py.call(decode, input.view.borrowed, extras.borrowed)
    }

    /// Releases the views of the caller's large `bytes` in `views` (a list from `extraViews`):
    /// copied by now, or the decoding failed, they must not outlive the call. Lent views live
    /// on in the call's arguments.
    private static func releaseCopiedViews(_ views: PyObjectPointer, of task: Task) {
        guard views != sp_None() else { return }
        for (index, extra) in task.extras.enumerated() where index < PyList_Size(views) {
            if case .bytes = extra { ForeignView.release(sp_List_GET_ITEM(views, index)!) }
        }
    }

    /// The caller's payload for a call that returned `result` (nil: it raised, the exception
    /// set): the value in the shareable format when it is one, else what the runner encodes
    /// (`encode_result`/`encode_error`). Times the encoding from `start`, if given.
    mutating func outcome(
        encoding result: consuming OwnedObject?, stats: StepStatistics, since start: UInt64?,
        _ task: Task, _ lending: ResultLending
    ) -> (Payload?, String?) {
        if let value = result?.borrowed, let buffer = TaskRunner.shareableValue(value) {
            if let start { stats.addSince(start, to: .encodeResult) }
            return (.encoded(buffer), nil)
        }
        var pins: QueuePins?
        let encoded = QueuePins.collecting(into: &pins) { () -> OwnedObject? in
            guard let value = result.take() else { return encodeRaisedException() }
            guard let encode = encodeResultFunction() else { return nil }
            return OwnedObject(PyObject_CallOneArg(encode, value.borrowed))
        }
        if let start { stats.addSince(start, to: .encodeResult) }
        return payload(of: encoded, pins, task, lending)
    }

    /// A returned value in `ShareableCodec`'s format, unless it is one that travels out of
    /// band (large `bytes`: lent, one copy) or one the format cannot hold (pickled instead).
    private static func shareableValue(_ value: PyObjectPointer) -> ByteBuffer? {
        guard WireFormat.outOfBandKind(value) == .inBand else { return nil }
        return ShareableCodec.encode(value)
    }

    private func encodeRaisedException() -> OwnedObject? {
        guard let exception = Py.takeRaised() else { return nil }
        return OwnedObject(PyObject_CallOneArg(encodeError.borrowed, exception.borrowed))
    }

    /// The runner's `decode_call`, looked up the first time it is needed: borrowed, or nil
    /// with an exception set.
    private mutating func decodeCallFunction() -> PyObjectPointer? {
        if decodeCall == nil { decodeCall = Py.attribute(module.borrowed, "decode_call") }
        return decodeCall?.borrowed
    }

    /// The runner's `encode_result`, as `decodeCallFunction`.
    private mutating func encodeResultFunction() -> PyObjectPointer? {
        if encodeResult == nil { encodeResult = Py.attribute(module.borrowed, "encode_result") }
        return encodeResult?.borrowed
    }

    /// The outcome the runner encoded (`bytes`, or a binary result to lend), as the payload
    /// the caller receives; nil and the text of an internal failure when encoding failed.
    private func payload(
        of encoded: consuming OwnedObject?, _ pins: QueuePins?, _ task: Task,
        _ lending: ResultLending
    ) -> (Payload?, String?) {
        guard let encoded else { return (nil, TaskRunner.errorText("encoding the outcome")) }
        let object = encoded.borrowed
        if sp_Bytes_Check(object) != 0 {
            return (.encoded(ByteBuffer(copying: Py.contents(ofBytes: object), pins: pins)), nil)
        }
        // `(value,)` or `(value, True)`: a binary result (`bytes`, a C-contiguous memoryview,
        // a bytearray), lent to the caller, which copies it once, instead of pickled; with
        // True, the caller makes it a bytearray.
        let size = sp_Tuple_Check(object) != 0 ? PyTuple_Size(object) : 0
        if size == 1 || size == 2, let value = sp_Tuple_GET_ITEM(object, 0) {
            let asByteArray = size == 2 && sp_Tuple_GET_ITEM(object, 1) == sp_True()
            guard
                let lent = lending.payload(
                    lending: value, asByteArray: asByteArray, of: task, lentBufferType: lentBufferType.borrowed)
            else { return (nil, TaskRunner.errorText("lending the result")) }
            return (lent, nil)
        }
        return (nil, "the runner returned an outcome that is neither bytes nor a (value,) or (value, True) tuple")
    }

    /// The text of the pending exception (cleared), prefixed with what we were doing.
    static func errorText(_ doing: String) -> String {
        guard let exception = Py.takeRaised() else { return "\(doing) failed" }
        return "\(doing) failed: \(Py.describe(exception.borrowed))"
    }

    private static func failure(_ doing: String) -> RunnerFailure {
        RunnerFailure(text: errorText(doing))
    }
}

/// A read-only memoryview over memory this interpreter does not own (the caller's bytes),
/// released (`memoryview.release()`) when it is dropped, so that nothing reads that memory
/// afterwards. If Python code kept the view (or a buffer exported from it), the release fails
/// and the view stays usable, which would let it outlive the memory; the runner does not hand
/// the view to user code, so this does not happen.
struct ForeignView: ~Copyable {
    let view: OwnedObject

    /// A view of `buffer`, or nil with an exception set.
    init?(_ buffer: UnsafeRawBufferPointer) {
        guard let view = ForeignView.make(buffer) else { return nil }
        self.view = view
    }

    deinit { ForeignView.release(view.borrowed) }

    /// A new memoryview of `buffer` (not released when dropped), or nil with an exception set.
    static func make(_ buffer: UnsafeRawBufferPointer) -> OwnedObject? {
        // An empty buffer may have no address; any valid pointer does for zero bytes.
        let start = buffer.baseAddress ?? UnsafeRawPointer(emptyByte)
        return OwnedObject(
            PyMemoryView_FromMemory(
                UnsafeMutablePointer(mutating: start.assumingMemoryBound(to: CChar.self)),
                Py_ssize_t(buffer.count), PyBUF_READ))
    }

    /// `view.release()`; an exception already set stays set, and one the release raises is
    /// dropped.
    static func release(_ view: PyObjectPointer) {
        let raised = Py.takeRaised()
        if let release = Py.attribute(view, "release") {
            _ = Py.call(release.borrowed)
        }
        PyErr_Clear()
        if let raised { PyErr_SetRaisedException(raised.take()) }
    }

    nonisolated(unsafe) private static let emptyByte = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
}
