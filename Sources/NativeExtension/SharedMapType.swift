// `_native.SharedMap`, the base of `sp.SharedMap` (python/subinterpreter_parallelism/shared_map.py):
// per-interpreter handles on one `SharedMapStorage`. The lookups are slots of this type, so
// that `m[key]` costs one C call: encode the key (SharedMapKeys), find it, build the value.
// The Python subclass adds the rest of `collections.abc.Mapping` and pickling.
//
// A handle crosses to another interpreter as the map's id (`__reduce__` in Python, with
// `_pin_in_transit`), and the bytes that carry it retain the map meanwhile (`QueuePins`); to
// another process, as the path of a file to map (`_file_for_processes`).
@preconcurrency import CPythonShim

enum SharedMapType {
    private static func storage(_ me: PyObjectPointer?) -> SharedMapStorage {
        Box.unwrap(me, as: SharedMapStorage.self)
    }

    /// Runs `body` with the storage of `me` without retaining it: the handle holds it for the
    /// call. Lookups take this path because a retain is an atomic write to the storage's
    /// reference count, a cache line that every interpreter's lookups would then fight over
    /// (and, the registry's weak references having given it a side table, a slow one).
    @inline(__always)
    private static func withStorage<T>(_ me: PyObjectPointer?, _ body: (SharedMapStorage) -> T) -> T {
        let raw = me!.withMemoryRebound(to: sp_BoxObject.self, capacity: 1) { $0.pointee.swift_object }!
        return Unmanaged<SharedMapStorage>.fromOpaque(raw)._withUnsafeGuaranteedRef(body)
    }

    /// The `_native` state of the interpreter owning `instance`, whose type may be a Python
    /// subclass of ours (so `ModuleState.of(instance:)`, which reads the type's own module, cannot).
    private static func state(of instance: PyObjectPointer) -> UnsafeMutablePointer<sp_ModuleState>? {
        guard let module = PyType_GetModuleByDef(Py_TYPE(instance), NativeModule.definition) else { return nil }
        return ModuleState.of(module: module)
    }

    // MARK: - Lookups

    private enum Found {
        case entry(SharedMapStorage.Record)
        case missing
        case failed
    }

    /// The entry of `key`. A key that no map can hold is missing, as a key of another type is
    /// from a dict, unless it is unhashable: then TypeError, as from a dict.
    ///
    /// A str or an int, the usual keys, is hashed and compared straight from the key object:
    /// encoding it first and reading the bytes back costs a store-forwarding stall per read,
    /// which was a third of a lookup of a short key.
    private static func find(_ storage: SharedMapStorage, _ key: PyObjectPointer) -> Found {
        let kind = sp_ShareableKind(key)
        if kind == SP_SHARE_STR {
            var length: Py_ssize_t = 0
            if let text = PyUnicode_AsUTF8AndSize(key, &length) {
                let count = Int(length)
                let hash = SharedMapKeys.hash(kind: SharedMapKeys.kindStr, text, count)
                let found = storage.find(hash: hash) {
                    SharedMapKeys.matches($0, kind: SharedMapKeys.kindStr, text, count)
                }
                return found.map { .entry($0) } ?? .missing
            }
            PyErr_Clear()  // lone surrogates: the general path encodes them
        } else if kind == SP_SHARE_INT {
            var overflow: Int32 = 0
            var value = PyLong_AsLongLongAndOverflow(key, &overflow)
            if overflow == 0 {
                let hash = withUnsafeBytes(of: &value) {
                    SharedMapKeys.hash(kind: SharedMapKeys.kindInt, $0.baseAddress!, 8)
                }
                let found = storage.find(hash: hash) { SharedMapKeys.matches($0, int: value) }
                return found.map { .entry($0) } ?? .missing
            }
        }
        return findEncoded(storage, key)
    }

