import Glibc
import ParallelRuntime
import Synchronization
import XCTest

/// The runtime under the load a pool puts on it (see the picture in NativeExtension/PoolCore.swift):
/// submitters put into an unbounded task queue, workers take with spin-then-park, post into
/// an event queue that the last worker closes, and one completion thread takes batches.
/// Every test counts items: anything lost or duplicated, or a wake-up that never comes
/// (which would hang; the parks here have deadlines and fail instead), fails it.
final class PoolPathStressTests: XCTestCase {
    /// Runs the whole pool path with `submitters` x `perSubmitter` items; when `closeEarly`,
    /// the task queue is closed while submitters are still putting.
    private func runPoolPath(submitters: Int, perSubmitter: Int, workers: Int, closeEarly: Bool)
        -> (accepted: Set<Int>, delivered: [Int], refused: Int)
    {
        let tasks = BlockingQueue<Int>()
        let events = BlockingQueue<Int>()
        let liveWorkers = Atomic<Int>(workers)
        let accepted = Mutex<Set<Int>>([])
        let refused = Atomic<Int>(0)
        let delivered = Mutex<[Int]>([])
        let submitted = Atomic<Int>(0)

        let completion = NativeThread(stackSize: 1 << 20) {
            let parker = Parker()
            var mine: [Int] = []
            while let batch = try? events.getAll(parker: parker, spinFor: 50_000) {
                mine.append(contentsOf: batch)
            }
            delivered.withLock { $0 = mine }
        }!
        let workerThreads = (0..<workers).map { _ in
            NativeThread(stackSize: 1 << 20) {
                let parker = Parker()
                while let item = try? tasks.get(parker: parker, spinFor: 50_000) {
                    try! events.put(item)  // open until the last worker leaves
                }
                if liveWorkers.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                    events.close()
                }
            }!
        }
        let submitterThreads = (0..<submitters).map { s in
            NativeThread(stackSize: 1 << 20) {
                var mine: [Int] = []
                for n in 0..<perSubmitter {
                    let item = s * 10_000_000 + n
                    do throws(QueueFailure) {
                        try tasks.put(item)
                        mine.append(item)
                    } catch {
                        // Only `.closed` can happen here; anything else leaves the count short.
                        if error == .closed { refused.add(perSubmitter - n, ordering: .relaxed) }
                        break
                    }
                    submitted.add(1, ordering: .relaxed)
                }
                accepted.withLock { $0.formUnion(mine) }
            }!
        }
        if closeEarly {
            while submitted.load(ordering: .relaxed) < submitters * perSubmitter / 3 { sched_yield() }
            tasks.close()
        }
        for thread in submitterThreads { thread.join() }
        tasks.close()
        for thread in workerThreads { thread.join() }
        completion.join()
        return (accepted.withLock { $0 }, delivered.withLock { $0 }, refused.load(ordering: .relaxed))
    }

    func testPoolPathDeliversEveryItemExactlyOnce() {
        let (accepted, delivered, refused) = runPoolPath(submitters: 4, perSubmitter: 5_000, workers: 3,
                                                         closeEarly: false)
        XCTAssertEqual(refused, 0)
        XCTAssertEqual(accepted.count, 20_000)
        XCTAssertEqual(delivered.count, 20_000, "items lost or duplicated")
        XCTAssertEqual(Set(delivered), accepted)
    }

    /// Closing the task queue while submitters put: each put either throws `.closed` or its
    /// item is delivered (items queued before the close are still taken by the workers).
    func testCloseWhileSubmittingLosesNoAcceptedItem() {
        for _ in 0..<3 {
            let (accepted, delivered, refused) = runPoolPath(submitters: 4, perSubmitter: 5_000, workers: 3,
                                                             closeEarly: true)
            XCTAssertEqual(accepted.count + refused, 20_000)
            XCTAssertEqual(delivered.count, accepted.count, "items lost or duplicated")
            XCTAssertEqual(Set(delivered), accepted)
        }
    }

    /// A worker that gives up waiting at its deadline while an item arrives must either take
    /// the item or leave it in the queue.
    func testDeadlineRacingAPutNeverLosesTheItem() {
        let queue = BlockingQueue<Int>()
        let got = Atomic<Int>(0)
        let rounds = 3_000
        for round in 0..<rounds {
            let getter = NativeThread(stackSize: 1 << 20) {
                if (try? queue.get(deadline: MonotonicClock.now() &+ UInt64(round % 7) * 1_000)) != nil {
                    got.add(1, ordering: .relaxed)
                }
            }!
            if round % 3 == 0 { usleep(1) }
            try! queue.put(round)
            getter.join()
        }
        XCTAssertEqual(got.load(ordering: .relaxed) + queue.drain().count, rounds)
    }

    /// A bounded queue whose putters give up (`keepWaiting` false) while a getter takes:
    /// every put either went in (and comes out) or threw `.stopped`; nothing in between.
    func testAbandonedPutsAreNeitherLostNorDuplicated() {
        var abandonedInAll = 0
        for _ in 0..<20 {
            let queue = BlockingQueue<Int>(capacity: 1)
            let stop = Atomic<Bool>(false)
            let wentIn = Mutex<[Int]>([])
            let stopped = Atomic<Int>(0)
            let unexpected = Atomic<Int>(0)
            let taken = Mutex<[Int]>([])
            let parkers = (0..<4).map { _ in Parker() }
            let putters = (0..<4).map { p in
                NativeThread(stackSize: 1 << 20) {
                    for n in 0..<200 {
                        let item = p * 1_000 + n
                        do throws(QueueFailure) {
                            try queue.put(item, parker: parkers[p], keepWaiting: { _ in !stop.load(ordering: .acquiring) })
                            wentIn.withLock { $0.append(item) }
                        } catch {
                            if error == .stopped { stopped.add(1, ordering: .relaxed) } else { unexpected.add(1, ordering: .relaxed) }
                        }
                    }
                }!
            }
            let getter = NativeThread(stackSize: 1 << 20) {
                for _ in 0..<150 {
                    guard let item = try? queue.get(deadline: MonotonicClock.deadline(afterSeconds: 0.5)) else { break }
                    taken.withLock { $0.append(item) }
                }
            }!
            getter.join()
            // Tell the putters to give up, and wake them as an interrupt would (without
            // settling their slot), while still taking an item now and then.
            stop.store(true, ordering: .releasing)
            var spins = 0
            while stopped.load(ordering: .relaxed) + unexpected.load(ordering: .relaxed) + wentIn.withLock({ $0.count }) < 800 {
                for parker in parkers { parker.unpark() }
                spins += 1
                if spins % 8 == 0, let item = try? queue.get(block: false) { taken.withLock { $0.append(item) } }
                usleep(50)
            }
            for putter in putters { putter.join() }
            let inItems = wentIn.withLock { $0 }
            let out = taken.withLock { $0 } + queue.drain()
            XCTAssertEqual(unexpected.load(ordering: .relaxed), 0)
            XCTAssertEqual(inItems.count + stopped.load(ordering: .relaxed), 800)
            XCTAssertEqual(out.sorted(), inItems.sorted(), "a put counted as done but its item never came out, or one twice")
            abandonedInAll += stopped.load(ordering: .relaxed)
        }
        XCTAssertGreaterThan(abandonedInAll, 0, "no put was ever abandoned: the test proves little")
    }

    /// Two threads hand a token back and forth through their parkers 50,000 times. A lost
    /// unpark would leave one of them parked until the deadline.
    func testParkerPingPongLosesNoWakeUp() {
        let ping = Parker(), pong = Parker()
        let rounds = 50_000
        let timeouts = Atomic<Int>(0)
        let other = NativeThread(stackSize: 1 << 20) {
            for _ in 0..<rounds {
                if ping.park(until: MonotonicClock.deadline(afterSeconds: 10)) != .unparked {
                    timeouts.add(1, ordering: .relaxed)
                }
                pong.unpark()
            }
        }!
        for _ in 0..<rounds {
            ping.unpark()
            if pong.park(until: MonotonicClock.deadline(afterSeconds: 10)) != .unparked {
                timeouts.add(1, ordering: .relaxed)
            }
        }
        other.join()
        XCTAssertEqual(timeouts.load(ordering: .relaxed), 0)
    }

    /// A cancel or an interrupt racing a worker that takes, runs and finishes a task: exactly
    /// one of cancel/start wins, and the worker learns of an interrupt iff one was granted.
    func testCancelInterruptAndFinishAgreeUnderRaces() {
        var granted = 0, cancelled = 0
        for round in 0..<3_000 {
            let lifecycle = TaskLifecycle()
            let started = Atomic<Bool>(false)
            let workerSawInterrupt = Atomic<Bool>(false)
            let cancelWon = Atomic<Bool>(false)
            let interruptGranted = Atomic<Bool>(false)
            // Most rounds are free races. On a loaded machine one thread may always run first,
            // so two rounds in eight are ordered by a handshake, and both outcomes surely happen:
            // round % 8 == 0 starts only after the cancel was tried (the cancel wins), and
            // round % 8 == 1 finishes only after the interrupt was requested (it is granted).
            let cancelTried = Atomic<Bool>(false)
            let interruptTried = Atomic<Bool>(false)
            onThreads(2) { i in
                if i == 0 {
                    if round % 8 == 0 { while !cancelTried.load(ordering: .acquiring) { sched_yield() } }
                    guard lifecycle.start() else { return }
                    started.store(true, ordering: .releasing)
                    if round % 8 == 1 { while !interruptTried.load(ordering: .acquiring) { sched_yield() } }
                    for _ in 0..<(round % 50) { sched_yield() }
                    workerSawInterrupt.store(lifecycle.finish(), ordering: .releasing)
                } else {
                    if round % 2 == 0 {
                        let won = lifecycle.cancelPending()
                        cancelTried.store(true, ordering: .releasing)
                        if won {
                            cancelWon.store(true, ordering: .releasing)
                            return
                        }
                    }
                    while lifecycle.current == .pending { sched_yield() }
                    if lifecycle.requestInterrupt() { interruptGranted.store(true, ordering: .releasing) }
                    interruptTried.store(true, ordering: .releasing)
                }
            }
            let wonCancel = cancelWon.load(ordering: .acquiring)
            XCTAssertNotEqual(wonCancel, started.load(ordering: .acquiring), "cancel and start both won or both lost")
            if wonCancel {
                XCTAssertEqual(lifecycle.current, .cancelled)
                cancelled += 1
            } else {
                XCTAssertEqual(lifecycle.current, .finished)
                XCTAssertEqual(workerSawInterrupt.load(ordering: .acquiring), interruptGranted.load(ordering: .acquiring))
                if interruptGranted.load(ordering: .acquiring) { granted += 1 }
            }
        }
        // Both outcomes of each race must actually happen, or the test proves little.
        XCTAssertGreaterThan(cancelled, 0)
        XCTAssertGreaterThan(granted, 0)
    }

    /// Many getters parked on an empty queue, then a burst of puts and a close: each item goes
    /// to exactly one getter, and every getter wakes (with an item or with `.closed`).
    func testBurstAfterManyParkedGettersThenClose() {
        let queue = BlockingQueue<Int>()
        let got = Mutex<[Int]>([])
        let closedSeen = Atomic<Int>(0)
        let getters = (0..<16).map { _ in
            NativeThread(stackSize: 1 << 20) {
                let parker = Parker()
                while true {
                    do throws(QueueFailure) {
                        let item = try queue.get(parker: parker)
                        got.withLock { $0.append(item) }
                    } catch {
                        if error == .closed { closedSeen.add(1, ordering: .relaxed) }
                        return
                    }
                }
            }!
        }
        usleep(20_000)
        onThreads(4) { p in
            for n in 0..<5_000 { try! queue.put(p * 100_000 + n) }
        }
        queue.close()
        for getter in getters { getter.join() }
        XCTAssertEqual(closedSeen.load(ordering: .relaxed), 16)
        let items = got.withLock { $0 }
        XCTAssertEqual(items.count, 20_000)
        XCTAssertEqual(Set(items).count, 20_000)
    }
}
