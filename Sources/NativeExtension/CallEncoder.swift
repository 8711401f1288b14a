// How `Pool.submit` encodes a call for a worker, cheapest first: by name in the shareable
// format (no pickle at all), else one C pickle (`_pickle.dumps`), else the Python encoder
// (`_pickling.dumps_to_worker`: cloudpickle, `__main__`, out-of-band arguments, and a note
// naming what cannot be pickled).
@preconcurrency import CPythonShim

/// A call encoded for a worker: a `bytes` and the arguments that travel beside it.
struct EncodedCall: ~Copyable {
    let input: OwnedObject
    let extras: [Task.Extra]
}

/// The call encoding of one pool, in the creating interpreter (used with its GIL held; the
/// pool drops it there, with its references).
final class CallEncoder {
    /// `encoder(fn, args, kwargs) -> bytes or (bytes, [bytes or memoryview, ...])`.
    private let encoder: OwnedObject
    /// `_pickle.dumps`, borrowed from the module state (which outlives the pool), if it could
    /// be imported: the quick path is optional.
    private let dumps: PyObjectPointer?
    /// The functions that travel by name.
    let namedFunctions = NamedFunctions()
    /// The pool, whose lent memoryviews (`BufferLend`) it counts.
    private let core: PoolCore

    init(encoder: consuming OwnedObject, dumps: PyObjectPointer?, core: PoolCore) {
        self.encoder = encoder
        self.dumps = dumps
        self.core = core
    }

    /// The encoded call and its out-of-band arguments (for a new `Task`), or nil with an
    /// exception set.
    func encode(_ fn: PyObjectPointer, _ args: PyObjectPointer, _ kwargs: PyObjectPointer) -> EncodedCall? {
        if let byName = shareableCall(fn, args, kwargs) { return EncodedCall(input: byName, extras: []) }
        if let pickled = quickEncode(fn, args, kwargs) { return EncodedCall(input: pickled, extras: []) }
        guard let encoded = Py.call(encoder.borrowed, fn, args, kwargs) else { return nil }
        guard let call = split(encoded.borrowed) else {
            if PyErr_Occurred() != nil { return nil }  // a memoryview that cannot be lent
            PyErr_SetString(PyExc_TypeError, "the encoder must return bytes or (bytes, [bytes or memoryview, ...])")
            return nil
        }
        return call
    }

    /// The call in `ShareableCodec`'s format (`WireFormat.ShareableCall`): when `fn` is one
    /// that pickle would send by reference, not from `__main__`, and every argument is
    /// shareable (and none travels out of band). Else nil, no exception set: pickle takes it.
    private func shareableCall(_ fn: PyObjectPointer, _ args: PyObjectPointer, _ kwargs: PyObjectPointer)
        -> OwnedObject?
    {
        guard ByName.mayTravel(fn), sp_Tuple_CheckExact(args) != 0, sp_Dict_CheckExact(kwargs) != 0,
            let named = namedFunctions.names(of: fn), !CallEncoder.hasOutOfBand(args, kwargs)
        else { return nil }
        guard let keywords = CallEncoder.flatKeywords(kwargs),
            let call = OwnedObject(Py.tuple([named.module.borrowed, named.qualname.borrowed, args, keywords.borrowed]))
        else {
            PyErr_Clear()
            return nil
        }
        guard let encoded = OwnedObject(ShareableCodec.encodeAsBytes(call.borrowed)) else {
            PyErr_Clear()
            return nil
        }
        return encoded
    }

    /// `kwargs` as the flat tuple `(name, value, name, value, ...)` of a shareable call, or
    /// None when it is empty; nil with an exception set when memory ran out.
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

    /// `_pickle.dumps((fn, args, kwargs), 5)` when that works and mentions no `__main__`
    /// (which the worker could not resolve); else nil, no exception set, and the Python
    /// encoder takes over.
    private func quickEncode(_ fn: PyObjectPointer, _ args: PyObjectPointer, _ kwargs: PyObjectPointer)
        -> OwnedObject?
    {
        // Arguments that go out of band: the Python encoder handles them.
        if CallEncoder.hasOutOfBand(args, kwargs) { return nil }
        guard let dumps, let call = OwnedObject(Py.tuple([fn, args, kwargs])) else {
            PyErr_Clear()
            return nil
        }
        return Pickling.quickDumps(call.borrowed, with: dumps)
    }

    /// Whether a top-level argument travels out of band (`WireFormat.outOfBandKind`).
    private static func hasOutOfBand(_ args: PyObjectPointer, _ kwargs: PyObjectPointer) -> Bool {
        func large(_ object: PyObjectPointer?) -> Bool {
            guard let object else { return false }
            return WireFormat.outOfBandKind(object) != .inBand
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

    /// The Python encoder's output: `bytes`, or `(bytes, [bytes or memoryview, ...])` with
    /// out-of-band arguments; a memoryview is lent (its buffer export taken here). Nil when
    /// the shape is wrong (no error set) or a memoryview cannot be lent (error set).
    private func split(_ encoded: PyObjectPointer) -> EncodedCall? {
        if sp_Bytes_Check(encoded) != 0 { return EncodedCall(input: OwnedObject(retaining: encoded), extras: []) }
        guard sp_Tuple_Check(encoded) != 0, PyTuple_Size(encoded) == 2,
            let payload = sp_Tuple_GET_ITEM(encoded, 0), sp_Bytes_Check(payload) != 0,
            let list = sp_List_Check(sp_Tuple_GET_ITEM(encoded, 1)) != 0 ? sp_Tuple_GET_ITEM(encoded, 1) : nil,
            (0..<PyList_Size(list)).allSatisfy({
                sp_Bytes_Check(sp_List_GET_ITEM(list, $0)) != 0 || sp_MemoryView_Check(sp_List_GET_ITEM(list, $0)) != 0
            })
        else { return nil }
        var extras: [Task.Extra] = []
        for i in 0..<PyList_Size(list) {
            let item = sp_List_GET_ITEM(list, i)!
            if sp_Bytes_Check(item) != 0 {
                extras.append(.bytes(UnmanagedObject.retaining(item)))
            } else if let lend = BufferLend.take(item, for: core) {
                extras.append(.lent(lend))
            } else {
                // Nothing was queued: give back what was taken so far.
                for extra in extras { extra.release() }
                return nil
            }
        }
        return EncodedCall(input: OwnedObject(retaining: payload), extras: extras)
    }
}
