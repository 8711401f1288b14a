// What travels back from a worker to the submitting interpreter: one event per task (its
// outcome), and messages, failures and lends besides.
import ParallelRuntime

/// The tags of `message` events (`_native.post_message(tag, data)`), written here once and
/// exported as `_native.TAG_*`: the Python side reads them from there. Far from small
/// numbers, so that other features can pick tags of their own without clashing.
enum MessageTag: Int64, CaseIterable {
    /// Forwarded output and records (forwarding.py).
    case stdout = 0x4657_0001
    case stderr = 0x4657_0002
    case log = 0x4657_0003
    case warning = 0x4657_0004
    /// A worker's verdict on `preload` (preload.py): `b"ok"` or the failure.
    case preload = 0x4657_0005
    /// A module that `preload="auto"` could not warm, posted by the Swift worker once per
    /// module and pool: `b"module\ntext"`.
    case warmFailed = 0x4657_0006
    /// Bytes a task wrote to `sys.stdout.buffer`/`sys.stderr.buffer` (the streams' `buffer`).
    case stdoutBytes = 0x4657_0007
    case stderrBytes = 0x4657_0008

    /// The name `_native` exports it under.
    var exportedName: String {
        switch self {
        case .stdout: "TAG_STDOUT"
        case .stderr: "TAG_STDERR"
        case .log: "TAG_LOG"
        case .warning: "TAG_WARNING"
        case .preload: "TAG_PRELOAD"
        case .warmFailed: "TAG_WARM_FAILED"
        case .stdoutBytes: "TAG_STDOUT_BYTES"
        case .stderrBytes: "TAG_STDERR_BYTES"
        }
    }
}

/// Something a worker tells the submitting interpreter.
struct PoolEvent: Sendable {
    /// The kinds, as the Python layer sees them (`kind` argument of the delivery callback).
    enum Kind: Int64, Sendable {
        /// The task ran; the payload is the pickled outcome.
        case completed = 0
        /// The task was cancelled before a worker started it.
        case skipped = 1
        /// The task was interrupted while it ran.
        case interrupted = 2
        /// A worker could not start (interpreter, imports or initializer); payload is text.
        case workerFailed = 3
        /// A message a task posted with `_native.post_message`; `id` is its tag.
        case message = 4
        /// The runner itself failed for a task; payload is text.
        case internalError = 5
        /// The task's `task_timeout` expired; it was cancelled or is being interrupted (its
        /// own event follows). No payload.
        case timedOut = 6
        /// A task's views of a lent `memoryview` are all gone, after its outcome was delivered:
        /// the caller releases the buffer (payload `.lend`). Handled by the pool itself.
        case lendEnded = 7
        /// Made by the completion thread, never posted: the caller could not take the task's
        /// outcome (memory ran out building it); the payload is the exception to fail it with.
        case deliveryFailed = 8
    }

    let kind: Kind
    let id: Int64
    let task: Task?
    let payload: Payload?
    let text: String?
    let worker: Int
    let postedAt: UInt64
}

/// A task's outcome (or a message) on its way to the caller.
enum Payload: Sendable {
    /// Encoded bytes (a pickle, an encoded exception, a message) copied into Swift memory.
    case encoded(ByteBuffer)
    /// A large binary result still owned by the worker's interpreter: the caller copies it
    /// once into its own `bytes` or `bytearray`, then hands it back.
    case lent(LentBytes)
    /// A `lendEnded` event's lend: the caller releases its buffer export.
    case lend(BufferLend)
    /// The task returned the memoryview it was lent, as it was lent: the caller's own
    /// memoryview is the result, no copy (as with threads).
    case lentArgument(BufferLend)
}
