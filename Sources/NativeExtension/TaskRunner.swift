// The Python half of a worker, bound once per interpreter: the runner module
// (python/subinterpreter_parallelism/_worker.py) and the wire's records (_wire.py), their
// functions bound by name, and how a task is run with them. A task crosses into Python once,
// for the call itself: its Call is decoded here (Wire.swift; a call by name is resolved in
// TaskRunner+ShareableCall.swift), the function is called (a Python function or a class
// directly, anything else through the runner's `invoke`), and what it returned is encoded here
// (Shareable, else a Value); `_wire.decode_call`, `_wire.encode_value` and the runner's
// `encode_error` take only what that cannot do (out-of-band arguments, Lent results,
// `__main__`, failures, exceptions). Each step is timed. Every method runs on the worker's
// thread with its interpreter's GIL held, and the runner is dropped (its references released)
// before that interpreter ends.
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
    /// This interpreter's `_native` module, whose state keeps its `_pickle` functions.
    private let native: OwnedObject
    /// `_wire.decode_call(view, extras)`, `_wire.encode_value(value)` and the `_wire.Lent`
    /// type (the runner imported `_wire`, which loads pickle only when these need it).
    private let decodeCall: OwnedObject
    private let encodeValue: OwnedObject
    private let lentType: OwnedObject
    /// `_pickle.dumps` and `_pickle.loads` (borrowed from `native`'s state), imported on first
    /// use: a worker whose tasks never need pickle does not import it.
    private var cPickle: (dumps: PyObjectPointer, loads: PyObjectPointer)?

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
        guard let wire = Py.importModule("subinterpreter_parallelism._wire") else {
            throw TaskRunner.failure("importing subinterpreter_parallelism._wire")
        }
        // One lookup at a time: none runs with the previous one's exception still set.
        func bind(_ name: String, from source: borrowing OwnedObject) throws(RunnerFailure) -> OwnedObject {
            guard let function = Py.attribute(source.borrowed, name) else {
                throw TaskRunner.failure("reading the runner's \(name)")
            }
            return function
        }
        func bind(_ name: String) throws(RunnerFailure) -> OwnedObject { try bind(name, from: module) }
        let invoke = try bind("invoke")
        let encodeError = try bind("encode_error")
        let unflushed = try bind("unflushed")
        let flushUnflushed = try bind("flush_unflushed")
        let bootstrap = try bind("bootstrap")
        let followSysPath = try bind("follow_sys_path")
        let interruptType = try bind("TaskInterrupted")
        let decodeCall = try bind("decode_call", from: wire)
        let encodeValue = try bind("encode_value", from: wire)
        let lentType = try bind("Lent", from: wire)
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
        self.native = native
        self.decodeCall = decodeCall
        self.encodeValue = encodeValue
        self.lentType = lentType
        cPickle = nil
    }

    /// Runs the runner's `bootstrap(payload)` (`configuration.bootstrapPayload`, see
    /// `_wire.Bootstrap`): nil on success, else the text of the failure.
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

    /// Runs `_worker_features.warm_module(module)` (preload's worker half: a worker never
    /// imports `preload` itself): nil on success, else the failure's text.
    func warm(_ module: String) -> String? {
        guard let features = Py.importModule("subinterpreter_parallelism._worker_features") else {
            return TaskRunner.errorText("importing subinterpreter_parallelism._worker_features")
        }
        guard let warmModule = Py.attribute(features.borrowed, "warm_module") else {
            return TaskRunner.errorText("reading _worker_features.warm_module")
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
        guard let input = ForeignView(task.input) else {
            return (nil, TaskRunner.errorText("wrapping the task"))
        }
        let t0 = MonotonicClock.now()
        let decoded = decode(input, task)
        guard let call = decoded else {
            stats.addSince(t0, to: .decodeCall)
            return outcome(encoding: nil, stats: stats, since: nil, task, lending)
        }
        let t1 = stats.addSince(t0, to: .decodeCall)
        let result = self.call(
            sp_Tuple_GET_ITEM(call.borrowed, 0)!, arguments: sp_Tuple_GET_ITEM(call.borrowed, 1)!,
            keywords: sp_Tuple_GET_ITEM(call.borrowed, 2)!, packed: call.borrowed)
        let t2 = stats.addSince(t1, to: .call)
        return outcome(encoding: result, stats: stats, since: t2, task, lending)
    }

    /// `function(*arguments, **keywords)` (`keywords` a dict or nil; `packed`, when given, the
    /// tuple `(function, arguments, keywords)`): a Python function or a class is called
    /// directly; anything else through the runner's `invoke`, since builtins such as `eval`,
    /// `globals` or `vars` read the calling Python frame, which a call from here would not
    /// have (as with pickle, they see the runner's). Output a direct call left without a
    /// newline is flushed, as `invoke` does. Nil with an exception set when the call raised.
    func call(
        _ function: PyObjectPointer, arguments: PyObjectPointer, keywords: PyObjectPointer?,
        packed: PyObjectPointer? = nil
    ) -> OwnedObject? {
        if Py_IS_TYPE(function, &PyFunction_Type) != 0 || Py_IS_TYPE(function, &PyType_Type) != 0 {
            let given = keywords.flatMap { PyDict_Size($0) > 0 ? $0 : nil }
            let result = OwnedObject(PyObject_Call(function, arguments, given))
            flushOutput()
            return result
        }
        if let packed { return OwnedObject(PyObject_CallOneArg(invoke.borrowed, packed)) }
        let dict: OwnedObject?
        if let keywords { dict = OwnedObject(retaining: keywords) } else { dict = Py.dict() }
        guard let dict, let call = OwnedObject(Py.tuple([function, arguments, dict.borrowed])) else { return nil }
        return OwnedObject(PyObject_CallOneArg(invoke.borrowed, call.borrowed))
    }

    /// What the runner's `invoke` does after a call: output a call left without a newline goes
    /// to the caller before the result (`_worker.unflushed`). A raised exception stays set.
    private func flushOutput() {
        guard PyList_Size(unflushed.borrowed) > 0 else { return }
        let raised = Py.takeRaised()
        if Py.call(flushUnflushed.borrowed) == nil { PyErr_Clear() }
        if let raised { PyErr_SetRaisedException(raised.take()) }
    }

    /// The decoded Call `(fn, args, kwargs)` of a pickled task, or nil with an exception set:
    /// unpickled here, or by `_wire.decode_call` when arguments travel out of band.
    private mutating func decode(_ input: borrowing ForeignView, _ task: Task) -> OwnedObject? {
        if task.extras.isEmpty {
            guard let loads = pickle()?.loads else { return nil }
            return WireFormat.Call.decodePickled(input.view.borrowed, loads: loads)
        }
        guard let extras = extraViews(of: task) else { return nil }
        defer { TaskRunner.releaseCopiedViews(extras.borrowed, of: task) }
        return WireFormat.Call.checked(Py.call(decodeCall.borrowed, input.view.borrowed, extras.borrowed))
    }

    /// `_pickle.dumps` and `_pickle.loads` of this interpreter (imported the first time), or nil
    /// with an exception set.
    private mutating func pickle() -> (dumps: PyObjectPointer, loads: PyObjectPointer)? {
        if cPickle == nil { cPickle = ModuleState.cPickle(module: native.borrowed) }
        return cPickle
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
    /// set): a Shareable value, else a Value (its C pickle), else what `_wire.encode_value`
    /// makes (a Lent, `__main__`, a value that cannot be pickled) or the runner's
    /// `encode_error`. Times the encoding from `start`, if given.
    mutating func outcome(
        encoding result: consuming OwnedObject?, stats: StepStatistics, since start: UInt64?,
        _ task: Task, _ lending: ResultLending
    ) -> (Payload?, String?) {
        if let value = result?.borrowed, let buffer = WireFormat.Shareable.encode(value) {
            if let start { stats.addSince(start, to: .encodeResult) }
            return (.encoded(buffer), nil)
        }
        var pins: QueuePins?
        let encoded = QueuePins.collecting(into: &pins) { () -> OwnedObject? in
            guard let value = result.take() else { return encodeRaisedException() }
            if let dumps = pickle()?.dumps, let data = WireFormat.Value.encode(value.borrowed, dumps: dumps) {
                return data
            }
            PyErr_Clear()  // no pickle module here: `encode_value` reports why
            return OwnedObject(PyObject_CallOneArg(encodeValue.borrowed, value.borrowed))
        }
        if let start { stats.addSince(start, to: .encodeResult) }
        return payload(of: encoded, pins, task, lending)
    }

    private func encodeRaisedException() -> OwnedObject? {
        guard let exception = Py.takeRaised() else { return nil }
        return OwnedObject(PyObject_CallOneArg(encodeError.borrowed, exception.borrowed))
    }

    /// The outcome encoded (bytes, or a `_wire.Lent` to lend), as the payload the caller
    /// receives; nil and the text of an internal failure when encoding failed.
    private func payload(
        of encoded: consuming OwnedObject?, _ pins: QueuePins?, _ task: Task,
        _ lending: ResultLending
    ) -> (Payload?, String?) {
        guard let encoded else { return (nil, TaskRunner.errorText("encoding the outcome")) }
        let object = encoded.borrowed
        if sp_Bytes_Check(object) != 0 {
            return (.encoded(ByteBuffer(copying: Py.contents(ofBytes: object), pins: pins)), nil)
        }
        // A binary result (`bytes`, a C-contiguous memoryview, a bytearray), lent to the
        // caller, which copies it once, instead of pickled.
        guard let lent = WireFormat.Lent.read(object, type: lentType.borrowed) else {
            if PyErr_Occurred() != nil { return (nil, TaskRunner.errorText("reading a Lent record")) }
            return (nil, "the runner returned an outcome that is neither bytes nor a _wire.Lent")
        }
        guard
            let payload = lending.payload(
                lending: lent.value.borrowed, asByteArray: lent.asByteArray, of: task,
                lentBufferType: lentBufferType.borrowed)
        else { return (nil, TaskRunner.errorText("lending the result")) }
        return (payload, nil)
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
