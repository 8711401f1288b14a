// The bytes of a `SharedMap`, the same in memory and in a file (`save`, `from_file`): one
// contiguous region that every interpreter, and every process that maps the file, reads at
// once. It never changes once built, so a reader takes no lock.
//
//   offset 0           header (64 bytes, `SharedMapHeader`)
//   64                 records, one per entry, in insertion order:
//                        u32 key length, u32 original-key length (0: the key as it is),
//                        u64 value length, the key, the original key, the value
//   entriesOffset      u64 per entry: its record's offset (iteration order)
//   slotsOffset        u64 per slot: 0 (empty) or fingerprint << 40 | the record's offset
//   totalSize          end
//
// A key is stored in its canonical encoding (`SharedMapKeys`), which equal keys share
// (1, 1.0 and True alike, as in a dict); the original encoding is stored only when it differs,
// so that iteration gives back the key the map was built with. A value is `ShareableCodec`'s
// encoding when that holds it, else its pickle. Slots are an open-addressing table (linear
// probing) over `StableHash` of the canonical key bytes: a hash of our own, not Python's
// per-process salted one, so a file means the same in every process. A slot points at its
// record directly, and 24 bits of the hash in it spare most mismatches a look at the record:
// a lookup reads one slot and one record, about two cache misses in a large map (a dict's
// takes about as many).
@preconcurrency import CPythonShim
import Glibc

/// The fixed header of a SharedMap region. Numbers are in the writer's byte order; `byteOrder`
/// tells a reader of the other order to refuse the file (values inside are native too).
struct SharedMapHeader {
    static let size = 64
    /// "SPSHMAP" and a line feed: a file that went through a text-mode conversion is refused.
    static let magic: UInt64 = 0x0A50_414D_4853_5053  // "SPSHMAP\n" read little-endian
    static let version: UInt32 = 1
    static let byteOrderMark: UInt32 = 0x0102_0304
    /// The byte range the checksum skips: the checksum itself.
    static let checksumOffset = 56

    var count: UInt64
    var slotCount: UInt64
    var entriesOffset: UInt64
    var slotsOffset: UInt64
    var totalSize: UInt64
    var checksum: UInt64

    func write(to base: UnsafeMutableRawPointer) {
        base.storeBytes(of: SharedMapHeader.magic, toByteOffset: 0, as: UInt64.self)
        base.storeBytes(of: SharedMapHeader.version, toByteOffset: 8, as: UInt32.self)
        base.storeBytes(of: SharedMapHeader.byteOrderMark, toByteOffset: 12, as: UInt32.self)
        base.storeBytes(of: count, toByteOffset: 16, as: UInt64.self)
        base.storeBytes(of: slotCount, toByteOffset: 24, as: UInt64.self)
        base.storeBytes(of: entriesOffset, toByteOffset: 32, as: UInt64.self)
        base.storeBytes(of: slotsOffset, toByteOffset: 40, as: UInt64.self)
        base.storeBytes(of: totalSize, toByteOffset: 48, as: UInt64.self)
        base.storeBytes(of: checksum, toByteOffset: 56, as: UInt64.self)
    }

    /// The header of `region`, checked against the region's size, or why the region is not
    /// one this build can read (a sentence for the error message).
    static func read(_ region: UnsafeRawBufferPointer) -> Result<SharedMapHeader, SharedMapFileError> {
        guard region.count >= size, let base = region.baseAddress else {
            return .failure(.foreign("it has \(region.count) bytes, fewer than a SharedMap header"))
        }
        let signature = base.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
        let order = base.loadUnaligned(fromByteOffset: 12, as: UInt32.self)
        if signature == magic.byteSwapped || (signature == magic && order == byteOrderMark.byteSwapped) {
            return .failure(.foreign("it was written on a machine of the other byte order"))
        }
        guard signature == magic, order == byteOrderMark else {
            return .failure(.foreign("it does not start with the SharedMap signature"))
        }
        let version = base.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        guard version == SharedMapHeader.version else {
            return .failure(
                .foreign("it is in format version \(version); this build reads version \(SharedMapHeader.version)"))
        }
        let header = SharedMapHeader(
            count: base.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
            slotCount: base.loadUnaligned(fromByteOffset: 24, as: UInt64.self),
            entriesOffset: base.loadUnaligned(fromByteOffset: 32, as: UInt64.self),
            slotsOffset: base.loadUnaligned(fromByteOffset: 40, as: UInt64.self),
            totalSize: base.loadUnaligned(fromByteOffset: 48, as: UInt64.self),
            checksum: base.loadUnaligned(fromByteOffset: 56, as: UInt64.self))
        if header.totalSize > UInt64(region.count) {
            return .failure(.truncated("it has \(region.count) bytes where its header says \(header.totalSize)"))
        }
        if header.totalSize < UInt64(region.count) {
            return .failure(.corrupt("it has \(region.count) bytes where its header says \(header.totalSize)"))
        }
        // The layout must fit the size exactly: no later read can then leave the region.
        let (entriesBytes, o1) = header.count.multipliedReportingOverflow(by: 8)
        let (slotsBytes, o2) = header.slotCount.multipliedReportingOverflow(by: 8)
        guard !o1, !o2, header.slotCount > header.count, header.slotCount & (header.slotCount - 1) == 0,
            header.totalSize < 1 << 40,
            header.entriesOffset >= UInt64(size), header.entriesOffset % 8 == 0,
            header.slotsOffset == header.entriesOffset + entriesBytes,
            header.totalSize == header.slotsOffset + slotsBytes
        else { return .failure(.corrupt("its header's layout does not add up")) }
        return .success(header)
    }
}

