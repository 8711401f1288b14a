import ParallelRuntime
import XCTest

final class RingBufferTests: XCTestCase {
    func testFIFOAcrossGrowthAndWrapAround() {
        var ring = RingBuffer<Int>()
        var model: [Int] = []
        // Pops keep the head moving, so appends wrap around the end before each growth.
        for i in 0..<1000 {
            ring.append(i)
            model.append(i)
            if i % 3 == 0 { XCTAssertEqual(ring.popFirst(), model.removeFirst()) }
        }
        XCTAssertEqual(ring.count, model.count)
        XCTAssertEqual(Array(ring), model)
        while let x = ring.popFirst() { XCTAssertEqual(x, model.removeFirst()) }
        XCTAssertTrue(ring.isEmpty)
        XCTAssertNil(ring.popFirst())
    }

    func testPrependPutsAtTheFrontAlsoWhenWrapped() {
        var ring = RingBuffer<Int>()
        ring.prepend(1)  // from empty: the head wraps to the last slot
        ring.append(2)
        ring.prepend(0)
        XCTAssertEqual(Array(ring), [0, 1, 2])
        for i in 3..<40 { ring.append(i) }  // grows while the head sits at the end
        ring.prepend(-1)
        XCTAssertEqual(Array(ring), Array(-1..<40))
    }

    func testRemoveFirstWhereKeepsOrder() {
        var ring = RingBuffer<Int>()
        for i in 0..<10 { ring.append(i) }
        for _ in 0..<4 { _ = ring.popFirst() }
        for i in 10..<20 { ring.append(i) }  // wrapped: 4...19 across the end of the storage
        XCTAssertTrue(ring.removeFirst(where: { $0 == 15 }))
        XCTAssertTrue(ring.removeFirst(where: { $0 == 4 }))
        XCTAssertTrue(ring.removeFirst(where: { $0 == 19 }))
        XCTAssertFalse(ring.removeFirst(where: { $0 == 99 }))
        XCTAssertEqual(Array(ring), Array(5..<15) + Array(16..<19))
        XCTAssertEqual(ring.count, 13)
    }

    func testRemovedElementsAreReleased() {
        final class Token {
            let onDeinit: () -> Void
            init(_ onDeinit: @escaping () -> Void) { self.onDeinit = onDeinit }
            deinit { onDeinit() }
        }
        var released = 0
        var ring = RingBuffer<Token>()
        for _ in 0..<5 { ring.append(Token { released += 1 }) }
        _ = ring.popFirst()
        XCTAssertEqual(released, 1)
        ring.removeFirst(where: { _ in true })
        XCTAssertEqual(released, 2)
        ring.removeAll()
        XCTAssertEqual(released, 5)
        XCTAssertTrue(ring.isEmpty)
        ring.append(Token { released += 1 })
        XCTAssertEqual(Array(ring).count, 1)
    }
}
