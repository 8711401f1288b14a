import Glibc
import Synchronization

/// Why a queue operation did not complete.
public enum QueueFailure: Error, Sendable, Equatable {
    /// `get` without blocking (or past its deadline) found nothing.
    case empty
    /// `put` without blocking (or past its deadline) found the queue at capacity.
    case full
    /// The queue was closed: no more puts; gets fail once the queue is drained.
    case closed
    /// The caller's `keepWaiting` hook said stop (an interrupt or a pending signal).
    case stopped
}

/// A FIFO shared between threads, with optional capacity, deadlines and direct hand-off.
///
/// A thread that must wait parks on its own `Parker`. `put` gives an item straight to the
/// longest-waiting `get` (and `get` takes the item of the longest-waiting `put`), so a woken
/// thread never finds its item stolen and never loops: there is no polling anywhere.
/// A wait that ends without an item calls `keepWaiting(reason)` with the queue unlocked;
/// returning false abandons the wait with `.stopped` and puts back anything handed over.
public final class BlockingQueue<Element: Sendable>: @unchecked Sendable {
    /// A parked caller's place in line. Mutated only under the queue's lock.
    private final class Slot: @unchecked Sendable {
        let parker: Parker
        var item: Element?
        var settled = false
        var closed = false
        init(parker: Parker, item: Element?) {
            self.parker = parker
            self.item = item
        }
    }

    private struct State: ~Copyable {
        var items = RingBuffer<Element>()
        var getters = RingBuffer<Slot>()
        var putters = RingBuffer<Slot>()
        var isClosed = false
    }

    private enum PutOutcome {
        case done
        case wake(Slot)
        case wait(Slot)
        case fail(QueueFailure)
    }
    private enum GetOutcome {
        case item(Element, Slot?)
        case wait(Slot)
        case fail(QueueFailure)
    }
    private enum WaitStep {
        case done
        case fail(QueueFailure)
        case ask
    }

    private let state = Mutex(State())
    /// `items.count`, readable without the lock: lets a spinning getter watch for work cheaply.
    private let visibleCount = Atomic<Int>(0)
    /// The most items the queue holds; 0 means unbounded.
    public let capacity: Int

    public init(capacity: Int = 0) {
        self.capacity = max(0, capacity)
    }

    /// Items in the queue now (not counting puts still waiting for room).
    public var count: Int { state.withLock { $0.items.count } }

    /// Whether `close()` was called.
    public var isClosed: Bool { state.withLock { $0.isClosed } }

    /// Appends `item`, waiting for room until `deadline` when the queue is full.
    /// - Parameters:
    ///   - block: false fails at once with `.full` instead of waiting.
    ///   - deadline: monotonic nanoseconds; nil waits without limit.
    ///   - parker: the calling thread's parker; a fresh one is made when nil.
    ///   - keepWaiting: asked after each wake-up that did not complete the put.
    /// - Throws: `.full`, `.closed` or `.stopped`.
    public func put(
        _ item: Element, block: Bool = true, deadline: UInt64? = nil, parker: Parker? = nil,
        keepWaiting: (WakeReason) -> Bool = { _ in true }
    ) throws(QueueFailure) {
        let myParker = parker ?? Parker()
        let outcome: PutOutcome = state.withLock { state in
            if state.isClosed { return .fail(.closed) }
            if let getter = state.getters.popFirst() {
                getter.item = item
                getter.settled = true
                return .wake(getter)
            }
            if capacity == 0 || state.items.count < capacity {
                state.items.append(item)
                visibleCount.store(state.items.count, ordering: .releasing)
                return .done
            }
            if !block { return .fail(.full) }
            let slot = Slot(parker: myParker, item: item)
            state.putters.append(slot)
            return .wait(slot)
        }
        switch outcome {
        case .done: return
        case .wake(let getter):
            getter.parker.unpark()
            return
        case .fail(let failure): throw failure
        case .wait(let slot):
            try waitUntilSettled(slot, deadline: deadline, keepWaiting: keepWaiting, timeout: QueueFailure.full)
        }
    }

    /// Removes and returns the oldest item, waiting until `deadline` when the queue is empty.
    /// Items put before `close()` can still be taken after it.
    /// - Throws: `.empty`, `.closed` or `.stopped`.
    /// - Parameter spinFor: nanoseconds to watch for an item (yielding the CPU) before parking;
    ///   when items arrive every few microseconds this saves a futex wake-up per item.
    public func get(
        block: Bool = true, deadline: UInt64? = nil, parker: Parker? = nil, spinFor: UInt64 = 0,
        keepWaiting: (WakeReason) -> Bool = { _ in true }
    ) throws(QueueFailure) -> Element {
        let myParker = parker ?? Parker()
        if block && spinFor > 0 && visibleCount.load(ordering: .acquiring) == 0 {
            spin(for: spinFor)
        }
        let outcome: GetOutcome = state.withLock { state in
            if let item = state.items.popFirst() {
                let putter = Self.admitWaitingPutter(&state)
                visibleCount.store(state.items.count, ordering: .releasing)
                return .item(item, putter)
            }
            if state.isClosed { return .fail(.closed) }
            if !block { return .fail(.empty) }
            let slot = Slot(parker: myParker, item: nil)
            state.getters.append(slot)
            return .wait(slot)
        }
        switch outcome {
        case .item(let item, let putter):
            putter?.parker.unpark()
            return item
        case .fail(let failure): throw failure
        case .wait(let slot):
            try waitUntilSettled(slot, deadline: deadline, keepWaiting: keepWaiting, timeout: QueueFailure.empty)
            return slot.item!  // settled under the lock by the putter; only this thread reads it now
        }
    }

