import Glibc
import ParallelRuntime
import Synchronization
import XCTest

/// Runs `body(i)` on `count` native threads at once and waits for all of them.
func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let threads = (0..<count).map { i in NativeThread(stackSize: 1 << 20) { body(i) }! }
    for thread in threads { thread.join() }
}

final class BlockingQueueTests: XCTestCase {
    func testFIFOAndNonBlockingFailures() throws {
        let queue = BlockingQueue<Int>(capacity: 2)
        try queue.put(1)
        try queue.put(2)
        XCTAssertThrowsError(try queue.put(3, block: false)) { XCTAssertEqual($0 as? QueueFailure, .full) }
        XCTAssertEqual(queue.count, 2)
        XCTAssertEqual(try queue.get(), 1)
        XCTAssertEqual(try queue.get(), 2)
        XCTAssertThrowsError(try queue.get(block: false)) { XCTAssertEqual($0 as? QueueFailure, .empty) }
    }

    func testDeadlinesTimeOut() {
        let queue = BlockingQueue<Int>(capacity: 1)
        let start = MonotonicClock.now()
        XCTAssertThrowsError(try queue.get(deadline: MonotonicClock.deadline(afterSeconds: 0.05))) {
            XCTAssertEqual($0 as? QueueFailure, .empty)
        }
        XCTAssertGreaterThanOrEqual(MonotonicClock.now() - start, 50_000_000)
        try? queue.put(1)
        XCTAssertThrowsError(try queue.put(2, deadline: MonotonicClock.deadline(afterSeconds: 0.02))) {
            XCTAssertEqual($0 as? QueueFailure, .full)
        }
    }

    func testCloseWakesWaitersAndKeepsItems() throws {
        let queue = BlockingQueue<Int>()
        let failures = Mutex<[QueueFailure]>([])
        let waiters = (0..<4).map { _ in
            NativeThread(stackSize: 1 << 20) {
                do throws(QueueFailure) { _ = try queue.get() } catch { failures.withLock { $0.append(error) } }
            }!
        }
        usleep(50_000)
        queue.close()
        for waiter in waiters { waiter.join() }
        XCTAssertEqual(failures.withLock { $0 }, [.closed, .closed, .closed, .closed])
        XCTAssertThrowsError(try queue.put(1)) { XCTAssertEqual($0 as? QueueFailure, .closed) }

        let full = BlockingQueue<Int>(capacity: 1)
        try full.put(7)
        let putFailure = Mutex<QueueFailure?>(nil)
        let putter = NativeThread(stackSize: 1 << 20) {
            do throws(QueueFailure) { try full.put(8) } catch { putFailure.withLock { $0 = error } }
        }!
        usleep(20_000)
        full.close()
        putter.join()
        XCTAssertEqual(putFailure.withLock { $0 }, .closed)
        XCTAssertEqual(try full.get(), 7)  // queued before close: still there
        XCTAssertThrowsError(try full.get()) { XCTAssertEqual($0 as? QueueFailure, .closed) }
    }

    /// Many producers and consumers through a small queue: every item exactly once, each
    /// producer's items in order, and nobody stuck (a lost wake-up would hang here).
    func testProducerConsumerWithPoisonPills() {
        let producers = 4, consumers = 4, perProducer = 25_000
        let queue = BlockingQueue<Int>(capacity: 16)
        let received = Mutex<[[Int]]>(Array(repeating: [], count: consumers))
        let finishedProducers = Atomic<Int>(0)
        onThreads(producers + consumers) { i in
            if i < producers {
                for n in 0..<perProducer { try! queue.put(i * 1_000_000 + n) }
                if finishedProducers.add(1, ordering: .acquiringAndReleasing).newValue == producers {
                    for _ in 0..<consumers { try! queue.put(-1) }
                }
            } else {
                var mine: [Int] = []
                while true {
                    let item = try! queue.get()
                    if item < 0 { break }
                    mine.append(item)
                }
                received.withLock { $0[i - producers] = mine }
            }
        }
        let all = received.withLock { $0 }
        XCTAssertEqual(all.map(\.count).reduce(0, +), producers * perProducer)
        XCTAssertEqual(Set(all.joined()).count, producers * perProducer)
        for consumer in all {
            for producer in 0..<producers {
                let mine = consumer.filter { $0 / 1_000_000 == producer }
                XCTAssertEqual(mine, mine.sorted(), "order of producer \(producer) broken")
            }
        }
    }

