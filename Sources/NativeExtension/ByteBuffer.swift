// Bytes owned by Swift, handed between interpreters: an encoded outcome, a message, a queue
// item; and `_native.ResultBuffer`, the Python view of one.
@preconcurrency import CPythonShim

/// A byte buffer owned by Swift, handed between interpreters.
final class ByteBuffer: @unchecked Sendable {
    let bytes: UnsafeMutableRawBufferPointer
    /// The queues whose handles the bytes hold (see `QueuePins`): alive as long as the bytes.
    let pins: QueuePins?

    init(copying source: UnsafeRawBufferPointer, pins: QueuePins? = nil) {
        bytes = .allocate(byteCount: max(source.count, 1), alignment: 16)
        if let base = source.baseAddress, source.count > 0 {
            bytes.baseAddress!.copyMemory(from: base, byteCount: source.count)
        }
        count = source.count
        self.pins = pins
    }

    /// `count` bytes written by `fill`, which gets the start of the (uninitialized) memory.
    init(count: Int, filling fill: (UnsafeMutableRawPointer) -> Void) {
        bytes = .allocate(byteCount: max(count, 1), alignment: 16)
        fill(bytes.baseAddress!)
        self.count = count
        pins = nil
    }

    let count: Int

    var contents: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: bytes.baseAddress, count: count) }

    deinit { bytes.deallocate() }
}

extension ByteBuffer: NativeBacked {}

/// `_native.ResultBuffer`: a read-only buffer over a worker's encoded outcome, so that the
/// caller unpickles it without another copy.
enum ResultBufferType {
    static let getBuffer: @convention(c) (PyObjectPointer?, UnsafeMutablePointer<Py_buffer>?, Int32) -> Int32 = {
        instance, view, flags in
        let buffer = Box.unwrap(instance, as: ByteBuffer.self)
        return PyBuffer_FillInfo(view, instance, buffer.bytes.baseAddress, Py_ssize_t(buffer.count), 1, flags)
    }

    static let length: @convention(c) (PyObjectPointer?) -> Py_ssize_t = { instance in
        Py_ssize_t(Box.unwrap(instance, as: ByteBuffer.self).count)
    }

    nonisolated(unsafe) static let spec = NativeTables.boxedTypeSpec(
        name: "subinterpreter_parallelism._native.ResultBuffer",
        doc: "Read-only bytes of a task's encoded outcome (supports the buffer protocol).",
        methods: [],
        extraSlots: [
            PyType_Slot(slot: sp_slot_bf_getbuffer, pfunc: unsafeBitCast(getBuffer, to: UnsafeMutableRawPointer.self)),
            PyType_Slot(slot: sp_slot_sq_length, pfunc: unsafeBitCast(length, to: UnsafeMutableRawPointer.self)),
        ])
}
