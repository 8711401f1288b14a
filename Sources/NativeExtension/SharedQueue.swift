// `_native.Queue`: a FIFO of pickled items shared by every interpreter of the process.
// Each interpreter's handle is a separate Python object retaining the same Swift queue;
// pickling a handle sends only the queue's id, and unpickling attaches to the same queue.
@preconcurrency import CPythonShim
import ParallelRuntime
import Synchronization

final class SharedQueue: NativeBacked, @unchecked Sendable {
    let id: Int64
    let items: BlockingQueue<ByteBuffer>

    private static let nextID = Atomic<Int64>(1)
    private static let registry = Mutex<[Int64: WeakQueue]>([:])

    private struct WeakQueue: @unchecked Sendable { weak var queue: SharedQueue? }

    init(maxsize: Int) {
        id = SharedQueue.nextID.add(1, ordering: .relaxed).oldValue
        items = BlockingQueue(capacity: maxsize)
        SharedQueue.registry.withLock { $0[id] = WeakQueue(queue: self) }
    }

    deinit {
        let id = self.id
        SharedQueue.registry.withLock { registry in
            if registry[id]?.queue == nil { registry.removeValue(forKey: id) }
        }
    }

    /// The live queue with this id, if any interpreter still holds it.
    static func lookup(_ id: Int64) -> SharedQueue? {
        registry.withLock { $0[id]?.queue }
    }

    // MARK: - Python methods

    static let new: @convention(c) (
        UnsafeMutablePointer<PyTypeObject>?, PyObjectPointer?, PyObjectPointer?
    ) -> PyObjectPointer? = { type, args, kwargs in
        var parsed: [PyObjectPointer?] = [nil]
        guard Keywords.parse(function: "Queue", names: ["maxsize"], tuple: args, dict: kwargs, into: &parsed)
        else { return nil }
        var maxsize: Int64 = 0
        if let value = parsed[0] {
            guard sp_Long_Check(value) != 0 else { return Py.fail(PyExc_TypeError, "maxsize must be an int") }
            guard let number = Py.int64(value) else { return nil }
            maxsize = max(0, number)  // like queue.Queue, maxsize <= 0 means unbounded
        }
        return Box.wrap(SharedQueue(maxsize: Int(maxsize)), as: type!)
    }

    /// Pickles `item` with the package's encoder (`_pickling.dumps`) into a Swift buffer.
    private static func encode(_ item: PyObjectPointer, _ me: PyObjectPointer) -> ByteBuffer? {
        if let fast = ModuleState.cPickle(for: Py_TYPE(me)), let data = Pickling.quickDumps(item, with: fast.dumps) {
            defer { Py_DecRef(data) }
            return ByteBuffer(copying: Py.contents(ofBytes: data))
        }
        PyErr_Clear()
        guard let dumps = ModuleState.pickling(for: me, "dumps") else { return nil }
        guard let data = PyObject_CallOneArg(dumps, item) else { return nil }
        defer { Py_DecRef(data) }
        guard sp_Bytes_Check(data) != 0 else { PyErr_SetString(PyExc_TypeError, "dumps must return bytes"); return nil }
        return ByteBuffer(copying: Py.contents(ofBytes: data))
    }

    private static func decode(_ buffer: ByteBuffer, _ me: PyObjectPointer) -> PyObjectPointer? {
        guard let loads = ModuleState.cPickle(for: Py_TYPE(me))?.loads else { return nil }
        return Pickling.loads(buffer, with: loads)
    }

    /// Reads `(block, timeout)` like `queue.Queue`: returns (block, deadline) or nil with an error.
    private static func waitArguments(_ block: PyObjectPointer?, _ timeout: PyObjectPointer?) -> (Bool, UInt64?)? {
        var blocking = true
        if let block {
            let truth = PyObject_IsTrue(block)
            if truth < 0 { return nil }
            blocking = truth == 1
        }
        guard blocking, let timeout else { return (blocking, nil) }
        guard let seconds = Py.double(timeout) else { return nil }
        guard seconds >= 0, !seconds.isNaN else {
            PyErr_SetString(PyExc_ValueError, "'timeout' must be a non-negative number")
            return nil
        }
        return (true, MonotonicClock.deadline(afterSeconds: seconds))
    }

