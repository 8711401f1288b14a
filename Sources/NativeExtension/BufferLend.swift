// Lending a caller's `memoryview` to the worker that runs the task: no copy either way. The
// worker sees a memoryview of a `LentBuffer` (a small exporter made in the worker's
// interpreter) whose buffer is the caller's memory, with the caller's format, shape and
// read-only flag; a task's writes to a writable view are the caller's, as with the stdlib's
// InterpreterPoolExecutor.
//
// Safety: the caller's memory must stay valid as long as any worker view can read it.
//   - At submit the caller's interpreter takes a buffer export of the memoryview
//     (PyObject_GetBuffer): the object behind it can neither free nor resize that memory
//     (a bytearray refuses to resize, `memoryview.release()` raises BufferError).
//   - The export is released (PyBuffer_Release) in the caller's interpreter, once both
//       (a) the caller is done with the task (its outcome delivered, or it never ran), and
//       (b) the worker's `LentBuffer` is gone: every view of it was released, wherever the
//           task kept one (a global, a slice, the returned value) — a view holds a reference to
//           its exporter, so the exporter's deallocation implies that no export is left.
//     Whichever of the two comes second does it: the caller at once, the worker by posting a
//     `lendEnded` event that the caller's completion thread handles (`NativePool.deliver`).
@preconcurrency import CPythonShim
import Glibc
import ParallelRuntime
import Synchronization

/// One `memoryview` argument lent to a worker: the caller's buffer export and what a worker
/// needs to present it again.
final class BufferLend: NativeBacked, @unchecked Sendable {
    /// The caller's export (owned by the caller's interpreter; released there only).
    private let held: UnsafeMutablePointer<Py_buffer>
    let start: UnsafeMutableRawPointer?
    let count: Int
    let readonly: Bool
    let itemSize: Int
    let dimensions: Int
    /// Copies of the caller's layout, owned here so that the worker reads no caller object.
    let format: UnsafeMutablePointer<CChar>
    let shape: UnsafeMutablePointer<Py_ssize_t>?
    let strides: UnsafeMutablePointer<Py_ssize_t>?
    /// Buffers the worker's `LentBuffer` has exported and not yet had released.
    let exports = Atomic<Int>(0)
    /// Who is done with the lend: `workerDone` | `callerDone`; the second one releases it.
    private let done = Atomic<Int>(BufferLend.workerDone)
    private static let workerDone = 1
    private static let callerDone = 2
    /// Where a late `lendEnded` event goes; the pool outlives its lends' events (its event
    /// queue closes only after every worker interpreter, and so every `LentBuffer`, has gone).
    private weak var core: PoolCore?

    /// Takes an export of `view` (a `memoryview`, the caller's GIL held). Returns nil with
    /// BufferError set when the view is not C-contiguous, ValueError when it was released.
    static func take(_ view: PyObjectPointer, for core: PoolCore) -> BufferLend? {
        let held = UnsafeMutablePointer<Py_buffer>.allocate(capacity: 1)
        guard PyObject_GetBuffer(view, held, sp_BUF_FULL_RO) == 0 else {
            held.deallocate()
            return nil
        }
        guard PyBuffer_IsContiguous(held, CChar(UInt8(ascii: "C"))) != 0 else {
            PyBuffer_Release(held)
            held.deallocate()
            PyErr_SetString(PyExc_BufferError, "only a C-contiguous memoryview can be lent to a worker")
            return nil
        }
        return BufferLend(held: held, core: core)
    }

    private init(held: UnsafeMutablePointer<Py_buffer>, core: PoolCore) {
        self.held = held
        self.core = core
        let buffer = held.pointee
        start = buffer.buf
        count = Int(buffer.len)
        readonly = buffer.readonly != 0
        itemSize = Int(buffer.itemsize)
        dimensions = Int(buffer.ndim)
        format = buffer.format.map { strdup($0)! } ?? strdup("B")!
        if dimensions > 0, let callerShape = buffer.shape {
            let shape = UnsafeMutablePointer<Py_ssize_t>.allocate(capacity: dimensions)
            let strides = UnsafeMutablePointer<Py_ssize_t>.allocate(capacity: dimensions)
            shape.initialize(from: callerShape, count: dimensions)
            // C order, computed rather than read: a contiguous view may leave strides out.
            var stride = Py_ssize_t(itemSize)
            for axis in (0..<dimensions).reversed() {
                strides[axis] = stride
                stride *= max(shape[axis], 1)
            }
            self.shape = shape
            self.strides = strides
        } else {
            shape = nil
            strides = nil
        }
        core.heldLends.add(1, ordering: .relaxed)
    }

    deinit {
        free(format)
        shape?.deallocate()
        strides?.deallocate()
        held.deallocate()
    }

    // MARK: - The worker's side

    /// A new memoryview of a new `LentBuffer` of `type` (the worker's GIL held), or nil with an
    /// exception set. From here the lend waits for that exporter's end.
    func view(as type: UnsafeMutablePointer<PyTypeObject>) -> OwnedObject? {
        // Before the exporter exists: its deallocation (even right below) sets the bit again.
        // The caller cannot look at `done` now: it waits for this task's event.
        done.store(0, ordering: .releasing)
        guard let exporter = OwnedObject(Box.wrap(self, as: type)) else {
            done.store(BufferLend.workerDone, ordering: .releasing)
            return nil
        }
        return OwnedObject(PyMemoryView_FromObject(exporter.borrowed))
    }

