/// A double-ended FIFO in one growable circular array: what `BlockingQueue` needs of a deque
/// (append and prepend, pop from the front, remove a waiter from the middle), and no more.
///
/// It replaces swift-collections' `Deque`, the package's only dependency: without it a build
/// needs no network and no package resolution (an sdist installs offline), and the build is
/// shorter. Not thread-safe: its owner keeps it behind a lock.
public struct RingBuffer<Element>: Sequence {
    /// Slots in ring order from `head`; nil marks an empty slot (so removed elements are
    /// released at once rather than when their slot is reused).
    private var slots: [Element?]
    /// Index in `slots` of the first element.
    private var head = 0
    /// Number of elements.
    public private(set) var count = 0

    public init() { slots = [] }

    public var isEmpty: Bool { count == 0 }

    /// Adds `element` at the back.
    public mutating func append(_ element: Element) {
        growIfFull()
        slots[physical(count)] = element
        count += 1
    }

    /// Adds `element` at the front.
    public mutating func prepend(_ element: Element) {
        growIfFull()
        head = head == 0 ? slots.count - 1 : head - 1
        slots[head] = element
        count += 1
    }

    /// Removes and returns the first element, or nil when empty.
    public mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        let element = slots[head].take()
        head = head + 1 == slots.count ? 0 : head + 1
        count -= 1
        return element
    }

    /// Removes the first element that matches, keeping the others' order; returns whether
    /// one was found. O(count).
    @discardableResult
    public mutating func removeFirst(where matches: (Element) throws -> Bool) rethrows -> Bool {
        var offset = 0
        while offset < count {
            if try matches(slots[physical(offset)]!) { break }
            offset += 1
        }
        guard offset < count else { return false }
        // Close the gap from the back: each later element moves one place forward.
        var at = offset
        while at + 1 < count {
            slots[physical(at)] = slots[physical(at + 1)].take()
            at += 1
        }
        slots[physical(count - 1)] = nil
        count -= 1
        return true
    }

    /// Removes every element, keeping the capacity.
    public mutating func removeAll() {
        for offset in 0..<count { slots[physical(offset)] = nil }
        head = 0
        count = 0
    }

    public func makeIterator() -> Iterator { Iterator(buffer: self) }

    public var underestimatedCount: Int { count }

    /// Front to back.
    public struct Iterator: IteratorProtocol {
        let buffer: RingBuffer
        var offset = 0

        public mutating func next() -> Element? {
            guard offset < buffer.count else { return nil }
            defer { offset += 1 }
            return buffer.slots[buffer.physical(offset)]!
        }
    }

    // MARK: - Storage

    /// The index in `slots` of the element `offset` places from the front.
    @inline(__always)
    private func physical(_ offset: Int) -> Int {
        let index = head + offset
        return index < slots.count ? index : index - slots.count
    }

    /// Doubles the storage when every slot is taken, laying the elements out from index 0.
    private mutating func growIfFull() {
        guard count == slots.count else { return }
        var grown = [Element?](repeating: nil, count: Swift.max(16, slots.count * 2))
        for offset in 0..<count { grown[offset] = slots[physical(offset)].take() }
        slots = grown
        head = 0
    }
}
