// Machinery for the extension's heap types: each instance is an `sp_BoxObject` that holds one
// retained Swift object, and each method is a METH_FASTCALL C function.
@preconcurrency import CPythonShim

/// A Swift object that backs a Python instance of one of our heap types.
protocol NativeBacked: AnyObject {
    /// Drops the Python references the object holds. Called by `tp_dealloc`, with the GIL of the
    /// instance's interpreter held, because the Swift object itself may outlive the Python
    /// instance and die on a thread that holds no interpreter lock.
    func releasePythonReferences()
}

extension NativeBacked {
    func releasePythonReferences() {}
}

/// `(self, args, nargs) -> result`, the METH_FASTCALL signature.
typealias FastMethod =
    @convention(c) (
        PyObjectPointer?, UnsafePointer<PyObjectPointer?>?, Py_ssize_t
    ) -> PyObjectPointer?

enum Box {
    /// A new instance of `type` (one of our heap types) holding a retained `object`.
    static func wrap(_ object: NativeBacked, as type: UnsafeMutablePointer<PyTypeObject>) -> NewReference {
        guard let instance = PyType_GenericAlloc(type, 0) else { return nil }
        store(object, in: instance)
        return instance
    }

    static func store(_ object: NativeBacked, in instance: PyObjectPointer) {
        let raw = Unmanaged.passRetained(object as AnyObject).toOpaque()
        instance.withMemoryRebound(to: sp_BoxObject.self, capacity: 1) { $0.pointee.swift_object = raw }
    }

    /// The Swift object behind `instance`; traps if the instance was never filled.
    static func unwrap<T: NativeBacked>(_ instance: PyObjectPointer?, as _: T.Type) -> T {
        let raw = instance!.withMemoryRebound(to: sp_BoxObject.self, capacity: 1) { $0.pointee.swift_object }
        return unsafeDowncast(Unmanaged<AnyObject>.fromOpaque(raw!).takeUnretainedValue(), to: T.self)
    }

    /// The Swift object behind `instance` if it is filled, else nil.
    static func peek(_ instance: PyObjectPointer) -> NativeBacked? {
        let raw = instance.withMemoryRebound(to: sp_BoxObject.self, capacity: 1) { $0.pointee.swift_object }
        guard let raw else { return nil }
        return Unmanaged<AnyObject>.fromOpaque(raw).takeUnretainedValue() as? NativeBacked
    }

    /// `tp_dealloc` shared by every boxed type.
    static let dealloc: @convention(c) (PyObjectPointer?) -> Void = { instance in
        guard let instance else { return }
        let raw = instance.withMemoryRebound(to: sp_BoxObject.self, capacity: 1) { box in
            defer { box.pointee.swift_object = nil }
            return box.pointee.swift_object
        }
        if let raw {
            let object = Unmanaged<AnyObject>.fromOpaque(raw)
            (object.takeUnretainedValue() as? NativeBacked)?.releasePythonReferences()
            object.release()
        }
        let type = Py_TYPE(instance)!
        let free = unsafeBitCast(PyType_GetSlot(type, sp_slot_tp_free), to: freefunc.self)
        free(UnsafeMutableRawPointer(instance))
        // A heap type's instance holds a reference to its type: it goes with the instance.
        var typeReference: PyObjectPointer? = UnsafeMutableRawPointer(type).assumingMemoryBound(to: PyObject.self)
        Py.clear(&typeReference)
    }
}

/// `(self, args, nargs, kwnames) -> result`, the METH_FASTCALL | METH_KEYWORDS signature.
typealias KeywordMethod =
    @convention(c) (
        PyObjectPointer?, UnsafePointer<PyObjectPointer?>?, Py_ssize_t, PyObjectPointer?
    ) -> PyObjectPointer?

/// `(self, unused) -> result`, the METH_NOARGS signature.
typealias NoArgsMethod = @convention(c) (PyObjectPointer?, PyObjectPointer?) -> PyObjectPointer?