    /// Takes every item present, waiting until `deadline` for the first one.
    /// - Throws: as `get`.
    public func getAll(
        deadline: UInt64? = nil, parker: Parker? = nil, spinFor: UInt64 = 0,
        keepWaiting: (WakeReason) -> Bool = { _ in true }
    ) throws(QueueFailure) -> [Element] {
        let first = try get(deadline: deadline, parker: parker, spinFor: spinFor, keepWaiting: keepWaiting)
        var batch = [first]
        var putters: [Slot] = []
        state.withLock { state in
            while let item = state.items.popFirst() {
                batch.append(item)
                if let putter = Self.admitWaitingPutter(&state) { putters.append(putter) }
            }
            visibleCount.store(state.items.count, ordering: .releasing)
        }
        for putter in putters { putter.parker.unpark() }
        return batch
    }

    /// Removes and returns every item without waiting (for discarding pending work).
    public func drain() -> [Element] {
        var putters: [Slot] = []
        let items: [Element] = state.withLock { state in
            var items = Array(state.items)
            state.items.removeAll()
            visibleCount.store(0, ordering: .releasing)
            while let putter = state.putters.popFirst() {
                items.append(putter.item!)
                putter.item = nil
                putter.settled = true
                putters.append(putter)
            }
            return items
        }
        for putter in putters { putter.parker.unpark() }
        return items
    }

    /// Returns `item` to the front of the queue (or straight to the longest-waiting getter):
    /// for a getter that took an item and then learned it must not consume it. Works on a
    /// closed queue too, and may exceed the capacity by this one item.
    public func putBack(_ item: Element) {
        let getter: Slot? = state.withLock { state in
            if let getter = state.getters.popFirst() {
                getter.item = item
                getter.settled = true
                return getter
            }
            state.items.prepend(item)
            visibleCount.store(state.items.count, ordering: .releasing)
            return nil
        }
        getter?.parker.unpark()
    }

    /// Refuses further puts and wakes every waiter: waiting gets and puts fail with `.closed`.
    /// Items already queued stay gettable. Closing twice is harmless.
    public func close() {
        let woken: [Slot] = state.withLock { state in
            state.isClosed = true
            let woken = Array(state.getters) + Array(state.putters)
            state.getters.removeAll()
            state.putters.removeAll()
            // A closed queue keeps no waiting items: the putters' items are not added.
            for slot in woken {
                slot.closed = true
                slot.item = nil
            }
            return woken
        }
        for slot in woken { slot.parker.unpark() }
    }

    // MARK: - Waiting

    /// Yields the CPU until an item is visible or `nanoseconds` have passed.
    private func spin(for nanoseconds: UInt64) {
        let until = MonotonicClock.now() &+ nanoseconds
        repeat {
            sched_yield()
            if visibleCount.load(ordering: .acquiring) > 0 { return }
        } while MonotonicClock.now() < until
    }

    /// Moves the first waiting putter's item into the queue; the caller unparks it.
    /// (The caller updates `visibleCount`.)
    private static func admitWaitingPutter(_ state: inout State) -> Slot? {
        guard let putter = state.putters.popFirst() else { return nil }
        state.items.append(putter.item!)
        putter.item = nil
        putter.settled = true
        return putter
    }

    /// Parks until `slot` is settled or closed, the deadline passes or `keepWaiting` says stop.
    private func waitUntilSettled(
        _ slot: Slot, deadline: UInt64?, keepWaiting: (WakeReason) -> Bool, timeout: QueueFailure
    ) throws(QueueFailure) {
        while true {
            let reason = slot.parker.park(until: deadline)
            let next: WaitStep = state.withLock { state in
                if slot.settled { return .done }
                if slot.closed { return .fail(.closed) }
                if reason == .timedOut {
                    self.withdraw(slot, from: &state)
                    return .fail(timeout)
                }
                return .ask
            }
            switch next {
            case .done: return
            case .fail(let failure): throw failure
            case .ask:
                if keepWaiting(reason) { continue }
                if let failure = abandon(slot) { throw failure }
                return
            }
        }
    }

    /// Leaves the line after `keepWaiting` said stop. Returns nil when the slot was settled
    /// meanwhile and the operation counts as done (a put that went through); a get that was
    /// handed an item gives it back to the front of the queue so nothing is lost.
    private func abandon(_ slot: Slot) -> QueueFailure? {
        var wake: Slot?
        let failure: QueueFailure? = state.withLock { state in
            if slot.closed { return .closed }
            if !slot.settled {
                self.withdraw(slot, from: &state)
                return .stopped
            }
            guard let handed = slot.item else { return nil }  // a settled put: it went in
            slot.item = nil
            if let getter = state.getters.popFirst() {
                getter.item = handed
                getter.settled = true
                wake = getter
            } else {
                state.items.prepend(handed)
                visibleCount.store(state.items.count, ordering: .releasing)
            }
            return .stopped
        }
        wake?.parker.unpark()
        return failure
    }

    private func withdraw(_ slot: Slot, from state: inout State) {
        if !state.getters.removeFirst(where: { $0 === slot }) { state.putters.removeFirst(where: { $0 === slot }) }
    }
}