    /// The worker's `LentBuffer` was deallocated (that interpreter's GIL held, any thread):
    /// nothing in the worker can read the caller's memory any more.
    func releasePythonReferences() {
        let before = done.bitwiseOr(BufferLend.workerDone, ordering: .acquiringAndReleasing).oldValue
        guard before & BufferLend.callerDone != 0 else { return }
        // The caller delivered the task's outcome before the task's views were gone: only
        // its interpreter may release the export.
        core?.post(
            PoolEvent(
                kind: .lendEnded, id: -1, task: nil, payload: .lend(self), text: nil,
                worker: -1, postedAt: MonotonicClock.now()))
    }

    /// Whether `view` (a worker's memoryview of this lend) shows exactly the lent memoryview:
    /// same memory, format, shape, C-contiguous layout and read-only flag.
    func isPresented(as view: Py_buffer) -> Bool {
        var view = view
        guard view.buf == start, Int(view.len) == count, (view.readonly != 0) == readonly,
            Int(view.itemsize) == itemSize, Int(view.ndim) == dimensions,
            let viewFormat = view.format, strcmp(viewFormat, format) == 0,
            PyBuffer_IsContiguous(&view, CChar(UInt8(ascii: "C"))) != 0
        else { return false }
        guard dimensions > 0 else { return true }
        guard let viewShape = view.shape, let shape else { return false }
        return (0..<dimensions).allSatisfy { viewShape[$0] == shape[$0] }
    }

    // MARK: - The caller's side

    /// A new reference to the caller's memoryview that was lent (the caller's GIL held).
    func callerView() -> PyObjectPointer? {
        guard let object = held.pointee.obj else { return Py.fail(PyExc_RuntimeError, "the lent memoryview is gone") }
        return OwnedObject(retaining: object).take()
    }

    /// The caller is done with the task (the caller's GIL held): releases the export now if
    /// the worker is done too; else the worker's `lendEnded` event comes later.
    func callerDone() {
        let before = done.bitwiseOr(BufferLend.callerDone, ordering: .acquiringAndReleasing).oldValue
        if before & BufferLend.workerDone != 0 { release() }
    }

    /// Releases the caller's export (the caller's GIL held), once: both sides are done.
    func release() {
        PyBuffer_Release(held)
        core?.heldLends.subtract(1, ordering: .relaxed)
    }
}

/// `_native.LentBuffer`: the exporter a worker's lent memoryview is made from.
enum LentBufferType {
    static let getBuffer: @convention(c) (PyObjectPointer?, UnsafeMutablePointer<Py_buffer>?, Int32) -> Int32 = {
        instance, view, flags in
        guard let instance, let view else { return -1 }
        let lend = Box.unwrap(instance, as: BufferLend.self)
        view.pointee.obj = nil
        if flags & sp_BUF_WRITABLE != 0 && lend.readonly {
            PyErr_SetString(PyExc_BufferError, "the caller's memoryview is read-only")
            return -1
        }
        view.pointee.buf = lend.start
        view.pointee.len = Py_ssize_t(lend.count)
        view.pointee.readonly = lend.readonly ? 1 : 0
        view.pointee.itemsize = Py_ssize_t(lend.itemSize)
        view.pointee.format = flags & sp_BUF_FORMAT != 0 ? lend.format : nil
        if flags & sp_BUF_ND != 0 {
            view.pointee.ndim = Int32(lend.dimensions)
            view.pointee.shape = lend.shape
        } else {
            // A flat request: the data is C-contiguous, so it reads as bytes.
            view.pointee.ndim = 1
            view.pointee.shape = nil
        }
        view.pointee.strides = flags & sp_BUF_STRIDES == sp_BUF_STRIDES ? lend.strides : nil
        view.pointee.suboffsets = nil
        view.pointee.internal = nil
        if flags & sp_BUF_F_CONTIGUOUS == sp_BUF_F_CONTIGUOUS && flags & sp_BUF_ANY_CONTIGUOUS != sp_BUF_ANY_CONTIGUOUS,
            PyBuffer_IsContiguous(view, CChar(UInt8(ascii: "F"))) == 0
        {
            PyErr_SetString(PyExc_BufferError, "the caller's memoryview is not Fortran-contiguous")
            return -1
        }
        view.pointee.obj = OwnedObject(retaining: instance).take()  // the export's reference
        lend.exports.add(1, ordering: .relaxed)
        return 0
    }

    static let releaseBuffer: @convention(c) (PyObjectPointer?, UnsafeMutablePointer<Py_buffer>?) -> Void = {
        instance, _ in
        Box.unwrap(instance, as: BufferLend.self).exports.subtract(1, ordering: .relaxed)
    }

    nonisolated(unsafe) static let spec = NativeTables.boxedTypeSpec(
        name: "subinterpreter_parallelism._native.LentBuffer",
        doc:
            "The caller's memory, lent to a task: exports the caller's memoryview (format, shape, read-only flag) without a copy.",
        methods: [],
        extraSlots: [
            PyType_Slot(slot: sp_slot_bf_getbuffer, pfunc: unsafeBitCast(getBuffer, to: UnsafeMutableRawPointer.self)),
            PyType_Slot(
                slot: sp_slot_bf_releasebuffer, pfunc: unsafeBitCast(releaseBuffer, to: UnsafeMutableRawPointer.self)),
        ])
}