/// One entry of a method table. Its `doc` starts with CPython's text signature,
/// `name($self, a, b=None, /)\n--\n\n` (`$module` for a module function), which
/// `inspect.signature` reads and tests/test_native_stub.py holds against `_native.pyi`.
struct MethodEntry {
    let name: StaticString
    let function: PyCFunction
    let flags: Int32
    let doc: StaticString

    /// A method taking positional arguments (`METH_FASTCALL`).
    static func fast(_ name: StaticString, _ doc: StaticString, _ function: FastMethod) -> MethodEntry {
        MethodEntry(name: name, function: unsafeBitCast(function, to: PyCFunction.self), flags: METH_FASTCALL, doc: doc)
    }

    /// A method taking positional and keyword arguments (`METH_FASTCALL | METH_KEYWORDS`).
    static func keywords(_ name: StaticString, _ doc: StaticString, _ function: KeywordMethod) -> MethodEntry {
        MethodEntry(
            name: name, function: unsafeBitCast(function, to: PyCFunction.self),
            flags: METH_FASTCALL | Int32(METH_KEYWORDS), doc: doc)
    }

    /// A method taking no arguments (`METH_NOARGS`).
    static func noArgs(_ name: StaticString, _ doc: StaticString, _ function: NoArgsMethod) -> MethodEntry {
        MethodEntry(name: name, function: function, flags: METH_NOARGS, doc: doc)
    }
}

extension StaticString {
    var cString: UnsafePointer<CChar> {
        UnsafeRawPointer(utf8Start).assumingMemoryBound(to: CChar.self)
    }
}

enum NativeTables {
    /// A NULL-terminated `PyMethodDef` array that lives for the whole process, as CPython
    /// requires of method tables (types and module definitions keep pointing at it).
    static func methods(_ entries: [MethodEntry]) -> UnsafeMutablePointer<PyMethodDef> {
        let table = UnsafeMutablePointer<PyMethodDef>.allocate(capacity: entries.count + 1)
        for (i, entry) in entries.enumerated() {
            table[i] = PyMethodDef(
                ml_name: entry.name.cString, ml_meth: entry.function, ml_flags: entry.flags,
                ml_doc: entry.doc.cString)
        }
        table[entries.count] = PyMethodDef(ml_name: nil, ml_meth: nil, ml_flags: 0, ml_doc: nil)
        return table
    }

    /// A heap type spec for a boxed type, living for the whole process (`extraFlags`: e.g.
    /// `Py_TPFLAGS_BASETYPE` for a type that Python subclasses).
    static func boxedTypeSpec(
        name: StaticString, doc: StaticString, methods: [MethodEntry],
        extraSlots: [PyType_Slot] = [], extraFlags: UInt32 = 0
    ) -> UnsafeMutablePointer<PyType_Spec> {
        var slots: [PyType_Slot] = [
            PyType_Slot(slot: sp_slot_tp_dealloc, pfunc: unsafeBitCast(Box.dealloc, to: UnsafeMutableRawPointer.self)),
            PyType_Slot(slot: sp_slot_tp_doc, pfunc: UnsafeMutableRawPointer(mutating: doc.cString)),
            PyType_Slot(slot: sp_slot_tp_methods, pfunc: UnsafeMutableRawPointer(self.methods(methods))),
        ]
        slots += extraSlots
        slots.append(PyType_Slot(slot: 0, pfunc: nil))
        // A type without a `tp_new` of its own is made only by Swift (`Box.wrap`): from Python,
        // object's would make an empty box, which every method traps on.
        var flags = UInt32(Py_TPFLAGS_DEFAULT) | UInt32(Py_TPFLAGS_IMMUTABLETYPE) | extraFlags
        if !extraSlots.contains(where: { $0.slot == sp_slot_tp_new }) {
            flags |= UInt32(Py_TPFLAGS_DISALLOW_INSTANTIATION)
        }
        let slotTable = UnsafeMutablePointer<PyType_Slot>.allocate(capacity: slots.count)
        slotTable.initialize(from: slots, count: slots.count)
        let spec = UnsafeMutablePointer<PyType_Spec>.allocate(capacity: 1)
        spec.initialize(
            to: PyType_Spec(
                name: name.cString,
                basicsize: Int32(MemoryLayout<sp_BoxObject>.size),
                itemsize: 0,
                flags: flags,
                slots: slotTable))
        return spec
    }
}

