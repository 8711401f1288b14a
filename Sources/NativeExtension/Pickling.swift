// The fast paths of pickling, shared by the pool and the Queue: the C pickler called directly.
// Anything unusual (an error, a reference to `__main__`) goes to the Python encoder in
// python/subinterpreter_parallelism/_pickling.py, which knows cloudpickle and explains failures.
@preconcurrency import CPythonShim
import Glibc

enum Pickling {
    /// The pickle protocol used everywhere (out-of-band capable, fastest framing).
    static let protocolVersion: Int64 = 5

    /// `_pickle.dumps(object, 5)`, or nil (no error set) when that fails or when the pickle
    /// mentions `__main__`, which a worker interpreter could not resolve.
    static func quickDumps(_ object: PyObjectPointer, with dumps: PyObjectPointer) -> PyObjectPointer? {
        guard let version = Py.int(protocolVersion) else { PyErr_Clear(); return nil }
        defer { Py_DecRef(version) }
        var arguments: [PyObjectPointer?] = [object, version]
        guard let data = arguments.withUnsafeMutableBufferPointer({
            PyObject_Vectorcall(dumps, $0.baseAddress, 2, nil)
        }) else {
            PyErr_Clear()
            return nil
        }
        if mentionsMain(Py.contents(ofBytes: data)) {
            Py_DecRef(data)
            return nil
        }
        return data
    }

    /// Whether pickled bytes refer to the `__main__` module (or merely contain that text:
    /// then the slower, always-correct path is taken, which is harmless).
    static func mentionsMain(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress, bytes.count >= 8 else { return false }
        return "__main__".withCString { marker in memmem(base, bytes.count, marker, 8) != nil }
    }

    /// `loads(memoryview(buffer))` without copying the buffer.
    static func loads(_ buffer: ByteBuffer, with loads: PyObjectPointer) -> PyObjectPointer? {
        guard let view = PyMemoryView_FromMemory(
            buffer.bytes.baseAddress!.assumingMemoryBound(to: CChar.self), Py_ssize_t(buffer.count), PyBUF_READ)
        else { return nil }
        defer { Py_DecRef(view) }
        return PyObject_CallOneArg(loads, view)
    }
}
