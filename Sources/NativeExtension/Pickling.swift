// The fast paths of pickling, shared by the pool and the Queue: the C pickler called directly.
// Anything unusual (an error, a reference to `__main__`) goes to the Python encoder in
// python/subinterpreter_parallelism/_pickling.py, which knows cloudpickle and explains failures.
@preconcurrency import CPythonShim
import Glibc

/// The rules of the bytes that travel between interpreters, written once. `_native` exports
/// them (`PICKLE_PROTOCOL`, `VALUE_TAG`, `ERROR_TAG`, `MAIN_MARKER`, `OUT_OF_BAND_MIN`) and the
/// Python side (_pickling.py, _outcome.py) reads them from there, in every interpreter.
enum WireFormat {
    /// The pickle protocol used everywhere (out-of-band capable, fastest framing).
    static let pickleProtocol: Int64 = 5

    /// The first byte of a task's outcome when the task returned: the outcome is the value's
    /// pickle, and every protocol-5 pickle starts with the PROTO opcode, 0x80.
    static let valueTag: UInt8 = 0x80

    /// The first byte of a task's outcome when the task returned a value that `ShareableCodec`
    /// holds (its `tag`, "S"): the value in that format follows, no pickle. The first byte of
    /// a call in that format too (`shareableCall`).
    static let shareableTag: UInt8 = ShareableCodec.tag

    /// Whether an outcome whose first byte is `first` is a returned value (pickled or not).
    static func isValue(_ first: UInt8) -> Bool { first == valueTag || first == shareableTag }

    /// The first byte of a task's outcome when the task raised ("E"): the pickle of
    /// `(type name, message, traceback text, pickled exception or None)` follows.
    static let errorTag: UInt8 = 0x45

    /// `bytes` arguments and results at least this large travel out of band (see `Task` and
    /// `LentBytes` in ResultLending.swift): one copy each way instead of three. Measured: in-band round
    /// trips jump from 0.07 ms at 64 KiB to 0.24 ms at 100 KiB (pickle frames and fresh pages);
    /// out of band, 128 KiB takes 0.05 ms.
    static let outOfBandMinimum = 64 << 10

    /// How an argument or a result travels: the one rule, read by the Python encoders through
    /// `_native.out_of_band_kind` (and its `OUT_OF_BAND_*` constants) and by the pool's quick
    /// path here. What each side then does with a kind is in _pickling.py and _outcome.py.
    enum OutOfBand: Int {
        /// Pickled with the rest of the call or result.
        case inBand = 0
        /// An exact `bytes` of at least `outOfBandMinimum` bytes: the receiver copies it once,
        /// straight from the sender's object.
        case bytes = 1
        /// An exact `bytearray` of at least `outOfBandMinimum` bytes: as `bytes`, from a
        /// snapshot taken by the sender (an argument is its value at submit).
        case byteArray = 2
        /// Any `memoryview` (pickle cannot carry one): an argument is lent to the worker
        /// (`BufferLend`), a result is copied once by the caller.
        case memoryView = 3
    }

    /// The kind of `object` (no error is ever set).
    static func outOfBandKind(_ object: PyObjectPointer) -> OutOfBand {
        if sp_MemoryView_Check(object) != 0 { return .memoryView }
        if sp_BinarySize(object) >= outOfBandMinimum {
            return sp_ByteArray_CheckExact(object) != 0 ? .byteArray : .bytes
        }
        return .inBand
    }

    /// A call that `ShareableCodec` holds, sent instead of a pickle when the function is one
    /// that pickle would send by reference and every argument is shareable: the tuple
    /// `(module, qualname, args, kwargs)`, where `kwargs` is None or a flat tuple
    /// `(name, value, name, value, ...)`. The worker resolves the function by name, as
    /// unpickling it would (`TaskRunner.resolve`, with `ByName.walk`).
    enum ShareableCall {
        static let fieldCount = 4
    }

    /// A plain pickle that contains this text may refer to `__main__`, which a worker
    /// interpreter could not resolve: it goes to the Python encoder (cloudpickle, by value).
    static let mainMarker = "__main__"

    /// Whether pickled bytes refer to the `__main__` module (or merely contain that text:
    /// then the slower, always-correct path is taken, which is harmless).
    static func mentionsMain(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let length = mainMarker.utf8.count
        guard let base = bytes.baseAddress, bytes.count >= length else { return false }
        return mainMarker.withCString { marker in memmem(base, bytes.count, marker, length) != nil }
    }
}

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
