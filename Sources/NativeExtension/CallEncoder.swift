// How `Pool.submit` encodes a call for a worker (a `WireFormat.Call`, Wire.swift), cheapest
// first: by name in the shareable format (no pickle at all), else one C pickle
// (`_pickle.dumps`), else the Python encoder (`_wire.encode_call`: cloudpickle, `__main__`,
// out-of-band arguments, and a note naming what cannot be pickled).
@preconcurrency import CPythonShim

/// A call encoded for a worker: a `bytes` and the arguments that travel beside it.
struct EncodedCall: ~Copyable {
    let input: OwnedObject
    let extras: [Task.Extra]
}

/// The call encoding of one pool, in the creating interpreter (used with its GIL held; the
/// pool drops it there, with its references).
final class CallEncoder {
    /// `encoder(fn, args, kwargs) -> bytes or (bytes, [bytes or memoryview, ...])`
    /// (`_wire.encode_call`).
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

    /// The call by name (`WireFormat.Call.encodeByName`): when `fn` is one that pickle would
    /// send by reference, not from `__main__`, and every argument is shareable (and none
    /// travels out of band). Else nil, no exception set: pickle takes it.
    private func shareableCall(_ fn: PyObjectPointer, _ args: PyObjectPointer, _ kwargs: PyObjectPointer)
        -> OwnedObject?
    {
        guard ByName.mayTravel(fn), sp_Tuple_CheckExact(args) != 0, sp_Dict_CheckExact(kwargs) != 0,
            let named = namedFunctions.names(of: fn), !WireFormat.hasOutOfBand(args, kwargs)
        else { return nil }
        return WireFormat.Call.encodeByName(
            module: named.module.borrowed, qualname: named.qualname.borrowed, args, kwargs)
    }

    /// The C pickle of the call (`WireFormat.Call.encodePickled`) when no argument travels out
    /// of band; else nil, no exception set, and the Python encoder takes over.
    private func quickEncode(_ fn: PyObjectPointer, _ args: PyObjectPointer, _ kwargs: PyObjectPointer)
        -> OwnedObject?
    {
        guard let dumps, !WireFormat.hasOutOfBand(args, kwargs) else { return nil }
        return WireFormat.Call.encodePickled(fn, args, kwargs, dumps: dumps)
    }

    /// The Python encoder's output: `bytes`, or `(bytes, [bytes or memoryview, ...])` with
    /// out-of-band arguments; a memoryview is lent (its buffer export taken here). Nil when
    /// the shape is wrong (no error set) or a memoryview cannot be lent (error set).
    private func split(_ encoded: PyObjectPointer) -> EncodedCall? {
        guard let (payload, list) = WireFormat.Call.readEncoded(encoded) else { return nil }
        guard let list else { return EncodedCall(input: OwnedObject(retaining: payload), extras: []) }
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
