// The encoding of a value made only of the exact types that the stdlib's
// `concurrent.interpreters` shares without pickling: None, bool, int (64-bit), float, str,
// bytes, and tuples of them; and of the immutable containers `complex`, `frozenset` and, on
// Pythons that have it (3.15+), `frozendict`, of those too. Such values are most of what flows through a queue (counters,
// keys, messages) and most of what tiny tasks take and return, and for them pickle's machinery
// (a pickler, a frame, an unpickler, a memoryview) costs more than the hand-off itself. A
// `Queue` item, a task's returned value and a task's call by name (`WireFormat.Call`)
// use it. Anything else, or anything this format
// cannot hold (a larger int, a str with lone surrogates, deep nesting), goes to pickle: an
// item's bytes start with `tag` here and with pickle's PROTO opcode (0x80) otherwise.
//
// Layout, in the process's own byte order (the bytes never leave the process): `tag`, then
// one value: a kind byte (`SP_SHARE_*`), then for int and float 8 bytes, for complex 16 (real,
// imaginary), for str (UTF-8) and bytes an 8-byte length and the data, for a tuple and a
// frozenset an 8-byte count and its items, for a frozendict an 8-byte count and its keys and
// values, alternating. A SharedMap file stores values in this format too (its header names
// the byte order, and a file of the other order is refused).
@preconcurrency import CPythonShim

enum ShareableCodec {
    /// The first byte of an item in this format ("S"); never the first byte of a pickle.
    static let tag: UInt8 = 0x53

    /// Nested tuples deeper than this go to pickle (which keeps its own recursion checks).
    static let maximumDepth = 64

    /// `item` in this format, or nil (no exception set) when it holds anything else.
    static func encode(_ item: PyObjectPointer) -> ByteBuffer? {
        guard let size = size(of: item, depth: 0) else { return nil }
        return ByteBuffer(count: 1 + size) { fill(item, at: $0) }
    }

    /// `item` in this format as a new `bytes` object (what a pool's task carries), or nil: with
    /// an exception set when memory ran out, without one when the format cannot hold `item`.
    static func encodeAsBytes(_ item: PyObjectPointer) -> PyObjectPointer? {
        guard let size = size(of: item, depth: 0), let bytes = PyBytes_FromStringAndSize(nil, Py_ssize_t(1 + size))
        else { return nil }
        fill(item, at: UnsafeMutableRawPointer(sp_Bytes_AS_STRING(bytes)!))
        return bytes
    }

    /// The bytes `item` takes in this format (the tag included), or nil when the format cannot
    /// hold it (no exception set). For callers that place the encoding themselves (SharedMap).
    static func encodedSize(_ item: PyObjectPointer) -> Int? {
        size(of: item, depth: 0).map { 1 + $0 }
    }

    /// Writes `item`, which `encodedSize` accepted, at `start` (`encodedSize` bytes).
    static func encode(_ item: PyObjectPointer, into start: UnsafeMutableRawPointer) {
        fill(item, at: start)
    }

    /// Writes the tag and `item` (which `size(of:)` accepted) from `start` on.
    private static func fill(_ item: PyObjectPointer, at start: UnsafeMutableRawPointer) {
        start.storeBytes(of: tag, as: UInt8.self)
        var offset = 1
        write(item, to: start, at: &offset)
    }

    /// Whether `buffer` holds an item in this format (else it holds a pickle).
    static func holds(_ buffer: ByteBuffer) -> Bool {
        holds(buffer.contents)
    }

    /// Whether `bytes` hold an item in this format (else they hold a pickle).
    static func holds(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count > 0 && bytes[0] == tag
    }

    /// The item that `buffer` (in this format) holds: a new reference, or nil with an
    /// exception set (memory).
    static func decode(_ buffer: ByteBuffer) -> PyObjectPointer? {
        decode(buffer.contents)
    }

    /// The item that `bytes` hold: a new reference, or nil with an exception set (memory, or
    /// bytes that are not one whole item in this format: every read is checked against the
    /// end, since `_native.decode_shareable` takes any buffer).
    static func decode(_ bytes: UnsafeRawBufferPointer) -> PyObjectPointer? {
        guard holds(bytes), let base = bytes.baseAddress else { return malformed() }
        // A lone int, the commonest small value (a counter, an id, a SharedMap's value): built
        // without the general reader.
        if bytes.count == 10, bytes[1] == UInt8(SP_SHARE_INT) {
            return Py.int(base.loadUnaligned(fromByteOffset: 2, as: Int64.self))
        }
        var offset = 1
        guard let item = OwnedObject(read(base, at: &offset, end: bytes.count, depth: 0)) else { return nil }
        if offset != bytes.count { return malformed() }
        return item.take()
    }

    private static func malformed() -> PyObjectPointer? {
        Py.fail(PyExc_ValueError, "not an item in the shareable format (truncated or corrupt)")
    }

