import Glibc
import ParallelRuntime
import Synchronization
import XCTest

final class VersionedTests: XCTestCase {
    func testEachSetIsANewVersion() {
        let path = Versioned(["/a"])
        XCTAssertEqual(path.version, 0)
        XCTAssertEqual(path.read().value, ["/a"])
        XCTAssertEqual(path.set(["/b", "/a"]), 1)
        XCTAssertEqual(path.set(["/b", "/a"]), 2)  // the same value again is still news
        let (version, value) = path.read()
        XCTAssertEqual(version, 2)
        XCTAssertEqual(value, ["/b", "/a"])
    }

    /// A reader that sees a version reads that value or a later one, never an earlier one:
    /// the value is in place before its version is published.
    func testAReaderNeverSeesAnOlderValueThanTheVersionItChecked() {
        let box = Versioned(0)
        let writes = 20_000
        let done = Atomic<Bool>(false)
        let stale = Atomic<Int>(0)
        let reader = NativeThread(stackSize: 1 << 20) {
            var last = 0
            while !done.load(ordering: .acquiring) {
                let seen = box.version
                guard seen != last else {
                    sched_yield()
                    continue
                }
                let (version, value) = box.read()
                if version < seen || value != version { stale.add(1, ordering: .relaxed) }
                last = version
            }
        }
        for i in 1...writes { box.set(i) }
        done.store(true, ordering: .releasing)
        reader?.join()
        XCTAssertEqual(stale.load(ordering: .relaxed), 0)
        XCTAssertEqual(box.read().version, writes)
    }
}
