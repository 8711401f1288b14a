// Lending a large binary result to the caller: no pickle, one copy. A task that returns
// `bytes`, a `bytearray` or a C-contiguous `memoryview` of at least `WireFormat.outOfBandMinimum`
// bytes keeps its buffer in the worker's interpreter; the caller copies it once into its own
// `bytes` (or `bytearray`) and hands the buffer back, which the worker releases with its own GIL.
// The worker's interpreter may end only once every lent buffer is back.
@preconcurrency import CPythonShim
import ParallelRuntime
import Synchronization

/// A buffer export of a worker interpreter's object (a `bytes`, a `bytearray` no one else
/// holds, a contiguous `memoryview`), lent to the caller until it has copied it.
final class LentBytes: @unchecked Sendable {
    let contents: UnsafeRawBufferPointer
    /// The caller makes a `bytearray` of it (the task returned one).
    let asByteArray: Bool
    private let buffer: UnsafeMutablePointer<Py_buffer>
    private let lender: ResultLending

    /// Takes over `buffer` (filled by PyObject_GetBuffer in `lender`'s interpreter).
    init(_ buffer: UnsafeMutablePointer<Py_buffer>, lender: ResultLending, asByteArray: Bool) {
        self.buffer = buffer
        self.lender = lender
        self.asByteArray = asByteArray
        contents = UnsafeRawBufferPointer(start: buffer.pointee.buf, count: Int(buffer.pointee.len))
        lender.lend()
    }

    deinit { lender.giveBack(buffer) }
}

/// One worker's lent results: how many are out, and those handed back but not yet released.
final class ResultLending: @unchecked Sendable {
    /// The worker's wake-up line: a buffer handed back wakes its wait for a task.
    private let parker: Parker
    /// Results lent to the caller (`LentBytes`) and not yet handed back.
    private let lentCount = Atomic<Int>(0)
    /// Buffer exports handed back, to be released with this interpreter's GIL.
    private let handedBack = Mutex<[SendableBuffer]>([])
    /// Whether `handedBack` holds anything: lets the idle worker's wait check without the lock.
    private let handedBackPending = Atomic<Bool>(false)

    private struct SendableBuffer: @unchecked Sendable { let pointer: UnsafeMutablePointer<Py_buffer> }

    init(parker: Parker) {
        self.parker = parker
    }

    /// A result of this interpreter was lent to the caller (see `LentBytes`).
    func lend() {
        lentCount.add(1, ordering: .acquiringAndReleasing)
    }

    /// The caller is done with a lent object: queue it for release by this interpreter.
    /// Any thread may call this; the worker releases it at once when it waits for a task (the
    /// unpark wakes that wait), else when its current task ends or before it ends.
    func giveBack(_ buffer: UnsafeMutablePointer<Py_buffer>) {
        handedBack.withLock {
            $0.append(SendableBuffer(pointer: buffer))
            handedBackPending.store(true, ordering: .releasing)
        }
        lentCount.subtract(1, ordering: .acquiringAndReleasing)
        parker.unpark()
    }

    /// Whether buffers wait to be released (checked without the GIL).
    var hasHandedBack: Bool { handedBackPending.load(ordering: .acquiring) }

    /// Waits (without the GIL) until the caller has handed back every lent result.
    func waitUntilAllHandedBack() {
        while lentCount.load(ordering: .acquiring) > 0 { _ = parker.park(until: nil) }
    }

    /// Releases the buffers handed back (this worker's GIL held).
    func releaseHandedBack() {
        let buffers = handedBack.withLock { list -> [SendableBuffer] in
            defer {
                list.removeAll()
                handedBackPending.store(false, ordering: .releasing)
            }
            return list
        }
        for buffer in buffers {
            PyBuffer_Release(buffer.pointer)
            buffer.pointer.deallocate()
        }
    }

    /// The payload that lends `value`, a binary result the runner chose to lend (this
    /// interpreter's GIL held): the caller's own lent memoryview when `value` shows it as it
    /// was lent, else a buffer export of `value`. Nil, with an exception set, when no buffer
    /// can be taken.
    func payload(
        lending value: PyObjectPointer, asByteArray: Bool, of task: Task,
        lentBufferType: PyObjectPointer
    ) -> Payload? {
        if let lend = ResultLending.returnedLend(value, of: task, lentBufferType: lentBufferType) {
            return .lentArgument(lend)
        }
        guard let buffer = ResultLending.lendable(value) else { return nil }
        return .lent(LentBytes(buffer, lender: self, asByteArray: asByteArray))
    }

    /// The lend of `task` whose view `value` is, if `value` is a memoryview of it with the
    /// same memory, layout and read-only flag: then the caller's own view is the result.
    private static func returnedLend(
        _ value: PyObjectPointer, of task: Task,
        lentBufferType: PyObjectPointer
    ) -> BufferLend? {
        guard sp_MemoryView_Check(value) != 0,
            let view = sp_MemoryView_GET_BUFFER(value)?.pointee,
            let exporter = view.obj,
            UnsafeMutableRawPointer(Py_TYPE(exporter)) == UnsafeMutableRawPointer(lentBufferType)
        else { return nil }
        let lend = Box.unwrap(exporter, as: BufferLend.self)
        guard task.lends(lend) else { return nil }
        return lend.isPresented(as: view) ? lend : nil
    }

    /// A buffer export of a binary result (this interpreter's GIL held), or nil with an
    /// exception set. A `bytearray` that something besides the runner's outcome still
    /// references (a global, a thread) could change or be resized while the caller copies it:
    /// a snapshot of it is lent instead. One that only the outcome holds is lent as it is: no
    /// copy here.
    private static func lendable(_ value: PyObjectPointer) -> UnsafeMutablePointer<Py_buffer>? {
        var snapshot: OwnedObject?
        if sp_ByteArray_CheckExact(value) != 0 && sp_REFCNT(value) > 1 {
            snapshot = OwnedObject(PyBytes_FromObject(value))
            guard snapshot != nil else { return nil }
        }
        let source = snapshot?.borrowed ?? value
        let buffer = UnsafeMutablePointer<Py_buffer>.allocate(capacity: 1)
        // PyBUF_SIMPLE: C-contiguous bytes, whatever the format (the export holds `source`).
        guard PyObject_GetBuffer(source, buffer, 0) == 0 else {
            buffer.deallocate()
            return nil
        }
        return buffer
    }
}
