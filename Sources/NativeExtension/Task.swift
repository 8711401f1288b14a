// One call on its way from the caller's interpreter to a worker: the encoded call, which the
// caller's interpreter owns and the worker reads in place, and its out-of-band arguments.
@preconcurrency import CPythonShim
import ParallelRuntime

/// One call travelling through the pool.
final class Task: @unchecked Sendable {
    let id: Int64
    let lifecycle = TaskLifecycle()
    /// The encoded call (a pickle, or a call in the shareable format): the contents of
    /// `inputObject`.
    let input: UnsafeRawBufferPointer
    /// A `bytes` object owned by the submitting interpreter; released there on delivery.
    let inputObject: UnmanagedObject
    /// Arguments sent out of band, in the order the pickle's `OutOfBand` markers name them.
    let extras: [Extra]
    let submittedAt: UInt64
    /// The queues whose handles the pickled call holds (see `QueuePins`): alive as long as the
    /// task's inputs.
    private(set) var pins: QueuePins?
    /// Whether `releaseInputs` ran. Read and written with the caller's GIL held, as every
    /// call of `releaseInputs` is.
    private var released = false

    /// One out-of-band argument.
    enum Extra {
        /// A large `bytes` (owned like `inputObject`): the worker copies it once, straight from
        /// the caller's memory, instead of through the pickle.
        case bytes(UnmanagedObject)
        /// A `memoryview` lent to the worker: no copy (see BufferLend.swift).
        case lent(BufferLend)

        /// Gives the caller's object back (the caller's GIL held): see `releaseInputs`.
        func release() {
            switch self {
            case .bytes(let object): object.release()
            case .lent(let lend): lend.callerDone()
            }
        }
    }

    /// Takes over the encoded `call`'s objects.
    init(_ call: consuming EncodedCall, id: Int64, submittedAt: UInt64, pins: QueuePins? = nil) {
        self.id = id
        extras = call.extras
        inputObject = UnmanagedObject(call.input)
        input = Py.contents(ofBytes: inputObject.object)
        self.submittedAt = submittedAt
        self.pins = pins
    }

    /// Releases the caller-owned objects (with the caller's GIL held); a lent buffer is
    /// released now or, if the task still holds a view of it, when the worker lets it go.
    /// Once the task is done, or as soon as a cancel wins (no worker reads the inputs of a
    /// task that cannot start); a second call does nothing.
    func releaseInputs() {
        guard !released else { return }
        released = true
        pins = nil
        inputObject.release()
        for extra in extras { extra.release() }
    }

    /// Whether `lend` is one of this task's lent arguments.
    func lends(_ lend: BufferLend) -> Bool {
        extras.contains {
            if case .lent(let each) = $0 { return each === lend }
            return false
        }
    }
}
