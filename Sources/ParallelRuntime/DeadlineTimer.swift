import Glibc
import Synchronization

/// One thread that calls `expire(item)` for each item whose deadline has passed, earliest first.
///
/// Items are held weakly: an item that is gone by its deadline is simply dropped, so a finished
/// task does not stay alive until its deadline. The thread starts with the first `add` and ends
/// at `stop()`; between deadlines it parks on its own `Parker` (no polling).
public final class DeadlineTimer<Item: AnyObject & Sendable>: @unchecked Sendable {
    private struct Entry {
        let deadline: UInt64
        let sequence: UInt64
        weak var item: Item?

        func isEarlier(than other: Entry) -> Bool {
            (deadline, sequence) < (other.deadline, other.sequence)
        }
    }

    private struct State {
        /// A binary min-heap on (deadline, sequence).
        var heap: [Entry] = []
        var nextSequence: UInt64 = 0
        var thread: NativeThread?
        var stopped = false
        /// The heap size at which `add` next drops entries whose item is gone.
        var compactAt = DeadlineTimer.minimumCompaction
    }

    /// Below this many entries, gone items are left for the thread to drop at their deadline.
    public static var minimumCompaction: Int { 64 }

    private let state = Mutex(State())
    private let parker = Parker()
    private let name: String
    private let expire: @Sendable (Item) -> Void

    /// - Parameters:
    ///   - name: the OS name of the timer thread.
    ///   - expire: called on the timer thread, without any lock held, once per expired item.
    public init(name: String, expire: @escaping @Sendable (Item) -> Void) {
        self.name = name
        self.expire = expire
    }

    /// Calls `expire(item)` at the monotonic `deadline` (nanoseconds), unless the item is gone
    /// by then or the timer was stopped. Returns false when the timer is stopped or its thread
    /// could not start.
    @discardableResult
    public func add(_ item: Item, deadline: UInt64) -> Bool {
        let (added, wake) = state.withLock { state -> (Bool, Bool) in
            guard !state.stopped else { return (false, false) }
            if state.thread == nil {
                state.thread = NativeThread(stackSize: 256 << 10, name: name) { [self] in run() }
                if state.thread == nil { return (false, false) }
            }
            if state.heap.count >= state.compactAt {
                // Finished tasks must not cost a heap entry until their deadline (task_timeout=3600
                // would keep an hour of them): drop the gone ones once they may be half of the
                // heap. The next compaction waits until the heap doubles again, so this costs
                // O(1) per `add`, amortized. A sorted array is a valid min-heap.
                state.heap.removeAll { $0.item == nil }
                state.heap.sort { $0.isEarlier(than: $1) }
                state.compactAt = max(Self.minimumCompaction, 2 * state.heap.count)
            }
            let entry = Entry(deadline: deadline, sequence: state.nextSequence, item: item)
            state.nextSequence += 1
            Self.push(entry, onto: &state.heap)
            // Only a new earliest deadline changes how long the thread must sleep.
            return (true, state.heap[0].sequence == entry.sequence)
        }
        if wake { parker.unpark() }
        return added
    }

    /// Items waiting for their deadline (including ones already gone, not yet dropped).
    public var count: Int { state.withLock { $0.heap.count } }

    /// Moves the deadlines of the items waiting now `nanoseconds` earlier, as if that much time
    /// had passed for them: those it reaches expire at once, on the timer thread. Items added
    /// later keep their own deadlines. For tests, so that a deadline can pass without the
    /// test waiting for it (or betting, with a short one, that a loaded machine meets it).
    /// Returns how many items were waiting.
    @discardableResult
    public func fastForward(byNanoseconds nanoseconds: UInt64) -> Int {
        let waiting = state.withLock { state -> Int in
            for index in state.heap.indices {
                let entry = state.heap[index]
                let deadline = entry.deadline > nanoseconds ? entry.deadline - nanoseconds : 0
                state.heap[index] = Entry(deadline: deadline, sequence: entry.sequence, item: entry.item)
            }
            // Deadlines clamped at 0 may now tie out of sequence order: sorted is a valid heap.
            state.heap.sort { $0.isEarlier(than: $1) }
            return state.heap.count
        }
        parker.unpark()
        return waiting
    }

    /// Drops every pending item, ends the thread and waits for it. Later `add`s are refused.
    public func stop() {
        let thread = state.withLock { state -> NativeThread? in
            state.stopped = true
            state.heap.removeAll()
            return state.thread
        }
        parker.unpark()
        thread?.join()
    }

    private func run() {
        while true {
            let step = state.withLock { state -> (due: [Item], sleepUntil: UInt64?, stop: Bool) in
                if state.stopped { return ([], nil, true) }
                let now = MonotonicClock.now()
                var due: [Item] = []
                while let first = state.heap.first, first.deadline <= now {
                    if let item = Self.pop(from: &state.heap).item { due.append(item) }
                }
                return (due, state.heap.first?.deadline, false)
            }
            if step.stop { return }
            for item in step.due { expire(item) }
            if step.due.isEmpty { _ = parker.park(until: step.sleepUntil) }
        }
    }

    private static func push(_ entry: Entry, onto heap: inout [Entry]) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].isEarlier(than: heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private static func pop(from heap: inout [Entry]) -> Entry {
        heap.swapAt(0, heap.count - 1)
        let first = heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && heap[left].isEarlier(than: heap[smallest]) { smallest = left }
            if right < heap.count && heap[right].isEarlier(than: heap[smallest]) { smallest = right }
            if smallest == parent { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return first
    }
}