    /// `find` for any key: its canonical encoding, hashed and compared as bytes.
    private static func findEncoded(_ storage: SharedMapStorage, _ key: PyObjectPointer) -> Found {
        let scratchSize = 256
        return withUnsafeTemporaryAllocation(byteCount: scratchSize, alignment: 8) { scratch -> Found in
            var writer = SharedMapKeys.Writer(scratch.baseAddress!, capacity: scratchSize)
            if let problem = SharedMapKeys.encode(key, canonical: true, lookup: true, into: &writer) {
                return unusable(problem, key)
            }
            if writer.fits {
                return locate(storage, UnsafeRawBufferPointer(start: scratch.baseAddress, count: writer.length))
            }
            // A key longer than the scratch: encoded again, at its measured size.
            let heap = UnsafeMutableRawPointer.allocate(byteCount: writer.length, alignment: 8)
            defer { heap.deallocate() }
            var large = SharedMapKeys.Writer(heap, capacity: writer.length)
            if let problem = SharedMapKeys.encode(key, canonical: true, lookup: true, into: &large) {
                return unusable(problem, key)
            }
            return locate(storage, UnsafeRawBufferPointer(start: heap, count: large.length))
        }
    }

    private static func locate(_ storage: SharedMapStorage, _ key: UnsafeRawBufferPointer) -> Found {
        let found = storage.find(hash: SharedMapKeys.hash(canonical: key)) {
            $0.count == key.count && memcmp($0.baseAddress!, key.baseAddress!, key.count) == 0
        }
        return found.map { .entry($0) } ?? .missing
    }

    private static func unusable(_ problem: SharedMapKeys.Problem, _ key: PyObjectPointer) -> Found {
        switch problem {
        case .raised: return .failed
        case .unsupported: return PyObject_Hash(key) == -1 ? .failed : .missing
        case .notANumber, .tooLarge: return .missing
        }
    }

    private static func damaged() {
        PyErr_SetString(
            PyExc_ValueError, "a SharedMap entry's bytes are damaged (a file changed after it was written?)")
    }

    /// The value stored in `bytes`: built from the shareable format, or unpickled.
    static func value(
        _ bytes: UnsafeRawBufferPointer,
        _ state: @autoclosure () -> UnsafeMutablePointer<sp_ModuleState>?
    ) -> PyObjectPointer? {
        if ShareableCodec.holds(bytes) { return ShareableCodec.decode(bytes) }
        guard let state = state(), ModuleState.load(state, from: "_pickle", ("dumps", \.c_dumps), ("loads", \.c_loads)),
            let loads = state.pointee.c_loads
        else { return PyErr_Occurred() == nil ? Py.fail(PyExc_RuntimeError, "_native module state is missing") : nil }
        guard
            let view = PyMemoryView_FromMemory(
                UnsafeMutablePointer(mutating: bytes.baseAddress!.assumingMemoryBound(to: CChar.self)),
                Py_ssize_t(bytes.count), PyBUF_READ)
        else { return nil }
        defer { Py_DecRef(view) }
        return PyObject_CallOneArg(loads, view)
    }

    /// The key of `record` as the map was built with it.
    static func key(_ record: SharedMapStorage.Record) -> PyObjectPointer? {
        let bytes = record.originalKey ?? record.key
        var offset = 0
        guard let key = SharedMapKeys.decode(bytes.baseAddress!, at: &offset, end: bytes.count) else { return nil }
        guard offset == bytes.count else {
            Py_DecRef(key)
            damaged()
            return nil
        }
        return key
    }

    static let item: @convention(c) (PyObjectPointer?, PyObjectPointer?) -> PyObjectPointer? = { me, key in
        switch withStorage(me, { find($0, key!) }) {
        case .entry(let record):
            return value(record.value, state(of: me!))
        case .missing:
            if let wrapped = Py.tuple([key!]) {  // KeyError((1, 2)), not KeyError(1, 2), as dict does
                PyErr_SetObject(PyExc_KeyError, wrapped)
                Py_DecRef(wrapped)
            }
            return nil
        case .failed:
            return nil
        }
    }

    static let contains: @convention(c) (PyObjectPointer?, PyObjectPointer?) -> Int32 = { me, key in
        switch withStorage(me, { find($0, key!) }) {
        case .entry: return 1
        case .missing: return 0
        case .failed: return -1
        }
    }

    static let length: @convention(c) (PyObjectPointer?) -> Py_ssize_t = { me in
        withStorage(me) { Py_ssize_t($0.count) }
    }

