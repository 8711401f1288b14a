import Glibc
import ParallelRuntime
import Synchronization
import XCTest

final class AppendOnlyListTests: XCTestCase {
    func testAppendsOnceInOrder() {
        let list = AppendOnlyList<String>()
        XCTAssertEqual(list.count, 0)
        XCTAssertTrue(list.appendIfAbsent("json"))
        XCTAssertTrue(list.appendIfAbsent("email.mime"))
        XCTAssertFalse(list.appendIfAbsent("json"))
        XCTAssertEqual(list.count, 2)
        XCTAssertEqual(list[0], "json")
        XCTAssertEqual(list[1], "email.mime")
        XCTAssertEqual(list.all, ["json", "email.mime"])
    }

    /// Readers that follow the count with their own cursor see every item exactly once, in
    /// order, while writers append concurrently (and some append the same items).
    func testConcurrentWritersAndCursorReaders() {
        let list = AppendOnlyList<Int>()
        let perWriter = 2_000
        let writers = 4
        let done = Atomic<Int>(0)
        let seen = Mutex<[[Int]]>(Array(repeating: [], count: 3))
        let readers = (0..<3).map { reader in
            NativeThread(stackSize: 1 << 20) {
                var cursor = 0
                var mine: [Int] = []
                while true {
                    let finished = done.load(ordering: .acquiring) == writers
                    let count = list.count
                    while cursor < count {
                        mine.append(list[cursor])
                        cursor += 1
                    }
                    if finished && cursor == list.count { break }
                    sched_yield()
                }
                seen.withLock { $0[reader] = mine }
            }!
        }
        let threads = (0..<writers).map { writer in
            NativeThread(stackSize: 1 << 20) {
                // Writers 0 and 1 append the same values: each goes in once.
                let base = writer / 2 * perWriter
                for value in base..<(base + perWriter) { list.appendIfAbsent(value) }
                done.add(1, ordering: .acquiringAndReleasing)
            }!
        }
        for thread in threads + readers { thread.join() }
        let all = list.all
        XCTAssertEqual(all.count, 2 * perWriter)
        XCTAssertEqual(Set(all).count, all.count)
        for mine in seen.withLock({ $0 }) { XCTAssertEqual(mine, all) }
    }
}
