// Functions that travel by name, as pickle sends them by reference: the caller decides which
// functions may (`NamedFunctions`), the worker finds them again (`ByName.walk`, used by
// `TaskRunner.resolve`), and both walk a qualified name the same way, here.
@preconcurrency import CPythonShim

enum ByName {
    /// "." and "<" (`<lambda>`, `<locals>`), as `PyUnicode_FindChar` takes them.
    static let dot = Py_UCS4(UInt8(ascii: "."))
    static let lessThan = Py_UCS4(UInt8(ascii: "<"))

    /// Whether pickle would send `object` by reference (module and qualified name) if the
    /// name resolves back to it: a plain Python function, a class whose metaclass is `type`,
    /// or a builtin function bound to a module (or to nothing), not a builtin method of some
    /// object (pickle reduces those to getattr calls).
    static func mayTravel(_ object: PyObjectPointer) -> Bool {
        if Py_IS_TYPE(object, &PyFunction_Type) != 0 || Py_IS_TYPE(object, &PyType_Type) != 0 { return true }
        guard Py_IS_TYPE(object, &PyCFunction_Type) != 0 else { return false }
        // NULL for a function bound to nothing (METH_STATIC, or no module).
        guard let owner = PyCFunction_GetSelf(object) else { return true }
        return PyObject_TypeCheck(owner, &PyModule_Type) != 0
    }

    /// `qualname` (an exact `str`, dotted or not) looked up attribute by attribute from
    /// `module`, as unpickling a reference does. Nil with an exception set when a name is
    /// missing.
    static func walk(_ qualname: PyObjectPointer, from module: consuming OwnedObject) -> OwnedObject? {
        let length = PyUnicode_GetLength(qualname)
        var dot = PyUnicode_FindChar(qualname, ByName.dot, 0, length, 1)
        // The common case, a module-level name: one lookup.
        if dot == -1 { return OwnedObject(PyObject_GetAttr(module.borrowed, qualname)) }
        var target = module
        var start: Py_ssize_t = 0
        while dot >= -1 {
            let end = dot == -1 ? length : dot
            guard let part = OwnedObject(PyUnicode_Substring(qualname, start, end)),
                let next = OwnedObject(PyObject_GetAttr(target.borrowed, part.borrowed))
            else { return nil }
            target = next
            if dot == -1 { return target }
            start = dot + 1
            dot = PyUnicode_FindChar(qualname, ByName.dot, start, length, 1)
        }
        return nil  // -2: FindChar failed, its exception set
    }
}

/// A function that pickle sends by reference: its `__module__` and `__qualname__`, which
/// resolve back to it (checked the first time it is seen, and again on every use).
final class NamedFunction {
    let function: OwnedObject
    let module: OwnedObject
    let qualname: OwnedObject

    init(function: consuming OwnedObject, module: consuming OwnedObject, qualname: consuming OwnedObject) {
        self.function = function
        self.module = module
        self.qualname = qualname
    }

    /// Whether `qualname`, looked up in the imported module `module`, is `function`
    /// (pickle's check). No exception is left set.
    var resolves: Bool {
        guard let modules = PyImport_GetModuleDict(),
            let found = PyDict_GetItemWithError(modules, module.borrowed)
        else {
            PyErr_Clear()
            return false
        }
        guard let target = ByName.walk(qualname.borrowed, from: OwnedObject(retaining: found)) else {
            PyErr_Clear()
            return false
        }
        return target.borrowed == function.borrowed
    }
}

/// The functions a pool's `submit` has seen that pickle would send by reference, by identity.
/// Read and changed only with the creating interpreter's GIL held, never across a Python call.
final class NamedFunctions {
    /// By address (each entry holds its function, so the address cannot be reused meanwhile).
    private var table: [UnsafeMutableRawPointer: NamedFunction] = [:]
    /// Past this many entries the table starts afresh (functions made at run time, e.g. by a
    /// decorator factory, must not accumulate).
    private static let limit = 1024

    /// `fn`'s names if pickle would send it by reference now: its module is imported and the
    /// qualified name, looked up there, is `fn` itself. The names are kept per function, the
    /// lookup is repeated on every call (a module attribute rebound since then makes pickle
    /// send the function by value, and so does this). Nil, no exception set, otherwise.
    func names(of fn: PyObjectPointer) -> NamedFunction? {
        let key = UnsafeMutableRawPointer(fn)
        if let known = table[key] {
            return known.resolves ? known : nil
        }
        guard let module = Py.attribute(fn, "__module__"), let qualname = Py.attribute(fn, "__qualname__") else {
            PyErr_Clear()
            return nil
        }
        // Exact str names only (what the worker can be sent); `__main__` is the Python
        // encoder's (cloudpickle, once per function); `<lambda>`, `f.<locals>.g` never resolve.
        guard sp_Unicode_CheckExact(module.borrowed) != 0, sp_Unicode_CheckExact(qualname.borrowed) != 0,
            PyUnicode_CompareWithASCIIString(module.borrowed, WireFormat.mainMarker) != 0,
            PyUnicode_FindChar(qualname.borrowed, ByName.lessThan, 0, PyUnicode_GetLength(qualname.borrowed), 1) == -1
        else {
            PyErr_Clear()
            return nil
        }
        let named = NamedFunction(function: OwnedObject(retaining: fn), module: module, qualname: qualname)
        guard named.resolves else { return nil }
        // Python code may have run above (a module's `__getattr__`): the table is read afresh.
        if table.count >= NamedFunctions.limit { forget() }
        table[key] = named  // a previous entry is released after the table holds this one
        return named
    }

    /// Empties the table (the references are released once it is empty: a `__del__` that
    /// runs meanwhile finds it consistent).
    func forget() {
        let entries = table
        table = [:]
        withExtendedLifetime(entries) {}
    }
}