    static let iterate: @convention(c) (PyObjectPointer?) -> PyObjectPointer? = { me in
        SharedMapCursor.make(storage(me), .keys, for: me!)
    }

    // MARK: - Creation

    /// `_native.SharedMap.__new__(cls, data)`: `data` is an exact dict (the Python layer makes
    /// one from other mappings and pairs).
    static let new:
        @convention(c) (
            UnsafeMutablePointer<PyTypeObject>?, PyObjectPointer?, PyObjectPointer?
        ) -> PyObjectPointer? = { type, args, kwargs in
            guard let args, PyTuple_Size(args) == 1, kwargs == nil || PyDict_Size(kwargs) == 0 else {
                return Py.fail(PyExc_TypeError, "_native.SharedMap() takes one dict")
            }
            let data = sp_Tuple_GET_ITEM(args, 0)!
            guard sp_Dict_CheckExact(data) != 0 else {
                return Py.fail(PyExc_TypeError, "_native.SharedMap() takes a dict")
            }
            guard let module = PyType_GetModuleByDef(type, NativeModule.definition),
                let state = ModuleState.of(module: module),
                ModuleState.load(state, from: "_pickle", ("dumps", \.c_dumps), ("loads", \.c_loads))
            else { return nil }
            let pickle = { (value: PyObjectPointer) -> PyObjectPointer? in
                if let data = Pickling.quickDumps(value, with: state.pointee.c_dumps!) { return data.take() }
                // By value (functions and classes of `__main__`), or the error that says why not.
                guard
                    ModuleState.load(
                        state, from: "subinterpreter_parallelism._pickling", ("dumps", \.dumps), ("loads", \.loads)),
                    let data = PyObject_CallOneArg(state.pointee.dumps, value)
                else { return nil }
                guard sp_Bytes_Check(data) != 0 else {
                    Py_DecRef(data)
                    return Py.fail(PyExc_TypeError, "_pickling.dumps must return bytes")
                }
                return data
            }
            guard let storage = SharedMapStorage.build(data, pickle: pickle) else { return nil }
            return Box.wrap(storage, as: type!)
        }

    private static func classArgument(_ cls: PyObjectPointer?) -> UnsafeMutablePointer<PyTypeObject> {
        UnsafeMutableRawPointer(cls!).assumingMemoryBound(to: PyTypeObject.self)
    }

    // MARK: - Methods

    static let methods: [MethodEntry] = [
        .fast("get", "get($self, key, default=None, /)\n--\n\nThe value of key, else default.") { me, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("get", 1...2) else { return nil }
            switch withStorage(me, { find($0, arguments[0]) }) {
            case .entry(let record): return value(record.value, state(of: me!))
            case .missing:
                let fallback = n == 2 ? arguments[1] : sp_None()
                Py_IncRef(fallback)
                return fallback
            case .failed: return nil
            }
        },
        .noArgs("_iter_values", "_iter_values($self, /)\n--\n\nAn iterator over the values, in insertion order.") {
            me, _ in
            SharedMapCursor.make(storage(me), .values, for: me!)
        },
        .noArgs(
            "_iter_items", "_iter_items($self, /)\n--\n\nAn iterator over the (key, value) pairs, in insertion order."
        ) { me, _ in
            SharedMapCursor.make(storage(me), .items, for: me!)
        },
        .fast("_save", "_save($self, path, /)\n--\n\nWrites the map to the file path (replaced whole).") {
            me, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("_save", 1...1), let path = Py.swiftString(arguments[0]) else { return nil }
            return storage(me).save(to: path) ? Py.none() : nil
        },
        .noArgs(
            "_pin_in_transit",
            "_pin_in_transit($self, /)\n--\n\nWhether an encoding for another interpreter of this process runs on this thread; if so the bytes it makes retain this map (QueuePins)."
        ) { me, _ in
            Py.bool(QueuePins.note(storage(me)))
        },
        .fast(
            "_file_for_processes",
            "_file_for_processes($self, candidate, /)\n--\n\nThe file another process can map: the one the map came from or was written to, else (candidate None) None, else one written at candidate now (deleted with the map)."
        ) { me, args, n in
            let arguments = Arguments(args, n)
            guard arguments.expect("_file_for_processes", 1...1) else { return nil }
            let storage = storage(me)
            guard let candidateObject = arguments.optional(0) else {
                return storage.existingFile().map { Py.string($0) } ?? Py.none()
            }
            guard let candidate = Py.swiftString(candidateObject) else { return nil }
            return storage.fileForProcesses(candidate: candidate).flatMap { Py.string($0) }
        },
        .noArgs("_id", "_id($self, /)\n--\n\nThe process-wide id of the map.") { me, _ in
            Py.int(storage(me).id)
        },
        MethodEntry(
            name: "_open", function: unsafeBitCast(open, to: PyCFunction.self),
            flags: METH_FASTCALL | METH_CLASS,
            doc: "_open($type, path, verify, /)\n--\n\nA handle on the map in the file path, memory-mapped."),
        MethodEntry(
            name: "_attach", function: unsafeBitCast(attach, to: PyCFunction.self),
            flags: METH_FASTCALL | METH_CLASS,
            doc:
                "_attach($type, id, /)\n--\n\nA handle in this interpreter on the live map id; LookupError when every handle is gone."
        ),
        MethodEntry(
            name: "_live", function: live,
            flags: METH_NOARGS | METH_STATIC,
            doc: "_live()\n--\n\n(maps alive in this process, their bytes): for tests."),
    ]

