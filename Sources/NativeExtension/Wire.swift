// Every record that crosses between interpreters, written once on the Swift side; the Python
// half is python/subinterpreter_parallelism/_wire.py, under the same names (which draws the
// data flow of one task). `_native` exports the tags and rules here (Module.swift); each
// record's common case is encoded and decoded here, and what these cannot do goes to `_wire`:
//
//   Call       caller: by name in the Shareable format, else the C pickle of the tuple
//              `(fn, args, kwargs)`, else `_wire.encode_call`'s bytes and out-of-band
//              arguments; worker: decoded here (with out-of-band arguments by `_wire.decode_call`).
//   Value      what a task returned, pickled (first byte `Value.tag`, pickle's PROTO opcode).
//   Shareable  what a task returned, in ShareableCodec's format (first byte `Shareable.tag`).
//   Lent       a large binary result lent to the caller: a `_wire.Lent`, read here; the caller
//              copies it once (`LentBytes`, ResultLending.swift).
//   Error      what a task raised: `Error.tag` and a pickle, made and read by `_wire.Error`.
//   Chunk      a map chunk's outcome: a Value or Shareable tuple made and read by `_wire.Chunk`.
//   Bootstrap  bytes made by `_wire.Bootstrap.encode`, handed as they are to the runner.
@preconcurrency import CPythonShim
import Glibc

/// The rules of the bytes that travel between interpreters, and the records made of them.
enum WireFormat {
    /// The pickle protocol used everywhere (out-of-band capable, fastest framing).
    static let pickleProtocol: Int64 = 5

    /// Whether an outcome whose first byte is `first` is a returned value (pickled or not).
    static func isValue(_ first: UInt8) -> Bool { first == Value.tag || first == Shareable.tag }

    /// `bytes` arguments and results at least this large travel out of band (see `Task` and
    /// `LentBytes` in ResultLending.swift): one copy each way instead of three. Measured: in-band
    /// round trips jump from 0.07 ms at 64 KiB to 0.24 ms at 100 KiB (pickle frames and fresh
    /// pages); out of band, 128 KiB takes 0.05 ms.
    static let outOfBandMinimum = 64 << 10

    /// How an argument or a result travels: the one rule, read by `_wire` through
    /// `_native.out_of_band_kind` (and its `OUT_OF_BAND_*` constants) and by the encoders here.
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

    /// Whether a top-level argument of a call travels out of band.
    static func hasOutOfBand(_ args: PyObjectPointer, _ kwargs: PyObjectPointer) -> Bool {
        func large(_ object: PyObjectPointer?) -> Bool {
            guard let object else { return false }
            return outOfBandKind(object) != .inBand
        }
        if sp_Tuple_Check(args) != 0 {
            for i in 0..<PyTuple_Size(args) where large(sp_Tuple_GET_ITEM(args, i)) { return true }
        }
        if sp_Dict_Check(kwargs) != 0 {
            var position: Py_ssize_t = 0
            var key: PyObjectPointer?
            var value: PyObjectPointer?
            while PyDict_Next(kwargs, &position, &key, &value) != 0 {
                if large(value) { return true }
            }
        }
        return false
    }

    /// A plain pickle that contains this text may refer to `__main__`, which a worker
    /// interpreter could not resolve: `_wire` makes it again (cloudpickle, by value).
    static let mainMarker = "__main__"

    /// Whether pickled bytes refer to the `__main__` module (or merely contain that text:
    /// then the slower, always-correct path is taken, which is harmless).
    static func mentionsMain(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let length = mainMarker.utf8.count
        guard let base = bytes.baseAddress, bytes.count >= length else { return false }
        return mainMarker.withCString { marker in memmem(base, bytes.count, marker, length) != nil }
    }

    // MARK: - Call

    /// `fn(*args, **kwargs)` on its way to a worker.
    enum Call {
        /// A call by name: the Shareable tuple `(module, qualname, args, kwargs)`, where
        /// `kwargs` is None or a flat tuple `(name, value, name, value, ...)`. Sent instead of a
        /// pickle when `fn` is one that pickle would send by reference and every argument is
        /// shareable; the worker resolves the function by name, as unpickling it would
        /// (`TaskRunner.resolve`, with `ByName.walk`).
        static let byNameFields = 4

        /// The call by name, or nil (no exception set) when an argument is not shareable:
        /// pickle takes it.
        static func encodeByName(
            module: PyObjectPointer, qualname: PyObjectPointer, _ args: PyObjectPointer, _ kwargs: PyObjectPointer
        ) -> OwnedObject? {
            guard let keywords = flatKeywords(kwargs),
                let call = OwnedObject(Py.tuple([module, qualname, args, keywords.borrowed])),
                let encoded = OwnedObject(ShareableCodec.encodeAsBytes(call.borrowed))
            else {
                PyErr_Clear()
                return nil
            }
            return encoded
        }

