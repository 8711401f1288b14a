// Where references are counted, and nowhere else: `OwnedObject` (a reference that releases
// itself, as PyO3's `Bound`/`Py` do) and `UnmanagedObject` (one held across threads and released
// by hand, as Swift's `Unmanaged` is), plus small wrappers that return them. Other files call
// the C API directly, each call checked where it is made (as CPython's crossinterp.c does), but
// none of them takes or drops a reference by hand: `Py_IncRef` and `Py_DecRef` appear only here.
@preconcurrency import CPythonShim

/// A pointer to a Python object. Which interpreter it belongs to is the caller's business:
/// such a pointer never crosses from one interpreter to another.
typealias PyObjectPointer = UnsafeMutablePointer<PyObject>

/// A new (owned) reference, or nil with a Python exception set.
typealias NewReference = PyObjectPointer?

enum Py {
    /// A new reference to `None`.
    static func none() -> PyObjectPointer { sp_NewNone() }

    static func bool(_ value: Bool) -> PyObjectPointer { sp_NewBool(value ? 1 : 0) }

    static func int(_ value: Int64) -> NewReference { PyLong_FromLongLong(value) }

    static func int(_ value: UInt64) -> NewReference { PyLong_FromUnsignedLongLong(value) }

    static func float(_ value: Double) -> NewReference { PyFloat_FromDouble(value) }

    static func string(_ value: String) -> NewReference {
        var copy = value
        return copy.withUTF8 { buffer in
            PyUnicode_FromStringAndSize(
                UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self),
                Py_ssize_t(buffer.count))
        }
    }

    static func bytes(_ buffer: UnsafeRawBufferPointer) -> NewReference {
        PyBytes_FromStringAndSize(
            buffer.baseAddress?.assumingMemoryBound(to: CChar.self), Py_ssize_t(buffer.count))
    }

    /// A new `bytearray` holding a copy of `buffer`.
    static func byteArray(_ buffer: UnsafeRawBufferPointer) -> NewReference {
        PyByteArray_FromStringAndSize(
            buffer.baseAddress?.assumingMemoryBound(to: CChar.self), Py_ssize_t(buffer.count))
    }

    /// A new tuple holding new references to `items` (which stay owned by the caller).
    static func tuple(_ items: [PyObjectPointer]) -> NewReference {
        guard let tuple = PyTuple_New(Py_ssize_t(items.count)) else { return nil }
        for (i, item) in items.enumerated() {
            Py_IncRef(item)
            PyTuple_SetItem(tuple, Py_ssize_t(i), item)  // steals the new reference
        }
        return tuple
    }

    /// Sets `type` (a `PyExc_*` class) with `message` and returns nil, for `return Py.fail(...)`.
    static func fail(_ type: PyObjectPointer?, _ message: String) -> PyObjectPointer? {
        PyErr_SetString(type, message)
        return nil
    }

    /// The Swift string of a Python `str`, or nil with TypeError set.
    static func swiftString(_ object: PyObjectPointer) -> String? {
        guard sp_Unicode_Check(object) != 0 else {
            PyErr_SetString(PyExc_TypeError, "expected str")
            return nil
        }
        var size: Py_ssize_t = 0
        guard let utf8 = PyUnicode_AsUTF8AndSize(object, &size) else { return nil }
        return String(
            decoding: UnsafeRawBufferPointer(start: utf8, count: Int(size)), as: UTF8.self)
    }

    /// `int` -> Int64, or nil with an exception set.
    static func int64(_ object: PyObjectPointer) -> Int64? {
        let value = PyLong_AsLongLong(object)
        if value == -1 && PyErr_Occurred() != nil { return nil }
        return value
    }

    /// `float` or `int` -> Double, or nil with an exception set.
    static func double(_ object: PyObjectPointer) -> Double? {
        let value = PyFloat_AsDouble(object)
        if value == -1 && PyErr_Occurred() != nil { return nil }
        return value
    }

    /// `str(exception)` prefixed with its type name, for messages that must cross interpreters
    /// as plain text. Consumes nothing; clears any error it causes.
    static func describe(_ exception: PyObjectPointer) -> String {
        var text = "exception"
        if let name = OwnedObject(PyType_GetName(Py_TYPE(exception))) {
            text = swiftString(name.borrowed) ?? text
        }
        if let message = OwnedObject(PyObject_Str(exception)), let swift = swiftString(message.borrowed),
            !swift.isEmpty
        {
            text += ": " + swift
        }
        PyErr_Clear()
        return text
    }

    /// Runs `body` with this thread's interpreter lock released (`Py_BEGIN_ALLOW_THREADS`).
    @inline(__always)
    static func withoutGIL<T>(_ body: () throws -> T) rethrows -> T {
        let state = PyEval_SaveThread()
        defer { PyEval_RestoreThread(state) }
        return try body()
    }

    /// The bytes a `bytes` object holds, valid while the object lives.
    static func contents(ofBytes object: PyObjectPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(
            start: sp_Bytes_AS_STRING(object), count: Int(sp_Bytes_GET_SIZE(object)))
    }
}

