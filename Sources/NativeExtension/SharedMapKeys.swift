// The encoding of a SharedMap key: None, bool, int, float, str, bytes and tuples of them.
//
// A dict finds `1`, `1.0` and `True` under the same key, and so must a SharedMap: its keys are
// compared as bytes, so equal keys must have equal bytes. The *canonical* encoding gives them
// that: a bool is the int 0 or 1, and a float with an integral value is that int. The
// *original* encoding keeps a key's own types, for iteration; a map stores it only for the
// keys whose two encodings differ. Both are a kind byte, then:
//
//   N None      T True, F False (original only)      i int64 (8 bytes)
//   I an int beyond int64: u32 length, its hex text (int(text, 16) gives it back)
//   f float (8 bytes; canonical only when not integral)      s str: u32 length, UTF-8
//   b bytes: u32 length, data      t tuple: u64 count, the items
//
// A str with lone surrogates is kept with "surrogatepass" (no other str has those bytes).
// Numbers are in the process's byte order, as the file header records.
@preconcurrency import CPythonShim

enum SharedMapKeys {
    static let kindNone: UInt8 = 0x4E, kindTrue: UInt8 = 0x54, kindFalse: UInt8 = 0x46
    static let kindInt: UInt8 = 0x69, kindBigInt: UInt8 = 0x49, kindFloat: UInt8 = 0x66
    static let kindStr: UInt8 = 0x73, kindBytes: UInt8 = 0x62, kindTuple: UInt8 = 0x74

    /// Tuples nested deeper than this are refused (the decoder recurses).
    static let maximumDepth = 64

    /// What keeps an object from being a key.
    enum Problem {
        /// This part of the key (the key itself, or an item of a tuple in it) has no encoding.
        case unsupported(PyObjectPointer)
        /// A NaN float: it equals nothing, so it could never be found.
        case notANumber
        /// A str, bytes or tuple of 4 GiB (or 2**32 items) or more, or tuples nested too deep.
        case tooLarge(String)
        /// A Python call failed (memory): its exception is set.
        case raised
    }

    /// Writes bytes within a capacity and counts them all, so that a caller can encode into a
    /// small buffer first and, when the count says it was too small, again into a larger one.
    struct Writer {
        let base: UnsafeMutableRawPointer?
        let capacity: Int
        private(set) var length = 0
        /// Whether the encoding changed a bool or an integral float (canonical encodings only).
        var converted = false

        init(_ base: UnsafeMutableRawPointer?, capacity: Int) {
            self.base = base
            self.capacity = capacity
        }

        var fits: Bool { length <= capacity }

        mutating func byte(_ value: UInt8) {
            if length < capacity { base!.storeBytes(of: value, toByteOffset: length, as: UInt8.self) }
            length += 1
        }

        mutating func word(_ value: UInt64) {
            if length + 8 <= capacity { base!.storeBytes(of: value, toByteOffset: length, as: UInt64.self) }
            length += 8
        }

        mutating func data(_ source: UnsafeRawPointer?, _ count: Int) -> Problem? {
            guard count <= Int(UInt32.max) else { return .tooLarge("\(count) bytes") }
            if length + 4 <= capacity { base!.storeBytes(of: UInt32(count), toByteOffset: length, as: UInt32.self) }
            length += 4
            if count > 0, length + count <= capacity { (base! + length).copyMemory(from: source!, byteCount: count) }
            length += count
            return nil
        }
    }

    /// Encodes `key` (canonical or original). `lookup`: a key to look for, not to store, where
    /// subclasses of the key types count by value (an IntEnum member finds its int, as in a
    /// dict); a map is built from the exact types only.
    static func encode(
        _ key: PyObjectPointer, canonical: Bool, lookup: Bool, into writer: inout Writer,
        depth: Int = 0
    ) -> Problem? {
        if key == sp_None() {
            writer.byte(kindNone)
            return nil
        }
        if key == sp_True() || key == sp_False() {
            let value: Int64 = key == sp_True() ? 1 : 0
            if canonical {
                writer.converted = true
                writer.byte(kindInt)
                writer.word(UInt64(bitPattern: value))
            } else {
                writer.byte(value == 1 ? kindTrue : kindFalse)
            }
            return nil
        }
        let kind = sp_ShareableKind(key)
        if kind == SP_SHARE_STR || (lookup && kind == 0 && sp_Unicode_Check(key) != 0) {
            return encodeString(key, into: &writer)
        }
        if kind == SP_SHARE_INT || (lookup && kind == 0 && sp_Long_Check(key) != 0) {
            return encodeInt(key, into: &writer)
        }
        if kind == SP_SHARE_FLOAT || (lookup && kind == 0 && sp_Float_Check(key) != 0) {
            return encodeFloat(PyFloat_AsDouble(key), canonical: canonical, into: &writer)
        }
        if kind == SP_SHARE_BYTES || (lookup && kind == 0 && sp_Bytes_Check(key) != 0) {
            writer.byte(kindBytes)
            return writer.data(sp_Bytes_AS_STRING(key), Int(sp_Bytes_GET_SIZE(key)))
        }
        if kind == SP_SHARE_TUPLE || (lookup && kind == 0 && sp_Tuple_Check(key) != 0) {
            guard depth < maximumDepth else { return .tooLarge("tuples nested more than \(maximumDepth) deep") }
            let count = Int(sp_Tuple_GET_SIZE(key))
            guard count <= Int(UInt32.max) else { return .tooLarge("\(count) items") }
            writer.byte(kindTuple)
            writer.word(UInt64(count))  // 8 bytes: one store for the count, alignment is not needed
            for i in 0..<count {
                if let problem = encode(
                    sp_Tuple_GET_ITEM(key, Py_ssize_t(i))!, canonical: canonical, lookup: lookup,
                    into: &writer, depth: depth + 1)
                {
                    return problem
                }
            }
            return nil
        }
        return .unsupported(key)
    }

