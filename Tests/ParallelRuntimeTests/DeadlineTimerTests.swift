import Glibc
import ParallelRuntime
import Synchronization
import XCTest

private final class Item: Sendable {
    let name: String
    init(_ name: String) { self.name = name }
}

final class DeadlineTimerTests: XCTestCase {
    func testExpiresInDeadlineOrderNotInAddOrder() {
        let expired = Mutex<[String]>([])
        let done = Parker()
        let timer = DeadlineTimer<Item>(name: "test-timer") { item in
            let count = expired.withLock { list -> Int in
                list.append(item.name)
                return list.count
            }
            if count == 3 { done.unpark() }
        }
        let items = [Item("late"), Item("early"), Item("middle")]
        let now = MonotonicClock.now()
        XCTAssertTrue(timer.add(items[0], deadline: now + 60_000_000))
        XCTAssertTrue(timer.add(items[1], deadline: now + 20_000_000))
        XCTAssertTrue(timer.add(items[2], deadline: now + 40_000_000))
        XCTAssertEqual(done.park(until: MonotonicClock.deadline(afterSeconds: 30)), .unparked)
        XCTAssertEqual(expired.withLock { $0 }, ["early", "middle", "late"])
        XCTAssertGreaterThanOrEqual(MonotonicClock.now() - now, 60_000_000)
        timer.stop()
        withExtendedLifetime(items) {}
    }

    func testAnItemThatIsGoneIsDropped() {
        let expired = Mutex<[String]>([])
        let done = Parker()
        let timer = DeadlineTimer<Item>(name: "test-timer") { item in
            expired.withLock { $0.append(item.name) }
            done.unpark()
        }
        let kept = Item("kept")
        do {
            let gone = Item("gone")
            timer.add(gone, deadline: MonotonicClock.now() + 10_000_000)
        }
        timer.add(kept, deadline: MonotonicClock.now() + 30_000_000)
        XCTAssertEqual(done.park(until: MonotonicClock.deadline(afterSeconds: 30)), .unparked)
        XCTAssertEqual(expired.withLock { $0 }, ["kept"])
        timer.stop()
    }

    func testStopEndsTheThreadAndRefusesLaterItems() {
        let calls = Atomic<Int>(0)
        let timer = DeadlineTimer<Item>(name: "test-timer") { _ in calls.add(1, ordering: .relaxed) }
        let item = Item("far")
        XCTAssertTrue(timer.add(item, deadline: MonotonicClock.now() + 3_600_000_000_000))
        timer.stop()  // returns although the deadline is an hour away
        XCTAssertEqual(timer.count, 0)
        XCTAssertFalse(timer.add(item, deadline: MonotonicClock.now()))
        XCTAssertEqual(calls.load(ordering: .relaxed), 0)
    }

    func testItemsThatAreGoneDoNotWaitForTheirDeadlineInTheHeap() {
        // task_timeout=3600 used to keep an entry per finished task for an hour.
        let timer = DeadlineTimer<Item>(name: "test-timer") { _ in }
        let kept = Item("kept")
        let far = MonotonicClock.now() + 3_600_000_000_000
        XCTAssertTrue(timer.add(kept, deadline: far))
        for i in 0..<10_000 {
            let gone = Item("gone \(i)")
            XCTAssertTrue(timer.add(gone, deadline: far))
        }
        XCTAssertLessThanOrEqual(timer.count, 2 * DeadlineTimer<Item>.minimumCompaction)
        timer.stop()
        withExtendedLifetime(kept) {}
    }

    func testFastForwardExpiresTheItemsItReachesAndLeavesLaterOnes() {
        let expired = Mutex<[String]>([])
        let done = Parker()
        let timer = DeadlineTimer<Item>(name: "test-timer") { item in
            let count = expired.withLock { list -> Int in
                list.append(item.name)
                return list.count
            }
            if count == 2 { done.unpark() }
        }
        let hour: UInt64 = 3_600_000_000_000
        let now = MonotonicClock.now()
        let items = [Item("in an hour"), Item("in ten hours"), Item("in two hours"), Item("added later")]
        XCTAssertTrue(timer.add(items[0], deadline: now + hour))
        XCTAssertTrue(timer.add(items[1], deadline: now + 10 * hour))
        XCTAssertTrue(timer.add(items[2], deadline: now + 2 * hour))
        XCTAssertEqual(timer.fastForward(byNanoseconds: 3 * hour), 3)
        XCTAssertTrue(timer.add(items[3], deadline: now + hour))  // after: not moved
        XCTAssertEqual(done.park(until: MonotonicClock.deadline(afterSeconds: 30)), .unparked)
        XCTAssertEqual(expired.withLock { $0 }, ["in an hour", "in two hours"])
        XCTAssertEqual(timer.count, 2)  // ten hours, now seven; and the one added later
        timer.stop()
        XCTAssertEqual(expired.withLock { $0 }, ["in an hour", "in two hours"])
        withExtendedLifetime(items) {}
    }
}