    private static let open: FastMethod = { cls, args, n in
        let arguments = Arguments(args, n)
        guard arguments.expect("_open", 2...2), let path = Py.swiftString(arguments[0]) else { return nil }
        let verify = PyObject_IsTrue(arguments[1])
        guard verify >= 0, let storage = SharedMapStorage.open(path: path, verify: verify == 1) else { return nil }
        return Box.wrap(storage, as: classArgument(cls))
    }

    private static let attach: FastMethod = { cls, args, n in
        let arguments = Arguments(args, n)
        guard arguments.expect("_attach", 1...1), let id = Py.int64(arguments[0]) else { return nil }
        guard let storage = SharedMapStorage.lookup(id) else {
            return Py.fail(
                PyExc_LookupError,
                "SharedMap \(id) no longer exists: every handle on it was released before this one arrived")
        }
        return Box.wrap(storage, as: classArgument(cls))
    }

    private static let live: NoArgsMethod = { _, _ in
        guard let count = Py.int(Int64(SharedMapStorage.liveCount.load(ordering: .relaxed))),
            let bytes = Py.int(Int64(SharedMapStorage.liveBytes.load(ordering: .relaxed)))
        else { return nil }
        defer {
            Py_DecRef(count)
            Py_DecRef(bytes)
        }
        return Py.tuple([count, bytes])
    }

    /// Read-only attributes: `nbytes` and `path`.
    nonisolated(unsafe) static let attributes: UnsafeMutablePointer<PyGetSetDef> = {
        let nbytes: getter = { me, _ in Py.int(Int64(storage(me).totalSize)) }
        let path: getter = { me, _ in storage(me).path.map { Py.string($0) } ?? Py.none() }
        let table = UnsafeMutablePointer<PyGetSetDef>.allocate(capacity: 3)
        table[0] = PyGetSetDef(
            name: ("nbytes" as StaticString).cString, get: nbytes, set: nil,
            doc: ("The size of the map's native memory (or of its file), in bytes." as StaticString).cString,
            closure: nil)
        table[1] = PyGetSetDef(
            name: ("path" as StaticString).cString, get: path, set: nil,
            doc: ("The file the map is mapped from (from_file), or None." as StaticString).cString, closure: nil)
        table[2] = PyGetSetDef(name: nil, get: nil, set: nil, doc: nil, closure: nil)
        return table
    }()

