import Glibc
import ParallelRuntime
import Synchronization
import XCTest

/// Who settles a task's outcome: a claiming stop, or the completion thread, never both.
final class TaskClaimTests: XCTestCase {
    func testAClaimingCancelTakesTheOutcomeFromTheCompletionSide() {
        let pending = TaskLifecycle()
        XCTAssertTrue(pending.cancelPending(claim: true))
        XCTAssertFalse(pending.start())
        XCTAssertFalse(pending.claimOutcome())

        let running = TaskLifecycle()
        XCTAssertTrue(running.start())
        XCTAssertTrue(running.requestInterrupt(claim: true))
        XCTAssertTrue(running.finish())  // it saw the interrupt; the claim survives finishing
        XCTAssertEqual(running.current, .finished)
        XCTAssertTrue(running.isClaimed)
        XCTAssertFalse(running.claimOutcome())
    }

    func testAnInterruptWithoutClaimLeavesTheOutcomeToTheCompletionSide() {
        let lifecycle = TaskLifecycle()
        XCTAssertTrue(lifecycle.start())
        XCTAssertTrue(lifecycle.requestInterrupt())  // Ctrl-C: the task's own event settles it
        XCTAssertTrue(lifecycle.finish())
        XCTAssertTrue(lifecycle.claimOutcome())
        XCTAssertFalse(lifecycle.claimOutcome())
    }

    func testACancelAfterTheCompletionClaimedIsTooLate() {
        let lifecycle = TaskLifecycle()
        XCTAssertTrue(lifecycle.start())
        XCTAssertFalse(lifecycle.finish())
        XCTAssertTrue(lifecycle.claimOutcome())
        XCTAssertFalse(lifecycle.cancelPending(claim: true))
        XCTAssertFalse(lifecycle.requestInterrupt(claim: true))
    }

    /// A cancel racing a worker that finishes and a completion thread that then claims:
    /// exactly one of the canceller and the completion thread owns the outcome, every time.
    func testCancelAndCompletionRaceHasOneWinner() {
        for _ in 0..<2000 {
            let lifecycle = TaskLifecycle()
            XCTAssertTrue(lifecycle.start())
            let go = Atomic<Bool>(false)
            let completionWon = Atomic<Bool>(false)
            let completion = NativeThread(stackSize: 1 << 20) {
                while !go.load(ordering: .acquiring) { sched_yield() }
                lifecycle.finish()
                completionWon.store(lifecycle.claimOutcome(), ordering: .releasing)
            }!
            go.store(true, ordering: .releasing)
            let cancelWon = lifecycle.requestInterrupt(claim: true)
            completion.join()
            XCTAssertNotEqual(cancelWon, completionWon.load(ordering: .acquiring))
        }
    }
}

final class PoolLifecycleTests: XCTestCase {
    func testRunningThenShuttingDownThenShutDown() {
        let pool = PoolLifecycle()
        XCTAssertEqual(pool.state, .running)
        XCTAssertTrue(pool.acceptsTasks)
        XCTAssertTrue(pool.close())
        XCTAssertFalse(pool.close())
        XCTAssertEqual(pool.state, .shuttingDown)
        XCTAssertFalse(pool.acceptsTasks)
        pool.workersEnded()
        XCTAssertEqual(pool.state, .shutDown)
        XCTAssertNil(pool.brokenBecause)
    }

    func testWorkersEndingWhileRunningIsNotAShutdown() {
        let pool = PoolLifecycle()
        pool.workersEnded()  // every worker failed to start: the broken event follows
        XCTAssertEqual(pool.state, .running)
    }

    func testBrokenWinsAndKeepsTheFirstReason() {
        let pool = PoolLifecycle()
        XCTAssertTrue(pool.breakDown(reason: "worker 0 failed"))
        XCTAssertFalse(pool.breakDown(reason: "worker 1 failed"))
        pool.close()
        pool.workersEnded()
        XCTAssertEqual(pool.state, .broken(reason: "worker 0 failed"))
        XCTAssertEqual(pool.brokenBecause, "worker 0 failed")
        XCTAssertFalse(pool.acceptsTasks)
    }

    func testConcurrentBreakDownsKeepOneReason() {
        let pool = PoolLifecycle()
        let winners = Atomic<Int>(0)
        let threads = (0..<4).map { i in
            NativeThread(stackSize: 1 << 20) {
                if pool.breakDown(reason: "\(i)") { winners.add(1, ordering: .acquiringAndReleasing) }
            }!
        }
        for thread in threads { thread.join() }
        XCTAssertEqual(winners.load(ordering: .acquiring), 1)
        guard case .broken(let reason) = pool.state else { return XCTFail("not broken") }
        XCTAssertTrue(["0", "1", "2", "3"].contains(reason))
    }
}