    // MARK: - Encoding

    /// The bytes `item` takes after the tag, or nil when this format cannot hold it.
    private static func size(of item: PyObjectPointer, depth: Int) -> Int? {
        switch sp_ShareableKind(item) {
        case SP_SHARE_NONE, SP_SHARE_TRUE, SP_SHARE_FALSE:
            return 1
        case SP_SHARE_INT:
            var overflow: Int32 = 0
            _ = PyLong_AsLongLongAndOverflow(item, &overflow)  // cannot fail for an exact int
            return overflow == 0 ? 9 : nil
        case SP_SHARE_FLOAT:
            return 9
        case SP_SHARE_STR:
            var length: Py_ssize_t = 0
            // Cached in the str, so the write below takes it again for free. Lone surrogates
            // have no UTF-8: pickle keeps them.
            guard PyUnicode_AsUTF8AndSize(item, &length) != nil else {
                PyErr_Clear()
                return nil
            }
            return 9 + Int(length)
        case SP_SHARE_BYTES:
            return 9 + Int(sp_Bytes_GET_SIZE(item))
        case SP_SHARE_TUPLE:
            guard depth < maximumDepth else { return nil }
            var total = 9
            for i in 0..<sp_Tuple_GET_SIZE(item) {
                guard let each = size(of: sp_Tuple_GET_ITEM(item, i)!, depth: depth + 1) else { return nil }
                total += each
            }
            return total
        case SP_SHARE_COMPLEX:
            return 17
        case SP_SHARE_FROZENSET, SP_SHARE_FROZENDICT:
            guard depth < maximumDepth else { return nil }
            var total = 9
            let complete = forEachItem(of: item, kind: sp_ShareableKind(item)) { each in
                guard let more = size(of: each, depth: depth + 1) else { return false }
                total += more
                return true
            }
            return complete ? total : nil
        default:
            return nil
        }
    }

    /// Calls `body` with each item of a frozenset, or each key then its value of a frozendict,
    /// until it returns false; false then (or when iterating failed: no exception is left set).
    /// Both are immutable, so two passes (size, then write) see the same items in the same order.
    private static func forEachItem(
        of container: PyObjectPointer, kind: Int32, _ body: (PyObjectPointer) -> Bool
    ) -> Bool {
        if kind == SP_SHARE_FROZENDICT {
            var position: Py_ssize_t = 0
            var key: PyObjectPointer?
            var value: PyObjectPointer?
            while PyDict_Next(container, &position, &key, &value) != 0 {
                guard body(key!), body(value!) else { return false }
            }
            return true
        }
        guard let iterator = OwnedObject(PyObject_GetIter(container)) else {
            PyErr_Clear()
            return false
        }
        while let each = OwnedObject(PyIter_Next(iterator.borrowed)) {  // the frozenset holds it meanwhile
            guard body(each.borrowed) else { return false }
        }
        if PyErr_Occurred() != nil {
            PyErr_Clear()
            return false
        }
        return true
    }

    /// Writes `item`, which `size(of:)` accepted, at `offset` and moves past it.
    private static func write(_ item: PyObjectPointer, to start: UnsafeMutableRawPointer, at offset: inout Int) {
        let kind = sp_ShareableKind(item)
        start.storeBytes(of: UInt8(kind), toByteOffset: offset, as: UInt8.self)
        offset += 1
        switch kind {
        case SP_SHARE_INT:
            var overflow: Int32 = 0
            start.storeBytes(
                of: Int64(PyLong_AsLongLongAndOverflow(item, &overflow)), toByteOffset: offset, as: Int64.self)
            offset += 8
        case SP_SHARE_FLOAT:
            start.storeBytes(of: sp_Float_AS_DOUBLE(item).bitPattern, toByteOffset: offset, as: UInt64.self)
            offset += 8
        case SP_SHARE_STR:
            var length: Py_ssize_t = 0
            let text = PyUnicode_AsUTF8AndSize(item, &length)!
            writeData(UnsafeRawPointer(text), Int(length), to: start, at: &offset)
        case SP_SHARE_BYTES:
            writeData(UnsafeRawPointer(sp_Bytes_AS_STRING(item)!), Int(sp_Bytes_GET_SIZE(item)), to: start, at: &offset)
        case SP_SHARE_TUPLE:
            let count = sp_Tuple_GET_SIZE(item)
            start.storeBytes(of: Int64(count), toByteOffset: offset, as: Int64.self)
            offset += 8
            for i in 0..<count { write(sp_Tuple_GET_ITEM(item, i)!, to: start, at: &offset) }
        case SP_SHARE_COMPLEX:
            start.storeBytes(of: PyComplex_RealAsDouble(item).bitPattern, toByteOffset: offset, as: UInt64.self)
            start.storeBytes(of: PyComplex_ImagAsDouble(item).bitPattern, toByteOffset: offset + 8, as: UInt64.self)
            offset += 16
        case SP_SHARE_FROZENSET, SP_SHARE_FROZENDICT:
            let countOffset = offset
            offset += 8
            var count: Int64 = 0
            _ = forEachItem(of: item, kind: kind) { each in
                write(each, to: start, at: &offset)
                count += 1
                return true
            }
            // A frozendict's count is of pairs.
            start.storeBytes(
                of: kind == SP_SHARE_FROZENDICT ? count / 2 : count, toByteOffset: countOffset, as: Int64.self)
        default:
            break  // None, True, False: the kind says it all
        }
    }

