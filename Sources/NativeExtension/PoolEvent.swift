// What travels back from a worker to the submitting interpreter: one event per task (its
// outcome), and messages, failures and lends besides.
import ParallelRuntime

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

