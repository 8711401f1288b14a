// `_native.Queue`: a FIFO of encoded items (`ShareableCodec`, else pickle) shared by every
// interpreter of the process.
// Each interpreter's handle is a separate Python object retaining the same Swift queue;
// pickling a handle sends only the queue's id, and unpickling attaches to the same queue.
// While such a pickle travels inside an item, a call or a result, the bytes retain the queue
// (`QueuePins`), so it outlives a sender that drops its last handle.
@preconcurrency import CPythonShim
import Glibc
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

    static let new:
        @convention(c) (
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

    /// Encodes `item` into a Swift buffer: natively when it is made of the types the stdlib
    /// shares without pickling (`ShareableCodec`), else pickled with the package's encoder
    /// (`_pickling.dumps`) into a buffer that retains the other queues whose handles it holds
    /// (not this one: an item of a queue cannot be taken once the queue is gone, and pinning
    /// it would keep it forever).
    private func encode(_ item: PyObjectPointer, _ me: PyObjectPointer) -> ByteBuffer? {
        if let native = ShareableCodec.encode(item) { return native }
        var pins: QueuePins?
        guard let data = QueuePins.collecting(into: &pins, { SharedQueue.pickle(item, me) }) else { return nil }
        pins?.remove(self)
        return ByteBuffer(copying: Py.contents(ofBytes: data.borrowed), pins: pins)
    }

    /// The pickle of `item` (a new `bytes`), or nil with an exception set.
    private static func pickle(_ item: PyObjectPointer, _ me: PyObjectPointer) -> OwnedObject? {
        if let fast = ModuleState.cPickle(for: Py_TYPE(me)), let data = Pickling.quickDumps(item, with: fast.dumps) {
            return data
        }
        PyErr_Clear()
        guard let dumps = ModuleState.pickling(for: me, "dumps") else { return nil }
        guard let data = OwnedObject(PyObject_CallOneArg(dumps, item)) else { return nil }
        guard sp_Bytes_Check(data.borrowed) != 0 else {
            PyErr_SetString(PyExc_TypeError, "dumps must return bytes")
            return nil
        }
        return data
    }

    private static func decode(_ buffer: ByteBuffer, _ me: PyObjectPointer) -> PyObjectPointer? {
        if ShareableCodec.holds(buffer) { return ShareableCodec.decode(buffer) }
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
        // timeout=None waits without limit, as in queue.Queue (so does an infinite timeout).
        guard blocking, let timeout, timeout != sp_None() else { return (blocking, nil) }
        guard let seconds = Py.double(timeout) else { return nil }
        guard seconds >= 0, !seconds.isNaN else {
            PyErr_SetString(PyExc_ValueError, "'timeout' must be a non-negative number")
            return nil
        }
        return (true, MonotonicClock.deadline(afterSeconds: seconds))
    }

    private func put(_ me: PyObjectPointer, _ item: PyObjectPointer, block: Bool, deadline: UInt64?) -> PyObjectPointer?
    {
        guard let buffer = encode(item, me) else { return nil }
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
            let outcome: BlockingCall.Outcome<ByteBuffer> = BlockingCall.run {
                parker, keepWaiting throws(QueueFailure) in
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
        .keywords(
            "put", "put($self, /, item, block=True, timeout=None)\n--\n\nAdd item; raises queue.Full or QueueClosed."
        ) {
            me, args, n, names in
            if n == 1 && names == nil {  // put(item), the common call: nothing to parse
                return Box.unwrap(me, as: SharedQueue.self).put(me!, args![0]!, block: true, deadline: nil)
            }
            var parsed: [PyObjectPointer?] = [nil, nil, nil]
            guard
                Keywords.parse(
                    function: "put", names: ["item", "block", "timeout"], args: args, count: n, keywords: names,
                    into: &parsed)
            else { return nil }
            guard let item = parsed[0] else {
                return Py.fail(PyExc_TypeError, "put() missing required argument 'item'")
            }
            guard let (block, deadline) = waitArguments(parsed[1], parsed[2]) else { return nil }
            return Box.unwrap(me, as: SharedQueue.self).put(me!, item, block: block, deadline: deadline)
        },
        .keywords(
            "get",
            "get($self, /, block=True, timeout=None)\n--\n\nRemove and return the oldest item; raises queue.Empty or QueueClosed."
        ) { me, args, n, names in
            if n == 0 && names == nil {  // get(), the common call
                return Box.unwrap(me, as: SharedQueue.self).get(me!, block: true, deadline: nil)
            }
            var parsed: [PyObjectPointer?] = [nil, nil]
            guard
                Keywords.parse(
                    function: "get", names: ["block", "timeout"], args: args, count: n, keywords: names, into: &parsed)
            else { return nil }
            guard let (block, deadline) = waitArguments(parsed[0], parsed[1]) else { return nil }
            return Box.unwrap(me, as: SharedQueue.self).get(me!, block: block, deadline: deadline)
        },
        .fast("put_nowait", "put_nowait($self, item, /)\n--\n\nput(item, block=False).") { me, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("put_nowait", 1...1) else { return nil }
            return Box.unwrap(me, as: SharedQueue.self).put(me!, arguments[0], block: false, deadline: nil)
        },
        .noArgs("get_nowait", "get_nowait($self, /)\n--\n\nget(block=False).") { me, _ in
            Box.unwrap(me, as: SharedQueue.self).get(me!, block: false, deadline: nil)
        },
        .noArgs("qsize", "qsize($self, /)\n--\n\nNumber of items in the queue now.") { me, _ in
            Py.int(Int64(Box.unwrap(me, as: SharedQueue.self).items.count))
        },
        .noArgs("empty", "empty($self, /)\n--\n\nWhether the queue holds no items now.") { me, _ in
            Py.bool(Box.unwrap(me, as: SharedQueue.self).items.count == 0)
        },
        .noArgs("full", "full($self, /)\n--\n\nWhether the queue is at maxsize now (never, when unbounded).") { me, _ in
            let queue = Box.unwrap(me, as: SharedQueue.self)
            return Py.bool(queue.items.capacity > 0 && queue.items.count >= queue.items.capacity)
        },
        .noArgs(
            "close",
            "close($self, /)\n--\n\nRefuse new items and wake every waiter with QueueClosed; items already queued can still be taken."
        ) { me, _ in
            Box.unwrap(me, as: SharedQueue.self).items.close()
            return Py.none()
        },
        .noArgs("is_closed", "is_closed($self, /)\n--\n\nWhether close() was called, in any interpreter.") { me, _ in
            Py.bool(Box.unwrap(me, as: SharedQueue.self).items.isClosed)
        },
        .noArgs("_id", "_id($self, /)\n--\n\nThe process-wide id of the queue.") { me, _ in
            Py.int(Box.unwrap(me, as: SharedQueue.self).id)
        },
        .noArgs(
            "__reduce__",
            "__reduce__($self, /)\n--\n\nPickles the handle as the queue's id; unpickling attaches to the same queue (which a pickle in transit through a Queue, a task or a result keeps alive)."
        ) { me, _ in
            let queue = Box.unwrap(me, as: SharedQueue.self)
            QueuePins.note(queue)
            guard let attach = ModuleState.function(for: me!, "_attach_queue"), let id = OwnedObject(Py.int(queue.id)),
                let arguments = OwnedObject(Py.tuple([id.borrowed]))
            else { return nil }
            return Py.tuple([attach.borrowed, arguments.borrowed])
        },
    ]

    nonisolated(unsafe) static let spec = NativeTables.boxedTypeSpec(
        name: "subinterpreter_parallelism._native.Queue",
        doc: """
            Queue(maxsize=0)
            --

            A FIFO shared by every interpreter of the process.

            Items made of None, bool, int, float, complex, str, bytes and tuples, frozensets (and
            frozendicts) of them are copied without pickle; other items are pickled on put and unpickled on get. A Queue passed to a task is
            the same queue inside the worker. Blocking waits release the GIL and wake on a hand-off (no
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

/// The queues (and SharedMaps: `SharedMapStorage`) whose handles were pickled on this thread
/// while an item, a call or a result was encoded for another interpreter. The encoded bytes
/// retain them (`ByteBuffer.pins`, `Task.pins`), so that a queue whose last handle is dropped
/// while a pickle of it travels (`outer.put(inner); del inner`, or a queue made and returned by
/// a task) still exists when the pickle is loaded; the pins go with the bytes, once loaded or
/// dropped. A plain `pickle.dumps(queue)` outside those encodings pins nothing: nobody could
/// tell when its bytes are dropped.
final class QueuePins: @unchecked Sendable {
    private var queues: [AnyObject] = []
    private var seen = Set<ObjectIdentifier>()

    /// This thread's collector while an encoding runs (an unretained `QueuePins`), else nil.
    private static let currentKey: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
        return key
    }()

    /// Runs `body` (which pickles) and returns its result; `pins` gets the queues it pickled,
    /// if any. Nested encodings collect into their own `QueuePins`.
    static func collecting<T: ~Copyable>(into pins: inout QueuePins?, _ body: () -> T) -> T {
        let collector = QueuePins()
        let outer = pthread_getspecific(currentKey)
        set(Unmanaged.passUnretained(collector).toOpaque())
        let result = body()
        set(outer)
        pins = collector.queues.isEmpty ? nil : collector
        return result
    }

    private static func set(_ collector: UnsafeMutableRawPointer?) {
        precondition(pthread_setspecific(currentKey, collector) == 0, "pthread_setspecific failed")
    }

    /// Called by `Queue.__reduce__` (and SharedMap's): pins `queue` to the encoding running on
    /// this thread, if any; whether one runs.
    @discardableResult
    static func note(_ queue: AnyObject) -> Bool {
        guard let raw = pthread_getspecific(currentKey) else { return false }
        let pins = Unmanaged<QueuePins>.fromOpaque(raw).takeUnretainedValue()
        if pins.seen.insert(ObjectIdentifier(queue)).inserted { pins.queues.append(queue) }
        return true
    }

    func remove(_ queue: AnyObject) {
        queues.removeAll { $0 === queue }
    }
}