        /// `kwargs` as the flat tuple of a call by name, or None when it is empty; nil with an
        /// exception set when memory ran out.
        private static func flatKeywords(_ kwargs: PyObjectPointer) -> OwnedObject? {
            let keywordCount = PyDict_Size(kwargs)
            guard keywordCount > 0 else { return OwnedObject(Py.none()) }
            guard let flat = OwnedObject(PyTuple_New(2 * keywordCount)) else { return nil }
            var position: Py_ssize_t = 0
            var index: Py_ssize_t = 0
            var key: PyObjectPointer?
            var value: PyObjectPointer?
            while PyDict_Next(kwargs, &position, &key, &value) != 0 {
                // SET_ITEM steals the new references.
                sp_Tuple_SET_ITEM(flat.borrowed, index, OwnedObject(retaining: key!).take())
                sp_Tuple_SET_ITEM(flat.borrowed, index + 1, OwnedObject(retaining: value!).take())
                index += 2
            }
            return flat
        }

        /// A decoded call by name: its tuple, and the keyword arguments as a dict (None when
        /// there are none).
        struct ByName: ~Copyable {
            let call: OwnedObject
            let keywordDict: OwnedObject
            var module: PyObjectPointer { sp_Tuple_GET_ITEM(call.borrowed, 0)! }
            var qualname: PyObjectPointer { sp_Tuple_GET_ITEM(call.borrowed, 1)! }
            var arguments: PyObjectPointer { sp_Tuple_GET_ITEM(call.borrowed, 2)! }
            var keywords: PyObjectPointer? { keywordDict.borrowed == sp_None() ? nil : keywordDict.borrowed }
        }

        /// The call by name in `buffer`, or nil with an exception set.
        static func decodeByName(_ buffer: UnsafeRawBufferPointer) -> ByName? {
            guard let call = OwnedObject(ShareableCodec.decode(buffer)) else { return nil }
            let tuple = call.borrowed
            guard sp_Tuple_CheckExact(tuple) != 0, sp_Tuple_GET_SIZE(tuple) == byNameFields,
                sp_Unicode_CheckExact(sp_Tuple_GET_ITEM(tuple, 0)) != 0,
                sp_Unicode_CheckExact(sp_Tuple_GET_ITEM(tuple, 1)) != 0,
                sp_Tuple_CheckExact(sp_Tuple_GET_ITEM(tuple, 2)) != 0
            else { return malformed("call by name") }
            let flat = sp_Tuple_GET_ITEM(tuple, 3)!
            guard flat != sp_None() else { return ByName(call: call, keywordDict: OwnedObject(retaining: flat)) }
            guard sp_Tuple_CheckExact(flat) != 0 else { return malformed("call by name") }
            guard let dict = Py.dict() else { return nil }
            var i: Py_ssize_t = 0
            while i + 1 < sp_Tuple_GET_SIZE(flat) {
                guard PyDict_SetItem(dict.borrowed, sp_Tuple_GET_ITEM(flat, i), sp_Tuple_GET_ITEM(flat, i + 1)) == 0
                else { return nil }
                i += 2
            }
            return ByName(call: call, keywordDict: dict)
        }

        /// A pickled call: `_pickle.dumps((fn, args, kwargs), 5)` when that works and mentions
        /// no `__main__`; else nil, no exception set, and `_wire.encode_call` takes over.
        static func encodePickled(
            _ fn: PyObjectPointer, _ args: PyObjectPointer, _ kwargs: PyObjectPointer, dumps: PyObjectPointer
        ) -> OwnedObject? {
            guard let call = OwnedObject(Py.tuple([fn, args, kwargs])) else {
                PyErr_Clear()
                return nil
            }
            return Pickling.quickDumps(call.borrowed, with: dumps)
        }

        /// What `_wire.encode_call` returned, if it has the shape of its output: the pickle and,
        /// with out-of-band arguments, their list (`bytes` or `memoryview` items). Nil otherwise
        /// (no exception set).
        static func readEncoded(_ encoded: PyObjectPointer) -> (pickle: PyObjectPointer, extras: PyObjectPointer?)? {
            if sp_Bytes_Check(encoded) != 0 { return (encoded, nil) }
            guard sp_Tuple_Check(encoded) != 0, PyTuple_Size(encoded) == 2,
                let payload = sp_Tuple_GET_ITEM(encoded, 0), sp_Bytes_Check(payload) != 0,
                let list = sp_List_Check(sp_Tuple_GET_ITEM(encoded, 1)) != 0 ? sp_Tuple_GET_ITEM(encoded, 1) : nil,
                (0..<PyList_Size(list)).allSatisfy({
                    sp_Bytes_Check(sp_List_GET_ITEM(list, $0)) != 0
                        || sp_MemoryView_Check(sp_List_GET_ITEM(list, $0)) != 0
                })
            else { return nil }
            return (payload, list)
        }

        /// A pickled call read back, the worker's side: `loads(view)` with the C unpickler, or
        /// (`decoded`) what `_wire.decode_call` returned; nil with an exception set unless it is
        /// the tuple `(fn, args, kwargs)`, args a tuple and kwargs a dict.
        static func decodePickled(_ view: PyObjectPointer, loads: PyObjectPointer) -> OwnedObject? {
            checked(OwnedObject(PyObject_CallOneArg(loads, view)))
        }