/// Argument checks for METH_FASTCALL functions: each returns nil with TypeError set.
struct Arguments {
    let items: UnsafePointer<PyObjectPointer?>?
    let count: Int

    init(_ items: UnsafePointer<PyObjectPointer?>?, _ count: Py_ssize_t) {
        self.items = items
        self.count = Int(count)
    }

    /// Checks the count; sets TypeError naming `function` when it is wrong.
    func expect(_ function: String, _ range: ClosedRange<Int>) -> Bool {
        if range.contains(count) { return true }
        let wanted =
            range.lowerBound == range.upperBound
            ? "\(range.lowerBound)" : "\(range.lowerBound) to \(range.upperBound)"
        PyErr_SetString(PyExc_TypeError, "\(function)() takes \(wanted) arguments (\(count) given)")
        return false
    }

    subscript(_ i: Int) -> PyObjectPointer { items![i]! }

    /// Argument `i`, or nil when absent or None.
    func optional(_ i: Int) -> PyObjectPointer? {
        guard i < count, let item = items![i], item != sp_None() else { return nil }
        return item
    }
}

/// Keyword-capable argument parsing for the few public native methods (`Queue.put/get`, `Queue()`).
enum Keywords {
    /// Fills `values` (one slot per name, nil when absent) from a vectorcall argument list.
    static func parse(
        function: String, names: [String], args: UnsafePointer<PyObjectPointer?>?, count: Py_ssize_t,
        keywords: PyObjectPointer?, into values: inout [PyObjectPointer?]
    ) -> Bool {
        let positional = Int(count)
        guard positional <= names.count else {
            PyErr_SetString(
                PyExc_TypeError, "\(function)() takes at most \(names.count) arguments (\(positional) given)")
            return false
        }
        for i in 0..<positional { values[i] = args![i] }
        guard let keywords else { return true }
        for k in 0..<Int(PyTuple_Size(keywords)) {
            guard assign(sp_Tuple_GET_ITEM(keywords, k)!, args![positional + k], function, names, &values)
            else { return false }
        }
        return true
    }

    /// The same for a `tp_new` argument tuple and keyword dict.
    static func parse(
        function: String, names: [String], tuple: PyObjectPointer?, dict: PyObjectPointer?,
        into values: inout [PyObjectPointer?]
    ) -> Bool {
        let positional = tuple.map { Int(PyTuple_Size($0)) } ?? 0
        guard positional <= names.count else {
            PyErr_SetString(
                PyExc_TypeError, "\(function)() takes at most \(names.count) arguments (\(positional) given)")
            return false
        }
        for i in 0..<positional { values[i] = sp_Tuple_GET_ITEM(tuple, i) }
        guard let dict else { return true }
        var position: Py_ssize_t = 0
        var key: PyObjectPointer?
        var value: PyObjectPointer?
        while PyDict_Next(dict, &position, &key, &value) != 0 {
            guard assign(key!, value, function, names, &values) else { return false }
        }
        return true
    }

    /// Puts the keyword argument `key=value` in its slot; TypeError for unknown or repeated names.
    private static func assign(
        _ key: PyObjectPointer, _ value: PyObjectPointer?, _ function: String, _ names: [String],
        _ values: inout [PyObjectPointer?]
    ) -> Bool {
        guard let name = Py.swiftString(key) else { return false }
        guard let slot = names.firstIndex(of: name) else {
            PyErr_SetString(PyExc_TypeError, "\(function)() got an unexpected keyword argument '\(name)'")
            return false
        }
        guard values[slot] == nil else {
            PyErr_SetString(PyExc_TypeError, "\(function)() got multiple values for argument '\(name)'")
            return false
        }
        values[slot] = value
        return true
    }
}
