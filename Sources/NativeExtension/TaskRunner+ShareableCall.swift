// A call in `ShareableCodec`'s format (`WireFormat.ShareableCall`): decoded, resolved and
// called by the worker's Swift code, without a Python frame of the runner and without pickle.
@preconcurrency import CPythonShim
import ParallelRuntime

extension TaskRunner {
    /// The function and keyword arguments (a dict, or none) of a decoded shareable call.
    struct ResolvedCall: ~Copyable {
        let function: OwnedObject
        let keywords: OwnedObject?
    }

    /// Runs a task whose input is a shareable call (see `run`).
    mutating func runShareableCall(_ task: Task, _ stats: StepStatistics, lending: ResultLending) -> (
        Payload?, String?
    ) {
        let t0 = MonotonicClock.now()
        guard let call = OwnedObject(ShareableCodec.decode(task.input)) else {
            stats.addSince(t0, to: .decodeCall)
            return outcome(encoding: nil, stats: stats, since: MonotonicClock.now(), task, lending)
        }
        let target = TaskRunner.resolve(call.borrowed)
        let t1 = stats.addSince(t0, to: .decodeCall)
        var result: OwnedObject?
        if let target {
            result = callResolved(target, arguments: sp_Tuple_GET_ITEM(call.borrowed, 2)!)
        }
        let t2 = stats.addSince(t1, to: .call)
        return outcome(encoding: result, stats: stats, since: t2, task, lending)
    }

    /// The function and keyword arguments of a decoded shareable call; nil with an exception
    /// set when the function cannot be found (the task fails with that error, as an
    /// unpickling error would fail it) or the call is malformed.
    ///
    /// Resolved by name on every call, as unpickling the function would: the module from
    /// `sys.modules` (imported when missing), then the attributes of the qualified name. So a
    /// name rebound in this interpreter (by a task, an initializer) is honoured; nothing cached
    /// here can go stale.
    private static func resolve(_ call: PyObjectPointer) -> ResolvedCall? {
        guard sp_Tuple_CheckExact(call) != 0, sp_Tuple_GET_SIZE(call) == WireFormat.ShareableCall.fieldCount,
            let moduleName = sp_Tuple_GET_ITEM(call, 0), let qualname = sp_Tuple_GET_ITEM(call, 1),
            sp_Unicode_CheckExact(moduleName) != 0, sp_Unicode_CheckExact(qualname) != 0,
            sp_Tuple_CheckExact(sp_Tuple_GET_ITEM(call, 2)) != 0
        else { return malformed() }
        var keywords: OwnedObject?
        let flat = sp_Tuple_GET_ITEM(call, 3)!
        if flat != sp_None() {
            guard sp_Tuple_CheckExact(flat) != 0 else { return malformed() }
            guard let dict = Py.dict() else { return nil }
            var i: Py_ssize_t = 0
            while i + 1 < sp_Tuple_GET_SIZE(flat) {
                guard PyDict_SetItem(dict.borrowed, sp_Tuple_GET_ITEM(flat, i), sp_Tuple_GET_ITEM(flat, i + 1)) == 0
                else { return nil }
                i += 2
            }
            keywords = consume dict
        }
        let module: OwnedObject
        if let imported = OwnedObject(PyImport_GetModule(moduleName)) {
            module = imported
        } else if PyErr_Occurred() == nil, let imported = OwnedObject(PyImport_Import(moduleName)) {
            module = imported
        } else {
            return nil
        }
        guard let function = ByName.walk(qualname, from: module) else { return nil }
        return ResolvedCall(function: function, keywords: keywords)
    }

    private static func malformed() -> ResolvedCall? {
        if PyErr_Occurred() == nil { PyErr_SetString(PyExc_RuntimeError, "a malformed shareable call") }
        return nil
    }

    /// Calls a resolved function: a Python function or a class directly, a builtin through the
    /// runner's `invoke`, since builtins such as `eval`, `globals` or `vars` read the calling
    /// Python frame, which a call from here would not have (as with pickle, they see the
    /// runner's). Nil with an exception set when the call raised.
    private func callResolved(_ target: borrowing ResolvedCall, arguments: PyObjectPointer) -> OwnedObject? {
        if sp_CFunction_Check(target.function.borrowed) == 0 {
            let result = OwnedObject(PyObject_Call(target.function.borrowed, arguments, target.keywords.borrowed))
            flushOutput()
            return result
        }
        let keywords: OwnedObject?
        switch target.keywords {
        case .some(let given): keywords = OwnedObject(retaining: given.borrowed)
        case .none: keywords = Py.dict()
        }
        guard let keywords,
            let call = OwnedObject(Py.tuple([target.function.borrowed, arguments, keywords.borrowed]))
        else { return nil }
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
}
