// The encoding of a value made only of the exact types that the stdlib's
// `concurrent.interpreters` shares without pickling: None, bool, int (64-bit), float, str,
// bytes, and tuples of them. Such values are most of what flows through a queue (counters,
// keys, messages) and most of what tiny tasks take and return, and for them pickle's machinery
// (a pickler, a frame, an unpickler, a memoryview) costs more than the hand-off itself. A
// `Queue` item, a task's returned value and a task's call by name (`WireFormat.ShareableCall`)
// use it. Anything else, or anything this format
// cannot hold (a larger int, a str with lone surrogates, deep nesting), goes to pickle: an
// item's bytes start with `tag` here and with pickle's PROTO opcode (0x80) otherwise.
//
// Layout, in the process's own byte order (the bytes never leave the process): `tag`, then
// one value: a kind byte (`SP_SHARE_*`), then for int and float 8 bytes, for str (UTF-8) and
// bytes an 8-byte length and the data, for a tuple an 8-byte count and its items.
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
        default:
            return nil
        }
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
        // What follows the kind byte: 8 bytes for every kind that has a payload.
        if kind >= SP_SHARE_INT && kind <= SP_SHARE_TUPLE && end - offset < 8 { return malformed() }
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
        default:
            return Py.fail(PyExc_ValueError, "not an item in the shareable format (unknown kind \(kind))")
        }
    }
}
