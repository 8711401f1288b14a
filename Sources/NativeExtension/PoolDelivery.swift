// The completion thread's side of a pool: `Pool.deliver` waits for the workers' events and
// hands each to Python, a returned value straight to its future (decoded here, no Python
// frame but `settle`'s), anything else to the executor's `on_event`.
@preconcurrency import CPythonShim
import ParallelRuntime

extension NativePool {
    /// What the fast path of delivery did with an event.
    enum FastDelivery: ~Copyable {
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
            built = WireFormat.Lent.copy(lent.contents, asByteArray: lent.asByteArray)
            guard built != nil else { return NativePool.failure() }
        case .lend:
            return .general
        case .lentArgument(let lend):
            built = OwnedObject(lend.callerView())
            guard built != nil else { return NativePool.failure() }
        case .encoded(let buffer):
            // A Shareable value or a Value; an Error, or a pickle that does not load here, takes
            // the general path (`_wire.decode_outcome` says why).
            built = WireFormat.Value.decode(buffer, loads: cLoads)
            guard built != nil else { return NativePool.failure() }
        }
        guard let value = built else { return .general }
        guard let id = OwnedObject(Py.int(event.id)) else { return NativePool.failure() }
        return values.settle(id.borrowed, with: value.borrowed) ? .delivered : NativePool.failure()
    }

    /// `.failed` with the exception now set (taken), or `.general` if none is.
    private static func failure() -> FastDelivery {
        if let exception = Py.takeRaised() { return .failed(exception) }
        return .general
    }

    /// `deliver(futures, settle, on_event)`: waits (GIL released) for the next events and
    /// hands each on. False once the pool has ended.
    func deliver(_ values: ValueDelivery, onEvent callback: PyObjectPointer) -> PyObjectPointer? {
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
        if case .encoded(let buffer)? = event.payload, let type = resultBufferType.borrowed {
            return OwnedObject(
                Box.wrap(buffer, as: UnsafeMutableRawPointer(type).assumingMemoryBound(to: PyTypeObject.self)))
        }
        if let text = event.text { return OwnedObject(Py.string(text)) }
        return OwnedObject(Py.none())
    }

    /// `on_event(kind, id, payload, worker)`. When the arguments cannot be built (memory ran
    /// out), a task's event becomes `deliveryFailed` with that exception, so that its future
    /// fails instead of waiting forever; what cannot be delivered even so is reported as
    /// unraisable.
    private func call(
        _ callback: PyObjectPointer, kind: PoolEvent.Kind, _ event: PoolEvent, payload: consuming OwnedObject?
    ) {
        var delivered = false
        if let payload, let kindObject = OwnedObject(Py.int(kind.rawValue)), let id = OwnedObject(Py.int(event.id)),
            let worker = OwnedObject(Py.int(Int64(event.worker)))
        {
            delivered = Py.call(callback, kindObject.borrowed, id.borrowed, payload.borrowed, worker.borrowed) != nil
        } else if kind != .deliveryFailed, event.task != nil || event.kind == .timedOut, let exception = Py.takeRaised()
        {
            call(callback, kind: .deliveryFailed, event, payload: exception)
            return
        }
        if !delivered { PyErr_WriteUnraisable(callback) }
    }
}

/// Where `deliver` puts a returned value: the executor's id -> future dict and its
/// `settle(future, value)` (the future's `set_result`). Swift pops the future itself, so that
/// the common outcome costs the completion thread one Python frame, `settle`'s, and no
/// look-up or call in Python (issue 15).
struct ValueDelivery {
    /// The executor's `dict` of task id -> future (borrowed: the caller's arguments).
    let futures: PyObjectPointer
    let settle: PyObjectPointer

    /// Pops the future of task `id` and settles it with `value`; a future not there any more
    /// (failed by the pool's end meanwhile) is skipped, and what `settle` raises is reported
    /// as unraisable, as a done-callback's error would be. False, with the exception set, only
    /// when the look-up itself failed (a key whose hash or comparison raised: memory ran out).
    func settle(_ id: PyObjectPointer, with value: PyObjectPointer) -> Bool {
        guard let item = PyDict_GetItemWithError(futures, id) else { return PyErr_Occurred() == nil }
        let future = OwnedObject(retaining: item)  // the dict's reference goes with the item
        guard PyDict_DelItem(futures, id) == 0 else { return false }
        if Py.call(settle, future.borrowed, value) == nil { PyErr_WriteUnraisable(settle) }
        return true
    }
}
