import Synchronization

/// Where a pool is in its life, as the Python layer sees it (`Pool.state()`), in the style of
/// swift-nio's `NIOThreadPool.State`.
public enum PoolState: Equatable, Sendable {
    /// It takes tasks.
    case running
    /// Closed: it takes no new task; workers finish the queued ones and end their interpreters.
    case shuttingDown
    /// Closed, and every worker thread has ended.
    case shutDown
    /// A worker could not start (or the process forked): it takes no task, whatever else happened.
    case broken(reason: String)
}

/// The one owner of a pool's state. Every change is one atomic bit that is only ever set, so
/// it needs no lock: a forked child, whose parent may have held any lock at the fork, can
/// still mark its inherited pools broken and read their state.
public final class PoolLifecycle: Sendable {
    private let bits = Atomic<UInt8>(0)
    /// The first broken reason, stored before `brokenBit` is set (a reader that sees the bit
    /// finds the reason).
    private let brokenReason = AtomicLazyReference<Reason>()

    private static let closedBit: UInt8 = 1
    private static let endedBit: UInt8 = 2
    private static let brokenBit: UInt8 = 4

    private final class Reason: Sendable {
        let text: String
        init(_ text: String) { self.text = text }
    }

    public init() {}

    public var state: PoolState {
        let now = bits.load(ordering: .acquiring)
        if now & Self.brokenBit != 0 { return .broken(reason: brokenReason.load()?.text ?? "") }
        if now & Self.closedBit == 0 { return .running }
        return now & Self.endedBit != 0 ? .shutDown : .shuttingDown
    }

    /// Whether a new task may be queued: one load, for `submit`.
    public var acceptsTasks: Bool { bits.load(ordering: .acquiring) & (Self.closedBit | Self.brokenBit) == 0 }

    /// The reason, once broken.
    public var brokenBecause: String? {
        bits.load(ordering: .acquiring) & Self.brokenBit != 0 ? brokenReason.load()?.text : nil
    }

    /// running -> shuttingDown (`shutdown()`, or the executor was dropped). Returns whether
    /// this call closed it.
    @discardableResult
    public func close() -> Bool { set(Self.closedBit) }

    /// The last worker thread has ended: shuttingDown -> shutDown once closed (a broken pool
    /// stays broken).
    public func workersEnded() { _ = set(Self.endedBit) }

    /// -> broken, from any state. True only for the first call, whose reason is kept.
    @discardableResult
    public func breakDown(reason: String) -> Bool {
        let mine = Reason(reason)
        guard brokenReason.storeIfNil(mine) === mine else { return false }
        _ = set(Self.brokenBit)
        return true
    }

    @discardableResult
    private func set(_ bit: UInt8) -> Bool {
        bits.bitwiseOr(bit, ordering: .acquiringAndReleasing).oldValue & bit == 0
    }
}