    private static func writeData(
        _ data: UnsafeRawPointer, _ length: Int, to start: UnsafeMutableRawPointer,
        at offset: inout Int
    ) {
        start.storeBytes(of: Int64(length), toByteOffset: offset, as: Int64.self)
        offset += 8
        if length > 0 { (start + offset).copyMemory(from: data, byteCount: length) }
        offset += length
    }

    // MARK: - Decoding

    private static func read(_ start: UnsafeRawPointer, at offset: inout Int, end: Int, depth: Int) -> PyObjectPointer?
    {
        guard offset < end, depth <= maximumDepth else { return malformed() }
        let kind = Int32(start.load(fromByteOffset: offset, as: UInt8.self))
        offset += 1
        // What follows the kind byte: 8 bytes for every kind that has a payload (16 for complex).
        if kind >= SP_SHARE_INT && kind <= SP_SHARE_FROZENDICT && end - offset < 8 { return malformed() }
        switch kind {
        case SP_SHARE_NONE: return Py.none()
        case SP_SHARE_TRUE: return Py.bool(true)
        case SP_SHARE_FALSE: return Py.bool(false)
        case SP_SHARE_INT:
            let value = start.loadUnaligned(fromByteOffset: offset, as: Int64.self)
            offset += 8
            return Py.int(value)
        case SP_SHARE_FLOAT:
            let bits = start.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            offset += 8
            return Py.float(Double(bitPattern: bits))
        case SP_SHARE_STR, SP_SHARE_BYTES:
            let length = Int(start.loadUnaligned(fromByteOffset: offset, as: Int64.self))
            guard length >= 0, length <= end - offset - 8 else { return malformed() }
            let data = (start + offset + 8).assumingMemoryBound(to: CChar.self)
            offset += 8 + length
            return kind == SP_SHARE_STR
                ? PyUnicode_DecodeUTF8(data, Py_ssize_t(length), nil)
                : PyBytes_FromStringAndSize(data, Py_ssize_t(length))
        case SP_SHARE_TUPLE:
            let count = Py_ssize_t(start.loadUnaligned(fromByteOffset: offset, as: Int64.self))
            offset += 8
            // Each item takes at least its kind byte.
            guard count >= 0, count <= end - offset else { return malformed() }
            guard let tuple = OwnedObject(PyTuple_New(count)) else { return nil }
            for i in 0..<count {
                guard let each = read(start, at: &offset, end: end, depth: depth + 1) else { return nil }
                sp_Tuple_SET_ITEM(tuple.borrowed, i, each)  // steals the reference
            }
            return tuple.take()
        case SP_SHARE_COMPLEX:
            guard end - offset >= 16 else { return malformed() }
            let real = Double(bitPattern: start.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            let imaginary = Double(bitPattern: start.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
            offset += 16
            return PyComplex_FromDoubles(real, imaginary)
        case SP_SHARE_FROZENSET:
            let count = Int(start.loadUnaligned(fromByteOffset: offset, as: Int64.self))
            offset += 8
            guard count >= 0, count <= end - offset else { return malformed() }
            guard let set = OwnedObject(PyFrozenSet_New(nil)) else { return nil }
            for _ in 0..<count {
                // Filling a frozenset nobody else sees yet is what PySet_Add allows it for.
                guard let each = OwnedObject(read(start, at: &offset, end: end, depth: depth + 1)),
                    PySet_Add(set.borrowed, each.borrowed) == 0
                else { return nil }
            }
            return set.take()
        case SP_SHARE_FROZENDICT:
            let count = Int(start.loadUnaligned(fromByteOffset: offset, as: Int64.self))
            offset += 8
            // Each pair takes at least two kind bytes.
            guard count >= 0, count <= (end - offset) / 2 else { return malformed() }
            guard let dict = Py.dict() else { return nil }
            for _ in 0..<count {
                guard let key = OwnedObject(read(start, at: &offset, end: end, depth: depth + 1)),
                    let value = OwnedObject(read(start, at: &offset, end: end, depth: depth + 1)),
                    PyDict_SetItem(dict.borrowed, key.borrowed, value.borrowed) == 0
                else { return nil }
            }
            return sp_FrozenDict_FromDict(dict.borrowed)
        default:
            return Py.fail(PyExc_ValueError, "not an item in the shareable format (unknown kind \(kind))")
        }
    }
}