    /// A getter told to stop while items race in must not swallow an item.
    func testStoppedWaitersNeverLoseItems() {
        let queue = BlockingQueue<Int>()
        let rounds = 2_000
        let got = Atomic<Int>(0)
        for round in 0..<rounds {
            let stop = Atomic<Bool>(false)
            let parker = Parker()
            let getter = NativeThread(stackSize: 1 << 20) {
                if (try? queue.get(parker: parker, keepWaiting: { _ in !stop.load(ordering: .acquiring) })) != nil {
                    got.add(1, ordering: .relaxed)
                }
            }!
            if round % 2 == 0 { usleep(10) }
            try! queue.put(round)
            stop.store(true, ordering: .releasing)
            parker.unpark()
            getter.join()
        }
        let left = queue.drain().count
        XCTAssertEqual(got.load(ordering: .relaxed) + left, rounds)
    }

    func testGetAllTakesEverything() throws {
        let queue = BlockingQueue<Int>()
        for i in 0..<10 { try queue.put(i) }
        XCTAssertEqual(try queue.getAll(), Array(0..<10))
        XCTAssertEqual(queue.count, 0)
    }
}

final class ParkerTests: XCTestCase {
    func testUnparkBeforeParkIsNotLost() {
        let parker = Parker()
        parker.unpark()
        XCTAssertEqual(parker.park(until: MonotonicClock.deadline(afterSeconds: 5)), .unparked)
    }

    func testTimeout() {
        let parker = Parker()
        XCTAssertEqual(parker.park(until: MonotonicClock.deadline(afterSeconds: 0.01)), .timedOut)
    }

    func testWakeFromAnotherThread() {
        let parker = Parker()
        let waker = NativeThread(stackSize: 1 << 20) { usleep(20_000); parker.unpark() }!
        XCTAssertEqual(parker.park(until: nil), .unparked)
        waker.join()
    }
}

final class TaskLifecycleTests: XCTestCase {
    func testStartAndCancelRaceHasOneWinner() {
        for _ in 0..<2_000 {
            let lifecycle = TaskLifecycle()
            let wins = Atomic<Int>(0)
            onThreads(2) { i in
                let won = i == 0 ? lifecycle.start() : lifecycle.cancelPending()
                if won { wins.add(1, ordering: .relaxed) }
            }
            XCTAssertEqual(wins.load(ordering: .relaxed), 1)
        }
    }

    func testInterruptOnlyWhileRunning() {
        let lifecycle = TaskLifecycle()
        XCTAssertFalse(lifecycle.requestInterrupt())
        XCTAssertTrue(lifecycle.start())
        XCTAssertTrue(lifecycle.requestInterrupt())
        XCTAssertFalse(lifecycle.requestInterrupt())
        XCTAssertTrue(lifecycle.finish())
        XCTAssertEqual(lifecycle.current, .finished)
        XCTAssertFalse(lifecycle.cancelPending())
    }
}

final class StepStatisticsTests: XCTestCase {
    func testConcurrentAddsAreCounted() {
        let stats = StepStatistics()
        onThreads(8) { _ in
            for _ in 0..<10_000 { stats.add(.call, nanoseconds: 2) }
        }
        let snapshot = stats.snapshot()
        XCTAssertEqual(snapshot.counts[Step.call.rawValue], 80_000)
        XCTAssertEqual(snapshot.nanoseconds[Step.call.rawValue], 160_000)
    }

    func testStartupsAreKeptPerWorkerAndAddedToTheirStep() {
        let stats = StepStatistics()
        let start = MonotonicClock.now()
        let created = start + 1_000
        while MonotonicClock.now() <= created {}  // "now" (ready) comes after `created`
        stats.addStartup(worker: 1, start: start, created: created)
        stats.addStartup(worker: 1, start: start, created: created)  // a recycled interpreter replaces it
        let snapshot = stats.snapshot()
        XCTAssertEqual(Array(snapshot.startups.keys), [1])
        let startup = snapshot.startups[1]!
        XCTAssertEqual(startup.create, 1_000)
        XCTAssertEqual(startup.startedAfter, start - stats.createdAt)
        XCTAssertEqual(startup.readyAfter, startup.startedAfter + startup.create + startup.bootstrap)
        XCTAssertEqual(snapshot.counts[Step.interpreterStartup.rawValue], 2)
    }
}