    private static func encodeString(_ key: PyObjectPointer, into writer: inout Writer) -> Problem? {
        writer.byte(kindStr)
        var length: Py_ssize_t = 0
        if let text = PyUnicode_AsUTF8AndSize(key, &length) {
            return writer.data(text, Int(length))
        }
        // Lone surrogates have no UTF-8; "surrogatepass" keeps them, and no other str has
        // those bytes.
        PyErr_Clear()
        guard let encoded = PyUnicode_AsEncodedString(key, "utf-8", "surrogatepass") else { return .raised }
        defer { Py_DecRef(encoded) }
        return writer.data(sp_Bytes_AS_STRING(encoded), Int(sp_Bytes_GET_SIZE(encoded)))
    }

    private static func encodeInt(_ key: PyObjectPointer, into writer: inout Writer) -> Problem? {
        var overflow: Int32 = 0
        let value = PyLong_AsLongLongAndOverflow(key, &overflow)
        if value == -1, PyErr_Occurred() != nil { return .raised }
        if overflow == 0 {
            writer.byte(kindInt)
            writer.word(UInt64(bitPattern: value))
            return nil
        }
        return encodeBigInt(key, into: &writer)
    }

    /// An int beyond int64 as its hex text: base 16 has no digit limit (unlike str(int)).
    private static func encodeBigInt(_ key: PyObjectPointer, into writer: inout Writer) -> Problem? {
        guard let text = PyNumber_ToBase(key, 16) else { return .raised }
        defer { Py_DecRef(text) }
        var length: Py_ssize_t = 0
        guard let ascii = PyUnicode_AsUTF8AndSize(text, &length) else { return .raised }
        writer.byte(kindBigInt)
        return writer.data(ascii, Int(length))
    }

    private static func encodeFloat(_ value: Double, canonical: Bool, into writer: inout Writer) -> Problem? {
        if value.isNaN { return .notANumber }
        if canonical, value.isFinite, value == value.rounded(.towardZero) {
            writer.converted = true
            // -2**63 <= value < 2**63: exactly an Int64.
            if value >= -9.223372036854775808e18, value < 9.223372036854775808e18 {
                writer.byte(kindInt)
                writer.word(UInt64(bitPattern: Int64(value)))
                return nil
            }
            guard let integer = PyLong_FromDouble(value) else { return .raised }
            defer { Py_DecRef(integer) }
            return encodeBigInt(integer, into: &writer)
        }
        writer.byte(kindFloat)
        writer.word(value.bitPattern)
        return nil
    }

    /// Sets the exception that says why `key` cannot be a SharedMap key. `problem` names the
    /// part of it at fault.
    static func raise(_ problem: Problem, key: PyObjectPointer) {
        switch problem {
        case .raised:
            return
        case .notANumber:
            PyErr_SetString(
                PyExc_ValueError,
                "SharedMap key \(describe(key)) holds a NaN, which equals nothing (not even itself), so it could never be looked up"
            )
        case .tooLarge(let what):
            PyErr_SetString(
                PyExc_ValueError, "SharedMap key \(describe(key)) is too large for a SharedMap key (\(what))")
        case .unsupported(let part):
            var text =
                "SharedMap keys must be str, bytes, int, float, bool, None or tuples of them; key \(describe(key))"
            if part != key { text += " holds \(describe(part))" }
            if sp_Unicode_Check(part) != 0 || sp_Long_Check(part) != 0 || sp_Float_Check(part) != 0
                || sp_Bytes_Check(part) != 0 || sp_Tuple_Check(part) != 0
            {
                text += ", a subclass: convert it to the plain type first"
            }
            PyErr_SetString(PyExc_TypeError, text)
        }
    }