        static func checked(_ decoded: consuming OwnedObject?) -> OwnedObject? {
            guard let call = decoded else { return nil }
            guard sp_Tuple_CheckExact(call.borrowed) != 0, sp_Tuple_GET_SIZE(call.borrowed) == 3,
                sp_Tuple_Check(sp_Tuple_GET_ITEM(call.borrowed, 1)) != 0,
                sp_Dict_Check(sp_Tuple_GET_ITEM(call.borrowed, 2)) != 0
            else { return malformed("pickled call") }
            return call
        }
    }

    // MARK: - Value, Shareable, Lent: what a task returned

    /// A returned value, pickled.
    enum Value {
        /// Every protocol-5 pickle starts with the PROTO opcode.
        static let tag: UInt8 = 0x80

        /// `value`'s C pickle, the worker's side: nil, no exception set, when it travels out of
        /// band, cannot be pickled here or mentions `__main__`: `_wire.encode_value` takes it.
        static func encode(_ value: PyObjectPointer, dumps: PyObjectPointer) -> OwnedObject? {
            guard outOfBandKind(value) == .inBand else { return nil }
            return Pickling.quickDumps(value, with: dumps)
        }

        /// A Shareable value or a Value, read back on the caller's side: nil with no exception
        /// set for anything else (an Error) and for a pickle that does not load here (the
        /// general path, `_wire.decode_outcome`, says why); nil with an exception set when
        /// memory ran out or a Shareable value is malformed.
        static func decode(_ buffer: ByteBuffer, loads: PyObjectPointer?) -> OwnedObject? {
            if ShareableCodec.holds(buffer) { return OwnedObject(ShareableCodec.decode(buffer)) }
            guard buffer.count > 0, buffer.contents[0] == tag, let loads else { return nil }
            guard let value = OwnedObject(Pickling.loads(buffer, with: loads)) else {
                PyErr_Clear()
                return nil
            }
            return value
        }
    }

    /// A returned value in `ShareableCodec`'s format, no pickle (also a call by name's).
    enum Shareable {
        static let tag: UInt8 = ShareableCodec.tag

        /// `value` in the format, unless it travels out of band (large `bytes`: lent, one copy)
        /// or the format cannot hold it (nil, no exception set: pickled instead).
        static func encode(_ value: PyObjectPointer) -> ByteBuffer? {
            guard outOfBandKind(value) == .inBand else { return nil }
            return ShareableCodec.encode(value)
        }
    }

    /// A binary result lent to the caller: `_wire.Lent(value, as_bytearray)`, which the
    /// runner's `encode_value` returns instead of bytes.
    enum Lent {
        /// The fields of a `_wire.Lent`.
        struct Fields: ~Copyable {
            let value: OwnedObject
            let asByteArray: Bool
        }

        /// The record's `value` and `as_bytearray` if `record` is a `_wire.Lent` (`type`); nil
        /// otherwise, with an exception set only when reading a field failed.
        static func read(_ record: PyObjectPointer, type: PyObjectPointer) -> Fields? {
            guard UnsafeMutableRawPointer(Py_TYPE(record)) == UnsafeMutableRawPointer(type) else { return nil }
            guard let value = Py.attribute(record, "value"), let flag = Py.attribute(record, "as_bytearray") else {
                return nil
            }
            let truth = PyObject_IsTrue(flag.borrowed)
            guard truth >= 0 else { return nil }
            return Fields(value: value, asByteArray: truth == 1)
        }

        /// The caller's copy of lent `contents`: a `bytes`, or a `bytearray` when the task
        /// returned one. Nil with an exception set when memory ran out.
        static func copy(_ contents: UnsafeRawBufferPointer, asByteArray: Bool) -> OwnedObject? {
            OwnedObject(asByteArray ? Py.byteArray(contents) : Py.bytes(contents))
        }
    }

    // MARK: - Error, Chunk, Bootstrap

    /// What a task raised: `tag`, then the pickle of `(type name, message, traceback text,
    /// pickled exception or None)`, made and read by `_wire.Error` (here only its tag is read).
    enum Error {
        static let tag: UInt8 = 0x45
    }

    /// A map chunk's outcome, `_wire.Chunk`: to the pool, a task's returned tuple like any other.
    enum Chunk {}

    /// A worker's preparation, `_wire.Bootstrap`: bytes the pool hands as they are to the
    /// runner's `bootstrap` (`WorkerConfiguration.bootstrapPayload`).
    enum Bootstrap {}

    /// Nil, with RuntimeError set (unless an exception is set already), for a record whose
    /// shape is wrong.
    private static func malformed<T: ~Copyable>(_ what: String) -> T? {
        if PyErr_Occurred() == nil { PyErr_SetString(PyExc_RuntimeError, "a malformed \(what)") }
        return nil
    }
}
