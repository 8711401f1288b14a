import Glibc
import ParallelRuntime
import Synchronization
import XCTest

final class StartGateTests: XCTestCase {
    func testOpenReleasesEveryWaiter() {
        let gate = StartGate()
        let released = Atomic<Int>(0)
        let waiting = Atomic<Int>(0)
        let threads = (0..<4).map { _ in
            NativeThread(stackSize: 1 << 20) {
                waiting.add(1, ordering: .acquiringAndReleasing)
                if gate.wait(until: nil) { released.add(1, ordering: .acquiringAndReleasing) }
            }!
        }
        // Every thread is at (or about to reach) its wait; none can pass a closed gate.
        while waiting.load(ordering: .acquiring) < 4 { sched_yield() }
        XCTAssertEqual(released.load(ordering: .acquiring), 0)
        XCTAssertFalse(gate.isOpen)
        gate.open()
        for thread in threads { thread.join() }
        XCTAssertEqual(released.load(ordering: .acquiring), 4)
    }

    func testAnOpenGateLetsThroughAtOnceAndOpensOnce() {
        let gate = StartGate()
        gate.open()
        gate.open()
        XCTAssertTrue(gate.isOpen)
        XCTAssertTrue(gate.wait(until: nil))
        XCTAssertTrue(gate.wait(until: MonotonicClock.now()))
    }

    func testThePassedDeadlineEndsTheWaitClosed() {
        let gate = StartGate()
        XCTAssertFalse(gate.wait(until: MonotonicClock.now()))
        XCTAssertFalse(gate.wait(until: MonotonicClock.deadline(afterSeconds: 0.001)))
        gate.open()  // the waiters that timed out left no trace behind
        XCTAssertTrue(gate.wait(until: MonotonicClock.now()))
    }
}