    /// `repr(object)` (cut at 80 characters) and its type's name, for error messages.
    static func describe(_ object: PyObjectPointer) -> String {
        var text = "<unprintable>"
        if let repr = PyObject_Repr(object) {
            if let swift = Py.swiftString(repr) {
                text = swift.count > 80 ? String(swift.prefix(77)) + "..." : swift
            }
            Py_DecRef(repr)
        }
        PyErr_Clear()
        var typeName = "object"
        if let name = PyType_GetName(Py_TYPE(object)) {
            typeName = Py.swiftString(name) ?? typeName
            Py_DecRef(name)
        }
        PyErr_Clear()
        return "\(text) (of type \(typeName))"
    }

    // MARK: - Hashing and comparing

    /// The hash of a canonical key (`StableHash`): of its payload alone, seeded with its kind,
    /// for a str, a bytes or an int, so that a lookup can hash those straight from the key
    /// object (`hash(kind:_:)`, no encoding written and read back), and of all its bytes
    /// otherwise.
    static func hash(canonical key: UnsafeRawBufferPointer) -> UInt64 {
        let base = key.baseAddress!
        let kind = base.load(as: UInt8.self)
        if kind == kindStr || kind == kindBytes, key.count >= 5,
            Int(base.loadUnaligned(fromByteOffset: 1, as: UInt32.self)) == key.count - 5
        {
            return hash(kind: kind, base + 5, key.count - 5)
        }
        if kind == kindInt, key.count == 9 { return hash(kind: kind, base + 1, 8) }
        return StableHash.hash(base, key.count)
    }

    /// The hash of the canonical key of `kind` (str, bytes or int) whose payload is `count`
    /// bytes at `payload` (UTF-8 text, data, or the int's 8 bytes).
    @inline(__always)
    static func hash(kind: UInt8, _ payload: UnsafeRawPointer, _ count: Int) -> UInt64 {
        StableHash.hash(payload, count, seed: UInt64(kind) &* 0x9E37_79B9_7F4A_7C15)
    }

    /// Whether the canonical key `key` is the str or bytes (`kind`) with this payload.
    @inline(__always)
    static func matches(_ key: UnsafeRawBufferPointer, kind: UInt8, _ payload: UnsafeRawPointer, _ count: Int) -> Bool {
        key.count == 5 + count && key.load(as: UInt8.self) == kind
            && (count == 0 || memcmp(key.baseAddress! + 5, payload, count) == 0)
    }

    /// Whether the canonical key `key` is the int `value`.
    @inline(__always)
    static func matches(_ key: UnsafeRawBufferPointer, int value: Int64) -> Bool {
        key.count == 9 && key.load(as: UInt8.self) == kindInt
            && key.loadUnaligned(fromByteOffset: 1, as: Int64.self) == value
    }

    // MARK: - Decoding

    /// The key encoded at `offset` (either encoding) as a new reference; nil with ValueError
    /// when the bytes are not a whole key within `end` (a damaged file read without verify).
    static func decode(_ base: UnsafeRawPointer, at offset: inout Int, end: Int, depth: Int = 0) -> PyObjectPointer? {
        guard offset < end, depth <= maximumDepth else { return damaged() }
        let kind = base.load(fromByteOffset: offset, as: UInt8.self)
        offset += 1
        switch kind {
        case kindNone: return Py.none()
        case kindTrue: return Py.bool(true)
        case kindFalse: return Py.bool(false)
        case kindInt, kindFloat, kindTuple:
            guard end - offset >= 8 else { return damaged() }
            let word = base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            offset += 8
            if kind == kindInt { return Py.int(Int64(bitPattern: word)) }
            if kind == kindFloat { return Py.float(Double(bitPattern: word)) }
            guard word <= UInt64(end - offset) else { return damaged() }  // each item takes a byte at least
            guard let tuple = PyTuple_New(Py_ssize_t(word)) else { return nil }
            for i in 0..<Py_ssize_t(word) {
                guard let item = decode(base, at: &offset, end: end, depth: depth + 1) else {
                    Py_DecRef(tuple)
                    return nil
                }
                sp_Tuple_SET_ITEM(tuple, i, item)
            }
            return tuple
        case kindStr, kindBytes, kindBigInt:
            guard end - offset >= 4 else { return damaged() }
            let length = Int(base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            guard length <= end - offset - 4 else { return damaged() }
            let data = (base + offset + 4).assumingMemoryBound(to: CChar.self)
            offset += 4 + length
            switch kind {
            case kindStr: return PyUnicode_DecodeUTF8(data, Py_ssize_t(length), "surrogatepass")
            case kindBytes: return PyBytes_FromStringAndSize(data, Py_ssize_t(length))
            default: return bigInt(data, length)
            }
        default:
            return damaged()
        }
    }

    private static func bigInt(_ text: UnsafePointer<CChar>, _ length: Int) -> PyObjectPointer? {
        guard let string = PyUnicode_FromStringAndSize(text, Py_ssize_t(length)) else { return nil }
        defer { Py_DecRef(string) }
        return PyLong_FromUnicodeObject(string, 16)
    }

    private static func damaged() -> PyObjectPointer? {
        Py.fail(PyExc_ValueError, "a SharedMap key's bytes are damaged (a file changed after it was written?)")
    }
}