/// Why a file cannot be opened as a SharedMap.
enum SharedMapFileError: Error {
    /// Not a SharedMap file of this format (another file, another version or byte order).
    case foreign(String)
    /// Shorter than its header says: a copy or a save that did not finish.
    case truncated(String)
    /// The layout or the checksum does not match: changed after it was written.
    case corrupt(String)

    /// The message of the ValueError raised for `path`.
    func message(path: String) -> String {
        switch self {
        case .foreign(let why): return "\(path) is not a SharedMap file this build can read: \(why)"
        case .truncated(let why): return "\(path) is a truncated SharedMap file: \(why)"
        case .corrupt(let why): return "\(path) is a corrupt SharedMap file: \(why)"
        }
    }
}

/// A 64-bit hash of bytes that is the same in every process and on every run (unlike
/// Python's `hash` of a str, which is salted per process): the slot of a key in a file must
/// not depend on who reads it. Keys are hashed 16 bytes a step, each step one full-width
/// multiplication folded (high ^ low), the way wyhash and its kin do: a lookup's cost is
/// mostly this for short keys. The checksum mixes 8 bytes a step on four lanes instead.
enum StableHash {
    private static let k1: UInt64 = 0x9E37_79B9_7F4A_7C15
    private static let k2: UInt64 = 0xBF58_476D_1CE4_E5B9
    private static let k3: UInt64 = 0x94D0_49BB_1331_11EB

    @inline(__always)
    private static func rotate(_ x: UInt64, _ by: UInt64) -> UInt64 { (x << by) | (x >> (64 - by)) }

    @inline(__always)
    private static func step(_ h: UInt64, _ word: UInt64) -> UInt64 {
        rotate(h ^ (rotate(word &* k2, 31) &* k1), 27) &* k3 &+ k1
    }

    @inline(__always)
    static func finish(_ h: UInt64) -> UInt64 {
        var z = h
        z = (z ^ (z >> 30)) &* k2
        z = (z ^ (z >> 27)) &* k3
        return z ^ (z >> 31)
    }

    /// The 128-bit product of `a` and `b`, folded to 64 bits.
    @inline(__always)
    private static func fold(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let (high, low) = a.multipliedFullWidth(by: b)
        return high ^ low
    }

    @inline(__always)
    private static func word(_ bytes: UnsafeRawPointer, _ offset: Int) -> UInt64 {
        bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
    }

    /// The hash of `count` bytes at `bytes`. The last 16 bytes are read as the two words that
    /// end the data (overlapping the step before; the count is mixed in at the end, so inputs
    /// of different lengths do not meet through it); shorter data is gathered in smaller loads.
    @inline(__always)
    static func hash(_ bytes: UnsafeRawPointer, _ count: Int, seed: UInt64 = 0) -> UInt64 {
        var h = seed ^ k1
        var a: UInt64
        var b: UInt64
        if count <= 16 {
            if count >= 8 {
                a = word(bytes, 0)
                b = word(bytes, count - 8)
            } else if count >= 4 {
                a = UInt64(bytes.loadUnaligned(as: UInt32.self))
                b = UInt64(bytes.loadUnaligned(fromByteOffset: count - 4, as: UInt32.self))
            } else if count > 0 {
                a =
                    UInt64(bytes.load(as: UInt8.self)) << 16
                    | UInt64(bytes.load(fromByteOffset: count / 2, as: UInt8.self)) << 8
                    | UInt64(bytes.load(fromByteOffset: count - 1, as: UInt8.self))
                b = 0
            } else {
                a = 0
                b = 0
            }
        } else {
            var i = 0
            while count - i > 16 {
                h = fold(word(bytes, i) ^ k2, word(bytes, i + 8) ^ h)
                i += 16
            }
            a = word(bytes, count - 16)
            b = word(bytes, count - 8)
        }
        h = fold(a ^ k2, b ^ h)
        return fold(h ^ k3, UInt64(count) ^ k1)
    }

    /// The checksum of a region: the same mixing on four independent lanes (a quarter of the
    /// dependency chain, so it runs at memory speed), combined at the end.
    static func checksum(_ bytes: UnsafeRawPointer, _ count: Int, seed: UInt64) -> UInt64 {
        var lanes: (UInt64, UInt64, UInt64, UInt64) = (seed, seed ^ k1, seed ^ k2, seed ^ k3)
        var i = 0
        while i + 32 <= count {
            lanes.0 = step(lanes.0, bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            lanes.1 = step(lanes.1, bytes.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self))
            lanes.2 = step(lanes.2, bytes.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self))
            lanes.3 = step(lanes.3, bytes.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self))
            i += 32
        }
        var h = step(step(step(step(UInt64(count), lanes.0), lanes.1), lanes.2), lanes.3)
        h = step(h, hash(bytes + i, count - i))
        return finish(h)
    }

    /// The checksum stored in a region's header: of everything but the checksum field.
    static func regionChecksum(_ base: UnsafeRawPointer, totalSize: Int) -> UInt64 {
        let head = checksum(base, SharedMapHeader.checksumOffset, seed: 0)
        return checksum(base + SharedMapHeader.size, totalSize - SharedMapHeader.size, seed: head)
    }
}
