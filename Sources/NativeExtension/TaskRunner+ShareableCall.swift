// A call by name (`WireFormat.Call.decodeByName`, in the shareable format): resolved and called
// by the worker's Swift code, without a Python frame of the runner and without pickle.
@preconcurrency import CPythonShim
import ParallelRuntime

extension TaskRunner {
    /// Runs a task whose input is a call by name (see `run`).
    mutating func runShareableCall(_ task: Task, _ stats: StepStatistics, lending: ResultLending) -> (
        Payload?, String?
    ) {
        let t0 = MonotonicClock.now()
        // When the call cannot be decoded or its function found, the task fails with that
        // error (set), as an unpickling error would fail it.
        guard let call = WireFormat.Call.decodeByName(task.input) else {
            return outcome(encoding: nil, stats: stats, since: stats.addSince(t0, to: .decodeCall), task, lending)
        }
        guard let function = TaskRunner.resolve(call) else {
            return outcome(encoding: nil, stats: stats, since: stats.addSince(t0, to: .decodeCall), task, lending)
        }
        let t1 = stats.addSince(t0, to: .decodeCall)
        let result = self.call(function.borrowed, arguments: call.arguments, keywords: call.keywords)
        let t2 = stats.addSince(t1, to: .call)
        return outcome(encoding: result, stats: stats, since: t2, task, lending)
    }

    /// The function a call by name names, or nil with an exception set.
    ///
    /// Resolved by name on every call, as unpickling the function would: the module from
    /// `sys.modules` (imported when missing), then the attributes of the qualified name. So a
    /// name rebound in this interpreter (by a task, an initializer) is honoured; nothing cached
    /// here can go stale.
    private static func resolve(_ call: borrowing WireFormat.Call.ByName) -> OwnedObject? {
        let module: OwnedObject
        if let imported = OwnedObject(PyImport_GetModule(call.module)) {
            module = imported
        } else if PyErr_Occurred() == nil, let imported = OwnedObject(PyImport_Import(call.module)) {
            module = imported
        } else {
            return nil
        }
        return ByName.walk(call.qualname, from: module)
    }
}