    private func put(_ me: PyObjectPointer, _ item: PyObjectPointer, block: Bool, deadline: UInt64?) -> PyObjectPointer? {
        guard let buffer = SharedQueue.encode(item, me) else { return nil }
        // The common case, room in the queue, never releases the GIL.
        do {
            try items.put(buffer, block: false)
            return Py.none()
        } catch .full where block {
            // wait below
        } catch {
            return SharedQueue.raise(error, me)
        }
        if let worker = BlockingCall.interruptPending { return worker.raiseInterruption() }
        let outcome: BlockingCall.Outcome<Void> = BlockingCall.run { parker, keepWaiting throws(QueueFailure) in
            try items.put(buffer, deadline: deadline, parker: parker, keepWaiting: keepWaiting)
        }
        switch outcome {
        case .value: return Py.none()
        case .failed(let failure): return SharedQueue.raise(failure, me)
        case .stopped(let stop): return BlockingCall.raise(stop)
        }
    }

    private func get(_ me: PyObjectPointer, block: Bool, deadline: UInt64?) -> PyObjectPointer? {
        // A task that was asked to stop must not take items: they would be lost with it.
        if let worker = BlockingCall.interruptPending { return worker.raiseInterruption() }
        let buffer: ByteBuffer
        do {
            buffer = try items.get(block: false)
        } catch .empty where block {
            let outcome: BlockingCall.Outcome<ByteBuffer> = BlockingCall.run { parker, keepWaiting throws(QueueFailure) in
                try items.get(deadline: deadline, parker: parker, keepWaiting: keepWaiting)
            }
            switch outcome {
            case .value(let item): buffer = item
            case .failed(let failure): return SharedQueue.raise(failure, me)
            case .stopped(let stop): return BlockingCall.raise(stop)
            }
        } catch {
            return SharedQueue.raise(error, me)
        }
        // The interrupt may have raced with taking the item (a hand-off wakes the getter before
        // it notices the interrupt): give the item back rather than let the stopping task lose it.
        if let worker = BlockingCall.interruptPending {
            items.putBack(buffer)
            return worker.raiseInterruption()
        }
        return SharedQueue.decode(buffer, me)
    }

    private static func raise(_ failure: QueueFailure, _ me: PyObjectPointer) -> PyObjectPointer? {
        let name: String
        switch failure {
        case .empty: name = "Empty"
        case .full: name = "Full"
        case .closed, .stopped: name = "QueueClosed"
        }
        let message = failure == .closed || failure == .stopped ? "the queue is closed" : ""
        guard let type = ModuleState.exception(for: me, name) else { return nil }
        PyErr_SetString(type, message)
        return nil
    }

