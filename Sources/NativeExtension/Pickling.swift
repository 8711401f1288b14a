// The fast paths of pickling, shared by the wire's records (Wire.swift), the Queue and the
// SharedMap: the C pickler called directly. Anything unusual (an error, a reference to
// `__main__`) goes to the Python side (_wire.py, _pickling.py), which knows cloudpickle and
// explains failures.
@preconcurrency import CPythonShim

enum Pickling {
    /// `_pickle.dumps(object, 5)` (a `bytes`), or nil (no error set) when that fails or when
    /// the pickle mentions `__main__`, which a worker interpreter could not resolve.
    static func quickDumps(_ object: PyObjectPointer, with dumps: PyObjectPointer) -> OwnedObject? {
        guard let version = OwnedObject(Py.int(WireFormat.pickleProtocol)),
            let data = Py.call(dumps, object, version.borrowed)
        else {
            PyErr_Clear()
            return nil
        }
        if WireFormat.mentionsMain(Py.contents(ofBytes: data.borrowed)) { return nil }
        return data
    }

    /// `loads(memoryview(buffer))` without copying the buffer: a new reference, or nil with an
    /// exception set.
    static func loads(_ buffer: ByteBuffer, with loads: PyObjectPointer) -> PyObjectPointer? {
        guard
            let view = OwnedObject(
                PyMemoryView_FromMemory(
                    buffer.bytes.baseAddress!.assumingMemoryBound(to: CChar.self), Py_ssize_t(buffer.count),
                    PyBUF_READ))
        else { return nil }
        return PyObject_CallOneArg(loads, view.borrowed)
    }
}