    nonisolated(unsafe) static let spec = NativeTables.boxedTypeSpec(
        name: "subinterpreter_parallelism._native.SharedMap",
        doc: """
            SharedMap(data, /)
            --

            The native base of subinterpreter_parallelism.SharedMap: a read-only mapping stored once \
            in native memory and read by every interpreter of the process (use the subclass).
            """,
        methods: methods,
        extraSlots: [
            PyType_Slot(slot: sp_slot_tp_new, pfunc: unsafeBitCast(new, to: UnsafeMutableRawPointer.self)),
            PyType_Slot(slot: sp_slot_mp_subscript, pfunc: unsafeBitCast(item, to: UnsafeMutableRawPointer.self)),
            PyType_Slot(slot: sp_slot_mp_length, pfunc: unsafeBitCast(length, to: UnsafeMutableRawPointer.self)),
            PyType_Slot(slot: sp_slot_sq_contains, pfunc: unsafeBitCast(contains, to: UnsafeMutableRawPointer.self)),
            PyType_Slot(slot: sp_slot_tp_iter, pfunc: unsafeBitCast(iterate, to: UnsafeMutableRawPointer.self)),
            PyType_Slot(slot: sp_slot_tp_getset, pfunc: UnsafeMutableRawPointer(attributes)),
        ],
        extraFlags: UInt32(Py_TPFLAGS_BASETYPE))
}

/// An iterator over a SharedMap's keys, values or items, in insertion order; it retains the map.
final class SharedMapCursor: NativeBacked {
    enum Kind { case keys, values, items }

    private let storage: SharedMapStorage
    private let kind: Kind
    /// Read and moved under the owning interpreter's GIL only: an iterator never crosses.
    private var index = 0

    private init(_ storage: SharedMapStorage, _ kind: Kind) {
        self.storage = storage
        self.kind = kind
    }

    /// A new iterator object, of the iterator type of the interpreter that owns `map`.
    static func make(_ storage: SharedMapStorage, _ kind: Kind, for map: PyObjectPointer) -> PyObjectPointer? {
        guard let module = PyType_GetModuleByDef(Py_TYPE(map), NativeModule.definition),
            let state = ModuleState.of(module: module), let type = state.pointee.shared_map_iterator_type
        else { return nil }
        return Box.wrap(
            SharedMapCursor(storage, kind), as: UnsafeMutableRawPointer(type).assumingMemoryBound(to: PyTypeObject.self)
        )
    }

    private func next(_ me: PyObjectPointer) -> PyObjectPointer? {
        guard index < storage.count else { return nil }  // the end: StopIteration, no error set
        guard let record = storage.record(index) else {
            return Py.fail(
                PyExc_ValueError, "a SharedMap entry's bytes are damaged (a file changed after it was written?)")
        }
        index += 1
        switch kind {
        case .keys:
            return SharedMapType.key(record)
        case .values:
            return SharedMapType.value(record.value, ModuleState.of(instance: me))
        case .items:
            guard let key = OwnedObject(SharedMapType.key(record)),
                let value = OwnedObject(SharedMapType.value(record.value, ModuleState.of(instance: me)))
            else { return nil }
            return Py.tuple([key.borrowed, value.borrowed])
        }
    }

    static let iterateSelf: @convention(c) (PyObjectPointer?) -> PyObjectPointer? = { me in
        Py_IncRef(me)
        return me
    }

    static let iterateNext: @convention(c) (PyObjectPointer?) -> PyObjectPointer? = { me in
        Box.unwrap(me, as: SharedMapCursor.self).next(me!)
    }

    static let methods: [MethodEntry] = [
        .noArgs("__length_hint__", "__length_hint__($self, /)\n--\n\nHow many items are left.") { me, _ in
            let cursor = Box.unwrap(me, as: SharedMapCursor.self)
            return Py.int(Int64(cursor.storage.count - cursor.index))
        }
    ]

    nonisolated(unsafe) static let spec = NativeTables.boxedTypeSpec(
        name: "subinterpreter_parallelism._native.SharedMapIterator",
        doc: "An iterator over a SharedMap's keys, values or items, in insertion order.",
        methods: methods,
        extraSlots: [
            PyType_Slot(slot: sp_slot_tp_iter, pfunc: unsafeBitCast(iterateSelf, to: UnsafeMutableRawPointer.self)),
            PyType_Slot(slot: sp_slot_tp_iternext, pfunc: unsafeBitCast(iterateNext, to: UnsafeMutableRawPointer.self)),
        ],
        extraFlags: UInt32(Py_TPFLAGS_DISALLOW_INSTANTIATION))
}