/// An owned (new) reference that releases itself: dropping one on an error path cannot leak,
/// and `take()` hands the reference on (to a call that steals it, or to the caller) exactly
/// once, which the compiler checks (it cannot be copied, and is gone once taken). Its owner
/// must hold the GIL of the object's interpreter wherever it drops it: keep one in locals and
/// in objects that die under that GIL, and use `UnmanagedObject` for anything that crosses
/// threads.
struct OwnedObject: ~Copyable {
    private let pointer: PyObjectPointer

    /// Takes over `newReference`; nil (a failed C-API call, its exception set) gives nil.
    init?(_ newReference: NewReference) {
        guard let newReference else { return nil }
        pointer = newReference
    }

    /// A new reference to `borrowed` (`Py_NewRef`).
    init(retaining borrowed: PyObjectPointer) {
        Py_IncRef(borrowed)
        pointer = borrowed
    }

    /// The object, borrowed: valid while this owner lives.
    var borrowed: PyObjectPointer { pointer }

    /// Hands the reference on; nothing is released.
    consuming func take() -> PyObjectPointer {
        let pointer = self.pointer
        discard self
        return pointer
    }

    deinit { Py_DecRef(pointer) }
}

extension Optional where Wrapped == OwnedObject {
    /// The object, borrowed, if there is one.
    var borrowed: PyObjectPointer? {
        switch self {
        case .some(let owner): return owner.borrowed
        case .none: return nil
        }
    }
}

/// A reference held by a Swift object that may die on a thread without the GIL of the
/// object's interpreter (a task's inputs, owned by the caller's interpreter but read by a
/// worker): released only by `release()`, explicitly, with that GIL held. The counterpart of
/// Swift's `Unmanaged`: one that is never released is leaked, never released on the wrong
/// thread.
struct UnmanagedObject: @unchecked Sendable {
    let object: PyObjectPointer

    /// Takes over the reference `owned` holds.
    init(_ owned: consuming OwnedObject) {
        object = owned.take()
    }

    /// A new reference to `borrowed`.
    static func retaining(_ borrowed: PyObjectPointer) -> UnmanagedObject {
        UnmanagedObject(OwnedObject(retaining: borrowed))
    }

    /// Gives the reference back (the object's interpreter's GIL held), once.
    func release() { Py_DecRef(object) }
}

extension Py {
    /// A new empty dict, owned.
    static func dict() -> OwnedObject? { OwnedObject(PyDict_New()) }

    /// A new empty list, owned.
    static func list() -> OwnedObject? { OwnedObject(PyList_New(0)) }

    /// Stores `value` (a new reference, released here whatever happens) in `dict` under `key`.
    /// False, with an exception set, when `value` is nil (its creation failed) or the store fails.
    static func set(_ dict: borrowing OwnedObject, _ key: String, _ value: consuming OwnedObject?) -> Bool {
        guard let value else { return false }
        return PyDict_SetItemString(dict.borrowed, key, value.borrowed) == 0
    }

    /// Appends `value` (released here whatever happens) to `list`; false with an exception set
    /// when `value` is nil or the append fails.
    static func append(_ list: borrowing OwnedObject, _ value: consuming OwnedObject?) -> Bool {
        guard let value else { return false }
        return PyList_Append(list.borrowed, value.borrowed) == 0
    }

    /// `object.name`, or nil with an exception set.
    static func attribute(_ object: PyObjectPointer, _ name: String) -> OwnedObject? {
        OwnedObject(PyObject_GetAttrString(object, name))
    }

    /// The module `name`, imported if it is not yet, or nil with an exception set.
    static func importModule(_ name: String) -> OwnedObject? {
        OwnedObject(PyImport_ImportModule(name))
    }

    /// `function(*arguments)` (vectorcall), or nil with an exception set.
    @inline(__always)
    static func call(_ function: PyObjectPointer, _ arguments: PyObjectPointer?...) -> OwnedObject? {
        OwnedObject(
            arguments.withUnsafeBufferPointer {
                PyObject_Vectorcall(function, $0.baseAddress, $0.count, nil)
            })
    }

    /// Releases the reference a C struct's field holds (the module state's), and clears it.
    static func clear(_ field: inout PyObjectPointer?) {
        let held = field
        field = nil
        _ = OwnedObject(held)
    }

    /// The exception now set, taken (owned), or nil if none is.
    static func takeRaised() -> OwnedObject? { OwnedObject(PyErr_GetRaisedException()) }
}
