import Synchronization

/// A list that only grows, shared by threads that each read it from their own cursor.
///
/// A pool's "modules to warm" (`preload="auto"`) is one: the caller appends a module name
/// the first time a task of that module is submitted, and every worker imports, when it has
/// nothing else to do, the names past the cursor it keeps for its interpreter. Entries never
/// move or change, so a reader needs only the count, which it reads without the lock.
public final class AppendOnlyList<Element: Hashable & Sendable>: Sendable {
    private struct State: @unchecked Sendable {
        var items: [Element] = []
        var present: Set<Element> = []
    }

    private let state = Mutex(State())
    /// `items.count`, published after the item is in place (a reader that sees the count can
    /// read every item below it).
    private let published = Atomic<Int>(0)

    public init() {}

    /// How many items there are; without taking the lock.
    public var count: Int { published.load(ordering: .acquiring) }

    /// Appends `item` unless it is already in the list. Returns whether it was appended.
    @discardableResult
    public func appendIfAbsent(_ item: Element) -> Bool {
        state.withLock { state in
            guard state.present.insert(item).inserted else { return false }
            state.items.append(item)
            published.store(state.items.count, ordering: .releasing)
            return true
        }
    }

    /// The item at `index`, which must be below a `count` read before.
    public subscript(index: Int) -> Element {
        state.withLock { $0.items[index] }
    }

    /// Every item, in the order they were appended.
    public var all: [Element] { state.withLock { $0.items } }
}