    static let methods: [MethodEntry] = [
        .keywords("put", "put(item, block=True, timeout=None): add item; raises queue.Full or QueueClosed.") { me, args, n, names in
            var parsed: [PyObjectPointer?] = [nil, nil, nil]
            guard Keywords.parse(function: "put", names: ["item", "block", "timeout"], args: args, count: n, keywords: names, into: &parsed) else { return nil }
            guard let item = parsed[0] else { return Py.fail(PyExc_TypeError, "put() missing required argument 'item'") }
            guard let (block, deadline) = waitArguments(parsed[1], parsed[2]) else { return nil }
            return Box.unwrap(me, as: SharedQueue.self).put(me!, item, block: block, deadline: deadline)
        },
        .keywords("get", "get(block=True, timeout=None): remove and return the oldest item; raises queue.Empty or QueueClosed.") { me, args, n, names in
            var parsed: [PyObjectPointer?] = [nil, nil]
            guard Keywords.parse(function: "get", names: ["block", "timeout"], args: args, count: n, keywords: names, into: &parsed) else { return nil }
            guard let (block, deadline) = waitArguments(parsed[0], parsed[1]) else { return nil }
            return Box.unwrap(me, as: SharedQueue.self).get(me!, block: block, deadline: deadline)
        },
        .fast("put_nowait", "put_nowait(item): put(item, block=False).") { me, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("put_nowait", 1...1) else { return nil }
            return Box.unwrap(me, as: SharedQueue.self).put(me!, arguments[0], block: false, deadline: nil)
        },
        .noArgs("get_nowait", "get_nowait(): get(block=False).") { me, _ in
            Box.unwrap(me, as: SharedQueue.self).get(me!, block: false, deadline: nil)
        },
        .noArgs("qsize", "Number of items in the queue now.") { me, _ in
            Py.int(Int64(Box.unwrap(me, as: SharedQueue.self).items.count))
        },
        .noArgs("empty", "Whether the queue holds no items now.") { me, _ in
            Py.bool(Box.unwrap(me, as: SharedQueue.self).items.count == 0)
        },
        .noArgs("full", "Whether the queue is at maxsize now (never, when unbounded).") { me, _ in
            let queue = Box.unwrap(me, as: SharedQueue.self)
            return Py.bool(queue.items.capacity > 0 && queue.items.count >= queue.items.capacity)
        },
        .noArgs("close", "Refuse new items and wake every waiter with QueueClosed; items already queued can still be taken.") { me, _ in
            Box.unwrap(me, as: SharedQueue.self).items.close()
            return Py.none()
        },
        .noArgs("is_closed", "Whether close() was called, in any interpreter.") { me, _ in
            Py.bool(Box.unwrap(me, as: SharedQueue.self).items.isClosed)
        },
        .noArgs("_id", "The process-wide id of the queue.") { me, _ in
            Py.int(Box.unwrap(me, as: SharedQueue.self).id)
        },
        .noArgs("__reduce__", "Pickles the handle as the queue's id; unpickling attaches to the same queue.") { me, _ in
            let queue = Box.unwrap(me, as: SharedQueue.self)
            guard let attach = ModuleState.function(for: me!, "_attach_queue"), let id = Py.int(queue.id) else { return nil }
            defer { Py_DecRef(attach); Py_DecRef(id) }
            guard let arguments = Py.tuple([id]) else { return nil }
            defer { Py_DecRef(arguments) }
            return Py.tuple([attach, arguments])
        },
    ]

    nonisolated(unsafe) static let spec = NativeTables.boxedTypeSpec(
        name: "subinterpreter_parallelism._native.Queue",
        doc: """
        Queue(maxsize=0): a FIFO shared by every interpreter of the process.

        Items are pickled on put and unpickled on get. A Queue passed to a task is the same
        queue inside the worker. Blocking waits release the GIL and wake on a hand-off (no
        polling); interrupting the task or Ctrl-C on the main thread ends them.
        """,
        methods: methods,
        extraSlots: [
            PyType_Slot(slot: sp_slot_tp_new, pfunc: unsafeBitCast(new, to: UnsafeMutableRawPointer.self)),
            PyType_Slot(slot: sp_slot_tp_getset, pfunc: UnsafeMutableRawPointer(attributes)),
        ])

    /// Read-only attributes: `maxsize`, as on `queue.Queue`.
    nonisolated(unsafe) static let attributes: UnsafeMutablePointer<PyGetSetDef> = {
        let getMaxsize: getter = { me, _ in
            Py.int(Int64(Box.unwrap(me, as: SharedQueue.self).items.capacity))
        }
        let table = UnsafeMutablePointer<PyGetSetDef>.allocate(capacity: 2)
        table[0] = PyGetSetDef(
            name: ("maxsize" as StaticString).cString, get: getMaxsize, set: nil,
            doc: ("The capacity given at creation (0: unbounded)." as StaticString).cString, closure: nil)
        table[1] = PyGetSetDef(name: nil, get: nil, set: nil, doc: nil, closure: nil)
        return table
    }()

    /// `_attach_queue(id)`: a new handle in this interpreter for the live queue `id`.
    static func attach(_ module: PyObjectPointer, _ idObject: PyObjectPointer) -> PyObjectPointer? {
        guard let id = Py.int64(idObject) else { return nil }
        guard let queue = lookup(id) else {
            return Py.fail(PyExc_LookupError, "queue \(id) no longer exists: every interpreter released it")
        }
        guard let state = ModuleState.of(module: module), let type = state.pointee.queue_type else {
            return Py.fail(PyExc_RuntimeError, "_native module state is missing")
        }
        return Box.wrap(queue, as: UnsafeMutableRawPointer(type).assumingMemoryBound(to: PyTypeObject.self))
    }
}
